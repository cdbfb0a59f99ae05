"""Inpainting against direct mask multiplication, hand-built masks and exact missing counts."""

import numpy as np
import pytest
import torch
from pnpfast_test_utils import check_orthonormal_operator

from pnpfast.operators.inpainting import Inpainting


def bernoulli_mask(*shape, p=0.6, seed=0):
    """A random bool mask built here, independently of Inpainting.random."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g) < p


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("size", [(7, 9), (5, 12)], ids=["7x9", "5x12"])
@pytest.mark.parametrize("per_image", [False, True], ids=["shared", "per_image"])
def test_contract(per_image, size, C):
    H, W = size
    mask = bernoulli_mask(3, 1, H, W) if per_image else bernoulli_mask(H, W)
    x = torch.rand(3, C, H, W, dtype=torch.float64)
    check_orthonormal_operator(Inpainting(mask), x)


@pytest.mark.parametrize("C", [1, 3])
def test_contract_of_random_and_block_masks(C):
    x = torch.rand(3, C, 5, 12, dtype=torch.float64)
    check_orthonormal_operator(Inpainting.random((3, 5, 12), 0.4, seed=3), x)
    check_orthonormal_operator(Inpainting.random((5, 12), 0.7, seed=4), x)
    check_orthonormal_operator(Inpainting.block(5, 12, 1, 2, 3, 4), x)


@pytest.mark.parametrize("per_image", [False, True], ids=["shared", "per_image"])
def test_against_numpy_multiplication(per_image):
    H, W = 7, 9
    mask = bernoulli_mask(3, 1, H, W) if per_image else bernoulli_mask(H, W)
    x = np.random.default_rng(0).standard_normal((3, 2, H, W))
    m = mask.numpy().astype(np.float64)
    want = x * (m if per_image else m[None, None])
    A = Inpainting(mask)
    xt = torch.from_numpy(x)
    for out in (A.measure(xt), A.lift(xt), A.project(xt), A(xt), A.adjoint(xt)):
        np.testing.assert_array_equal(out.numpy(), want)


def test_each_image_gets_its_own_mask():
    mask = torch.zeros(2, 1, 3, 4, dtype=torch.bool)
    mask[0, 0, 0, 0] = True
    mask[1, 0, 2, 3] = True
    x = torch.ones(2, 3, 3, 4, dtype=torch.float64)
    out = Inpainting(mask).measure(x)
    want = torch.zeros(2, 3, 3, 4, dtype=torch.float64)
    want[0, :, 0, 0] = 1
    want[1, :, 2, 3] = 1
    assert torch.equal(out, want)


def test_a_mask_of_batch_one_is_shared():
    mask = bernoulli_mask(1, 1, 4, 5)
    x = torch.rand(3, 2, 4, 5, dtype=torch.float64)
    assert torch.equal(Inpainting(mask).measure(x), x * mask.double())


def test_prox_keeps_missing_pixels_and_averages_measured_ones():
    """At a measured pixel the prox is (v + gamma y) / (1 + gamma); a missing one keeps v."""
    mask = bernoulli_mask(4, 6)
    A = Inpainting(mask)
    v = torch.rand(2, 3, 4, 6, dtype=torch.float64)
    y = A.measure(torch.rand(2, 3, 4, 6, dtype=torch.float64))
    gamma = torch.tensor([0.5, 2.0], dtype=torch.float64)
    got = A.prox_l2(v, y, gamma)
    for b in range(2):
        g = gamma[b].item()
        want = torch.where(mask, (v[b] + g * y[b]) / (1 + g), v[b])
        assert torch.allclose(got[b], want, atol=1e-14)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m,
        lambda m: m.double(),
        lambda m: m.float(),
        lambda m: m.long(),
        lambda m: m.to(torch.uint8),
        lambda m: m.numpy(),
        lambda m: m.numpy().astype(np.float32),
        lambda m: m.numpy().astype(np.int32),
    ],
    ids=["bool", "float64", "float32", "int64", "uint8", "np_bool", "np_float32", "np_int32"],
)
def test_accepted_mask_types(make):
    mask = bernoulli_mask(5, 7)
    A = Inpainting(make(mask))
    assert A.mask.dtype == torch.bool
    assert torch.equal(A.mask, mask)
    x = torch.rand(2, 1, 5, 7, dtype=torch.float64)
    assert torch.equal(A.measure(x), torch.where(mask, x, 0.0))


def test_the_mask_is_copied():
    mask = torch.ones(3, 3, dtype=torch.bool)
    A = Inpainting(mask)
    A.measure(torch.rand(1, 1, 3, 3, dtype=torch.float64))  # fills the cache
    mask[1, 1] = False
    assert bool(A.mask.all())
    assert bool((A.measure(torch.ones(1, 1, 3, 3, dtype=torch.float64)) == 1).all())


def test_mask_shapes_and_fraction_measured():
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=torch.bool)
    A = Inpainting(mask)
    assert A.mask.shape == (2, 4)
    assert A.fraction_measured == 0.75

    per = torch.zeros(3, 1, 2, 5, dtype=torch.bool)
    per[0, 0, 0, :1] = True
    per[1, 0, :, :] = True
    per[2, 0, 1, :4] = True
    B = Inpainting(per)
    assert B.mask.shape == (3, 1, 2, 5)
    assert torch.equal(B.fraction_measured, torch.tensor([0.1, 1.0, 0.4], dtype=torch.float64))


@pytest.mark.parametrize(
    ("shape", "missing", "n_missing"),
    [
        ((7, 9), 0.3, 19),  # 18.9 pixels rounds to 19
        ((3, 7, 9), 0.3, 19),
        ((4, 5, 12), 0.75, 45),
        ((2, 5, 12), 0.0, 0),
        ((3, 4, 4), 0.95, 15),  # 15.2 rounds to every pixel but one (all: refused)
        ((2, 10, 10), 0.504, 50),  # 50.4 rounds down
    ],
)
def test_random_has_the_exact_missing_count_per_image(shape, missing, n_missing):
    A = Inpainting.random(shape, missing, seed=7)
    H, W = shape[-2:]
    if len(shape) == 2:
        assert A.mask.shape == (H, W)
        assert int((~A.mask).sum()) == n_missing
    else:
        assert A.mask.shape == (shape[0], 1, H, W)
        counts = (~A.mask).sum(dim=(1, 2, 3))
        assert counts.tolist() == [n_missing] * shape[0]


def test_random_is_reproducible_and_depends_on_the_seed():
    a = Inpainting.random((3, 7, 9), 0.5, seed=11).mask
    b = Inpainting.random((3, 7, 9), 0.5, seed=11).mask
    c = Inpainting.random((3, 7, 9), 0.5, seed=12).mask
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # different images of one batch get different masks
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[1], a[2])
    # the global torch RNG plays no part
    torch.manual_seed(1)
    d = Inpainting.random((7, 9), 0.5, seed=5).mask
    torch.manual_seed(2)
    assert torch.equal(d, Inpainting.random((7, 9), 0.5, seed=5).mask)


def test_random_chooses_pixels_uniformly():
    """Over 4000 masks of 4 x 4 with 4 missing pixels, each pixel is missing 1/4 of the time
    (standard deviation of the frequency about 0.007)."""
    mask = Inpainting.random((4000, 4, 4), 0.25, seed=0).mask
    freq = (~mask).double().mean(dim=(0, 1))
    assert torch.allclose(freq, torch.full((4, 4), 0.25, dtype=torch.float64), atol=0.035), freq


def test_block_against_a_hand_built_mask():
    A = Inpainting.block(3, 4, 1, 1, 1, 2)
    want = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(A.mask, want)

    H, W, top, left, h, w = 7, 9, 2, 3, 4, 6
    m = np.ones((H, W), dtype=bool)
    m[top : top + h, left : left + w] = False
    assert np.array_equal(Inpainting.block(H, W, top, left, h, w).mask.numpy(), m)
    # a block that fills the whole image leaves nothing measured (issue 17): refused
    with pytest.raises(ValueError, match="covers the whole 2x3 image"):
        Inpainting.block(2, 3, 0, 0, 2, 3)


def test_keeps_dtype_and_device(device):
    mask = bernoulli_mask(3, 1, 5, 12)
    A = Inpainting(mask)
    x = torch.rand(3, 3, 5, 12)
    want = x * mask.float()
    for dtype in (torch.float32, torch.float64):
        xd = x.to(device=device, dtype=dtype)
        for out in (A.measure(xd), A.lift(xd), A.project(xd)):
            assert out.dtype == dtype and out.device == xd.device
            assert torch.equal(out.cpu(), want.to(dtype))
    y = A.measure(x.to(device))
    p = A.prox_l2(torch.rand(3, 3, 5, 12, device=device), y, 1.0)
    assert p.dtype == torch.float32 and p.device == y.device


# ----- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [[[0.0, 0.5], [1.0, 1.0]], [[0, 2], [1, 1]], [[0, -1], [1, 1]], [[0.0, float("nan")], [1, 1]]],
    ids=["half", "two", "minus_one", "nan"],
)
def test_rejects_mask_values_other_than_0_and_1(values):
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        Inpainting(torch.tensor(values))


@pytest.mark.parametrize(
    "shape", [(5,), (2, 5, 7), (2, 3, 5, 7), (5, 7, 1), (1, 1, 1, 5, 7), (0, 7)]
)
def test_rejects_bad_mask_shapes(shape):
    with pytest.raises(ValueError, match="mask"):
        Inpainting(torch.ones(shape, dtype=torch.bool))


def test_rejects_bad_mask_types():
    with pytest.raises(TypeError, match="mask"):
        Inpainting([[1, 0], [0, 1]])
    with pytest.raises(TypeError, match="mask"):
        Inpainting(torch.ones(2, 2, dtype=torch.complex64))


def test_rejects_images_of_another_size():
    A = Inpainting(torch.ones(5, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask has size 5x7 but x has size 7x5"):
        A.measure(torch.rand(1, 1, 7, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"mask has size 5x7 but c has size 5x8"):
        A.lift(torch.rand(1, 1, 5, 8, dtype=torch.float64))


def test_rejects_a_batch_mismatch():
    A = Inpainting(torch.ones(2, 1, 5, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask holds 2 masks but x has batch size 3"):
        A.measure(torch.rand(3, 1, 5, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch size 3"):
        A.project(torch.rand(3, 1, 5, 7, dtype=torch.float64))


def test_rejects_bad_images():
    A = Inpainting(torch.ones(5, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="x must have shape"):
        A.measure(torch.rand(5, 7, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must have dtype"):
        A.measure(torch.ones(1, 1, 5, 7, dtype=torch.long))
    with pytest.raises(TypeError, match=r"c must be a torch\.Tensor"):
        A.lift(np.ones((1, 1, 5, 7)))


@pytest.mark.parametrize("missing", [-0.1, 1.0, 1.5, float("nan")])
def test_random_rejects_a_bad_fraction(missing):
    with pytest.raises(ValueError, match="missing"):
        Inpainting.random((5, 7), missing)


@pytest.mark.parametrize("missing", [True, "0.5", None])
def test_random_rejects_a_fraction_that_is_not_a_number(missing):
    with pytest.raises(TypeError, match="missing"):
        Inpainting.random((5, 7), missing)


@pytest.mark.parametrize(
    ("shape", "error"),
    [
        ((5,), ValueError),
        ((1, 2, 5, 7), ValueError),
        ((0, 7), ValueError),
        ((2, -1, 7), ValueError),
        ((5.0, 7), TypeError),
        (5, ValueError),
    ],
)
def test_random_rejects_a_bad_shape(shape, error):
    with pytest.raises(error, match="shape"):
        Inpainting.random(shape, 0.5)


def test_random_rejects_a_bad_seed():
    with pytest.raises(TypeError, match="seed"):
        Inpainting.random((5, 7), 0.5, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        Inpainting.random((5, 7), 0.5, seed=-1)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((5, 7, 3, 0, 3, 2), ValueError, "does not fit"),  # rows 3..5 of 5
        ((5, 7, 0, 5, 2, 3), ValueError, "does not fit"),  # columns 5..7 of 7
        ((5, 7, -1, 0, 2, 2), ValueError, "top"),
        ((5, 7, 0, -1, 2, 2), ValueError, "left"),
        ((5, 7, 0, 0, 0, 2), ValueError, "height"),
        ((5, 7, 0, 0, 2, 0), ValueError, "width"),
        ((0, 7, 0, 0, 1, 1), ValueError, "H"),
        ((5, 7.0, 0, 0, 1, 1), TypeError, "W"),
        ((5, 7, True, 0, 1, 1), TypeError, "top"),
    ],
)
def test_block_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        Inpainting.block(*args)

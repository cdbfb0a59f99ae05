"""CompressiveSensing and its FFT-based DCT, against scipy.fft and explicit matrices."""

import math

import numpy as np
import pytest
import scipy.fft
import torch
from pnpfast_test_utils import check_orthonormal_operator

from pnpfast.operators.compressive_sensing import CompressiveSensing, dct2, idct2

SIZES = [(7, 9), (8, 12), (16, 16)]
METHODS = ["fast", "dense"]


def explicit_matrix(A: CompressiveSensing, H: int, W: int) -> torch.Tensor:
    """M [N, m], row j = M^T e_j, by measuring every basis image of an H x W image at once."""
    N = H * W
    basis = torch.eye(N, dtype=torch.float64).view(N, 1, H, W)
    return A.measure(basis)[:, 0, :]


# -- the DCT --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (2, 3), (5, 4), (7, 9), (8, 12), (16, 16)])
def test_dct2_and_idct2_against_scipy(size):
    x = np.random.default_rng(0).standard_normal((2, 3, *size))
    want = scipy.fft.dctn(x, axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(dct2(torch.from_numpy(x)).numpy(), want, atol=1e-12)
    want_inv = scipy.fft.idctn(x, axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(idct2(torch.from_numpy(x)).numpy(), want_inv, atol=1e-12)


def test_dct2_any_leading_dimensions():
    x = np.random.default_rng(1).standard_normal((6, 5))
    want = scipy.fft.dctn(x, norm="ortho")
    np.testing.assert_allclose(dct2(torch.from_numpy(x)).numpy(), want, atol=1e-12)
    y = np.random.default_rng(2).standard_normal((2, 2, 2, 3, 4))
    want = scipy.fft.idctn(y, axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(idct2(torch.from_numpy(y)).numpy(), want, atol=1e-12)


def test_dct2_float32_on_device(device):
    x = np.random.default_rng(3).random((2, 1, 12, 10)).astype(np.float32)
    t = torch.from_numpy(x).to(device)
    for ours, theirs in ((dct2, scipy.fft.dctn), (idct2, scipy.fft.idctn)):
        got = ours(t)
        assert got.dtype == torch.float32 and got.device.type == device
        want = theirs(x.astype(np.float64), axes=(-2, -1), norm="ortho")
        np.testing.assert_allclose(got.cpu().numpy(), want, atol=1e-5)


# -- the operator contract ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ratio", [0.04, 0.25, 1.0])
def test_contract(size, C, method, ratio):
    x = torch.rand(3, C, *size, dtype=torch.float64)
    check_orthonormal_operator(CompressiveSensing(ratio, seed=5, method=method), x)


@pytest.mark.parametrize("size", [(4, 5), (6, 6)])
@pytest.mark.parametrize("ratio", [0.3, 1.0])
def test_fast_explicit_matrix_has_orthonormal_columns(size, ratio):
    H, W = size
    A = CompressiveSensing(ratio, seed=1, method="fast")
    M = explicit_matrix(A, H, W)  # [N, m]; the rows of M^T are the measurement vectors
    assert M.shape == (H * W, A.m)
    torch.testing.assert_close(M.T @ M, torch.eye(A.m, dtype=torch.float64), atol=1e-12, rtol=0)
    if A.m == H * W:  # all measurements: M is orthogonal, so M M^T = I as well
        torch.testing.assert_close(
            M @ M.T, torch.eye(H * W, dtype=torch.float64), atol=1e-12, rtol=0
        )
    c = torch.randn(2, 3, A.m, dtype=torch.float64)
    torch.testing.assert_close(A.lift(c).flatten(2), c @ M.T, atol=1e-12, rtol=0)


def test_fast_is_signs_then_dct_then_selection():
    """M^T x = S T D x with scipy's DCT, from the operator's own draw of D and S."""
    H, W = 8, 12
    A = CompressiveSensing(0.25, seed=4, method="fast")
    x = torch.rand(2, 3, H, W, dtype=torch.float64)
    got = A.measure(x).numpy()
    D, S = A.signs.numpy(), A.selected.numpy()
    assert D.shape == (H, W) and set(np.unique(D)) == {-1.0, 1.0}
    assert S.shape == (24,) and len(set(S.tolist())) == 24 and S.min() >= 0 and S.max() < H * W
    want = scipy.fft.dctn(x.numpy() * D, axes=(-2, -1), norm="ortho").reshape(2, 3, -1)[..., S]
    np.testing.assert_allclose(got, want, atol=1e-12)
    c = np.random.default_rng(0).standard_normal((2, 3, 24))
    full = np.zeros((2, 3, H * W))
    full[..., S] = c
    want_lift = scipy.fft.idctn(full.reshape(2, 3, H, W), axes=(-2, -1), norm="ortho") * D
    np.testing.assert_allclose(A.lift(torch.from_numpy(c)).numpy(), want_lift, atol=1e-12)


def test_dense_matrix_is_orthonormal_and_is_what_measure_applies():
    H, W = 7, 9
    A = CompressiveSensing(0.25, seed=2, method="dense")
    x = torch.rand(3, 2, H, W, dtype=torch.float64)
    got = A.measure(x)
    M = A.matrix.numpy()
    assert M.shape == (63, 16) and A.m == 16
    np.testing.assert_allclose(M.T @ M, np.eye(16), atol=1e-12)
    np.testing.assert_allclose(got.numpy(), x.numpy().reshape(3, 2, 63) @ M, atol=1e-12)
    np.testing.assert_allclose(explicit_matrix(A, H, W).numpy(), M, atol=1e-12)
    # a random frame, not a coordinate selection: every pixel takes part in every measurement
    assert np.abs(M).min() > 0


@pytest.mark.parametrize("method", METHODS)
def test_the_same_m_for_every_image_and_channel(method):
    A = CompressiveSensing(0.25, method=method)
    x = torch.rand(3, 2, 8, 12, dtype=torch.float64)
    c = A.measure(x)
    for b in range(3):
        for ch in range(2):
            torch.testing.assert_close(c[b, ch], A.measure(x[b : b + 1, ch : ch + 1])[0, 0])


# -- seeds, m, the choice of method ---------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_seeds_reproduce_and_differ(method):
    x = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    a = CompressiveSensing(0.25, seed=7, method=method).measure(x)
    b = CompressiveSensing(0.25, seed=7, method=method, shape=(8, 12)).measure(x)
    c = CompressiveSensing(0.25, seed=8, method=method).measure(x)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert (a - c).abs().max() > 1e-3


def test_the_draw_does_not_depend_on_the_global_generator():
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    torch.manual_seed(1)
    a = CompressiveSensing(0.5, seed=3, method="fast").measure(x)
    torch.manual_seed(2)
    b = CompressiveSensing(0.5, seed=3, method="fast").measure(x)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("ratio", "H", "W", "m"),
    [
        (0.25, 16, 16, 64),
        (0.10, 16, 16, 26),  # 25.6
        (0.04, 16, 16, 10),  # 10.24
        (0.5, 7, 9, 32),  # 31.5, half up
        (0.1, 7, 9, 6),  # 6.3
        (1e-6, 8, 8, 1),  # at least one measurement
        (1.0, 8, 12, 96),
        (0.04, 100, 120, 480),
    ],
)
def test_m_from_the_ratio(ratio, H, W, m):
    A = CompressiveSensing(ratio, shape=(H, W))
    assert A.m == m
    assert A.measure(torch.rand(1, 2, H, W)).shape == (1, 2, m)


def test_auto_takes_dense_up_to_4096_pixels():
    assert CompressiveSensing(0.01, shape=(64, 64)).kind == "dense"
    assert CompressiveSensing(0.01, shape=(64, 65)).kind == "fast"
    assert CompressiveSensing(0.01, shape=(8, 8), method="fast").kind == "fast"
    assert CompressiveSensing(0.01, shape=(65, 65), method="dense").kind == "dense"
    A = CompressiveSensing(0.1)
    A.measure(torch.rand(1, 1, 70, 70))
    assert A.kind == "fast" and A.matrix is None and A.signs.shape == (70, 70)


# -- the image size -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_shape_given_or_taken_from_the_first_image(method):
    x = torch.rand(2, 1, 8, 12, dtype=torch.float64)
    given = CompressiveSensing(0.25, method=method, shape=(8, 12))
    assert given.shape == (8, 12) and given.m == 24
    seen = CompressiveSensing(0.25, method=method)
    assert seen.shape is None
    c = seen.measure(x)
    assert seen.shape == (8, 12) and seen.m == 24
    torch.testing.assert_close(c, given.measure(x), atol=0, rtol=0)

    other = torch.rand(2, 1, 12, 8, dtype=torch.float64)
    for A, source in ((given, "shape="), (seen, "first image")):
        with pytest.raises(ValueError, match=rf"12x8.*built for 8x12.*{source}"):
            A.measure(other)
        with pytest.raises(ValueError, match="12x8"):
            A.project(other)
        with pytest.raises(ValueError, match=r"v has shape \(2, 1, 12, 8\).*\(2, 1, 8, 12\)"):
            A.prox_l2(other, c, 1.0)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0, -0.25, 1.01, math.nan, math.inf])
def test_bad_ratio_values(ratio):
    with pytest.raises(ValueError, match="ratio"):
        CompressiveSensing(ratio)


@pytest.mark.parametrize("ratio", ["0.25", True, None])
def test_bad_ratio_types(ratio):
    with pytest.raises(TypeError, match="ratio"):
        CompressiveSensing(ratio)


@pytest.mark.parametrize(
    ("method", "error"),
    [("qr", ValueError), ("Fast", ValueError), ("", ValueError), (None, TypeError)],
)
def test_bad_method(method, error):
    with pytest.raises(error, match='method must be "fast", "dense" or "auto"'):
        CompressiveSensing(0.25, method=method)


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (1.5, TypeError), ("0", TypeError)])
def test_bad_seed(seed, error):
    with pytest.raises(error, match="seed"):
        CompressiveSensing(0.25, seed=seed)


@pytest.mark.parametrize(
    ("shape", "error"),
    [((8,), ValueError), ((0, 4), ValueError), ((8.0, 12), TypeError), ("8x12", ValueError)],
)
def test_bad_shapes(shape, error):
    with pytest.raises(error, match="shape"):
        CompressiveSensing(0.25, shape=shape)


def test_dense_refuses_large_images():
    with pytest.raises(ValueError, match=r'at most 65536 pixels.*257x256.*method="fast"'):
        CompressiveSensing(0.01, shape=(257, 256), method="dense")
    A = CompressiveSensing(0.01, method="dense")
    with pytest.raises(ValueError, match=r'257x256.*first image.*method="fast"'):
        A.measure(torch.zeros(1, 1, 257, 256))
    assert A.shape is None  # nothing was built for the refused size


def test_bad_arguments_to_measure_and_lift():
    A = CompressiveSensing(0.25, method="fast")
    with pytest.raises(ValueError, match="not known yet"):
        A.lift(torch.zeros(1, 1, 24, dtype=torch.float64))
    with pytest.raises(ValueError, match="not known yet"):
        _ = A.m
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        A.measure(np.zeros((1, 1, 8, 12)))
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, H, W\]"):
        A.measure(torch.zeros(1, 8, 12, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must have dtype"):
        A.measure(torch.zeros(1, 1, 8, 12, dtype=torch.float16))
    A.measure(torch.zeros(1, 1, 8, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"c must have shape \[B, C, 24\].*\(1, 1, 23\)"):
        A.lift(torch.zeros(1, 1, 23, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"c must have shape \[B, C, 24\]"):
        A.lift(torch.zeros(1, 1, 8, 12, dtype=torch.float64))
    with pytest.raises(TypeError, match="c must have dtype"):
        A.lift(torch.zeros(1, 1, 24, dtype=torch.int32))


# -- float32 and the device -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_float32_on_device_keeps_dtype_and_device(device, method):
    A = CompressiveSensing(0.25, seed=3, method=method)
    x64 = torch.rand(3, 3, 8, 12, dtype=torch.float64)
    x = x64.to(device=device, dtype=torch.float32)
    c, p = A.measure(x), A.project(x)
    lifted = A.lift(c)
    for t in (c, p, lifted):
        assert t.dtype == torch.float32 and t.device.type == device
    assert c.shape == (3, 3, 24) and p.shape == lifted.shape == x.shape
    torch.testing.assert_close(c.cpu().double(), A.measure(x64), atol=2e-6, rtol=0)
    torch.testing.assert_close(p.cpu().double(), A.project(x64), atol=2e-6, rtol=0)
    y = A.measure(x64).to(device=device, dtype=torch.float32)
    out = A.prox_l2(x, y, 0.5)
    assert out.dtype == torch.float32 and out.device.type == device

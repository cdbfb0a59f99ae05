"""BlockAverage against avg_pool2d, a hand-computed example and an explicitly built matrix M."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pnpfast_test_utils import check_orthonormal_operator

from pnpfast.operators.block_average import BlockAverage


def dense_m(H: int, W: int, s: int) -> torch.Tensor:
    """M as a dense [H W, (H/s)(W/s)] matrix: column (i, j) is 1/s on the pixels of block (i, j)."""
    h, w = H // s, W // s
    M = torch.zeros(H * W, h * w, dtype=torch.float64)
    for r in range(H):
        for col in range(W):
            M[r * W + col, (r // s) * w + col // s] = 1.0 / s
    return M


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize(
    ("size", "s"),
    [((6, 9), 3), ((8, 12), 2), ((8, 12), 4), ((5, 10), 5), ((7, 9), 1), ((7, 14), 7)],
    ids=["6x9/3", "8x12/2", "8x12/4", "5x10/5", "7x9/1", "7x14/7"],
)
def test_contract(size, s, C):
    x = torch.rand(3, C, *size, dtype=torch.float64)
    check_orthonormal_operator(BlockAverage(s), x)


def test_a_hand_computed_example():
    x = torch.tensor([[[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]]], dtype=torch.float64)
    A = BlockAverage(2)
    # block sums 14 and 22, divided by s = 2
    assert torch.equal(A.measure(x), torch.tensor([[[[7.0, 11.0]]]], dtype=torch.float64))
    assert torch.equal(A.low_res(x), torch.tensor([[[[3.5, 5.5]]]], dtype=torch.float64))
    means = torch.tensor([[[[3.5, 3.5, 5.5, 5.5], [3.5, 3.5, 5.5, 5.5]]]], dtype=torch.float64)
    assert torch.equal(A.project(x), means)
    assert torch.equal(A.lift(torch.tensor([[[[7.0, 11.0]]]], dtype=torch.float64)), means)
    lr = torch.tensor([[[[3.5, 5.5]]]], dtype=torch.float64)
    assert torch.equal(A.from_low_res(lr), torch.tensor([[[[7.0, 11.0]]]], dtype=torch.float64))


@pytest.mark.parametrize(("size", "s"), [((6, 9), 3), ((4, 8), 2), ((5, 5), 5)])
def test_against_a_dense_matrix(size, s):
    H, W = size
    M = dense_m(H, W, s)
    A = BlockAverage(s)
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    c = torch.randn(2, 3, H // s, W // s, dtype=torch.float64)
    measured = (x.reshape(6, H * W) @ M).reshape(2, 3, H // s, W // s)
    lifted = (c.reshape(6, -1) @ M.T).reshape(2, 3, H, W)
    projected = (x.reshape(6, H * W) @ M @ M.T).reshape(2, 3, H, W)
    assert torch.allclose(A.measure(x), measured, atol=1e-13)
    assert torch.allclose(A.lift(c), lifted, atol=1e-13)
    assert torch.allclose(A.project(x), projected, atol=1e-13)
    assert torch.allclose(M.T @ M, torch.eye(M.shape[1], dtype=torch.float64), atol=1e-14)


@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_low_res_is_avg_pool2d(s):
    x = torch.rand(3, 2, 12, 24, dtype=torch.float64)
    want = F.avg_pool2d(x, kernel_size=s, stride=s)
    assert torch.allclose(BlockAverage(s).low_res(x), want, atol=1e-14)
    assert torch.allclose(BlockAverage(s).measure(x), s * want, atol=1e-14)


def test_low_res_against_numpy_block_means():
    x = np.random.default_rng(1).random((2, 3, 6, 9))
    want = x.reshape(2, 3, 2, 3, 3, 3).mean(axis=(3, 5))
    got = BlockAverage(3).low_res(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_from_low_res_builds_the_measurement():
    A = BlockAverage(4)
    x = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    lr = F.avg_pool2d(x, 4)
    assert torch.allclose(A.from_low_res(lr), A.measure(x), atol=1e-14)
    # the prox with that measurement pulls every block mean towards lr
    v = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    p = A.prox_l2(v, A.from_low_res(lr), 1e12)
    assert torch.allclose(F.avg_pool2d(p, 4), lr, atol=1e-10)


def test_project_of_a_block_constant_image_is_itself():
    s = 3
    lr = torch.rand(2, 3, 2, 4, dtype=torch.float64)
    x = lr.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)  # [2, 3, 6, 12]
    assert torch.allclose(BlockAverage(s).project(x), x, atol=1e-14)


def test_project_of_an_image_with_zero_block_means_is_zero():
    pattern = torch.tensor([[1.0, -1.0], [-2.0, 2.0]], dtype=torch.float64)
    x = pattern.repeat(3, 4).expand(2, 3, 6, 8)  # every 2 x 2 block sums to 0
    assert torch.allclose(BlockAverage(2).project(x), torch.zeros_like(x), atol=1e-14)
    assert torch.allclose(BlockAverage(2).measure(x), torch.zeros(2, 3, 3, 4, dtype=x.dtype))


def test_factor_one_is_the_identity():
    x = torch.rand(3, 3, 7, 9, dtype=torch.float64)
    A = BlockAverage(1)
    for out in (A.measure(x), A.lift(x), A.project(x), A.low_res(x), A.from_low_res(x)):
        assert torch.equal(out, x)


def test_accepts_a_numpy_integer_factor():
    A = BlockAverage(np.int64(2))
    assert A.factor == 2 and type(A.factor) is int


def test_keeps_dtype_and_device(device):
    s = 2
    x64 = torch.rand(3, 3, 6, 10, dtype=torch.float64)
    c64 = torch.rand(3, 3, 3, 5, dtype=torch.float64)
    A = BlockAverage(s)
    x, c = x64.to(device=device, dtype=torch.float32), c64.to(device=device, dtype=torch.float32)
    for out, want in [
        (A.measure(x), s * F.avg_pool2d(x64, s)),
        (A.low_res(x), F.avg_pool2d(x64, s)),
        (A.project(x), F.interpolate(F.avg_pool2d(x64, s), scale_factor=s, mode="nearest")),
        (A.lift(c), F.interpolate(c64, scale_factor=s, mode="nearest") / s),
        (A.from_low_res(c), s * c64),
    ]:
        assert out.dtype == torch.float32 and out.device == x.device
        assert torch.allclose(out.cpu().double(), want, rtol=1e-6, atol=1e-6)
    p = A.prox_l2(x, A.measure(x), 0.5)
    assert p.dtype == torch.float32 and p.device == x.device


# ----- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factor", "error"),
    [
        (True, TypeError),
        (2.0, TypeError),
        ("2", TypeError),
        (None, TypeError),
        (0, ValueError),
        (-2, ValueError),
    ],
)
def test_rejects_a_bad_factor(factor, error):
    with pytest.raises(error, match="factor"):
        BlockAverage(factor)


@pytest.mark.parametrize(("size", "s"), [((7, 9), 2), ((6, 9), 2), ((8, 10), 4), ((9, 6), 4)])
def test_rejects_a_size_not_divisible_by_the_factor(size, s):
    A = BlockAverage(s)
    x = torch.rand(1, 1, *size, dtype=torch.float64)
    msg = rf"x has size {size[0]}x{size[1]}, which is not divisible by the factor {s}"
    for f in (A.measure, A.low_res, A.project):
        with pytest.raises(ValueError, match=msg):
            f(x)


def test_rejects_bad_images():
    A = BlockAverage(2)
    with pytest.raises(ValueError, match="x must have shape"):
        A.measure(torch.rand(4, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must have dtype"):
        A.low_res(torch.ones(1, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="c must have shape"):
        A.lift(torch.rand(2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"c must be a torch\.Tensor"):
        A.lift(np.ones((1, 1, 2, 2)))
    with pytest.raises(TypeError, match="lr must have dtype"):
        A.from_low_res(torch.ones(1, 1, 2, 2, dtype=torch.float16))

"""Blur and the bound data term L2, against independent oracles."""

import numpy as np
import pytest
import scipy.ndimage
import torch
from pnpfast_test_utils import assert_close, fast_backends

import pnpfast
from pnpfast.operators import Blur
from pnpfast.ops import poisoned_outputs


def random_kernel(*shape, dtype=torch.float64):
    k = torch.rand(*shape, dtype=dtype)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def dense_matrix(A: Blur, C: int, H: int, W: int, batch: int = 1) -> torch.Tensor:
    """The operator as a dense [B, CHW, CHW] matrix, by applying it to every basis image."""
    n = C * H * W
    basis = torch.eye(n, dtype=torch.float64).view(n, 1, C, H, W).expand(n, batch, C, H, W)
    # image b of every batch is a basis vector, so column j of matrix b is A applied to e_j
    cols = torch.stack([A(basis[j].contiguous()) for j in range(n)])  # [n, batch, C, H, W]
    return cols.reshape(n, batch, n).permute(1, 2, 0)


@pytest.mark.parametrize("kshape", [(5, 3), (4, 6), (1, 1)], ids=["5x3", "4x6", "1x1"])
def test_forward_is_circular_convolution(kshape):
    """Against scipy.ndimage.convolve with wrap-around borders (odd sizes: same centre)."""
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64)
    k = random_kernel(*kshape)
    out = Blur(k)(x)
    for b in range(2):
        for c in range(3):
            ref = scipy.ndimage.convolve(x[b, c].numpy(), k.numpy(), mode="wrap")
            if kshape[0] % 2 and kshape[1] % 2:
                np.testing.assert_allclose(out[b, c].numpy(), ref, rtol=1e-10, atol=1e-12)
            else:  # even sizes: same values up to the centring convention (a circular shift)
                assert any(
                    np.allclose(out[b, c].numpy(), np.roll(ref, (dy, dx), axis=(0, 1)), atol=1e-12)
                    for dy in (-1, 0, 1)
                    for dx in (-1, 0, 1)
                )


@pytest.mark.parametrize("per_image", [False, True], ids=["shared", "per_image"])
def test_adjoint_dot_product(per_image):
    B = 3
    A = Blur(random_kernel(B, 7, 5) if per_image else random_kernel(7, 5))
    x = torch.randn(B, 2, 19, 16, dtype=torch.float64)
    y = torch.randn(B, 2, 19, 16, dtype=torch.float64)
    lhs = (A(x) * y).sum()
    rhs = (x * A.adjoint(y)).sum()
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_per_image_kernels_blur_each_image_with_its_own():
    k = random_kernel(2, 5, 5)
    x = torch.rand(2, 3, 12, 14, dtype=torch.float64)
    out = Blur(k)(x)
    for b in range(2):
        torch.testing.assert_close(out[b : b + 1], Blur(k[b])(x[b : b + 1]))


@pytest.mark.parametrize("per_image", [False, True], ids=["shared", "per_image"])
def test_prox_matches_a_dense_solve(per_image):
    """(A^T A + I / gamma) x = A^T y + v / gamma solved densely in float64 on tiny images."""
    B, C, H, W = 2, 2, 5, 6
    A = Blur(random_kernel(B, 3, 3) if per_image else random_kernel(3, 3))
    v = torch.randn(B, C, H, W, dtype=torch.float64)
    y = torch.randn(B, C, H, W, dtype=torch.float64)
    gamma = torch.tensor([0.3, 2.5], dtype=torch.float64)
    out = A.prox_l2(v, y, gamma)
    M = dense_matrix(A, C, H, W, batch=B)
    for b in range(B):
        n = C * H * W
        lhs = M[b].T @ M[b] + torch.eye(n, dtype=torch.float64) / gamma[b]
        rhs = M[b].T @ y[b].reshape(-1) + v[b].reshape(-1) / gamma[b]
        expected = torch.linalg.solve(lhs, rhs).view(C, H, W)
        torch.testing.assert_close(out[b], expected, rtol=1e-10, atol=1e-10)


def test_prox_objective_is_stationary_at_the_output():
    A = Blur(random_kernel(9, 9))
    v = torch.rand(2, 3, 32, 27, dtype=torch.float64)
    y = torch.rand(2, 3, 32, 27, dtype=torch.float64)
    gamma = torch.tensor([0.1, 4.0], dtype=torch.float64)
    x = A.prox_l2(v, y, gamma).requires_grad_(True)
    objective = (
        0.5 * (A(x) - y).pow(2).sum() + ((x - v).pow(2).flatten(1).sum(1) / (2 * gamma)).sum()
    )
    (grad,) = torch.autograd.grad(objective, x)
    assert grad.abs().max() < 1e-10


def test_generic_cg_prox_agrees_with_the_closed_form():
    A = Blur(random_kernel(5, 5))
    v = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    cg = A.prox_l2_cg(v, y, 0.7, max_iter=200, tol=1e-12)
    torch.testing.assert_close(cg, A.prox_l2(v, y, 0.7), rtol=1e-8, atol=1e-9)


def test_gradient_and_gradient_step_match_autograd():
    A = Blur(random_kernel(2, 5, 7))
    y = torch.rand(2, 3, 20, 18, dtype=torch.float64)
    x = torch.rand(2, 3, 20, 18, dtype=torch.float64, requires_grad=True)
    data = pnpfast.L2(A, y)
    (expected,) = torch.autograd.grad(data.value(x).sum(), x)
    x = x.detach()
    torch.testing.assert_close(data.grad(x), expected, rtol=1e-10, atol=1e-12)
    tau = torch.tensor([0.5, 1.5], dtype=torch.float64)
    torch.testing.assert_close(data.grad_step(x, tau), x - tau.view(-1, 1, 1, 1) * expected)
    torch.testing.assert_close(data.value(x), 0.5 * (A(x) - y).pow(2).flatten(1).sum(1))


def test_lipschitz_is_the_largest_eigenvalue():
    A = Blur(random_kernel(3, 3))
    M = dense_matrix(A, 1, 6, 7)[0]
    y = torch.zeros(1, 1, 6, 7, dtype=torch.float64)
    expected = torch.linalg.eigvalsh(M.T @ M).max()
    torch.testing.assert_close(pnpfast.L2(A, y).lipschitz()[0], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_bound_prox_fast_paths_match_reference(device, dtype):
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend on {device}")
    A = Blur(random_kernel(3, 7, 5, dtype=dtype))
    y = torch.rand(3, 3, 23, 17, dtype=dtype, device=device)
    v = torch.rand(3, 3, 23, 17, dtype=dtype, device=device)
    gamma = torch.tensor([0.2, 1.0, 7.0], dtype=dtype, device=device)
    data = pnpfast.L2(A, y)
    ref = data.prox(v, gamma, backend="reference")
    ref_step = data.grad_step(v, gamma, backend="reference")
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-11, "atol": 1e-12}
    for backend in backends:
        with poisoned_outputs():
            assert_close(data.prox(v, gamma, backend=backend), ref, **tol, what=f"prox {backend}")
            assert_close(
                data.grad_step(v, gamma, backend=backend), ref_step, **tol, what=f"step {backend}"
            )


def good_args():
    A = Blur(random_kernel(5, 5, dtype=torch.float32))
    v = torch.rand(2, 3, 16, 16)
    y = torch.rand(2, 3, 16, 16)
    return A, v, y


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda A, v, y: (A, v, y.masked_fill(y > 0.9, float("nan")), 1.0),
            ValueError,
            "y contains NaN",
        ),
        (
            lambda A, v, y: (A, v.masked_fill(v > 0.9, float("inf")), y, 1.0),
            ValueError,
            "v contains NaN or Inf",
        ),
        (lambda A, v, y: (A, v[0], y, 1.0), ValueError, "v must have shape"),
        (lambda A, v, y: (A, v[:1], y, 1.0), ValueError, "v has shape"),
        (
            lambda A, v, y: (Blur(torch.ones(20, 20)), v, y, 1.0),
            ValueError,
            "kernel of size 20x20 is larger",
        ),
        (lambda A, v, y: (A, v, y, 0.0), ValueError, "gamma must be > 0"),
        (lambda A, v, y: (A, v, y, torch.tensor([1.0, -1.0])), ValueError, "gamma must be > 0"),
        (
            lambda A, v, y: (A, v, y, torch.ones(3)),
            ValueError,
            "gamma must be a float or a tensor of length 2",
        ),
        (lambda A, v, y: (A, v.double(), y, 1.0), TypeError, "v has dtype"),
        (lambda A, v, y: (A, v.to(torch.int32), y, 1.0), TypeError, "v must have dtype"),
        (
            lambda A, v, y: (Blur(torch.ones(3, 3, 3) / 9), v, y, 1.0),
            ValueError,
            "kernel holds 3 kernels",
        ),
    ],
    ids=[
        "nan_y",
        "inf_v",
        "rank",
        "batch",
        "kernel_too_big",
        "gamma_zero",
        "gamma_negative",
        "gamma_len",
        "dtype_mix",
        "int",
        "kernel_batch",
    ],
)
def test_bad_input_raises_naming_the_argument(make, error, match):
    A, v, y, gamma = make(*good_args())
    with pytest.raises(error, match=match):
        A.prox_l2(v, y, gamma)


def test_bad_kernels():
    with pytest.raises(ValueError, match="kernel must have shape"):
        Blur(torch.ones(5))
    with pytest.raises(ValueError, match="kernel contains NaN"):
        Blur(torch.full((3, 3), float("nan")))
    with pytest.raises(TypeError, match="kernel must be floating"):
        Blur(torch.ones(3, 3, dtype=torch.int64))

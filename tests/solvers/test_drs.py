"""method="drs": plain PnP Douglas-Rachford splitting (pnpfast/solvers/splitting.py).

The fixed point with a linear symmetric denoiser against a dense float64 solve written here,
the first iterations against a hand-written loop in deepinv's order (data prox first), per-image
beta, gamma and sigma_d, the checks of beta, and the fast backends against the reference.
"""

import pytest
import torch
from pnpfast_test_utils import fast_backends

import pnpfast
from pnpfast.denoisers import TotalVariation
from pnpfast.operators import Blur, Inpainting

F64 = torch.float64
H, W = 4, 5
N = H * W


def laplacian() -> torch.Tensor:
    """The [N, N] Laplacian of the periodic H x W grid (symmetric, positive semidefinite)."""
    L = torch.zeros(N, N, dtype=F64)
    for i in range(H):
        for j in range(W):
            p = i * W + j
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                q = ((i + di) % H) * W + (j + dj) % W
                L[p, p] += 1
                L[p, q] -= 1
    return L


# D(x) = W x with W = (I + 0.7 L)^-1: symmetric, eigenvalues in (0, 1], the prox of a convex
# quadratic, so DRS converges for every gamma > 0 and beta in (0, 2)
WMAT = torch.linalg.inv(torch.eye(N, dtype=F64) + 0.7 * laplacian())


class Linear:
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ WMAT).view_as(x)


def blur_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(2, 3, 3, generator=g, dtype=F64) + 0.1
    A = Blur(k / k.sum((1, 2), keepdim=True))
    x = torch.rand(2, 1, H, W, generator=g, dtype=F64)
    y = A(x) + 0.05 * torch.randn(2, 1, H, W, generator=g, dtype=F64)
    return A, y


def dense(A, b: int) -> torch.Tensor:
    """The [N, N] matrix of image b of the operator (its columns A e_j, one image plane)."""
    basis = torch.eye(N, dtype=F64).view(N, 1, H, W)
    cols = [A(torch.zeros(2, 1, H, W, dtype=F64).index_copy(0, torch.tensor([b]), e[None]))[b]
            for e in basis]  # fmt: skip
    return torch.stack([c.flatten() for c in cols], dim=1)


@pytest.mark.parametrize("make", ["blur", "inpainting"])
def test_fixed_point_is_the_dense_linear_solution(make):
    """At a fixed point x = u = prox_{gamma f}(z), so z = u + gamma A^T (A u - y) and
    u = W (2 u - z) = W (u - gamma A^T (A u - y)):  (I - W + gamma W A^T A) u = gamma W A^T y.
    Per-image gamma and beta; the fixed point does not depend on beta."""
    if make == "blur":
        A, y = blur_problem()
    else:
        mask = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(4)) > 0.4
        A = Inpainting(mask.to(F64))
        y = A(torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(5), dtype=F64))
    gamma = torch.tensor([0.6, 2.0], dtype=F64)
    beta = torch.tensor([0.7, 1.5], dtype=F64)
    res = pnpfast.solve(
        y, A, Linear(), "drs", sigma=0.05, gamma=gamma, beta=beta, max_iter=5000, tol=1e-13
    )
    assert res.converged.all(), res.iterations
    for b in range(2):
        M = dense(A, b)
        g = float(gamma[b])
        lhs = torch.eye(N, dtype=F64) - WMAT + g * WMAT @ M.T @ M
        expected = torch.linalg.solve(lhs, g * WMAT @ M.T @ y[b].flatten())
        torch.testing.assert_close(res.x[b].flatten(), expected, rtol=0, atol=1e-9)


def test_iterations_follow_the_data_prox_first_order():
    """Three iterations against the loop written out (deepinv's DRS with g_first=False):
    u = prox_{gamma f}(z), x = D(2u - z, sigma_d), z <- z + beta (x - u), z_0 = A^T y, the
    output x; the denoiser sees sigma_d per image, and the prox is the dense solve."""
    A, y = blur_problem(1)
    gamma = torch.tensor([0.5, 3.0], dtype=F64)
    beta = torch.tensor([1.0, 0.6], dtype=F64)
    sigma_d = torch.tensor([0.1, 0.2], dtype=F64)
    seen = []

    def D(x, s):
        seen.append(s.clone())
        return 0.8 * x + 0.1 * s.view(-1, 1, 1, 1)

    res = pnpfast.solve(
        y, A, D, "drs", sigma=0.05, gamma=gamma, beta=beta, sigma_d=sigma_d, max_iter=3, tol=0
    )
    for s in seen:
        torch.testing.assert_close(s, sigma_d, rtol=0, atol=0)
    for b in range(2):
        M, g = dense(A, b), float(gamma[b])
        yb = y[b].flatten()
        z = M.T @ yb
        for _ in range(3):
            u = torch.linalg.solve(torch.eye(N, dtype=F64) + g * M.T @ M, z + g * M.T @ yb)
            x = 0.8 * (2 * u - z) + 0.1 * float(sigma_d[b])
            z = z + float(beta[b]) * (x - u)
        torch.testing.assert_close(res.x[b].flatten(), x, rtol=0, atol=1e-12)


def test_default_gamma_is_admms():
    """gamma defaults to sigma_d^2 / (lam sigma^2) with sigma_d = 5 max(sigma, 0.255/255):
    with beta = 1 the same runs as giving those numbers."""
    A, y = blur_problem(2)
    sigma = torch.tensor([0.02, 0.05], dtype=F64)
    got = pnpfast.solve(y, A, Linear(), "drs", sigma=sigma, lam=0.5, max_iter=4, tol=0).x
    s_d = 5 * sigma
    want = pnpfast.solve(
        y, A, Linear(), "drs", sigma=sigma, sigma_d=s_d, gamma=s_d**2 / (0.5 * sigma**2),
        max_iter=4, tol=0,
    ).x  # fmt: skip
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "beta, match",
    [
        (2.0, r"^beta must be in \(0, 2\), the relaxation range of DRS, got 2.0"),
        (torch.tensor([1.0, 2.5]), r"^beta must be in \(0, 2\), the relaxation range of DRS"),
        (0.0, r"^beta must be > 0, got 0.0"),
    ],
)
def test_beta_out_of_range_is_a_clear_error(beta, match):
    A, y = blur_problem()
    with pytest.raises(ValueError, match=match):
        pnpfast.solve(y, A, Linear(), "drs", sigma=0.05, beta=beta, max_iter=2)


def test_fast_backend_run_matches_reference_run(monkeypatch):
    """The fused z update (pnp_update with coef (1, -beta, 0, beta)) on the fast backends."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backends = fast_backends(device)
    if not backends:
        pytest.skip("no fast backend here")
    g = torch.Generator().manual_seed(3)
    k = torch.rand(2, 5, 5, generator=g) + 0.1
    A = Blur((k / k.sum((1, 2), keepdim=True)).to(device))
    y = torch.rand(2, 3, 17, 23, generator=g).to(device)
    D = TotalVariation(iterations=10)
    kwargs = {"sigma": 0.02, "beta": torch.tensor([0.8, 1.6]), "max_iter": 6, "tol": 0.0}
    monkeypatch.setenv("PNPFAST_BACKEND", "reference")
    ref = pnpfast.solve(y, A, D, "drs", **kwargs)
    monkeypatch.delenv("PNPFAST_BACKEND")
    for backend in backends:
        fast = pnpfast.solve(y, A, D, "drs", backend=backend, **kwargs)
        torch.testing.assert_close(fast.x, ref.x, rtol=1e-4, atol=1e-5)

"""Jacobian diagnostics against exact answers: linear maps whose singular values are known in
closed form (a blur: max |K^|; a diagonal scaling; dense matrices through their SVD), the batch
against per-image runs, the symmetric mode against the general one, the asymmetry estimator on
symmetric and non-symmetric maps, the differentiable mode's gradient against the SVD's, and
Lanczos against dense eigendecompositions."""

import pytest
import torch
from pnpfast_test_utils import assert_close, fast_backends

from pnpfast.denoisers import GradientStep
from pnpfast.denoisers.drunet import DRUNet
from pnpfast.denoisers.gaussian import GaussianSmoothing
from pnpfast.diagnostics import (
    jacobian_asymmetry,
    lanczos_edges,
    residual_lipschitz,
    spectral_norm,
)
from pnpfast.operators import Blur

F64 = torch.float64


def small_net(seed=0, activation="elu"):
    torch.manual_seed(seed)
    return DRUNet(channels=1, widths=(8, 16), blocks=1, activation=activation).double().eval()


def matrix_map(M):
    """z [B, n] -> M_b z_b, and its spectral norms from the SVD."""
    return (lambda z: torch.einsum("bij,bj->bi", M, z)), torch.linalg.matrix_norm(M, ord=2)


def test_blur_gives_the_largest_kernel_frequency():
    g = torch.Generator().manual_seed(0)
    A = Blur(torch.rand(3, 5, 5, generator=g, dtype=F64))  # a different kernel per image
    x = torch.rand(3, 2, 16, 20, generator=g, dtype=F64)
    r = spectral_norm(A.forward, x, iters=1000, tol=1e-13, compact=False)
    exact = A.spectrum(16, 20, x.device, F64).abs().flatten(1).max(1).values
    assert_close(r.norm, exact, rtol=1e-9, atol=0, what="blur norm")
    assert r.converged.all() and (r.iterations < 1000).all()
    # the top singular vector: ||A v|| = norm, ||v|| = 1
    assert_close(r.vector.flatten(1).norm(dim=1), torch.ones(3, dtype=F64), rtol=1e-12, atol=0)
    assert_close(A.forward(r.vector).flatten(1).norm(dim=1), exact, rtol=1e-9, atol=0)


def test_diagonal_scaling_per_image():
    g = torch.Generator().manual_seed(1)
    d = torch.randn(4, 1, 6, 7, generator=g, dtype=F64)
    d[2] *= 10  # one image with a much larger norm: its own answer, not the batch's
    x = torch.zeros(4, 1, 6, 7, dtype=F64)
    r = spectral_norm(lambda z: d * z, x, iters=3000, tol=1e-14, compact=False)
    assert_close(r.norm, d.abs().flatten(1).max(1).values, rtol=1e-9, atol=0, what="diag")


def test_non_symmetric_and_non_square_matrices():
    g = torch.Generator().manual_seed(2)
    for shape in [(3, 6, 6), (3, 4, 9)]:
        f, exact = matrix_map(torch.randn(shape, generator=g, dtype=F64))
        x = torch.zeros(shape[0], shape[2], dtype=F64)
        r = spectral_norm(f, x, iters=5000, tol=1e-15, compact=False)
        assert_close(r.norm, exact, rtol=1e-8, atol=0, what=f"matrix {shape}")


def test_symmetric_mode_agrees_with_general_mode():
    """On symmetric Jacobians (a PSD matrix; Gaussian smoothing) both modes give the norm."""
    g = torch.Generator().manual_seed(3)
    R = torch.randn(3, 8, 8, generator=g, dtype=F64)
    f, exact = matrix_map(R @ R.transpose(1, 2))
    x = torch.zeros(3, 8, dtype=F64)
    general = spectral_norm(f, x, iters=5000, tol=1e-15, compact=False)
    sym = spectral_norm(f, x, iters=5000, tol=1e-15, symmetric=True, compact=False)
    assert_close(general.norm, exact, rtol=1e-8, atol=0, what="general")
    assert_close(sym.norm, exact, rtol=1e-8, atol=0, what="symmetric")
    D = GaussianSmoothing()
    x = torch.rand(2, 1, 12, 10, generator=g, dtype=F64)
    sigma = torch.tensor([15 / 255, 30 / 255], dtype=F64)
    a = spectral_norm(D, x, sigma, iters=2000, tol=1e-14)
    b = spectral_norm(D, x, sigma, iters=2000, tol=1e-14, symmetric=True)
    assert_close(a.norm, b.norm, rtol=1e-9, atol=0, what="gaussian")
    assert_close(a.norm, torch.ones(2, dtype=F64), rtol=1e-9, atol=0, what="T(0) = 1")


def test_residual_lipschitz_of_a_linear_denoiser():
    """I - W for Gaussian smoothing W: the largest 1 - T over the frequencies."""
    D = GaussianSmoothing()
    x = torch.rand(2, 1, 12, 10, dtype=F64)
    sigma = torch.tensor([5 / 255, 10 / 255], dtype=F64)
    r = residual_lipschitz(D, x, sigma, iters=2000, tol=1e-13, symmetric=True)
    exact = (1 - D.transfer(12, 10, sigma, x)).abs().flatten(1).max(1).values
    assert_close(r.norm, exact, rtol=1e-9, atol=0, what="I - W")


def test_batch_equals_per_image_runs():
    """A network's per-image norms in one batch equal one-image runs (compaction included)."""
    net = small_net()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 1, 16, 16, generator=g, dtype=F64)
    sigma = torch.tensor([0.02, 0.1, 0.2], dtype=F64)
    batch = spectral_norm(net, x, sigma, iters=1000, tol=1e-9, check_every=4)
    for b in range(3):
        alone = spectral_norm(net, x[b : b + 1], sigma[b : b + 1], iters=1000, tol=1e-9)
        assert_close(batch.norm[b : b + 1], alone.norm, rtol=1e-4, atol=0, what=f"image {b}")


def test_converged_images_leave_the_batch():
    """Images with fast and slow convergence: after compaction D sees only the slow ones, and
    the answers and step counts are those of the full-batch run."""
    g = torch.Generator().manual_seed(5)
    d = torch.rand(4, 30, generator=g, dtype=F64) + 0.5
    d[:2, 0] = 10.0  # a large spectral gap: images 0 and 1 converge in a few steps
    seen = []

    def D(z, index):  # per-image data reaches D through its sigma argument, which is subset
        seen.append(z.shape[0])
        return d[index.long()] * z

    x = torch.zeros(4, 30, dtype=F64)
    index = torch.arange(4, dtype=F64)
    on = spectral_norm(D, x, index, iters=3000, tol=1e-13, check_every=4)
    assert seen[0] == 4 and seen[-1] <= 2
    seen.clear()
    off = spectral_norm(D, x, index, iters=3000, tol=1e-13, check_every=4, compact=False)
    assert set(seen) == {4}
    exact = d.max(1).values
    assert_close(on.norm, exact, rtol=1e-9, atol=0, what="compacted")
    assert_close(off.norm, exact, rtol=1e-9, atol=0, what="full batch")
    assert torch.equal(on.iterations, off.iterations)
    assert (on.iterations[:2] < on.iterations[2:].min()).all()


def test_asymmetry_is_zero_for_symmetric_maps_only():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 1, 12, 10, generator=g, dtype=F64)
    sym = jacobian_asymmetry(GaussianSmoothing(), x, 0.1)
    assert (sym.abs() < 1e-12).all()
    # a blur by a non-symmetric kernel is not self-adjoint
    k = torch.zeros(3, 3, dtype=F64)
    k[1, 1], k[1, 2] = 0.5, 0.5
    assert (jacobian_asymmetry(Blur(k).forward, x) > 0.1).all()
    R = torch.randn(3, 8, 8, generator=g, dtype=F64)
    f_sym, _ = matrix_map(R + R.transpose(1, 2))
    f_non, _ = matrix_map(R)
    z = torch.zeros(3, 8, dtype=F64)
    assert (jacobian_asymmetry(f_sym, z) < 1e-12).all()
    assert (jacobian_asymmetry(f_non, z) > 0.1).all()


def test_differentiable_norm_has_the_svd_gradient():
    """d ||M||_2 / dM = u1 v1^T (top singular vectors), through the network-parameter path."""
    g = torch.Generator().manual_seed(7)
    M = torch.nn.Parameter(torch.randn(2, 5, 5, generator=g, dtype=F64))
    x = torch.zeros(2, 5, dtype=F64)
    r = spectral_norm(
        lambda z: torch.einsum("bij,bj->bi", M, z),
        x,
        iters=5000,
        tol=1e-15,
        differentiable=True,
        compact=False,
    )
    assert r.norm.requires_grad
    r.norm.sum().backward()
    U, S, Vh = torch.linalg.svd(M.detach())
    expected = U[:, :, :1] @ Vh[:, :1, :]
    assert_close(r.norm.detach(), S[:, 0], rtol=1e-9, atol=0, what="norm")
    assert_close(M.grad, expected, rtol=1e-6, atol=1e-7, what="gradient")


def test_differentiable_network_norm():
    net = small_net()
    x = torch.rand(2, 1, 16, 16, dtype=F64)
    plain = spectral_norm(net, x, 0.1, iters=200, tol=1e-9)
    r = spectral_norm(net, x, 0.1, iters=200, tol=1e-9, differentiable=True)
    assert_close(r.norm.detach(), plain.norm, rtol=1e-4, atol=0, what="same estimate")
    r.norm.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(gr is not None for gr in grads) and any(gr.abs().sum() > 0 for gr in grads)
    assert not plain.norm.requires_grad


def test_fast_backends_run_the_same_iteration():
    backends = fast_backends("cpu")
    if not backends:
        pytest.skip("no fast backend can run on the CPU here (TRITON_INTERPRET unset)")
    net = small_net().float()
    x = torch.rand(3, 1, 16, 16)
    ref = spectral_norm(net, x, 0.1, iters=20, tol=1e-4, backend="reference")
    for backend in backends:
        r = spectral_norm(net, x, 0.1, iters=20, tol=1e-4, backend=backend)
        assert_close(r.norm, ref.norm, rtol=1e-4, atol=0, what=backend)
        assert torch.equal(r.iterations, ref.iterations), backend


def test_errors_name_the_argument():
    net = small_net()
    x = torch.rand(2, 1, 8, 8, dtype=F64)
    with pytest.raises(TypeError, match="x must be a tensor"):
        spectral_norm(net, x.numpy(), 0.1)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        spectral_norm(net, x.half(), 0.1)
    with pytest.raises(ValueError, match="x has NaN or Inf"):
        spectral_norm(net, x * float("nan"), 0.1)
    with pytest.raises(
        ValueError, match=r"spectral_norm: iters must be an int in \[1, 100000\], not 0"
    ):
        spectral_norm(net, x, 0.1, iters=0)
    with pytest.raises(
        ValueError, match=r"spectral_norm: tol must be a finite number >= 0, not -1"
    ):
        spectral_norm(net, x, 0.1, tol=-1)
    with pytest.raises(ValueError, match=r"sigma must be a float or have shape \(2,\)"):
        spectral_norm(net, x, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="to an output of shape"):
        spectral_norm(lambda z: z[:, :, :4], x, symmetric=True)
    with pytest.raises(ValueError, match=r"probes must be an int in \[1, 10000\], not 0"):
        jacobian_asymmetry(net, x, 0.1, probes=0)


def test_warm_start_from_an_earlier_vector():
    """v0 = the converged vector of an earlier call: the estimate is there at once."""
    g = torch.Generator().manual_seed(8)
    A = Blur(torch.rand(5, 5, generator=g, dtype=F64))
    x = torch.rand(2, 1, 16, 16, generator=g, dtype=F64)
    first = spectral_norm(A.forward, x, iters=2000, tol=1e-13)
    assert first.converged.all() and (first.iterations > 10).all()
    again = spectral_norm(A.forward, x, iters=2000, tol=1e-13, v0=first.vector)
    assert (again.iterations <= 3).all() and again.converged.all()
    assert_close(again.norm, first.norm, rtol=1e-12, atol=0, what="warm start")
    with pytest.raises(ValueError, match="v0 must be a tensor of x's shape"):
        spectral_norm(A.forward, x, v0=first.vector[:1])
    with pytest.raises(ValueError, match="v0 has NaN or Inf"):
        spectral_norm(A.forward, x, v0=first.vector * float("nan"))


def symmetric_batch(eigenvalues):
    """z [B, n] -> S_b z_b with S_b = U_b diag(eigenvalues_b) U_b^T, U_b random orthogonal."""
    g = torch.Generator().manual_seed(9)
    B, n = eigenvalues.shape
    U = torch.linalg.qr(torch.randn(B, n, n, generator=g, dtype=F64))[0]
    S = U @ torch.diag_embed(eigenvalues) @ U.transpose(1, 2)
    return lambda z: torch.einsum("bij,bj->bi", S, z)


def test_lanczos_full_krylov_space_is_exact():
    """steps = n: the Ritz values are the eigenvalues; one image indefinite with |min| > max."""
    g = torch.Generator().manual_seed(10)
    lam = torch.rand(3, 12, generator=g, dtype=F64) * 2 - 0.5
    lam[1, 0] = -3.0  # the norm is |smallest| here
    f = symmetric_batch(lam)
    r = lanczos_edges(f, torch.zeros(3, 12, dtype=F64), steps=12)
    assert_close(r.smallest, lam.min(1).values, rtol=1e-10, atol=1e-12, what="smallest")
    assert_close(r.largest, lam.max(1).values, rtol=1e-10, atol=1e-12, what="largest")
    assert_close(r.norm, lam.abs().max(1).values, rtol=1e-10, atol=1e-12, what="norm")
    assert r.norm[1] == pytest.approx(3.0, rel=1e-10)
    assert (r.steps == 12).all()


def test_lanczos_stops_on_an_invariant_krylov_space():
    """Three distinct eigenvalues: the Krylov space has dimension 3 and the answer is exact."""
    lam = torch.tensor([[0.2] * 10 + [0.7] * 10 + [1.5] * 10, [-1.0] * 15 + [0.5] * 15], dtype=F64)
    f = symmetric_batch(lam)
    r = lanczos_edges(f, torch.zeros(2, 30, dtype=F64), steps=20)
    assert r.steps.tolist() == [3, 2]
    assert_close(r.largest, torch.tensor([1.5, 0.5], dtype=F64), rtol=1e-10, atol=0, what="max")
    assert_close(r.smallest, torch.tensor([0.2, -1.0], dtype=F64), rtol=1e-10, atol=0, what="min")


def test_lanczos_beats_power_iteration_on_a_clustered_top():
    """||Hess g|| of a proximal denoiser at high noise: many eigenvalues just under the top.
    30 Lanczos steps land on it; 30 power steps (the same number of products) stay well under."""
    g = torch.Generator().manual_seed(11)
    lam = torch.cat([torch.ones(2, 1), 0.9 + 0.099 * torch.rand(2, 399, generator=g)], 1).double()
    lam[1] *= 0.5
    f = symmetric_batch(lam)
    x = torch.zeros(2, 400, dtype=F64)
    lz = lanczos_edges(f, x, steps=30)
    pw = spectral_norm(f, x, iters=30, tol=0, symmetric=True, compact=False)
    exact = torch.tensor([1.0, 0.5], dtype=F64)
    lz_err, pw_err = (exact - lz.norm) / exact, (exact - pw.norm) / exact
    assert (lz_err >= -1e-12).all() and (pw_err >= -1e-12).all()  # both from inside
    assert (lz_err < 1e-3).all(), lz.norm
    assert (pw_err > 10 * lz_err).all() and (pw_err > 2e-3).all(), (pw.norm, lz.norm)


def test_lanczos_on_a_gradient_step_residual_matches_the_dense_hessian():
    """I - D = grad g for D = GradientStep(N): the extremes of the dense Hessian of g, per image
    with per-image sigma, the batch as one call equal to one-image calls."""
    torch.manual_seed(12)
    net = DRUNet(channels=1, widths=(4, 8), blocks=1, activation="elu").double().eval()
    D = GradientStep(net)
    x = torch.rand(2, 1, 4, 4, dtype=F64)
    sigma = torch.tensor([0.05, 0.2], dtype=F64)
    r = residual_lipschitz(D, x, sigma, method="lanczos", steps=16)
    for b in range(2):

        def resid(z, b=b):
            z = z.view(1, 1, 4, 4)
            return (z - D(z, sigma[b : b + 1])).flatten()

        H = torch.autograd.functional.jacobian(resid, x[b].flatten())
        assert_close(H, H.T, rtol=1e-8, atol=1e-10, what="symmetric Hessian")
        eig = torch.linalg.eigvalsh(H)
        assert_close(r.largest[b], eig[-1], rtol=1e-8, atol=1e-10, what=f"largest {b}")
        assert_close(r.smallest[b], eig[0], rtol=1e-8, atol=1e-10, what=f"smallest {b}")
        alone = residual_lipschitz(D, x[b : b + 1], sigma[b : b + 1], method="lanczos", steps=16)
        assert_close(alone.norm, r.norm[b : b + 1], rtol=1e-8, atol=1e-10, what=f"alone {b}")


def test_differentiable_lanczos_has_the_eigenvalue_gradient():
    """d |lambda_max(S)| / dS = v v^T for symmetric S with top eigenvector v (a simple top)."""
    g = torch.Generator().manual_seed(13)
    R = torch.randn(2, 6, 6, generator=g, dtype=F64)
    P = torch.nn.Parameter(R + R.transpose(1, 2))
    x = torch.zeros(2, 6, dtype=F64)
    r = lanczos_edges(lambda z: torch.einsum("bij,bj->bi", P, z), x, steps=6, differentiable=True)
    assert r.norm.requires_grad and not r.largest.requires_grad
    r.norm.sum().backward()
    lam, U = torch.linalg.eigh(P.detach())
    top = lam.abs().argmax(1)
    v = U[torch.arange(2), :, top]  # [2, 6]
    assert_close(r.norm.detach(), lam.abs().amax(1), rtol=1e-10, atol=0, what="norm")
    assert_close(
        P.grad,
        torch.sign(lam[torch.arange(2), top]).view(2, 1, 1) * v[:, :, None] * v[:, None, :],
        rtol=1e-8,
        atol=1e-10,
        what="gradient",
    )
    assert_close(
        r.vector.flatten(1).norm(dim=1),
        torch.ones(2, dtype=F64),
        rtol=1e-10,
        atol=0,
        what="unit Ritz vector",
    )


def test_lanczos_errors_name_the_argument():
    net = small_net()
    x = torch.rand(2, 1, 8, 8, dtype=F64)
    with pytest.raises(
        ValueError, match=r"lanczos_edges: steps must be an int in \[1, 1000\], not 0"
    ):
        lanczos_edges(net, x, 0.1, steps=0)
    with pytest.raises(ValueError, match="lanczos_edges: x has NaN or Inf"):
        lanczos_edges(net, x * float("inf"), 0.1)
    with pytest.raises(ValueError, match="method must be 'power' or 'lanczos'"):
        residual_lipschitz(net, x, 0.1, method="svd")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("symmetric", [False, True])
def test_converged_means_within_the_bound_on_gaussian_smoothing(dtype, symmetric):
    """Issue 17: a relative change of 1e-3 reported converged=True at 0.984 where the norm is 1
    (Gaussian smoothing, 16x16: the DC mode, T(0) = 1, many frequencies just under it). With
    the defaults, the norm lies within error_bound of the estimate, and converged says that
    bound is within tol."""
    D = GaussianSmoothing()
    g = torch.Generator().manual_seed(14)
    x = torch.rand(5, 1, 16, 16, generator=g, dtype=F64).to(dtype)
    sigma = torch.tensor([2, 5, 15, 25, 50], dtype=dtype) / 255  # 2/255: stopped at 0.98, step 2
    r = spectral_norm(D, x, sigma, symmetric=symmetric)
    T = D.transfer(16, 16, sigma.double(), x.double()).abs().flatten(1)  # the singular values
    exact = T.max(1).values
    assert_close(exact, torch.ones(5, dtype=F64), rtol=1e-12, atol=0, what="T(0) = 1")
    slack = 1e-6 if dtype == torch.float32 else 1e-12  # the bound's own rounding
    est, bound = r.norm.double(), r.error_bound.double()
    # always: a singular value within the bound, the estimate under the top
    dist = (T - est.view(-1, 1)).abs().min(1).values
    assert (dist <= bound + slack).all(), (r.norm, r.error_bound)
    assert (est <= exact + slack).all()
    assert (r.converged == (r.error_bound <= 1e-3 * r.norm)).all()
    # here, converged also means within the bound (and tol) of the top: never 0.984 again
    err = (est - exact).abs()
    assert r.converged.any() and not r.converged.all()  # low noise: the top is clustered
    assert (err[r.converged] <= bound[r.converged] + slack).all(), (r.norm, r.converged)
    assert (err[r.converged] <= 1e-3 + slack).all()


def test_bound_holds_on_clustered_dense_spectra():
    """Symmetric PSD matrices with a clustered top and dense non-symmetric matrices: an
    eigenvalue (singular value) of the matrix lies within error_bound of every estimate, the
    estimate is under the top, and converged images are within tol of a singular value."""
    g = torch.Generator().manual_seed(15)
    lam = torch.rand(3, 40, generator=g, dtype=F64) * 0.5
    lam[0, :5] = torch.tensor([1.0, 0.999, 0.998, 0.995, 0.99], dtype=F64)
    lam[1, :2] = torch.tensor([2.0, 1.9], dtype=F64)
    lam[2] *= 0.5
    lam[2, :3] = torch.tensor([0.3, 0.3, 0.3], dtype=F64)  # a repeated top
    f = symmetric_batch(lam)
    x = torch.zeros(3, 40, dtype=F64)
    for symmetric in (False, True):
        for iters, tol in [(5, 1e-3), (50, 1e-3), (400, 1e-8)]:
            r = spectral_norm(f, x, iters=iters, tol=tol, symmetric=symmetric, compact=False)
            dist = (lam - r.norm.view(-1, 1)).abs().min(1).values
            assert (dist <= r.error_bound * (1 + 1e-9) + 1e-14).all(), (dist, r.error_bound)
            assert (r.norm <= lam.max(1).values * (1 + 1e-12)).all()
            assert (r.converged == (r.error_bound <= tol * r.norm)).all()
    assert r.converged[1:].all()  # the gap and the repeated top, not the tight cluster
    R = torch.randn(2, 12, 9, generator=g, dtype=F64)
    f, _ = matrix_map(R)
    s = torch.linalg.svdvals(R)
    for iters in (3, 30, 300):
        r = spectral_norm(f, torch.zeros(2, 9, dtype=F64), iters=iters, compact=False)
        dist = (s - r.norm.view(-1, 1)).abs().min(1).values
        assert (dist <= r.error_bound * (1 + 1e-9) + 1e-14).all(), (dist, r.error_bound)


def test_non_finite_jacobians_raise_and_name_the_images():
    """Issue 17: a NaN or Inf Jacobian product is an error naming the images, never a silent
    NaN or 0 (jacobian_asymmetry reported 0 for a NaN Jacobian)."""
    d = torch.ones(3, 1, 6, 6, dtype=F64)
    d[1, 0, 2, 3] = float("nan")
    x = torch.rand(3, 1, 6, 6, dtype=F64)
    f = lambda z: d * z  # noqa: E731
    for kw in [{}, {"symmetric": True}, {"check_every": 1}, {"iters": 3, "check_every": 8}]:
        with pytest.raises(FloatingPointError, match=r"spectral_norm: .*images \[1\]"):
            spectral_norm(f, x, **kw)
    with pytest.raises(FloatingPointError, match=r"jacobian_asymmetry: .*images \[1\]"):
        jacobian_asymmetry(f, x)
    with pytest.raises(FloatingPointError, match=r"lanczos_edges: .*images \[1\]"):
        lanczos_edges(f, x, steps=4)
    with pytest.raises(FloatingPointError, match=r"residual_lipschitz: .*images \[1\]"):
        residual_lipschitz(lambda z: d * z, x, symmetric=True)
    with pytest.raises(FloatingPointError, match=r"residual_lipschitz: .*images \[1\]"):
        residual_lipschitz(lambda z: d * z, x, method="lanczos", steps=4)
    d[1, 0, 2, 3], d[2, 0, 0, 0] = 1.0, float("inf")
    with pytest.raises(FloatingPointError, match=r"spectral_norm: .*images \[2\]"):
        spectral_norm(f, x)
    with pytest.raises(FloatingPointError, match=r"jacobian_asymmetry: .*images \[2\]"):
        jacobian_asymmetry(f, x)
    with pytest.raises(FloatingPointError, match=r"lanczos_edges: .*images \[2\]"):
        lanczos_edges(f, x, steps=4)

"""GS-PnP: the exact minimiser of a quadratic objective (a linear gradient-step denoiser), F never
increasing with an untrained smooth network, per-image backtracking in a batch equal to each
image alone, and clear errors."""

import pytest
import torch
from pnpfast_test_utils import assert_close

import pnpfast
from pnpfast.denoisers import DRUNet, GaussianSmoothing, GradientStep
from pnpfast.operators import Blur

F64 = torch.float64


def blur_problem(B=3, size=(16, 18), channels=1, seed=0):
    """Per-image kernels and noise levels, y = k_b * x_b + noise."""
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(B, 5, 5, generator=g, dtype=F64)
    k /= k.sum((1, 2), keepdim=True)
    A = Blur(k)
    x = torch.rand(B, channels, *size, generator=g, dtype=F64)
    sigma = torch.linspace(0.01, 0.05, B, dtype=F64)
    y = A(x) + sigma.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=g, dtype=F64)
    return A, x, y, sigma


def smooth_net(seed=0, channels=1):
    torch.manual_seed(seed)
    net = DRUNet(channels=channels, widths=(8, 16), blocks=1, activation="elu", residual=True)
    return GradientStep(net).double().eval()


def test_quadratic_objective_reaches_its_closed_form_minimiser():
    """N = Gaussian smoothing W (symmetric, multiplier T): g = 1/2 ||(I - W) x||^2, so F is
    quadratic with minimiser (|K^|^2 + lam (1 - T)^2) X^ = conj(K^) Y^; the output is the gradient
    step x* - tau lam (I - W)^2 x*."""
    A, _, y, sigma = blur_problem()
    D = GradientStep(GaussianSmoothing())
    lam = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    kw = dict(sigma=sigma, sigma_d=1.8 * sigma, lam=lam, max_iter=3000, tol=1e-15)
    res = pnpfast.solve(y, A, D, "gs-pnp", **kw)
    H, W = y.shape[-2:]
    K = A.spectrum(H, W, y.device, F64)
    T = D.network.transfer(H, W, 1.8 * sigma, y)
    R = (1 - T) ** 2
    lv = lam.view(-1, 1, 1, 1)
    xs = torch.fft.irfft2(K.conj() * torch.fft.rfft2(y) / (K.abs() ** 2 + lv * R), s=(H, W))
    z = torch.fft.irfft2(torch.fft.rfft2(xs) * (1 - R), s=(H, W))  # tau = 1 / lam
    # F's relative change is second order in the step: tol = 1e-15 on it leaves ~1e-7 in x
    assert res.converged.all()
    assert_close(res.x, z, rtol=1e-6, atol=1e-6, what="gradient step at the minimiser")


def test_objective_never_increases_and_batch_equals_alone():
    A, _, y, sigma = blur_problem(B=3, channels=3)
    D = smooth_net(channels=3)
    kw = dict(sigma=sigma, lam=0.1, max_iter=40, tol=1e-6, history=True)
    res = pnpfast.solve(y, A, D, "gs-pnp", **kw)
    F = res.history["objective"]
    assert F.shape == (res.iterations.max().item(), 3)
    assert (F[1:] <= F[:-1]).all(), "F increased"
    assert (F[-1] < F[0]).all()
    for b in range(3):
        Ab = Blur(A.kernel[b])
        alone = pnpfast.solve(y[b : b + 1], Ab, D, "gs-pnp", **{**kw, "sigma": sigma[b : b + 1]})
        assert alone.iterations.item() == res.iterations[b].item(), b
        assert_close(alone.x, res.x[b : b + 1], rtol=1e-9, atol=1e-10, what=f"image {b}")
        n = alone.iterations.item()
        assert_close(alone.history["objective"][:n, 0], F[:n, b], rtol=1e-10, atol=0)


def test_backtracking_shrinks_a_step_that_is_too_long():
    """From tau = 50 / lam the first candidates fail the sufficient-decrease test: without
    backtracking the images stop where they are; with it they go on and F decreases."""
    A, _, y, sigma = blur_problem(B=2)
    D = smooth_net()
    kw = dict(sigma=sigma, lam=0.1, tau=500.0, max_iter=15, tol=1e-7, history=True)
    stuck = pnpfast.solve(y, A, D, "gs-pnp", max_backtracks=0, **kw)
    moving = pnpfast.solve(y, A, D, "gs-pnp", **kw)
    assert (stuck.iterations == 1).all()
    assert torch.equal(stuck.history["objective"][0], stuck.history["objective"][-1])
    Fm = moving.history["objective"]
    assert (Fm[1:] <= Fm[:-1]).all() and (Fm[-1] < stuck.history["objective"][-1]).all()


def test_errors():
    A, _, y, sigma = blur_problem(B=2)
    with pytest.raises(TypeError, match="needs a gradient-step denoiser"):
        pnpfast.solve(y, A, GaussianSmoothing(), "gs-pnp", sigma=sigma)
    D = GradientStep(GaussianSmoothing())
    with pytest.raises(ValueError, match=r"eta must be a finite number in \(0, 1\), not 1\.5"):
        pnpfast.solve(y, A, D, "gs-pnp", sigma=sigma, eta=1.5)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0, not 0"):
        pnpfast.solve(y, A, D, "gs-pnp", sigma=sigma, gamma=0)
    with pytest.raises(ValueError, match=r"max_backtracks must be an int in \[0, 1000\], not -1"):
        pnpfast.solve(y, A, D, "gs-pnp", sigma=sigma, max_backtracks=-1)
    with pytest.raises(ValueError, match="lam"):
        pnpfast.solve(y, A, D, "gs-pnp", sigma=sigma, lam=-1.0)
    with pytest.raises(TypeError, match="does not take mu"):
        pnpfast.solve(y, A, D, "gs-pnp", sigma=sigma, mu=1.0)


def linear_fixed_point(A, y, R, lam, alpha):
    """The common fixed point of Prox-PnP PGD and DRS with D = I - alpha (I - W)^2, in the
    Fourier domain: (1 - alpha R) lam conj(K) Y / (1 - (1 - alpha R)(1 - lam |K|^2))."""
    H, W = y.shape[-2:]
    K = A.spectrum(H, W, y.device, F64)
    lv = lam.view(-1, 1, 1, 1)
    shrink = 1 - alpha * R
    X = shrink * lv * K.conj() * torch.fft.rfft2(y) / (1 - shrink * (1 - lv * K.abs() ** 2))
    return torch.fft.irfft2(X, s=(H, W))


@pytest.mark.parametrize("method", ["prox-pnp-pgd", "prox-pnp-drs"])
def test_prox_pnp_reaches_the_linear_fixed_point(method):
    A, _, y, sigma = blur_problem()
    D = GradientStep(GaussianSmoothing())
    lam = torch.tensor([0.9, 0.5, 1.5], dtype=F64)
    sigma_d = torch.tensor([0.05, 0.08, 0.1], dtype=F64)
    alpha = 0.7
    if method == "prox-pnp-pgd":
        lam = lam.clamp_max(0.99)
    res = pnpfast.solve(
        y,
        A,
        D,
        method,
        sigma=sigma,
        lam=lam,
        sigma_d=sigma_d,
        alpha=alpha,
        max_iter=4000,
        tol=0.0,
        history=True,
    )
    H, W = y.shape[-2:]
    R = (1 - D.network.transfer(H, W, sigma_d, y)) ** 2
    expected = linear_fixed_point(A, y, R, lam, alpha)
    assert_close(res.x, expected, rtol=1e-9, atol=1e-10, what=method)
    F = res.history["objective"]
    assert torch.isfinite(F).all()
    if method == "prox-pnp-pgd":  # a convex quadratic F: PGD decreases it at every step
        assert (F[1:] <= F[:-1] + 1e-12 * F[:-1].abs()).all()


def test_prox_pnp_batch_equals_alone_with_a_network():
    A, _, y, sigma = blur_problem(B=2)
    D = smooth_net()
    for method in ("prox-pnp-pgd", "prox-pnp-drs"):
        res = pnpfast.solve(y, A, D, method, sigma=sigma, max_iter=12, tol=1e-6)
        for b in range(2):
            alone = pnpfast.solve(
                y[b : b + 1],
                Blur(A.kernel[b]),
                D,
                method,
                sigma=sigma[b : b + 1],
                max_iter=12,
                tol=1e-6,
            )
            assert alone.iterations.item() == res.iterations[b].item()
            assert_close(alone.x, res.x[b : b + 1], rtol=1e-9, atol=1e-10, what=f"{method} {b}")


def test_pnp_reg_reaches_the_linear_fixed_point():
    """G(x) = c (I - W) x: gradient descent stops at (|K^|^2 + lam sigma^2 c (1 - T)) X^ = conj(K^) Y^."""
    A, _, y, sigma = blur_problem()
    W_ = GaussianSmoothing(std=1.0)
    c = 400.0
    seen = []

    def G(x, s):
        seen.append(s)
        return c * (x - W_(x, 0.0))

    lam = torch.tensor([1.0, 2.0, 0.5], dtype=F64)
    res = pnpfast.solve(y, A, G, "pnp-reg", sigma=sigma, lam=lam, max_iter=5000, tol=1e-14)
    assert all(torch.equal(s, torch.zeros(3, dtype=F64)) for s in seen)
    H, Wd = y.shape[-2:]
    K = A.spectrum(H, Wd, y.device, F64)
    T = W_.transfer(H, Wd, 0.0, y)
    reg = (lam * sigma**2 * c).view(-1, 1, 1, 1) * (1 - T)
    X = K.conj() * torch.fft.rfft2(y) / (K.abs() ** 2 + reg)
    assert_close(res.x, torch.fft.irfft2(X, s=(H, Wd)), rtol=1e-8, atol=1e-8, what="pnp-reg")


def test_prox_and_reg_errors():
    A, _, y, sigma = blur_problem(B=2)
    D = GradientStep(GaussianSmoothing())
    with pytest.raises(TypeError, match="needs a gradient-step denoiser"):
        pnpfast.solve(y, A, GaussianSmoothing(), "prox-pnp-drs", sigma=sigma)
    with pytest.raises(ValueError, match=r"lam must be in \(0, 2/L\)"):
        pnpfast.solve(y, A, D, "prox-pnp-pgd", sigma=sigma, lam=2.5)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \(0, 1\], not 0\.0"):
        pnpfast.solve(y, A, D, "prox-pnp-drs", sigma=sigma, alpha=0.0)
    with pytest.raises(ValueError, match=r"beta must be a finite number in \(0, 2\), not 2\.0"):
        pnpfast.solve(y, A, D, "prox-pnp-drs", sigma=sigma, beta=2.0)
    with pytest.raises(ValueError, match=r"mu must be in \(0, 2/L\)"):
        pnpfast.solve(y, A, lambda x, s: x, "pnp-reg", sigma=sigma, mu=3.0)


def test_gs_pnp_names_the_images_whose_objective_became_nan():
    A, _, y, sigma = blur_problem(B=3)
    D = smooth_net()

    class Broken(torch.nn.Module):
        def potential_and_gradient(self, x, s):
            g, grad = D.potential_and_gradient(x, s)
            return torch.where(s > 0.025, g * float("nan"), g), grad

    with pytest.raises(FloatingPointError, match=r"images \[1, 2\]"):
        pnpfast.solve(y, A, Broken(), "gs-pnp", sigma=sigma, sigma_d=1.8 * sigma, max_iter=3)


def test_divergence_is_an_error_naming_the_images():
    A, _, y, sigma = blur_problem(B=3)

    def G(x, s):  # explodes for images 0 and 2 only
        scale = torch.tensor([1e30, 0.0, 1e30], dtype=F64).view(-1, 1, 1, 1)
        return scale * x * x.abs() ** 8 + x

    with pytest.raises(FloatingPointError, match=r"pnp-reg: the iterate of images \[0, 2\]"):
        pnpfast.solve(y, A, G, "pnp-reg", sigma=sigma, max_iter=40, tol=0.0)

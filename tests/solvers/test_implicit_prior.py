"""The implicit-prior sampler (Kadkhodaie & Simoncelli 2021, Algorithms 1 and 2) against closed
forms.

A constant "denoiser" D(y) = mu makes the residual f(y) = mu - y exactly the noise, so the
sampler's recursion can be followed by hand: Algorithm 1 gives y_t - mu = (1 - h_t)(y_{t-1} - mu)
+ gamma_t z_t, and Algorithm 2 gives y_t - c = (1 - h_t)(y_{t-1} - c) + gamma_t z_t with
c = (I - P) mu + M x_c. With beta = 1 there is no injected noise (gamma_t = 0) and every iterate
is a closed form of y_0; with beta < 1 the noise level of y_t is (1 - beta h_t) sigma_t in
expectation, sigma_t being that of y_{t-1}.
"""

import math

import pytest
import torch
from pnpfast_test_utils import fast_backends

import pnpfast
from pnpfast.operators import (
    BlockAverage,
    Blur,
    CompressiveSensing,
    Inpainting,
    SpectralLowpass,
)
from pnpfast.solvers.implicit_prior import sample


class Constant:
    """D(y, sigma) = mu for every input: the denoiser of a prior that is a point mass at mu."""

    def __init__(self, mu: torch.Tensor):
        self.mu = mu
        self.calls = 0

    def __call__(self, y, sigma):
        assert sigma.shape == (y.shape[0],) and bool((sigma > 0).all())
        self.calls += 1
        return self.mu.expand_as(y)


def h_schedule(h0: float, t: int) -> float:
    return h0 * t / (1 + h0 * (t - 1))


def predicted_run(sigma_1: float, h0: float, sigma_L: float) -> tuple[int, list[float]]:
    """beta = 1, f = mu - y: sigma_t, the residual of y_{t-1}, is (1 - h_{t-1}) sigma_{t-1}
    from sigma_1 (the residual of y_0); the loop runs while sigma_{t-1} >= sigma_L, so it stops
    after the first t with sigma_t < sigma_L. Returns (iterations, [sigma_1, sigma_2, ...])."""
    sigmas = [sigma_1]
    while sigmas[-1] >= sigma_L:
        sigmas.append((1 - h_schedule(h0, len(sigmas))) * sigmas[-1])
    return len(sigmas), sigmas


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).square().mean(1).sqrt()


def test_algorithm1_without_noise_follows_the_closed_form():
    torch.manual_seed(0)
    mu = torch.rand(1, 2, 9, 7, dtype=torch.float64)
    h0 = torch.tensor([0.05, 0.1, 0.2], dtype=torch.float64)
    sigma_L = torch.tensor([0.02, 0.05, 0.01], dtype=torch.float64)
    res = sample(
        Constant(mu), (3, 2, 9, 7), h0=h0, sigma_L=sigma_L, beta=1.0, seed=3,
        history=True, dtype=torch.float64,
    )  # fmt: skip
    # y_0 = 0.5 + sigma_0 z, drawn first from the seeded generator
    g = torch.Generator().manual_seed(3)
    y0 = 0.5 + torch.randn(3, 2, 9, 7, generator=g, dtype=torch.float64)
    for b in range(3):
        sigma_1 = float(rms(mu - y0[b : b + 1])[0])
        n, sigmas = predicted_run(sigma_1, float(h0[b]), float(sigma_L[b]))
        assert int(res.iterations[b]) == n and bool(res.converged[b])
        got = res.history["sigma"][:n, b]
        assert torch.allclose(got, torch.tensor(sigmas, dtype=torch.float64), rtol=1e-10)
        assert bool(res.history["sigma"][n:, b].isnan().all())  # frozen after its stop
        shrink = math.prod(1 - h_schedule(float(h0[b]), t) for t in range(1, n + 1))
        want = mu[0] + shrink * (y0[b] - mu[0])
        assert torch.allclose(res.x[b], want, atol=1e-12)


@pytest.mark.parametrize("backend", ["reference", "triton", "cuda"])
def test_algorithm1_noise_level_decays_as_one_minus_beta_h(device, backend):
    """With beta < 1 the injected noise keeps sigma_t / sigma_{t-1} near 1 - beta h_t (exact in
    expectation for f = mu - y; a 64 x 64 image keeps the ratio within a few percent), with the
    noise of every backend's fused step."""
    if backend != "reference" and backend not in fast_backends(device):
        pytest.skip(f"backend {backend} cannot run on {device} here")
    mu = torch.full((1, 1, 64, 64), 0.3, device=device)
    beta, h0 = 0.5, 0.05
    res = sample(
        Constant(mu), (2, 1, 64, 64), h0=h0, beta=beta, sigma_L=0.02, seed=0, history=True,
        device=device, backend=backend,
    )  # fmt: skip
    sig = res.history["sigma"][:, 0].double()
    n = int(res.iterations[0])
    ratios = sig[1:n] / sig[: n - 1]
    want = torch.tensor([1 - beta * h_schedule(h0, t) for t in range(1, n)]).double()
    assert (ratios - want).abs().max() < 0.03
    assert bool(res.converged.all()) and float(sig[n - 1]) < 0.02 <= float(sig[n - 2])
    # the sample's distance to mu is the noise level of y_n, (1 - beta h_n) sigma_n
    for b in range(2):
        nb = int(res.iterations[b])
        last = (1 - beta * h_schedule(h0, nb)) * float(res.history["sigma"][nb - 1, b])
        assert abs(float(rms(res.x[b : b + 1] - mu)) / last - 1) < 0.05, b


def test_fast_backends_run_the_same_sampler(device):
    """beta = 1 (no noise): every backend's fused step gives the reference's run, for every
    operator form (a mask, block means, a projection through the FFT or a fast transform),
    with per-measurement realisations."""
    backends = fast_backends(device)
    if not backends:
        pytest.skip(f"no fast backend can run on {device} here")
    B, C, H, W, R = 2, 3, 16, 24, 2
    x = torch.rand(B, C, H, W, device=device)
    mu = torch.rand(1, C, H, W, device=device)
    operators = (
        Inpainting.random((B, H, W), 0.5, seed=3),
        BlockAverage(4),
        SpectralLowpass(0.2),
        CompressiveSensing(0.25, seed=2),
    )
    for A in operators:
        xc = A.measure(x)
        run = {
            "method": "implicit-prior", "beta": 1.0, "h0": 0.2, "sigma_L": 0.05, "seed": 1,
            "realisations": R,
        }  # fmt: skip
        ref = pnpfast.solve(xc, A, Constant(mu), backend="reference", **run)
        for backend in backends:
            got = pnpfast.solve(xc, A, Constant(mu), backend=backend, **run)
            name = f"{backend} {type(A).__name__}"
            assert torch.equal(got.iterations, ref.iterations), name
            assert torch.allclose(got.x, ref.x, rtol=1e-5, atol=1e-5), name


def test_a_denoiser_that_returns_nan_stops_the_sampler_with_an_error():
    def broken(y, sigma):
        out = y.clone()
        out[1] = math.nan
        return out

    with pytest.raises(FloatingPointError, match=r"implicit-prior: the iterate of images \[1\]"):
        sample(broken, (2, 1, 8, 8), seed=0)
    with pytest.raises(ValueError, match="the denoiser returned"):
        sample(lambda y, s: y[:, :, :4], (2, 1, 8, 8), seed=0)


def test_algorithm2_without_noise_is_the_projection_closed_form():
    """f = mu - y: d = (I - P)(mu - y) + M (x_c - M^T y) = c - y, c = (I - P) mu + M x_c."""
    torch.manual_seed(1)
    B, C, H, W = 2, 3, 8, 6
    x = torch.rand(B, C, H, W, dtype=torch.float64)
    mu = torch.rand(1, C, H, W, dtype=torch.float64)
    operators = (
        Inpainting.random((B, H, W), 0.6, seed=2),
        BlockAverage(2),
        SpectralLowpass(0.2),
        CompressiveSensing(0.3, seed=1, method="fast"),
        CompressiveSensing(0.3, seed=1, method="dense"),
    )
    for A in operators:
        xc = A.measure(x)
        res = pnpfast.solve(
            xc, A, Constant(mu), method="implicit-prior", beta=1.0, h0=0.1, sigma_L=0.01,
            seed=5, history=True,
        )  # fmt: skip
        c = mu - A.project(mu.expand(B, C, H, W)) + A.lift(xc)
        # the measured part of the result is the measurement, up to the shrunken start
        n = res.iterations
        for b in range(B):
            shrink = math.prod(1 - h_schedule(0.1, t) for t in range(1, int(n[b]) + 1))
            g = torch.Generator().manual_seed(5)
            noise = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
            half = torch.full((B, C, H, W), 0.5, dtype=torch.float64)
            y0 = A.lift(xc) + half - A.project(half) + noise
            want = c[b] + shrink * (y0[b] - c[b])
            assert torch.allclose(res.x[b], want, atol=1e-12), type(A).__name__
        assert bool((rms(A.measure(res.x) - xc) < 0.01).all())


def test_algorithm2_consistency_with_noise_and_realisations():
    """beta = 0.01 (the paper's): the samples end within about sigma_L of the measurement, the
    realisations differ, and the mean is their mean."""
    B, C, H, W, R = 2, 1, 16, 16, 3
    x = torch.rand(B, C, H, W)
    A = Inpainting.random((B, H, W), 0.5, seed=0)
    xc = A.measure(x)
    mu = torch.full((1, C, H, W), 0.5)
    res = pnpfast.solve(
        xc, A, Constant(mu), method="implicit-prior", h0=0.05, realisations=R, average=True,
        seed=1,
    )  # fmt: skip
    assert res.x.shape == (B * R, C, H, W) and res.mean.shape == (B, C, H, W)
    assert bool(res.converged.all()) and res.iterations.shape == (B * R,)
    assert torch.allclose(res.mean, res.x.view(B, R, C, H, W).mean(1))
    for b in range(B):
        mine = res.x[b * R : (b + 1) * R]
        m = A.mask[b].to(mine.dtype)  # [1, H, W] the measured pixels of measurement b
        off = ((mine - x[b]) * m).flatten(1).square().sum(1).div(m.sum()).sqrt()
        assert bool((off < 0.03).all()), off
        assert float((mine[0] - mine[1]).abs().max()) > 1e-4  # different realisations


def test_seed_reproduces_and_different_seeds_differ():
    mu = torch.full((1, 1, 8, 8), 0.4)
    a = sample(Constant(mu), (2, 1, 8, 8), seed=7, h0=0.2, max_iter=20)
    b = sample(Constant(mu), (2, 1, 8, 8), seed=7, h0=0.2, max_iter=20)
    c = sample(Constant(mu), (2, 1, 8, 8), seed=8, h0=0.2, max_iter=20)
    assert torch.equal(a.x, b.x) and torch.equal(a.iterations, b.iterations)
    assert not torch.equal(a.x, c.x)


def test_max_iter_caps_and_reports_not_converged():
    mu = torch.full((1, 1, 8, 8), 0.4)
    res = sample(Constant(mu), (2, 1, 8, 8), seed=0, h0=0.001, max_iter=5)
    assert res.iterations.tolist() == [5, 5] and not bool(res.converged.any())


def test_errors_name_the_argument():
    mu = torch.full((1, 1, 8, 8), 0.4)
    D = Constant(mu)
    xc = torch.rand(1, 1, 8, 8)
    A = Inpainting(torch.ones(8, 8, dtype=torch.bool))
    for kwargs, match in (
        ({"h0": 0.0}, "h0"),
        ({"h0": 1.5}, "h0"),
        ({"beta": 2.0}, "beta"),
        ({"sigma_L": -0.1}, "sigma_L"),
        ({"sigma_0": 0.0}, "sigma_0"),
        ({"realisations": 0}, "realisations"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"seed": 2**63}, "seed"),
    ):
        with pytest.raises(ValueError, match=match):
            pnpfast.solve(xc, A, D, method="implicit-prior", **kwargs)
    with pytest.raises(TypeError, match="does not take tol"):
        pnpfast.solve(xc, A, D, method="implicit-prior", tol=1e-3)
    with pytest.raises(TypeError, match="does not take sigma"):
        pnpfast.solve(xc, A, D, method="implicit-prior", sigma=0.1)
    with pytest.raises(TypeError, match="does not take lam"):
        pnpfast.solve(xc, A, D, method="implicit-prior", lam=1.0)
    with pytest.raises(TypeError, match="orthonormal"):
        pnpfast.solve(xc, Blur(torch.ones(3, 3) / 9), D, method="implicit-prior")
    with pytest.raises(ValueError, match="NaN or Inf"):
        pnpfast.solve(xc * math.nan, A, D, method="implicit-prior")
    with pytest.raises(ValueError, match="shape"):
        sample(D, (1, 8, 8), seed=0)
    with pytest.raises(ValueError, match="max_iter"):
        sample(D, (1, 1, 8, 8), max_iter=0)
    for seed, error in ((2**64, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match=r"seed must be an int in \[0, 2\*\*63 - 1\] \(or None\)"):
            sample(D, (1, 1, 8, 8), seed=seed)
    # the largest seed the counter-based noise takes runs
    assert sample(D, (1, 1, 8, 8), seed=2**63 - 1, max_iter=2).iterations.tolist() == [2]
    with pytest.raises(TypeError, match="needs sigma"):
        pnpfast.solve(xc, A, D, method="hqs")


class Erring:
    """D(y, sigma) = mu + e with e fresh N(0, err^2) noise at every call: a denoiser whose error
    never falls under err, so sigma_t = ||D(y) - y|| / sqrt(N) stays about err or above."""

    def __init__(self, mu: torch.Tensor, err: float):
        self.mu, self.err = mu, err
        self.generator = torch.Generator().manual_seed(11)

    def __call__(self, y, sigma):
        e = torch.randn(y.shape, generator=self.generator, dtype=y.dtype)
        return self.mu.expand_as(y) + self.err * e


def test_sigma_l_below_the_denoisers_floor_is_an_error_naming_sigma_l():
    mu = torch.full((1, 1, 8, 8), 0.4)
    D = Erring(mu, 0.05)
    with pytest.raises(ValueError, match=r"images \[0, 1\].*sigma_L is below what the") as err:
        sample(D, (2, 1, 8, 8), sigma_L=1e-3, h0=0.5, beta=0.5, seed=0)
    # found within two windows of the stall check, not after max_iter
    message = str(err.value)
    assert "by iteration 512" in message or "by iteration 256" in message
    # what it suggests is above the floor (sigma_t >= 0.05) and is reached
    suggested = float(message.rsplit("sigma_L >= ", 1)[1])
    assert suggested >= 0.05
    res = sample(Erring(mu, 0.05), (2, 1, 8, 8), sigma_L=suggested, h0=0.5, beta=0.5, seed=0)
    assert bool(res.converged.all())


def test_sigma_l_above_the_floor_stops_without_a_stall_error():
    # a slow schedule (small h0 and beta) that needs several windows of the stall check
    mu = torch.full((1, 1, 8, 8), 0.4)
    for seed in range(3):
        res = sample(Constant(mu), (4, 1, 8, 8), sigma_L=0.01, h0=0.001, beta=0.002, seed=seed)
        assert bool(res.converged.all()) and int(res.iterations.max()) > 2 * 256


@pytest.mark.slow
def test_the_shipped_blind_denoisers_floor_is_found_quickly():
    # the case: sigma_L = 1e-9 ran 9,400 iterations and ended in a NaN step. The shipped
    # network's sigma_t stops falling at about 2e-3 on an 8x8 gray image
    D = pnpfast.denoisers.load("blind")
    with pytest.raises(ValueError, match="sigma_L is below what the denoiser reaches") as err:
        sample(D, (1, 1, 8, 8), sigma_L=1e-9, h0=0.5, beta=0.5, seed=0)
    message = str(err.value)
    assert "by iteration 256" in message or "by iteration 512" in message
    suggested = float(message.rsplit("sigma_L >= ", 1)[1])
    assert 1e-4 < suggested < 0.05
    res = sample(D, (1, 1, 8, 8), sigma_L=suggested, h0=0.5, beta=0.5, seed=0)
    assert bool(res.converged.all())

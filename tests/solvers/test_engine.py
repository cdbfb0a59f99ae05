"""The engine every method runs on: the method protocol, one result type, the PSNR history of
the returned images, divergence as an error naming the images, the sampler's per-image
stopping, and the choice of the shipped denoiser when none is given."""

import dataclasses
import math

import pytest
import torch

import pnpfast
from pnpfast.denoisers import DRUNet, GaussianSmoothing, GradientStep
from pnpfast.operators import Blur, Inpainting
from pnpfast.solvers import METHODS, SAMPLER
from pnpfast.solvers.implicit_prior import ImplicitPrior

F64 = torch.float64
B = 3
CONVERGENT = ("gs-pnp", "prox-pnp-pgd", "prox-pnp-drs")
ALL = sorted([*METHODS, SAMPLER])
# what denoiser=None must load: the shipped denoiser each method is meant for (README, and the
# defaults study in benchmarks/bench_defaults.py); pnp-reg has none
SHIPPED_FOR = {
    **{m: "conditional" for m in ("hqs", "admm", "drs", "pgd", "fista")},
    **{m: "conditional" for m in METHODS if m.startswith("red-")},
    "gs-pnp": "gradient-step",
    "prox-pnp-pgd": "proximal",
    "prox-pnp-drs": "proximal",
    "pnp-reg": None,
    SAMPLER: "blind",
}


def blur_problem(size=(12, 14), seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(B, 5, 5, generator=g, dtype=F64)
    k /= k.sum((1, 2), keepdim=True)
    A = Blur(k)
    x = torch.rand(B, 1, *size, generator=g, dtype=F64)
    sigma = torch.tensor([0.01, 0.03, 0.05], dtype=F64)
    y = A(x) + sigma.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=g, dtype=F64)
    return A, x, y, sigma


def smooth_net():
    torch.manual_seed(0)
    net = DRUNet(channels=1, widths=(8, 16), blocks=1, activation="elu", residual=True)
    return GradientStep(net).double().eval()


def regulariser_gradient(x, s):
    """pnp-reg's G: c (I - W) x with W a Gaussian smoothing (a linear, stable regulariser)."""
    return 50.0 * (x - GaussianSmoothing(std=1.0)(x, 0.0))


def denoiser_for(method):
    if method in CONVERGENT:
        return smooth_net()
    if method == "pnp-reg":
        return regulariser_gradient
    return GaussianSmoothing()


def sampler_problem():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(B, 1, 8, 8, generator=g, dtype=F64)
    A = Inpainting.random((B, 8, 8), 0.5, seed=2)
    return A, x, A.measure(x)


class Shrink:
    """D(y) = (y + mu) / 2: a contraction towards mu, so the sampler's sigma_t decays."""

    def __call__(self, y, sigma):
        return 0.5 * (y + 0.4)


def psnr(a, b):
    """The oracle: -10 log10(mean squared error) per image (peak 1)."""
    return -10 * torch.log10((a - b).pow(2).flatten(1).mean(1))


def test_every_method_follows_the_protocol():
    for cls in [*METHODS.values(), ImplicitPrior]:
        assert isinstance(cls.name, str) and cls.name, cls
        assert dataclasses.is_dataclass(cls.Params), cls.name
        assert isinstance(cls.default_max_iter, int) and cls.default_max_iter >= 1, cls.name
        assert isinstance(cls.default_tol, float) and cls.default_tol >= 0, cls.name
        assert cls.default_denoiser == SHIPPED_FOR[cls.name], cls.name
        for hook in ("init", "step", "output"):
            assert callable(getattr(cls, hook, None)), (cls.name, hook)
    assert pnpfast.SampleResult is pnpfast.Result


@pytest.mark.parametrize("method", ALL)
def test_psnr_history_scores_the_returned_images(method):
    """history["psnr"][-1] is the PSNR of res.x per image, also for images that stopped early
    (tol) and for methods whose answer is not their iterate (gs-pnp's last gradient step)."""
    if method == SAMPLER:
        A, x, xc = sampler_problem()
        res = pnpfast.solve(
            xc, A, Shrink(), method, h0=0.2, sigma_L=0.05, seed=0, realisations=2,
            average=True, x_true=x,
        )  # fmt: skip
        x = x.repeat_interleave(2, dim=0)
        assert res.mean.shape == (B, 1, 8, 8)
    else:
        A, x, y, sigma = blur_problem()
        res = pnpfast.solve(
            y, A, denoiser_for(method), method, sigma=sigma, max_iter=12, tol=1e-3, x_true=x
        )
    assert type(res) is pnpfast.Result
    assert res.history["psnr"].shape[1] == x.shape[0]
    torch.testing.assert_close(res.history["psnr"][-1], psnr(res.x, x), rtol=1e-12, atol=1e-12)


class NaNFor:
    """Wraps a denoiser; its output for the images ``bad`` is NaN (also the potential and
    gradient of a gradient-step denoiser)."""

    def __init__(self, inner, bad):
        self.inner, self.bad = inner, bad

    def _poison(self, t):
        t = t.clone()
        t[self.bad] = math.nan
        return t

    def __call__(self, x, sigma):
        return self._poison(self.inner(x, sigma))

    def potential_and_gradient(self, x, sigma):
        g, grad = self.inner.potential_and_gradient(x, sigma)
        return self._poison(g), self._poison(grad)


@pytest.mark.parametrize(
    "tol, max_iter, by",
    [(0.0, 3, 3), (None, 3, 3), (0.0, 20, 8), (None, 20, 8)],
    ids=["tol0-short", "default-short", "tol0-long", "default-long"],
)
@pytest.mark.parametrize("method", ALL)
def test_a_nan_from_the_denoiser_is_an_error_naming_the_images(method, tol, max_iter, by):
    """Raised at the engine's first host synchronisation (every 8 iterations, and after the
    last one), whatever tol (tol = 0: nothing tracks the change) and max_iter."""
    kwargs = {"max_iter": max_iter} if tol is None else {"max_iter": max_iter, "tol": tol}
    match = rf"{method}: the iterate of images \[1\] is NaN or Inf by iteration {by}\b"
    if method == SAMPLER:
        A, _, xc = sampler_problem()
        kwargs.pop("tol", None)  # the sampler stops on sigma_L, it takes no tol
        with pytest.raises(FloatingPointError, match=match):
            pnpfast.solve(xc, A, NaNFor(Shrink(), [1]), method, h0=0.01, seed=0, **kwargs)
        return
    A, _, y, sigma = blur_problem()
    D = NaNFor(denoiser_for(method), [1])
    with pytest.raises(FloatingPointError, match=match):
        pnpfast.solve(y, A, D, method, sigma=sigma, **kwargs)


@pytest.mark.parametrize("method", ["pgd", "fista", "red-sd", "prox-pnp-pgd"])
def test_a_zero_start_is_not_divergence(method):
    """||x_0|| = 0 makes the first relative change Inf: a finite iterate, no error."""
    A, _, y, sigma = blur_problem()
    res = pnpfast.solve(
        y, A, denoiser_for(method), method, sigma=sigma, x0=torch.zeros_like(y), max_iter=10
    )
    assert torch.isfinite(res.x).all()


def test_the_sampler_stops_each_image_on_its_own():
    """Per-image h0: each image stops the iteration after its sigma_t went under sigma_L, and is
    frozen from then on (x and the sigma_t the callback sees) while the others go on."""
    A, _, xc = sampler_problem()
    seen = []
    res = pnpfast.solve(
        xc, A, Shrink(), SAMPLER, h0=torch.tensor([0.05, 0.2, 0.1]), sigma_L=0.05, beta=1.0,
        seed=0, history=True,
        callback=lambda info: seen.append((info.x.clone(), info.rel_change.clone(),
                                           info.active.clone())),
    )  # fmt: skip
    n = res.iterations.tolist()
    assert len(set(n)) == 3 and bool(res.converged.all())
    assert max(n) <= len(seen) < max(n) + 8  # the loop leaves at its next host sync
    sigma = res.history["sigma"]
    for b in range(B):
        assert float(sigma[n[b] - 1, b]) < 0.05 <= float(sigma[n[b] - 2, b])
        assert bool(sigma[n[b] :, b].isnan().all())
        for k in range(n[b] - 1, max(n)):
            x, level, active = seen[k]
            assert torch.equal(x[b], res.x[b]) and not bool(active[b])
            assert float(level[b]) == float(sigma[n[b] - 1, b])
        assert bool(seen[n[b] - 2][2][b])


class Spy:
    def __init__(self, monkeypatch):
        self.names = []
        self.load = pnpfast.denoisers.load
        monkeypatch.setattr(pnpfast.denoisers, "load", self)

    def __call__(self, name=None, **kwargs):
        self.names.append(name)
        return self.load(name, **kwargs)


@pytest.mark.parametrize("method", ALL)
def test_denoiser_none_loads_the_shipped_denoiser_of_the_method(monkeypatch, method):
    spy = Spy(monkeypatch)
    if method == SAMPLER:
        A, _, xc = sampler_problem()
        res = pnpfast.solve(xc.float(), A, None, method, seed=0, max_iter=2)
    else:
        A, _, y, sigma = blur_problem(size=(16, 16))
        if SHIPPED_FOR[method] is None:
            with pytest.raises(TypeError, match=f"no shipped denoiser fits method '{method}'"):
                pnpfast.solve(y, A, None, method, sigma=sigma, max_iter=2)
            assert spy.names == []
            return
        res = pnpfast.solve(y.float(), A, None, method, sigma=sigma.float(), max_iter=2)
    assert spy.names == [SHIPPED_FOR[method]]
    assert torch.isfinite(res.x).all()


@pytest.mark.parametrize("method", CONVERGENT)
def test_a_denoiser_without_a_potential_names_the_one_to_load(method):
    """The shipped conditional pair (it has potential_and_gradient, but its networks have no
    potential) and a classical denoiser are refused before any iteration, naming the shipped
    gradient-step or proximal denoiser."""
    A, _, y, sigma = blur_problem(size=(16, 16))
    name = SHIPPED_FOR[method]
    for D in (pnpfast.denoisers.load(), GaussianSmoothing()):
        with pytest.raises(TypeError, match=rf'pnpfast\.denoisers\.load\("{name}"\)'):
            pnpfast.solve(y.float(), A, D, method, sigma=sigma.float(), max_iter=2)

"""Defaults are a feature (CONVENTIONS 18): every deblurring method, with its defaults and the
shipped denoiser it is meant for, restores a real image crop without diverging.

The images, the kernel and the noise are not those the defaults were tuned on (CBSD432 crops,
see benchmarks/bench_defaults.py and benchmarks/results/defaults.jsonl): a Set12 crop, gray,
so the gray shipped networks run. The fast test runs each method's default iteration count
except where that is long (gs-pnp, prox-pnp-*), where it is capped; the slow one runs every
default in full, on a color Set3C crop, at both noise levels of the report.
"""

import math

import numpy as np
import pytest
import torch
from pnpfast_test_utils import SHARED_DATA, load_benchmark

import pnpfast
from pnpfast.operators import Blur, SuperResolution

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(
        not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set12, Set3C, Levin kernels)"
    ),
]

# The benchmark that reports the defaults: its table of intended denoisers and its degradation
BENCH = load_benchmark("bench_defaults")
INTENDED = BENCH.INTENDED
# Iteration caps for the fast test only, where the default is long.
FAST_CAP = {"gs-pnp": 60, "prox-pnp-pgd": 60, "prox-pnp-drs": 60}


def test_every_deblurring_method_is_covered():
    """A new method gets a line here (pnp-reg: no regulariser-gradient network is shipped)."""
    assert set(pnpfast.solvers.METHODS) - {"pnp-reg"} == set(INTENDED)


def _problem(path, crop: int, noise_255: float, kernel: int = 1):
    """quality_deblur's degradation of a centre crop: blur, 8-bit rounding, seeded AWGN."""
    x = BENCH._centre(path, crop)
    k = torch.from_numpy(
        np.load(SHARED_DATA / "kernels" / "levin09" / f"levin09_k{kernel}.npy")
    ).double()
    A = Blur(k)
    y = BENCH.quality_deblur.degrade(x, A, noise_255)
    return A, x.float(), y.float()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(pnpfast.metrics.psnr(a.clamp(0, 1), b).mean())


def _check(method: str, A, x, y, noise_255: float, max_iter: int | None) -> tuple[float, float]:
    D = pnpfast.denoisers.load(INTENDED[method])
    with torch.no_grad():
        res = pnpfast.solve(y, A, D, method, sigma=noise_255 / 255, max_iter=max_iter)
    assert torch.isfinite(res.x).all(), f"{method}: non-finite output"
    got, start = _psnr(res.x, x), _psnr(A.adjoint(y), x)
    return got, start


@pytest.mark.parametrize("method", sorted(INTENDED))
def test_default_restores_a_gray_crop(method):
    """At 2.55/255, where the trained denoiser expands at sigma_d = sigma: the former defaults of
    fista (sigma_d = sigma, no restart) and red-apg (lam = 1300.5, sigma_d = sigma) ended near
    5 dB here, under A^T y's 12.8 dB."""
    torch.set_num_threads(1)
    A, x, y = _problem(SHARED_DATA / "images" / "Set12" / "05.png", 48, 2.55, kernel=4)
    got, start = _check(method, A, x, y, 2.55, FAST_CAP.get(method))
    assert got > start + 1.0, f"{method}: {got:.2f} dB, A^T y {start:.2f} dB"


@pytest.mark.parametrize(
    "image, factor", [("Set12/03.png", 2), ("Set12/03.png", 3), ("CBSD68/102061.png", 2)]
)
@pytest.mark.parametrize("method", sorted(INTENDED))
def test_default_super_resolves_a_crop(method, image, factor):
    """Super-resolution with every method's defaults (the start A.upsample(y), hqs's DPIR
    recipe, engine.SR_SIGMA_D, the 40 iterations of gs-pnp and prox-pnp-pgd): x2 with MATLAB's
    bicubic kernel, x3 with a Gaussian of std 1.5, noise 2.55/255, a gray Set12 and a color
    CBSD68 crop none of the SR defaults was chosen on. Each must end above bicubic upsampling, the start, and within 1 dB
    of its best iterate: at the deblurring defaults prox-pnp-pgd ended 9 dB under bicubic
    upsampling on a Set12 crop at x2, its PSNR falling for 280 of its 300 iterations."""
    torch.set_num_threads(1)
    x = BENCH._centre(SHARED_DATA / "images" / image, 72).float()
    A = SuperResolution.bicubic(2) if factor == 2 else SuperResolution.gaussian(3, 1.5)
    g = torch.Generator().manual_seed(0)
    y = A(x.double())
    y = (y + 2.55 / 255 * torch.randn(y.shape, generator=g, dtype=y.dtype)).float()
    D = pnpfast.denoisers.load(INTENDED[method])
    with torch.no_grad():
        res = pnpfast.solve(y, A, D, method, sigma=2.55 / 255, x_true=x)
    assert torch.isfinite(res.x).all(), f"{method}: non-finite output"
    got, start = _psnr(res.x, x), _psnr(A.upsample(y), x)
    assert got > start, f"{method}: {got:.2f} dB, bicubic upsampling {start:.2f} dB"
    best = float(res.history["psnr"].max())  # unclamped, so at most got's upper bound
    assert got > best - 1.0, f"{method}: {got:.2f} dB after a best iterate of {best:.2f} dB"


# Methods whose fixed point can approach HQS with the shipped denoisers (see README "Defaults"):
# PnP-PGD, PnP-FISTA and Prox-PnP-PGD weigh the prior by sigma_d^2 / tau with tau <= 2 / L, so
# a denoiser strong enough to deblur also oversmooths; they are only checked for improvement.
NEAR_HQS = {m for m in INTENDED if m.startswith("red-")} | {"admm", "drs", "gs-pnp", "prox-pnp-drs"}


@pytest.mark.slow
@pytest.mark.parametrize("noise_255", [2.55, 7.65])
@pytest.mark.parametrize("method", sorted(INTENDED))
def test_default_restores_a_color_crop_in_full(method, noise_255):
    """Full default iteration counts, a color crop: no divergence, and within 4 dB of HQS for
    the methods of NEAR_HQS (the report's gaps reach 3.3 dB, README "Defaults")."""
    torch.set_num_threads(1)
    A, x, y = _problem(SHARED_DATA / "images" / "Set3C" / "leaves.png", 64, noise_255, kernel=8)
    got, start = _check(method, A, x, y, noise_255, None)
    assert got > start + 1.0 and math.isfinite(got), f"{method}: {got:.2f}, A^T y {start:.2f}"
    if method in NEAR_HQS:
        hqs, _ = _check("hqs", A, x, y, noise_255, None)
        assert got > hqs - 4.0, f"{method}: {got:.2f} dB, hqs {hqs:.2f} dB"

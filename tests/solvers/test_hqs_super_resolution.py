"""hqs with a SuperResolution operator: DPIR's SR recipe (main_dpir_sisr.py) as the default.

24 iterations, sigma_k log-spaced from 49/255 to max(sigma, s/255), alpha_k = 0.23 max(sigma,
0.255/255)^2 / sigma_k^2, start from the bicubic upsampling of y on the operator's grid
(``SuperResolution.upsample``); each default only where the caller left it unset.
"""

import math

import numpy as np
import pytest
import torch

import pnpfast
from pnpfast.operators import Blur, SuperResolution


def _smooth(n: int, batch: int = 1) -> torch.Tensor:
    """A smooth [batch, 3, n, n] float64 image: a few sinusoids of the lowest frequencies."""
    t = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    img = torch.cos(t)[:, None] + torch.sin(t)[None] + 0.5 * torch.cos(t[:, None] + t[None] + 1)
    return img.expand(batch, 3, n, n).clone()


def _image(n: int) -> torch.Tensor:
    x = pnpfast.data.astronaut(n).to(torch.float32)
    return x if x.dim() == 4 else x[None]


class Recorder:
    """A denoiser that returns its input and records the sigma of every call."""

    def __init__(self):
        self.sigmas = []

    def __call__(self, x, sigma):
        self.sigmas.append(sigma.clone())
        return x


def _dpir_sigmas(iters: int, end: float) -> np.ndarray:
    """DPIR's schedule, written out: np.logspace from 49 to its modelSigma2, over 255."""
    return np.logspace(np.log10(49.0), np.log10(end * 255), iters) / 255


# --- SuperResolution.upsample ----------------------------------------------------------------


@pytest.mark.parametrize("s", [2, 3, 4])
def test_upsample_equals_torch_bicubic_for_the_bicubic_kernel(s):
    """bicubic_kernel puts LR pixel i at HR s i + (s - 1) / 2, the grid of interpolate with
    align_corners=False, so upsample is torch's bicubic interpolation (edges replicated)."""
    A = SuperResolution.bicubic(s)
    y = torch.rand(2, 3, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(
        A.centre_offset(), torch.full((1, 2), (s - 1) / 2, dtype=torch.float64)
    )
    want = torch.nn.functional.interpolate(y, scale_factor=s, mode="bicubic", align_corners=False)
    torch.testing.assert_close(A.upsample(y), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
@pytest.mark.parametrize("kind", ["bicubic", "gaussian"])
def test_upsample_inverts_the_decimation_of_a_smooth_image(s, kind):
    """upsample(A x) ~ x for a smooth x, away from the replicated edges; the same upsampling one
    high-resolution pixel off is clearly worse (the grid shift matters)."""
    A = SuperResolution.bicubic(s) if kind == "bicubic" else SuperResolution.gaussian(s, 1.0)
    x = _smooth(48)
    up = A.upsample(A(x))
    inner = (slice(None), slice(None), slice(3 * s, -3 * s), slice(3 * s, -3 * s))
    err = (up - x)[inner].abs().max()
    assert err < 0.07, float(err)
    for shift in (1, -1):
        for dim in (-1, -2):
            off = (torch.roll(up, shift, dim) - x)[inner].abs().max()
            assert off > 2.5 * err, (shift, dim, float(off), float(err))


def test_upsample_follows_an_off_centre_kernel_per_image():
    """Kernel 0 is a delta one tap below the centre, (k * x)[n] = x[n - 1] (LR pixel i at
    HR s i - 1); kernel 1 a delta at the centre (at s i). Each image is put back in place."""
    s, n = 2, 48
    k = torch.zeros(2, 5, 5, dtype=torch.float64)
    k[0, 3, 2] = 1.0
    k[1, 2, 2] = 1.0
    A = SuperResolution(k, s)
    torch.testing.assert_close(
        A.centre_offset(), torch.tensor([[-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    )
    x = _smooth(n, batch=2)
    y = A(x)
    torch.testing.assert_close(y[0], torch.roll(x[0], 1, -2)[..., ::s, ::s])  # the oracle of A
    up = A.upsample(y)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (up - x)[inner].abs().max() < 0.03


# --- the defaults of hqs -----------------------------------------------------------------------


def test_hqs_takes_dpir_sr_schedule_for_super_resolution():
    """24 iterations, sigma_k = DPIR's logspace from 49/255 to max(sigma, s/255), per image."""
    s = 2
    A = SuperResolution.bicubic(s)
    y = A(_smooth(16, batch=2))
    D = Recorder()
    sigma = torch.tensor([0.0, 5 / 255], dtype=torch.float64)
    res = pnpfast.solve(y, A, D, "hqs", sigma=sigma)
    assert len(D.sigmas) == 24 and int(res.iterations.max()) == 24
    got = torch.stack(D.sigmas).numpy()  # [24, 2]
    np.testing.assert_allclose(got[:, 0], _dpir_sigmas(24, s / 255), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], _dpir_sigmas(24, 5 / 255), rtol=1e-6)


def test_hqs_sr_start_is_the_upsampling_and_alpha_is_dpirs():
    """One iteration with an identity denoiser returns the data prox of the start: by default
    A.upsample(y), with alpha_0 = 0.23 max(sigma, 0.255/255)^2 / (49/255)^2 (DPIR's rho)."""
    A = SuperResolution.gaussian(2, 1.0)
    x = _smooth(16)
    g = torch.Generator().manual_seed(0)
    y = A(x) + 0.05 * torch.randn(1, 3, 8, 8, dtype=torch.float64, generator=g)
    sigma = 0.05
    alpha0 = 0.23 * sigma**2 / (49 / 255) ** 2
    res = pnpfast.solve(y, A, Recorder(), "hqs", sigma=sigma, max_iter=1)
    # argmin 1/2 ||A v - y||^2 + alpha/2 ||v - z||^2: (A^T A + alpha I) v = A^T y + alpha z
    z = A.upsample(y)
    rhs = A.adjoint(y) + alpha0 * z
    want = _cg(lambda v: A.adjoint(A(v)) + alpha0 * v, rhs)
    torch.testing.assert_close(res.x, want, rtol=0, atol=1e-8)
    # x0 given by the caller wins
    z = torch.full_like(x, 0.5)
    res = pnpfast.solve(y, A, Recorder(), "hqs", sigma=sigma, max_iter=1, x0=z)
    want = _cg(lambda v: A.adjoint(A(v)) + alpha0 * v, A.adjoint(y) + alpha0 * z)
    torch.testing.assert_close(res.x, want, rtol=0, atol=1e-8)


def _cg(op, b, iters=400):
    """Plain conjugate gradients on the whole tensor (the test's own solver of the normal
    equations, independent of the closed-form FFT prox)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum()
    for _ in range(iters):
        ap = op(p)
        a = rr / (p * ap).sum()
        x = x + a * p
        r = r - a * ap
        rr_new = (r * r).sum()
        if rr_new.sqrt() < 1e-13:
            break
        p = r + rr_new / rr * p
        rr = rr_new
    return x


def test_hqs_sr_caller_settings_win():
    """max_iter and sigma_end given by the caller replace DPIR's SR defaults."""
    A = SuperResolution.bicubic(3)
    y = A(_smooth(18))
    D = Recorder()
    pnpfast.solve(y, A, D, "hqs", sigma=0.0, max_iter=3, sigma_end=10 / 255)
    np.testing.assert_allclose(
        torch.stack(D.sigmas).numpy()[:, 0], _dpir_sigmas(3, 10 / 255), rtol=1e-6
    )


@pytest.mark.parametrize("operator", ["blur", "factor-1"])
def test_hqs_deblurring_defaults_unchanged(operator):
    """Blur, and SuperResolution of factor 1 (a blur): 8 iterations, sigma_end = max(sigma,
    0.255/255), start A^T y."""
    k = SuperResolution.gaussian(1, 1.0).kernel[0]
    A = Blur(k) if operator == "blur" else SuperResolution(k, 1)
    x = _smooth(12)
    y = A(x)
    D = Recorder()
    sigma = 0.01
    res = pnpfast.solve(y, A, D, "hqs", sigma=sigma)
    assert len(D.sigmas) == 8
    np.testing.assert_allclose(
        torch.stack(D.sigmas).numpy()[:, 0], _dpir_sigmas(8, sigma), rtol=1e-6
    )
    D = Recorder()
    pnpfast.solve(y, A, D, "hqs", sigma=0.0)
    assert float(D.sigmas[-1]) == pytest.approx(0.255 / 255, rel=1e-6)
    start = pnpfast.solve(y, A, Recorder(), "hqs", sigma=sigma, max_iter=1).x
    given = pnpfast.solve(y, A, Recorder(), "hqs", sigma=sigma, max_iter=1, x0=A.adjoint(y)).x
    torch.testing.assert_close(start, given, rtol=0, atol=0)
    assert res.x.shape == x.shape


# --- quality ---------------------------------------------------------------------------------


@pytest.mark.slow  # 24 denoiser calls, 2-12 s on a shared 2-core CPU with the weights' load
def test_hqs_sr_x2_with_the_shipped_denoiser_beats_bicubic():
    """Astronaut 64x64 crop, MATLAB-bicubic x2, no noise, the shipped conditional denoiser and
    all of DPIR's SR defaults: measured 28.94 dB against 26.08 for A.upsample(y) (the start,
    = torch's bicubic interpolate for this kernel)."""
    x = _image(64)
    A = SuperResolution.bicubic(2)
    y = A(x)
    with torch.no_grad():
        res = pnpfast.solve(y, A, None, "hqs", sigma=0.0)

    def psnr(z):
        return float(pnpfast.metrics.psnr(z.clamp(0, 1), x))

    up = psnr(A.upsample(y))
    hqs = psnr(res.x)
    assert hqs > up + 2.0, (hqs, up)

"""Fuzz table (issue 17) of pnpfast.diagnostics (spectral_norm, jacobian_asymmetry,
lanczos_edges, residual_lipschitz) and pnpfast.metrics (psnr, ssim).

Diagnostics: bad D (not callable, returning NaN, a tuple, ints, the wrong batch or shape), bad x
and sigma, counts and tolerances out of range, unknown names. Good rows use denoisers whose
Jacobian is known in closed form: D(x) = w * x (per-pixel weights: J diagonal, norm max |w_b|
image by image), D(x, s) = (1 + s) x (a per-image sigma), Gaussian smoothing (J symmetric with
eigenvalues exp(-2 pi^2 s^2 |f|^2): top 1 at f = 0, bottom at the highest frequency, computed
here with NumPy), and a crop (a projection: norm 1).

Metrics: Good rows against closed forms (a constant offset: PSNR = 10 log10(peak^2 / d^2);
constant images: SSIM = (2 a b + C1) / (a^2 + b^2 + C1)) and against scikit-image's
structural_similarity with the same window. 8x8 to 16x16 images, a few power steps.
"""

import math

import numpy as np
import torch
from fuzz_cases import Bad, Good, check, params
from skimage.metrics import structural_similarity

from pnpfast.denoisers import GaussianSmoothing
from pnpfast.diagnostics import (
    MAX_ITERS,
    MAX_PROBES,
    MAX_STEPS,
    initial_state,
    jacobian_asymmetry,
    lanczos_edges,
    residual_lipschitz,
    spectral_norm,
)
from pnpfast.metrics import psnr, ssim

SN = "pnpfast.diagnostics.spectral_norm"
JA = "pnpfast.diagnostics.jacobian_asymmetry"
LE = "pnpfast.diagnostics.lanczos_edges"
RL = "pnpfast.diagnostics.residual_lipschitz"
IS = "pnpfast.diagnostics.initial_state"
PSNR = "pnpfast.metrics.psnr"
SSIM = "pnpfast.metrics.ssim"


def image(b: int = 2, c: int = 1, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


X = image
G = GaussianSmoothing(1.0)
# std 0.3 on 4x4: I - G's top eigenvalues (highest frequencies) are 0.59 and 0.43, so power
# iteration on I - G converges in tens of steps (with std 1 on 8x8 they sit within 5e-4)
G3 = GaussianSmoothing(0.3)

# per-pixel weights: the Jacobian of w * x is diag(w); image 0's largest |w| is 0.9, image 1's
# is 2.0 (one pixel), the rest well below, so power iteration separates them fast
W = torch.full((2, 1, 8, 8), 0.1)
W[0, 0, 3, 4] = 0.9
W[1, 0, 6, 1] = -2.0


def weighted(x, sigma=None):
    return W.to(x.dtype) * x


# image 0: J = 0.5 I (converged after one step); image 1: top 1.0 over 0.99 (slow)
W2 = torch.full((2, 1, 8, 8), 0.5)
W2[1] = torch.linspace(0.0, 0.99, 64).view(1, 8, 8)
W2[1, 0, 0, 0] = 1.0


def two_speeds_full_batch_only(x, sigma=None):
    """W2 * x on the full batch; an empty result on a sub-batch (a D that cannot take one)."""
    return W2.to(x.dtype) * x if x.shape[0] == 2 else x[:0]


def scaled(x, sigma):
    """(1 + sigma_b) x_b: J_b = (1 + sigma_b) I."""
    s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
    return (1 + s) * x


def nan_for_image_1(x, sigma=None):
    """0.5 x_0 and NaN for image 1 (a factor per image: no NaN leaks through a mask's gradient)."""
    return torch.tensor([0.5, math.nan], dtype=x.dtype).view(-1, 1, 1, 1) * x


def gaussian_bottom(h: int, w: int, std: float = 1.0) -> float:
    """The smallest multiplier of Gaussian smoothing on an h x w image (highest frequency)."""
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    return float(np.exp(-2 * np.pi**2 * std**2 * f2).min())


def norms(res) -> torch.Tensor:
    return res.norm


def spectral(*args, **kw) -> torch.Tensor:
    return spectral_norm(*args, **kw).norm


def _diag_rows() -> list:
    """Bad D, x and sigma, alike for the four functions."""
    calls = {
        SN: (spectral_norm, "spectral_norm", {"iters": 3}),
        JA: (jacobian_asymmetry, "jacobian_asymmetry", {"probes": 1}),
        LE: (lanczos_edges, "lanczos_edges", {"steps": 3}),
        RL: (residual_lipschitz, "residual_lipschitz", {"iters": 3}),
    }
    # to convergence on D = w * x (which cannot take a sub-batch: compact=False), and the
    # closed form: diag(w) has norm max |w_b|, is symmetric, and I - diag(w) has max |1 - w_b|
    converge = {
        SN: ({"iters": 60, "tol": 1e-7, "compact": False}, [0.9, 2.0]),
        JA: ({"probes": 1}, [0.0, 0.0]),
        LE: ({"steps": 8}, [0.9, 2.0]),
        RL: ({"iters": 60, "tol": 1e-7, "compact": False}, [0.9, 3.0]),
    }
    rows = []
    for entry, (f, op, kw) in calls.items():
        conv_kw, closed = converge[entry]

        def run(D=G, x=None, sigma=0.1, f=f, kw=kw, **more):
            return lambda: f(D, X() if x is None else x, sigma, **{**kw, **more})

        # the functions below the wrapper name themselves after residual_lipschitz's prefix
        rows += [
            Bad(
                entry,
                "type",
                "D-int",
                run(D=3),
                TypeError,
                rf"{op}: D must be a callable D\(x, sigma\) \(a denoiser\), not int",
            ),
            Bad(
                entry,
                "type",
                "x-ndarray",
                run(x=X().numpy()),
                TypeError,
                rf"{op}: .*x must be a tensor, not ndarray",
            ),
            Bad(
                entry,
                "nan-inf",
                "x-nan",
                run(x=X() * math.nan),
                ValueError,
                rf"{op}: .*x has NaN or Inf values",
            ),
            Bad(
                entry,
                "nan-inf",
                "x-inf",
                run(x=X() / 0),
                ValueError,
                rf"{op}: .*x has NaN or Inf values",
            ),
            Bad(
                entry,
                "rank",
                "x-1d",
                run(x=torch.rand(4)),
                ValueError,
                rf"{op}: .*x must be \[B, \.\.\.\] with a batch dimension, got shape \(4,\)",
            ),
            Bad(
                entry,
                "dtype",
                "x-float16",
                run(x=X().half()),
                TypeError,
                rf"{op}: .*x must be float32 or float64, not torch.float16",
            ),
            Bad(
                entry,
                "dtype",
                "x-bfloat16",
                run(x=X().bfloat16()),
                TypeError,
                rf"{op}: .*x must be float32 or float64, not torch.bfloat16",
            ),
            Bad(
                entry,
                "dtype",
                "x-int64",
                run(x=(X() * 9).long()),
                TypeError,
                rf"{op}: .*x must be float32 or float64, not torch.int64",
            ),
            Bad(
                entry,
                "dtype",
                "x-bool",
                run(x=X() > 0.5),
                TypeError,
                rf"{op}: .*x must be float32 or float64, not torch.bool",
            ),
            Bad(
                entry,
                "dtype",
                "x-complex",
                run(x=X().to(torch.complex64)),
                TypeError,
                rf"{op}: .*x must be float32 or float64, not torch.complex64",
            ),
            Bad(
                entry,
                "size",
                "x-batch-0",
                run(x=X(b=0)),
                ValueError,
                rf"{op}: .*x has a batch of size 0",
            ),
            Bad(
                entry,
                "size",
                "x-width-0",
                run(x=X(w=0)),
                ValueError,
                rf"{op}: .*x has a dimension of size 0 \(shape \(2, 1, 8, 0\)\)",
            ),
            Bad(
                entry,
                "meta",
                "x-meta",
                run(x=X().to("meta")),
                ValueError,
                rf"{op}: .*x is on the meta device \(it holds no data\)",
            ),
            Bad(
                entry,
                "meta",
                "sigma-meta",
                run(sigma=torch.ones(2, device="meta")),
                ValueError,
                rf"{op}: .*sigma is on the meta device",
            ),
            Bad(
                entry,
                "nan-inf",
                "sigma-nan",
                run(D=scaled, sigma=math.nan),
                ValueError,
                rf"{op}: .*sigma must be a finite number >= 0, got nan",
            ),
            Bad(
                entry,
                "nan-inf",
                "sigma-tensor-inf",
                run(D=scaled, sigma=torch.tensor([0.1, math.inf])),
                ValueError,
                rf"{op}: .*sigma must be finite and >= 0, got \[0.1.*, inf\]",
            ),
            Bad(
                entry,
                "value",
                "sigma-negative",
                run(D=scaled, sigma=-0.1),
                ValueError,
                rf"{op}: .*sigma must be a finite number >= 0, got -0.1",
            ),
            Bad(
                entry,
                "mismatch",
                "sigma-length-3",
                run(sigma=torch.ones(3)),
                ValueError,
                rf"{op}: .*sigma must be a float or have shape \(2,\), got \(3,\)",
            ),
            Bad(
                entry,
                "type",
                "sigma-str",
                run(sigma="0.1"),
                TypeError,
                rf"{op}: .*sigma must be None, a float or a tensor of shape \(2,\), not str",
            ),
            Bad(
                entry,
                "type",
                "sigma-bool",
                run(sigma=True),
                TypeError,
                rf"{op}: .*sigma must be None, a float or a tensor of shape \(2,\), not bool",
            ),
            Bad(
                entry,
                "dtype",
                "sigma-complex",
                run(sigma=torch.ones(2, dtype=torch.complex64)),
                TypeError,
                rf"{op}: .*sigma must be real, not torch.complex64",
            ),
            Bad(
                entry,
                "denoiser",
                "D-returns-nan-for-image-1",
                run(D=nan_for_image_1),
                FloatingPointError,
                rf"{op}: .*the Jacobian products of D are NaN or Inf for images \[1\]",
            ),
            Bad(
                entry,
                "denoiser",
                "D-returns-a-tuple",
                run(D=lambda x, s: (x,)),
                TypeError,
                rf"{op}: D must return a tensor, it returned tuple",
            ),
            Bad(
                entry,
                "denoiser",
                "D-returns-int64",
                run(D=lambda x, s: (x * 9).long()),
                TypeError,
                rf"{op}: D returned dtype torch.int64 for x of dtype torch.float32",
            ),
            Bad(
                entry,
                "denoiser",
                "D-returns-one-image",
                run(D=lambda x, s: x[:1]),
                ValueError,
                rf"{op}: D must map x of shape \(2, 1, 8, 8\) to an output of .*got \(1, 1, 8, 8\)",
            ),
            Bad(
                entry,
                "type",
                "seed-str",
                run(seed="0"),
                TypeError,
                rf"{op}: .*seed must be an int in \[0, 2\*\*63 - 1\], not str '0'",
            ),
            Bad(
                entry,
                "value",
                "seed-2**64",
                run(seed=2**64),
                ValueError,
                rf"{op}: .*seed must be an int in \[0, 2\*\*63 - 1\], not 18446744073709551616",
            ),
            Bad(
                entry,
                "value",
                "seed-negative",
                run(seed=-1),
                ValueError,
                rf"{op}: .*seed must be an int in \[0, 2\*\*63 - 1\], not -1",
            ),
            Good(
                entry,
                "layout",
                "x-channels-last",
                lambda f=f, kw=kw: _value(
                    f(G, X().to(memory_format=torch.channels_last), 0.1, **kw)
                ),
                lambda f=f, kw=kw: _value(f(G, X(), 0.1, **kw)),
                1e-6,
            ),
            Good(
                entry,
                "layout",
                "x-transposed-view",
                lambda f=f, kw=kw: _value(f(G, X(h=8, w=6).transpose(2, 3), 0.1, **kw)),
                lambda f=f, kw=kw: _value(
                    f(G, X(h=8, w=6).transpose(2, 3).contiguous(), 0.1, **kw)
                ),
                1e-6,
            ),
            Good(
                entry,
                "dtype",
                "x-float64-closed-form",
                lambda f=f, kw=conv_kw: _value(f(weighted, X().double(), None, **kw)),
                lambda closed=closed: torch.tensor(closed),
                1e-6,
            ),
        ]
    return rows


def _value(res) -> torch.Tensor:
    return res if isinstance(res, torch.Tensor) else res.norm


CASES = [
    *_diag_rows(),
    # ---- spectral_norm ---------------------------------------------------------------------
    Bad(
        SN,
        "value",
        "iters-0",
        lambda: spectral_norm(G, X(), 0.1, iters=0),
        ValueError,
        r"spectral_norm: iters must be an int in \[1, 100000\], not 0",
    ),
    Bad(
        SN,
        "value",
        "iters-10**9",
        lambda: spectral_norm(G, X(), 0.1, iters=10**9),
        ValueError,
        rf"spectral_norm: iters must be an int in \[1, {MAX_ITERS}\], not 1000000000",
    ),
    Bad(
        SN,
        "type",
        "iters-float",
        lambda: spectral_norm(G, X(), 0.1, iters=5.0),
        TypeError,
        r"spectral_norm: iters must be an int",
    ),
    Bad(
        SN,
        "type",
        "iters-bool",
        lambda: spectral_norm(G, X(), 0.1, iters=True),
        TypeError,
        r"spectral_norm: iters must be an int in \[1, 100000\], not bool True",
    ),
    Bad(
        SN,
        "value",
        "check_every-0",
        lambda: spectral_norm(G, X(), 0.1, check_every=0),
        ValueError,
        r"spectral_norm: check_every must be an int in \[1, 100000\], not 0",
    ),
    Bad(
        SN,
        "value",
        "tol-negative",
        lambda: spectral_norm(G, X(), 0.1, tol=-1e-3),
        ValueError,
        r"spectral_norm: tol must be a finite number >= 0, not -0\.001",
    ),
    Bad(
        SN,
        "nan-inf",
        "tol-nan",
        lambda: spectral_norm(G, X(), 0.1, tol=math.nan),
        ValueError,
        r"spectral_norm: tol must be a finite number >= 0, not nan",
    ),
    Bad(
        SN,
        "nan-inf",
        "tol-inf",
        lambda: spectral_norm(G, X(), 0.1, tol=math.inf),
        ValueError,
        r"spectral_norm: tol must be a finite number >= 0, not inf",
    ),
    Bad(
        SN,
        "type",
        "tol-str",
        lambda: spectral_norm(G, X(), 0.1, tol="1e-3"),
        TypeError,
        r"spectral_norm: tol must be a finite number >= 0, not str '1e-3'",
    ),
    Bad(
        SN,
        "type",
        "symmetric-str",
        lambda: spectral_norm(G, X(), 0.1, symmetric="yes"),
        TypeError,
        r"spectral_norm: symmetric must be True or False, not str 'yes'",
    ),
    Bad(
        SN,
        "type",
        "compact-none",
        lambda: spectral_norm(G, X(), 0.1, compact=None),
        TypeError,
        r"spectral_norm: compact must be True or False, not None",
    ),
    Bad(
        SN,
        "mismatch",
        "v0-wrong-shape",
        lambda: spectral_norm(G, X(), 0.1, v0=torch.rand(3)),
        ValueError,
        r"spectral_norm: v0 must be a tensor of x's shape \(2, 1, 8, 8\)",
    ),
    Bad(
        SN,
        "nan-inf",
        "v0-nan",
        lambda: spectral_norm(G, X(), 0.1, v0=X() * math.nan),
        ValueError,
        r"spectral_norm: v0 has NaN or Inf values",
    ),
    Bad(
        SN,
        "value",
        "v0-zero-for-image-1",
        lambda: spectral_norm(G, X(), 0.1, v0=torch.cat([X()[:1], torch.zeros(1, 1, 8, 8)])),
        ValueError,
        r"spectral_norm: v0 is zero for images \[1\]; start from a non-zero vector",
    ),
    Bad(
        SN,
        "dtype",
        "v0-int",
        lambda: spectral_norm(G, X(), 0.1, v0=torch.ones(2, 1, 8, 8, dtype=torch.long)),
        TypeError,
        r"spectral_norm: v0 must be a floating tensor like x, not torch.int64",
    ),
    Bad(
        SN,
        "meta",
        "v0-meta",
        lambda: spectral_norm(G, X(), 0.1, v0=X().to("meta")),
        ValueError,
        r"spectral_norm: v0 is on the meta device",
    ),
    Bad(
        SN,
        "name",
        "backend-unknown",
        lambda: spectral_norm(G, X(), 0.1, backend="cudnn"),
        ValueError,
        r"backend must be one of .*not 'cudnn'",
    ),
    Bad(
        SN,
        "denoiser",
        "symmetric-D-returns-a-crop",
        lambda: spectral_norm(lambda x, s: x[..., :4, :4], X(), 0.1, symmetric=True),
        ValueError,
        r"spectral_norm: D must map x of shape \(2, 1, 8, 8\) to an output of shape "
        r"\(2, 1, 8, 8\), got \(2, 1, 4, 4\)",
    ),
    Bad(
        SN,
        "denoiser",
        "D-refuses-a-sub-batch",
        lambda: spectral_norm(two_speeds_full_batch_only, X(), None, iters=40, check_every=1),
        ValueError,
        r"on a sub-batch of x \(if D cannot take one, pass compact=False\)",
    ),
    Good(
        SN,
        "denoiser",
        "crop-is-a-projection-norm-1",
        lambda: spectral(lambda x, s: x[..., 2:6, 1:7], X(), 0.1, iters=3),
        lambda: torch.ones(2),
        1e-6,
    ),
    Good(
        SN,
        "value",
        "diagonal-jacobian-per-image",
        lambda: spectral(weighted, X(), None, iters=40, tol=1e-6, compact=False),
        lambda: torch.tensor([0.9, 2.0]),
        1e-5,
    ),
    Good(
        SN,
        "value",
        "symmetric-diagonal-per-image",
        lambda: spectral(weighted, X(), None, iters=40, tol=1e-6, symmetric=True, compact=False),
        lambda: torch.tensor([0.9, 2.0]),
        1e-5,
    ),
    Good(
        SN,
        "value",
        "per-image-sigma-tensor",
        lambda: spectral(scaled, X(), torch.tensor([0.5, 2.0]), iters=3),
        lambda: torch.tensor([1.5, 3.0]),
        1e-5,
    ),
    Good(
        SN,
        "size",
        "1x1-gaussian-is-the-identity",
        lambda: spectral(G, X(h=1, w=1), 0.1, iters=3),
        lambda: torch.ones(2),
        1e-6,
    ),
    Good(
        SN,
        "value",
        "converged-only-within-its-bound",
        lambda: _honest(spectral_norm(G, X(), 0.1, iters=200, tol=1e-3)),
        lambda: torch.ones(2),
        1.1e-3,
    ),
    Good(
        SN,
        "value",
        "iters-1-is-not-converged",
        lambda: spectral_norm(weighted, X(), None, iters=1).converged.double(),
        lambda: torch.zeros(2),
        0.0,
    ),
    # ---- jacobian_asymmetry ------------------------------------------------------------------
    Bad(
        JA,
        "value",
        "probes-0",
        lambda: jacobian_asymmetry(G, X(), 0.1, probes=0),
        ValueError,
        r"jacobian_asymmetry: probes must be an int in \[1, 10000\], not 0",
    ),
    Bad(
        JA,
        "value",
        "probes-10**9",
        lambda: jacobian_asymmetry(G, X(), 0.1, probes=10**9),
        ValueError,
        rf"jacobian_asymmetry: probes must be an int in \[1, {MAX_PROBES}\]",
    ),
    Bad(
        JA,
        "type",
        "probes-bool",
        lambda: jacobian_asymmetry(G, X(), 0.1, probes=True),
        TypeError,
        r"jacobian_asymmetry: probes must be an int in \[1, 10000\], not bool True",
    ),
    Bad(
        JA,
        "denoiser",
        "D-returns-a-crop",
        lambda: jacobian_asymmetry(lambda x, s: x[..., :4, :4], X(), 0.1),
        ValueError,
        r"jacobian_asymmetry: D must map x of shape \(2, 1, 8, 8\) to an output of shape "
        r"\(2, 1, 8, 8\), got \(2, 1, 4, 4\)",
    ),
    Good(
        JA,
        "value",
        "symmetric-gaussian-is-0",
        lambda: jacobian_asymmetry(G, X(), 0.1),
        lambda: torch.zeros(2),
        1e-5,
    ),
    Good(
        JA,
        "value",
        "transpose-of-a-column-shift",
        lambda: jacobian_asymmetry(lambda x, s: torch.roll(x, 1, dims=3), X(), 0.1, probes=3),
        lambda: _roll_asymmetry(3),
        1e-5,
    ),
    # ---- lanczos_edges -----------------------------------------------------------------------
    Bad(
        LE,
        "value",
        "steps-0",
        lambda: lanczos_edges(G, X(), 0.1, steps=0),
        ValueError,
        r"lanczos_edges: steps must be an int in \[1, 1000\], not 0",
    ),
    Bad(
        LE,
        "value",
        "steps-10**9",
        lambda: lanczos_edges(G, X(), 0.1, steps=10**9),
        ValueError,
        rf"lanczos_edges: steps must be an int in \[1, {MAX_STEPS}\], not 1000000000",
    ),
    Bad(
        LE,
        "type",
        "steps-float",
        lambda: lanczos_edges(G, X(), 0.1, steps=4.0),
        TypeError,
        r"lanczos_edges: steps must be an int",
    ),
    Bad(
        LE,
        "type",
        "differentiable-str",
        lambda: lanczos_edges(G, X(), 0.1, differentiable="no"),
        TypeError,
        r"lanczos_edges: differentiable must be True or False, not str 'no'",
    ),
    Good(
        LE,
        "value",
        "gaussian-extreme-eigenvalues",
        lambda: _edges(lanczos_edges(G, X(h=4, w=4), 0.1, steps=16)),
        lambda: torch.tensor([[gaussian_bottom(4, 4), 1.0]] * 2),
        1e-5,
    ),
    Good(
        LE,
        "value",
        "diagonal-jacobian-per-image",
        lambda: _edges(lanczos_edges(weighted, X(), None, steps=8)),
        lambda: torch.tensor([[0.1, 0.9], [-2.0, 0.1]]),
        1e-5,
    ),
    Good(
        LE,
        "size",
        "1x1-invariant-after-one-step",
        lambda: lanczos_edges(G, X(h=1, w=1), 0.1, steps=5).steps.double(),
        lambda: torch.ones(2),
        0.0,
    ),
    # ---- residual_lipschitz ----------------------------------------------------------------
    Bad(
        RL,
        "name",
        "method-unknown",
        lambda: residual_lipschitz(G, X(), 0.1, method="arnoldi"),
        ValueError,
        r"residual_lipschitz: method must be 'power' or 'lanczos', not 'arnoldi'",
    ),
    Bad(
        RL,
        "name",
        "option-unknown",
        lambda: residual_lipschitz(G, X(), 0.1, itres=5),
        TypeError,
        r"residual_lipschitz: 'itres' is not an option of method='power' "
        r"\(spectral_norm\); it takes iters, tol",
    ),
    Bad(
        RL,
        "name",
        "power-option-for-lanczos",
        lambda: residual_lipschitz(G, X(), 0.1, method="lanczos", iters=5),
        TypeError,
        r"residual_lipschitz: 'iters' is not an option of method='lanczos' \(lanczos_edges\); "
        r"it takes steps",
    ),
    Bad(
        RL,
        "denoiser",
        "D-returns-a-crop",
        lambda: residual_lipschitz(lambda x, s: x[..., :4, :4], X(), 0.1, iters=3),
        ValueError,
        r"residual_lipschitz: D must map x of shape \(2, 1, 8, 8\) to an output of shape "
        r"\(2, 1, 8, 8\), got \(2, 1, 4, 4\)",
    ),
    Bad(
        RL,
        "value",
        "iters-0",
        lambda: residual_lipschitz(G, X(), 0.1, iters=0),
        ValueError,
        r"residual_lipschitz: spectral_norm: iters must be an int in \[1, 100000\], not 0",
    ),
    Good(
        RL,
        "value",
        "gaussian-power-symmetric",
        lambda: residual_lipschitz(G3, X(h=4, w=4), 0.1, iters=80, tol=1e-7, symmetric=True).norm,
        lambda: torch.full((2,), 1 - gaussian_bottom(4, 4, 0.3)),
        1e-5,
    ),
    Good(
        RL,
        "value",
        "gaussian-lanczos",
        lambda: residual_lipschitz(G3, X(h=4, w=4), 0.1, method="lanczos", steps=16).norm,
        lambda: torch.full((2,), 1 - gaussian_bottom(4, 4, 0.3)),
        1e-5,
    ),
    Good(
        RL,
        "value",
        "diagonal-per-image",
        lambda: residual_lipschitz(weighted, X(), None, iters=60, tol=1e-7, compact=False).norm,
        lambda: torch.tensor([0.9, 3.0]),
        1e-4,
    ),
    Good(
        RL,
        "size",
        "1x1-gaussian-residual-is-0",
        lambda: residual_lipschitz(G, X(h=1, w=1), 0.1, iters=2).norm,
        lambda: torch.zeros(2),
        1e-6,
    ),
]

CASES += [
    Bad(
        IS,
        "type",
        "u-ndarray",
        lambda: initial_state(X().numpy()),
        TypeError,
        r"initial_state: u must be a tensor, not ndarray",
    ),
    Bad(
        IS,
        "dtype",
        "u-int64",
        lambda: initial_state(torch.ones(2, 3, dtype=torch.long)),
        TypeError,
        r"initial_state: u must be floating, not torch.int64",
    ),
    Bad(
        IS,
        "rank",
        "u-1d",
        lambda: initial_state(torch.rand(3)),
        ValueError,
        r"initial_state: u must be \[B, \.\.\.\] with at least one dimension per image",
    ),
    Good(
        IS,
        "value",
        "closed-form-and-a-zero-image",
        lambda: initial_state(torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)),
        lambda: torch.tensor([[0.0, 0.2, 1.0, 0.0], [0.0] * 4], dtype=torch.float64),
        1e-12,
    ),
]


def _honest(res) -> torch.Tensor:
    """An image reported converged is within its error bound of the true norm 1 (Gaussian
    smoothing, J's top eigenvalue 1 at f = 0): returns the norms after checking that."""
    assert bool(res.converged.all()), f"not converged: {res.converged.tolist()}"
    assert bool((res.error_bound <= 1e-3 * res.norm).all())
    assert bool(((res.norm - 1).abs() <= res.error_bound + 1e-6).all())
    return res.norm


def _edges(res) -> torch.Tensor:
    return torch.stack([res.smallest, res.largest], dim=1)


def _roll_asymmetry(probes: int) -> torch.Tensor:
    """For D = a cyclic shift S (orthogonal), ||(S - S^T) v|| / ||S v|| averaged over the same
    Gaussian probes that jacobian_asymmetry draws (seed 0, in order)."""
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(2, dtype=torch.float64)
    for _ in range(probes):
        v = torch.randn((2, 1, 8, 8), generator=gen).double()
        d = torch.roll(v, 1, dims=3) - torch.roll(v, -1, dims=3)
        total += d.flatten(1).norm(dim=1) / v.flatten(1).norm(dim=1)
    return total / probes


# ---- metrics ---------------------------------------------------------------------------------

R = image(2, 1, 16, 16, seed=1)


def offset(d: float) -> torch.Tensor:
    return R + d


def skimage_ssim(x: torch.Tensor, ref: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """scikit-image's SSIM with pnpfast's definition (Gaussian 11x11 window, std 1.5,
    population moments), per image, mean over channels."""
    out = []
    for a, b in zip(x.double().numpy(), ref.double().numpy(), strict=True):
        out.append(
            np.mean(
                [
                    structural_similarity(
                        ac,
                        bc,
                        gaussian_weights=True,
                        sigma=1.5,
                        use_sample_covariance=False,
                        data_range=peak,
                    )
                    for ac, bc in zip(a, b, strict=True)
                ]
            )
        )
    return torch.tensor(out)


def const_ssim(a: float, b: float, peak: float = 1.0) -> float:
    c1 = (0.01 * peak) ** 2
    return (2 * a * b + c1) / (a * a + b * b + c1)


def _metric_rows() -> list:
    rows = []
    for entry, f in ((PSNR, psnr), (SSIM, ssim)):
        n = entry.rsplit(".", 1)[1]
        rows += [
            Bad(
                entry,
                "mismatch",
                "batch-mismatch",
                lambda f=f: f(R[:1], R),
                ValueError,
                r"x and ref must have the same shape, got \(1, 1, 16, 16\) and \(2, 1, 16, 16\)",
            ),
            Bad(
                entry,
                "mismatch",
                "channel-mismatch",
                lambda f=f: f(R.expand(2, 3, 16, 16), R),
                ValueError,
                r"x and ref must have the same shape",
            ),
            Bad(
                entry,
                "nan-inf",
                "x-nan-in-image-1",
                lambda f=f: f(torch.cat([R[:1], R[1:] * math.nan]), R),
                ValueError,
                r"x contains NaN or Inf in images \[1\]",
            ),
            Bad(
                entry,
                "nan-inf",
                "ref-inf-in-image-0",
                lambda f=f: f(R, torch.cat([R[:1] / 0, R[1:]])),
                ValueError,
                r"ref contains NaN or Inf in images \[0\]",
            ),
            Bad(
                entry,
                "value",
                "peak-0",
                lambda f=f: f(R, R, 0.0),
                ValueError,
                r"peak must be a finite number > 0, not 0\.0",
            ),
            Bad(
                entry,
                "value",
                "peak-negative",
                lambda f=f: f(R, R, -1.0),
                ValueError,
                r"peak must be a finite number > 0, not -1\.0",
            ),
            Bad(
                entry,
                "nan-inf",
                "peak-nan",
                lambda f=f: f(R, R, math.nan),
                ValueError,
                r"peak must be a finite number > 0, not nan",
            ),
            Bad(
                entry,
                "nan-inf",
                "peak-inf",
                lambda f=f: f(R, R, math.inf),
                ValueError,
                r"peak must be a finite number > 0, not inf",
            ),
            Bad(
                entry,
                "type",
                "peak-str",
                lambda f=f: f(R, R, "1"),
                TypeError,
                r"peak must be a finite number > 0, not str '1'",
            ),
            Bad(
                entry,
                "type",
                "peak-bool",
                lambda f=f: f(R, R, True),
                TypeError,
                r"peak must be a finite number > 0, not bool True",
            ),
            Bad(
                entry,
                "type",
                "peak-tensor",
                lambda f=f: f(R, R, torch.tensor(1.0)),
                TypeError,
                r"peak must be a finite number > 0, not Tensor tensor\(1\.\)",
            ),
            Bad(
                entry,
                "dtype",
                "x-int64",
                lambda f=f: f((R * 255).long(), R),
                TypeError,
                r"x must have dtype float16, bfloat16, float32, float64, not int64",
            ),
            Bad(
                entry,
                "dtype",
                "ref-bool",
                lambda f=f: f(R, R > 0.5),
                TypeError,
                r"ref must have dtype .*not bool",
            ),
            Bad(
                entry,
                "dtype",
                "x-complex",
                lambda f=f: f(R.to(torch.complex64), R),
                TypeError,
                r"x must have dtype .*not complex64",
            ),
            Bad(
                entry,
                "rank",
                "x-3d",
                lambda f=f: f(R[0], R[0]),
                ValueError,
                r"x must have shape \[B, C, H, W\] \(4 dimensions\), got shape \(1, 16, 16\)",
            ),
            Bad(
                entry,
                "type",
                "x-ndarray",
                lambda f=f: f(R.numpy(), R),
                TypeError,
                r"x must be a torch.Tensor of shape \[B, C, H, W\], not ndarray",
            ),
            Bad(
                entry,
                "size",
                "batch-0",
                lambda f=f: f(R[:0], R[:0]),
                ValueError,
                r"x has a batch of size 0",
            ),
            Bad(
                entry,
                "size",
                "width-0",
                lambda f=f: f(R[..., :0], R[..., :0]),
                ValueError,
                r"x has a dimension of size 0",
            ),
            Bad(
                entry,
                "meta",
                "x-meta",
                lambda f=f: f(R.to("meta"), R),
                ValueError,
                r"x is on the meta device \(it holds no data\)",
            ),
            Bad(
                entry,
                "meta",
                "ref-meta",
                lambda f=f: f(R, R.to("meta")),
                ValueError,
                r"ref is on the meta device",
            ),
            Good(
                entry,
                "layout",
                "x-channels-last",
                lambda f=f: f(offset(0.05).to(memory_format=torch.channels_last), R),
                lambda f=f: f(offset(0.05).contiguous(), R),
                1e-12,
            ),
            Good(
                entry,
                "layout",
                "x-transposed-view",
                lambda f=f: f(offset(0.05).transpose(2, 3), R.transpose(2, 3).contiguous()),
                lambda f=f: f(offset(0.05), R),
                1e-12,
            ),
            Good(
                entry,
                "dtype",
                "float64-and-float32-mixed",
                lambda f=f: f(offset(0.05).double(), R),
                lambda f=f: f(offset(0.05), R.double()),
                1e-12,
            ),
        ]
        del n
    return rows


CASES += [
    *_metric_rows(),
    Good(
        PSNR,
        "value",
        "constant-offset-closed-form",
        lambda: psnr(offset(0.1), R),
        lambda: torch.full((2,), 10 * math.log10(1 / 0.01)),
        1e-5,
    ),
    Good(
        PSNR,
        "value",
        "peak-255",
        lambda: psnr(offset(0.1) * 255, R * 255, peak=255.0),
        lambda: torch.full((2,), 10 * math.log10(1 / 0.01)),
        1e-4,
    ),
    Good(
        PSNR,
        "size",
        "1x1",
        lambda: psnr(torch.full((2, 1, 1, 1), 0.5), torch.tensor([0.4, 0.25]).view(2, 1, 1, 1)),
        lambda: torch.tensor([20.0, 10 * math.log10(1 / 0.0625)]),
        1e-5,
    ),
    Good(
        PSNR,
        "dtype",
        "float16",
        lambda: psnr(offset(0.125).half(), R.half()),
        lambda: psnr(offset(0.125).half().double(), R.half().double()),
        1e-12,
    ),
    Good(
        PSNR,
        "dtype",
        "bfloat16-against-float64",
        lambda: psnr(offset(0.125).bfloat16(), R.bfloat16()),
        lambda: (
            10
            * torch.log10(
                1
                / (offset(0.125).bfloat16().double() - R.bfloat16().double())
                .square()
                .flatten(1)
                .mean(1)
            )
        ),
        1e-9,
    ),
    Bad(
        SSIM,
        "size",
        "1x1-smaller-than-the-window",
        lambda: ssim(torch.rand(1, 1, 1, 1), torch.rand(1, 1, 1, 1)),
        ValueError,
        r"ssim: x and ref must be at least 11x11 pixels .*got 1x1; psnr takes any size",
    ),
    Bad(
        SSIM,
        "size",
        "10x16-smaller-than-the-window",
        lambda: ssim(R[..., :10, :], R[..., :10, :]),
        ValueError,
        r"ssim: x and ref must be at least 11x11 pixels .*got 10x16",
    ),
    Good(
        SSIM,
        "size",
        "11x11-constant-images",
        lambda: ssim(
            torch.full((1, 1, 11, 11), 0.3, dtype=torch.float64),
            torch.full((1, 1, 11, 11), 0.6, dtype=torch.float64),
        ),
        lambda: torch.tensor([const_ssim(0.3, 0.6)], dtype=torch.float64),
        1e-9,
    ),
    Good(
        SSIM,
        "value",
        "against-scikit-image",
        lambda: ssim(offset(0.05) * image(2, 1, 16, 16), R),
        lambda: skimage_ssim(offset(0.05) * image(2, 1, 16, 16), R),
        1e-9,
    ),
    Good(
        SSIM,
        "value",
        "color-against-scikit-image",
        lambda: ssim(image(1, 3, 12, 13, seed=2), image(1, 3, 12, 13, seed=3)),
        lambda: skimage_ssim(image(1, 3, 12, 13, seed=2), image(1, 3, 12, 13, seed=3)),
        1e-9,
    ),
    Good(
        SSIM,
        "dtype",
        "float16-against-scikit-image",
        lambda: ssim(image(1, 1, 12, 12, seed=4).half(), R[:1, :, :12, :12].half()),
        lambda: skimage_ssim(image(1, 1, 12, 12, seed=4).half(), R[:1, :, :12, :12].half()),
        1e-9,
    ),
    Good(
        SSIM,
        "value",
        "peak-255-against-scikit-image",
        lambda: ssim(offset(0.05) * 255, R * 255, peak=255.0),
        lambda: skimage_ssim(offset(0.05) * 255, R * 255, peak=255.0),
        1e-9,
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)

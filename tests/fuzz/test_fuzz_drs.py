"""Fuzz table (issue 17's conventions) of ``pnpfast.solve(..., method="drs")``: plain PnP
Douglas-Rachford splitting (issue 19), kept out of test_fuzz_solvers.py's big table.

Bad rows: each per-image parameter (sigma_d, gamma, lam, beta) NaN, Inf, out of range, of the
wrong type or length; gamma with lam; beta at or beyond 2; an unknown parameter; a denoiser
returning NaN for one image. Good rows: float64 and float32, per-image kernels, noise levels and
parameters, a given start, non-contiguous and channels_last measurements, a 1x1 image, compared
with a NumPy float64 run of the iteration written here (dense circulant blur, dense prox solve,
an affine denoiser D(x) = 0.8 x + 0.1 + sigma_d):

    u = prox_{gamma f}(z),  x = D(2 u - z),  z <- z + beta (x - u),  z_0 = A^T y, output x.
"""

import numpy as np
import torch
from fuzz_cases import Bad, Good, blur_matrix, channels_last, check, params, transposed

import pnpfast
from pnpfast.operators import Blur

NAN, INF = float("nan"), float("inf")
F32, F64 = torch.float32, torch.float64
SOLVE = "pnpfast.solve"
FLOOR = 0.255 / 255
M = "drs"


def rand(*shape, seed=0, dtype=F64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def kern(seed=1) -> torch.Tensor:
    k = rand(3, 3, seed=seed) + 0.1
    return k / k.sum()


class Affine:
    """D(x, s) = 0.8 x + 0.1 + s per image: the oracle below knows sigma_d reaches it."""

    def __call__(self, x, sigma):
        return 0.8 * x + 0.1 + sigma.view(-1, 1, 1, 1)


class NaNFor1:
    """0.8 x for image 0, NaN for image 1."""

    def __call__(self, x, sigma):
        out = 0.8 * x
        out[1:] = NAN
        return out


def y8(B=1, C=1, H=8, W=8, dtype=F32) -> torch.Tensor:
    return rand(B, C, H, W, seed=3, dtype=dtype)


def run(*, y=None, denoiser=None, **kw):
    y = y8() if y is None else y
    kw.setdefault("max_iter", 2)
    kw.setdefault("sigma", 0.05)
    return pnpfast.solve(y, Blur(kern()), Affine() if denoiser is None else denoiser, M, **kw)


def bad(category, what, error, match, spec):
    return Bad(SOLVE, category, f"{M}: {what}", lambda: run(**spec()), error, match)


def param_rows() -> list[Bad]:
    rows = []
    for name, kind in (("sigma_d", "nonneg"), ("gamma", "pos"), ("lam", "pos"), ("beta", "pos")):
        cases = [
            ("nan-inf", "NaN", NAN, ValueError, rf"^{name} must be finite, got nan"),
            ("nan-inf", "Inf", INF, ValueError, rf"^{name} must be finite, got inf"),
            ("value", "negative", -1.0, ValueError,
             rf"^{name} must be {'> 0' if kind == 'pos' else '>= 0'}, got -1.0"),
            ("type", "str", "0.1", TypeError,
             rf"^{name} must be a float or a tensor of length 2, not str"),
            ("mismatch", "length 3 for 2 images", torch.full((3,), 0.5), ValueError,
             rf"^{name} must be a float or a tensor of length 2 \(one per image\), got shape "
             r"\(3,\)"),
        ]  # fmt: skip
        if kind == "pos":
            cases.append(("value", "zero", 0.0, ValueError, rf"^{name} must be > 0, got 0.0"))
        for cat, what, value, err, match in cases:
            rows.append(
                bad(cat, f"{name} {what}", err, match,
                    lambda name=name, v=value: {"y": y8(2), name: v})
            )  # fmt: skip
    return rows


BAD = [
    *param_rows(),
    bad("value", "beta 2 (the end of the relaxation range)", ValueError,
        r"^beta must be in \(0, 2\), the relaxation range of DRS, got 2.0",
        lambda: {"beta": 2.0}),
    bad("value", "beta 3 for image 1", ValueError,
        r"^beta must be in \(0, 2\), the relaxation range of DRS, got 3.0",
        lambda: {"y": y8(2), "beta": torch.tensor([1.0, 3.0])}),
    bad("value", "gamma and lam both", ValueError,
        r"^drs takes gamma or lam, not both: lam only sets the default gamma",
        lambda: {"gamma": 0.5, "lam": 1.0}),
    bad("name", "alpha (not a drs parameter)", TypeError,
        r"^method 'drs' does not take alpha; its parameters are beta, gamma, lam, sigma_d",
        lambda: {"alpha": 0.5}),
    bad("denoiser", "NaN for image 1", FloatingPointError,
        r"^drs: the iterate of images \[1\] is NaN or Inf by iteration 2",
        lambda: {"y": y8(2), "denoiser": NaNFor1()}),
    bad("denoiser", "NaN for image 1 with tol 0 and no history", FloatingPointError,
        r"^drs: the iterate of images \[1\] is NaN or Inf by iteration 2",
        lambda: {"y": y8(2), "denoiser": NaNFor1(), "tol": 0.0}),
]  # fmt: skip


def dense_drs(y, kernels, sigma, p, K, x0=None) -> torch.Tensor:
    """The float64 NumPy run, plane by plane; sigma and each p value a float or a list."""
    ys = y.detach().double().numpy()
    B, C, H, W = ys.shape
    ks = kernels.double().numpy()
    out = np.zeros_like(ys)
    for b in range(B):
        A = blur_matrix(ks[b if ks.shape[0] > 1 else 0], H, W)
        AtA, n = A.T @ A, H * W
        sb = sigma[b] if isinstance(sigma, list) else sigma
        pb = {k: v[b] if isinstance(v, list) else v for k, v in p.items()}
        sd = pb.get("sigma_d", 5 * max(sb, FLOOR))
        gamma = pb.get("gamma", max(sd, FLOOR) ** 2 / (pb.get("lam", 1.0) * max(sb, FLOOR) ** 2))
        beta = pb.get("beta", 1.0)
        for c in range(C):
            yc = ys[b, c].ravel()
            z = A.T @ yc if x0 is None else x0[b, c].double().numpy().ravel()
            for _ in range(K):
                u = np.linalg.solve(np.eye(n) + gamma * AtA, z + gamma * A.T @ yc)
                x = 0.8 * (2 * u - z) + 0.1 + sd
                z = z + beta * (x - u)
            out[b, c] = x.reshape(H, W)
    return torch.from_numpy(out)


def good(category, what, y, kernels, *, sigma=0.05, p=None, K=3, x0=None, dtype=F64, atol=1e-9,
         layout=None):  # fmt: skip
    p = {} if p is None else p

    def call():
        s = torch.tensor(sigma, dtype=dtype) if isinstance(sigma, list) else sigma
        kw = {n: torch.tensor(v, dtype=dtype) if isinstance(v, list) else v for n, v in p.items()}
        if x0 is not None:
            kw["x0"] = x0().to(dtype)
        yy = y().to(dtype)
        yy = layout(yy) if layout is not None else yy
        A = Blur(kernels if kernels.shape[0] > 1 else kernels[0])
        return pnpfast.solve(yy, A, Affine(), M, sigma=s, max_iter=K, tol=0.0, **kw).x

    def oracle():
        return dense_drs(y(), kernels, sigma, p, K, None if x0 is None else x0())

    return Good(SOLVE, category, f"{M}: {what}", call, oracle, atol)


P1 = {"gamma": 0.7, "sigma_d": 0.1, "beta": 1.3}
GOOD = [
    good("dtype", "float64", lambda: rand(1, 1, 8, 8, seed=5), kern()[None], p=P1),
    good("dtype", "float32", lambda: rand(1, 1, 8, 8, seed=5), kern()[None], p=P1,
         dtype=F32, atol=1e-5),
    good("value", "defaults (sigma_d 5 sigma, gamma sigma_d^2 / sigma^2, beta 1)",
         lambda: rand(1, 1, 8, 8, seed=6), kern()[None]),
    good("value", "sigma 0 (floored in the default gamma)", lambda: rand(1, 1, 8, 8, seed=6),
         kern()[None], sigma=0.0, p={"lam": 0.5}),
    good("mismatch", "per-image kernels, sigma, gamma and beta",
         lambda: rand(2, 2, 6, 7, seed=7), torch.stack([kern(1), kern(2)]),
         sigma=[0.02, 0.06], p={"gamma": [0.4, 2.0], "beta": [0.5, 1.8], "sigma_d": [0.05, 0.2]}),
    good("mismatch", "per-image lam and default sigma_d", lambda: rand(2, 1, 6, 6, seed=8),
         torch.stack([kern(3), kern(4)]), sigma=[0.01, 0.04], p={"lam": [0.3, 2.0]}),
    good("value", "a given start x0", lambda: rand(1, 1, 8, 8, seed=9), kern()[None], p=P1,
         x0=lambda: rand(1, 1, 8, 8, seed=10)),
    good("layout", "non-contiguous y", lambda: rand(1, 2, 8, 6, seed=11), kern()[None], p=P1,
         layout=transposed),
    good("layout", "channels_last y", lambda: rand(1, 3, 6, 6, seed=12), kern()[None], p=P1,
         layout=channels_last),
    good("size", "1x1 image, 1x1 kernel", lambda: rand(1, 1, 1, 1, seed=13),
         torch.ones(1, 1, 1, dtype=F64), p=P1),
]  # fmt: skip

CASES = [*BAD, *GOOD]


@params(CASES)
def test_fuzz(case):
    check(case)

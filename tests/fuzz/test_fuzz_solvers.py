"""Fuzz table (issue 17) of the solver entry points: ``pnpfast.solve`` with every method and
``pnpfast.sample`` (the per-method parameter dataclasses are reached through solve's keywords).

Bad rows: the exact exception type and a message naming the argument and what is wrong. Good rows
(float64 and float32, non-contiguous and channels_last inputs, per-image kernels, noise levels and
parameters, 1x1 images, a kernel as large as the image, a huge max_iter that tol stops) are
compared with NumPy float64 runs written here from each method's formulas: dense circulant blur
matrices, dense solves for the proxes, and an affine denoiser D(x) = a x + b (for the
gradient-step methods a GradientStep around the affine network N(x) = c x + d, whose potential
g(x) = 1/2 ||(1 - c) x - d||^2 has a closed-form gradient). The sampler rows use beta = 1 (no
injected noise), so that its run from the seeded start is deterministic.

Rows of tests/test_bad_input.py are not repeated (Blur's kernel checks, the zero-batch, meta and
oversized y of hqs and pgd, wrong denoiser outputs of hqs, admm, pgd, fista, red-sd, red-apg and
pnp-reg, its PARAM_CASES). 8x8 images or smaller, 2 or 3 iterations: a few seconds.

max_iter: an int in [1, 2**63 - 1] (the iteration counts are int64); a huge value is a legitimate
long run that tol stops, so there is no smaller cap (the schedules of hqs and red-*pg are computed
per iteration, so it costs no memory).
"""

import math

import numpy as np
import pytest
import torch
from fuzz_cases import Bad, Good, blur_matrix, channels_last, check, params, transposed

import pnpfast
from pnpfast.denoisers import GradientStep
from pnpfast.operators import Blur, Inpainting

NAN, INF = float("nan"), float("inf")
F32, F64 = torch.float32, torch.float64
SOLVE, SAMPLE = "pnpfast.solve", "pnpfast.sample"
FLOOR = 0.255 / 255  # the solvers' floor on the noise level (DPIR's)

METHODS = [
    "hqs",
    "admm",
    "pgd",
    "fista",
    "red-sd",
    "red-fp",
    "red-admm",
    "red-pg",
    "red-apg",
    "red-dpg",
    "red-gd",
    "gs-pnp",
    "prox-pnp-pgd",
    "prox-pnp-drs",
    "pnp-reg",
]
SAMPLER = "implicit-prior"
POTENTIAL = {"gs-pnp", "prox-pnp-pgd", "prox-pnp-drs"}


def rand(*shape, seed=0, dtype=F64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def kern(h=3, w=3, seed=1) -> torch.Tensor:
    """A positive, non-symmetric kernel summing to 1 (float64)."""
    k = rand(h, w, seed=seed) + 0.1
    return k / k.sum()


# -- denoisers ----------------------------------------------------------------------------------

A_AFF, B_AFF = 0.8, 0.1  # D(x) = 0.8 x + 0.1
C_NET, D_NET = 0.6, 0.05  # N(x) = 0.6 x + 0.05 inside the gradient-step denoiser


class Affine:
    """D(x, sigma) = a x + b for every sigma: linear, so the dense oracle repeats it exactly."""

    def __call__(self, x, sigma):
        return A_AFF * x + B_AFF


class AffineNet(torch.nn.Module):
    """N(x, sigma) = c x + d: g(x) = 1/2 ||(1 - c) x - d||^2, grad g = (1 - c)((1 - c) x - d)."""

    def forward(self, x, sigma):
        return C_NET * x + D_NET


class Marked:
    """0.8 x + 0.1, but ``value`` (NaN or Inf) for the images whose largest pixel exceeds 5:
    the rows give image 1 values about 10, so the bad output follows the image through the
    per-image subsets of gs-pnp's backtracking."""

    def __init__(self, value):
        self.value = value

    def __call__(self, x, sigma):
        big = x.flatten(1).amax(1) > 5
        return torch.where(big.view(-1, 1, 1, 1), self.value, A_AFF * x + B_AFF)


class MarkedNet(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.marked = Marked(value)

    def forward(self, x, sigma):
        return self.marked(x, sigma) * 0.75


class Raising:
    """A denoiser that raises: its own error reaches the caller unchanged (type and message)."""

    def __init__(self, method):
        self.method = method

    def __call__(self, x, sigma):
        raise KeyError("my denoiser failed")

    def potential_and_gradient(self, x, sigma):
        raise KeyError("my denoiser failed")


class Potential:
    """A denoiser with a hand-made potential_and_gradient returning ``out(x)``."""

    def __init__(self, out):
        self.out = out

    def __call__(self, x, sigma):
        return x

    def potential_and_gradient(self, x, sigma):
        return self.out(x)


def denoiser_for(method: str):
    return GradientStep(AffineNet()) if method in POTENTIAL else Affine()


def marked_denoiser(method: str, value):
    return GradientStep(MarkedNet(value)) if method in POTENTIAL else Marked(value)


# -- NumPy float64 oracles, from the methods' formulas -------------------------------------------


class Plane:
    """f(x) = 1/2 ||A x - y||^2 on one image plane, dense."""

    def __init__(self, A: np.ndarray, y: np.ndarray):
        self.A, self.y = A, y
        self.AtA, self.Aty = A.T @ A, A.T @ y
        self.L = np.linalg.norm(self.AtA, 2)

    def grad(self, x):
        return self.AtA @ x - self.Aty

    def prox(self, v, gamma):
        """argmin_x f(x) + 1/(2 gamma) ||x - v||^2."""
        n = len(v)
        return np.linalg.solve(np.eye(n) + gamma * self.AtA, v + gamma * self.Aty)

    def value(self, x):
        return 0.5 * np.sum((self.A @ x - self.y) ** 2)


def D(x):
    return A_AFF * x + B_AFF


def grad_g(x):
    return (1 - C_NET) * ((1 - C_NET) * x - D_NET)


def g(x):
    return 0.5 * np.sum(((1 - C_NET) * x - D_NET) ** 2)


ITERATIONS: list[tuple[int, bool]] = []  # (iterations, converged) of the oracles that stop


def _rel(new, old):
    return np.linalg.norm(new - old) / np.linalg.norm(old)


def _hqs(f, x0, sigma, p, K, tol):
    s0, se = p["sigma_start"], max(p["sigma_end"], FLOOR)
    z = x0
    for k in range(K):
        frac = 0.0 if K == 1 else k / (K - 1)
        sk = math.exp(math.log(s0) + frac * (math.log(se) - math.log(s0)))
        alpha = p["lam"] * max(sigma, FLOOR) ** 2 / sk**2
        z_new = D(f.prox(z, 1 / alpha))
        done = _rel(z_new, z) < tol
        z = z_new
        if done:
            break
    ITERATIONS.append((k + 1, done))
    return z


def _admm(f, x0, sigma, p, K, tol):
    z, u = x0, np.zeros_like(x0)
    for _ in range(K):
        v = f.prox(z - u, p["gamma"])
        w = v + u
        z = D(w)
        u = w - z
    return z


def _pgd(f, x0, sigma, p, K, tol):
    x = x0
    for _ in range(K):
        x = D(x - p["tau"] * f.grad(x))
    return x


def _fista(f, x0, sigma, p, K, tol):
    z_prev, v, t = x0, x0, 1.0
    for _ in range(K):
        z = D(v - p["tau"] * f.grad(v))
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        v = z + (t - 1) / t_next * (z - z_prev)
        z_prev, t = z, t_next
    return z_prev


def _red_sd(weighted):
    def run(f, x0, sigma, p, K, tol):
        s2 = max(sigma, FLOOR) ** 2 if weighted else 1.0
        x = x0
        for _ in range(K):
            x = x - p["mu"] * (f.grad(x) / s2 + p["lam"] * (x - D(x)))
        return x

    return run


def _red_fp(f, x0, sigma, p, K, tol):
    x = x0
    for _ in range(K):
        x = f.prox(D(x), 1 / (p["lam"] * max(sigma, FLOOR) ** 2))
    return x


def _red_admm(f, x0, sigma, p, K, tol):
    lam, beta = p["lam"], p["beta"]
    x, v, u = x0, x0, np.zeros_like(x0)
    for _ in range(K):
        x = f.prox(v - u, 1 / (beta * max(sigma, FLOOR) ** 2))
        for _ in range(p.get("inner_iter", 1)):
            v = (lam * D(v) + beta * (x + u)) / (lam + beta)
        u = u + x - v
    return x


def _red_pg(kind):
    def run(f, x0, sigma, p, K, tol):
        if kind == "dpg":

            def L_at(k):
                return 1 / (1 / p["Lf"] + (1 / p["L0"] - 1 / p["Lf"]) / math.sqrt(k + 1))
        else:

            def L_at(k):
                return p["L"]

        def v_of(z, L):
            return D(z) / L - (1 - L) / L * z

        x, v, t = x0, v_of(x0, L_at(0)), 1.0
        for k in range(K):
            x_new = f.prox(v, 1 / (p["lam"] * L_at(k) * max(sigma, FLOOR) ** 2))
            z = x_new
            if kind == "apg":
                t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
                z = x_new + (t - 1) / t_next * (x_new - x)
                t = t_next
            v = v_of(z, L_at(k + 1))
            done = _rel(x_new, x) < tol
            x = x_new
            if done:
                break
        ITERATIONS.append((k + 1, done))
        return x

    return run


def _gs_pnp(f, x0, sigma, p, K, tol):
    lam = p["lam"]
    tau = p.get("tau", 1 / lam)
    x = f.prox(x0, tau)
    for _ in range(K):
        x_new = f.prox(x - tau * lam * grad_g(x), tau)
        # the first candidate is accepted: sufficient decrease with gamma = 0.1 (checked here)
        F, F_new = f.value(x) + lam * g(x), f.value(x_new) + lam * g(x_new)
        assert F - F_new >= 0.1 / tau * np.sum((x - x_new) ** 2)
        x = x_new
    return x - tau * lam * grad_g(x)


def _prox_pgd(f, x0, sigma, p, K, tol):
    x = x0
    for _ in range(K):
        z = x - p["lam"] * f.grad(x)
        x = z - p.get("alpha", 1.0) * grad_g(z)
    return x


def _prox_drs(f, x0, sigma, p, K, tol):
    w, alpha, beta = x0, p.get("alpha", 0.5), p.get("beta", 1.0)
    for _ in range(K):
        yk = w - alpha * grad_g(w)
        z = f.prox(2 * yk - w, p["lam"])
        w = w + beta * (z - yk)
    return yk


def _pnp_reg(f, x0, sigma, p, K, tol):
    x = x0
    for _ in range(K):
        x = x - p["mu"] * (f.grad(x) + p["lam"] * sigma**2 * D(x))
    return x


ORACLES = {
    "hqs": _hqs,
    "admm": _admm,
    "pgd": _pgd,
    "fista": _fista,
    "red-sd": _red_sd(True),
    "red-gd": _red_sd(False),
    "red-fp": _red_fp,
    "red-admm": _red_admm,
    "red-pg": _red_pg("pg"),
    "red-apg": _red_pg("apg"),
    "red-dpg": _red_pg("dpg"),
    "gs-pnp": _gs_pnp,
    "prox-pnp-pgd": _prox_pgd,
    "prox-pnp-drs": _prox_drs,
    "pnp-reg": _pnp_reg,
}

# explicit parameters: the oracles need no default rule (restart off: no data-dependent switch)
PARAMS = {
    "hqs": {"lam": 0.3, "sigma_start": 0.2, "sigma_end": 0.03},
    "admm": {"gamma": 0.7, "sigma_d": 0.1},
    "pgd": {"tau": 0.9, "sigma_d": 0.1},
    "fista": {"tau": 0.9, "sigma_d": 0.1, "restart": False},
    "red-sd": {"lam": 50.0, "mu": 5e-4, "sigma_d": 0.1},
    "red-gd": {"lam": 0.5, "mu": 0.4, "sigma_d": 0.1},
    "red-fp": {"lam": 50.0, "sigma_d": 0.1},
    "red-admm": {"lam": 50.0, "beta": 20.0, "sigma_d": 0.1, "inner_iter": 2},
    "red-pg": {"lam": 50.0, "L": 0.8, "sigma_d": 0.1},
    "red-apg": {"lam": 50.0, "L": 0.8, "sigma_d": 0.1, "restart": False},
    "red-dpg": {"lam": 50.0, "L0": 0.3, "Lf": 1.5, "sigma_d": 0.1},
    "gs-pnp": {"lam": 0.5, "sigma_d": 0.1},
    "prox-pnp-pgd": {"lam": 0.9, "sigma_d": 0.1, "alpha": 0.8},
    "prox-pnp-drs": {"lam": 1.2, "sigma_d": 0.1, "alpha": 0.5, "beta": 0.7},
    "pnp-reg": {"mu": 0.9, "lam": 20.0},
}
# a second value per image, for the per-image rows
PARAMS_2 = {
    "hqs": {"lam": 0.2, "sigma_start": 0.3},
    "admm": {"gamma": 0.4},
    "pgd": {"tau": 0.5},
    "fista": {"tau": 0.6},
    "red-sd": {"lam": 30.0},
    "red-gd": {"mu": 0.3},
    "red-fp": {"lam": 20.0},
    "red-admm": {"beta": 10.0},
    "red-pg": {"L": 1.2},
    "red-apg": {"lam": 30.0},
    "red-dpg": {"L0": 0.5},
    "gs-pnp": {"lam": 0.7},
    "prox-pnp-pgd": {"lam": 0.6},
    "prox-pnp-drs": {"lam": 0.8},
    "pnp-reg": {"mu": 0.5, "lam": 10.0},
}


def dense_run(method, y, kernels, sigma, p, max_iter, x0=None, tol=0.0) -> torch.Tensor:
    """The float64 NumPy run of ``method`` plane by plane (every step here acts on each image
    and channel alone). kernels [Bk, h, w]; sigma and each p value a float or a length-B list."""
    ys = y.detach().double().numpy()
    B, C, H, W = ys.shape
    ks = kernels.double().numpy()
    out = np.zeros_like(ys)
    for b in range(B):
        f_A = blur_matrix(ks[b if ks.shape[0] > 1 else 0], H, W)
        sb = sigma[b] if isinstance(sigma, (list, tuple)) else sigma
        pb = {n: v[b] if isinstance(v, (list, tuple)) else v for n, v in p.items()}
        for c in range(C):
            f = Plane(f_A, ys[b, c].ravel())
            start = f.Aty if x0 is None else x0[b, c].detach().double().numpy().ravel()
            out[b, c] = ORACLES[method](f, start, sb, pb, max_iter, tol).reshape(H, W)
    return torch.from_numpy(out)


def as_tensors(p: dict, dtype) -> dict:
    """Per-image lists as tensors (as a user passes them); scalars and bools as they are."""
    return {n: torch.tensor(v, dtype=dtype) if isinstance(v, list) else v for n, v in p.items()}


# -- the solve call of the Bad rows --------------------------------------------------------------


def y8(B=1, C=1, H=8, W=8, dtype=F32) -> torch.Tensor:
    return rand(B, C, H, W, seed=3, dtype=dtype)


def run(method, *, y=None, operator=None, denoiser=None, **kw):
    """pnpfast.solve on a tiny problem: y 1x1x8x8, Blur (Inpainting for the sampler), the
    method's affine denoiser, sigma 0.05, max_iter 2; any of them replaced by the row."""
    y = y8() if y is None else y
    if operator is None:
        operator = Inpainting(torch.ones(8, 8)) if method == SAMPLER else Blur(kern())
    denoiser = denoiser_for(method) if denoiser is None else denoiser
    kw.setdefault("max_iter", 2)
    if method != SAMPLER:
        kw.setdefault("sigma", 0.05)
    return pnpfast.solve(y, operator, denoiser, method, **kw)


def bad(method, category, what, error, match, spec=dict, entry=SOLVE, call=None):
    """A Bad row of solve: ``spec()`` builds the keyword arguments of ``run`` at call time."""
    if call is None:

        def call():
            return run(method, **spec())

    return Bad(entry, category, f"{method}: {what}", call, error, match)


# rows of tests/test_bad_input.py, not repeated here
IN_BAD_INPUT = {
    ("hqs", "y batch 0"),
    ("pgd", "y batch 0"),
    ("hqs", "y meta"),
    ("pgd", "y meta"),
    ("hqs", "kernel larger than y"),
    ("pgd", "kernel larger than y"),
    ("hqs", "x0 meta"),
    ("hqs", "sigma meta"),
    ("implicit-prior", "y batch 0"),
    ("implicit-prior", "y meta"),
}
WRONG_OUTPUT_IN_BAD_INPUT = {"hqs", "admm", "pgd", "fista", "red-sd", "red-apg", "pnp-reg"}
PARAM_CASES_IN_BAD_INPUT = {
    ("gs-pnp", "gamma", "inf"),
    ("gs-pnp", "gamma", "nan"),
    ("gs-pnp", "eta", "inf"),
    ("gs-pnp", "lam", "inf"),
    ("gs-pnp", "tau", "nan"),
    ("prox-pnp-pgd", "lam", "inf"),
    ("prox-pnp-drs", "alpha", "nan"),
    ("red-admm", "beta", "inf"),
    ("pgd", "tau", "inf"),
    ("hqs", "lam", "nan"),
    ("admm", "gamma", "inf"),
    ("red-dpg", "Lf", "inf"),
    ("pnp-reg", "lam", "nan"),
}


def common_rows(m: str) -> list[Bad]:
    """The rows every non-sampler method gets: y, x0, sigma, sizes, counts, names, denoisers."""
    rows = [
        bad(m, "nan-inf", "y NaN", ValueError, r"^y contains NaN or Inf",
            lambda: {"y": torch.full((1, 1, 8, 8), NAN)}),
        bad(m, "nan-inf", "y Inf", ValueError, r"^y contains NaN or Inf",
            lambda: {"y": y8().index_fill(3, torch.tensor([2]), -INF)}),
        bad(m, "nan-inf", "x0 NaN", ValueError, r"^x0 contains NaN or Inf",
            lambda: {"x0": y8().index_fill(2, torch.tensor([1]), NAN)}),
        bad(m, "nan-inf", "x_true Inf", ValueError, r"^x_true contains NaN or Inf",
            lambda: {"x_true": torch.full((1, 1, 8, 8), INF)}),
        bad(m, "nan-inf", "sigma NaN", ValueError, r"^sigma must be finite, got nan",
            lambda: {"sigma": NAN}),
        bad(m, "nan-inf", "sigma Inf", ValueError, r"^sigma must be finite, got inf",
            lambda: {"sigma": INF}),
        bad(m, "nan-inf", "sigma tensor with NaN", ValueError, r"^sigma must be finite, got nan",
            lambda: {"y": y8(2), "sigma": torch.tensor([0.05, NAN])}),
        bad(m, "nan-inf", "sigma 1e300 overflows float32", ValueError,
            r"^sigma must be finite in float32: 1e\+300 overflows to inf",
            lambda: {"sigma": 1e300}),
        bad(m, "value", "sigma negative", ValueError, r"^sigma must be >= 0, got -0.1",
            lambda: {"sigma": -0.1}),
        bad(m, "value", "sigma 1e20 (its square overflows)", ValueError,
            r"^sigma must be <= 1e\+18, got 1e\+20", lambda: {"sigma": 1e20}),
        bad(m, "denoiser", "raises its own error", KeyError, r"my denoiser failed",
            lambda: {"denoiser": Raising(m)}),
        bad(m, "type", "sigma None", TypeError, rf"^method '{m}' needs sigma, the noise level",
            lambda: {"sigma": None}),
        bad(m, "type", "sigma str", TypeError,
            r"^sigma must be a float or a tensor of length 1, not str", lambda: {"sigma": "0.1"}),
        bad(m, "type", "sigma bool tensor", TypeError, r"^sigma must be real, not torch.bool",
            lambda: {"sigma": torch.tensor([True])}),
        bad(m, "mismatch", "sigma length 3 for 2 images", ValueError,
            r"^sigma must be a float or a tensor of length 2 \(one per image\), got shape \(3,\)",
            lambda: {"y": y8(2), "sigma": torch.full((3,), 0.05)}),
        bad(m, "rank", "sigma 2-d", ValueError,
            r"^sigma must be a float or a tensor of length 2 \(one per image\), got shape \(2, 1\)",
            lambda: {"y": y8(2), "sigma": torch.full((2, 1), 0.05)}),
        bad(m, "rank", "y 3-d", ValueError,
            r"^y is not a measurement of this Blur: y must have shape \[B, C, H, W\] "
            r"\(4 dimensions\), got shape \(1, 8, 8\)",
            lambda: {"y": y8()[0]}),
        bad(m, "rank", "y 5-d", ValueError,
            r"^y is not a measurement of this Blur: y must have shape \[B, C, H, W\]",
            lambda: {"y": y8()[None]}),
        bad(m, "rank", "x0 3-d", ValueError, r"^x0 must have shape \[B, C, H, W\]",
            lambda: {"x0": y8()[0]}),
        bad(m, "mismatch", "x0 batch 2 for y batch 1", ValueError,
            r"^x0 has shape \(2, 1, 8, 8\) but the images measured by y \(shape \(1, 1, 8, 8\)\) "
            r"have shape \(1, 1, 8, 8\)",
            lambda: {"x0": y8(2)}),
        bad(m, "mismatch", "x0 3 channels for y 1", ValueError, r"^x0 has shape \(1, 3, 8, 8\)",
            lambda: {"x0": y8(1, 3)}),
        bad(m, "mismatch", "x_true size 4x4", ValueError, r"^x_true has shape \(1, 1, 4, 4\)",
            lambda: {"x_true": y8(H=4, W=4)}),
        bad(m, "mismatch", "3 kernels for 2 images", ValueError,
            r"^y is not a measurement of this Blur: kernel holds 3 kernels but y has batch size 2",
            lambda: {"y": y8(2), "operator": Blur(torch.stack([kern()] * 3))}),
        bad(m, "mismatch", "mask 6x6 for y 8x8", ValueError,
            r"^y is not a measurement of this Inpainting: mask has size 6x6 but y has size 8x8",
            lambda: {"operator": Inpainting(torch.ones(6, 6))}),
        bad(m, "mismatch", "3 masks for 2 images", ValueError,
            r"^y is not a measurement of this Inpainting: mask holds 3 masks but y has batch "
            r"size 2",
            lambda: {"y": y8(2), "operator": Inpainting(torch.ones(3, 1, 8, 8))}),
        bad(m, "dtype", "x0 float64 for y float32", TypeError,
            r"^x0 has dtype torch.float64 but y has torch.float32",
            lambda: {"x0": y8(dtype=F64)}),
        bad(m, "dtype", "x0 int64", TypeError, r"^x0 must have dtype float32, float64, not int64",
            lambda: {"x0": torch.ones(1, 1, 8, 8, dtype=torch.int64)}),
        bad(m, "dtype", "x_true float64 for y float32", TypeError,
            r"^x_true has dtype torch.float64 but y has torch.float32",
            lambda: {"x_true": y8(dtype=F64)}),
        bad(m, "type", "x0 a list", TypeError, r"^x0 must be a torch.Tensor of shape",
            lambda: {"x0": [[0.0]]}),
        bad(m, "size", "y 0 channels", ValueError,
            r"^y is not a measurement of this Blur: y has a dimension of size 0",
            lambda: {"y": torch.ones(1, 0, 8, 8)}),
        bad(m, "size", "y width 0", ValueError,
            r"^y is not a measurement of this Blur: y has a dimension of size 0",
            lambda: {"y": torch.ones(1, 1, 8, 0)}),
        bad(m, "size", "x0 batch 0", ValueError, r"^x0 has a batch of size 0",
            lambda: {"x0": torch.ones(0, 1, 8, 8)}),
        bad(m, "value", "max_iter 0", ValueError, r"^max_iter must be an int in \[1, 2\*\*63 - 1\]",
            lambda: {"max_iter": 0}),
        bad(m, "value", "max_iter -1", ValueError,
            r"max_iter must be an int in \[1, 2\*\*63 - 1\] \(iterations are counted in int64\), not -1", lambda: {"max_iter": -1}),
        bad(m, "value", "max_iter 2**63 overflows int64", ValueError,
            r"^max_iter must be an int in \[1, 2\*\*63 - 1\] \(iterations are counted in int64\)",
            lambda: {"max_iter": 2**63}),
        bad(m, "type", "max_iter float", TypeError, r"^max_iter must be an int .*not float 2.0",
            lambda: {"max_iter": 2.0}),
        bad(m, "type", "max_iter bool", TypeError, r"^max_iter must be an int .*not bool True",
            lambda: {"max_iter": True}),
        bad(m, "value", "tol negative", ValueError, r"tol must be a finite number >= 0, not -1\.0",
            lambda: {"tol": -1.0}),
        bad(m, "nan-inf", "tol NaN", ValueError, r"tol must be a finite number >= 0, not nan",
            lambda: {"tol": NAN}),
        bad(m, "nan-inf", "tol Inf", ValueError, r"tol must be a finite number >= 0, not inf",
            lambda: {"tol": INF}),
        bad(m, "type", "tol str", TypeError, r"tol must be a finite number >= 0, not str '1e-3'",
            lambda: {"tol": "1e-3"}),
        bad(m, "name", "unknown keyword", TypeError,
            rf"^method '{m}' does not take foo; its parameters are", lambda: {"foo": 1}),
        bad(m, "type", "history str", TypeError, r"history must be True or False, not str 'yes'",
            lambda: {"history": "yes"}),
        bad(m, "type", "callback not callable", TypeError,
            r"^callback must be None or callable", lambda: {"callback": 3}),
        bad(m, "name", "unknown backend", ValueError,
            r"backend must be one of cuda, triton, reference, not 'bogus'",
            lambda: {"backend": "bogus"}),
        bad(m, "type", "operator a function", TypeError,
            r"^operator must be a pnpfast LinearOperator, not function",
            lambda: {"operator": lambda x: x}),
        bad(m, "type", "denoiser not callable", TypeError,
            r"^denoiser must be callable as D\(x, sigma\), not int", lambda: {"denoiser": 3}),
        bad(m, "meta", "x_true meta", ValueError, r"^x_true is on the meta device",
            lambda: {"x_true": torch.empty(1, 1, 8, 8, device="meta")}),
        bad(m, "denoiser", "NaN for image 1", FloatingPointError,
            rf"^{m}: the iterate of images \[1\] is NaN or Inf by iteration 3",
            lambda: {"y": torch.cat([y8(), y8() + 10]), "denoiser": marked_denoiser(m, NAN),
                     "max_iter": 3}),
        bad(m, "denoiser", "Inf for image 1", FloatingPointError,
            rf"^{m}: the iterate of images \[1\] is NaN or Inf",
            lambda: {"y": torch.cat([y8(), y8() + 10]), "denoiser": marked_denoiser(m, INF),
                     "max_iter": 3}),
    ]  # fmt: skip
    extra = [
        ("y batch 0", "size", ValueError, r"^y is not a measurement of this Blur: y has a batch "
         r"of size 0", lambda: {"y": torch.ones(0, 1, 8, 8)}),
        ("y meta", "meta", ValueError, r"y is on the meta device \(it holds no data\)",
         lambda: {"y": torch.empty(1, 1, 8, 8, device="meta")}),
        ("x0 meta", "meta", ValueError, r"^x0 is on the meta device",
         lambda: {"x0": torch.empty(1, 1, 8, 8, device="meta")}),
        ("sigma meta", "meta", ValueError, r"^sigma is on the meta device",
         lambda: {"sigma": torch.full((1,), 0.05, device="meta")}),
        ("kernel larger than y", "size", ValueError, r"^y is not a measurement of this Blur: "
         r"kernel of size 3x3 is larger than y of size 2x2", lambda: {"y": y8(H=2, W=2)}),
    ]  # fmt: skip
    rows += [
        bad(m, cat, what, err, match, spec)
        for what, cat, err, match, spec in extra
        if (m, what) not in IN_BAD_INPUT
    ]
    for dt in (torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64):
        name = str(dt).removeprefix("torch.")
        rows.append(
            bad(m, "dtype", f"y {name}", TypeError,
                rf"^y is not a measurement of this Blur: y must have dtype float32, float64, "
                rf"not {name}",
                lambda dt=dt: {"y": y8().mul(2).to(dt)})
        )  # fmt: skip
    for dt in (torch.float16, torch.bfloat16, torch.bool, torch.complex64):
        name = str(dt).removeprefix("torch.")
        rows.append(
            bad(m, "dtype", f"x0 {name}", TypeError,
                rf"^x0 must have dtype float32, float64, not {name}",
                lambda dt=dt: {"x0": y8().mul(2).to(dt)})
        )  # fmt: skip
    if m in POTENTIAL:
        rows += potential_rows(m)
    elif m not in WRONG_OUTPUT_IN_BAD_INPUT:
        rows += wrong_output_rows(m)
    return rows


def wrong_output_rows(m: str) -> list[Bad]:
    return [
        bad(m, "denoiser", "returns the wrong shape", ValueError,
            r"^the denoiser returned shape \(1, 1, 4, 4\) for input of shape \(1, 1, 8, 8\)",
            lambda: {"denoiser": lambda x, s: x[..., :4, :4]}),
        bad(m, "denoiser", "returns 3 channels for 1", ValueError,
            r"^the denoiser returned shape \(1, 3, 8, 8\)",
            lambda: {"denoiser": lambda x, s: x.expand(-1, 3, -1, -1)}),
        bad(m, "denoiser", "returns float64 for float32", TypeError,
            r"^the denoiser returned dtype torch.float64 for input of dtype torch.float32",
            lambda: {"denoiser": lambda x, s: x.double()}),
        bad(m, "denoiser", "returns int64", TypeError,
            r"^the denoiser returned dtype torch.int64",
            lambda: {"denoiser": lambda x, s: x.long()}),
        bad(m, "denoiser", "returns None", TypeError,
            r"^the denoiser returned NoneType, not a torch.Tensor",
            lambda: {"denoiser": lambda x, s: None}),
        bad(m, "denoiser", "returns a meta tensor", ValueError,
            r"^the denoiser returned a tensor on meta for input on cpu",
            lambda: {"denoiser": lambda x, s: torch.empty_like(x, device="meta")}),
    ]  # fmt: skip


def potential_rows(m: str) -> list[Bad]:
    """gs-pnp and prox-pnp-* call potential_and_gradient; its output's form is checked."""
    what = r"^Potential.potential_and_gradient returned"
    return [
        bad(m, "type", "denoiser without a potential", TypeError,
            rf"^method '{m}' needs a gradient-step denoiser with potential_and_gradient",
            lambda: {"denoiser": Affine()}),
        bad(m, "denoiser", "gradient of the wrong shape", ValueError,
            rf"{what} a gradient of shape \(1, 1, 4, 4\) for input of shape \(1, 1, 8, 8\)",
            lambda: {"denoiser": Potential(lambda x: (x.sum((1, 2, 3)), x[..., :4, :4]))}),
        bad(m, "denoiser", "potential of the wrong shape", ValueError,
            rf"{what} a potential of shape \(\) for input of shape \(1, 1, 8, 8\); it must be "
            r"\(1,\)",
            lambda: {"denoiser": Potential(lambda x: (x.sum(), x))}),
        bad(m, "denoiser", "gradient float64 for float32", TypeError,
            rf"{what} a gradient of torch.float64 on cpu for input of torch.float32",
            lambda: {"denoiser": Potential(lambda x: (x.sum((1, 2, 3)), x.double()))}),
        bad(m, "denoiser", "a tensor instead of a tuple", TypeError,
            rf"{what} Tensor, not a tuple \(potential \[B\], gradient \[B, C, H, W\]\)",
            lambda: {"denoiser": Potential(lambda x: x)}),
        bad(m, "denoiser", "a list potential", TypeError,
            rf"{what} a potential of type list, not a tensor",
            lambda: {"denoiser": Potential(lambda x: ([0.0], x))}),
        bad(m, "denoiser", "NaN gradient for every image", FloatingPointError,
            rf"^{m}: the iterate of images \[0, 1\] is NaN or Inf",
            lambda: {"y": y8(2), "denoiser": Potential(
                lambda x: (x.sum((1, 2, 3)), torch.full_like(x, NAN)))}),
    ]  # fmt: skip


# per-image parameters: (name, lower bound kind) per method; "pos" > 0, "nonneg" >= 0
PER_IMAGE = {
    "hqs": [("lam", "pos"), ("sigma_start", "pos"), ("sigma_end", "nonneg")],
    "admm": [("sigma_d", "nonneg"), ("gamma", "pos"), ("lam", "pos")],
    "pgd": [("tau", "pos"), ("sigma_d", "nonneg")],
    "fista": [("tau", "pos"), ("sigma_d", "nonneg")],
    "red-sd": [("lam", "pos"), ("mu", "pos"), ("sigma_d", "nonneg")],
    "red-gd": [("lam", "pos"), ("mu", "pos"), ("sigma_d", "nonneg")],
    "red-fp": [("lam", "pos"), ("sigma_d", "nonneg")],
    "red-admm": [("lam", "pos"), ("beta", "pos"), ("sigma_d", "nonneg")],
    "red-pg": [("lam", "pos"), ("L", "pos"), ("sigma_d", "nonneg")],
    "red-apg": [("lam", "pos"), ("L", "pos"), ("sigma_d", "nonneg")],
    "red-dpg": [("lam", "pos"), ("L0", "pos"), ("Lf", "pos"), ("sigma_d", "nonneg")],
    "gs-pnp": [("lam", "pos"), ("sigma_d", "nonneg"), ("tau", "pos")],
    "prox-pnp-pgd": [("lam", "pos"), ("sigma_d", "nonneg")],
    "prox-pnp-drs": [("lam", "pos"), ("sigma_d", "nonneg")],
    "pnp-reg": [("mu", "pos"), ("lam", "nonneg")],
    SAMPLER: [("sigma_0", "pos"), ("sigma_L", "pos"), ("h0", "pos"), ("beta", "pos")],
}


def param_rows(m: str) -> list[Bad]:
    rows = []
    for name, kind in PER_IMAGE[m]:
        cases = [
            ("nan-inf", "NaN", NAN, ValueError, rf"^{name} must be finite, got nan"),
            ("nan-inf", "Inf", INF, ValueError, rf"^{name} must be finite, got inf"),
            ("nan-inf", "1e300 overflows float32", 1e300, ValueError,
             rf"^{name} must be finite in float32: 1e\+300 overflows to inf"),
            ("value", "negative", -1.0, ValueError,
             rf"^{name} must be {'> 0' if kind == 'pos' else '>= 0'}, got -1.0"),
            ("type", "str", "0.1", TypeError,
             rf"^{name} must be a float or a tensor of length 1, not str"),
            ("type", "complex tensor", torch.tensor([0.1j]), TypeError,
             rf"^{name} must be real, not torch.complex64"),
        ]  # fmt: skip
        if kind == "pos":
            cases += [
                ("value", "zero", 0.0, ValueError, rf"^{name} must be > 0, got 0.0"),
                ("value", "1e-300 underflows float32", 1e-300, ValueError,
                 rf"^{name} must be > 0 in float32: 1e-300 underflows to 0"),
            ]  # fmt: skip
        for cat, what, value, err, match in cases:
            key = "nan" if what == "NaN" else "inf" if what == "Inf" else what
            if (m, name, key) in PARAM_CASES_IN_BAD_INPUT:
                continue
            rows.append(
                bad(m, cat, f"{name} {what}", err, match, lambda name=name, v=value: {name: v})
            )
        rows.append(
            bad(m, "mismatch", f"{name} length 3 for 2 images", ValueError,
                rf"^{name} must be a float or a tensor of length 2 \(one per image\), got shape "
                r"\(3,\)",
                lambda name=name: {"y": y8(2), name: torch.full((3,), 0.5)})
        )  # fmt: skip
        rows.append(
            bad(m, "nan-inf", f"{name} tensor with NaN for image 1", ValueError,
                rf"^{name} must be finite, got nan",
                lambda name=name: {"y": y8(2), name: torch.tensor([0.5, NAN])})
        )  # fmt: skip
    return rows


GS = GradientStep(AffineNet())

SPECIFIC = [
    # steps beyond their convergence bound 2 / L (L = ||A^T A|| = 1 for a kernel summing to 1)
    bad("pgd", "value", "tau 2.5 beyond 2/L", ValueError,
        r"^tau must be in \(0, 2/L\) for convergence", lambda: {"tau": 2.5}),
    bad("fista", "value", "tau 3", ValueError, r"^tau must be in \(0, 2/L\) for convergence",
        lambda: {"tau": 3.0}),
    bad("red-sd", "value", "mu beyond 2/Lip", ValueError,
        r"^mu must be in \(0, 2/Lip\) for convergence, Lip = \|\|A\^T A\|\|/sigma\^2 \+ 2 lam",
        lambda: {"mu": 1.0}),
    bad("red-gd", "value", "mu beyond 2/Lip", ValueError,
        r"^mu must be in \(0, 2/Lip\) for convergence, Lip = \|\|A\^T A\|\| \+ 2 lam",
        lambda: {"mu": 100.0}),
    bad("pnp-reg", "value", "mu 2.5 beyond 2/L", ValueError, r"^mu must be in \(0, 2/L\)",
        lambda: {"mu": 2.5}),
    bad("prox-pnp-pgd", "value", "lam 2.5 beyond 2/L", ValueError,
        r"^lam must be in \(0, 2/L\)", lambda: {"lam": 2.5}),
    # parameters a method would ignore are refused
    bad("pgd", "name", "restart (fista's)", TypeError,
        r"^method 'pgd' does not take restart: it has no momentum", lambda: {"restart": False}),
    bad("red-pg", "name", "restart (red-apg's)", TypeError,
        r"^method 'red-pg' does not take restart: it has no momentum", lambda: {"restart": True}),
    bad("admm", "value", "gamma and lam both", ValueError,
        r"^admm takes gamma or lam, not both: lam only sets the default gamma",
        lambda: {"gamma": 0.5, "lam": 2.0}),
    bad("prox-pnp-pgd", "name", "beta (prox-pnp-drs's)", TypeError,
        r"^method 'prox-pnp-pgd' does not take beta: it is prox-pnp-drs's relaxation",
        lambda: {"beta": 1.0}),
    bad("fista", "type", "restart a str", TypeError,
        r"restart must be True or False, not str 'yes'", lambda: {"restart": "yes"}),
    bad("red-apg", "type", "restart 1", TypeError, r"restart must be True or False, not int 1",
        lambda: {"restart": 1}),
    # counts
    bad("red-admm", "value", "inner_iter 101", ValueError,
        r"inner_iter must be an int in \[1, 100\], not 101", lambda: {"inner_iter": 101}),
    bad("red-admm", "type", "inner_iter 2.0", TypeError,
        r"^inner_iter must be an int in \[1, 100\], not float 2\.0", lambda: {"inner_iter": 2.0}),
    bad("gs-pnp", "value", "max_backtracks 1001", ValueError,
        r"max_backtracks must be an int in \[0, 1000\], not 1001",
        lambda: {"max_backtracks": 1001}),
    bad("gs-pnp", "value", "max_backtracks -1", ValueError,
        r"max_backtracks must be an int in \[0, 1000\], not -1",
        lambda: {"max_backtracks": -1}),
    # scalar (not per-image) parameters of the convergent methods
    bad("gs-pnp", "value", "gamma 0", ValueError, r"gamma must be a finite number > 0, not 0\.0",
        lambda: {"gamma": 0.0}),
    bad("gs-pnp", "type", "gamma str", TypeError,
        r"gamma must be a finite number > 0, not str '0\.1'", lambda: {"gamma": "0.1"}),
    bad("gs-pnp", "type", "gamma tensor", TypeError,
        r"gamma must be a finite number > 0, not Tensor tensor\(\[1\., 1\.\]\)", lambda: {"gamma": torch.ones(2)}),
    bad("gs-pnp", "value", "eta 1", ValueError, r"eta must be a finite number in \(0, 1\), not 1\.0",
        lambda: {"eta": 1.0}),
    bad("gs-pnp", "nan-inf", "eta NaN", ValueError, r"eta must be a finite number in \(0, 1\), not",
        lambda: {"eta": NAN}),
    bad("gs-pnp", "value", "eta negative", ValueError, r"eta must be a finite number in \(0, 1\), not",
        lambda: {"eta": -0.5}),
    bad("prox-pnp-pgd", "value", "alpha 1.5", ValueError,
        r"alpha must be a finite number in \(0, 1\], not 1\.5", lambda: {"alpha": 1.5}),
    bad("prox-pnp-pgd", "value", "alpha 0", ValueError,
        r"alpha must be a finite number in \(0, 1\], not 0\.0", lambda: {"alpha": 0.0}),
    bad("prox-pnp-drs", "nan-inf", "alpha Inf", ValueError,
        r"alpha must be a finite number in \(0, 1\], not inf", lambda: {"alpha": INF}),
    bad("prox-pnp-drs", "type", "alpha tensor", TypeError,
        r"alpha must be a finite number in \(0, 1\], not Tensor tensor\(\[1\.\]\)", lambda: {"alpha": torch.ones(1)}),
    bad("prox-pnp-drs", "value", "beta 2", ValueError,
        r"beta must be a finite number in \(0, 2\), not 2\.0", lambda: {"beta": 2.0}),
    bad("prox-pnp-drs", "nan-inf", "beta NaN", ValueError,
        r"beta must be a finite number in \(0, 2\), not nan", lambda: {"beta": NAN}),
    bad("prox-pnp-drs", "type", "beta str", TypeError,
        r"beta must be a finite number in \(0, 2\), not str '1'", lambda: {"beta": "1"}),
    # names
    bad("pnp-reg", "denoiser", "denoiser None (no shipped G)", TypeError,
        r"^no shipped denoiser fits method 'pnp-reg': pass denoiser=",
        call=lambda: pnpfast.solve(y8(), Blur(kern()), None, "pnp-reg", sigma=0.05)),
    bad("hqs", "name", "method 'HQS'", ValueError,
        r"^method must be one of admm, drs, fista, gs-pnp, hqs, implicit-prior, .* not 'HQS'",
        call=lambda: pnpfast.solve(y8(), Blur(kern()), Affine(), "HQS", sigma=0.05)),
    bad("hqs", "name", "method 'red'", ValueError, r"^method must be one of .* not 'red'",
        call=lambda: pnpfast.solve(y8(), Blur(kern()), Affine(), "red", sigma=0.05)),
    bad("hqs", "type", "method None", TypeError,
        r"^method must be a str, one of admm, .* not NoneType",
        call=lambda: pnpfast.solve(y8(), Blur(kern()), Affine(), None, sigma=0.05)),
    bad("hqs", "type", "method a list", TypeError, r"^method must be a str, one of .* not list",
        call=lambda: pnpfast.solve(y8(), Blur(kern()), Affine(), ["hqs"], sigma=0.05)),
    bad("hqs", "type", "y a numpy array", TypeError,
        r"^y must be a torch.Tensor \(a measurement\), not ndarray",
        lambda: {"y": np.zeros((1, 1, 8, 8), np.float32)}),
    bad("hqs", "type", "operator a string", TypeError,
        r"^operator must be a pnpfast LinearOperator, not str", lambda: {"operator": "blur"}),
    bad("gs-pnp", "denoiser", "network NaN for image 1", FloatingPointError,
        r"^gs-pnp: the iterate of images \[1\] is NaN or Inf by iteration 8",
        lambda: {"y": torch.cat([y8(), y8() + 10]), "denoiser": marked_denoiser("gs-pnp", NAN),
                 "max_iter": 9}),
]  # fmt: skip


def sampler_rows() -> list[Bad]:
    m = SAMPLER
    mask = Inpainting(torch.ones(8, 8))
    measure = "y is not a measurement of this Inpainting"
    rows = [
        bad(m, "nan-inf", "y NaN", ValueError, r"^y \(the measurement\) contains NaN or Inf",
            lambda: {"y": torch.full((1, 1, 8, 8), NAN)}),
        bad(m, "nan-inf", "x_true NaN", ValueError, r"^x_true contains NaN or Inf",
            lambda: {"x_true": torch.full((1, 1, 8, 8), NAN)}),
        bad(m, "name", "sigma given", TypeError,
            r"^method 'implicit-prior' does not take sigma: it samples from noiseless",
            lambda: {"sigma": 0.05}),
        bad(m, "name", "tol given", TypeError,
            r"^method 'implicit-prior' does not take tol: it stops each image when its sigma_t",
            lambda: {"tol": 1e-3}),
        bad(m, "name", "x0 given", TypeError, r"^method 'implicit-prior' does not take x0",
            lambda: {"x0": y8()}),
        bad(m, "name", "unknown keyword", TypeError,
            r"^method 'implicit-prior' does not take lam; its parameters are average, beta",
            lambda: {"lam": 1.0}),
        bad(m, "rank", "y 3-d", ValueError,
            rf"^{measure}: y must have shape \[B, C, H, W\] \(4 dimensions\), got shape "
            r"\(1, 8, 8\)",
            lambda: {"y": y8()[0]}),
        bad(m, "rank", "y 5-d", ValueError, rf"^{measure}: y must have shape \[B, C, H, W\]",
            lambda: {"y": y8()[None]}),
        bad(m, "mismatch", "mask 6x6 for y 8x8", ValueError,
            rf"^{measure}: mask has size 6x6 but y has size 8x8",
            lambda: {"operator": Inpainting(torch.ones(6, 6))}),
        bad(m, "mismatch", "3 masks for 2 images", ValueError,
            rf"^{measure}: mask holds 3 masks but y has batch size 2",
            lambda: {"y": y8(2), "operator": Inpainting(torch.ones(3, 1, 8, 8))}),
        bad(m, "mismatch", "x_true size 4x4", ValueError,
            r"^x_true has shape \(1, 1, 4, 4\) but the images are \(1, 1, 8, 8\)",
            lambda: {"x_true": y8(H=4, W=4)}),
        bad(m, "dtype", "x_true float64 for y float32", TypeError,
            r"^x_true has dtype torch.float64 but y has torch.float32",
            lambda: {"x_true": y8(dtype=F64)}),
        bad(m, "size", "y 0 channels", ValueError, r"^y has a dimension of size 0",
            lambda: {"y": torch.ones(1, 0, 8, 8)}),
        bad(m, "type", "operator a Blur", TypeError,
            r"^method 'implicit-prior' needs an operator with an orthonormal view .* not Blur",
            lambda: {"operator": Blur(kern())}),
        bad(m, "type", "operator a string", TypeError,
            r"^method 'implicit-prior' needs an operator with an orthonormal view .* not str",
            lambda: {"operator": "mask"}),
        bad(m, "type", "y a list", TypeError,
            r"^y \(the measurement M\^T x\) must be a float32 or float64 tensor, "
            r"not <class 'list'>",
            lambda: {"y": [[0.0]]}),
        bad(m, "type", "denoiser not callable", TypeError,
            r"^denoiser must be callable as D\(x, sigma\), not str", lambda: {"denoiser": "blind"}),
        bad(m, "value", "max_iter 0", ValueError, r"^max_iter must be an int in \[1, 2\*\*63 - 1\]",
            lambda: {"max_iter": 0}),
        bad(m, "type", "max_iter float", TypeError, r"^max_iter must be an int .*not float",
            lambda: {"max_iter": 3.0}),
        bad(m, "value", "max_iter 2**64", ValueError,
            r"^max_iter must be an int in \[1, 2\*\*63 - 1\]", lambda: {"max_iter": 2**64}),
        bad(m, "type", "history str", TypeError, r"^history must be True or False",
            lambda: {"history": "no"}),
        bad(m, "type", "callback not callable", TypeError, r"^callback must be None or callable",
            lambda: {"callback": "print"}),
        bad(m, "value", "realisations 0", ValueError,
            r"realisations must be an int in \[1, 65536\], not 0",
            lambda: {"realisations": 0}),
        bad(m, "value", "realisations 10**9", ValueError,
            r"realisations must be an int in \[1, 65536\], not 1000000000",
            lambda: {"realisations": 10**9}),
        bad(m, "type", "realisations float", TypeError,
            r"realisations must be an int in \[1, 65536\], not float 2\.0",
            lambda: {"realisations": 2.0}),
        bad(m, "type", "average str", TypeError, r"average must be True or False, not str 'yes'",
            lambda: {"average": "yes"}),
        bad(m, "value", "seed 2**64", ValueError,
            r"seed must be an int in \[0, 2\*\*63 - 1\] \(or None\), not 18446744073709551616", lambda: {"seed": 2**64}),
        bad(m, "type", "seed float", TypeError,
            r"^seed must be an int in \[0, 2\*\*63 - 1\] \(or None\), not float 1\.5",
            lambda: {"seed": 1.5}),
        bad(m, "value", "sigma_L above sigma_0", ValueError,
            r"^sigma_L must be < sigma_0 \(the sampler lowers the noise level from sigma_0 to "
            r"sigma_L\), but sigma_L >= sigma_0 for images \[1\]",
            lambda: {"y": y8(2), "sigma_0": 0.5, "sigma_L": torch.tensor([0.1, 0.5])}),
        bad(m, "value", "h0 above 1", ValueError, r"^h0 must be <= 1.0, got 1.5",
            lambda: {"h0": 1.5}),
        bad(m, "value", "beta above 1", ValueError, r"^beta must be <= 1.0, got 2.0",
            lambda: {"beta": 2.0}),
        bad(m, "denoiser", "NaN for image 1", FloatingPointError,
            r"^implicit-prior: the iterate of images \[1\] is NaN or Inf by iteration 3",
            lambda: {"y": torch.cat([y8(), y8() + 10]), "denoiser": Marked(NAN), "max_iter": 3,
                     "seed": 0}),
        bad(m, "denoiser", "Inf for image 0", FloatingPointError,
            r"^implicit-prior: the iterate of images \[0\] is NaN or Inf",
            lambda: {"y": torch.cat([y8() + 10, y8()]), "denoiser": Marked(INF), "max_iter": 3,
                     "seed": 0}),
        bad(m, "denoiser", "returns the wrong shape", ValueError,
            r"^the denoiser returned shape \(1, 1, 8, 4\) for input of shape \(1, 1, 8, 8\)",
            lambda: {"denoiser": lambda x, s: x[..., :4]}),
        bad(m, "denoiser", "returns float64 for float32", TypeError,
            r"^the denoiser returned dtype torch.float64",
            lambda: {"denoiser": lambda x, s: x.double()}),
        bad(m, "denoiser", "returns a numpy array", TypeError,
            r"^the denoiser returned ndarray, not a torch.Tensor",
            lambda: {"denoiser": lambda x, s: x.numpy()}),
    ]  # fmt: skip
    for dt in (torch.float16, torch.bfloat16):
        name = str(dt).removeprefix("torch.")
        rows.append(bad(m, "dtype", f"y {name}", TypeError,
                        rf"^y must be float32 or float64, not torch.{name}",
                        lambda dt=dt: {"y": y8().to(dt)}))  # fmt: skip
    for dt in (torch.int64, torch.bool, torch.complex64):
        name = str(dt).removeprefix("torch.")
        rows.append(bad(m, "dtype", f"y {name}", TypeError,
                        rf"^y \(the measurement M\^T x\) must be a float32 or float64 tensor, "
                        rf"not torch.{name}",
                        lambda dt=dt: {"y": y8().mul(2).to(dt)}))  # fmt: skip
    del mask
    return rows + param_rows(m)


def S(x, sigma):
    """The sampler's affine denoiser for sample(): 0.8 x + 0.1."""
    return A_AFF * x + B_AFF


def sample_bad(category, what, error, match, spec=dict, denoiser=S):
    def call():
        kw = {"max_iter": 3, "seed": 0, "shape": (1, 1, 8, 8)}
        kw.update(spec())
        shape = kw.pop("shape")
        return pnpfast.sample(denoiser, shape, **kw)

    return Bad(SAMPLE, category, what, call, error, match)


SAMPLE_ROWS = [
    sample_bad("type", "denoiser not callable", TypeError,
               r"^denoiser must be callable as D\(x, sigma\), not int", denoiser=3),
    sample_bad("denoiser", "NaN for image 1", FloatingPointError,
               r"^implicit-prior: the iterate of images \[1\] is NaN or Inf by iteration 3",
               lambda: {"shape": (2, 1, 8, 8),
                        "sigma_0": torch.tensor([0.5, 40.0]), "sigma_L": 0.01},
               denoiser=Marked(NAN)),
    sample_bad("denoiser", "returns the wrong shape", ValueError,
               r"^the denoiser returned shape \(1, 1, 8, 4\)",
               denoiser=lambda x, s: x[..., :4]),
    sample_bad("denoiser", "returns a list", TypeError, r"^the denoiser returned list",
               denoiser=lambda x, s: [x]),
    sample_bad("rank", "shape of 3", ValueError,
               r"^shape must be four positive integers \(B, C, H, W\), not \(1, 8, 8\)",
               lambda: {"shape": (1, 8, 8)}),
    sample_bad("size", "shape batch 0", ValueError,
               r"^shape must be four positive integers \(B, C, H, W\), not \(0, 1, 8, 8\)",
               lambda: {"shape": (0, 1, 8, 8)}),
    sample_bad("type", "shape with a float", TypeError,
               r"^shape must be a tuple of four ints \(B, C, H, W\), not \(1, 1, 8, 8.0\)",
               lambda: {"shape": (1, 1, 8, 8.0)}),
    sample_bad("type", "shape a str", TypeError, r"^shape must be a tuple of four ints",
               lambda: {"shape": "1188"}),
    sample_bad("type", "shape with a bool", TypeError, r"^shape must be a tuple of four ints",
               lambda: {"shape": (True, 1, 8, 8)}),
    sample_bad("size", "shape width 0", ValueError,
               r"^shape must be four positive integers \(B, C, H, W\), not \(1, 1, 8, 0\)",
               lambda: {"shape": (1, 1, 8, 0)}),
    sample_bad("value", "seed 2**64", ValueError,
               r"seed must be an int in \[0, 2\*\*63 - 1\] \(or None\), not 18446744073709551616",
               lambda: {"seed": 2**64}),
    sample_bad("value", "seed -1", ValueError,
               r"seed must be an int in \[0, 2\*\*63 - 1\] \(or None\), not -1",
               lambda: {"seed": -1}),
    sample_bad("type", "seed str", TypeError,
               r"^seed must be an int in \[0, 2\*\*63 - 1\] \(or None\), not str '1'",
               lambda: {"seed": "1"}),
    sample_bad("dtype", "dtype float16", TypeError,
               r"^dtype must be torch.float32 or torch.float64, not torch.float16",
               lambda: {"dtype": torch.float16}),
    sample_bad("dtype", "dtype bfloat16", TypeError,
               r"^dtype must be torch.float32 or torch.float64, not torch.bfloat16",
               lambda: {"dtype": torch.bfloat16}),
    sample_bad("dtype", "dtype int64", TypeError,
               r"^dtype must be torch.float32 or torch.float64, not torch.int64",
               lambda: {"dtype": torch.int64}),
    sample_bad("dtype", "dtype bool", TypeError,
               r"^dtype must be torch.float32 or torch.float64, not torch.bool",
               lambda: {"dtype": torch.bool}),
    sample_bad("dtype", "dtype complex64", TypeError,
               r"^dtype must be torch.float32 or torch.float64, not torch.complex64",
               lambda: {"dtype": torch.complex64}),
    sample_bad("type", "dtype a str", TypeError,
               r"^dtype must be torch.float32 or torch.float64, not float32",
               lambda: {"dtype": "float32"}),
    sample_bad("meta", "device meta", ValueError,
               r"^device is the meta device \(it holds no data\): draw the samples on cpu or cuda",
               lambda: {"device": "meta"}),
    sample_bad("name", "device unknown", ValueError, r"^device 'gpu0' cannot hold the samples",
               lambda: {"device": "gpu0"}),
    sample_bad("type", "device a float", TypeError,
               r"^device must be a str or a torch.device, not float", lambda: {"device": 0.5}),
    sample_bad("value", "max_iter 0", ValueError,
               r"^max_iter must be an int in \[1, 2\*\*63 - 1\]", lambda: {"max_iter": 0}),
    sample_bad("type", "max_iter bool", TypeError, r"^max_iter must be an int .*not bool",
               lambda: {"max_iter": True}),
    sample_bad("type", "history str", TypeError, r"^history must be True or False",
               lambda: {"history": "yes"}),
    sample_bad("type", "callback not callable", TypeError, r"^callback must be None or callable",
               lambda: {"callback": 3}),
    sample_bad("name", "unknown backend", ValueError,
               r"backend must be one of cuda, triton, reference, not 'bogus'",
               lambda: {"backend": "bogus"}),
    sample_bad("value", "sigma_L equal to sigma_0", ValueError,
               r"^sigma_L must be < sigma_0 .* for images \[0\]",
               lambda: {"sigma_0": 0.5, "sigma_L": 0.5}),
    sample_bad("mismatch", "sigma_0 length 3 for 2 images", ValueError,
               r"^sigma_0 must be a float or a tensor of length 2 \(one per image\), got shape "
               r"\(3,\)",
               lambda: {"shape": (2, 1, 8, 8), "sigma_0": torch.ones(3)}),
    sample_bad("rank", "sigma_L 2-d", ValueError,
               r"^sigma_L must be a float or a tensor of length 1 \(one per image\), got shape "
               r"\(1, 1\)",
               lambda: {"sigma_L": torch.full((1, 1), 0.01)}),
    sample_bad("value", "h0 0", ValueError, r"^h0 must be > 0, got 0.0", lambda: {"h0": 0.0}),
    sample_bad("value", "h0 above 1", ValueError, r"^h0 must be <= 1.0, got 1.5",
               lambda: {"h0": 1.5}),
    sample_bad("nan-inf", "h0 NaN", ValueError, r"^h0 must be finite, got nan",
               lambda: {"h0": NAN}),
    sample_bad("value", "beta 0", ValueError, r"^beta must be > 0, got 0.0",
               lambda: {"beta": 0.0}),
    sample_bad("nan-inf", "beta Inf", ValueError, r"^beta must be finite, got inf",
               lambda: {"beta": INF}),
    sample_bad("nan-inf", "sigma_0 NaN", ValueError, r"^sigma_0 must be finite, got nan",
               lambda: {"sigma_0": NAN}),
    sample_bad("nan-inf", "sigma_0 1e300", ValueError,
               r"^sigma_0 must be finite in float32: 1e\+300 overflows to inf",
               lambda: {"sigma_0": 1e300}),
    sample_bad("value", "sigma_0 negative", ValueError, r"^sigma_0 must be > 0, got -1.0",
               lambda: {"sigma_0": -1.0}),
    sample_bad("value", "sigma_L 0", ValueError, r"^sigma_L must be > 0, got 0.0",
               lambda: {"sigma_L": 0.0}),
    sample_bad("value", "sigma_L 1e-300 underflows float32", ValueError,
               r"^sigma_L must be > 0 in float32: 1e-300 underflows to 0",
               lambda: {"sigma_L": 1e-300}),
    sample_bad("nan-inf", "sigma_L tensor NaN", ValueError, r"^sigma_L must be finite, got nan",
               lambda: {"sigma_L": torch.tensor([NAN])}),
    sample_bad("type", "sigma_0 str", TypeError,
               r"^sigma_0 must be a float or a tensor of length 1, not str",
               lambda: {"sigma_0": "1"}),
    sample_bad("type", "sigma_0 bool tensor", TypeError, r"^sigma_0 must be real, not torch.bool",
               lambda: {"sigma_0": torch.tensor([True])}),
    sample_bad("meta", "sigma_L meta", ValueError, r"^sigma_L is on the meta device",
               lambda: {"sigma_L": torch.full((1,), 0.01, device="meta")}),
]  # fmt: skip


# -- Good rows: the dense oracles ----------------------------------------------------------------


def good(method, category, what, call, oracle, atol=1e-9, entry=SOLVE):
    return Good(entry, category, f"{method}: {what}", call, oracle, atol)


def solver_good_rows(m: str) -> list[Good]:
    p = PARAMS[m]
    k3 = kern()

    def case(y, kernels, *, sigma=0.05, params=p, x0=None, max_iter=3, dtype=F64, **kw):
        """(call, oracle) for y, kernels [Bk, h, w] and per-image lists in sigma and params."""

        def call():
            s = torch.tensor(sigma, dtype=dtype) if isinstance(sigma, list) else sigma
            op = Blur(kernels if kernels.shape[0] > 1 else kernels[0])
            extra = {} if x0 is None else {"x0": x0().to(dtype)}
            return pnpfast.solve(
                y().to(dtype), op, denoiser_for(m), m, sigma=s, max_iter=max_iter, tol=0.0,
                **as_tensors(params, dtype), **extra, **kw,
            ).x  # fmt: skip

        def oracle():
            start = None if x0 is None else x0()
            return dense_run(m, y(), kernels, sigma, params, max_iter, start)

        return call, oracle

    rows = []

    def add(category, what, pair, atol=1e-9):
        rows.append(good(m, category, what, *pair, atol=atol))

    add("dtype", "float64", case(lambda: rand(1, 1, 8, 8, seed=5), k3[None]))
    # float32 against the float64 oracle: a few iterations lose a few float32 ulps each,
    # amplified by the large weights (1/sigma^2) of the RED data terms
    add("dtype", "float32", case(lambda: rand(1, 1, 8, 8, seed=5), k3[None], dtype=F32), 2e-4)
    add("layout", "non-contiguous y", case(lambda: transposed(rand(1, 1, 8, 8, seed=6)), k3[None]))
    add("layout", "channels_last y (3 channels)",
        case(lambda: channels_last(rand(1, 3, 8, 8, seed=7)), k3[None]))  # fmt: skip
    add("layout", "non-contiguous x0",
        case(lambda: rand(1, 2, 8, 8, seed=8), k3[None],
             x0=lambda: transposed(rand(1, 2, 8, 8, seed=9))))  # fmt: skip
    both = {n: [p[n], v] for n, v in PARAMS_2[m].items()}
    add("mismatch", "per-image kernels, sigma and parameters (batch 2)",
        case(lambda: rand(2, 1, 8, 8, seed=10), torch.stack([k3, kern(3, 3, seed=4)]),
             sigma=[0.05, 0.02], params={**p, **both}))  # fmt: skip
    add(
        "size",
        "1x1 image, 1x1 kernel",
        case(lambda: rand(1, 1, 1, 1, seed=11), torch.tensor([[[0.7]]], dtype=F64)),
    )
    add(
        "size",
        "kernel as large as the image (5x6)",
        case(lambda: rand(1, 1, 5, 6, seed=12), kern(5, 6, seed=13)[None]),
    )
    add("value", "max_iter 1", case(lambda: rand(1, 1, 8, 8, seed=14), k3[None], max_iter=1))
    return rows


def huge_max_iter_row(m: str, tol: float) -> Good:
    """max_iter 2**62: the run stops on tol (hqs's schedule still spans 2**62 iterations); the
    result, its iteration count and its convergence flag against the oracle's."""
    y = rand(1, 1, 8, 8, seed=15)
    K = 2**62

    def call():
        res = pnpfast.solve(y, Blur(kern()), Affine(), m, sigma=0.05, max_iter=K, tol=tol,
                            **as_tensors(PARAMS[m], F64))  # fmt: skip
        return res.x, res.iterations.double(), res.converged.double()

    def oracle():
        ITERATIONS.clear()
        x = dense_run(m, y, kern()[None], 0.05, PARAMS[m], K, tol=tol)
        (n, done), *_ = ITERATIONS
        return x, torch.tensor([float(n)], dtype=F64), torch.tensor([float(done)], dtype=F64)

    return good(m, "value", "max_iter 2**62 stopped by tol", call, oracle)


GOOD_SOLVE_MISC = [
    huge_max_iter_row("hqs", 0.05),
    huge_max_iter_row("red-dpg", 0.05),
    good("hqs", "type", "sigma a numpy float32",
         lambda: pnpfast.solve(rand(1, 1, 8, 8, seed=16), Blur(kern()), Affine(), "hqs",
                               sigma=np.float32(0.05), max_iter=3,
                               **as_tensors(PARAMS["hqs"], F64)).x,
         lambda: dense_run("hqs", rand(1, 1, 8, 8, seed=16), kern()[None],
                           float(np.float32(0.05)), PARAMS["hqs"], 3)),
    good("admm", "value", "sigma 0",
         lambda: pnpfast.solve(rand(1, 1, 8, 8, seed=17), Blur(kern()), Affine(), "admm",
                               sigma=0.0, max_iter=3, tol=0.0, **PARAMS["admm"]).x,
         lambda: dense_run("admm", rand(1, 1, 8, 8, seed=17), kern()[None], 0.0,
                           PARAMS["admm"], 3)),
]  # fmt: skip


# -- the sampler's Good rows: beta = 1 adds no noise, so the run from the seeded start is fixed --


def sampler_oracle(y0: torch.Tensor, step, h0: float, sigma_L: float, T: int) -> torch.Tensor:
    """y_t = y_{t-1} + h_t d_t, h_t = h0 t / (1 + h0 (t - 1)), d_t = step(y_{t-1}); an image stops
    (its last step applied) once sigma_t = ||d_t|| / sqrt(N) < sigma_L. float64 NumPy."""
    ys = y0.double().numpy().copy()
    for b in range(ys.shape[0]):
        y = ys[b]
        for t in range(1, T + 1):
            h = h0 * t / (1 + h0 * (t - 1))
            d = step(y, b)
            y = y + h * d
            if np.sqrt(np.mean(d**2)) < sigma_L:
                break
        ys[b] = y
    return torch.from_numpy(ys)


def seeded_normal(shape, seed, dtype):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def sample_good(what, category, shape, *, dtype=F64, sigma_0=1.0, h0=0.3, T=4, atol=1e-9):
    def call():
        s0 = torch.tensor(sigma_0, dtype=dtype) if isinstance(sigma_0, list) else sigma_0
        return pnpfast.sample(S, shape, sigma_0=s0, sigma_L=1e-3, h0=h0, beta=1.0, seed=7,
                              max_iter=T, dtype=dtype).x  # fmt: skip

    def oracle():
        s0 = torch.tensor(sigma_0, dtype=dtype).view(-1, 1, 1, 1)
        y0 = 0.5 + s0 * seeded_normal(shape, 7, dtype)
        return sampler_oracle(y0, lambda y, b: D(y) - y, h0, 1e-3, T)

    return Good(SAMPLE, category, what, call, oracle, atol)


def constrained_good(what, category, y, mask, *, dtype=F64, R=1, T=4, atol=1e-9, average=False):
    """solve(method="implicit-prior") with a pixel mask: d = (1 - m) D(y) + m x_c - y."""

    def call():
        res = pnpfast.solve(
            y().to(dtype),
            Inpainting(mask),
            Affine(),
            SAMPLER,
            h0=0.3,
            beta=1.0,
            sigma_L=1e-3,
            seed=5,
            max_iter=T,
            realisations=R,
            average=average,
        )
        return res.mean if average else res.x  # fmt: skip

    def oracle():
        xc = y().double()
        m = mask.double().expand_as(xc[:1]) if mask.dim() == 2 else mask.double()
        lifted = (m * xc).repeat_interleave(R, 0)
        mr = m.expand(xc.shape[0], *m.shape[1:]).repeat_interleave(R, 0).expand_as(lifted)
        y0 = lifted + 0.5 - mr * 0.5 + seeded_normal(lifted.shape, 5, dtype).double()
        lift, mk = lifted.numpy(), mr.numpy()
        out = sampler_oracle(
            y0, lambda yy, b: (1 - mk[b]) * D(yy) + lift[b] - yy, 0.3, 1e-3, T
        )  # fmt: skip
        if average:
            out = out.view(-1, R, *out.shape[1:]).mean(1)
        return out

    return Good(SOLVE, category, f"{SAMPLER}: {what}", call, oracle, atol)


MASK = torch.rand(8, 8, generator=torch.Generator().manual_seed(21)) > 0.4

GOOD_SAMPLER = [
    constrained_good("float64", "dtype", lambda: rand(1, 1, 8, 8, seed=22), MASK),
    constrained_good("float32", "dtype", lambda: rand(1, 1, 8, 8, seed=22), MASK, dtype=F32,
                     atol=1e-5),
    constrained_good("non-contiguous y", "layout",
                     lambda: transposed(rand(1, 1, 8, 8, seed=23)), MASK),
    constrained_good("channels_last y (3 channels)", "layout",
                     lambda: channels_last(rand(1, 3, 8, 8, seed=24)), MASK),
    constrained_good("2 realisations of 2 per-image masks", "mismatch",
                     lambda: rand(2, 1, 8, 8, seed=25),
                     torch.stack([MASK, ~MASK])[:, None], R=2),
    constrained_good("mean of 3 realisations", "value", lambda: rand(1, 1, 8, 8, seed=26), MASK,
                     R=3, average=True),
    constrained_good("1x1 image", "size", lambda: rand(1, 1, 1, 1, seed=27),
                     torch.ones(1, 1, dtype=torch.bool)),
    sample_good("float64", "dtype", (2, 1, 8, 8)),
    sample_good("float32", "dtype", (1, 3, 8, 8), dtype=F32, atol=1e-5),
    sample_good("1x1 images", "size", (2, 1, 1, 1)),
    sample_good("per-image sigma_0", "mismatch", (2, 2, 4, 5), sigma_0=[1.0, 0.3]),
    sample_good("h0 = 1 (one full step)", "value", (1, 1, 8, 8), h0=1.0, T=1),
]  # fmt: skip


CASES = [row for m in METHODS for row in (*common_rows(m), *param_rows(m), *solver_good_rows(m))]
CASES += SPECIFIC + sampler_rows() + SAMPLE_ROWS + GOOD_SOLVE_MISC + GOOD_SAMPLER


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for these tiny tensors: with two on a busy 2-core machine an 8x8
    rfft2 waits about 8 ms on its threads' synchronisation, with one it takes 3 us."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@params(CASES)
def test_fuzz(case):
    check(case)

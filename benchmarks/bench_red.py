"""Convergence and per-iteration cost of the RED solvers (Reehorst & Schniter's deblurring study).

Reehorst & Schniter, "Regularization by Denoising: Clarifications and New Interpretations",
IEEE TCI 2019 (code: github.com/edward-reehorst/On_RED, ``algorithm_comparison.m``), compare
the RED solvers on the uniform-deblurring problem of Romano, Elad & Milanfar's RED paper. Two
parts (``--part convergence|timing|all``, default all).

convergence
    Problem: the starfish of ``<data>/images/Set3C`` (``--image``), reduced to its luminance,
    the Y of MATLAB's ``rgb2ycbcr`` on [0, 1] (``Y = (16 + 65.481 R + 128.553 G + 24.966 B) /
    255``, so Y lies in [16, 235] / 255 as in RED's ``PrepareImage``), optionally centre-cropped
    (``--crop``), blurred by ``<data>/kernels/red/red_uniform_9x9.npy`` (ones(9, 9) / 81) with
    circular boundaries (``pnpfast.operators.Blur``), plus white Gaussian noise of std
    sigma_n = sqrt(2) / 255 drawn from ``torch.Generator().manual_seed(--seed)`` (float64, on
    the CPU). Unlike RED's MATLAB code, which blurs and adds noise to each RGB channel and then
    takes Y (so the noise in Y has std ~0.81 / 255, not sqrt(2) / 255), the noise is added to Y,
    so the solvers' noise model is exact; RED's ``randn('seed', 0)`` draws cannot be reproduced
    in torch anyway. The solvers run in float32 from x0 = y, with tol = 0 (every method runs all
    ``--iters`` iterations, default 200, RED's and Reehorst & Schniter's count).

    Denoiser (``--denoiser``, default ``bf-dncnn-0-10``): the bias-free DnCNN of Mohan et al.
    for noise std in [0, 10] / 255, read offline from ``<data>/weights`` (a registry name's file
    is looked up there by its file name; ``--weights`` gives a file). Others: any registry name
    (``bfcnn-gray``, ``bf-dncnn-0-30``, ...), ``bfcnn`` (the public BF-CNN of the image's
    channel count), ``blind`` or ``conditional`` (pnpfast's shipped networks), ``gaussian``,
    ``tv``. On CUDA TF32 is switched off for this part, so the residuals are not floored by it.

    Parameters, those of Reehorst & Schniter's uniform-deblurring comparison carried from the
    [0, 255] scale to [0, 1] (pnpfast's defaults, see ``pnpfast/solvers/red.py``): lam = 0.02 *
    255^2 (for red-gd, whose data term has no 1 / sigma_n^2, lam * sigma_n^2: the same problem),
    sigma_d = 3.25 / 255 (RED's "effective sigma", the noise level given to the denoiser; a blind
    network such as BF-DnCNN ignores it), sigma = sigma_n; red-admm beta = 0.001 * 255^2, one
    inner denoiser step (their comparison uses no over-relaxation, alpha = 1); red-pg and
    red-apg L = 1 (red-pg with L = 1 is red-fp: the same iterates); red-dpg L0 = 0.2, Lf = 2;
    red-sd and red-gd step 1 / Lip. Their code clamps x to [0, 255] after each step; pnpfast's
    solvers do not (Y stays within [16, 235] / 255, so a clamp would rarely act).

    Recorded per iteration k = 1..N (``--methods``, default all seven):

    * ``psnr``: of x_k against the clean Y, peak 1, no clamping, the whole image (the engine's
      history with ``x_true``). PSNR on Y with peak 1 is RED's luminance PSNR with peak 255;
    * ``fpr``, the fixed-point residual of RED: every RED method looks for x with
      grad l(x) + lam (x - f(x)) = 0, l(x) = ||A x - y||^2 / (2 sigma_n^2), f(x) = D(x, sigma_d);
      fpr(x) = ||A^T (A x - y) / (lam sigma_n^2) + x - f(x)|| / ||x||, i.e. the norm of the
      gradient of Reehorst & Schniter's ``a_fp_error`` over lam ||x``: scale free, zero exactly
      at a RED fixed point, and the same quantity for every method (for red-admm it is taken at
      the data-prox iterate x, the output). It costs one more denoiser call per iteration, made
      in the callback and left out of the timings; ``--no-fpr`` skips it;
    * ``rel_change``: ||x_k - x_{k-1}|| / ||x_{k-1}||, the engine's stopping quantity (free, but
      method dependent: a small step is not convergence, e.g. red-sd's);
    * ``seconds``: wall time from the start of ``pnpfast.solve`` to the end of iteration k,
      measured in the callback with ``time.perf_counter`` after ``torch.cuda.synchronize`` on
      CUDA, less the time the callback spends on the residual; it includes the method's set-up
      (red-pg, red-apg, red-dpg call the denoiser once before the first iteration). Each method
      first runs a few untimed warm-up iterations (first calls, cuDNN, Triton compilation).

    Summaries per method: final and best PSNR; ``fpr_iters``/``fpr_seconds``, the first
    iteration (and its time) with fpr <= 1e-3 (``--tol``), what a stopping rule on it would
    see; ``rel_iters`` the same for rel_change; ``psnr_iters``/``psnr_seconds``, the first
    iteration from which the PSNR stays within 0.1 dB of the final PSNR; ``ms_per_iter`` the
    median of the per-iteration times. None where the criterion is not met within N
    iterations. ``fpr_iters_at``: the first iteration from which fpr stays under 1e-3, 1e-4 and
    1e-5 (the tighter ones show the asymptotic rates). The speed-up of red-apg over red-fp is
    the ratio of their ``fpr_iters``; the target is red-apg >= 2.5x fewer iterations (a bound
    where red-fp does not get there within N, undetermined where neither does). Every row also
    has ``fpr_iters_ratio_vs_red_fp``.

    Why a method does not converge: before the runs, ``--jacobian-iters`` (default 30) power
    steps with forward-mode Jacobian products give, at the clean image, the dominant
    eigenvalue of the denoiser's Jacobian J_f (``jacobian_eig``, with the gain ||J v||
    ``jacobian_gain``) and of red-fp's iteration map x -> prox(f(x)), whose Jacobian is P J_f,
    P = F^-1 diag(lam / (|H|^2 / sigma_n^2 + lam)) F the data prox's linear part (``fp_rate``,
    ``fp_gain``); after the runs, the same four at red-fp's last iterate (``*_at_fp_final``).
    For a differentiable denoiser, |fp_rate| at a fixed point is red-fp's local linear rate;
    above 1 the point repels: red-fp drifts away and momentum (red-apg) amplifies the drift,
    in the near null space of the blur, where P ~ I and x_{k+1} ~ f(x_k). For a piecewise
    denoiser (ReLU networks, the projections of the TV prox) the forward-mode Jacobian is that
    of the piece the point lies in and describes only perturbations that stay in it: the TV
    study converges (fpr 4e-6) with |fp_rate| above 2 at its last iterate. Read the numbers
    as diagnostics, not as verdicts.

    Output: one JSON line per method to ``--convergence-out`` (default
    ``benchmarks/results/red_convergence.jsonl``, appended): the problem (image, crop, shape,
    kernel, noise_255, seed, psnr_input), method, params, denoiser, iters, the arrays psnr, fpr,
    rel_change, seconds, the summaries, and device, torch, triton, cuda, git_sha, timestamp,
    note (the harness's environment columns). No ``op`` column: ``report.py`` leaves the rows out
    of its timing tables. A PNG next to it (``--plot``, default the same name with ``.png``):
    PSNR against iterations and against seconds, and fpr against iterations (log axes, as in
    the paper's figures); skipped, with the reason printed, when matplotlib is not installed.
    A table of the summaries and the red-apg verdict are printed.

timing
    The cost of one iteration split into the denoiser and everything else, for each method,
    on a batch ``--shape`` (default 8x3x256x256 on CUDA, 2x3x64x64 on the CPU): the Set3C
    images in turn (mirrored from the fourth on), their luminance when C = 1, tiled and
    centre-cropped to H x W, blurred and noised as above (per image, one generator), with the
    denoiser ``--timing-denoiser`` (default ``bfcnn-color``, the public BF-CNN color). The
    denoiser is wrapped: every call is bracketed by a pair of CUDA events (``time.perf_counter``
    on the CPU) and tagged with the iteration it belongs to; the callback records an event at
    the end of every iteration. Nothing synchronises during the run (CUDA events time the
    stream; the host synchronises once at the end), so the iteration times are those of a
    solve as the engine runs it, with its own per-iteration relative change (the callback makes
    the engine compute it, as tol > 0 would). The first iteration (with the method's set-up) is
    left out; over the others (``--timing-iters``, default 50 on CUDA, 10 on the CPU, after 2
    untimed warm-up iterations) ``median_ms`` is the median per-iteration time, ``denoiser_ms``
    the median denoiser time per iteration, ``other_ms`` the median of their difference and
    ``frac_not_denoiser`` = 1 - (total denoiser time) / (total time). Target on a GPU:
    frac_not_denoiser < 5% at 8x3x256x256. Torch's defaults are kept (cuDNN may use TF32);
    the note says which.

    Rows go to ``--out`` (default ``benchmarks/results/red.jsonl``, appended) with every
    column of ``harness.COLUMNS`` (``op`` = ``red_iteration``, ``provider`` = the method,
    bytes/gbps null, ``correct`` = the output is finite) plus method, denoiser, iters,
    denoiser_calls_per_iter, denoiser_ms, other_ms, frac_not_denoiser, target, target_met (null
    on the CPU). ``report.py`` lists them under ``red_iteration``.

``--quick``: a smoke run (a 48x48 crop and 8 iterations; 1x3x32x32 and 4 iterations for the
timing, one warm-up iteration). Needs ``<data>`` (``--data``, default ``../shared/data``).

    python benchmarks/bench_red.py                                  # both parts, cuda if there
    python benchmarks/bench_red.py --part convergence --device cpu --iters 200
    python benchmarks/bench_red.py --part timing --device cuda --shape 8x3x256x256
    python benchmarks/bench_red.py --quick --device cpu --convergence-out /tmp/c.jsonl \\
        --out /tmp/t.jsonl
"""

import argparse
import datetime
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import pnpfast
from pnpfast.denoisers import load, registry
from pnpfast.io import read_image
from pnpfast.operators import Blur

DATA = harness.DATA
METHODS = ("red-sd", "red-fp", "red-admm", "red-pg", "red-dpg", "red-apg", "red-gd")
KERNEL = "red_uniform_9x9"
SIGMA_N = math.sqrt(2) / 255  # RED's uniform-blur noise, sqrt(2) on the [0, 255] scale
SIGMA_D = 3.25 / 255  # RED's "effective sigma" of the denoiser in deblurring
LAM = 0.02 * 255**2
BETA = 0.001 * 255**2
FPR_TOL = 1e-3
FPR_TOLS = (1e-3, 1e-4, 1e-5)  # the tighter ones show the asymptotic rates
PSNR_BAND = 0.1  # dB
APG_TARGET = 2.5  # red-apg at least this many times fewer iterations than red-fp
OTHER_TARGET = 0.05  # on a GPU, at most this fraction of an iteration outside the denoiser
OP = "red_iteration"
RATE_KEYS = ("jacobian_eig", "jacobian_gain", "fp_rate", "fp_gain")
CONVERGENCE_NAME = "red_convergence"
TIMING_NAME = "red"  # the name benchmarks/gpu_check.sh gives bench_red.py's --out


def method_params(method: str) -> dict:
    """The parameters of ``method`` in this study (see the module docstring)."""
    if method == "red-gd":  # 1/2 ||A x - y||^2 + lam sigma_n^2 rho(x): the same fixed points
        return {"lam": LAM * SIGMA_N**2, "sigma_d": SIGMA_D}
    params = {"lam": LAM, "sigma_d": SIGMA_D}
    if method == "red-admm":
        params.update(beta=BETA, inner_iter=1)
    elif method in ("red-pg", "red-apg"):
        params.update(L=1.0)
    elif method == "red-dpg":
        params.update(L0=0.2, Lf=2.0)
    return params


# --------------------------------------------------------------------------------------------
# the problem


def ycbcr_luma(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB on [0, 1] -> [B, 1, H, W], the Y of MATLAB rgb2ycbcr on [0, 1]."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=rgb.dtype, device=rgb.device)
    return (16 + (rgb * w.view(1, 3, 1, 1)).sum(1, keepdim=True)) / 255


def centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The centre h x w window of x, tiled periodically first where x is smaller."""
    H, W = x.shape[-2:]
    x = x.repeat(1, 1, -(-h // H), -(-w // W))
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def red_kernel(data: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(data / "kernels" / "red" / f"{KERNEL}.npy")).double()


def degrade(clean: torch.Tensor, kernel: torch.Tensor, seed: int) -> tuple[Blur, torch.Tensor]:
    """(A, y = A x + sigma_n n): circular blur, noise from one generator seeded ``seed``."""
    A = Blur(kernel)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=g, dtype=torch.float64)
    return A, A(clean) + SIGMA_N * noise


def load_denoiser(
    name: str, weights: str | None, channels: int, device: str, data: Path
) -> tuple[Callable, str]:
    """(denoiser, label) for ``--denoiser`` / ``--timing-denoiser``; never downloads.

    A registry name takes its file from ``data/weights/*/<file name>`` (else the cache, offline);
    ``bfcnn`` without weights is the registry BF-CNN of ``channels``. Raises RuntimeError with
    the reason when the denoiser cannot be loaded.
    """
    key = name.strip().lower()
    if key == "bfcnn" and weights is None:
        key = "bfcnn-gray" if channels == 1 else "bfcnn-color"
    try:
        if key in registry.REGISTRY:
            item = registry.entry(key)
            if item.channels != channels:
                raise ValueError(
                    f"{key} takes {item.channels} channels, the images have {channels}"
                )
            if weights is None:
                found = sorted((data / "weights").glob(f"*/{item.filename}"))
                weights = str(found[0]) if found else None
            if weights is None:
                net = registry.load_entry(key, offline=True, device=device)
                return net, f"{key}:cache"
            return load(key, weights=weights, device=device), f"{key}:{Path(weights).name}"
        net = load(key, weights=weights, device=device)
        return net, f"{key}:{Path(weights).name if weights else 'shipped'}"
    except (OSError, ValueError, RuntimeError) as exc:
        raise RuntimeError(f"cannot load the denoiser {name!r}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# summaries


def stays_at_most(values: Sequence[float], tol: float) -> int | None:
    """The first iteration (1-based) from which every value is <= tol (a method that dips under
    the tolerance and leaves it again has not converged); None if the last value is not."""
    if not values or not values[-1] <= tol:
        return None
    k = len(values)
    while k > 1 and values[k - 2] <= tol:
        k -= 1
    return k


def settled_within(values: Sequence[float], band: float) -> int | None:
    """The first iteration (1-based) from which every value stays within ``band`` of the last
    one; None for an empty or non-finite sequence."""
    if not values or not math.isfinite(values[-1]):
        return None
    k = len(values)
    while k > 1 and abs(values[k - 2] - values[-1]) <= band:
        k -= 1
    return k


def speedup_verdict(
    fast: int | None, slow: int | None, iters: int, target: float
) -> tuple[float | None, bool | None, str]:
    """(slow / fast, whether >= target, a sentence) for iterations to a tolerance; None where
    a method did not reach it within ``iters`` (then the ratio is a bound, or unknown)."""
    if fast is not None and slow is not None:
        ratio = slow / fast
        return ratio, ratio >= target, f"{slow} / {fast} = {ratio:.2f}x"
    if fast is not None:
        bound = iters / fast
        met = True if bound >= target else None
        return None, met, f"> {bound:.2f}x (red-fp did not reach it in {iters} iterations)"
    if slow is not None:
        return None, False, "red-apg did not reach it, red-fp did"
    return None, None, f"neither reached it in {iters} iterations"


def jacobian_eigenvalue(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, iters: int, seed: int = 0
) -> tuple[float, float]:
    """(Rayleigh quotient <J v, v>, gain ||J v||) after ``iters`` power steps v <- J v / ||J v||
    on the Jacobian J of ``fn`` at x (forward-mode products, the first image of the batch):
    the eigenvalue of J of largest modulus when it is real and dominant."""
    g = torch.Generator().manual_seed(seed)
    x = x[:1]
    v = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    v = v / v.norm()
    eig = gain = float("nan")
    for _ in range(iters):
        _, jv = torch.func.jvp(fn, (x,), (v,))
        eig, gain = float((jv * v).sum()), float(jv.norm())
        v = jv / gain
    return eig, gain


def data_prox_weights(A: Blur, shape: Sequence[int]) -> torch.Tensor:
    """The half-spectrum weights w = lam / (|H|^2 / sigma_n^2 + lam) of the linear part of
    red-fp's data prox, x = argmin l(x) + lam/2 ||x - v||^2 = (A^T A / sigma_n^2 + lam)^-1
    (A^T y / sigma_n^2 + lam v): dx/dv = irfft2(w rfft2(.)). [1, 1, H, W // 2 + 1] float64."""
    h = A.spectrum(shape[-2], shape[-1], torch.device("cpu"), torch.float64)
    return LAM / (h.abs().square() / SIGMA_N**2 + LAM)


def local_rates(denoiser: Callable, A: Blur, x: torch.Tensor, iters: int) -> dict[str, float]:
    """The dominant eigenvalues at x of the denoiser's Jacobian J_f (``jacobian_eig``) and of
    red-fp's iteration map x -> prox(f(x)), whose Jacobian is P J_f with P the data prox's
    linear part (``fp_rate``): red-fp converges to a fixed point near x at the linear rate
    |fp_rate| when it is below 1 and leaves it when it is above. Above 1, every RED method
    drifts, wherever the data term does not contract (the near null space of the blur, where
    x_{k+1} ~ f(x_k)), and momentum (red-apg) amplifies the drift. For a piecewise denoiser
    (ReLU networks, TV's projections) they describe only perturbations that stay in the linear
    piece x lies in."""
    sig = torch.full((1,), SIGMA_D, dtype=x.dtype, device=x.device)
    w = data_prox_weights(A, x.shape).to(device=x.device, dtype=x.dtype)
    size = tuple(x.shape[-2:])

    def denoise(z):
        return denoiser(z, sig)

    def fp_map(z):
        return torch.fft.irfft2(w * torch.fft.rfft2(denoiser(z, sig)), s=size)

    eig, gain = jacobian_eigenvalue(denoise, x, iters)
    rate, rate_gain = jacobian_eigenvalue(fp_map, x, iters)
    return {"jacobian_eig": eig, "jacobian_gain": gain, "fp_rate": rate, "fp_gain": rate_gain}


def _sig(v: float, digits: int = 5) -> float:
    return float(f"{v:.{digits}g}")


def _median(values: Sequence[float]) -> float | None:
    return harness.quantile(values, 0.5) if values else None


# --------------------------------------------------------------------------------------------
# convergence


def converge(
    method: str,
    A: Blur,
    y: torch.Tensor,
    clean: torch.Tensor,
    denoiser: Callable,
    *,
    iters: int,
    warmup: int,
    fpr: bool,
    tol: float = FPR_TOL,
) -> dict:
    """Run one method and return its per-iteration arrays and summaries."""
    params = method_params(method)
    cuda = y.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sigma_d = torch.full((y.shape[0],), SIGMA_D, dtype=y.dtype, device=y.device)
    scale = 1 / (LAM * SIGMA_N**2)

    def residual(x: torch.Tensor) -> float:
        r = scale * A.adjoint(A(x) - y) + x - denoiser(x, sigma_d)
        return float(r.flatten(1).norm(dim=1)[0] / x.flatten(1).norm(dim=1)[0])

    seconds: list[float] = []
    fprs: list[float] = []
    clock = {"start": 0.0, "excluded": 0.0}

    def callback(info) -> None:
        sync()
        now = time.perf_counter()
        seconds.append(now - clock["start"] - clock["excluded"])
        if fpr:
            fprs.append(residual(info.x))  # float() synchronises
            clock["excluded"] += time.perf_counter() - now

    with torch.no_grad():
        if warmup:
            pnpfast.solve(y, A, denoiser, method, sigma=SIGMA_N, max_iter=warmup, tol=0.0, **params)
        sync()
        clock["start"] = time.perf_counter()
        res = pnpfast.solve(
            y,
            A,
            denoiser,
            method,
            sigma=SIGMA_N,
            max_iter=iters,
            tol=0.0,
            x_true=clean,
            callback=callback,
            **params,
        )
    psnr = [round(float(v), 4) for v in res.history["psnr"][:, 0].cpu()]
    rel = [_sig(float(v)) for v in res.history["rel_change"][:, 0].cpu()]
    fprs = [_sig(v) for v in fprs]
    steps = [b - a for a, b in zip([0.0, *seconds[:-1]], seconds, strict=True)]
    fpr_iters = stays_at_most(fprs, tol) if fpr else None
    psnr_iters = settled_within(psnr, PSNR_BAND)
    best = max(range(len(psnr)), key=psnr.__getitem__)
    return {
        "x_final": res.x,  # popped by run_convergence (not a JSON column)
        "method": method,
        "params": params,
        "iters": iters,
        "final_psnr": psnr[-1],
        "best_psnr": psnr[best],
        "best_iter": best + 1,
        "final_fpr": fprs[-1] if fprs else None,
        "final_rel_change": rel[-1],
        "fpr_tol": tol,
        "fpr_iters": fpr_iters,
        "fpr_iters_at": {f"{t:g}": stays_at_most(fprs, t) for t in FPR_TOLS} if fpr else None,
        "fpr_seconds": round(seconds[fpr_iters - 1], 6) if fpr_iters else None,
        "rel_iters": stays_at_most(rel, tol),
        "psnr_band_db": PSNR_BAND,
        "psnr_iters": psnr_iters,
        "psnr_seconds": round(seconds[psnr_iters - 1], 6) if psnr_iters else None,
        "ms_per_iter": round(_median(steps) * 1e3, 4),
        "total_seconds": round(seconds[-1], 6),
        "psnr": psnr,
        "fpr": fprs if fpr else None,
        "rel_change": rel,
        "seconds": [round(s, 6) for s in seconds],
    }


def convergence_table(rows: list[dict], tol: float = FPR_TOL) -> str:
    def cell(v, spec: str = "") -> str:
        return "-" if v is None else format(v, spec)

    header = ("method", "final PSNR", "best (it)", f"it fpr<={tol:g}", "s", f"it rel<={tol:g}")
    header += (f"it ±{PSNR_BAND} dB", "s", "ms/it", "final fpr")
    lines = [
        (
            r["method"],
            f"{r['final_psnr']:.2f}",
            f"{r['best_psnr']:.2f} ({r['best_iter']})",
            cell(r["fpr_iters"]),
            cell(r["fpr_seconds"], ".3f"),
            cell(r["rel_iters"]),
            cell(r["psnr_iters"]),
            cell(r["psnr_seconds"], ".3f"),
            f"{r['ms_per_iter']:.2f}",
            cell(r["final_fpr"], ".2e"),
        )
        for r in rows
    ]
    return harness.text_table(header, lines)


def plot(rows: list[dict], path: Path, title: str, tol: float = FPR_TOL) -> str:
    """Write the figure; returns what was done (or why not)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"plot skipped: matplotlib is not installed ({exc})"
    with_fpr = any(r["fpr"] for r in rows)
    fig, axes = plt.subplots(1, 3 if with_fpr else 2, figsize=(16 if with_fpr else 11, 4.5))
    for r in rows:
        its = range(1, len(r["psnr"]) + 1)
        axes[0].semilogx(its, r["psnr"], label=r["method"])
        axes[1].semilogx(r["seconds"], r["psnr"], label=r["method"])
        if with_fpr and r["fpr"]:
            axes[2].loglog(its, r["fpr"], label=r["method"])
    axes[0].set(xlabel="iteration", ylabel="PSNR (dB)")
    axes[1].set(xlabel="seconds", ylabel="PSNR (dB)")
    if with_fpr:
        axes[2].axhline(tol, color="gray", linestyle=":", linewidth=1)
        axes[2].set(xlabel="iteration", ylabel="fixed-point residual")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"


def run_convergence(args, data: Path) -> int:
    device = args.device
    rgb = read_image(data / "images" / "Set3C" / f"{args.image}.png").double()
    clean = ycbcr_luma(rgb)
    if args.crop:
        clean = centre_crop(clean, args.crop, args.crop)
    A, y = degrade(clean, red_kernel(data), args.seed)
    denoiser, label = load_denoiser(args.denoiser, args.weights, 1, device, data)
    y32, x32 = y.float().to(device), clean.float().to(device)
    psnr_input = float(pnpfast.metrics.psnr(y, clean)[0])
    rates = {}
    if args.jacobian_iters:
        rates = local_rates(denoiser, A, x32, args.jacobian_iters)
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    shape = "x".join(str(s) for s in clean.shape)
    print(
        f"RED convergence: {args.image} Y {shape}, {KERNEL}, sigma_n sqrt(2)/255, seed "
        f"{args.seed}, denoiser {label}, {args.iters} iterations on {device}; "
        f"input PSNR {psnr_input:.2f} dB"
    )
    if rates:
        print(
            f"at the clean image ({args.jacobian_iters} power steps), dominant eigenvalue of "
            f"the denoiser's Jacobian {rates['jacobian_eig']:.4f}, of red-fp's iteration map "
            f"{rates['fp_rate']:.4f}"
        )
    rows = []
    try:
        for method in args.methods:
            start = time.perf_counter()
            rows.append(
                converge(
                    method,
                    A,
                    y32,
                    x32,
                    denoiser,
                    iters=args.iters,
                    warmup=args.warmup,
                    fpr=not args.no_fpr,
                    tol=args.tol,
                )
            )
            r = rows[-1]
            print(
                f"  {method}: {r['final_psnr']:.2f} dB after {args.iters} iterations "
                f"({time.perf_counter() - start:.1f} s with the residuals)",
                flush=True,
            )
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    finals = {r["method"]: r.pop("x_final") for r in rows}
    if args.jacobian_iters and "red-fp" in finals:
        at_fp = local_rates(denoiser, A, finals["red-fp"], args.jacobian_iters)
        rates.update({f"{k}_at_fp_final": v for k, v in at_fp.items()})
        print(
            f"at red-fp's last iterate, dominant eigenvalue of the denoiser's Jacobian "
            f"{at_fp['jacobian_eig']:.4f}, of red-fp's iteration map {at_fp['fp_rate']:.4f}"
        )

    by_method = {r["method"]: r for r in rows}
    fp = by_method.get("red-fp")
    env = harness.environment(str(torch.device(device)))
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    note = "; ".join(n for n in (harness.load_note(device),) if n)
    out_rows = []
    for r in rows:
        ratio = None
        if fp and fp["fpr_iters"] and r["fpr_iters"]:
            ratio = round(fp["fpr_iters"] / r["fpr_iters"], 4)
        out_rows.append(
            {
                "study": "red_convergence",
                "image": args.image,
                "crop": args.crop,
                "shape": shape,
                "kernel": KERNEL,
                "noise_255": round(SIGMA_N * 255, 6),
                "seed": args.seed,
                "psnr_input": round(psnr_input, 4),
                "denoiser": label,
                "sigma_d_255": SIGMA_D * 255,
                **{k: rates.get(k) and round(rates[k], 5) for k in RATE_KEYS},
                **{
                    f"{k}_at_fp_final": rates.get(f"{k}_at_fp_final")
                    and round(rates[f"{k}_at_fp_final"], 5)
                    for k in RATE_KEYS
                },
                "jacobian_iters": args.jacobian_iters,
                "dtype": "float32",
                **r,
                "fpr_iters_ratio_vs_red_fp": ratio,
                **env,
                "timestamp": stamp,
                "note": note,
            }
        )
    out = Path(args.convergence_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in out_rows)
    print()
    print(convergence_table(rows, args.tol))
    print(
        f"\nfpr = ||A^T(Ax - y)/(lam sigma_n^2) + x - f(x)|| / ||x|| (RED's fixed-point "
        f"residual); rel = ||x_k - x_(k-1)|| / ||x_(k-1)||; '±{PSNR_BAND} dB': the PSNR stays "
        f"within {PSNR_BAND} dB of its final value from that iteration on; '-': not within "
        f"{args.iters} iterations"
    )
    if "red-apg" in by_method and fp:
        apg = by_method["red-apg"]
        for key, what in (
            ("fpr_iters", f"fpr <= {args.tol:g}"),
            ("rel_iters", f"rel_change <= {args.tol:g}"),
            ("psnr_iters", f"PSNR within {PSNR_BAND} dB of final"),
        ):
            if key == "fpr_iters" and args.no_fpr:
                continue
            _, met, text = speedup_verdict(apg[key], fp[key], args.iters, APG_TARGET)
            print(f"red-apg vs red-fp, iterations to {what}: {text}")
        if not args.no_fpr:
            for t in FPR_TOLS:
                key = f"{t:g}"
                _, _, text = speedup_verdict(
                    apg["fpr_iters_at"][key], fp["fpr_iters_at"][key], args.iters, APG_TARGET
                )
                print(f"red-apg vs red-fp, iterations to fpr <= {key}: {text}")
        criterion = "rel_iters" if args.no_fpr else "fpr_iters"
        _, met, text = speedup_verdict(apg[criterion], fp[criterion], args.iters, APG_TARGET)
        verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "UNDETERMINED"}[met]
        print(f"target red-apg >= {APG_TARGET}x fewer iterations than red-fp: {verdict} ({text})")
    print(f"rows appended to {out}")
    title = f"RED, {args.image} Y {shape}, uniform 9x9, sigma_n sqrt(2)/255, {label}, {device}"
    print(plot(rows, Path(args.plot) if args.plot else out.with_suffix(".png"), title, args.tol))
    return 0


# --------------------------------------------------------------------------------------------
# timing


def timing_batch(shape: tuple[int, ...], data: Path) -> torch.Tensor:
    """[B, C, H, W] float64 clean images: the Set3C images in turn, mirrored from the fourth."""
    B, C, H, W = shape
    paths = sorted((data / "images" / "Set3C").glob("*.png"))
    images = [read_image(p).double() for p in paths]
    if C == 1:
        images = [ycbcr_luma(x) for x in images]
    batch = []
    for i in range(B):
        x = images[i % len(images)]
        batch.append(x.flip(-1) if (i // len(images)) % 2 else x)
    return centre_crop(torch.cat(batch), H, W).contiguous()


def time_method(
    method: str,
    A: Blur,
    y: torch.Tensor,
    denoiser: Callable,
    *,
    iters: int,
    warmup: int,
    clock: harness.Clock,
) -> dict:
    params = method_params(method)
    with torch.no_grad():
        if warmup:
            pnpfast.solve(y, A, denoiser, method, sigma=SIGMA_N, max_iter=warmup, tol=0.0, **params)
        timed = harness.TimedDenoiser(denoiser, clock)
        marks = []

        def callback(info) -> None:
            marks.append(clock.mark())
            timed.iteration = info.iteration + 1

        clock.sync()
        res = pnpfast.solve(
            y,
            A,
            timed,
            method,
            sigma=SIGMA_N,
            max_iter=iters,
            tol=0.0,
            callback=callback,
            **params,
        )
        clock.sync()
    totals, dens, others = [], [], []
    calls = 0
    for k in range(1, len(marks)):  # iteration 0 also holds the method's set-up
        total = clock.ms(marks[k - 1], marks[k])
        den = sum(clock.ms(s, e) for it, s, e in timed.calls if it == k)
        calls += sum(1 for it, _, _ in timed.calls if it == k)
        totals.append(total)
        dens.append(den)
        others.append(total - den)
    return {
        "timing": harness.timing_from_samples(totals),
        "denoiser_ms": _median(dens),
        "other_ms": _median(others),
        "frac_not_denoiser": 1 - sum(dens) / sum(totals),
        "calls_per_iter": calls / len(totals),
        "finite": bool(torch.isfinite(res.x).all()),
    }


def run_timing(args, data: Path) -> int:
    device = args.device
    shape = args.shape
    clean = timing_batch(shape, data)
    A, y = degrade(clean, red_kernel(data), args.seed)
    denoiser, label = load_denoiser(args.timing_denoiser, None, shape[1], device, data)
    y = y.float().to(device)
    clock = harness.Clock(device)
    on_gpu = clock.cuda
    shape_text = "x".join(str(s) for s in shape)
    print(
        f"RED timing: {shape_text} float32, denoiser {label}, {args.timing_iters} iterations "
        f"per method on {device}"
    )
    notes = [f"denoiser {label}"]
    if on_gpu:
        notes.append(f"cudnn TF32 {'allowed' if torch.backends.cudnn.allow_tf32 else 'off'}")
    notes.append(harness.load_note(device))
    rows = []
    for method in args.methods:
        m = time_method(
            method, A, y, denoiser, iters=args.timing_iters, warmup=args.warmup, clock=clock
        )
        frac = m["frac_not_denoiser"]
        rows.append(
            {
                **harness.make_row(
                    op=OP,
                    provider=method,
                    shape=shape,
                    dtype=torch.float32,
                    timing=m["timing"],
                    nbytes=None,
                    device=device,
                    correct=m["finite"],
                    note="; ".join(n for n in notes if n),
                ),
                "method": method,
                "denoiser": label,
                "iters": args.timing_iters,
                "denoiser_calls_per_iter": m["calls_per_iter"],
                "denoiser_ms": m["denoiser_ms"],
                "other_ms": m["other_ms"],
                "frac_not_denoiser": frac,
                "target": f"frac_not_denoiser < {OTHER_TARGET:g} on a GPU",
                "target_met": frac < OTHER_TARGET if on_gpu else None,
            }
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for row in rows:
            missing = [c for c in harness.COLUMNS if c not in row]
            if missing:
                raise ValueError(f"row misses the columns {missing}")
            f.write(json.dumps(row) + "\n")
    header = ("method", "ms/it (p20-p80)", "denoiser ms", "other ms", "not denoiser", "calls/it")
    header += ("ok",)
    lines = [
        (
            r["method"],
            f"{r['median_ms']:.3f} ({r['p20_ms']:.3f}-{r['p80_ms']:.3f})",
            f"{r['denoiser_ms']:.3f}",
            f"{r['other_ms']:.3f}",
            f"{100 * r['frac_not_denoiser']:.1f}%",
            f"{r['denoiser_calls_per_iter']:g}",
            "yes" if r["correct"] else "NO",
        )
        for r in rows
    ]
    print(harness.text_table(header, lines))
    if on_gpu:
        worst = max(rows, key=lambda r: r["frac_not_denoiser"])
        met = all(r["target_met"] for r in rows)
        print(
            f"target: under {100 * OTHER_TARGET:g}% of an iteration outside the denoiser: "
            f"{'met' if met else 'NOT met'} (worst {worst['method']} "
            f"{100 * worst['frac_not_denoiser']:.1f}%)"
        )
    else:
        print(f"target (< {100 * OTHER_TARGET:g}% outside the denoiser) applies on a GPU only")
    print(f"rows appended to {out}")
    return 0


# --------------------------------------------------------------------------------------------


def parse_shape(text: str) -> tuple[int, ...]:
    (shape,) = harness.parse_shapes(text)
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise argparse.ArgumentTypeError(f"shape must be BxCxHxW with C 1 or 3, not {text!r}")
    return shape


def parse_methods(text: str) -> list[str]:
    methods = harness.parse_list(text)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise argparse.ArgumentTypeError(f"methods must be among {', '.join(METHODS)}: {bad}")
    return methods


def main(argv: list[str] | None = None) -> int:
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("convergence", "timing", "all"), default="all")
    p.add_argument("--device", choices=("cpu", "cuda"), default=default_device)
    p.add_argument("--methods", type=parse_methods, default=list(METHODS))
    p.add_argument("--iters", type=int, default=None, help="convergence iterations (200)")
    p.add_argument("--image", default="starfish", help="a Set3C image (default starfish)")
    p.add_argument("--crop", type=int, default=None, help="centre crop size (default: none)")
    p.add_argument("--seed", type=int, default=0, help="noise generator seed (default 0)")
    p.add_argument("--denoiser", default="bf-dncnn-0-10", help="convergence denoiser")
    p.add_argument("--weights", default=None, help="weight file of --denoiser")
    p.add_argument("--no-fpr", action="store_true", help="skip the fixed-point residual")
    p.add_argument("--tol", type=float, default=FPR_TOL, help="residual tolerance (1e-3)")
    p.add_argument(
        "--jacobian-iters",
        type=int,
        default=None,
        help="power steps for the denoiser Jacobian's eigenvalue at the clean image (30; 0: skip)",
    )
    p.add_argument("--convergence-out", default=str(harness.results_path(CONVERGENCE_NAME)))
    p.add_argument("--plot", default=None, help="PNG path (default: next to --convergence-out)")
    p.add_argument("--timing-denoiser", default="bfcnn-color")
    p.add_argument("--shape", type=parse_shape, default=None, help="timing batch BxCxHxW")
    p.add_argument("--timing-iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first (2)")
    p.add_argument("--out", default=str(harness.results_path(TIMING_NAME)), help="timing rows")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, few iterations")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    on_gpu = args.device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if args.iters is None:
        args.iters = 8 if args.quick else 200
    if args.jacobian_iters is None:
        args.jacobian_iters = 3 if args.quick else 30
    if args.crop is None and args.quick:
        args.crop = 48
    if args.shape is None:
        args.shape = (
            (1, 3, 32, 32) if args.quick else (8, 3, 256, 256) if on_gpu else (2, 3, 64, 64)
        )
    if args.timing_iters is None:
        args.timing_iters = 4 if args.quick else 50 if on_gpu else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if min(args.iters, args.timing_iters) < 2 or args.warmup < 0:
        p.error("--iters and --timing-iters must be >= 2, --warmup >= 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        print(f"needs the test data at {args.data}", file=sys.stderr)
        return 2
    try:
        if args.part in ("convergence", "all"):
            run_convergence(args, args.data)
        if args.part in ("timing", "all"):
            if args.part == "all":
                print()
            run_timing(args, args.data)
    except RuntimeError as exc:
        if "cannot load the denoiser" not in str(exc):
            raise
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

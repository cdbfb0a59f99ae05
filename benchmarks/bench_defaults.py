"""Every deblurring method at its defaults, with its intended shipped denoiser (issue 16).

Degradation as in ``quality_deblur.py``: each clean 8-bit image x on [0, 1] is blurred by
circular convolution with a Levin et al. kernel (zero-padded to 27x27), rounded to 8-bit
levels, and AWGN of std noise/255 is added from ``torch.Generator().manual_seed(0)``. Images are
centre crops (``--crop``); every (image, kernel) pair of a noise level, and in ``--part tune``
every configuration of the grid too, runs as ONE batch with per-image kernels and per-image
parameters (``pnpfast.solve`` takes a length-B tensor for each of them).

    --part tune     the grids of ``GRIDS`` on the tuning images (BSD400 gray crops with the gray
                    denoisers, CBSD432 color crops with the color ones); rows tagged
                    part="tune" with the configuration in "params"
    --part report   defaults only (no method parameter given) on Set3C and the first CBSD68
                    crops; rows tagged part="report"
    --part table    the markdown table of the latest report rows (``--update-readme`` rewrites
                    the block between <!-- defaults:start --> and <!-- defaults:end -->)

PSNR on the [0, 1] scale of the clamped output against the clean crop (no border cropping),
``psnr_input`` the same for A^T y, ``best_psnr`` the best iterate the engine recorded.
``diverged``: a non-finite output or a final PSNR more than ``DRIFT_DB`` under the best iterate
(``below_input``: a final PSNR under ``psnr_input``). ``seconds`` is the batch's wall time divided by its size
(CPU runs use the thread count in "device"). Rows: ``benchmarks/results/defaults.jsonl``.

    python benchmarks/bench_defaults.py --part report --crop 128 --threads 1
"""

import argparse
import datetime
import itertools
import json
import math
import re
import sys
import textwrap
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import quality_deblur
import report

import pnpfast
from pnpfast.io import read_image
from pnpfast.operators import Blur, SuperResolution

DATA = harness.DATA
NOISE_LEVELS = (2.55, 7.65)
DRIFT_DB = 3.0
CHECKPOINTS = (10, 25, 50, 100, 200, 400)  # iterations at which psnr_at and rel_at are kept
README = harness.ROOT / "README.md"
START, END = "<!-- defaults:start -->", "<!-- defaults:end -->"
SR_START, SR_END = "<!-- defaults-sr:start -->", "<!-- defaults-sr:end -->"

COLUMNS = (
    "part",
    "method",
    "denoiser",
    "dataset",
    "image",
    "kernel",
    "noise_255",
    "crop",
    "params",
    "psnr",
    "best_psnr",
    "psnr_input",
    "iterations",
    "converged",
    "diverged",
    "below_input",
    "psnr_at",
    "rel_at",
    "seconds",
    "error",
    "device",
    "torch",
    "pnpfast",
    "git_sha",
    "timestamp",
)

# --part sr-report: "factor" after "kernel" ("bicubic" or "gaussian <std>"), "psnr_input" is
# bicubic upsampling A.upsample(y) (every method's start), "gain_db" = psnr - psnr_input
SR_COLUMNS = (
    *COLUMNS[: COLUMNS.index("kernel") + 1],
    "factor",
    *COLUMNS[COLUMNS.index("kernel") + 1 : COLUMNS.index("psnr_input") + 1],
    "gain_db",
    *COLUMNS[COLUMNS.index("psnr_input") + 1 :],
)
# (kernel, factor, std): MATLAB's bicubic at x2 and x4, a Gaussian of std 1.5 at x3
SR_PROBLEMS = (("bicubic", 2, None), ("gaussian", 3, 1.5), ("bicubic", 4, None))
SR_IMAGES = {
    "Set12": ("01", "05", "08"),
    "Set3C": ("butterfly", "leaves", "starfish"),
    "CBSD68": ("108070", "119082", "134035"),  # held out: no SR default was looked at on them
}
SR_SETS = ("Set12",)
SR_CROP = 72  # divisible by 2, 3 and 4

# The shipped denoiser each method is meant for (pnpfast.denoisers.load names).
INTENDED = {
    "hqs": "conditional",
    "admm": "conditional",
    "drs": "conditional",
    "pgd": "conditional",
    "fista": "conditional",
    **{
        m: "conditional"
        for m in ("red-sd", "red-gd", "red-fp", "red-admm", "red-pg", "red-apg", "red-dpg")
    },
    "gs-pnp": "gradient-step",
    "prox-pnp-pgd": "proximal",
    "prox-pnp-drs": "proximal",
}
NOT_RUN = {"pnp-reg": "no shipped G (PnP-ReG's regulariser-gradient network is not shipped)"}

DATASETS = {
    "BSD400": ("train/BSD400", "*.png"),
    "CBSD432": ("train/CBSD432", "*.jpg"),
    "Set12": ("images/Set12", "*.png"),
    "Set3C": ("images/Set3C", "*.png"),
    "CBSD68": ("images/CBSD68", "*.png"),
}
TUNE_SETS = ("BSD400", "CBSD432")
REPORT_SETS = ("Set3C", "CBSD68")

# Tuning grids: name -> list of values; "sigma_d" values are multiples c of the noise level
# (sigma_d = c sigma), every other value is the parameter itself. Keys starting with "_" are
# solve() arguments (max_iter, tol). Parameters that must be one number per call (alpha, beta
# of prox-pnp, inner_iter, max_iter, tol) split the grid into several batches.
GRIDS: dict[str, dict[str, list]] = {
    "hqs": {"lam": [0.23]},
    "admm": {"sigma_d": [1.0, 1.5, 2.0, 3.0], "lam": [0.05, 0.23, 1.0]},
    "pgd": {"sigma_d": [1.0, 1.5, 2.0, 3.0], "tau": [1.0, 1.5, 1.9]},
    "fista": {"sigma_d": [1.0, 1.5, 2.0, 3.0], "tau": [0.5, 1.0]},
    "red-sd": {"sigma_d": [1.0, 2.0, 3.0], "lam": [300.0, 1300.5, 5000.0]},
    "red-fp": {"sigma_d": [1.0, 2.0, 3.0], "lam": [300.0, 1300.5, 5000.0]},
    "red-admm": {"sigma_d": [1.0, 2.0, 3.0], "lam": [300.0, 1300.5, 5000.0]},
    "red-apg": {"sigma_d": [1.0, 2.0, 3.0], "lam": [300.0, 1300.5, 5000.0]},
    "red-dpg": {"sigma_d": [1.0, 2.0, 3.0], "lam": [300.0, 1300.5, 5000.0]},
    "gs-pnp": {"sigma_d": [1.0, 1.4, 1.8, 2.4], "lam": [0.05, 0.1, 0.2]},
    "prox-pnp-pgd": {"sigma_d": [0.5, 1.0, 1.5, 2.0], "lam": [0.99]},
    "prox-pnp-drs": {"sigma_d": [0.5, 1.0, 1.5, 2.0], "lam": [0.5, 1.5, 5.0]},
}
SCALAR_PARAMS = {
    "red-admm": {"inner_iter"},
    "gs-pnp": {"gamma", "eta", "max_backtracks"},
    "prox-pnp-pgd": {"alpha", "beta"},
    "prox-pnp-drs": {"alpha", "beta"},
}


def is_scalar(method: str, name: str) -> bool:
    """One number per solve() call: max_iter, tol ("_" names) and the methods' int/float-only
    parameters."""
    return name.startswith("_") or name in SCALAR_PARAMS.get(method, ())


def _centre(path: Path, crop: int) -> torch.Tensor:
    img = read_image(path).double()
    h, w = img.shape[-2:]
    if min(h, w) < crop:
        raise ValueError(f"--crop {crop} is larger than {path.name} ({h}x{w})")
    top, left = (h - crop) // 2, (w - crop) // 2
    return img[..., top : top + crop, left : left + crop]


def edge_energy(x: torch.Tensor) -> float:
    """Mean |horizontal| + |vertical| difference of a [C, H, W] image, times its mean
    saturation (max - min over the channels) for color: high for sharp edges between vivid
    colors (Set3C's butterfly), where an expanding denoiser drifts first."""
    energy = float(x.diff(dim=-1).abs().mean() + x.diff(dim=-2).abs().mean())
    if x.shape[-3] == 3:
        energy *= float((x.max(-3).values - x.min(-3).values).mean())
    return energy


def load_crops(
    dataset: str, n: int, crop: int, select: str = "spread"
) -> tuple[torch.Tensor, list[str]]:
    """``n`` images of ``dataset`` (sorted by name), centre crops crop x crop, float64
    [n, C, crop, crop]: the first n of a test set; of a training set (TUNE_SETS) n evenly
    spaced ones (``select="spread"``) or the n with the most ``edge_energy`` (``"edges"``)."""
    folder, pattern = DATASETS[dataset]
    paths = sorted((DATA / folder).glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no {pattern} images under {DATA / folder}")
    if dataset in TUNE_SETS and select == "edges":
        energy = {p: edge_energy(_centre(p, crop)[0]) for p in paths}
        paths = sorted(paths, key=lambda p: -energy[p])
    elif dataset in TUNE_SETS:
        paths = paths[:: max(1, len(paths) // n)]
    paths = paths[:n]
    return torch.cat([_centre(p, crop) for p in paths]), [p.stem for p in paths]


def degrade(x: torch.Tensor, kernels: torch.Tensor, noise: float) -> torch.Tensor:
    """quality_deblur's degradation of a batch with per-image kernels."""
    return quality_deblur.degrade(x, Blur(kernels), noise)


def run_batch(method, denoiser, x, y, operator, noise, params, solve_kw):
    """Solve one batch; per-image params are [B] tensors; ``operator(keep)`` builds the forward
    model of the images ``keep`` (a [K] index tensor). Returns (x_hat, iterations,
    converged, best PSNR per image, seconds, errors). When the engine stops the batch for
    images gone NaN or Inf (FloatingPointError naming them), those images get the error and
    the rest of the batch runs again without them (their x_hat is NaN)."""
    B = x.shape[0]
    keep = torch.arange(B)
    errors: list[str | None] = [None] * B
    xh = torch.full_like(x, float("nan"))
    its = torch.zeros(B, dtype=torch.int64)
    conv = torch.zeros(B, dtype=torch.bool)
    best = torch.full((B,), float("nan"))
    at = {"psnr": {}, "rel_change": {}}
    start = time.perf_counter()
    while keep.numel():
        sub = {
            n: (v[keep] if isinstance(v, torch.Tensor) and v.dim() == 1 else v)
            for n, v in params.items()
        }
        try:
            with torch.no_grad():
                res = pnpfast.solve(
                    y[keep],
                    operator(keep),
                    denoiser,
                    method,
                    sigma=noise,
                    x_true=x[keep],
                    **solve_kw,
                    **sub,
                )
        except FloatingPointError as exc:
            found = re.search(r"images \[([0-9, ]*)\]", str(exc))
            if not found:
                raise
            bad = torch.tensor([int(i) for i in found.group(1).split(",")], dtype=torch.int64)
            for i in keep[bad].tolist():
                errors[i] = f"FloatingPointError: {exc}"
            mask = torch.ones(keep.numel(), dtype=torch.bool)
            mask[bad] = False
            keep = keep[mask]
            continue
        xh[keep] = res.x
        its[keep] = res.iterations.cpu()
        conv[keep] = res.converged.cpu()
        hist = torch.nan_to_num(res.history["psnr"], nan=-math.inf)
        best[keep] = hist.max(0).values.cpu().float()
        for name in at:
            h = res.history[name].cpu()
            for it in CHECKPOINTS:
                if it <= h.shape[0]:
                    at[name].setdefault(it, torch.full((B,), float("nan")))[keep] = h[
                        it - 1
                    ].float()
        break
    return xh, its, conv, best, time.perf_counter() - start, errors, at


def outcome(b, err, final, finite, best, its, conv, at, psnr_input) -> dict:
    """The measured columns of image b of a batch run by ``run_batch``: ``final`` its clamped
    output's PSNR, ``finite`` whether that output is finite; ``diverged`` as the module says
    (non-finite, or more than DRIFT_DB under the best iterate)."""
    if err[b] is not None:
        return dict(
            psnr=None,
            best_psnr=None,
            iterations=None,
            converged=False,
            diverged=True,
            below_input=None,
            psnr_at=None,
            rel_at=None,
            error=err[b][:300],
        )
    p = float(final[b]) if bool(finite[b]) else float("nan")
    bp = float(best[b])
    div = (not math.isfinite(p)) or p < bp - DRIFT_DB
    return dict(
        psnr_at={it: round(float(v[b]), 3) for it, v in at["psnr"].items()},
        rel_at={it: float(f"{float(v[b]):.3g}") for it, v in at["rel_change"].items()},
        below_input=p < psnr_input,
        psnr=round(p, 3) if math.isfinite(p) else None,
        best_psnr=round(bp, 3),
        iterations=int(its[b]),
        converged=bool(conv[b]),
        diverged=bool(div),
        error=None,
    )


def expand_grid(grid: dict[str, list]) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*grid.values())]


def evaluate(
    method: str,
    denoiser_name: str,
    dataset: str,
    configs: list[dict],
    *,
    n_images: int,
    crop: int,
    kernel_ids: list[int],
    noises: tuple[float, ...],
    part: str,
    device: str,
    out: Path,
    max_iter: int | None = None,
    select: str = "spread",
) -> list[dict]:
    """Every config x image x kernel of one noise level as one batch (split by the scalar
    parameters); rows appended to ``out`` after each batch."""
    clean, names = load_crops(dataset, n_images, crop, select)
    all_k, k_names = quality_deblur.levin_kernels()
    ks = all_k[[i - 1 for i in kernel_ids]]
    pairs = [(i, j) for i in range(len(names)) for j in range(len(kernel_ids))]
    x = clean[[i for i, _ in pairs]]
    k = ks[[j for _, j in pairs]]
    denoiser = pnpfast.denoisers.load(denoiser_name, device=device)
    env = harness.environment(device)
    groups: dict[tuple, list[dict]] = {}
    for cfg in configs:
        key = tuple(sorted((n, v) for n, v in cfg.items() if is_scalar(method, n)))
        groups.setdefault(key, []).append(cfg)
    rows = []
    for noise in noises:
        y = degrade(x, k, noise)
        sigma = noise / 255
        adj = Blur(k).adjoint(y)
        psnr_in = pnpfast.metrics.psnr(adj.clamp(0, 1), x)
        for key, cfgs in groups.items():
            n = len(pairs)
            xb = x.repeat(len(cfgs), 1, 1, 1).float().to(device)
            yb = y.repeat(len(cfgs), 1, 1, 1).float().to(device)
            kb = k.repeat(len(cfgs), 1, 1)
            params: dict = {}
            solve_kw = {n_.lstrip("_"): v for n_, v in key if n_.startswith("_")}
            if max_iter is not None:
                solve_kw.setdefault("max_iter", max_iter)
            params.update({n_: v for n_, v in key if not n_.startswith("_")})
            per_image = sorted(
                {
                    n_
                    for c in cfgs
                    for n_ in c
                    if not is_scalar(method, n_) and n_ != "sigma_d_floor"
                }
            )
            for name in per_image:
                vals = []
                for c in cfgs:
                    v = c[name]
                    if name == "sigma_d":
                        v = max(v * sigma, c.get("sigma_d_floor", 0) / 255)
                    vals += [v] * n
                params[name] = torch.tensor(vals, dtype=torch.float32, device=device)
            kd = kb.to(device=device, dtype=xb.dtype)
            xh, its, conv, best, seconds, err, at = run_batch(
                method,
                denoiser,
                xb,
                yb,
                lambda keep, kd=kd: Blur(kd[keep]),
                sigma,
                params,
                solve_kw,
            )
            B = len(cfgs) * n
            final = pnpfast.metrics.psnr(xh.clamp(0, 1), xb).cpu()
            finite = torch.isfinite(xh.flatten(1)).all(1).cpu()
            batch_rows = []
            for b in range(B):
                cfg = cfgs[b // n]
                i, j = pairs[b % n]
                shown = {n_: (f"{v} sigma" if n_ == "sigma_d" else v) for n_, v in cfg.items()}
                row = {
                    "part": part,
                    "method": method,
                    "denoiser": denoiser_name,
                    "dataset": dataset,
                    "image": names[i],
                    "kernel": k_names[kernel_ids[j] - 1],
                    "noise_255": noise,
                    "crop": crop,
                    "params": shown,
                    "psnr_input": round(float(psnr_in[b % n]), 3),
                    "seconds": round(seconds / B, 4),
                    **env,
                    "pnpfast": pnpfast.__version__,
                    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                }
                row.update(outcome(b, err, final, finite, best, its, conv, at, row["psnr_input"]))
                batch_rows.append({c: row[c] for c in COLUMNS})
            with out.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in batch_rows)
            rows += batch_rows
            summary = summarise(batch_rows, by=("params",))
            for line in summary:
                print(f"{method} {dataset} {noise}: {line}", flush=True)
    return rows


def sr_operator(kernel: str, factor: int, std: float | None) -> SuperResolution:
    if kernel == "bicubic":
        return SuperResolution.bicubic(factor)
    return SuperResolution.gaussian(factor, std)


def sr_kernel_name(kernel: str, std: float | None) -> str:
    return kernel if std is None else f"{kernel} {std:g}"


def degrade_sr(x: torch.Tensor, A: SuperResolution, noise: float) -> torch.Tensor:
    """quality_sr's degradation: y = A x (float64) plus AWGN of std noise/255 from
    ``torch.Generator().manual_seed(0)``, no 8-bit rounding."""
    y = A(x.double())
    g = torch.Generator().manual_seed(0)
    return y + noise / 255 * torch.randn(y.shape, generator=g, dtype=torch.float64)


def evaluate_sr(
    method: str,
    denoiser_name: str,
    dataset: str,
    *,
    names: tuple[str, ...],
    crop: int,
    problems: tuple[tuple, ...],
    noises: tuple[float, ...],
    device: str,
    out: Path,
    max_iter: int | None = None,
) -> list[dict]:
    """``method`` at its defaults on the centre crops ``names`` of ``dataset``, one batch per
    (problem, noise); rows (SR_COLUMNS, part "sr-report") appended to ``out`` after each."""
    clean = torch.cat([_centre(_sr_path(dataset, n), crop) for n in names])
    denoiser = pnpfast.denoisers.load(denoiser_name, device=device)
    env = harness.environment(device)
    solve_kw = {} if max_iter is None else {"max_iter": max_iter}
    rows = []
    for kernel, factor, std in problems:
        if crop % factor:
            raise ValueError(f"--crop {crop} is not divisible by the factor {factor}")
        A = sr_operator(kernel, factor, std)
        Ad = SuperResolution(A.kernel.to(device=device, dtype=torch.float32), factor)
        for noise in noises:
            y = degrade_sr(clean, A, noise)
            start = pnpfast.metrics.psnr(A.upsample(y).clamp(0, 1), clean)
            xb, yb = clean.float().to(device), y.float().to(device)
            xh, its, conv, best, seconds, err, at = run_batch(
                method, denoiser, xb, yb, lambda keep, Ad=Ad: Ad, noise / 255, {}, solve_kw
            )
            final = pnpfast.metrics.psnr(xh.clamp(0, 1), xb).cpu()
            finite = torch.isfinite(xh.flatten(1)).all(1).cpu()
            stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            batch_rows = []
            for b, name in enumerate(names):
                row = {
                    "part": "sr-report",
                    "method": method,
                    "denoiser": denoiser_name,
                    "dataset": dataset,
                    "image": name,
                    "kernel": sr_kernel_name(kernel, std),
                    "factor": factor,
                    "noise_255": noise,
                    "crop": crop,
                    "params": {},
                    "psnr_input": round(float(start[b]), 3),
                    "seconds": round(seconds / len(names), 4),
                    **env,
                    "pnpfast": pnpfast.__version__,
                    "timestamp": stamp,
                }
                row.update(outcome(b, err, final, finite, best, its, conv, at, row["psnr_input"]))
                ok = row["psnr"] is not None
                row["gain_db"] = round(row["psnr"] - row["psnr_input"], 3) if ok else None
                batch_rows.append({c: row[c] for c in SR_COLUMNS})
            with out.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in batch_rows)
            rows += batch_rows
            label = f"{method} {dataset} {sr_kernel_name(kernel, std)} x{factor} {noise}"
            for line in summarise(batch_rows, by=("params",)):
                print(f"{label}: {line}", flush=True)
    return rows


def summarise(rows: list[dict], by: tuple[str, ...]) -> list[str]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(json.dumps([r[b] for b in by]), []).append(r)
    lines = []
    for key, rs in groups.items():
        ok = [r["psnr"] for r in rs if r["psnr"] is not None]
        mean = sum(ok) / len(ok) if ok else float("nan")
        its = [r["iterations"] for r in rs if r["iterations"] is not None]
        div = sum(r["diverged"] for r in rs)
        lines.append(
            f"{key} psnr {mean:.2f} it {sum(its) / max(len(its), 1):.0f} "
            f"diverged {div}/{len(rs)} {rs[0]['seconds']:.2f}s/img"
        )
    return lines


def latest_report(
    rows: list[dict],
    part: str = "report",
    by: tuple[str, ...] = ("method", "dataset", "noise_255"),
) -> list[dict]:
    """The rows of ``part`` of the latest run (to the minute) of each ``by`` key."""
    report = [r for r in rows if r.get("part") == part]
    last: dict[tuple, str] = {}
    for r in report:
        key = tuple(r[b] for b in by)
        last[key] = max(last.get(key, ""), r["timestamp"][:16])
    return [r for r in report if r["timestamp"][:16] == last[tuple(r[b] for b in by)]]


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per method, mean PSNR per (dataset, noise), mean iterations, seconds
    per image, divergences."""
    rows = latest_report(rows)
    cols = sorted(
        {(r["dataset"], r["noise_255"]) for r in rows},
        key=lambda c: (REPORT_SETS.index(c[0]) if c[0] in REPORT_SETS else 9, c[1]),
    )
    methods = [m for m in pnpfast.solvers.METHODS if any(r["method"] == m for r in rows)]
    head = "| method | denoiser | " + " | ".join(f"{d} {n}" for d, n in cols)
    head += " | iterations | s/image | diverged |"
    lines = [head, "|---|---|" + "---|" * (len(cols) + 3)]
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        cells = []
        for c in cols:
            ps = [r["psnr"] for r in rs if (r["dataset"], r["noise_255"]) == c]
            ok = [p for p in ps if p is not None]
            cells.append(f"{sum(ok) / len(ok):.2f}" if ok and len(ok) == len(ps) else "-")
        lines.append(f"| {m} | {rs[0]['denoiser']} | " + " | ".join(cells) + _run_cells(rs))
    for m, why in NOT_RUN.items():
        lines.append(f"| {m} | - | " + " | ".join("-" for _ in cols) + f" | - | - | {why} |")
    return "\n".join(lines)


def _run_cells(rs: list[dict]) -> str:
    """The table's last cells for one method's runs: mean iterations, seconds per image, and
    how many diverged."""
    its = [r["iterations"] for r in rs if r["iterations"] is not None]
    sec = [r["seconds"] for r in rs]
    div = sum(r["diverged"] for r in rs)
    return f" | {sum(its) / max(len(its), 1):.0f} | {sum(sec) / len(sec):.2f} | {div}/{len(rs)} |"


def update_readme(table: str, rows: list[dict]) -> bool:
    if START not in README.read_text():
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return False
    rows = latest_report(rows)
    crops = sorted({r["crop"] for r in rows})
    devices = sorted({r["device"] for r in rows})
    n = {d: len({r["image"] for r in rows if r["dataset"] == d}) for d in REPORT_SETS}
    kernels = sorted({r["kernel"] for r in rows}, key=lambda s: int(s[1:]))
    note = (
        f"\nMean PSNR (dB) over {', '.join(f'{n[d]} {d}' for d in REPORT_SETS)} images "
        f"({', '.join(f'{c}x{c}' for c in crops)} centre crops) x Levin kernels {', '.join(kernels)}; "
        f"noise 2.55 and 7.65 /255; iterations and seconds per image averaged over every run; "
        f"measured on {'; '.join(devices)}.\n"
    )
    note = "\n" + textwrap.fill(note.strip(), width=100) + "\n"
    return report.update_readme(README, f"{table}\n{note.rstrip()}", start=START, end=END)


SR_BY = ("method", "dataset", "kernel", "factor", "noise_255")


def _sr_set_order(dataset: str) -> tuple:
    sets = (*SR_SETS, *sorted(set(SR_IMAGES) - set(SR_SETS)))
    return (sets.index(dataset) if dataset in sets else 9, dataset)


def _sr_column(r: dict) -> tuple:
    return (r["factor"], r["kernel"], r["noise_255"])


def _mean(values: list) -> float | None:
    """The mean, or None when a value is missing (a run that failed)."""
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def format_sr_table(rows: list[dict]) -> str:
    """Markdown, one table per dataset (``_sr_table``) under a line naming it and its images."""
    rows = latest_report(rows, "sr-report", SR_BY)
    blocks = []
    for d in sorted({r["dataset"] for r in rows}, key=_sr_set_order):
        rs = [r for r in rows if r["dataset"] == d]
        names = ", ".join(sorted({r["image"] for r in rs}))
        kind = {1: "gray", 3: "color"}.get(read_image(_sr_path(d, rs[0]["image"])).shape[1], "")
        blocks.append(f"{d} ({kind}: {names}):\n\n{_sr_table(rs)}")
    return "\n\n".join(blocks)


def _sr_path(dataset: str, name: str) -> Path:
    folder, pattern = DATASETS[dataset]
    return DATA / folder / f"{name}{pattern.lstrip('*')}"


def _sr_table(rows: list[dict]) -> str:
    """Markdown for the rows of one dataset: bicubic upsampling (the start) on the first line,
    then one line per method: mean PSNR and in brackets mean gain over bicubic upsampling per
    (problem, noise), the gain averaged over every run, mean iterations, seconds per image,
    divergences."""
    cols = sorted({_sr_column(r) for r in rows})
    head = "| method | denoiser | "
    head += " | ".join(f"{k} x{s} {n}" for s, k, n in cols)
    head += " | mean gain | iterations | s/image | diverged |"
    lines = [head, "|---|---|" + "---|" * (len(cols) + 4)]
    methods = [m for m in pnpfast.solvers.METHODS if any(r["method"] == m for r in rows)]
    if methods:
        first = [r for r in rows if r["method"] == methods[0]]
        starts = [_mean([r["psnr_input"] for r in first if _sr_column(r) == c]) for c in cols]
        lines.append(
            "| bicubic upsampling (the start) | - | "
            + " | ".join("-" if v is None else f"{v:.2f}" for v in starts)
            + " | - | - | - | - |"
        )
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        cells = []
        for c in cols:
            cr = [r for r in rs if _sr_column(r) == c]
            p, g = _mean([r["psnr"] for r in cr]), _mean([r["gain_db"] for r in cr])
            cells.append("-" if p is None else f"{p:.2f} ({g:+.2f})")
        gain = _mean([r["gain_db"] for r in rs])
        cells.append("-" if gain is None else f"{gain:+.2f}")
        lines.append(f"| {m} | {rs[0]['denoiser']} | " + " | ".join(cells) + _run_cells(rs))
    for m, why in NOT_RUN.items():
        lines.append(f"| {m} | - | " + " | ".join("-" for _ in cols) + f" | - | - | - | {why} |")
    return "\n".join(lines)


def update_readme_sr(table: str, rows: list[dict]) -> bool:
    if SR_START not in README.read_text():
        print(f"README.md has no {SR_START} ... {SR_END} block", file=sys.stderr)
        return False
    rows = latest_report(rows, "sr-report", SR_BY)
    sets = sorted({r["dataset"] for r in rows}, key=_sr_set_order)
    imgs = {d: sorted({r["image"] for r in rows if r["dataset"] == d}) for d in sets}
    crops = sorted({r["crop"] for r in rows})
    devices = sorted({r["device"] for r in rows})
    images = " and ".join(f"{d} images {', '.join(imgs[d])}" for d in sets)
    note = (
        f"PSNR (dB) of the clamped output, mean over the {images} "
        f"({', '.join(f'{c}x{c}' for c in crops)} centre crops), and in brackets its gain over "
        f"bicubic upsampling A.upsample(y); SuperResolution.bicubic(2), .gaussian(3, 1.5) and "
        f".bicubic(4), AWGN 2.55 and 7.65 /255 (seeded, no 8-bit rounding); iterations and "
        f"seconds per image averaged over every run; measured on {'; '.join(devices)}."
    )
    note = textwrap.fill(note, width=100)
    return report.update_readme(README, f"{table}\n\n{note}", start=SR_START, end=SR_END)


def parse_ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--part", choices=("tune", "report", "table", "sr-report", "sr-table"), default="report"
    )
    p.add_argument("--crop", type=int, default=None, help=f"128; {SR_CROP} for sr-report")
    p.add_argument("--images", type=int, default=None, help="images per dataset (tune 3, report 3)")
    p.add_argument("--kernels", type=parse_ints, default=None, help="Levin kernel numbers, 1-8")
    p.add_argument(
        "--noise", type=lambda s: tuple(float(v) for v in s.split(",")), default=NOISE_LEVELS
    )
    p.add_argument("--methods", type=harness.parse_list, default=None)
    p.add_argument("--datasets", type=harness.parse_list, default=None)
    p.add_argument(
        "--grid",
        type=json.loads,
        default=None,
        help='JSON {"param": [values]} for --part tune (one method)',
    )
    p.add_argument(
        "--select",
        choices=("spread", "edges"),
        default="spread",
        help="tuning images: evenly spaced, or those with the sharpest edges",
    )
    p.add_argument("--denoiser", default=None, help="a load() name instead of the intended one")
    p.add_argument("--max-iter", type=int, default=None, help="cap every run (tune, sr-report)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--out", type=Path, default=None, help="defaults.jsonl; defaults_sr.jsonl for sr-*"
    )
    p.add_argument("--update-readme", action="store_true")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sr = args.part.startswith("sr-")
    if args.out is None:
        args.out = harness.results_path("defaults_sr" if sr else "defaults")
    if args.part == "sr-table":
        rows = harness.read_jsonl(args.out)
        table = format_sr_table(rows)
        print(table)
        if args.update_readme and not update_readme_sr(table, rows):
            return 1
        return 0
    if args.part == "table":
        rows = harness.read_jsonl(args.out)
        table = format_table(rows)
        print(table)
        if args.update_readme and not update_readme(table, rows):
            return 1
        return 0
    if not DATA.is_dir():
        print(f"needs the test data at {DATA}", file=sys.stderr)
        return 2
    methods = args.methods or [m for m in pnpfast.solvers.METHODS if m not in NOT_RUN]
    unknown = [m for m in methods if m not in INTENDED]
    if unknown:
        p.error(f"unknown or not benchmarked methods {unknown}; choose from {', '.join(INTENDED)}")
    if sr:
        datasets = args.datasets or list(SR_SETS)
        bad = [d for d in datasets if d not in SR_IMAGES]
        if bad:
            p.error(f"--datasets {bad}: sr-report knows {', '.join(SR_IMAGES)}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for method in methods:
            for dataset in datasets:
                evaluate_sr(
                    method,
                    args.denoiser or INTENDED[method],
                    dataset,
                    names=SR_IMAGES[dataset][: args.images or 3],
                    crop=args.crop or SR_CROP,
                    problems=SR_PROBLEMS,
                    noises=args.noise,
                    device=args.device,
                    out=args.out,
                    max_iter=args.max_iter,
                )
        if args.update_readme:
            rows = harness.read_jsonl(args.out)
            if not update_readme_sr(format_sr_table(rows), rows):
                return 1
        return 0
    args.crop = args.crop or 128
    kernels = args.kernels or ([1, 4, 8] if args.part == "tune" else [1, 3, 5, 8])
    n_images = args.images or 3
    datasets = args.datasets or list(TUNE_SETS if args.part == "tune" else REPORT_SETS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for method in methods:
        if args.part == "tune":
            grid = args.grid if args.grid is not None else GRIDS.get(method, {})
            configs = expand_grid(grid) if grid else [{}]
        else:
            configs = [{}]
        for dataset in datasets:
            evaluate(
                method,
                args.denoiser or INTENDED[method],
                dataset,
                configs,
                n_images=n_images,
                crop=args.crop,
                kernel_ids=kernels,
                noises=args.noise,
                part=args.part,
                device=args.device,
                out=args.out,
                max_iter=args.max_iter,
                select=args.select,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

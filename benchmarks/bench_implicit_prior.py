"""The experiments of Kadkhodaie & Simoncelli's implicit-prior sampler, with pnpfast's sampler.

Z. Kadkhodaie, E. P. Simoncelli, "Solving linear inverse problems using the prior implicit in
a denoiser", NeurIPS 2021 (code: github.com/LabForComputationalVision/universal_inverse_problem).
A blind least-squares denoiser D has, by Miyasawa's result, the residual
f(y) = D(y) - y = sigma^2 grad log p_sigma(y); the paper climbs it from noise to an image
(Algorithm 1, a sample of the prior implicit in D) and, constrained to linear measurements
x_c = M^T x (M of orthonormal columns, P = M M^T), to an image consistent with them
(Algorithm 2, the solver of the inverse problem):

    y_0 = M x_c + (I - P) 0.5 + sigma_0 z_0              (Algorithm 1: y_0 = 0.5 + sigma_0 z_0)
    for t = 1, 2, ... while sigma_{t-1} >= sigma_L:
        h_t = h_0 t / (1 + h_0 (t - 1))
        d_t = (I - P) f(y_{t-1}) + M (x_c - M^T y_{t-1})        (Algorithm 1: d_t = f(y_{t-1}))
        sigma_t^2 = ||d_t||^2 / N                              (N = C H W)
        gamma_t^2 = ((1 - beta h_t)^2 - (1 - h_t)^2) sigma_t^2
        y_t = y_{t-1} + h_t d_t + gamma_t z_t,   z_t ~ N(0, I)

with the paper's parameters for the inverse problems, sigma_0 = 1, sigma_L = 0.01, h_0 = 0.01,
beta = 0.01 (the defaults of ``pnpfast.sample`` and of ``pnpfast.solve(...,
method="implicit-prior")``, see ``pnpfast/solvers/implicit_prior.py``). The result of a run is
the last iterate y_T. pnpfast runs a batch of measurements, and R realisations of each, in one
call, every image with its own t, h_t, sigma_t and its own stop.

Two parts (``--part experiments|throughput|all``, default all).

experiments
    ``--experiments`` (comma-separated, default all), each with the paper's parameters above:

    * ``sr4``, ``sr8``: super-resolution from s x s block averages, s = 4 and 8
      (``BlockAverage(s)``: M^T x = the block sums / s), on Set5 and Set14, color BF-CNN;
    * ``spec10``, ``spec5``: spectral super-resolution keeping the lowest 10% and 5% of the 2-D
      DFT frequencies (``SpectralLowpass(0.10)``, ``SpectralLowpass(0.05)``), on Set5, color
      BF-CNN;
    * ``cs25``, ``cs10``, ``cs4``: compressive sensing with m = 25%, 10% and 4% of N random
      orthonormal measurements per channel (``CompressiveSensing(ratio, seed=i,
      method="fast")``: random signs, orthonormal 2-D DCT, a random selection of m outputs;
      seed i = the image's index in its set, so every image has its own M), on BSD68 (gray),
      gray BF-CNN.

    Images: ``<data>/images/<set>/*.png`` in sorted order, the first ``--max-images`` N of each
    set (default all), read on [0, 1] and centre-cropped to H - H mod 8 by W - W mod 8 (so every
    operator fits), and to at most ``--crop`` S by S when given (S a multiple of 8; for CPU
    runs). Set14's one gray image, ``bridge``, is replicated to three channels for the color
    denoiser (as the paper's own copy of Set14 holds it in RGB); its rows say so in ``note``.

    Denoisers: the public BF-CNNs of the paper (registry names ``bfcnn-color``, trained on
    BSD300 color, and ``bfcnn-gray``, trained on BSD400 gray, noise std in [0, 100] / 255), read
    offline from ``<data>/weights/*/<file name of the registry entry>`` (else from pnpfast's
    cache, offline; never downloaded).

    For each image x: the measurement x_c = M^T x, then R = ``--realisations`` (default 10)
    samples of Algorithm 2 in one batched call, ``pnpfast.solve(x_c, M, D,
    method="implicit-prior", realisations=R, average=True, seed=s, max_iter=K)`` with
    s = ``--seed`` + the image's index (the same image gets the same noise in every
    experiment) and K = ``--max-iter`` (default 10000, a cap; a sample still above sigma_L
    then counts as not converged). Recorded:

    * PSNR and SSIM of each realisation (``psnr_each``, ``ssim_each``), their mean and standard
      deviation over the R realisations (population std, 0 for R = 1);
    * PSNR and SSIM of the average of the R realisations (``psnr_avg``, ``ssim_avg``): the
      sampler's mean, an estimate of the posterior mean, so of the least-squares solution;
    * PSNR and SSIM of the direct M M^T x (``psnr_direct``, ``ssim_direct``): the projection of
      the image onto the measured subspace, with nothing filled in (the blocky image, the
      low-pass image, the sparse back-projection);
    * iterations (mean and max over the realisations), how many converged (sigma_t < sigma_L
      within K), and the seconds per image: wall time of the measurement and the batched R
      realisations, under ``torch.no_grad``, after ``torch.cuda.synchronize`` on CUDA. The
      first image of a run also pays one-time costs (cuDNN set-up); one untimed denoiser call
      per denoiser comes before it.

    Metric conventions: every estimate (each realisation, the average, M M^T x) is clamped to
    [0, 1] before the metrics. Color sets: PSNR on the luminance Y of YCbCr, that of MATLAB's
    ``rgb2ycbcr`` on [0, 1], Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255, with peak 1
    (``psnr_*``, ``psnr_on`` = "Y", the usual super-resolution convention), plain RGB PSNR as
    well (``psnr_rgb_*``), and SSIM on Y; gray sets: PSNR and SSIM of the image (``psnr_on`` =
    "gray", the ``psnr_rgb_*`` columns null). PSNR = 10 log10(1 / MSE) over the whole image,
    no border cropped; SSIM is ``pnpfast.metrics.ssim`` (11 x 11 Gaussian window of std 1.5,
    valid positions only).

    Rows: one JSON line per (experiment, image), appended to ``--out`` (default
    ``benchmarks/results/implicit_prior.jsonl``) as each image finishes (a crash loses nothing
    done), with ``part`` = "experiments", experiment, kind (sr, spec, cs), dataset, image,
    image_index, shape, operator (a description), measurements (coefficients per channel),
    measured_fraction, params (sigma_0, sigma_L, h0, beta), seed, realisations, max_iter, the
    metrics above, iterations_mean, iterations_max, converged, seconds, denoiser (registry
    name : file), note (the gray image replicated; cuDNN's TF32 setting on CUDA, the load
    average on the CPU), and the harness environment columns (device, torch, triton, cuda,
    git_sha) and timestamp. No ``op`` column: ``report.py`` leaves them out of its timing
    tables. One line per image is printed as it finishes; after each experiment a table of
    the means over its images, per dataset, in the layout of the paper's tables: PSNR mean
    ± std over the realisations, PSNR of the average, PSNR of M M^T x, SSIM, iterations,
    seconds per image.

    Figure (``--figure PATH``, default ``implicit_prior.png`` next to ``--out``;
    ``--no-figure`` skips it): a PNG mosaic built with ``pnpfast.io.side_by_side`` and
    ``write_image`` (values clamped to [0, 1], rounded to 8 bits). First row: 4 samples of
    Algorithm 1 with the color BF-CNN (``pnpfast.sample``), ``--sample-size`` square (default
    64 on the CPU, 256 on CUDA), with beta = ``--sample-beta`` (default 0.5: the paper draws
    its unconstrained samples with a larger beta than the 0.01 of the inverse problems, for
    less noise on the way; the other parameters as above, the same iteration cap). Then one
    row per kind of experiment run (sr, spec, cs), from the first image of the first
    experiment of that kind, computed in this run: the original, M M^T x, one restoration (the
    first realisation) and the average of the R.

throughput
    Images per second of the batched sampler against a plain one-image-at-a-time loop. A batch
    of ``--batch`` measurements (default 8 on the CPU, 32 on CUDA) of ``--size`` square images
    (default 32 on the CPU, 64 on CUDA; a multiple of 4): the Set5 then Set14 images in turn
    (bridge replicated to RGB), centre-cropped, measured by ``BlockAverage(4)``, restored with
    the color BF-CNN and the paper's parameters, one realisation each, capped at
    ``--throughput-max-iter`` iterations (default ``--max-iter``). Batched: one
    ``pnpfast.solve(..., method="implicit-prior")`` call for the whole batch. Loop:
    ``reference_sampler`` of this script, a direct transcription of Algorithm 2 for one image
    in plain PyTorch (a Python ``while sigma >= sigma_L`` loop, ``.item()`` per iteration for
    sigma_t), called on each measurement in turn. Both run once untimed for 2 iterations
    first; each is timed as a whole (wall, ``torch.no_grad``, synchronised on CUDA). Reported:
    the images per second of both, their ratio (``speedup``), the mean iterations and the
    mean PSNR (Y) of each (a check that both do the same job; their noise differs: one
    generator seeded ``--seed`` for the batch, one seeded ``--seed`` + i for image i of the
    loop, so the iterations differ a little too). The batched call runs until its slowest image
    stops (the stopped ones ride along frozen), the loop pays every image's own count. Target
    (the issue's): >= 10x on a GPU; on the CPU it is only reported (``target_met`` null).
    The batched run's denoiser calls are bracketed by time marks (CUDA events, no
    synchronisation; perf_counter on the CPU): ``frac_not_denoiser`` = 1 - (their total) /
    (the whole call), the share of the sampler's own work (the fused step, the schedule, the
    start), target < 5% on a GPU. One row with ``part`` = "throughput" to the same ``--out``.

``--quick``: a smoke run: 1 image per set, ``--crop 32``, 2 realisations, ``--max-iter 30``,
4 samples of 16 x 16, a throughput batch of 2 at 16 x 16 capped at 20 iterations (so the
samples are far from converged and the numbers mean nothing). ``--device cpu|cuda`` (default
cuda when available), ``--threads`` (torch CPU threads). Needs ``<data>`` (``--data``, default
``../shared/data``); exits with code 2 and a message when it, an image set or a denoiser is
missing.

    python benchmarks/bench_implicit_prior.py                          # everything, cuda if there
    python benchmarks/bench_implicit_prior.py --device cpu --crop 64 --max-images 2 \\
        --realisations 4 --experiments sr4,cs10
    python benchmarks/bench_implicit_prior.py --part throughput --device cuda --batch 64
    python benchmarks/bench_implicit_prior.py --quick --device cpu --out /tmp/ip.jsonl
"""

import argparse
import datetime
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import pnpfast
from pnpfast.denoisers import load, registry
from pnpfast.io import read_image, side_by_side, write_image
from pnpfast.metrics import psnr, ssim
from pnpfast.operators import BlockAverage, CompressiveSensing, SpectralLowpass

DATA = harness.DATA
NAME = "implicit_prior"
PARAMS = {"sigma_0": 1.0, "sigma_L": 0.01, "h0": 0.01, "beta": 0.01}  # the paper's
SAMPLE_BETA = 0.5  # unconstrained samples (Algorithm 1) of the figure
SAMPLES = 4  # unconstrained samples in the figure
THROUGHPUT_FACTOR = 4  # BlockAverage(4) in the throughput part
THROUGHPUT_TARGET = 10.0  # batched >= 10x the one-image loop, on a GPU
NOT_DENOISER_TARGET = 0.05  # the sampler outside the denoiser, of a batched run, on a GPU
LUMA = (65.481, 128.553, 24.966)  # MATLAB rgb2ycbcr, Y = (16 + LUMA . RGB) / 255


@dataclass(frozen=True)
class Experiment:
    """One row block of the paper's tables: an operator family, its value, the sets."""

    name: str
    kind: str  # "sr" (block averages), "spec" (DFT low-pass), "cs" (compressive sensing)
    value: float  # the block size, the kept fraction of frequencies or the ratio m / N
    datasets: tuple[str, ...]
    denoiser: str  # registry name
    title: str

    @property
    def channels(self) -> int:
        return registry.entry(self.denoiser).channels

    def operator(self, index: int):
        """The operator for the image of that index in its set."""
        if self.kind == "sr":
            return BlockAverage(int(self.value))
        if self.kind == "spec":
            return SpectralLowpass(self.value)
        return CompressiveSensing(self.value, seed=index, method="fast")


EXPERIMENTS = {
    e.name: e
    for e in (
        Experiment("sr4", "sr", 4, ("Set5", "Set14"), "bfcnn-color", "super-resolution 4:1"),
        Experiment("sr8", "sr", 8, ("Set5", "Set14"), "bfcnn-color", "super-resolution 8:1"),
        Experiment("spec10", "spec", 0.10, ("Set5",), "bfcnn-color", "spectral SR, 10% kept"),
        Experiment("spec5", "spec", 0.05, ("Set5",), "bfcnn-color", "spectral SR, 5% kept"),
        Experiment("cs25", "cs", 0.25, ("BSD68",), "bfcnn-gray", "compressive sensing 25%"),
        Experiment("cs10", "cs", 0.10, ("BSD68",), "bfcnn-gray", "compressive sensing 10%"),
        Experiment("cs4", "cs", 0.04, ("BSD68",), "bfcnn-gray", "compressive sensing 4%"),
    )
}


# --------------------------------------------------------------------------------------------
# images, metrics, denoisers


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB on [0, 1] -> [B, 1, H, W], the Y of MATLAB rgb2ycbcr on [0, 1]."""
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (16 + (rgb * w).sum(1, keepdim=True)) / 255


def psnr_y(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """[B] PSNR (dB, peak 1) of the Y channels of two RGB batches on [0, 1]."""
    return psnr(luma(x), luma(ref))


def scores(est: torch.Tensor, clean: torch.Tensor) -> dict[str, list[float]]:
    """PSNR (on Y for color), RGB PSNR (color only) and SSIM (on Y for color) of every image of
    est [n, C, H, W] against clean [1, C, H, W]; est is clamped to [0, 1] first."""
    est = est.clamp(0, 1)
    ref = clean.expand_as(est)
    if clean.shape[1] == 3:
        y_est, y_ref = luma(est), luma(ref)
        return {
            "psnr": psnr(y_est, y_ref).tolist(),
            "psnr_rgb": psnr(est, ref).tolist(),
            "ssim": ssim(y_est, y_ref).tolist(),
        }
    return {"psnr": psnr(est, ref).tolist(), "psnr_rgb": None, "ssim": ssim(est, ref).tolist()}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for one value)."""
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def centre(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The centre h x w window of x, tiled periodically first where x is smaller."""
    H, W = x.shape[-2:]
    x = x.repeat(1, 1, -(-h // H), -(-w // W))
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def crop_size(H: int, W: int, crop: int | None) -> tuple[int, int]:
    """H and W down to multiples of 8, then to at most crop."""
    h, w = H - H % 8, W - W % 8
    if crop is not None:
        h, w = min(h, crop), min(w, crop)
    return h, w


def read_set(
    data: Path, name: str, channels: int, crop: int | None, max_images: int | None
) -> list[tuple[int, str, torch.Tensor, str]]:
    """(index, name, [1, channels, h, w] float32 image, note) for the first images of a set."""
    folder = data / "images" / name
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"no PNG images in {folder}")
    out = []
    for i, path in enumerate(paths[:max_images]):
        x = read_image(path)
        note = ""
        if x.shape[1] != channels:
            if x.shape[1] != 1:
                raise ValueError(f"{path} has {x.shape[1]} channels, the denoiser {channels}")
            x, note = (
                x.expand(1, channels, *x.shape[2:]).contiguous(),
                "gray image replicated to RGB",
            )
        x = centre(x, *crop_size(*x.shape[-2:], crop))
        out.append((i, path.stem, x, note))
    return out


class Denoisers:
    """The registry BF-CNNs, loaded once each, offline: (denoiser, label) by name."""

    def __init__(self, data: Path, device: str):
        self.data, self.device = data, device
        self._loaded: dict[str, tuple[Callable, str]] = {}

    def __call__(self, name: str) -> tuple[Callable, str]:
        if name not in self._loaded:
            item = registry.entry(name)
            found = sorted((self.data / "weights").glob(f"*/{item.filename}"))
            try:
                if found:
                    net, label = load(name, weights=found[0], device=self.device), found[0].name
                else:
                    net, label = (
                        registry.load_entry(name, offline=True, device=self.device),
                        "cache",
                    )
            except (OSError, ValueError, RuntimeError) as exc:
                raise RuntimeError(f"cannot load the denoiser {name!r}: {exc}") from exc
            with torch.no_grad():  # one untimed call: first-call and cuDNN set-up
                net(torch.full((1, item.channels, 64, 64), 0.5, device=self.device), 0.1)
            self._loaded[name] = (net, f"{name}:{label}")
        return self._loaded[name]


def run_note(device: str) -> str:
    """What else a row should say about the machine: cuDNN's TF32 on CUDA, the load on the CPU."""
    if torch.device(device).type == "cuda":
        return f"cudnn TF32 {'allowed' if torch.backends.cudnn.allow_tf32 else 'off'}"
    return harness.load_note(device)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def describe(exp: Experiment, op, index: int, shape: tuple[int, ...]) -> tuple[str, int]:
    """(a description of the operator, its coefficients per channel)."""
    H, W = shape[-2:]
    N = H * W
    if exp.kind == "sr":
        s = int(exp.value)
        m = N // (s * s)
        return f"BlockAverage({s}): sums of {s}x{s} blocks / {s}, {m} of {N} per channel", m
    if exp.kind == "spec":
        ry, rx = op.radii
        return (
            f"SpectralLowpass({exp.value:g}): the {op.kept} lowest DFT frequencies of {N} "
            f"(|ky| <= {ry}, |kx| <= {rx})",
            op.kept,
        )
    return (
        f"CompressiveSensing({exp.value:g}, seed={index}, method=fast): {op.m} random "
        f"orthonormal measurements of {N} (signs, 2-D DCT, selection)",
        op.m,
    )


# --------------------------------------------------------------------------------------------
# experiments


@dataclass
class Kept:
    """One image of an experiment, for the figure."""

    clean: torch.Tensor
    direct: torch.Tensor
    sample: torch.Tensor
    mean: torch.Tensor


def run_image(
    exp: Experiment,
    dataset: str,
    index: int,
    name: str,
    clean: torch.Tensor,
    note: str,
    denoiser: Callable,
    label: str,
    args,
) -> tuple[dict, Kept]:
    device = args.device
    clean = clean.to(device)
    op = exp.operator(index)
    seed = args.seed + index
    R = args.realisations
    with torch.no_grad():
        sync(device)
        start = time.perf_counter()
        xc = op.measure(clean)
        res = pnpfast.solve(
            xc,
            op,
            denoiser,
            method="implicit-prior",
            realisations=R,
            average=True,
            seed=seed,
            max_iter=args.max_iter,
            **PARAMS,
        )
        sync(device)
        seconds = time.perf_counter() - start
        direct = op.project(clean)
        each, avg, dir_ = scores(res.x, clean), scores(res.mean, clean), scores(direct, clean)
    operator, m = describe(exp, op, index, tuple(clean.shape))
    iterations = res.iterations.tolist()
    row = {
        "part": "experiments",
        "experiment": exp.name,
        "kind": exp.kind,
        "title": exp.title,
        "dataset": dataset,
        "image": name,
        "image_index": index,
        "shape": "x".join(str(s) for s in clean.shape),
        "operator": operator,
        "measurements": m,
        "measured_fraction": round(m / (clean.shape[-2] * clean.shape[-1]), 6),
        "params": dict(PARAMS),
        "seed": seed,
        "realisations": R,
        "max_iter": args.max_iter,
        "psnr_on": "Y" if clean.shape[1] == 3 else "gray",
    }
    for key in ("psnr", "psnr_rgb", "ssim"):
        if each[key] is None:
            row.update({f"{key}_mean": None, f"{key}_std": None, f"{key}_avg": None})
            row[f"{key}_direct"] = None
            continue
        row[f"{key}_mean"], row[f"{key}_std"] = mean_std(each[key])
        row[f"{key}_avg"] = avg[key][0]
        row[f"{key}_direct"] = dir_[key][0]
    row["psnr_each"], row["ssim_each"] = each["psnr"], each["ssim"]
    row.update(
        {
            "iterations_mean": sum(iterations) / len(iterations),
            "iterations_max": max(iterations),
            "converged": int(res.converged.sum()),
            "seconds": seconds,
            "denoiser": label,
            "note": "; ".join(n for n in (note, run_note(device)) if n),
        }
    )
    kept = Kept(clean.cpu(), direct.cpu(), res.x[:1].cpu(), res.mean.cpu())
    return row, kept


def _avg(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r[key] is not None]
    return sum(vals) / len(vals) if vals else None


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


SUMMARY_HEADER = (
    "experiment",
    "dataset",
    "images",
    "PSNR",
    "PSNR avg",
    "M M^T x",
    "RGB avg",
    "SSIM",
    "SSIM avg",
    "iterations",
    "converged",
    "s/image",
)


def summary_lines(rows: list[dict]) -> list[tuple]:
    """One line per (experiment, dataset): the means over its images."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["dataset"]), []).append(r)
    lines = []
    for (experiment, dataset), rs in groups.items():
        conv = sum(r["converged"] for r in rs)
        total = sum(r["realisations"] for r in rs)
        lines.append(
            (
                experiment,
                f"{dataset} ({rs[0]['psnr_on']})",
                len(rs),
                f"{_avg(rs, 'psnr_mean'):.2f} ± {_avg(rs, 'psnr_std'):.2f}",
                f"{_avg(rs, 'psnr_avg'):.2f}",
                f"{_avg(rs, 'psnr_direct'):.2f}",
                _f(_avg(rs, "psnr_rgb_avg"), ".2f"),
                f"{_avg(rs, 'ssim_mean'):.4f} ± {_avg(rs, 'ssim_std'):.4f}",
                f"{_avg(rs, 'ssim_avg'):.4f}",
                f"{_avg(rs, 'iterations_mean'):.0f}",
                f"{conv}/{total}",
                f"{_avg(rs, 'seconds'):.2f}",
            )
        )
    return lines


def run_experiments(args, denoisers: Denoisers, out: Path, env: dict) -> dict[str, Kept]:
    """Every experiment of ``args.experiments``; rows appended as images finish. Returns the
    first image of the first experiment of each kind, for the figure."""
    kept: dict[str, Kept] = {}
    all_rows: list[dict] = []
    for name in args.experiments:
        exp = EXPERIMENTS[name]
        denoiser, label = denoisers(exp.denoiser)
        print(
            f"{exp.name}: {exp.title}, {', '.join(exp.datasets)}, {label}, "
            f"{args.realisations} realisations per image, max {args.max_iter} iterations",
            flush=True,
        )
        rows = []
        for dataset in exp.datasets:
            images = read_set(args.data, dataset, exp.channels, args.crop, args.max_images)
            for index, image, clean, note in images:
                row, keep = run_image(
                    exp, dataset, index, image, clean, note, denoiser, label, args
                )
                row.update(
                    env,
                    timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                )
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                kept.setdefault(exp.kind, keep)
                print(
                    f"  {exp.name} {dataset}/{image} {row['shape']}: PSNR of the average "
                    f"{row['psnr_avg']:.2f} dB ({row['psnr_on']}; samples "
                    f"{row['psnr_mean']:.2f} ± {row['psnr_std']:.2f}, M M^T x "
                    f"{row['psnr_direct']:.2f}), {row['iterations_mean']:.0f} iterations, "
                    f"{row['seconds']:.1f} s",
                    flush=True,
                )
        print(harness.text_table(SUMMARY_HEADER, summary_lines(rows)), end="\n\n", flush=True)
        all_rows += rows
    if len(args.experiments) > 1 and all_rows:
        print("all experiments (means over images; PSNR on Y for color sets, mean ± std over")
        print("the realisations; 'PSNR avg': of the average of the realisations):")
        print(harness.text_table(SUMMARY_HEADER, summary_lines(all_rows)), end="\n\n")
    return kept


def write_figure(path: Path, rows: list[list[torch.Tensor]]) -> None:
    """Rows of [1, C, h, w] images stacked top to bottom (white gaps and padding)."""
    strips = [side_by_side([im.clamp(0, 1) for im in row]) for row in rows]
    # side_by_side stacks left to right: transpose the strips, stack them, transpose back
    mosaic = side_by_side([s.transpose(-1, -2) for s in strips]).transpose(-1, -2)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, mosaic.contiguous())


def unconstrained_samples(args, denoisers: Denoisers) -> torch.Tensor:
    denoiser, label = denoisers("bfcnn-color")
    S = args.sample_size
    with torch.no_grad():
        sync(args.device)
        start = time.perf_counter()
        res = pnpfast.sample(
            denoiser,
            (SAMPLES, 3, S, S),
            sigma_0=PARAMS["sigma_0"],
            sigma_L=PARAMS["sigma_L"],
            h0=PARAMS["h0"],
            beta=args.sample_beta,
            seed=args.seed,
            max_iter=args.max_iter,
            device=args.device,
        )
        sync(args.device)
    print(
        f"{SAMPLES} unconstrained samples {S}x{S} (Algorithm 1, {label}, beta "
        f"{args.sample_beta:g}): {res.iterations.float().mean():.0f} iterations, "
        f"{int(res.converged.sum())}/{SAMPLES} converged, {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    return res.x.cpu()


# --------------------------------------------------------------------------------------------
# throughput


def reference_sampler(
    xc: torch.Tensor,
    A,
    D: Callable,
    *,
    sigma_0: float,
    sigma_L: float,
    h0: float,
    beta: float,
    max_iter: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """Algorithm 2 for one measurement xc = M^T x ([1, ...]), written the plain way: a Python
    loop, one image, sigma_t read back with ``.item()`` every iteration. (y_T, iterations)."""
    Mxc = A.lift(xc)  # M x_c
    N = Mxc.numel()
    half = torch.full_like(Mxc, 0.5)

    def noise() -> torch.Tensor:
        return torch.randn(Mxc.shape, generator=generator, device=Mxc.device, dtype=Mxc.dtype)

    y = Mxc + half - A.project(half) + sigma_0 * noise()
    sigma = sigma_0
    t = 0
    while sigma >= sigma_L and t < max_iter:
        t += 1
        h = h0 * t / (1 + h0 * (t - 1))
        f = D(y, sigma) - y
        d = f - A.project(f) + Mxc - A.project(y)  # (I - P) f + M (x_c - M^T y)
        sigma = (d.norm() / math.sqrt(N)).item()
        gamma = math.sqrt(max((1 - beta * h) ** 2 - (1 - h) ** 2, 0.0)) * sigma
        y = y + h * d + gamma * noise()
    return y, t


def throughput_batch(data: Path, batch: int, size: int) -> torch.Tensor:
    """[batch, 3, size, size]: the Set5 then Set14 images in turn, centre-cropped."""
    images = []
    for name in ("Set5", "Set14"):
        images += [x for _, _, x, _ in read_set(data, name, 3, None, None)]
    return torch.cat([centre(images[i % len(images)], size, size) for i in range(batch)])


def run_throughput(args, denoisers: Denoisers, out: Path, env: dict) -> dict:
    device = args.device
    denoiser, label = denoisers("bfcnn-color")
    B, S, cap = args.batch, args.size, args.throughput_max_iter
    clean = throughput_batch(args.data, B, S).to(device)
    A = BlockAverage(THROUGHPUT_FACTOR)
    print(
        f"throughput: {B} measurements of {S}x{S} color images, BlockAverage("
        f"{THROUGHPUT_FACTOR}), {label}, max {cap} iterations, on {device}",
        flush=True,
    )

    def batched(max_iter: int, D: Callable = denoiser):
        return pnpfast.solve(
            A.measure(clean),
            A,
            D,
            method="implicit-prior",
            seed=args.seed,
            max_iter=max_iter,
            **PARAMS,
        )

    def loop(max_iter: int) -> tuple[list[torch.Tensor], list[int]]:
        xs, its = [], []
        for i in range(B):
            g = torch.Generator(device=device).manual_seed(args.seed + i)
            x, t = reference_sampler(
                A.measure(clean[i : i + 1]), A, denoiser, max_iter=max_iter, generator=g, **PARAMS
            )
            xs.append(x)
            its.append(t)
        return xs, its

    with torch.no_grad():
        batched(2), loop(2)  # untimed warm-up
        sync(device)
        clock = harness.Clock(device)
        timed = harness.TimedDenoiser(denoiser, clock)
        start = time.perf_counter()
        first = clock.mark()
        res = batched(cap, timed)
        last = clock.mark()
        sync(device)
        t_batched = time.perf_counter() - start
        denoiser_ms = sum(clock.ms(a, b) for _, a, b in timed.calls)
        frac_not_denoiser = 1 - denoiser_ms / clock.ms(first, last)
        start = time.perf_counter()
        xs, its = loop(cap)
        sync(device)
        t_loop = time.perf_counter() - start
        psnr_batched = psnr_y(res.x.clamp(0, 1), clean).mean().item()
        psnr_loop = psnr_y(torch.cat(xs).clamp(0, 1), clean).mean().item()
    ips_batched, ips_loop = B / t_batched, B / t_loop
    speedup = ips_batched / ips_loop
    on_gpu = torch.device(device).type == "cuda"
    row = {
        "part": "throughput",
        "experiment": "throughput",
        "operator": f"BlockAverage({THROUGHPUT_FACTOR})",
        "shape": f"{B}x3x{S}x{S}",
        "images": B,
        "params": dict(PARAMS),
        "seed": args.seed,
        "max_iter": cap,
        "batched_seconds": t_batched,
        "loop_seconds": t_loop,
        "batched_images_per_s": ips_batched,
        "loop_images_per_s": ips_loop,
        "speedup": speedup,
        "batched_iterations_mean": res.iterations.float().mean().item(),
        "loop_iterations_mean": sum(its) / len(its),
        "batched_psnr_y": psnr_batched,
        "denoiser_calls": len(timed.calls),
        "frac_not_denoiser": frac_not_denoiser,
        "not_denoiser_target": f"frac_not_denoiser < {NOT_DENOISER_TARGET:g} on a GPU",
        "not_denoiser_target_met": frac_not_denoiser < NOT_DENOISER_TARGET if on_gpu else None,
        "loop_psnr_y": psnr_loop,
        "target": f"speedup >= {THROUGHPUT_TARGET:g} on a GPU",
        "target_met": speedup >= THROUGHPUT_TARGET if on_gpu else None,
        "denoiser": label,
        "note": run_note(device),
        **env,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    header = ("sampler", "images/s", "seconds", "iterations/image", "PSNR Y")
    lines = [
        (
            "batched (pnpfast.solve)",
            f"{ips_batched:.3f}",
            f"{t_batched:.2f}",
            f"{row['batched_iterations_mean']:.0f}",
            f"{psnr_batched:.2f}",
        ),
        (
            "one image at a time",
            f"{ips_loop:.3f}",
            f"{t_loop:.2f}",
            f"{row['loop_iterations_mean']:.0f}",
            f"{psnr_loop:.2f}",
        ),
    ]
    print(harness.text_table(header, lines))
    verdict = (
        ("met" if row["target_met"] else "NOT met")
        if on_gpu
        else "applies on a GPU only, reported here"
    )
    print(f"batched / loop: {speedup:.2f}x (target >= {THROUGHPUT_TARGET:g}x: {verdict})")
    share = (
        ("met" if row["not_denoiser_target_met"] else "NOT met")
        if on_gpu
        else "applies on a GPU only, reported here"
    )
    print(
        f"batched run outside the denoiser: {100 * frac_not_denoiser:.1f}% of its time "
        f"(target < {100 * NOT_DENOISER_TARGET:g}%: {share})"
    )
    print()
    return row


# --------------------------------------------------------------------------------------------


def parse_experiments(text: str) -> list[str]:
    names = harness.parse_list(text)
    if names == ["all"]:
        return list(EXPERIMENTS)
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"experiments must be 'all' or among {', '.join(EXPERIMENTS)}, not {bad or text!r}"
        )
    return names


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("experiments", "throughput", "all"), default="all")
    p.add_argument(
        "--experiments",
        type=parse_experiments,
        default=list(EXPERIMENTS),
        help=f"comma-separated among {', '.join(EXPERIMENTS)} (default all)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=default_device)
    p.add_argument("--threads", type=positive, default=None, help="torch CPU threads")
    p.add_argument("--data", type=Path, default=DATA, help="test data (default ../shared/data)")
    p.add_argument("--max-images", type=positive, default=None, help="first N images per set")
    p.add_argument(
        "--crop", type=positive, default=None, help="centre crop S x S, S a multiple of 8"
    )
    p.add_argument("--realisations", type=positive, default=None, help="samples per image (10)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--max-iter", type=positive, default=None, help="iteration cap (10000)")
    p.add_argument("--out", type=Path, default=harness.results_path(NAME), help="JSONL rows")
    p.add_argument("--figure", type=Path, default=None, help="PNG (default next to --out)")
    p.add_argument("--no-figure", action="store_true", help="skip the figure")
    p.add_argument("--sample-size", type=positive, default=None, help="figure samples' size")
    p.add_argument("--sample-beta", type=float, default=SAMPLE_BETA, help="their beta (0.5)")
    p.add_argument("--batch", type=positive, default=None, help="throughput batch (8 CPU, 32 GPU)")
    p.add_argument("--size", type=positive, default=None, help="throughput size (32 CPU, 64 GPU)")
    p.add_argument("--throughput-max-iter", type=positive, default=None)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, few iterations")
    args = p.parse_args(argv)
    on_gpu = args.device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    quick = args.quick
    if args.max_images is None and quick:
        args.max_images = 1
    if args.crop is None and quick:
        args.crop = 32
    if args.crop is not None and args.crop % 8:
        p.error(f"--crop must be a multiple of 8, not {args.crop}")
    if args.realisations is None:
        args.realisations = 2 if quick else 10
    if args.max_iter is None:
        args.max_iter = 30 if quick else 10000
    if args.sample_size is None:
        args.sample_size = 16 if quick else 256 if on_gpu else 64
    if not 0 < args.sample_beta <= 1:
        p.error(f"--sample-beta must be in (0, 1], not {args.sample_beta}")
    if args.batch is None:
        args.batch = 2 if quick else 32 if on_gpu else 8
    if args.size is None:
        args.size = 16 if quick else 64 if on_gpu else 32
    if args.size % THROUGHPUT_FACTOR:
        p.error(f"--size must be a multiple of {THROUGHPUT_FACTOR}, not {args.size}")
    if args.throughput_max_iter is None:
        args.throughput_max_iter = 20 if quick else args.max_iter
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        print(f"needs the test data (images, BF-CNN weights) at {args.data}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = None
    if not args.no_figure and args.part in ("experiments", "all"):
        figure = args.figure if args.figure is not None else out.with_name(f"{NAME}.png")
    env = {**harness.environment(str(torch.device(args.device)))}
    denoisers = Denoisers(args.data, args.device)
    try:
        if args.part in ("experiments", "all"):
            kept = run_experiments(args, denoisers, out, env)
            if figure is not None:
                rows = [list(unconstrained_samples(args, denoisers).split(1))]
                for kind in ("sr", "spec", "cs"):
                    if kind in kept:
                        k = kept[kind]
                        rows.append([k.clean, k.direct, k.sample, k.mean])
                write_figure(figure, rows)
                print(
                    f"figure written to {figure} (row 1: {SAMPLES} samples of the prior; then "
                    f"per kind run: original, M M^T x, one restoration, the average)\n"
                )
        if args.part in ("throughput", "all"):
            run_throughput(args, denoisers, out, env)
    except (RuntimeError, FileNotFoundError) as exc:
        if isinstance(exc, RuntimeError) and "cannot load the denoiser" not in str(exc):
            raise
        print(exc, file=sys.stderr)
        return 2
    print(f"rows appended to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What running the denoiser in bfloat16 or float16 costs in PSNR on the runner's default job.

The job (``pnpfast restore --task deblur`` with its defaults): HQS with its defaults (DPIR's
8 iterations, sigma_k from 49/255 down to sigma, lam 0.23) and the shipped noise-conditional
DRUNet, the method's default denoiser. Problems: the first ``--images`` CBSD68 images (sorted by
name, default 6), centre-cropped to ``--crop`` x ``--crop`` (default 128), image i blurred by the
Levin et al. kernel k{i mod 8 + 1} (``--all-kernels``: each image by all 8), zero-padded to
27x27, as in quality_deblur.py: circular blur, rounding to 8-bit levels, AWGN of std 7.65/255
from torch.Generator().manual_seed(0). All problems run as one batch with per-image kernels,
once per variant, after an untimed one-iteration solve of the same batch (first calls at a
shape pay for allocations and kernel selection):

* ``fp32``: the denoiser as it is (the reference);
* ``bf16``, ``fp16``: ``pnpfast.runner.gpu_denoiser.FastDenoiser(D, precision=...)``, the
  network under torch.autocast, the data steps in float32;
* ``fp32+channels_last``: ``FastDenoiser(D, channels_last=True)``: the same numbers up to
  round-off (the layout's check), and its time;
* on CUDA also ``bf16+channels_last``, ``fp16+channels_last``, ``fp32+cuda_graphs`` and
  ``bf16+channels_last+cuda_graphs`` (``--variants`` takes any precision followed by
  ``+channels_last`` and/or ``+cuda_graphs``; a variant that cannot run on the device gets a
  row with ``available`` false and the reason).

Rows (``COLUMNS``), one per variant: mean PSNR (peak 1, output clamped to [0, 1], no border
crop; ``input_psnr``: the measurements'), the mean, smallest and largest per-image PSNR
difference from fp32 (same problems), the largest absolute pixel difference from fp32's output,
the solve's wall time (whole batch, and per image), the iterations; ``available`` false with ``reason`` when a precision cannot run on
the device (autocast refuses its dtype there) or the solve diverged (an fp16 overflow). Appended
to benchmarks/results/precision.jsonl. CPU timings are of this machine's CPU autocast (float16
convolutions on the CPU are far slower than float32); a GPU's speed is another question.
Needs ../shared/data (CBSD68, kernels/levin09); without it the script says so and exits 2.

    python benchmarks/quality_precision.py [--images 6] [--crop 128] [--all-kernels]
        [--variants fp32,bf16,fp16,fp32+channels_last] [--device cpu] [--quick]
"""

import argparse
import copy
import datetime
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from quality_deblur import degrade, levin_kernels

import pnpfast
from pnpfast.io import read_image
from pnpfast.runner.gpu_denoiser import PRECISIONS, FastDenoiser

DATA = harness.DATA
NOISE = 7.65
VARIANTS = ("fp32", "bf16", "fp16", "fp32+channels_last")
CUDA_VARIANTS = (
    *VARIANTS,
    "bf16+channels_last",
    "fp16+channels_last",
    "fp32+cuda_graphs",
    "bf16+channels_last+cuda_graphs",
)
OPTIONS = ("channels_last", "cuda_graphs")
COLUMNS = (
    "task",
    "dataset",
    "images",
    "problems",
    "kernels",
    "crop",
    "noise_255",
    "method",
    "denoiser",
    "variant",
    "precision",
    "channels_last",
    "cuda_graphs",
    "available",
    "reason",
    "iterations",
    "input_psnr",
    "mean_psnr",
    "mean_psnr_diff_db",
    "min_psnr_diff_db",
    "max_psnr_diff_db",
    "max_abs_diff",
    "seconds",
    "seconds_per_image",
    "device",
    "torch",
    "triton",
    "cuda",
    "git_sha",
    "note",
    "timestamp",
)


def problems(images: int, crop: int, all_kernels: bool) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(x [N, 3, crop, crop] float64, k [N, 27, 27], names): image i with Levin kernel
    k{i mod 8 + 1} (N = images), or image-major with every kernel (N = 8 images)."""
    paths = sorted((DATA / "images" / "CBSD68").glob("*.png"))[:images]
    clean = torch.cat([harness.centre_crop(read_image(p), crop) for p in paths]).double()
    k, knames = levin_kernels()
    if all_kernels:
        names = [f"{p.stem}/{kn}" for p in paths for kn in knames]
        return clean.repeat_interleave(len(knames), dim=0), k.repeat(len(paths), 1, 1), names
    pick = [i % len(knames) for i in range(len(paths))]
    return clean, k[pick], [f"{p.stem}/{knames[j]}" for p, j in zip(paths, pick, strict=True)]


def parse_variant(text: str) -> tuple[str, bool, bool]:
    """ "bf16+channels_last+cuda_graphs" -> ("bf16", True, True); ValueError for another form."""
    precision, *options = text.split("+")
    if precision not in PRECISIONS or any(o not in OPTIONS for o in options):
        raise ValueError(
            f"variant {text!r}: a precision ({', '.join(PRECISIONS)}) then +channels_last "
            "and/or +cuda_graphs"
        )
    return precision, "channels_last" in options, "cuda_graphs" in options


def variant_denoiser(base, variant: str):
    """The denoiser of one variant: fp32 is the base itself; channels_last gets its own copy
    (it converts the module's weights in place)."""
    precision, channels_last, cuda_graphs = parse_variant(variant)
    if (precision, channels_last, cuda_graphs) == ("fp32", False, False):
        return base
    net = copy.deepcopy(base) if channels_last else base
    return FastDenoiser(
        net, precision=precision, channels_last=channels_last, cuda_graphs=cuda_graphs
    )


def solve(y, A, D, max_iter: int | None = None):
    start = time.perf_counter()
    with torch.no_grad():
        res = pnpfast.solve(y, A, D, "hqs", sigma=NOISE / 255, max_iter=max_iter)
    if y.device.type == "cuda":
        torch.cuda.synchronize(y.device)
    return res, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6, help="CBSD68 images (default 6)")
    parser.add_argument("--crop", type=int, default=128, help="centre crop (default 128)")
    parser.add_argument(
        "--all-kernels", action="store_true", help="every image with each of the 8 kernels"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--variants", default=None, help=f"default {','.join(VARIANTS)}, more on CUDA"
    )
    parser.add_argument("--out", default=str(harness.results_path("precision")))
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 images, 32x32 crops")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    if args.quick:
        args.images, args.crop, args.all_kernels = 2, 32, False
    default = CUDA_VARIANTS if torch.device(args.device).type == "cuda" else VARIANTS
    variants = harness.parse_list(args.variants) if args.variants else list(default)
    try:
        [parse_variant(v) for v in variants]
    except ValueError as exc:
        parser.error(f"--variants: {exc}")
    if variants[0] != "fp32":
        parser.error("--variants: the first must be fp32 (the reference of the differences)")
    if not (DATA / "images" / "CBSD68").is_dir() or not (DATA / "kernels" / "levin09").is_dir():
        print(f"skipped: needs CBSD68 and kernels/levin09 under {DATA}", file=sys.stderr)
        return 2

    x, k, names = problems(args.images, args.crop, args.all_kernels)
    A = pnpfast.operators.Blur(k.to(args.device))
    y = degrade(x, pnpfast.operators.Blur(k), NOISE).float().to(args.device)
    x32 = x.float().to(args.device)
    base = pnpfast.denoisers.load(device=args.device)
    env = harness.environment(args.device)
    note = harness.load_note(args.device)
    common = {
        "task": "deblur",
        "dataset": "CBSD68",
        "images": args.images,
        "problems": len(names),
        "kernels": "all" if args.all_kernels else "one per image",
        "crop": args.crop,
        "noise_255": NOISE,
        "method": "hqs",
        "denoiser": "conditional:shipped",
    }
    input_psnr = round(float(pnpfast.metrics.psnr(y.clamp(0, 1), x32).mean()), 4)

    ref_x = ref_psnr = None
    rows = []
    for variant in variants:
        precision, channels_last, cuda_graphs = parse_variant(variant)
        row = {
            **common,
            "variant": variant,
            "precision": precision,
            "channels_last": channels_last,
            "cuda_graphs": cuda_graphs,
            "available": True,
            "reason": "",
            "input_psnr": input_psnr,
            **dict.fromkeys(("iterations", "mean_psnr", "mean_psnr_diff_db")),
            **dict.fromkeys(("min_psnr_diff_db", "max_psnr_diff_db", "max_abs_diff")),
            **dict.fromkeys(("seconds", "seconds_per_image")),
            **env,
            "note": note,
        }
        try:
            D = variant_denoiser(base, variant)
            solve(y, A, D, max_iter=1)  # warm-up: first calls at each shape are not timed
            res, seconds = solve(y, A, D)
        except (ValueError, FloatingPointError) as exc:  # autocast refuses it / an overflow
            row.update(available=False, reason=f"{type(exc).__name__}: {exc}".splitlines()[0])
        else:
            out = res.x.clamp(0, 1)
            p = pnpfast.metrics.psnr(out, x32).double().cpu()
            row.update(
                iterations=int(res.iterations.max()),
                mean_psnr=round(float(p.mean()), 4),
                seconds=round(seconds, 3),
                seconds_per_image=round(seconds / len(names), 4),
            )
            if ref_x is None:
                ref_x, ref_psnr = out, p
            d = p - ref_psnr
            row.update(
                mean_psnr_diff_db=round(float(d.mean()), 4),
                min_psnr_diff_db=round(float(d.min()), 4),
                max_psnr_diff_db=round(float(d.max()), 4),
                max_abs_diff=float(f"{(out - ref_x).abs().max().item():.3g}"),
            )
        row["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
        rows.append({c: row[c] for c in COLUMNS})
        print(format_row(rows[-1]), flush=True)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    print(format_table(rows))
    return 0


def format_row(r: dict) -> str:
    if not r["available"]:
        return f"{r['variant']}: unavailable ({r['reason']})"
    return (
        f"{r['variant']}: mean PSNR {r['mean_psnr']:.3f} dB, {r['mean_psnr_diff_db']:+.4f} dB "
        f"vs fp32 (per image {r['min_psnr_diff_db']:+.4f} .. {r['max_psnr_diff_db']:+.4f}), "
        f"max |diff| {r['max_abs_diff']:.3g}, {r['seconds']:.1f} s"
    )


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per variant."""
    lines = [
        "| variant | mean PSNR (dB) | vs fp32 (dB) | per image (dB) | max abs diff | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["available"]:
            lines.append(f"| {r['variant']} | unavailable: {r['reason']} | | | | |")
            continue
        lines.append(
            f"| {r['variant']} | {r['mean_psnr']:.3f} | {r['mean_psnr_diff_db']:+.4f} | "
            f"{r['min_psnr_diff_db']:+.4f} .. {r['max_psnr_diff_db']:+.4f} | "
            f"{r['max_abs_diff']:.3g} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Super-resolution quality of DPIR-style HQS on Set5 and Set14, beside bicubic upsampling.

Problems: the centre crop (``--crop``, default 120x120, divisible by 12 so that x2, x3 and x4 all
fit) of every Set5 and Set14 image (Set14's grayscale bridge is repeated to 3 channels) is
degraded by ``SuperResolution.bicubic(s)`` (MATLAB imresize's antialiased bicubic, circular
borders) or ``SuperResolution.gaussian(s)`` (Gaussian of std = s high-resolution pixels, deepinv's
default width), s = 2, 3, 4, then AWGN of std sigma = 0 or 2.55/255 from
torch.Generator().manual_seed(0) (no 8-bit rounding of y, as DPIR's SR script).

Methods: ``upsample``, the bicubic-upsampling baseline ``A.upsample(y)``, and ``hqs``,
``pnpfast.solve(y, A, D, "hqs", sigma=sigma)`` with the shipped noise-conditional denoiser and
DPIR's SR recipe (24 iterations, sigma_k down to max(sigma, s/255), x0 = A.upsample(y)). Every
image of both sets runs as one batch per (kernel, s, sigma). ``deepinv-hqs``: deepinv's HQS
(``optim_builder(iteration="HQS")``, imported through deepinv_compat.py, which stubs torchvision
where it cannot load) on the same y with ``Downsampling(filter=A's kernel, padding="circular")``,
the same denoiser, the same x0 and DPIR's schedule written as its ``stepsize`` (1 / alpha_k) and
``g_param`` (sigma_k) lists: the same algorithm, so it should give the same numbers.

PSNR (peak 1) of the output clamped to [0, 1] and rounded to 8-bit levels (DPIR's uint8 output),
with s pixels shaved off every border as is customary in SR, on RGB and on Y (ITU-R BT.601 luma
of MATLAB's rgb2ycbcr: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255). Rows (columns
``COLUMNS``) are appended to benchmarks/results/sr_quality.jsonl after each problem; the table of
means per set, from the latest row of every (image, problem, method) at this crop size in that
file, goes to README.md between the ``sr-quality`` markers (not with ``--quick``).

    python benchmarks/quality_sr.py [--crop 120] [--methods upsample,hqs,deepinv-hqs] [--quick]
"""

import argparse
import datetime
import json
import sys
import textwrap
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import report
from deepinv_compat import import_deepinv

import pnpfast
from pnpfast.io import read_image
from pnpfast.operators import SuperResolution

DATA = harness.DATA
README = harness.ROOT / "README.md"
START, END = "<!-- sr-quality:start -->", "<!-- sr-quality:end -->"
SETS = ("Set5", "Set14")
KERNELS = ("bicubic", "gaussian")
FACTORS = (2, 3, 4)
NOISE_LEVELS = (0.0, 2.55)
METHODS = ("upsample", "hqs", "deepinv-hqs")
SIGMA_START, LAM, SIGMA_FLOOR, SR_ITERS = 49 / 255, 0.23, 0.255 / 255, 24  # DPIR's SR recipe
COLUMNS = (
    "task",
    "dataset",
    "image",
    "crop",
    "kernel",
    "kernel_std",
    "factor",
    "noise_255",
    "method",
    "denoiser",
    "iterations",
    "psnr_rgb",
    "psnr_y",
    "shave",
    "batch_seconds",
    "deepinv",
    "device",
    "torch",
    "triton",
    "cuda",
    "git_sha",
    "timestamp",
)


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    if size > min(H, W):
        raise ValueError(f"crop {size} is larger than an image of {H}x{W}")
    top, left = (H - size) // 2, (W - size) // 2
    return x[..., top : top + size, left : left + size]


def load_sets(crop: int, per_set: int | None = None) -> tuple[torch.Tensor, list[tuple[str, str]]]:
    """[N, 3, crop, crop] float64 clean crops of Set5 then Set14, with (set, image name)."""
    images, names = [], []
    for name in SETS:
        paths = sorted((DATA / "images" / name).glob("*.png"))[:per_set]
        for p in paths:
            x = centre_crop(read_image(p), crop).double()
            images.append(x.expand(1, 3, -1, -1) if x.shape[1] == 1 else x)
            names.append((name, p.stem))
    return torch.cat(images), names


def luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 Y of RGB on [0, 1] (MATLAB rgb2ycbcr, rescaled to [0, 1]): [N, 1, H, W]."""
    w = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return (16.0 + (x * w).sum(1, keepdim=True)) / 255.0


def psnr(z: torch.Tensor, x: torch.Tensor, shave: int) -> torch.Tensor:
    """Per-image PSNR (peak 1) with ``shave`` pixels cut from every border: [N]."""
    if shave:
        z, x = z[..., shave:-shave, shave:-shave], x[..., shave:-shave, shave:-shave]
    mse = (z - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def to_8bit(z: torch.Tensor) -> torch.Tensor:
    return torch.round(z.double().clamp(0, 1) * 255) / 255


def operator(kernel: str, s: int) -> SuperResolution:
    return SuperResolution.bicubic(s) if kernel == "bicubic" else SuperResolution.gaussian(s)


class _Conditional(torch.nn.Module):
    """The pnpfast denoiser as deepinv's PnP prior calls it: D(x, sigma, ...)."""

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x, sigma, *args, **kwargs):
        return self.denoiser(x, sigma)


def deepinv_hqs(y, A, denoiser, noise, max_iter, device):
    """deepinv's HQS on the same problem: Downsampling(filter=A's kernel, padding="circular"),
    L2 fidelity, PnP prior with the same denoiser, DPIR's SR schedule written out as deepinv
    parameters (stepsize_k = 1 / alpha_k = sigma_k^2 / (lam max(sigma, floor)^2), g_param_k =
    sigma_k), x0 = A.upsample(y). Returns the output, or None and why deepinv cannot run."""
    dinv, why = import_deepinv()
    if dinv is None:
        return None, why
    K = max_iter or SR_ITERS
    s = A.factor
    end = max(noise / 255, s / 255, SIGMA_FLOOR)
    sigmas = [
        SIGMA_START * (end / SIGMA_START) ** (k / (K - 1) if K > 1 else 0.0) for k in range(K)
    ]
    weight = LAM * max(noise / 255, SIGMA_FLOOR) ** 2
    physics = dinv.physics.Downsampling(
        img_size=tuple(y.shape[1:2]) + tuple(d * s for d in y.shape[2:]),
        filter=A.kernel[0][None, None].to(y),
        factor=s,
        device=device,
        padding="circular",
    )
    x0 = A.upsample(y)
    model = dinv.optim.optim_builder(
        iteration="HQS",
        prior=dinv.optim.prior.PnP(denoiser=_Conditional(denoiser)),
        data_fidelity=dinv.optim.data_fidelity.L2(),
        params_algo={
            "stepsize": [sk**2 / weight for sk in sigmas],
            "g_param": sigmas,
            "lambda": 1.0,
        },
        max_iter=K,
        early_stop=False,
        custom_init=lambda y_, physics_: {"est": (x0, x0)},
    )
    return model(y, physics), why


def run_problem(x, names, kernel, s, noise, denoiser, args, common) -> list[dict]:
    """Degrade the batch once, restore it by each method: one row per (image, method)."""
    A = operator(kernel, s)
    y = A(x)
    g = torch.Generator().manual_seed(0)
    y = y + noise / 255 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    y32 = y.float().to(args.device)
    Af = operator(kernel, s)
    rows = []
    for method in args.methods:
        start = time.perf_counter()
        with torch.no_grad():
            if method == "upsample":
                z, iters = Af.upsample(y32), [0] * len(names)
            elif method == "deepinv-hqs":
                z, why = deepinv_hqs(y32, Af, denoiser, noise, args.max_iter, args.device)
                if z is None:
                    print(f"deepinv-hqs skipped: {why}", file=sys.stderr)
                    continue
                iters = [args.max_iter or SR_ITERS] * len(names)
            else:
                kw = {"max_iter": args.max_iter} if args.max_iter else {}
                res = pnpfast.solve(y32, Af, denoiser, "hqs", sigma=noise / 255, **kw)
                z, iters = res.x, res.iterations
        seconds = time.perf_counter() - start
        z = to_8bit(z.cpu())
        rgb, y_ = psnr(z, x, s), psnr(luma(z), luma(x), s)
        for i, (dataset, image) in enumerate(names):
            row = {
                **common,
                "dataset": dataset,
                "image": image,
                "kernel": kernel,
                "kernel_std": float(s) if kernel == "gaussian" else None,
                "factor": s,
                "noise_255": noise,
                "method": method,
                "denoiser": None if method == "upsample" else "conditional:shipped",
                "iterations": int(iters[i]),
                "psnr_rgb": round(float(rgb[i]), 3),
                "psnr_y": round(float(y_[i]), 3),
                "shave": s,
                "batch_seconds": round(seconds, 2),
            }
            rows.append({c: row.get(c) for c in COLUMNS})
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per (kernel, factor, noise), RGB / Y means per set and method."""
    sets = [d for d in SETS if any(r["dataset"] == d for r in rows)]
    head = [f"{d} {m}" for d in sets for m in METHODS]
    lines = [
        "| kernel | s | noise (/255) | " + " | ".join(head) + " |",
        "|---|---|---|" + "---|" * len(head),
    ]
    keys = sorted(
        {(r["kernel"], r["factor"], r["noise_255"]) for r in rows},
        key=lambda k: (KERNELS.index(k[0]), k[1], k[2]),
    )
    for kernel, s, noise in keys:
        cells = []
        for d in sets:
            for m in METHODS:
                sel = [
                    r
                    for r in rows
                    if (r["kernel"], r["factor"], r["noise_255"], r["dataset"], r["method"])
                    == (kernel, s, noise, d, m)
                ]
                if not sel:
                    cells.append("-")
                    continue
                rgb = sum(r["psnr_rgb"] for r in sel) / len(sel)
                y = sum(r["psnr_y"] for r in sel) / len(sel)
                cells.append(f"{rgb:.2f} / {y:.2f}")
        lines.append(f"| {kernel} | {s} | {noise} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latest(rows: list[dict], crop: int) -> list[dict]:
    """The latest row per (dataset, image, kernel, factor, noise, method) at this crop size."""
    keep = {}
    for r in rows:
        if r.get("task") == "sr" and r.get("crop") == crop:
            key = tuple(r[k] for k in ("dataset", "image", "kernel", "factor", "noise_255"))
            keep[(*key, r["method"])] = r
    return list(keep.values())


def readme_block(rows: list[dict]) -> str:
    """The README table with lines saying what it covers, how long it took and how far pnpfast's
    HQS is from deepinv's on the same problems."""
    seconds: dict[str, dict] = {}  # method -> one batch time per (kernel, factor, noise)
    for r in rows:
        key = (r["kernel"], r["factor"], r["noise_255"])
        seconds.setdefault(r["method"], {})[key] = r["batch_seconds"]
    counts = ", ".join(
        f"{len({r['image'] for r in rows if r['dataset'] == d})} {d}"
        for d in SETS
        if any(r["dataset"] == d for r in rows)
    )
    r0 = rows[0]
    crop = r0["crop"]
    shas = ", ".join(sorted({r["git_sha"] for r in rows}))
    times = ", ".join(f"{m} {sum(v.values()):.0f} s" for m, v in seconds.items())
    text = (
        f"Mean PSNR (dB) RGB / Y over {counts} images ({crop}x{crop} centre crops, not the "
        "full images, for the 2-core CPU), s pixels shaved per border, 8-bit rounded outputs; "
        f"{sum(len(v) for v in seconds.values())} (problem, method) batches. Measured on "
        f"{r0['device']} (torch {r0['torch']}, git {shas}); restoration time for the "
        f"whole table: {times}."
    )
    key = ("dataset", "image", "kernel", "factor", "noise_255")
    ours = {tuple(r[k] for k in key): r for r in rows if r["method"] == "hqs"}
    theirs = {tuple(r[k] for k in key): r for r in rows if r["method"] == "deepinv-hqs"}
    common = ours.keys() & theirs.keys()
    if common:
        gap = max(abs(ours[c][m] - theirs[c][m]) for c in common for m in ("psnr_rgb", "psnr_y"))
        text += (
            f" deepinv-hqs: deepinv {r0['deepinv']}'s HQS (optim_builder, Downsampling with the "
            "same kernel and circular padding, the same denoiser, DPIR's schedule as its "
            f"stepsize / g_param lists, the same x0); largest per-image |hqs - deepinv-hqs| over "
            f"{len(common)} problems: {gap:.3f} dB."
        )
    else:
        text += " deepinv-hqs: not run (no rows; `--methods deepinv-hqs` adds them)."
    return format_table(rows) + "\n\n" + textwrap.fill(text, 100, break_on_hyphens=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=120, help="centre crop size, divisible by 12")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(harness.results_path("sr_quality")))
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 image per set, 24x24 crops, bicubic x2 at noise 0 and 2.55, "
        "2 HQS iterations, no README update",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (the table merges the latest rows "
        "of every method in --out)",
    )
    parser.add_argument("--max-iter", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.crop <= 0 or args.crop % 12:
        parser.error(f"--crop must be a positive multiple of 12 (x2, x3, x4), not {args.crop}")
    args.methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in args.methods if m not in METHODS]
    if bad or not args.methods:
        parser.error(
            f"--methods must be a comma-separated subset of {', '.join(METHODS)}, not {bad}"
        )
    if not DATA.is_dir():
        print(f"needs the test data at {DATA}", file=sys.stderr)
        return 2
    kernels, factors, per_set = KERNELS, FACTORS, None
    if args.quick:
        args.crop, args.max_iter, kernels, factors, per_set = 24, 2, ("bicubic",), (2,), 1

    x, names = load_sets(args.crop, per_set)
    denoiser = pnpfast.denoisers.load(device=args.device)
    common = {
        "task": "sr",
        "crop": args.crop,
        "deepinv": harness._version("deepinv"),
        **harness.environment(args.device),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    for kernel in kernels:
        for s in factors:
            for noise in NOISE_LEVELS:
                level = run_problem(x, names, kernel, s, noise, denoiser, args, common)
                with out.open("a") as f:  # each problem is saved as soon as it is done
                    f.writelines(json.dumps(r) + "\n" for r in level)
                rows += level
                print(format_table(level).splitlines()[-1], flush=True)
    seconds = time.perf_counter() - t0
    print(f"{seconds:.0f} s for this run")
    block = readme_block(latest(harness.read_jsonl(out), args.crop))
    print(block)
    if not args.quick:
        if not report.update_readme(args.readme, block, start=START, end=END):
            print(f"{args.readme}: no {START} ... {END} block, README not updated", file=sys.stderr)
            return 1
        print(f"updated the sr-quality block of {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

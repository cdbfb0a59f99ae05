"""Super-resolution quality of DPIR-style HQS on Set5 and Set14, beside bicubic upsampling.

Problems: every Set5 and Set14 image (Set14's grayscale bridge is repeated to 3 channels), either
its centre crop (``--crop N``, default 120: N x N, divisible by 12 so that x2, x3 and x4 all fit)
or, with ``--crop 0``, the full image as SR papers report it: mod-cropped to the top-left
(H - H % s) x (W - W % s) (KAIR/DPIR's ``modcrop``), degraded by ``SuperResolution.bicubic(s)`` (MATLAB imresize's antialiased bicubic, circular
borders) or ``SuperResolution.gaussian(s)`` (Gaussian of std = s high-resolution pixels, deepinv's
default width), s = 2, 3, 4, then AWGN of std sigma = 0 or 2.55/255 from
torch.Generator().manual_seed(0) (no 8-bit rounding of y, as DPIR's SR script).

Methods: ``upsample``, the bicubic-upsampling baseline ``A.upsample(y)``, and ``hqs``,
``pnpfast.solve(y, A, D, "hqs", sigma=sigma)`` with the shipped noise-conditional denoiser and
DPIR's SR recipe (24 iterations, sigma_k down to max(sigma, s/255), x0 = A.upsample(y)). Crops:
every image of both sets runs as one batch per (kernel, s, sigma). Full images: Set5, then Set14
(so that an interrupted run leaves whole sets), one batch per size after the mod-crop (equal
sizes grouped, e.g. Set14's five 512x512 images). ``deepinv-hqs``: deepinv's HQS
(``optim_builder(iteration="HQS")``, imported through deepinv_compat.py, which stubs torchvision
where it cannot load) on the same y with ``Downsampling(filter=A's kernel, padding="circular")``,
the same denoiser, the same x0 and DPIR's schedule written as its ``stepsize`` (1 / alpha_k) and
``g_param`` (sigma_k) lists: the same algorithm, so it should give the same numbers; its rows keep ``vs_hqs_db``, the larger of
|RGB PSNR - hqs's| and |Y PSNR - hqs's| on the same image and problem (when hqs ran in the call).

PSNR (peak 1) of the output clamped to [0, 1] and rounded to 8-bit levels (DPIR's uint8 output),
with s pixels shaved off every border as is customary in SR, on RGB and on Y (ITU-R BT.601 luma
of MATLAB's rgb2ycbcr: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255). Rows (columns
``COLUMNS``; ``crop`` 0 marks full images, ``height`` x ``width`` is the size measured, before the
shave) are appended to benchmarks/results/sr_quality.jsonl after each batch, so a crash loses
nothing and ``--resume`` skips the (image, problem) pairs whose rows are all there. The table of
means per set, from the latest row of every (image, problem, method) in that file, goes to
README.md between the ``sr-quality`` markers (not with ``--quick``): the full-image rows when there
are any, the crop rows otherwise, whatever ``--crop`` this run had.

    python benchmarks/quality_sr.py [--crop 120 | --crop 0] [--methods upsample,hqs,deepinv-hqs]
        [--resume] [--quick]
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
    "height",
    "width",
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
    "batch_size",
    "vs_hqs_db",
    "deepinv",
    "device",
    "torch",
    "triton",
    "cuda",
    "git_sha",
    "timestamp",
)


def modcrop(x: torch.Tensor, s: int) -> torch.Tensor:
    """The top-left (H - H % s) x (W - W % s) of x (KAIR/DPIR's modcrop), so that s divides both."""
    H, W = x.shape[-2:]
    return x[..., : H - H % s, : W - W % s]


def load_sets(
    crop: int, s: int, sets: tuple[str, ...] = SETS, per_set: int | None = None
) -> list[tuple[torch.Tensor, list[tuple[str, str]]]]:
    """Batches ([N, 3, H, W] float64 clean images, their (set, image name)) of ``sets`` in order:
    with crop > 0 one batch of the crop x crop centre crops; with crop == 0 the full images
    mod-cropped to a multiple of s, one batch per size (first appearance order)."""
    groups: dict[tuple[int, int], tuple[list, list]] = {}
    for name in sets:
        paths = sorted((DATA / "images" / name).glob("*.png"))[:per_set]
        for p in paths:
            x = read_image(p).double()
            x = harness.centre_crop(x, crop) if crop else modcrop(x, s)
            images, names = groups.setdefault((0, 0) if crop else tuple(x.shape[-2:]), ([], []))
            images.append(x.expand(1, 3, -1, -1) if x.shape[1] == 1 else x)
            names.append((name, p.stem))
    return [(torch.cat(images), names) for images, names in groups.values()]


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
    rows, scores = [], {}
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
        scores[method] = torch.stack([rgb, y_], 1)
        for i, (dataset, image) in enumerate(names):
            row = {
                **common,
                "dataset": dataset,
                "image": image,
                "height": x.shape[-2],
                "width": x.shape[-1],
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
                "batch_size": len(names),
            }
            rows.append({c: row.get(c) for c in COLUMNS})
    if "hqs" in scores and "deepinv-hqs" in scores:
        gaps = (scores["deepinv-hqs"] - scores["hqs"]).abs().amax(1)
        them = [r for r in rows if r["method"] == "deepinv-hqs"]
        for r, gap in zip(them, gaps.tolist(), strict=True):
            r["vs_hqs_db"] = round(gap, 4)
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per (kernel, factor, noise), RGB / Y means per set and method, and per
    set the mean of hqs - deepinv-hqs when both ran; a cell over fewer images than its set has
    in ``rows`` gives its count in brackets."""
    sets = [d for d in SETS if any(r["dataset"] == d for r in rows)]
    methods = list(METHODS)
    if {"hqs", "deepinv-hqs"} <= {r["method"] for r in rows}:
        methods.append("hqs - deepinv-hqs")
    head = [f"{d} {m}" for d in sets for m in methods]
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
            images = len({r["image"] for r in rows if r["dataset"] == d})
            sel = {
                m: {
                    r["image"]: r
                    for r in rows
                    if (r["kernel"], r["factor"], r["noise_255"], r["dataset"], r["method"])
                    == (kernel, s, noise, d, m)
                }
                for m in METHODS
            }
            for m in methods:
                if m == "hqs - deepinv-hqs":
                    both = sel["hqs"].keys() & sel["deepinv-hqs"].keys()
                    pairs = [(sel["hqs"][i], sel["deepinv-hqs"][i]) for i in sorted(both)]
                    rgb = [a["psnr_rgb"] - b["psnr_rgb"] for a, b in pairs]
                    y = [a["psnr_y"] - b["psnr_y"] for a, b in pairs]
                    fmt = "{:+.3f} / {:+.3f}"
                else:
                    rgb = [r["psnr_rgb"] for r in sel[m].values()]
                    y = [r["psnr_y"] for r in sel[m].values()]
                    fmt = "{:.2f} / {:.2f}"
                if not rgb:
                    cells.append("-")
                    continue
                count = f" ({len(rgb)})" if len(rgb) != images else ""
                means = (round(_mean(rgb), 3) + 0.0, round(_mean(y), 3) + 0.0)  # no -0.000
                cells.append(fmt.format(*means) + count)
        lines.append(f"| {kernel} | {s} | {noise} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latest(rows: list[dict], crop: int) -> list[dict]:
    """The latest row per (dataset, image, kernel, factor, noise, method) at this crop size
    (0: full images)."""
    keep = {}
    for r in rows:
        if r.get("task") == "sr" and r.get("crop") == crop:
            key = tuple(r[k] for k in ("dataset", "image", "kernel", "factor", "noise_255"))
            keep[(*key, r["method"])] = r
    return list(keep.values())


def image_gaps(rows: list[dict]) -> dict[tuple[str, str], tuple[float, int]]:
    """Per (set, image): the largest |hqs - deepinv-hqs| PSNR gap (RGB or Y) over its problems
    where both ran, and how many problems that is."""
    key = ("dataset", "image", "kernel", "factor", "noise_255")
    ours = {tuple(r[k] for k in key): r for r in rows if r["method"] == "hqs"}
    theirs = {tuple(r[k] for k in key): r for r in rows if r["method"] == "deepinv-hqs"}
    gaps: dict[tuple[str, str], tuple[float, int]] = {}
    for c in sorted(ours.keys() & theirs.keys(), key=lambda c: (SETS.index(c[0]), c)):
        gap = max(abs(ours[c][m] - theirs[c][m]) for m in ("psnr_rgb", "psnr_y"))
        old, n = gaps.get(c[:2], (0.0, 0))
        gaps[c[:2]] = (max(old, gap), n + 1)
    return gaps


def readme_block(rows: list[dict], note: str = "") -> str:
    """The README table with lines saying what it covers, how long it took and how far pnpfast's
    HQS is from deepinv's on the same problems, image by image; ``note`` ends the text."""
    seconds: dict[str, float] = {}  # method -> restoration time, each batch counted once
    for r in rows:
        seconds[r["method"]] = seconds.get(r["method"], 0.0) + r["batch_seconds"] / r.get(
            "batch_size", 1
        )
    counts = ", ".join(
        f"{len({r['image'] for r in rows if r['dataset'] == d})} {d}"
        for d in SETS
        if any(r["dataset"] == d for r in rows)
    )
    r0 = rows[0]
    crop = r0["crop"]
    if crop:
        what = f"{crop}x{crop} centre crops, not the full images, for the 2-core CPU"
    else:
        what = "full images, each mod-cropped to the top-left multiple of s as KAIR/DPIR's modcrop"
    shas = ", ".join(sorted({r["git_sha"] for r in rows}))
    devices = ", ".join(sorted({r["device"] for r in rows}))
    batches = len({(r["timestamp"], r["kernel"], r["factor"], r["noise_255"]) for r in rows})
    times = ", ".join(f"{m} {v:.0f} s" for m, v in seconds.items())
    text = (
        f"Mean PSNR (dB) RGB / Y over {counts} images ({what}), s pixels shaved per border, "
        f"8-bit rounded outputs; {len(rows)} rows from {batches} runs of (kernel, s, noise). "
        f"Measured on {devices} (torch {r0['torch']}, git {shas}); restoration time for the "
        f"whole table: {times}."
    )
    gaps = image_gaps(rows)
    if gaps:
        worst = max(g for g, _ in gaps.values())
        per_image = ", ".join(f"{image} {g:.3f}" for (_, image), (g, _) in gaps.items())
        problems = sorted({n for _, n in gaps.values()})
        text += (
            f" deepinv-hqs: deepinv {r0['deepinv']}'s HQS (optim_builder, Downsampling with the "
            "same kernel and circular padding, the same denoiser, DPIR's schedule as its "
            "stepsize / g_param lists, the same x0). Largest |hqs - deepinv-hqs| (RGB or Y, dB) "
            f"per image over its {'/'.join(map(str, problems))} problems: {per_image}; "
            f"{worst:.3f} dB at most over {sum(n for _, n in gaps.values())} (image, problem)."
        )
    else:
        text += " deepinv-hqs: not run (no rows; `--methods deepinv-hqs` adds them)."
    text += note
    return format_table(rows) + "\n\n" + textwrap.fill(text, 100, break_on_hyphens=False)


def done_keys(rows: list[dict], crop: int) -> set[tuple]:
    """(dataset, image, kernel, factor, noise, method) with a row at this crop size."""
    key = ("dataset", "image", "kernel", "factor", "noise_255", "method")
    return {tuple(r[k] for k in key) for r in latest(rows, crop)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--crop",
        type=int,
        default=None,
        help="centre crop size, a multiple of 12 (default 120, 24 with --quick), or 0: the full "
        "images mod-cropped to a multiple of s",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=str(harness.results_path("sr_quality")))
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 image per set, 24x24 crops (unless --crop), bicubic x2 at noise 0 and "
        "2.55, 2 HQS iterations, no README update",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip the (image, problem) pairs that already have a row of every method in --out",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (the table merges the latest rows "
        "of every method in --out)",
    )
    parser.add_argument("--max-iter", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.crop is None:
        args.crop = 24 if args.quick else 120
    if args.crop < 0 or args.crop % 12:
        parser.error(
            f"--crop must be 0 (full images) or a positive multiple of 12 (x2, x3, x4), "
            f"not {args.crop}"
        )
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, not {args.threads}")
        torch.set_num_threads(args.threads)
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
        args.max_iter, kernels, factors, per_set = 2, ("bicubic",), (2,), 1

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
    done = done_keys(harness.read_jsonl(out), args.crop) if args.resume else set()
    # full images: one set after the other, so that a run cut short leaves whole sets
    parts = [(d,) for d in SETS] if args.crop == 0 else [SETS]
    t0 = time.perf_counter()
    for sets in parts:
        for kernel in kernels:
            for s in factors:
                batches = load_sets(args.crop, s, sets, per_set)
                for noise in NOISE_LEVELS:
                    for x, names in batches:
                        todo = [
                            i
                            for i, (d, image) in enumerate(names)
                            if any(
                                (d, image, kernel, s, noise, m) not in done for m in args.methods
                            )
                        ]
                        if not todo:
                            continue
                        x, names = x[todo], [names[i] for i in todo]
                        level = run_problem(x, names, kernel, s, noise, denoiser, args, common)
                        with out.open("a") as f:  # each batch is saved as soon as it is done
                            f.writelines(json.dumps(r) + "\n" for r in level)
                        size = f"{len(names)} x {x.shape[-2]}x{x.shape[-1]}"
                        print(f"{size}: " + format_table(level).splitlines()[-1], flush=True)
    seconds = time.perf_counter() - t0
    print(f"{seconds:.0f} s for this run")
    rows = harness.read_jsonl(out)
    if latest(rows, args.crop):
        print(readme_block(latest(rows, args.crop)))
    if not args.quick:
        shown, note = latest(rows, 0), ""  # full images when there are any
        crops = sorted({r["crop"] for r in rows if r.get("task") == "sr" and r.get("crop")})
        if shown and crops:
            note = (
                f" The centre-crop rows ({', '.join(f'{c}x{c}' for c in crops)}, `--crop N`) stay "
                f"in {out.name}; this table shows the full images once they have rows."
            )
        shown = shown or latest(rows, args.crop)
        if not report.update_readme(args.readme, readme_block(shown, note), start=START, end=END):
            print(f"{args.readme}: no {START} ... {END} block, README not updated", file=sys.stderr)
            return 1
        print(f"updated the sr-quality block of {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

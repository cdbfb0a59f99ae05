"""Production restoration speed (issue 21): ``pnpfast.restore`` on a folder against a one-image
``pnpfast.solve`` loop and deepinv's DPIR loop, the scaling with torchrun ranks, and a GPU model.

Problem (built in a temporary folder, ``--keep DIR`` keeps it): the first ``--images`` (16)
images of CBSD68 (sorted by name; ``../shared/data/images/CBSD68``), centre-cropped to
``--crop`` (128) pixels, image i blurred by Levin kernel ``levin09_k{i % 8 + 1}.npy`` (circular
convolution, ``pnpfast.operators.Blur``), plus white Gaussian noise of std 7.65/255 (seed
``1000 + i``), written as 8-bit PNG into ``src/`` with a CSV manifest ``manifest.csv``
(``path,kernel``: each image its kernel file). A second manifest ``manifest27.csv`` gives the
same kernels zero-padded to 27x27 about their centre (the same circular blur: every Levin kernel
has odd sides) in ``kernels27/``.

Measured variants (``--variants``), every one reading the PNGs, restoring with HQS at its
defaults (8 iterations, sigma from 49/255 down to the noise level, lam 0.23) and the shipped
noise-conditional DRUNet (``pnpfast.denoisers.load()``), writing 8-bit PNGs:

    restore/batch8            pnpfast.restore([src], out, RunConfig(task="deblur", noise=7.65,
                              batch_size=8), manifest=manifest.csv): on the CPU the runner
                              groups images by kernel size, so the 8 Levin sizes give batches
                              of 2 to 4 (a GPU mixes them); it reads the next window and
                              writes the last batch in threads while it solves
    restore/batch8/kernels27  the same with manifest27.csv: one kernel size, batches of 8
    restore/batch1            batch_size=1
    solve-loop                for each manifest row: read_image_file, pnpfast.solve(y, Blur(k),
                              D, "hqs", sigma=7.65/255), write_image_file (the baseline)
    deepinv-dpir-loop         for each row: read_image_file, deepinv.physics.BlurFFT with the
                              kernel, deepinv.optim.DPIR(sigma=7.65/255, denoiser=
                              pnpfast.interop.deepinv.PnpfastDenoiser(D)), write_image_file;
                              deepinv's DPIR schedule is the same recipe (8 iterations, sigma
                              logspace 49/255 -> noise, stepsize sigma_k^2 / (0.23 noise^2))

On ``--device cuda`` (default cpu) every variant runs on the GPU (restore's
``RunConfig(device="cuda")``; the loops' images, kernels, physics and denoiser moved there),
and by default these are measured too (any device takes them through ``--variants``):

    restore/batch32           batch_size=32
    restore/batchauto         batch_size="auto" (the row's ``auto_batch``: the size chosen)
    restore/batch8/bf16+channels_last
                              batch_size=8, precision="bf16", channels_last=True: the
                              denoiser's network in bfloat16 under autocast, NHWC; its PSNR
                              next to fp32's (``psnr_vs_fp32_db``, within 0.1 dB per image)

Each variant runs in a subprocess of its own (``--reps`` times, interleaved): a warm-up on one
image, then the timed run on the folder into a fresh output folder; the timed region includes
loading the denoiser (``restore`` loads it inside). Each row has the median wall time
(``median_ms`` per image, ``images_per_s``, ``speedup_vs_loop``) and the median process CPU
time (``cpu_ms_per_image``, ``cpu_speedup_vs_loop``): with one thread per process the CPU time
is what a shared machine's other work disturbs least. Peak memory is the subprocess's
``ru_maxrss`` (with the size after imports for scale), and on CUDA also
``torch.cuda.max_memory_allocated`` over the timed run (``peak_cuda_bytes``); on CUDA the
child synchronises the device before reading each clock. PSNR: each output file read back,
against the clean 8-bit crop, mean over the images, with the largest per-image difference to
the solve loop (``correct``: within 0.05 dB for the pnpfast fp32 variants, 0.1 dB for deepinv
and bf16) and the mean difference to it (``psnr_vs_fp32_db``: the loop is fp32). Rows'
``device`` is the CPU's or the GPU's name (``harness.device_name``).

Ranks (``--parts ranks``): ``python -m torch.distributed.run --standalone --nproc_per_node=R
-m pnpfast restore src -o out --manifest manifest.csv --noise 7.65 --batch 8`` for R = 1, 2
(gloo, CPU, OMP_NUM_THREADS=1 per rank): the wall time of the whole command (process start,
imports, rendezvous included), the slowest rank's library time from its report, and the CPU
time of all the processes (``RUSAGE_CHILDREN``). On CUDA (``--device cuda``: NCCL, one GPU per
rank) only the ranks the machine has GPUs for run (one on the lent machines; the others are
left out with the reason on stderr and in the 1-rank row's note), and the reports' peak is
CUDA's (``peak_cuda_bytes``).

Model (``--parts model``, rows marked modelled): per-image time of HQS at 256x256 on an H200
(``perf_model.H200``: 4.3 TB/s copy bandwidth, 2 us per launch) at batch B,

    compute(B) = 8 max(host(B), device(B)) + setup ops * HOST_US_PER_OP
    device(B)  = sum over the denoiser's layers of max(flops / (EFF * TF32 * waves), bytes / bw)
                 + launches * 2 us + perf_model's prox_l2_fft (B, 3, 256, 256)
    host(B)    = ops per iteration * HOST_US_PER_OP (eager PyTorch dispatch + cudaLaunchKernel)

with the layer list, FLOPs and bytes counted on the meta device, the ops of an iteration
counted with a dispatch mode on a tiny CPU solve, ``waves`` the wave quantisation of 128x128
output tiles over 132 SMs, and ``read``, ``write`` a 256x256 PNG's read and atomic write
measured here (fastest of 10). Three ways to spend a batch (``pipeline`` column):

    before     (I/O in line)  compute(B) + B (read + write); B = 1 is the one-image loop,
                              the baseline of every ratio (a user's loop does its I/O in line)
    pipelined  (restore now)  max(compute(B), ceil(B / W) read / W decoder threads,
                              ceil(B / W) write / W writer threads),
                              W = min(8, (host cores - 1) // 2)
                              (``--model-host-cores``, 16 as the lent GPU machines: W = 7);
                              kernel sizes mix in a GPU batch, so batches are full
    no-io                     compute(B) (the bound if I/O cost nothing; ratio vs compute(1))

Ranks 1..8: round-robin shards of ``--model-images`` (68), ceil(N / R) images on the busiest
rank, each rank its own GPU, batch 8; the pipelined rows simulate the runner's order
(``pipeline_seconds``: the first window of images is read before the first solve, the last
batch's writes follow the last); process start, model load and rendezvous are not modelled.

    python benchmarks/bench_restore.py                            # ~5 minutes on 2 cores
    python benchmarks/bench_restore.py --quick --out /tmp/restore.jsonl
    python benchmarks/bench_restore.py --device cuda --images 64 --crop 256   # gpu_check.sh
"""

import argparse
import csv
import heapq
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import pnpfast

OP = "restore"
MODEL_OP = "restore/modelled"
NOISE_255 = 7.65
SEED = 1000
LEVIN = 8
PAD_TO = 27
VARIANTS = (
    "restore/batch8",
    "restore/batch8/kernels27",
    "restore/batch1",
    "solve-loop",
    "deepinv-dpir-loop",
)
# measured by default on CUDA (module docstring)
CUDA_VARIANTS = ("restore/batch32", "restore/batchauto", "restore/batch8/bf16+channels_last")
ALL_VARIANTS = VARIANTS + CUDA_VARIANTS
BASELINE = "solve-loop"
PARTS = ("measure", "ranks", "model")
DEVICES = ("cpu", "cuda")
# dB; others 0.05. bf16: quality_precision measured per-image differences up to 0.021 dB
PSNR_TOL = {"deepinv-dpir-loop": 0.1, "restore/batch8/bf16+channels_last": 0.1}
PSNR_TOL_DEFAULT = 0.05


@dataclass(frozen=True)
class RestoreVariant:
    """The RunConfig settings of one restore/... variant."""

    batch: int | str  # batch_size: an int or "auto"
    precision: str = "fp32"
    channels_last: bool = False


RESTORE_VARIANTS = {
    "restore/batch8": RestoreVariant(8),
    "restore/batch8/kernels27": RestoreVariant(8),
    "restore/batch1": RestoreVariant(1),
    "restore/batch32": RestoreVariant(32),
    "restore/batchauto": RestoreVariant("auto"),
    "restore/batch8/bf16+channels_last": RestoreVariant(8, "bf16", True),
}

# the GPU model's constants (module docstring)
TF32_PEAK = 494.7e12  # H100/H200 SXM dense TF32 tensor-core FLOP/s (datasheet)
EFF = 0.5  # assumed fraction of it a full wave of cuDNN fp32 (TF32) convolutions reaches
HOST_US_PER_OP = 8.0  # assumed host cost of one eager op on CUDA (dispatch + launch)
TILE = 128  # output pixels x output channels per conv tile in the wave model
MODEL_SIZE = 256
MODEL_BATCHES = (1, 8, 32)
MODEL_RANKS = tuple(range(1, 9))
MODEL_IMAGES = 68
MODEL_HOST_CORES = 16  # the lent H100/H200 machines: 8 writer threads


# ---------------------------------------------------------------------------------------------
# the folder


def pad_kernel(k: np.ndarray, size: int) -> np.ndarray:
    """``k`` (odd sides) zero-padded to size x size about its centre."""
    h, w = k.shape
    if h % 2 == 0 or w % 2 == 0 or h > size or w > size:
        raise ValueError(f"kernel {h}x{w} cannot be centred in {size}x{size}")
    out = np.zeros((size, size), dtype=k.dtype)
    i, j = (size - h) // 2, (size - w) // 2
    out[i : i + h, j : j + w] = k
    return out


def build_folder(root: Path, images: int, crop: int) -> dict:
    """The degraded folder, the clean crops, the kernels and the manifests (module docstring)."""
    from pnpfast.io import read_image_file, write_image_file
    from pnpfast.operators import Blur

    names = sorted((harness.DATA / "images" / "CBSD68").glob("*.png"))[:images]
    if len(names) < images:
        raise SystemExit(f"only {len(names)} CBSD68 images under {harness.DATA}")
    levin = harness.DATA / "kernels" / "levin09"
    for sub in ("src", "clean", "kernels27", "warm"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    kernels = []
    for j in range(1, LEVIN + 1):
        k = np.load(levin / f"levin09_k{j}.npy")
        np.save(root / "kernels27" / f"levin09_k{j}.npy", pad_kernel(k, PAD_TO))
        kernels.append(k)
    rows, rows27 = [], []
    for i, path in enumerate(names):
        x = harness.centre_crop(read_image_file(path).pixels, crop)
        j = i % LEVIN + 1
        g = torch.Generator().manual_seed(SEED + i)
        blurred = Blur(torch.from_numpy(kernels[j - 1]))(x)
        y = blurred + NOISE_255 / 255 * torch.randn(blurred.shape, generator=g)
        write_image_file(root / "clean" / path.name, x)
        write_image_file(root / "src" / path.name, y)
        rows.append((f"src/{path.name}", str(levin / f"levin09_k{j}.npy")))
        rows27.append((f"src/{path.name}", f"kernels27/levin09_k{j}.npy"))
    for name, table in (("manifest.csv", rows), ("manifest27.csv", rows27)):
        with open(root / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("path", "kernel"))
            w.writerows(table)
    # the warm-up folder: the first image with its kernel
    shutil.copy(root / "src" / names[0].name, root / "warm" / names[0].name)
    with open(root / "warm" / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "kernel"), (names[0].name, rows[0][1])])
    return {"names": [p.name for p in names], "kernels": [i % LEVIN + 1 for i in range(images)]}


# ---------------------------------------------------------------------------------------------
# one variant, in its own process


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _manifest_rows(manifest: Path) -> list[tuple[Path, Path]]:
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    base = manifest.parent
    return [(base / r["path"], base / r["kernel"]) for r in rows]


def _loop(manifest: Path, out: Path, restore_one, device: str = "cpu") -> None:
    """Each manifest row read, restored on ``device`` and written (a user's loop)."""
    from pnpfast.io import read_image_file, read_kernel, write_image_file

    out.mkdir(parents=True, exist_ok=True)
    for image, kernel in _manifest_rows(manifest):
        f = read_image_file(image)
        x = restore_one(f.pixels.to(device), read_kernel(kernel).to(device))
        write_image_file(out / image.name, x.cpu(), bit_depth=f.bit_depth)


def _variant_fn(name: str, device: str = "cpu"):
    """fn(src folder, manifest, out folder) -> extra report fields, for the variant ``name``
    on ``device``."""
    sigma = NOISE_255 / 255
    if name in RESTORE_VARIANTS:
        from pnpfast.runner.run import RunConfig, restore

        settings = RESTORE_VARIANTS[name]

        def run(src: Path, manifest: Path, out: Path) -> dict:
            config = RunConfig(
                task="deblur",
                noise=NOISE_255,
                batch_size=settings.batch,
                device=device,
                precision=settings.precision,
                channels_last=settings.channels_last,
            )
            report = restore([src], out, config, manifest=manifest)
            if report.failed or report.done != report.total:
                raise RuntimeError(f"restore failed: {report.failed}")
            return {
                "report_seconds": report.seconds,
                "auto_batch": report.auto_batch or None,
                "fp32_reruns": len(report.fp32_reruns),
            }

        return run
    if name == "solve-loop":
        from pnpfast.operators import Blur

        def run(src: Path, manifest: Path, out: Path) -> dict:
            den = pnpfast.denoisers.load(device=device)

            def one(y, k):
                return pnpfast.solve(y, Blur(k), den, "hqs", sigma=sigma).x

            _loop(manifest, out, one, device)
            return {}

        return run
    if name == "deepinv-dpir-loop":
        from deepinv_compat import import_deepinv

        dinv, note = import_deepinv()
        if dinv is None:
            raise harness.Skip(note)
        import pnpfast.interop.deepinv as interop

        def run(src: Path, manifest: Path, out: Path) -> dict:
            den = interop.PnpfastDenoiser(pnpfast.denoisers.load(device=device))
            model = dinv.optim.DPIR(sigma=sigma, denoiser=den, device=device)

            def one(y, k):
                # BlurFFT(filter=k) is pnpfast's Blur(k) (checked by deepinv_forward_matches)
                physics = dinv.physics.BlurFFT(
                    img_size=tuple(y.shape[1:]), filter=k[None, None], device=device
                )
                with torch.no_grad():
                    return model(y, physics)

            _loop(manifest, out, one, device)
            return {"deepinv": dinv.__version__, "deepinv_note": note}

        return run
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(ALL_VARIANTS)}")


def _sync(device: str) -> None:
    """Wait for the GPU's queued work, so that a clock read next sees it done."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def child(args: argparse.Namespace) -> int:
    """``--child VARIANT``: warm up on one image, time the folder, print one JSON line."""
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    rss_imports = _rss_now()
    cuda = torch.device(args.device).type == "cuda"
    try:
        fn = _variant_fn(args.child, args.device)
    except harness.Skip as skip:
        print(json.dumps({"skip": str(skip)}))
        return 0
    manifest = root / ("manifest27.csv" if args.child.endswith("kernels27") else "manifest.csv")
    work = Path(tempfile.mkdtemp(prefix="warm-", dir=root))
    fn(root / "warm", root / "warm" / "manifest.csv", work)
    shutil.rmtree(work)
    out = Path(args.child_out)
    if cuda:
        torch.cuda.reset_peak_memory_stats(args.device)  # the timed run's peak, not the warm-up's
    _sync(args.device)
    t0, c0 = time.perf_counter(), time.process_time()
    extra = fn(root / "src", manifest, out)
    _sync(args.device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss": _peak_rss(),
        "rss_after_imports": rss_imports,
        "threads": torch.get_num_threads(),
        **extra,
    }
    if cuda:
        result["peak_cuda"] = int(torch.cuda.max_memory_allocated(args.device))
    print(json.dumps(result))
    return 0


def deepinv_forward_matches(shape=(1, 3, 40, 36)) -> str:
    """'' when deepinv's BlurFFT(filter=k) equals pnpfast's Blur(k) on a random image with an
    asymmetric Levin kernel, else why not (the deepinv loop would solve another problem)."""
    from deepinv_compat import import_deepinv

    from pnpfast.operators import Blur

    dinv, note = import_deepinv()
    if dinv is None:
        return f"deepinv unavailable: {note}"
    k = torch.from_numpy(np.load(harness.DATA / "kernels" / "levin09" / "levin09_k4.npy"))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    ours = Blur(k)(x)
    theirs = dinv.physics.BlurFFT(img_size=tuple(shape[1:]), filter=k[None, None]).A(x)
    ok, err = harness.check_close(theirs, ours, 1e-5)
    return "" if ok else f"deepinv BlurFFT differs from pnpfast Blur: max rel err {err:.1e}"


def dpir_schedule_diff(sigma: float = NOISE_255 / 255) -> float | None:
    """The largest relative difference between deepinv's DPIR schedule (``get_DPIR_params``:
    sigma_k and stepsize_k) and pnpfast's HQS at its defaults (``HQS.at(k)``: sigma_k and
    gamma_k) for noise ``sigma``; None without deepinv or when the iteration counts differ."""
    from types import SimpleNamespace

    from deepinv_compat import import_deepinv

    from pnpfast.operators import Blur
    from pnpfast.solvers.splitting import HQS, HQSParams

    dinv, _ = import_deepinv()
    if dinv is None:
        return None
    theirs_sigma, theirs_step, iters = dinv.optim.dpir.get_DPIR_params(sigma)
    if iters != HQS.default_max_iter:
        return None
    y = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    problem = SimpleNamespace(
        batch=1,
        y=y,
        sigma=torch.tensor([sigma], dtype=torch.float64),
        data=SimpleNamespace(operator=Blur(torch.ones(1, 1))),
    )
    hqs = HQS(HQSParams(), iters)
    hqs.schedule(problem)
    worst = 0.0
    for k in range(iters):
        ours_sigma, ours_gamma = (float(t[0]) for t in hqs.at(k))
        worst = max(
            worst,
            abs(ours_sigma / float(theirs_sigma[k]) - 1),
            abs(ours_gamma / float(theirs_step[k]) - 1),
        )
    return worst


# ---------------------------------------------------------------------------------------------
# the measured part


def _psnrs(out: Path, root: Path, names: list[str]) -> list[float]:
    from pnpfast.io import read_image_file
    from pnpfast.metrics import psnr

    values = []
    for name in names:
        x = read_image_file(out / name).pixels
        ref = read_image_file(root / "clean" / name).pixels
        values.append(float(psnr(x, ref)[0]))
    return values


def _child_env(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_child(variant: str, root: Path, out: Path, threads: int, device: str = "cpu") -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--root", str(root)]
    cmd += ["--child-out", str(out), "--threads", str(threads), "--device", device]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(threads))
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(
    provider, shape, seconds: list[float], images: int, correct: bool, note, device="cpu", **extra
):
    t = harness.timing_from_samples([s * 1e3 / images for s in seconds])
    row = harness.make_row(
        op=extra.pop("op", OP),
        provider=provider,
        shape=shape,
        dtype=torch.float32,
        timing=t,
        nbytes=None,
        device=device,
        correct=correct,
        note="; ".join(n for n in (note, harness.load_note(device)) if n),
    )
    wall = statistics.median(seconds)
    return {
        **row,
        "modelled": False,
        "images": images,
        "reps": len(seconds),
        "wall_s": wall,
        "images_per_s": images / wall,
        **extra,
    }


def measure_part(args, root: Path, info: dict) -> list[dict]:
    names = info["names"]
    n = len(names)
    variants = list(args.variants)
    shape = (n, 3, args.crop, args.crop)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    psnrs: dict[str, list[float]] = {}
    skipped: dict[str, str] = {}
    for rep in range(args.reps):
        for j in range(len(variants)):
            v = variants[(rep + j) % len(variants)]
            if v in skipped:
                continue
            out = root / "out" / f"{v.replace('/', '_')}-{rep}"
            r = run_child(v, root, out, args.threads, args.device)
            if "skip" in r:
                skipped[v] = r["skip"]
                print(f"  skip {v}: {r['skip']}", file=sys.stderr)
                continue
            results[v].append(r)
            psnrs[v] = _psnrs(out, root, names)
            print(f"  {v} rep {rep}: {r['wall_s']:.2f} s", flush=True)
    input_psnr = statistics.fmean(_psnrs(root / "src", root, names))
    schedule = dpir_schedule_diff() if "deepinv-dpir-loop" in results else None
    base = psnrs.get(BASELINE)
    base_psnr = statistics.fmean(base) if base else None
    base_wall = statistics.median(r["wall_s"] for r in results[BASELINE]) if base else None
    base_cpu = statistics.median(r["cpu_s"] for r in results[BASELINE]) if base else None
    rows = []
    for v in variants:
        if not results[v]:
            continue
        walls = [r["wall_s"] for r in results[v]]
        cpu = statistics.median(r["cpu_s"] for r in results[v])
        mean_psnr = statistics.fmean(psnrs[v])
        diff = (
            None if base is None else max(abs(a - b) for a, b in zip(psnrs[v], base, strict=True))
        )
        tol = PSNR_TOL.get(v, PSNR_TOL_DEFAULT)
        correct = diff is not None and diff <= tol
        last = results[v][-1]
        settings = RESTORE_VARIANTS.get(v)
        if v == "deepinv-dpir-loop":
            note_v = "deepinv's DPIR: 8 iterations, its own get_DPIR_params schedule, " + (
                "unknown vs pnpfast's"
                if schedule is None
                else f"equal to pnpfast's HQS defaults to {schedule:.1e} (sigma_k, stepsize_k); "
            )
        elif settings is not None and settings.batch == "auto":
            note_v = f"batch auto: {last.get('auto_batch')}; "
        else:
            note_v = ""
        vs_fp32 = None if base_psnr is None else mean_psnr - base_psnr
        if settings is not None and settings.precision != "fp32":
            note_v += (
                f"denoiser in {settings.precision}"
                + (" channels_last" if settings.channels_last else "")
                + f": mean PSNR {mean_psnr:.3f} dB vs fp32 (solve-loop) {base_psnr:.3f} dB, "
                f"{vs_fp32:+.4f} dB; {last.get('fp32_reruns', 0)} image(s) rerun in fp32; "
            )
        ratio = base_wall / statistics.median(walls) if base_wall else None
        note = note_v + (
            f"CBSD68 first {n} images centre-cropped {args.crop}x{args.crop}, Levin kernel "
            f"i%8, noise {NOISE_255}/255; HQS defaults, shipped DRUNet; "
            f"{last['threads']} torch thread(s); mean PSNR {mean_psnr:.2f} dB (input "
            f"{input_psnr:.2f}); max per-image |PSNR - solve-loop| "
            + ("-" if diff is None else f"{diff:.3f} dB")
        )
        rows.append(
            _row(
                v,
                shape,
                walls,
                n,
                correct,
                note,
                device=args.device,
                threads=last["threads"],
                psnr=mean_psnr,
                psnr_input=input_psnr,
                psnr_max_diff_vs_loop=diff,
                psnr_fp32=base_psnr,
                psnr_vs_fp32_db=vs_fp32,
                speedup_vs_loop=ratio,
                cpu_s=cpu,
                cpu_ms_per_image=cpu * 1e3 / n,
                cpu_speedup_vs_loop=base_cpu / cpu if base_cpu else None,
                peak_rss_bytes=max(r["peak_rss"] for r in results[v]),
                peak_cuda_bytes=max((r.get("peak_cuda") or 0) for r in results[v]) or None,
                rss_after_imports_bytes=last["rss_after_imports"],
                seconds_phases=last.get("report_seconds"),
                schedule_max_rel_diff=schedule if v == "deepinv-dpir-loop" else None,
                batch=None if settings is None else settings.batch,
                precision="fp32" if settings is None else settings.precision,
                channels_last=settings is not None and settings.channels_last,
                auto_batch=last.get("auto_batch"),
                fp32_reruns=last.get("fp32_reruns"),
            )
        )
    return rows


def _children_cpu() -> float:
    """User + system seconds of the waited-for child processes (and theirs) so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rank_counts(device: str, gpus: int) -> tuple[tuple[int, ...], str]:
    """(the torchrun rank counts to measure, why others are left out): 1 and 2 on the CPU; on
    CUDA those with a GPU each (``gpus``), since NCCL takes one GPU per rank."""
    if device == "cpu":
        return (1, 2), ""
    counts = tuple(r for r in (1, 2) if r <= gpus)
    if len(counts) == 2:
        return counts, ""
    r = len(counts) + 1
    return counts, f"{r} ranks need {r} GPUs (one per rank), this machine has {gpus}"


def ranks_part(args, root: Path, info: dict) -> list[dict]:
    names = info["names"]
    n = len(names)
    rows = []
    base = None
    cuda = args.device == "cuda"
    # device_count asks the driver without creating a CUDA context in this process
    counts, left_out = rank_counts(args.device, torch.cuda.device_count() if cuda else 0)
    if left_out:
        print(f"  torchrun: left out: {left_out}", file=sys.stderr)
    for ranks in counts:
        walls, lib, peaks, cpus = [], [], [], []
        psnrs = None
        for rep in range(args.reps):
            out = root / "out" / f"ranks{ranks}-{rep}"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            cmd += [f"--nproc_per_node={ranks}", "-m", "pnpfast", "restore", str(root / "src")]
            cmd += ["-o", str(out), "--manifest", str(root / "manifest.csv"), "--noise"]
            cmd += [str(NOISE_255), "--batch", "8", "--no-progress", "--device", args.device]
            t0, c0 = time.perf_counter(), _children_cpu()
            done = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(1))
            walls.append(time.perf_counter() - t0)
            cpus.append(_children_cpu() - c0)
            if done.returncode != 0:
                raise RuntimeError(f"torchrun {ranks} failed:\n{done.stderr[-3000:]}")
            reports = [json.loads(p.read_text()) for p in out.glob("restore-report.rank*.json")]
            if not reports:
                reports = [json.loads((out / "restore-report.json").read_text())]
            lib.append(max(r["seconds"]["total"] for r in reports))
            peaks.append(max(r["peak_memory_bytes"] for r in reports))
            psnrs = _psnrs(out, root, names)
            print(f"  torchrun {ranks} rank(s) rep {rep}: {walls[-1]:.2f} s", flush=True)
        wall = statistics.median(walls)
        base = base or wall
        rows.append(
            _row(
                f"torchrun/ranks{ranks}",
                (n, 3, args.crop, args.crop),
                walls,
                n,
                True,
                ("nccl, one GPU per rank" if cuda else "gloo")
                + ", 1 torch thread per rank, batch 8, kernels as given; wall of the whole "
                f"command (start, imports, rendezvous); slowest rank's library time "
                f"{statistics.median(lib):.2f} s; mean PSNR {statistics.fmean(psnrs):.2f} dB"
                + (f"; left out: {left_out}" if left_out and ranks == 1 else ""),
                device=args.device,
                threads=1,
                ranks=ranks,
                psnr=statistics.fmean(psnrs),
                library_s=statistics.median(lib),
                library_images_per_s=n / statistics.median(lib),
                speedup_vs_1_rank=base / wall,
                cpu_s=statistics.median(cpus),
                cpu_ms_per_image=statistics.median(cpus) * 1e3 / n,
                # the reports' peak: CUDA's max_memory_allocated on a GPU, else the RSS
                peak_rss_bytes=None if cuda else max(peaks),
                peak_cuda_bytes=max(peaks) if cuda else None,
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# the GPU model


_NO_KERNEL = {
    "view",
    "_unsafe_view",
    "reshape",
    "as_strided",
    "t",
    "transpose",
    "permute",
    "expand",
    "unsqueeze",
    "squeeze",
    "select",
    "slice",
    "detach",
    "alias",
    "lift_fresh",
    "empty",
    "empty_like",
    "empty_strided",
    "view_as_real",
    "view_as_complex",
    "_reshape_alias",
    "unbind",
    "split",
    "chunk",
    "is_same_size",
    "_local_scalar_dense",
    "resolve_conj",
    "resolve_neg",
    "_conj",
}


def count_ops(fn) -> int:
    """The aten ops that ``fn()`` dispatches and that launch a kernel on CUDA (views, empty
    allocations and metadata ops are left out)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, a=(), kw=None):
            if func.overloadpacket.__name__.rstrip("_") not in _NO_KERNEL:
                Count.n += 1
            return func(*a, **(kw or {}))

    with Count():
        fn()
    return Count.n


def hqs_ops(den) -> tuple[int, int]:
    """(ops per HQS iteration, ops per solve call besides its iterations) of a solve with
    ``den``, counted on a 1x3x16x16 CPU problem."""
    from pnpfast.operators import Blur

    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    k = torch.ones(3, 3) / 9

    def solve(iters):
        return lambda: pnpfast.solve(y, Blur(k), den, "hqs", sigma=0.03, max_iter=iters)

    with torch.no_grad():
        one, two = count_ops(solve(1)), count_ops(solve(2))
    return two - one, one - (two - one)


def denoiser_layers(den, batch: int, size: int, probe: int = 32) -> list[tuple]:
    """(flops, bytes, output pixels, output channels) of every leaf module of one call of
    ``den`` on [batch, 3, size, size] float32: counted by hooks on a [1, 3, probe, probe] CPU
    call and scaled by batch * (size / probe)^2 (the network is fully convolutional), except
    the weights' bytes. FLOPs: 2 per multiply-add of a convolution; bytes: each leaf's inputs,
    output and weights."""
    net = den.network(3) if hasattr(den, "network") else den
    probed = []

    def hook(module, inputs, out):
        tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
        act = sum(t.numel() * 4 for t in tensors) + out.numel() * 4
        weights = sum(p.numel() * 4 for p in module.parameters(recurse=False))
        flops = 0
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            flops = 2 * (module.in_channels // module.groups) * kh * kw * out.numel()
        elif isinstance(module, torch.nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            x = tensors[0]
            flops = 2 * x.shape[1] * module.out_channels * kh * kw * x[:, 0].numel()
        pixels = out.shape[0] * out.shape[2] * out.shape[3] if out.dim() == 4 else out.numel()
        probed.append((flops, act, weights, pixels, out.shape[1] if out.dim() == 4 else 1))

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        x = torch.rand(1, 3, probe, probe, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            net(x, 0.1)
    finally:
        for h in handles:
            h.remove()
    scale = batch * (size / probe) ** 2
    return [
        (round(f * scale), round(a * scale) + w, round(p * scale), c) for f, a, w, p, c in probed
    ]


def layer_seconds(flops: int, nbytes: int, pixels: int, channels: int, device) -> float:
    """One layer on the GPU: max(compute with wave quantisation, memory) + a launch."""
    t_mem = nbytes / device.copy_bw
    if not flops:
        return t_mem + device.launch_s
    tiles = math.ceil(pixels / TILE) * math.ceil(channels / TILE)
    waves = tiles / (math.ceil(tiles / device.sms) * device.sms)
    t_flop = flops / (EFF * TF32_PEAK * waves)
    return max(t_flop, t_mem) + device.launch_s


def io_seconds(size: int, reps: int = 10) -> tuple[float, float]:
    """(read, write): the fastest of ``reps`` read_image_file, and of ``reps`` atomic
    write_image_file, of a size x size 8-bit RGB PNG (the minimum: other work on a shared
    machine only adds to it)."""
    from pnpfast.io import read_image_file, write_image_file

    x = pnpfast.data.astronaut()[..., :size, :size].contiguous()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "a.png"), Path(tmp, "b.png")
        write_image_file(src, x)
        reads, writes = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            y = read_image_file(src).pixels
            t1 = time.perf_counter()
            write_image_file(dst, y)
            writes.append(time.perf_counter() - t1)
            reads.append(t1 - t0)
    return min(reads), min(writes)


def writer_threads(host_cores: int) -> int:
    """The writer threads, and as many decoder threads, ``restore`` starts on a GPU host with
    ``host_cores`` cores (``run._io_threads``: half the cores the solving thread leaves, at
    least 1, at most 8)."""
    return max(1, min(8, (host_cores - 1) // 2))


def read_window(batch: int) -> int:
    """The images ``restore`` reads at a time (its loop: max(2 batch, 64); pixels held under
    1 GiB, which 64 images of 3x256x256 float32 are)."""
    return max(2 * batch, 64)


def shard_max(n: int, ranks: int) -> int:
    """The most images a rank gets under worklist.shard's round robin of n images."""
    return math.ceil(n / ranks)


def rank_seconds(images: int, batch: int, batch_seconds) -> float:
    """One rank's time for ``images`` in batches of ``batch`` (the last one partial), each batch
    taking ``batch_seconds(b)`` with nothing overlapped (I/O in line)."""
    full, rest = divmod(images, batch)
    return full * batch_seconds(batch) + (batch_seconds(rest) if rest else 0.0)


def pipeline_terms(
    b: int, compute: float, read_s: float, write_s: float, writers: int
) -> dict[str, float]:
    """The three stages of a batch of ``b`` images in restore's pipeline, in seconds: compute,
    ceil(b / writers) read_s (the decoders reading ahead) and ceil(b / writers) write_s (the
    writers writing the previous batch); as many decoder threads as writer threads."""
    rounds = math.ceil(b / writers)
    return {"compute": compute, "read": rounds * read_s, "write": rounds * write_s}


def pipeline_steady(b: int, compute: float, read_s: float, write_s: float, writers: int) -> float:
    """Seconds per batch of ``b`` images once restore's pipeline runs full: the slowest of
    ``pipeline_terms``, max(compute, ceil(b / writers) read_s, ceil(b / writers) write_s)."""
    return max(pipeline_terms(b, compute, read_s, write_s, writers).values())


def pipeline_seconds(
    images: int, batch: int, compute, read_s: float, write_s: float, writers: int
) -> float:
    """One rank's wall time for ``images`` under ``restore``'s pipeline on a GPU, simulated as
    ``run.restore`` orders it: a reader reads a window (``read_window``) of images with
    ``writers`` decoder threads, ``read_s`` each, and reads the next window as soon
    as the main thread takes this one; the
    main thread cuts the window into batches of ``batch`` (on a GPU the kernel sizes mix, so
    only the window's end cuts a batch short) and solves each in ``compute(b)`` seconds; a
    solved batch's images go to a pool of ``writers`` threads (``write_s`` each, first come
    first served), and the main thread waits for the previous batch's outputs before it solves
    the next; at the end it waits for the last outputs. So the first window's read and the last
    batch's writes are not hidden (``pipeline_steady`` is the rate in between)."""
    window = read_window(batch)
    free = [0.0] * writers  # when each writer thread is next free (a heap)
    t = 0.0  # the main thread
    read_done = math.ceil(min(window, images) / writers) * read_s
    previous = 0.0  # when the previous batch's outputs are written
    start = 0
    while start < images:
        m = min(window, images - start)
        t = max(t, read_done)
        if start + m < images:
            read_done = t + math.ceil(min(window, images - start - m) / writers) * read_s
        for first in range(0, m, batch):
            b = min(batch, m - first)
            t += compute(b)
            written = t
            for _ in range(b):
                end = max(t, heapq.heappop(free)) + write_s
                heapq.heappush(free, end)
                written = max(written, end)
            t = max(t, previous)
            previous = written
        start += m
    return max(t, previous)


def model_part(args, measured: list[dict]) -> list[dict]:
    import perf_model

    dev = perf_model.H200
    den = pnpfast.denoisers.load()
    per_iter_ops, setup_ops = hqs_ops(den)
    read_s, write_s = io_seconds(MODEL_SIZE)
    io = read_s + write_s
    writers = writer_threads(args.model_host_cores)
    iters = 8

    layers: dict[int, list] = {}

    def compute(b: int) -> float:
        """A solve of b images on the GPU: 8 iterations and the call's set-up."""
        if b == 0:
            return 0.0
        if b not in layers:
            layers[b] = denoiser_layers(den, b, MODEL_SIZE)
        device = sum(layer_seconds(*layer, dev) for layer in layers[b])
        device += perf_model.estimate("prox_l2_fft", (b, 3, MODEL_SIZE, MODEL_SIZE)).seconds
        host = per_iter_ops * HOST_US_PER_OP * 1e-6
        return iters * max(host, device) + setup_ops * HOST_US_PER_OP * 1e-6

    def inline(b: int) -> float:
        """The batch with each image's read and write in line (the loop; restore before)."""
        return compute(b) + b * io

    def steady(b: int) -> float:
        return pipeline_steady(b, compute(b), read_s, write_s, writers)

    base_cpu = next((r for r in measured if r["provider"] == BASELINE), None)
    note = (
        f"modelled, H200 (perf_model: {dev.copy_bw / 1e12:.1f} TB/s, {dev.launch_s * 1e6:.0f} us "
        f"per launch); convs at {EFF:.0%} of {TF32_PEAK / 1e12:.0f} TFLOP/s TF32 x wave "
        f"quantisation of {TILE}x{TILE} tiles on {dev.sms} SMs; host {HOST_US_PER_OP:.0f} us "
        f"per op, {per_iter_ops} ops per iteration, {setup_ops} per solve call (counted); "
        f"PNG read {read_s * 1e3:.1f} ms + atomic write {write_s * 1e3:.1f} ms per image "
        "(fastest of 10 here)"
    )
    if base_cpu is not None:
        where = "CPU" if args.device == "cpu" else base_cpu["device"]
        note += f"; {where} one-image loop here {base_cpu['median_ms']:.0f} ms per image"
    piped = (
        f"pipelined (restore now): per batch max(compute, ceil(B/{writers}) x read by "
        f"{writers} decoder threads, ceil(B/{writers}) x write by {writers} writer threads; "
        f"{writers} = min(8, ({args.model_host_cores} host cores - 1) // 2)); batches of B whatever the kernel sizes (Levin's padded to the "
        "batch's largest: the FFT blur costs the same); host threads assumed not to contend "
        "(main + decoders + writers <= host cores; PNG inflate/deflate release the GIL)"
    )
    modes = {
        "before": "before (I/O in line): read and write of each image after its batch's solve",
        "pipelined": piped,
        "no-io": "compute only (the bound if reading and writing cost nothing)",
    }
    names = {"before": "/before", "pipelined": "", "no-io": "/no-io"}
    per_batch = {"before": inline, "pipelined": steady, "no-io": compute}
    rows = []
    loop = {"before": inline(1), "pipelined": inline(1), "no-io": compute(1)}
    for b in MODEL_BATCHES:
        for mode in ("before", "pipelined", "no-io"):
            if b == 1 and mode == "pipelined":
                continue  # the loop's own row is the baseline (a user's loop does I/O in line)
            per_image = per_batch[mode](b) / b
            name = ("solve-loop" if b == 1 else f"restore/batch{b}") + names[mode]
            if b == 1 and mode == "before":
                name, how = "solve-loop", "the one-image loop, I/O in line (the baseline)"
            else:
                how = modes[mode]
            bound = ""
            if mode == "pipelined":
                terms = pipeline_terms(b, compute(b), read_s, write_s, writers)
                bound = (
                    f"; bound by {max(terms, key=terms.get)} ("
                    + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in terms.items())
                    + " per batch)"
                )
            ratio = loop[mode] / per_image
            versus = "the compute-only loop" if mode == "no-io" else "the one-image loop"
            rows.append(
                _model_row(
                    name,
                    (b, 3, MODEL_SIZE, MODEL_SIZE),
                    per_image,
                    f"{note}; {how}{bound}; {ratio:.2f}x {versus} (target >= 3x)",
                    speedup_vs_loop=ratio,
                    ranks=1,
                    pipeline=mode,
                    with_io=mode != "no-io",
                    host_cores=args.model_host_cores,
                    writers=writers if mode == "pipelined" else None,
                )
            )
    n = args.model_images
    batch = 8
    for mode in ("before", "pipelined", "no-io"):
        for ranks in MODEL_RANKS:
            busiest = shard_max(n, ranks)
            if mode == "pipelined":
                t = pipeline_seconds(busiest, batch, compute, read_s, write_s, writers)
                how = (
                    f"{piped}; the first window (min({read_window(batch)}, images) read) before "
                    "the first solve and the last batch's writes after the last are not hidden"
                )
            else:
                t = rank_seconds(busiest, batch, per_batch[mode])
                how = modes[mode]
            rows.append(
                _model_row(
                    f"restore/batch{batch}/ranks{ranks}" + names[mode],
                    (n, 3, MODEL_SIZE, MODEL_SIZE),
                    t / n,
                    f"{note}; {how}; {n} images, {busiest} on the busiest rank, one GPU per "
                    "rank; process start, model load and rendezvous not modelled",
                    ranks=ranks,
                    images=n,
                    wall_s=t,
                    images_per_s=n / t,
                    speedup_vs_loop=n * loop[mode] / t,
                    pipeline=mode,
                    with_io=mode != "no-io",
                    host_cores=args.model_host_cores,
                    writers=writers if mode == "pipelined" else None,
                )
            )
    return rows


def _model_row(provider, shape, per_image_s: float, note: str, **extra) -> dict:
    t = harness.Timing(per_image_s * 1e3, per_image_s * 1e3, per_image_s * 1e3, 0)
    row = harness.make_row(
        op=MODEL_OP,
        provider=provider,
        shape=shape,
        dtype=torch.float32,
        timing=t,
        nbytes=None,
        device="cpu",
        correct=True,
        note=note,
    )
    row["device"] = "H200 (modelled)"
    out = {**row, "modelled": True, "images_per_s": 1.0 / per_image_s, **extra}
    return out


# ---------------------------------------------------------------------------------------------


def _mib(x) -> str:
    return "-" if x is None else f"{x / 2**20:.0f}"


def print_table(rows: list[dict]) -> None:
    header = ("op", "provider", "shape", "images/s", "ms/image", "x loop", "CPU ms/image")
    header += ("x loop (CPU)", "PSNR", "dB vs fp32", "peak MiB", "GPU MiB")
    lines = [
        (
            r["op"],
            r["provider"],
            r["shape"],
            harness._fmt(r.get("images_per_s"), ".3g"),
            harness._fmt(r["median_ms"], ".4g"),
            harness._fmt(r.get("speedup_vs_loop") or r.get("speedup_vs_1_rank"), ".2f"),
            harness._fmt(r.get("cpu_ms_per_image"), ".4g"),
            harness._fmt(r.get("cpu_speedup_vs_loop"), ".2f"),
            harness._fmt(r.get("psnr"), ".2f"),
            harness._fmt(r.get("psnr_vs_fp32_db"), "+.3f"),
            _mib(r.get("peak_rss_bytes")),
            _mib(r.get("peak_cuda_bytes")),
        )
        for r in rows
    ]
    print(harness.text_table(header, lines))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=None, help="CBSD68 images (default 16, quick 4)")
    p.add_argument("--crop", type=int, default=None, help="centre crop (default 128, quick 32)")
    p.add_argument("--reps", type=int, default=None, help="runs per variant (default 3, quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (1)")
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="where every variant and torchrun rank runs (default cpu)",
    )
    p.add_argument(
        "--variants",
        type=harness.parse_list,
        default=None,
        help=f"measured variants (default {','.join(VARIANTS)}; on cuda also "
        f"{','.join(CUDA_VARIANTS)})",
    )
    p.add_argument(
        "--parts", type=harness.parse_list, default=list(PARTS), help="measure,ranks,model"
    )
    p.add_argument("--model-images", type=int, default=MODEL_IMAGES, help="images, ranks model")
    p.add_argument(
        "--model-host-cores",
        type=int,
        default=MODEL_HOST_CORES,
        help="the modelled GPU host's cores (16, as the lent H100/H200 machines)",
    )
    p.add_argument("--out", type=Path, default=harness.results_path(OP))
    p.add_argument("--keep", type=Path, default=None, help="build the folder here and keep it")
    p.add_argument("--quick", action="store_true", help="4 images of 32x32, one run each")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    if args.child:
        return child(args)
    args.images = args.images or (4 if args.quick else 16)
    args.crop = args.crop or (32 if args.quick else 128)
    args.reps = args.reps or (1 if args.quick else 3)
    if args.variants is None:
        args.variants = list(VARIANTS if args.device == "cpu" else ALL_VARIANTS)
    harness.check_known(parser, "variants", args.variants, ALL_VARIANTS)
    harness.check_known(parser, "parts", args.parts, PARTS)
    if "measure" in args.parts and BASELINE not in args.variants:
        parser.error(f"--variants must include the baseline {BASELINE}")
    if args.crop % 8:
        parser.error("--crop must be a multiple of 8 (the DRUNet's three downsamplings)")
    torch.set_num_threads(args.threads)
    # only a measured deepinv loop needs the check (it imports deepinv)
    mismatch = "deepinv-dpir-loop" in args.variants and deepinv_forward_matches()
    if mismatch:
        print(f"  deepinv-dpir-loop left out: {mismatch}", file=sys.stderr)
        args.variants = [v for v in args.variants if v != "deepinv-dpir-loop"]
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_restore-"))
    try:
        info = build_folder(root, args.images, args.crop)
        print(
            f"{OP}: {args.images} CBSD68 crops {args.crop}x{args.crop} in {root}, "
            f"{args.threads} torch thread(s), {args.reps} run(s) per variant, "
            f"device {args.device}, {harness.load_note('cpu')}",
            flush=True,
        )
        rows: list[dict] = []
        if "measure" in args.parts:
            rows += measure_part(args, root, info)
        if "ranks" in args.parts:
            rows += ranks_part(args, root, info)
        if "model" in args.parts:
            rows += model_part(args, rows)
        harness.append_extended_rows(args.out, rows)
        print_table(rows)
        print(f"\nrows appended to {args.out}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

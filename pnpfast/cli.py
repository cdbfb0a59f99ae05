"""The ``pnpfast`` command line: ``demo``, ``deblur``, ``restore``, ``train``, ``export`` and
``backends``.

    pnpfast demo -o pnpfast-demo                 # a self-contained deblurring demo
    pnpfast restore photos/ -o restored/ --operator blur:k.npy --noise 7.65 --batch 8
    pnpfast deblur a.png b.jpg --kernel k.mat --noise 7.65 -o restored/
    pnpfast deblur small.png --operator sr:bicubic:x2 --noise 2.55 -o upscaled/
    pnpfast train --recipe conditional-gray --train-dir BSD400 --val-dir Set12 --out runs/cg
    pnpfast export runs/cg/best.pt conditional-gray.pt --meta recipe=conditional-gray
    pnpfast backends                             # which fused-op backends run here, and why not

Exit codes: 0 success; 1 some images of ``deblur`` or ``restore`` failed (the others are
written), the training loss of ``train`` diverged, or an unexpected error (one line on stderr, no
traceback); 2 bad arguments (including an unreadable kernel, an unknown
denoiser, an unavailable device, missing or offline public weights, an unusable training folder,
a checkpoint in ``--out`` from another configuration, or a ``restore`` output folder holding a
run with other settings); 130 ``restore`` stopped by Ctrl-C (after the current batch, with its
report and ledger written).
"""

import argparse
import json
import math
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch

import pnpfast
from pnpfast import _env
from pnpfast.data import MOTION_ANGLE, MOTION_SIZE, astronaut, motion_kernel
from pnpfast.denoisers.architectures import ARCHITECTURES
from pnpfast.denoisers.drunet import ACTIVATIONS
from pnpfast.io import (
    ImageReadError,
    KernelReadError,
    side_by_side,
    write_image,
)
from pnpfast.metrics import psnr, ssim
from pnpfast.operators import OperatorSpec
from pnpfast.train.loop import PRECISIONS, SCHEDULES, TrainConfig, default_arch, train
from pnpfast.train.recipes import RECIPES, recipe_settings

__all__ = ["main", "motion_kernel"]

PROG = "pnpfast"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DEMO_SEED = 0
# far more than any method needs (the slowest default is 300); a typo such as 10**20 is refused
# here instead of overflowing inside the solver
MAX_ITERS = 100_000


# ---------------------------------------------------------------------------------------------
# argument parsing


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _iterations(text: str) -> int:
    """An argparse type: an iteration count in 1..MAX_ITERS."""
    value = _positive_int(text)
    if value > MAX_ITERS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_ITERS} iterations, got {value}")
    return value


def _noise_level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"the noise level must be a number > 0, got {text}")
    if value > 255:
        raise argparse.ArgumentTypeError(
            f"the noise level is on the 0..255 scale (7.65 for 3% of the range), got {text}"
        )
    return value


def _demo_size(text: str) -> int:
    value = _positive_int(text)
    if not 16 <= value <= 512:
        raise argparse.ArgumentTypeError(f"the demo size must be in 16..512, got {value}")
    return value


def _methods() -> list[str]:
    return sorted(getattr(pnpfast.solvers, "METHODS", {"hqs": None}))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fast Plug-and-Play image restoration.",
        epilog="Exit codes: 0 success, 1 some images failed or training diverged, 2 bad arguments, "
        "130 restore stopped by Ctrl-C.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {pnpfast.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="deblur a built-in image and report PSNR, SSIM and time",
        description=(
            "Blur the astronaut image bundled with scikit-image (centre crop) with a built-in "
            f"{MOTION_SIZE}x{MOTION_SIZE} motion kernel at {MOTION_ANGLE:g} "
            f"degrees, add Gaussian noise (seed {DEMO_SEED}), restore it with HQS and the "
            "default denoiser, and write input.png, degraded.png, restored.png and "
            "comparison.png. Needs no network and no files."
        ),
    )
    demo.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("pnpfast-demo"),
        metavar="DIR",
        help="output folder (default: ./pnpfast-demo)",
    )
    demo.add_argument(
        "--size",
        type=_demo_size,
        default=256,
        metavar="N",
        help="side of the square crop, 16..512 (default: 256)",
    )
    demo.add_argument(
        "--noise",
        type=_noise_level,
        default=7.65,
        metavar="SIGMA255",
        help="noise standard deviation on the 0..255 scale (default: 7.65)",
    )
    demo.add_argument(
        "--iters", type=_iterations, default=8, metavar="N", help="HQS iterations (default: 8)"
    )

    deblur = sub.add_parser(
        "deblur",
        help="restore blurred (or downscaled), noisy images with a known kernel (pnpfast "
        "restore with --task deblur, or sr for an sr operator)",
        description=(
            "Restore each INPUT (blurred by KERNEL with circular boundaries, or degraded by the "
            "--operator SPEC, plus Gaussian noise of standard deviation SIGMA255 / 255) and "
            "write DIR/<name>.png (a folder's images mirror its tree). This is pnpfast restore "
            "--task deblur (--task sr for an sr operator) --ext png: batched, resumable (a "
            "rerun skips what is done), 16-bit and alpha kept, a JSON report in DIR; see "
            "pnpfast restore --help for folders of thousands of images, manifests and torchrun. "
            "A file that cannot be read or restored is reported and the others still get done."
        ),
    )
    deblur.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="image files, folders (searched recursively), glob patterns or @list.txt",
    )
    model = deblur.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "-k",
        "--kernel",
        type=Path,
        metavar="FILE",
        help="blur kernel: .npy, .png (normalised to sum 1) or .mat",
    )
    model.add_argument(
        "--operator",
        metavar="SPEC",
        help="the forward model by name (pnpfast.operators.from_spec): sr:bicubic:x2 "
        "(super-resolution by 2 with MATLAB's bicubic kernel; the output is 2x larger), "
        "sr:gaussian:x3:std=1.6, sr:K.npy:x4, blur:K.mat:key=NAME:index=I",
    )
    deblur.add_argument(
        "--kernel-key",
        default=None,
        metavar="K",
        help="name of the MATLAB variable holding the kernel (.mat; with --kernel)",
    )
    deblur.add_argument(
        "--kernel-index",
        type=int,
        default=None,
        metavar="I",
        help="which kernel of a stack or cell array, from 0 (default: 0; with --kernel)",
    )
    deblur.add_argument(
        "--noise",
        type=_noise_level,
        required=True,
        metavar="SIGMA255",
        help="noise standard deviation on the 0..255 scale",
    )
    deblur.add_argument(
        "--method", default="hqs", choices=_methods(), help="PnP method (default: hqs)"
    )
    deblur.add_argument(
        "--denoiser",
        default=None,
        metavar="NAME",
        help="denoiser name for pnpfast.denoisers.load (default: the shipped "
        "noise-conditional DRUNet; 'blind', 'tv', a registry name such as 'drunet-color', "
        "or an architecture with --weights)",
    )
    deblur.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="PATH",
        help="weight file for a network denoiser",
    )
    deblur.add_argument(
        "--iters",
        type=_iterations,
        default=None,
        metavar="N",
        help="iterations (default: the method's own, 8 for hqs)",
    )
    deblur.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder, created if missing",
    )
    deblur.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"), help="where to compute (default: cpu)"
    )
    deblur.add_argument(
        "--batch",
        type=_positive_int,
        default=None,
        metavar="N",
        help="images per batch (default 8 on a GPU, 1 on a CPU)",
    )
    deblur.add_argument(
        "--skip-existing",
        action="store_true",
        help="also skip an input file whose DIR/<stem>.png exists though no earlier run "
        "recorded it (a rerun skips what it recorded anyway)",
    )

    _add_restore_parser(sub)
    _add_train_parser(sub)
    export = sub.add_parser(
        "export",
        help="write a pnpfast weight file in the form pnpfast ships it (float16)",
        description=(
            "Copy a pnpfast weight file (model.pt or best.pt of pnpfast train) to TARGET with "
            "its tensors in float16 (half the size; read back as float32) and KEY=VALUE "
            "entries added to its provenance (meta)."
        ),
    )
    export.add_argument("source", type=Path, help="a pnpfast weight file")
    export.add_argument("target", type=Path, help="where to write the exported file")
    export.add_argument("--float32", action="store_true", help="keep float32 tensors")
    export.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="add to the meta entry"
    )
    sub.add_parser("backends", help="list the fused-op backends and whether they can run here")
    return parser


def _int_list(text: str) -> list[int]:
    """An argparse type: comma-separated integers, e.g. ``32,64,128``."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 32,64,128, got {text!r}"
        ) from None


def _sigma_range(text: str) -> tuple[float, float]:
    """An argparse type: ``LOW,HIGH`` (or one level) on the 0..255 scale -> [0, 1] scale."""
    try:
        values = [float(part) / 255.0 for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH (or one level) on the 0..255 scale, such as 0,50, got {text!r}"
        )
    return values[0], values[-1]


# network flags (argparse dest = constructor argument); the library says which architecture
# takes which
_NET_FLAGS = ("widths", "blocks", "noise_map", "bias", "activation", "depth", "features")
# flags copied into TrainConfig as they are (argparse dest = TrainConfig field)
_TRAIN_FIELDS = (
    "channels",
    "sigma",
    "patch_size",
    "patches_per_image",
    "batch_size",
    "steps",
    "lr",
    "schedule",
    "warmup",
    "precision",
    "device",
    "seed",
    "val_every",
    "checkpoint_every",
    "threads",
    "loss",
)
# the flag of each TrainConfig field (or library argument) an error may name
_FLAG_OF = {
    **{f: f"--{f.replace('_', '-')}" for f in (*_TRAIN_FIELDS, "train_dir", "val_dir", "clip")},
    **{"init": "--init", "recipe": "--recipe", "out_dir": "--out", "loss_options": "--loss-option"},
}


def _loss_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="train a denoiser on a folder of images",
        description=(
            "Train a denoiser on random patches of the images in --train-dir with Gaussian noise "
            "and write into --out: model.pt (the last weights), best.pt (the best on --val-dir), "
            "config.json, log.jsonl and checkpoint.pt. Running the same command again resumes "
            "from the checkpoint. With --recipe the recipe's settings are the defaults and the "
            "flags given override them; without it the defaults of pnpfast.train.TrainConfig "
            "apply. Noise levels are on the 0..255 scale."
        ),
    )
    data = train.add_argument_group("data")
    data.add_argument(
        "--train-dir", type=Path, required=True, metavar="DIR", help="training images (recursive)"
    )
    data.add_argument(
        "--val-dir", type=Path, metavar="DIR", help="validation images (default: no validation)"
    )
    data.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder, created if missing"
    )
    data.add_argument("--recipe", metavar="NAME", help=f"start from a preset: {', '.join(RECIPES)}")
    data.add_argument(
        "--channels", type=int, metavar="C", help="1 gray (color images -> luma), 3 color"
    )
    data.add_argument(
        "--sigma",
        type=_sigma_range,
        metavar="LOW,HIGH",
        help="training noise std on the 0..255 scale, uniform in [LOW, HIGH] per patch; one "
        "number trains at that level only",
    )
    data.add_argument("--patch-size", type=int, metavar="N", help="patch side")
    data.add_argument(
        "--patches-per-image", type=int, metavar="N", help="patches per image per epoch"
    )

    net = train.add_argument_group("network (each flag only for the architectures named)")
    net.add_argument("--arch", metavar="NAME", help=f"network: {', '.join(ARCHITECTURES)}")
    net.add_argument(
        "--widths", type=_int_list, metavar="W0,W1,..", help="drunet: channels of each level"
    )
    net.add_argument("--blocks", type=int, metavar="N", help="drunet: residual blocks per level")
    net.add_argument(
        "--noise-map",
        action=argparse.BooleanOptionalAction,
        help="drunet: give the network the noise level (--no-noise-map: blind)",
    )
    net.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        help="drunet, dncnn: convolution biases (dncnn --no-bias also uses bias-free batch norm)",
    )
    net.add_argument("--activation", metavar="NAME", help=f"drunet: {', '.join(ACTIVATIONS)}")
    net.add_argument("--depth", type=int, metavar="N", help="dncnn, bfcnn: layers")
    net.add_argument("--features", type=int, metavar="N", help="dncnn, bfcnn: channels per layer")

    opt = train.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, metavar="N", help="patches per step")
    opt.add_argument("--steps", type=int, metavar="N", help="training steps in all")
    opt.add_argument("--lr", type=float, metavar="LR", help="peak learning rate")
    opt.add_argument(
        "--schedule", metavar="NAME", help=f"learning-rate schedule: {', '.join(SCHEDULES)}"
    )
    opt.add_argument("--warmup", type=int, metavar="N", help="steps of linear warm-up")
    opt.add_argument(
        "--clip",
        type=float,
        metavar="NORM",
        help="clip the gradient to this global norm; 0 turns clipping off",
    )
    opt.add_argument("--loss", metavar="NAME", help="training loss (pnpfast.train.LOSSES)")
    opt.add_argument(
        "--loss-option",
        action="append",
        type=_loss_option,
        metavar="KEY=VALUE",
        help="an option of the loss (VALUE read as JSON, else as a string); repeatable, "
        "merged over the recipe's",
    )
    opt.add_argument(
        "--init", type=Path, metavar="FILE", help="start from this pnpfast weight file"
    )

    run = train.add_argument_group("run")
    run.add_argument(
        "--precision",
        metavar="P",
        help=f"GPU arithmetic: {', '.join(PRECISIONS)} (the CPU uses fp32)",
    )
    run.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--seed", type=int, metavar="N", help="random seed")
    run.add_argument("--val-every", type=int, metavar="N", help="validate every N steps")
    run.add_argument("--checkpoint-every", type=int, metavar="N", help="checkpoint every N steps")
    run.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start over even when --out holds a checkpoint (it is replaced)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def _one_line(exc: BaseException | str) -> str:
    """A message on one line (torch and Pillow errors may span several)."""
    return " ".join(str(exc).split())


def _usage_error(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_USAGE


def _make_folder(folder: Path) -> str | None:
    """Create folder (and parents); the reason when that is impossible."""
    if folder.exists() and not folder.is_dir():
        return f"the output folder {folder} is a file"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the output folder {folder}: {exc}"
    return None


# ---------------------------------------------------------------------------------------------
# commands


def _demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    error = _make_folder(args.output)
    if error:
        return _usage_error("demo", error)

    x = astronaut(args.size)

    sigma = args.noise / 255.0
    kernel = motion_kernel()
    operator = pnpfast.operators.Blur(kernel)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(DEMO_SEED))
    y = operator(x) + sigma * noise
    denoiser = pnpfast.denoisers.load()

    print(
        f"{PROG} demo: astronaut {args.size}x{args.size} RGB, motion blur "
        f"{MOTION_SIZE}x{MOTION_SIZE} at {MOTION_ANGLE:g} degrees, "
        f"noise {args.noise:g}/255"
    )
    print(f"restoring with hqs, {args.iters} iterations, the shipped noise-conditional denoiser")
    solve_start = time.perf_counter()
    result = pnpfast.solve(y, operator, denoiser, method="hqs", sigma=sigma, max_iter=args.iters)
    solve_time = time.perf_counter() - solve_start

    degraded = y.clamp(0.0, 1.0)
    restored = result.x.clamp(0.0, 1.0)
    outputs = {
        "input.png": x,
        "degraded.png": degraded,
        "restored.png": restored,
        "comparison.png": side_by_side([x, degraded, restored]),
    }
    for name, image_out in outputs.items():
        write_image(args.output / name, image_out)

    print(f"{'':10s}{'PSNR (dB)':>10s}{'SSIM':>9s}")
    for label, z in (("degraded", degraded), ("restored", restored)):
        print(f"{label:10s}{psnr(z, x).item():10.2f}{ssim(z, x).item():9.4f}")
    total = time.perf_counter() - started
    print(f"restoration {solve_time:.2f} s, total {total:.2f} s (wall time)")
    print(f"wrote {', '.join(outputs)} to {args.output}")
    return EXIT_OK


def _deblur_spec(args: argparse.Namespace) -> OperatorSpec:
    """The forward model of --kernel (with --kernel-key, --kernel-index) or --operator."""
    if args.operator is None:
        index = 0 if args.kernel_index is None else args.kernel_index
        return OperatorSpec("blur", kernel=str(args.kernel), key=args.kernel_key, index=index)
    if args.kernel_key is not None or args.kernel_index is not None:
        raise ValueError(
            "--kernel-key and --kernel-index go with --kernel; in SPEC write key=K and index=I, "
            "e.g. blur:K.mat:key=kernels:index=1"
        )
    return OperatorSpec.parse(args.operator)


def _deblur(args: argparse.Namespace) -> int:
    """``pnpfast deblur``: ``pnpfast restore`` with the task its kernel or operator says
    (deblur for a blur kernel, sr for sr:...), PNG outputs, and its flags' old names."""
    try:
        spec = _deblur_spec(args)
        spec.kernel_tensor()  # a kernel that cannot be read: one line before anything starts
    except KernelReadError as exc:
        return _usage_error("deblur", str(exc))
    except (ValueError, TypeError) as exc:  # the spec's checks name a field: say its flag
        field = str(exc).split(" ", 1)[0]
        flag = {"index": "--kernel-index", "key": "--kernel-key"}.get(field, "--kernel")
        return _usage_error("deblur", f"{flag if args.operator is None else '--operator'}: {exc}")
    inputs = list(args.inputs)
    skipped = []
    if args.skip_existing:  # outputs of a run without a ledger (the ledger skips its own)
        skipped = [p for p in inputs if p.is_file() and (args.output / f"{p.stem}.png").exists()]
        inputs = [p for p in inputs if p not in skipped]
        if skipped:
            print(f"{PROG} deblur: {len(skipped)} skipped (output exists)")
        if not inputs:
            return EXIT_OK
    # restore's own defaults for every flag deblur does not have (one place to change them)
    restore_args = _parser().parse_args(["restore", f"--output={args.output}"])
    vars(restore_args).update(
        command="deblur",
        inputs=[str(p) for p in inputs],
        task="deblur" if spec.name == "blur" else "sr",
        operator=str(spec),
        noise=args.noise,
        method=args.method,
        max_iter=args.iters,
        denoiser=args.denoiser,
        weights=args.weights,
        device=args.device,
        batch=args.batch,
        ext="png",
        no_progress=not sys.stderr.isatty(),  # as before: a bar on a terminal, not in logs
    )
    return _restore(restore_args)


# ---------------------------------------------------------------------------------------------
# restore: the production runner (pnpfast.runner.run); the CLI only parses flags into it

EXIT_INTERRUPTED = 130  # the shell's code for a SIGINT
REPORT_NAME = "restore-report.json"
# the flag of each RunConfig field (and restore argument) an error message may start with
_RESTORE_FLAG = {
    "task": "--task",
    "operator": "--operator",
    "mask": "--mask",
    "noise": "--noise",
    "method": "--method",
    "params": "--param",
    "max_iter": "--max-iter",
    "denoiser": "--denoiser",
    "weights": "--weights",
    "device": "--device",
    "batch_size": "--batch",
    "tile": "--tile",
    "overlap": "--overlap",
    "extension": "--ext",
    "bit_depth": "--bit-depth",
    "manifest": "--manifest",
    "precision": "--precision",
    "channels_last": "--channels-last",
    "cuda_graphs": "--cuda-graphs",
}


def _param(text: str) -> tuple[str, object]:
    """An argparse type: ``NAME=VALUE`` of a method parameter; VALUE a number, true/false or
    text, as in a manifest's ``params.NAME`` column."""
    from pnpfast.runner.worklist import _text_param

    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE such as lam=0.2, got {text!r}")
    return name.strip(), _text_param(value.strip())


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _batch_size(text: str) -> int | str:
    """An argparse type: an integer >= 1, or "auto"."""
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 1 or auto, got {text!r}"
        ) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _add_restore_parser(sub: argparse._SubParsersAction) -> None:
    from pnpfast.runner.distributed import DEFAULT_TIMEOUT_S
    from pnpfast.runner.gpu_denoiser import PRECISIONS as RUN_PRECISIONS
    from pnpfast.runner.run import TASKS

    restore = sub.add_parser(
        "restore",
        help="restore many images (folders, globs, list files, a manifest) in batches, resumably",
        description=(
            "Restore every INPUT image (files, folders searched recursively, glob patterns, "
            "@list.txt) into DIR, mirroring the input tree, in batches of images of one size. "
            "The input is the measurement: blurred (deblur), low-resolution (sr), masked "
            "(inpainting) or noisy (denoise), with Gaussian noise of --noise on the 0..255 "
            "scale. Bit depth and alpha are kept unless --bit-depth says otherwise. Rerunning "
            "the same command skips the images already done (DIR/.pnpfast-ledger.rank*.jsonl); "
            "rerunning into DIR with other settings is refused unless --overwrite. A file that "
            "cannot be read or restored is reported and the others still get done. Ctrl-C stops "
            "after the current batch. Under torchrun the environment variables RANK and "
            "WORLD_SIZE give this process its share of the images, and --device cuda means "
            "cuda:LOCAL_RANK; the ranks join a torch.distributed group (NCCL on CUDA, gloo "
            "otherwise), each writes its own ledger and DIR/restore-report.rankR.json, and "
            "rank 0 merges them into DIR/restore-report.json. With RANK and WORLD_SIZE set by "
            "hand (no torchrun), torch.distributed is not initialised and each rank writes "
            "only its own ledger and report."
        ),
        epilog="Exit codes: 0 every image done or skipped, 1 some images failed, 2 bad "
        "arguments, settings that differ from the run in DIR, or unavailable weights, "
        "130 stopped by Ctrl-C.",
    )
    restore.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files, folders, glob patterns or @list.txt (none with --manifest alone)",
    )
    restore.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DIR", help="output folder"
    )
    model = restore.add_argument_group("the measurement")
    model.add_argument(
        "--task", default="deblur", choices=TASKS, help="what degraded the images (default: deblur)"
    )
    model.add_argument(
        "--operator",
        metavar="SPEC",
        help="deblur: blur:K.npy (also .png, blur:K.mat:key=NAME:index=I); sr: sr:bicubic:x2, "
        "sr:gaussian:x3:std=1.6, sr:K.npy:x4",
    )
    model.add_argument("--mask", metavar="FILE", help="inpainting: the mask image (>= 0.5 seen)")
    model.add_argument(
        "--noise",
        type=_noise_level,
        metavar="SIGMA255",
        help="noise standard deviation on the 0..255 scale (7.65 = 3%%)",
    )
    model.add_argument(
        "--manifest",
        metavar="FILE",
        help="a CSV or JSONL file of per-image settings (kernel, noise, mask, factor, "
        "operator, method, params.NAME); its rows are the work list when no INPUT is given",
    )
    solver = restore.add_argument_group("the solver")
    solver.add_argument("--method", default="hqs", help="PnP method (default: hqs)")
    solver.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the method (e.g. lam=0.2); repeatable",
    )
    solver.add_argument(
        "--max-iter",
        type=_iterations,
        metavar="N",
        help="iterations (default: the method's own)",
    )
    solver.add_argument(
        "--denoiser",
        metavar="NAME",
        help="a name for pnpfast.denoisers.load (default: the method's shipped denoiser)",
    )
    solver.add_argument("--weights", metavar="FILE", help="weight file for a network denoiser")
    run = restore.add_argument_group("the run")
    run.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda or cuda:N (default: cpu; under torchrun cuda is cuda:LOCAL_RANK)",
    )
    run.add_argument(
        "--batch",
        type=_batch_size,
        default=None,
        metavar="N|auto",
        help="images per batch (default 8 on a GPU, 1 on a CPU, where batches measured no "
        "faster); auto: as many as free memory holds (measured once per image size with the "
        "denoiser), at most 64",
    )
    run.add_argument(
        "--precision",
        choices=RUN_PRECISIONS,
        default="fp32",
        help="the dtype the denoiser's network runs in (default fp32; the data steps stay "
        "fp32; a batch that goes NaN in bf16/fp16 is rerun in fp32; on a CPU take bf16: "
        "fp16 runs there about 60x slower)",
    )
    run.add_argument(
        "--channels-last",
        action="store_true",
        help="the denoiser in channels_last memory format (faster convolutions on GPUs)",
    )
    run.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="replay the denoiser of each batch shape from a CUDA graph (CUDA devices only)",
    )
    run.add_argument(
        "--tile",
        type=_positive_int,
        metavar="N",
        help="run the denoiser on N x N tiles (images too large for memory)",
    )
    run.add_argument(
        "--overlap", type=_non_negative_int, metavar="N", help="pixels tiles share (with --tile)"
    )
    run.add_argument(
        "--ext", choices=("png", "tif"), help="output format (default: each input's own)"
    )
    run.add_argument(
        "--bit-depth",
        type=int,
        choices=(8, 16),
        help="output bit depth (default: each input's own)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="redo every image, even when done before or done with other settings",
    )
    run.add_argument(
        "--dist-timeout",
        type=_positive_int,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help="under torchrun, how long a rank waits for the others (joining, and at the end) "
        f"before it gives up (default {DEFAULT_TIMEOUT_S} s: long enough for the slowest share)",
    )
    run.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help=f"the JSON report (default: DIR/{REPORT_NAME}; under torchrun each rank writes "
        "FILE with .rankR before its suffix, DIR/restore-report.rankR.json by default)",
    )
    run.add_argument(
        "--progress-every",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="when stderr is not a terminal: a progress line at most every S seconds "
        "(default 10; 0: after every batch)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar nor lines")


def _flagged(exc: BaseException) -> str:
    """The library's message, prefixed with the flag of the field it starts with."""
    text = _one_line(exc)
    field = re.split(r"[\s:]", text, maxsplit=1)[0]
    flag = _RESTORE_FLAG.get(field)
    return f"{flag}: {text}" if flag else text


def _mismatch_message(exc, output: Path) -> str:
    """Which settings differ from the run already in the output folder, by flag."""
    from pnpfast.runner.ledger import _shown

    parts = []
    for name, (old, new) in exc.differences.items():
        base = name.split(".")[0].removesuffix("_sha256")
        flag = _RESTORE_FLAG.get(base)
        label = f"{name} ({flag})" if flag else name
        if name.endswith("_sha256"):
            parts.append(f"{label}: the file's content changed")
        else:
            parts.append(f"{label}: {_shown(old)} before, {_shown(new)} now")
    return (
        f"{output} holds a run with other settings ({'; '.join(parts)}); add --overwrite to "
        "redo every image with the new settings, or choose another -o"
    )


class _Progress:
    """The runner's progress callback: a tqdm bar on a terminal, else a plain line at most
    every ``every`` seconds (and at the end)."""

    def __init__(self, command: str, every: float, enabled: bool):
        self.command = command
        self.every = every
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.last = -math.inf
        self.first: tuple[int, float] | None = None

    def __call__(self, finished: int, total: int, elapsed: float) -> None:
        if not self.enabled:
            return
        if self.tty:
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.command, unit="image", file=sys.stderr)
            self.bar.update(finished - self.bar.n)
            return
        if self.first is None:
            self.first = (finished, elapsed)
        if elapsed - self.last < self.every and finished < total:
            return
        self.last = elapsed
        # the rate since the first call: images skipped from an earlier run are not counted
        f0, t0 = self.first
        rate = (finished - f0) / (elapsed - t0) if elapsed > t0 else finished / max(elapsed, 1e-9)
        eta = f"{(total - finished) / rate:.0f} s" if rate > 0 else "?"
        print(
            f"{PROG} {self.command}: {finished}/{total} images, {rate:.2f} images/s, ETA {eta}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(command: str, report, report_path: Path) -> str:
    """The end of a run on one screen."""
    n_failed = len(report.failed)
    lines = [
        f"{PROG} {command}: {report.total} images: {report.done} done, {report.skipped} skipped "
        f"(done before), {n_failed} failed" + (" (interrupted)" if report.interrupted else "")
    ]
    shown = 10
    for f in report.failed[:shown]:
        lines.append(f"  failed: {f['key']}: {_one_line(f['reason'])}")
    if n_failed > shown:
        lines.append(f"  ... and {n_failed - shown} more failures in the report")
    sec = report.seconds
    lines.append(
        f"speed: {report.images_per_s:.2f} images/s; time: read {sec.get('read', 0):.2f} s, "
        f"solve {sec.get('solve', 0):.2f} s (denoiser {sec.get('denoiser', 0):.2f} s, "
        f"data {sec.get('data', 0):.2f} s), write {sec.get('write', 0):.2f} s, "
        f"total {sec.get('total', 0):.2f} s"
    )
    rank = f", rank {report.rank} of {report.world_size}" if report.world_size > 1 else ""
    lines.append(
        f"peak memory: {report.peak_memory_bytes / 2**20:.1f} MiB on {report.device}{rank}"
    )
    lines.append(f"report: {report_path}")
    return "\n".join(lines)


def _write_report(report: dict, path: Path) -> None:
    """Write the JSON report atomically, first removing what a killed earlier write left."""
    from pnpfast._atomic import atomic_open, remove_stale_temporaries

    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries([path])
    with atomic_open(path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")


def _restore_needs(args: argparse.Namespace) -> str | None:
    """What a run without a manifest lacks for its task, naming the flag; None when complete."""
    from pnpfast.solvers import SAMPLER

    if args.task == "deblur" and args.operator is None:
        return "--operator: task deblur needs the blur kernel: --operator blur:K.npy"
    if args.task == "sr" and args.operator is None:
        return "--operator: task sr needs the operator: --operator sr:bicubic:x2 (or sr:K.npy:x4)"
    if args.task == "inpainting" and args.mask is None:
        return "--mask: task inpainting needs the mask image: --mask FILE"
    if args.noise is None and args.method != SAMPLER:
        return f"--noise: method {args.method} needs the noise level (0..255 scale, e.g. 7.65)"
    return None


def _restore(args: argparse.Namespace) -> int:
    from pnpfast.runner import distributed

    try:
        return _restore_rank(args)
    finally:  # also after an error or Ctrl-C: the process group is left cleanly
        distributed.finalize()


def _restore_rank(args: argparse.Namespace) -> int:
    from pnpfast.denoisers.registry import WeightsUnavailableError
    from pnpfast.runner import distributed
    from pnpfast.runner.ledger import SettingsMismatchError
    from pnpfast.runner.run import RunConfig, restore

    cmd = args.command  # "restore", or "deblur" (its alias)
    if not args.inputs and args.manifest is None:
        return _usage_error(cmd, "give at least one INPUT, or --manifest")
    try:
        rank, world_size = _env.torchrun_rank()
        device = _env.torchrun_device(args.device)
    except ValueError as exc:
        return _usage_error(cmd, str(exc))
    names = [name for name, _ in args.param]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return _usage_error(cmd, f"--param: {', '.join(twice)} given twice")
    try:
        config = RunConfig(
            task=args.task,
            operator=args.operator,
            mask=args.mask,
            noise=args.noise,
            method=args.method,
            params=dict(args.param),
            max_iter=args.max_iter,
            denoiser=args.denoiser,
            weights=args.weights,
            device=device,
            batch_size=args.batch,
            tile=args.tile,
            overlap=args.overlap,
            extension=args.ext,
            bit_depth=args.bit_depth,
            overwrite=args.overwrite,
            precision=args.precision,
            channels_last=args.channels_last,
            cuda_graphs=args.cuda_graphs,
        )
    except (ValueError, TypeError) as exc:
        return _usage_error(cmd, _flagged(exc))
    if args.manifest is None:  # else each image may bring its own
        error = _restore_needs(args)
        if error:
            return _usage_error(cmd, error)
    if args.report is not None and world_size > 1:  # one file per rank, not N writers of one
        report_path = args.report.with_name(f"{args.report.stem}.rank{rank}{args.report.suffix}")
    elif args.report is not None:
        report_path = args.report
    elif world_size > 1:
        report_path = args.output / f"restore-report.rank{rank}.json"
    else:
        report_path = args.output / REPORT_NAME
    if args.output.exists() and not args.output.is_dir():  # restore creates it, when work starts
        return _usage_error(cmd, f"-o: the output folder {args.output} is a file")
    try:  # torchrun: join the process group before the work (NCCL on CUDA, gloo otherwise)
        distributed.init(world_size, device, timeout_s=args.dist_timeout)
    except ValueError as exc:  # a device this rank cannot use (CUDA absent, too few GPUs)
        return _usage_error(cmd, f"--device: {exc}")
    except RuntimeError as exc:
        print(
            f"{PROG} {cmd}: failed: rank {rank} could not join the other ranks "
            f"(torch.distributed, --dist-timeout {args.dist_timeout} s): {_one_line(exc)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    progress = _Progress(cmd, args.progress_every, enabled=not args.no_progress)
    try:
        report = restore(
            args.inputs,
            args.output,
            config,
            manifest=args.manifest,
            rank=rank,
            world_size=world_size,
            progress=progress,
        )
    except SettingsMismatchError as exc:
        return _usage_error(cmd, _mismatch_message(exc, args.output))
    except KernelReadError as exc:  # the run's kernel, read before the first image
        return _usage_error(cmd, f"--operator: {exc}")
    except ImageReadError as exc:  # the run's mask, read before the first image
        return _usage_error(cmd, f"--mask: {exc}")
    except WeightsUnavailableError as exc:
        return _usage_error(cmd, f"--denoiser: {exc} (here: --weights FILE)")
    except (ValueError, TypeError, FileNotFoundError) as exc:
        return _usage_error(cmd, _flagged(exc))
    except OSError as exc:
        if not args.output.is_dir():  # the output folder cannot be created
            return _usage_error(cmd, f"-o: cannot create the output folder {args.output}: {exc}")
        # the ledger or an output could not be written (a full disk, lost permissions)
        print(
            f"{PROG} {cmd}: failed: cannot write in {args.output}: {_one_line(exc)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:  # while collecting the inputs or loading: before any batch
        print(
            f"{PROG} {cmd}: interrupted before the first batch: nothing was restored",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    try:
        _write_report(report.as_dict(), report_path)
    except OSError as exc:
        print(_summary(cmd, report, report_path))
        print(f"{PROG} {cmd}: failed: cannot write the report: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    print(_summary(cmd, report, report_path))
    if distributed.active():  # every rank waits here; rank 0 writes the run's merged report
        try:
            merged = distributed.gather_report(report, args.output)
        except RuntimeError as exc:  # a rank died or hung past --dist-timeout
            print(
                f"{PROG} {cmd}: failed: rank {rank} gave up waiting for the other ranks "
                f"(--dist-timeout {args.dist_timeout} s): {_one_line(exc)}; its own images are "
                "in its ledger; run the same command again to finish the rest",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if merged is not None:
            merged_path = args.output / REPORT_NAME
            _write_report(merged, merged_path)
            dups = len(merged["ledger"]["duplicates"]) if merged["ledger"] else 0
            print(
                f"{PROG} {cmd}: {world_size} ranks: {merged['total']} images: "
                f"{merged['done']} done, {merged['skipped']} skipped (done before), "
                f"{len(merged['failed'])} failed, {dups} done twice; "
                f"{merged['images_per_s']:.2f} images/s overall; report: {merged_path}"
            )
    if report.interrupted:
        print(
            f"{PROG} {cmd}: interrupted: the finished images are in the ledger and the "
            "report; run the same command again to restore the rest",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if report.failed:
        first = report.failed[0]
        print(
            f"{PROG} {cmd}: failed: {len(report.failed)} of {report.total} images (first: "
            f"{first['key']}: {_one_line(first['reason'])}); the others are written; see "
            f"{report_path}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` the flags describe; the library's ConfigError for a bad one."""
    settings = recipe_settings(args.recipe) if args.recipe else {}
    arch = settings.get("arch") or default_arch("drunet")
    if args.arch and args.arch != arch["arch"]:
        arch = default_arch(args.arch)  # another architecture starts from its own defaults
    given = {dest: getattr(args, dest) for dest in _NET_FLAGS if getattr(args, dest) is not None}
    if arch["arch"] == "dncnn" and "bias" in given:
        given["norm"] = "batch" if given["bias"] else "bias-free"
    arch.get("network", arch).update(given)  # a gradient-step denoiser's flags are its network's
    settings.update(train_dir=str(args.train_dir), out_dir=str(args.out), arch=arch)
    settings.update({k: getattr(args, k) for k in _TRAIN_FIELDS if getattr(args, k) is not None})
    if args.val_dir is not None:
        settings["val_dir"] = str(args.val_dir)
    if args.clip is not None:
        settings["clip"] = args.clip or None
    if args.init is not None:
        settings["init"] = str(args.init)
    if args.loss_option:
        settings["loss_options"] = {**settings.get("loss_options", {}), **dict(args.loss_option)}
    return TrainConfig(**settings)


def _train(args: argparse.Namespace) -> int:
    def usage(exc: Exception) -> int:  # the library's message, with the flag it concerns
        flag = _FLAG_OF.get(getattr(exc, "field", None))
        return _usage_error("train", f"{flag}: {exc}" if flag else str(exc))

    try:
        cfg = _train_config(args)
    except (ValueError, TypeError) as exc:
        return usage(exc)
    ready = False

    def summary(resume_step: int) -> None:
        # called by train once every check has passed, before it writes anything
        nonlocal ready
        ready = True
        low, high = (round(s * 255, 2) for s in cfg.sigma)
        arch = ", ".join(f"{k}={v}" for k, v in cfg.arch.items() if k != "arch")
        print(
            f"{PROG} train: {cfg.arch['arch']} ({arch or 'defaults'}), "
            f"{'gray' if cfg.channels == 1 else 'color'}, sigma [{low:g}, {high:g}]/255, "
            f"{cfg.steps} steps of {cfg.batch_size} patches {cfg.patch_size}x{cfg.patch_size}"
        )
        if resume_step:
            print(f"resuming from step {resume_step} (checkpoint in {args.out})")

    started = time.perf_counter()
    try:
        result = train(
            cfg,
            resume=not args.fresh,
            # as deblur: a bar only on a terminal, not in a log file
            progress=not args.no_progress and sys.stderr.isatty(),
            on_ready=summary,
        )
    except FloatingPointError as exc:
        print(f"{PROG} train: failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, TypeError) as exc:
        if not ready:  # a setting, a folder or a checkpoint that cannot work: nothing was written
            return usage(exc)
        print(f"{PROG} train: failed: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"{PROG} train: failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    elapsed = time.perf_counter() - started
    print(f"step {result.step} of {cfg.steps} ({elapsed:.1f} s)")
    print(f"weights: {result.weights}")
    if result.best_psnr is None:
        print("best validation PSNR: none (no --val-dir)")
    else:
        sigmas = ", ".join(f"{s * 255:g}" for s in cfg.val_sigmas)
        print(
            f"best validation PSNR: {result.best_psnr:.2f} dB (mean over sigma {sigmas}/255), "
            f"weights: {result.best_weights}"
        )
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from pnpfast.denoisers.weight_file import export_weights

    meta = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return _usage_error("export", f"--meta takes KEY=VALUE, got {item!r}")
        meta[key] = value
    try:
        path = export_weights(args.source, args.target, half=not args.float32, meta=meta)
    except (FileNotFoundError, ValueError, OSError) as exc:
        return _usage_error("export", str(exc))
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    return EXIT_OK


def _backends(args: argparse.Namespace) -> int:

    try:
        forced = _env.forced_backend()
        table = pnpfast.backends()
    except ValueError as exc:  # an environment variable with a value pnpfast cannot use
        return _usage_error("backends", str(exc))
    width = max([len("backend"), *(len(name) for name in table)])
    print(f"{'backend':{width}s}  {'available':9s}  reason")
    for name, status in table.items():
        print(f"{name:{width}s}  {'yes' if status.available else 'no':9s}  {status.reason}")
    if forced:
        print(f"PNPFAST_BACKEND={forced}: every fused op runs on {forced} or fails")
    return EXIT_OK


COMMANDS = {
    "demo": _demo,
    "deblur": _deblur,
    "restore": _restore,
    "train": _train,
    "export": _export,
    "backends": _backends,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pnpfast`` command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code (0 success, 1 some images failed or training diverged, 2 bad
    arguments, 130 restore stopped by Ctrl-C); argparse's own exits (``--help``,
    ``--version``, a malformed option) are turned into return values too.
    """
    parser = _parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required: {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        tracebacks = _env.cli_traceback()
    except ValueError as exc:
        return _usage_error(args.command, str(exc))
    try:
        return COMMANDS[args.command](args)
    except Exception as exc:  # the last resort: one line on stderr, unless asked for more
        if tracebacks:
            traceback.print_exc()
        else:
            print(
                f"{PROG} {args.command}: failed: {type(exc).__name__}: {_one_line(exc)} "
                f"(PNPFAST_TRACEBACK=1 prints where)",
                file=sys.stderr,
            )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

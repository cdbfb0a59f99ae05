"""The ``pnpfast`` command line: ``demo``, ``deblur`` and ``backends``.

    pnpfast demo -o pnpfast-demo                 # a self-contained deblurring demo
    pnpfast deblur a.png b.jpg --kernel k.mat --noise 7.65 -o restored/
    pnpfast backends                             # which fused-op backends run here, and why not

Exit codes: 0 success; 1 some images of ``deblur`` failed (the others are written); 2 bad
arguments (including an unreadable kernel, an unknown denoiser or an unavailable device).
"""

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import pnpfast
from pnpfast.io import (
    ImageReadError,
    KernelReadError,
    read_image,
    read_kernel,
    side_by_side,
    write_image,
)
from pnpfast.metrics import psnr, ssim

__all__ = ["main", "motion_kernel"]

PROG = "pnpfast"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DEMO_KERNEL_SIZE = 15
DEMO_KERNEL_ANGLE = 30.0
DEMO_SEED = 0


def motion_kernel(size: int = DEMO_KERNEL_SIZE, angle: float = DEMO_KERNEL_ANGLE) -> torch.Tensor:
    """A straight motion-blur kernel: an anti-aliased line segment through the centre.

    The segment has length ``size - 1`` pixels, centre c = (size - 1) / 2 and direction
    u = (cos angle, sin angle) measured counter-clockwise from the +x axis (columns to the
    right, rows upwards). Each pixel p gets the weight max(0, 1 - d(p)), d(p) the Euclidean
    distance from its centre to the segment, and the weights are normalised to sum 1. It is
    deterministic and needs no file; the demo uses the defaults, 15x15 at 30 degrees.

    Args:
        size: odd side of the square kernel, at least 3 (default 15).
        angle: direction of the motion in degrees (default 30).

    Returns:
        [size, size] float32 tensor, non-negative, summing to 1, symmetric under 180-degree
        rotation.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd int >= 3, got {size!r}")
    theta = math.radians(angle)
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - half
    px = coords.view(1, size).expand(size, size)  # column offset, to the right
    py = -coords.view(size, 1).expand(size, size)  # row offset, upwards
    ux, uy = math.cos(theta), math.sin(theta)
    t = (px * ux + py * uy).clamp(-half, half)  # foot of the perpendicular on the segment
    dist = torch.hypot(px - t * ux, py - t * uy)
    k = (1.0 - dist).clamp_min(0.0)
    return (k / k.sum()).to(torch.float32)


# ---------------------------------------------------------------------------------------------
# argument parsing


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _noise_level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"the noise level must be a number > 0, got {text}")
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
        epilog="Exit codes: 0 success, 1 some images failed, 2 bad arguments.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {pnpfast.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="deblur a built-in image and report PSNR, SSIM and time",
        description=(
            "Blur the astronaut image bundled with scikit-image (centre crop) with a built-in "
            f"{DEMO_KERNEL_SIZE}x{DEMO_KERNEL_SIZE} motion kernel at {DEMO_KERNEL_ANGLE:g} "
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
        "--iters", type=_positive_int, default=8, metavar="N", help="HQS iterations (default: 8)"
    )

    deblur = sub.add_parser(
        "deblur",
        help="restore blurred, noisy images with a known kernel",
        description=(
            "Restore each INPUT (blurred by KERNEL with circular boundaries, plus Gaussian "
            "noise of standard deviation SIGMA255 / 255) and write DIR/<stem>.png. A file that "
            "cannot be read or restored is reported and the others still get done."
        ),
    )
    deblur.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files")
    deblur.add_argument(
        "-k",
        "--kernel",
        type=Path,
        required=True,
        metavar="FILE",
        help="blur kernel: .npy, .png (normalised to sum 1) or .mat",
    )
    deblur.add_argument(
        "--kernel-key",
        default=None,
        metavar="K",
        help="name of the MATLAB variable holding the kernel (.mat)",
    )
    deblur.add_argument(
        "--kernel-index",
        type=_nonnegative_int,
        default=0,
        metavar="I",
        help="which kernel of a stack or cell array, from 0 (default: 0)",
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
        help="denoiser name for pnpfast.denoisers.load (default: the classical "
        "default, total variation)",
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
        type=_positive_int,
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
        "--skip-existing",
        action="store_true",
        help="skip an input whose output file already exists",
    )

    sub.add_parser("backends", help="list the fused-op backends and whether they can run here")
    return parser


def _usage_error(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _make_folder(folder: Path) -> str | None:
    """Create folder (and parents); the reason when that is impossible."""
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

    from skimage import data

    image = torch.from_numpy(data.astronaut().copy())  # [512, 512, 3] uint8
    top = (image.shape[0] - args.size) // 2
    left = (image.shape[1] - args.size) // 2
    crop = image[top : top + args.size, left : left + args.size]
    x = (crop.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0).contiguous()

    sigma = args.noise / 255.0
    kernel = motion_kernel()
    operator = pnpfast.operators.Blur(kernel)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(DEMO_SEED))
    y = operator(x) + sigma * noise
    denoiser = pnpfast.denoisers.load()

    print(
        f"{PROG} demo: astronaut {args.size}x{args.size} RGB, motion blur "
        f"{DEMO_KERNEL_SIZE}x{DEMO_KERNEL_SIZE} at {DEMO_KERNEL_ANGLE:g} degrees, "
        f"noise {args.noise:g}/255"
    )
    print(f"restoring with hqs, {args.iters} iterations, denoiser {type(denoiser).__name__}")
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


def _deblur(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    by_output: dict[Path, Path] = {}
    for path in args.inputs:
        out = args.output / f"{path.stem}.png"
        if out in by_output:
            return _usage_error(
                "deblur", f"{by_output[out]} and {path} would both be written to {out}"
            )
        by_output[out] = path
    try:
        kernel = read_kernel(args.kernel, key=args.kernel_key, index=args.kernel_index)
    except (KernelReadError, ValueError, TypeError) as exc:
        return _usage_error("deblur", str(exc))
    if args.device == "cuda" and not torch.cuda.is_available():
        return _usage_error("deblur", "--device cuda was asked for but CUDA is not available")
    device = torch.device(args.device)
    try:
        denoiser = pnpfast.denoisers.load(args.denoiser, args.weights, device=device)
    except (ValueError, TypeError, OSError) as exc:
        return _usage_error("deblur", f"cannot load the denoiser: {exc}")
    error = _make_folder(args.output)
    if error:
        return _usage_error("deblur", error)

    operator = pnpfast.operators.Blur(kernel.to(device))
    sigma = args.noise / 255.0
    done, skipped, failed = 0, 0, []
    bar = tqdm(by_output.items(), desc="deblur", unit="image", file=sys.stderr, disable=None)
    for out, path in bar:
        if args.skip_existing and out.exists():
            skipped += 1
            continue
        try:
            if out.resolve() == path.resolve():
                raise ValueError(f"the output {out} would overwrite the input")
            y = read_image(path).to(device)
            result = pnpfast.solve(
                y, operator, denoiser, method=args.method, sigma=sigma, max_iter=args.iters
            )
            write_image(out, result.x)
        except ImageReadError as exc:
            failed.append(path)
            tqdm.write(f"{PROG} deblur: failed: {exc}", file=sys.stderr)
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            failed.append(path)
            tqdm.write(
                f"{PROG} deblur: failed: {path}: {type(exc).__name__}: {exc}", file=sys.stderr
            )
        else:
            done += 1
    bar.close()

    summary = f"{done} done, {len(failed)} failed"
    if skipped:
        summary += f", {skipped} skipped (output exists)"
    print(summary)
    return EXIT_FAILED if failed else EXIT_OK


def _backends(args: argparse.Namespace) -> int:
    table = pnpfast.backends()
    width = max([len("backend"), *(len(name) for name in table)])
    print(f"{'backend':{width}s}  {'available':9s}  reason")
    for name, status in table.items():
        print(f"{name:{width}s}  {'yes' if status.available else 'no':9s}  {status.reason}")
    return EXIT_OK


COMMANDS = {"demo": _demo, "deblur": _deblur, "backends": _backends}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pnpfast`` command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code (0 success, 1 some images failed, 2 bad arguments); argparse's own
    exits (``--help``, ``--version``, a malformed option) are turned into return values too.
    """
    parser = _parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

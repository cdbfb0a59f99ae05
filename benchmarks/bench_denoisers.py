"""Benchmark of the denoisers: forward speed of the network architectures and denoising PSNR.

Two parts (``--part speed|psnr|all``, default all):

speed (op ``denoiser_forward``)
    The forward call ``D(x, 25/255)`` of each architecture, built by
    ``pnpfast.denoisers.architectures.build`` with random weights (no files needed), in eval mode
    under ``torch.no_grad``, on x = ``torch.rand`` of shape ``--shapes`` (default 8x3x256x256; the
    channel count of the networks is C of the shape). Architectures (``--providers``/``--archs``):

        conditional   the shipped conditional U-Net: the ``conditional-*`` recipe's DRUNet
                      (widths (32, 64, 128), 1 residual block per level, no biases, noise map)
        blind         the shipped blind U-Net: the same without the noise map (bias-free)
        drunet-dpir   DPIR's full DRUNet, ``DRUNet(C)`` defaults (widths (64, 128, 256, 512),
                      4 blocks, noise map, no biases; 32.6 M parameters at C = 3)
        dncnn-17      ``DnCNN(C, depth=17)`` defaults (biases, batch norm in eval mode)
        bfcnn-20      ``BFCNN(C, depth=20)`` (Kadkhodaie & Simoncelli, bias-free)

    Variants (``--variants``): ``<dtype>[+channels_last][+compile]``, dtype float32, bfloat16 or
    float16 (module and input cast to it), ``channels_last`` (module and input in that memory
    format), ``compile`` (``torch.compile(module, dynamic=False)``; left out with ``--quick``;
    a failure skips the variant with its reason). Defaults: on the CPU ``float32``; on CUDA
    float32, bfloat16 and float16, each eager and channels_last, plus float32+compile and
    bfloat16+channels_last+compile. Every variant's output is first checked against the
    float32 eager output of the same network: ``max |out - ref| <= tol * max |ref|`` with tol
    2e-3 for float32 (TF32, other conv algorithms), 2e-2 for float16 and 6e-2 for bfloat16; a
    variant that fails is still timed, with ``correct: false``.

    Timing: ``harness.measure_many`` over the variants of one architecture (warmup calls first,
    then the timed calls interleaved; median and p20/p80; CUDA events with an L2 flush on CUDA).
    Torch's defaults are kept (on CUDA cuDNN may use TF32 for float32 convolutions, no
    ``cudnn.benchmark``); the note of a float32 CUDA row says whether TF32 was allowed.

    Counted per call (the whole batch): parameters, and GFLOP of the convolutions only, from
    forward hooks on every Conv2d and ConvTranspose2d (run once on the meta device, so free):
    Conv2d ``2 * Cin/groups * kh*kw * Cout * Hout * Wout * B``; ConvTranspose2d
    ``2 * Cin * Cout/groups * kh*kw * Hin * Win * B`` (each input pixel meets every tap once; for
    the 2x2 stride-2 up-convolutions of DRUNet both count the same multiply-adds as a forward
    conv of the same size). Biases, activations, normalisation and additions are not counted.

    Rows (one per architecture x variant x shape) are appended to ``--out`` (default
    ``benchmarks/results/denoisers.jsonl``) with every column of ``harness.COLUMNS``:
    ``op`` = ``denoiser_forward``, ``provider`` = ``<arch>/<layout>`` with layout ``eager``,
    ``channels_last``, ``compile`` or ``channels_last+compile``, ``dtype`` the variant's dtype,
    ``bytes``/``gbps``/``frac_copy_bw`` null (a conv net is not bandwidth-bound), plus the keys
    ``arch``, ``variant``, ``params``, ``gflop`` (per call), ``tflops`` (achieved, conv FLOPs /
    median), ``images_per_s`` and, on the CPU, ``cpu_ms``: the median process CPU time (all
    threads, ``time.process_time``) of the timed calls. On a machine shared with other work
    the wall time says little; ``cpu_ms`` of a ``--threads 1`` run stays close to the wall time
    the call would take alone on one core. ``benchmarks/report.py`` lists the rows under
    ``denoiser_forward``.

psnr
    Denoising PSNR on Set12 (gray) and CBSD68 (color) from ``<data>/images`` (``--data``,
    default ``../shared/data`` next to the repository root), sigma 15, 25, 50 on the 0-255 scale
    (``--sigmas``). The protocol of ``MANIFEST.md`` "Verification" (this script reproduces its
    BF-CNN gray Set12 numbers to 0.01 dB):

    * the clean images are the set's ``*.png`` files in sorted file-name order, read by
      ``pnpfast.io.read_image`` (float32 on [0, 1]); ``--max-images N`` keeps the first N;
    * for each (model, set, sigma) ONE ``torch.Generator().manual_seed(0)`` is made and the noise
      of the images is drawn from it one image after the other, in that order:
      ``y = x + sigma/255 * torch.randn(x.shape, generator=g)`` (float32, on the CPU), so every
      model sees the same noisy images, and the first N images get the same noise with and
      without ``--max-images``. (A fresh generator per image gives other noise: 32.61 instead
      of 32.58 dB for BF-CNN gray at sigma 15.);
    * y is not clipped; the denoiser gets ``D(y, sigma/255)`` (the conditional networks use it,
      the blind ones ignore it), one image at a time under ``torch.no_grad``; the output is
      clamped to [0, 1]; PSNR with peak 1 (``pnpfast.metrics.psnr``), averaged over the images.
      ``psnr_noisy`` is the PSNR of y itself (about 20 log10(255/sigma)) and
      ``psnr_noisy_clipped`` that of y clamped to [0, 1] (the "PSNR noisy" column of MANIFEST).

    On CUDA, TF32 is switched off for this part, so that the numbers match the CPU's.

    Models (``--models``; ``ours`` and ``public`` name the groups):

        conditional          ours: the shipped conditional networks, gray on Set12 and color on
                             CBSD68, given the true sigma; ``--ours conditional-gray=PATH`` (and
                             ``conditional-color=PATH``) evaluate a pnpfast weight file instead
        blind                ours: the shipped blind networks (``--ours blind-gray=PATH`` ...)
        bfcnn                kadkhodaie_bfcnn: BF-CNN gray (Set12) and color (CBSD68), 0-100
        mohan-bf-dncnn-0-55  mohan_bias_free/bf_dncnn_gray_sigma0-55.pt (Set12)
        mohan-dncnn-0-55     mohan_bias_free/dncnn_withbias_gray_sigma0-55.pt (Set12)
        kair-dncnn-25        kair/dncnn_25.pth (Set12, sigma 25 only: it is non-blind)
        saoyan-dncnn-s       saoyan_dncnn/DnCNN-S-{15,25,50}.pth (Set12, each at its own sigma)
        saoyan-dncnn-b       saoyan_dncnn/DnCNN-B.pth (Set12, every sigma)

    A model whose file is missing (or whose shipped files are not there yet) is skipped with the
    reason printed. One row per (model, set, sigma) goes to ``--psnr-out`` (default
    ``benchmarks/results/denoiser_psnr.jsonl``): model, weights (the file relative to the data
    folder, ``shipped``, or the path given to ``--ours``), weights_sha256 (first 16 hex digits),
    set, sigma255, images, psnr_noisy, psnr_noisy_clipped, psnr, seconds (the forward passes
    only), device, torch, triton, cuda, git_sha, timestamp. The rows have no ``op``, so
    ``report.py`` leaves them out of its timing tables. The file is REWRITTEN after each row: the
    rows already there whose (model, set, sigma255) was not measured again, in their order, then
    this run's rows; a row measured again replaces the old one (atomically, via a temporary
    file). Because partial rows would replace full ones, ``--max-images`` needs an explicit
    ``--psnr-out``.

``--markdown`` measures nothing: it prints the Markdown tables of the results files (PSNR:
one row per model, one column per set and sigma; speed: the latest row per architecture,
variant, shape and device), for the README.

    python benchmarks/bench_denoisers.py --part speed --device cpu --reps 5 --warmup 1
    python benchmarks/bench_denoisers.py --part psnr --models public
    python benchmarks/bench_denoisers.py --part psnr --models ours \\
        --ours conditional-gray=runs/cg/best.pt --ours conditional-color=runs/cc/best.pt
    python benchmarks/bench_denoisers.py --part psnr --models bfcnn --sets Set12 --sigmas 25 \\
        --max-images 2 --psnr-out /tmp/psnr.jsonl
    python benchmarks/bench_denoisers.py --markdown
"""

import argparse
import copy
import datetime
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from pnpfast._atomic import atomic_open
from pnpfast.denoisers import load
from pnpfast.denoisers.architectures import build
from pnpfast.denoisers.shipped import shipped_path
from pnpfast.io import read_image
from pnpfast.metrics import psnr
from pnpfast.train.recipes import RECIPES

OP = "denoiser_forward"
SPEED_NAME = "denoisers"  # = the name gpu_check.sh derives from bench_denoisers.py
PSNR_NAME = "denoiser_psnr"
DEFAULT_SHAPES = "8x3x256x256"
DATA = harness.DATA
SPEED_SIGMA = 25 / 255

# --------------------------------------------------------------------------------------------
# speed

ARCHS = ("conditional", "blind", "drunet-dpir", "dncnn-17", "bfcnn-20")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOLERANCE = {torch.float32: 2e-3, torch.float16: 2e-2, torch.bfloat16: 6e-2}
CPU_VARIANTS = ("float32",)
CUDA_VARIANTS = (
    "float32",
    "float32+channels_last",
    "bfloat16",
    "bfloat16+channels_last",
    "float16",
    "float16+channels_last",
    "float32+compile",
    "bfloat16+channels_last+compile",
)


def arch_config(arch: str, channels: int) -> dict:
    """The ``build`` config of a benchmarked architecture for ``channels`` channels."""
    if arch == "conditional":
        return {**RECIPES["conditional-color"]["arch"], "channels": channels}
    if arch == "blind":
        return {**RECIPES["blind-color"]["arch"], "channels": channels}
    if arch == "drunet-dpir":
        return {"arch": "drunet", "channels": channels}
    if arch == "dncnn-17":
        return {"arch": "dncnn", "channels": channels, "depth": 17}
    if arch == "bfcnn-20":
        return {"arch": "bfcnn", "channels": channels, "depth": 20}
    raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")


@dataclass(frozen=True)
class Variant:
    dtype: torch.dtype
    channels_last: bool = False
    compile: bool = False

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def layout(self) -> str:
        """eager, channels_last, compile or channels_last+compile."""
        flags = (("channels_last", self.channels_last), ("compile", self.compile))
        return "+".join(name for name, on in flags if on) or "eager"

    @property
    def name(self) -> str:
        return "+".join([self.dtype_name, *([self.layout] if self.layout != "eager" else [])])


def parse_variant(text: str) -> Variant:
    """ "bfloat16+channels_last+compile" -> Variant(torch.bfloat16, True, True)."""
    dtype_name, *flags = [p.strip() for p in text.split("+")]
    if dtype_name not in DTYPES:
        raise argparse.ArgumentTypeError(
            f"bad variant {text!r}: it starts with a dtype ({', '.join(DTYPES)})"
        )
    bad = [f for f in flags if f not in ("channels_last", "compile")]
    if bad:
        raise argparse.ArgumentTypeError(
            f"bad variant {text!r}: unknown {bad}; use <dtype>[+channels_last][+compile]"
        )
    return Variant(DTYPES[dtype_name], "channels_last" in flags, "compile" in flags)


def parse_variants(text: str) -> list[Variant]:
    return [parse_variant(p) for p in harness.parse_list(text)]


def conv_flops(net: torch.nn.Module, x: torch.Tensor, sigma: float) -> int:
    """FLOPs of the Conv2d and ConvTranspose2d layers in one call ``net(x, sigma)`` (2 per
    multiply-add, see the module docstring). Counted on the meta device when the network runs
    there (no arithmetic), else on ``x`` itself."""
    total = 0

    def hook(module: torch.nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        if isinstance(module, torch.nn.ConvTranspose2d):
            inp = inputs[0]
            pixels = inp.shape[0] * inp.shape[2] * inp.shape[3]
            cout = module.out_channels // module.groups
            total += 2 * inp.shape[1] * cout * kh * kw * pixels
        else:
            total += 2 * (module.in_channels // module.groups) * kh * kw * out.numel()

    def count(model: torch.nn.Module, inp: torch.Tensor) -> int:
        nonlocal total
        total = 0
        convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, convs)]
        try:
            with torch.no_grad():
                model(inp, sigma)
        finally:
            for h in handles:
                h.remove()
        return total

    try:
        meta = copy.deepcopy(net).to("meta")
        return count(meta, torch.empty(x.shape, dtype=x.dtype, device="meta"))
    except (RuntimeError, NotImplementedError, ValueError, TypeError):
        return count(net, x)


class Skip(Exception):
    """A variant that cannot run here; the message says why."""


def variant_fn(
    net: torch.nn.Module, x: torch.Tensor, variant: Variant
) -> Callable[[], torch.Tensor]:
    """The call to time for ``variant``: ``net`` on ``x``, or cast copies of them."""
    plain = variant.dtype == torch.float32 and not variant.channels_last
    module = net if plain else copy.deepcopy(net).to(dtype=variant.dtype)
    xv = x.to(variant.dtype)
    if variant.channels_last:
        module = module.to(memory_format=torch.channels_last)
        xv = xv.contiguous(memory_format=torch.channels_last)
    fn: Callable = module
    if variant.compile:
        fn = torch.compile(module, dynamic=False)
        try:
            with torch.no_grad():
                fn(xv, SPEED_SIGMA)
        except Exception as exc:
            raise Skip(f"torch.compile failed: {type(exc).__name__}: {exc}") from None
    return lambda: fn(xv, SPEED_SIGMA)


def _with_cpu_time(fn: Callable[[], object], samples: list[float]) -> Callable[[], object]:
    """``fn`` that also appends the process CPU time of each call (ms, all threads)."""

    def call() -> object:
        start = time.process_time()
        out = fn()
        samples.append((time.process_time() - start) * 1e3)
        return out

    return call


def speed_rows(
    arch: str,
    shape: tuple[int, ...],
    variants: list[Variant],
    device: str,
    *,
    warmup: int,
    reps: int,
) -> list[dict]:
    """Check and time every variant of ``arch`` at ``shape``; one row per variant that ran."""
    if any(v.compile for v in variants):
        torch._dynamo.reset()  # a fresh compile cache per architecture
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # the random weights
    net = build(arch_config(arch, shape[1])).eval().requires_grad_(False).to(device)
    x = torch.rand(shape, generator=gen).to(device)
    params = sum(p.numel() for p in net.parameters())
    flops = conv_flops(net, x, SPEED_SIGMA)
    on_gpu = torch.device(device).type == "cuda"
    fns, checks, notes = {}, {}, {}
    with torch.no_grad():
        ref = net(x, SPEED_SIGMA).float()
        for variant in variants:
            try:
                fn = variant_fn(net, x, variant)
                out = ref if variant == Variant(torch.float32) else fn()
            except Skip as skip:
                print(f"  skip {arch} {variant.name}: {skip}", file=sys.stderr)
                continue
            except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
                # e.g. a dtype without kernels on this device, or out of memory
                print(f"  skip {arch} {variant.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            correct, err = harness.check_close(out.float(), ref, TOLERANCE[variant.dtype])
            del out
            note = []
            if not correct:
                note.append(f"output differs from float32 eager: max rel err {err:.2e}")
            if on_gpu and variant.dtype == torch.float32:
                tf32 = torch.backends.cudnn.allow_tf32
                note.append(f"cudnn TF32 {'allowed' if tf32 else 'off'}")
            fns[variant.name], checks[variant.name], notes[variant.name] = fn, correct, note
        cpu: dict[str, list[float]] = {name: [] for name in fns}
        if not on_gpu:
            fns = {name: _with_cpu_time(fn, cpu[name]) for name, fn in fns.items()}
        timings = harness.measure_many(fns, warmup=warmup, reps=reps, device=device, flush_l2=True)
    del ref
    load = harness.load_note(device)
    rows = []
    for variant in variants:
        if variant.name not in fns:
            continue
        t = timings[variant.name]
        seconds = t.median_ms * 1e-3
        row = {
            **harness.make_row(
                op=OP,
                provider=f"{arch}/{variant.layout}",
                shape=shape,
                dtype=variant.dtype,
                timing=t,
                nbytes=None,
                device=device,
                correct=checks[variant.name],
                note="; ".join(n for n in (*notes[variant.name], load) if n),
            ),
            "arch": arch,
            "variant": variant.name,
            "params": params,
            "gflop": flops / 1e9,
            "tflops": flops / seconds / 1e12 if seconds > 0 else None,
            "images_per_s": shape[0] / seconds if seconds > 0 else None,
            "cpu_ms": harness.quantile(cpu[variant.name][-reps:], 0.5) if not on_gpu else None,
        }
        rows.append(row)
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def speed_table(rows: list[dict]) -> str:
    """A plain-text table of speed rows for the terminal."""
    header = ("arch", "variant", "params M", "GFLOP", "median ms", "p20-p80 ms", "img/s")
    header += ("TFLOP/s", "CPU ms", "ok", "note")
    lines = [
        (
            r["arch"],
            r["variant"],
            f"{r['params'] / 1e6:.2f}",
            f"{r['gflop']:.1f}",
            _fmt(r["median_ms"], ".2f"),
            f"{_fmt(r['p20_ms'], '.2f')}-{_fmt(r['p80_ms'], '.2f')}",
            _fmt(r["images_per_s"], ".1f"),
            _fmt(r["tflops"], ".3f"),
            _fmt(r["cpu_ms"], ".1f"),
            "yes" if r["correct"] else "NO",
            r["note"],
        )
        for r in rows
    ]
    return harness.text_table(header, lines)


def run_speed(args, parser: argparse.ArgumentParser) -> int:
    device = args.device
    on_gpu = device == "cuda"
    archs = args.providers or list(ARCHS)
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        parser.error(f"unknown architectures {unknown}; choose from {', '.join(ARCHS)}")
    variants = args.variants or [
        parse_variant(v) for v in (CUDA_VARIANTS if on_gpu else CPU_VARIANTS)
    ]
    if args.quick:
        variants = [v for v in variants if not v.compile]
    reps = args.reps or (3 if args.quick else 100 if on_gpu else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10 if on_gpu else 3)
    print(f"{OP} on {device}: {reps} reps after {warmup} warmup")
    for shape in args.shapes:
        if len(shape) != 4:
            parser.error(f"shape {'x'.join(map(str, shape))} is not BxCxHxW")
        for arch in archs:
            rows = speed_rows(arch, shape, variants, device, warmup=warmup, reps=reps)
            harness.append_extended_rows(args.out, rows)
            print()
            print(f"{arch} at {'x'.join(map(str, shape))}")
            print(speed_table(rows))
    print(f"\nspeed rows appended to {args.out}")
    return 0


# --------------------------------------------------------------------------------------------
# psnr

SETS = {"Set12": 1, "CBSD68": 3}  # name -> channels
COLORS = {1: "gray", 3: "color"}
SIGMAS = (15, 25, 50)
OURS = ("conditional", "blind")
PUBLIC = (
    "bfcnn",
    "mohan-bf-dncnn-0-55",
    "mohan-dncnn-0-55",
    "kair-dncnn-25",
    "saoyan-dncnn-s",
    "saoyan-dncnn-b",
)
MODELS = (*OURS, *PUBLIC)
OURS_KEYS = tuple(f"{kind}-{color}" for kind in OURS for color in COLORS.values())


@dataclass(frozen=True)
class Source:
    """One model on one set: how to load it and at which sigmas it runs."""

    model: str
    set: str
    name: str  # the name given to pnpfast.denoisers.load
    weights: str | None  # public: relative to the data folder; ours: a path, or None = shipped
    sigmas: tuple[float, ...] | None = None  # None: every sigma asked for


def sources(ours: dict[str, str]) -> list[Source]:
    """Every (model, set) of the benchmark, in the order of MODELS."""
    out = []
    for kind in OURS:
        for set_name, channels in SETS.items():
            path = ours.get(f"{kind}-{COLORS[channels]}")
            out.append(Source(kind, set_name, "pnpfast" if path else kind, path))
    bf, mohan = "weights/kadkhodaie_bfcnn", "weights/mohan_bias_free"
    out += [
        Source("bfcnn", "Set12", "bfcnn", f"{bf}/bfcnn_gray_bsd400_sigma0-100.pt"),
        Source("bfcnn", "CBSD68", "bfcnn", f"{bf}/bfcnn_color_bsd300_sigma0-100.pt"),
        Source("mohan-bf-dncnn-0-55", "Set12", "bf-dncnn", f"{mohan}/bf_dncnn_gray_sigma0-55.pt"),
        Source("mohan-dncnn-0-55", "Set12", "dncnn", f"{mohan}/dncnn_withbias_gray_sigma0-55.pt"),
        Source("kair-dncnn-25", "Set12", "dncnn", "weights/kair/dncnn_25.pth", (25,)),
    ]
    out += [
        Source("saoyan-dncnn-s", "Set12", "dncnn", f"weights/saoyan_dncnn/DnCNN-S-{s}.pth", (s,))
        for s in SIGMAS
    ]
    out.append(Source("saoyan-dncnn-b", "Set12", "dncnn", "weights/saoyan_dncnn/DnCNN-B.pth"))
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _shown_path(path: Path) -> str:
    """A path for the row: relative to the repository root when inside it."""
    try:
        return str(path.resolve().relative_to(harness.ROOT))
    except ValueError:
        return str(path)


def resolve(source: Source, data: Path) -> tuple[Path, str]:
    """(the weight file, its label for the row); raises Skip when it is missing."""
    if source.name in OURS:
        path = shipped_path(source.name, SETS[source.set])
        if not path.exists():
            raise Skip(
                f"the shipped file {path} does not exist yet; pass --ours "
                f"{source.name}-{COLORS[SETS[source.set]]}=PATH to evaluate a weight file"
            )
        return path, "shipped"
    path = Path(source.weights) if source.name == "pnpfast" else data / source.weights
    if not path.is_file():
        raise Skip(f"weights file {path} not found")
    label = _shown_path(path) if source.name == "pnpfast" else source.weights
    return path, label


def load_source(source: Source, path: Path, device: str) -> torch.nn.Module:
    """The denoiser of ``source`` on ``device``; raises Skip when it cannot be loaded."""
    try:
        if source.name in OURS:
            return load(source.name, device=device)  # the shipped gray+color pair
        return load(source.name, weights=path, device=device)
    except (ValueError, FileNotFoundError) as err:
        raise Skip(str(err)) from None


def set_images(data: Path, set_name: str, max_images: int | None) -> list[tuple[str, torch.Tensor]]:
    """(file stem, [1, C, H, W] float32 on [0, 1]) of the set's PNG files in sorted order."""
    paths = sorted((data / "images" / set_name).glob("*.png"))
    if max_images is not None:
        paths = paths[:max_images]
    return [(p.stem, read_image(p)) for p in paths]


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def denoise_set(
    net: torch.nn.Module, images: list[tuple[str, torch.Tensor]], sigma255: float, device: str
) -> dict:
    """Mean PSNRs of ``net`` on ``images`` at ``sigma255`` by the protocol of the docstring."""
    gen = torch.Generator().manual_seed(0)  # one per (model, set, sigma), images in file order
    sigma = sigma255 / 255
    noisy, clipped, denoised, seconds = [], [], [], 0.0
    with torch.no_grad():
        for _, x in images:
            y = x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)
            noisy.append(psnr(y, x).item())
            clipped.append(psnr(y.clamp(0, 1), x).item())
            yd = y.to(device)
            _sync(device)
            start = time.perf_counter()
            out = net(yd, sigma)
            _sync(device)
            seconds += time.perf_counter() - start
            denoised.append(psnr(out.clamp(0, 1).cpu(), x).item())
    n = len(images)
    return {
        "images": n,
        "psnr_noisy": round(sum(noisy) / n, 4),
        "psnr_noisy_clipped": round(sum(clipped) / n, 4),
        "psnr": round(sum(denoised) / n, 4),
        "seconds": round(seconds, 3),
    }


def _sigma_value(sigma: float) -> int | float:
    return int(sigma) if float(sigma).is_integer() else sigma


def psnr_key(row: dict) -> tuple:
    return (row.get("model"), row.get("set"), row.get("sigma255"))


read_jsonl = harness.read_jsonl


def store_psnr_rows(path: Path, new_rows: list[dict]) -> None:
    """Rewrite ``path``: its rows of other (model, set, sigma255) keys, in their order, then
    ``new_rows`` (which replace the rows of their keys). Atomic: a temporary file, renamed."""
    keys = {psnr_key(r) for r in new_rows}
    kept = [r for r in read_jsonl(path) if psnr_key(r) not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in [*kept, *new_rows])


def expand_models(names: list[str] | None) -> list[str]:
    if not names:
        return list(MODELS)
    out = []
    for name in names:
        group = {"ours": OURS, "public": PUBLIC, "all": MODELS}.get(name, (name,))
        out += [m for m in group if m not in out]
    return out


def parse_ours(items: list[str] | None) -> dict[str, str]:
    ours = {}
    for item in items or []:
        key, sep, path = item.partition("=")
        if not sep or key.strip() not in OURS_KEYS or not path.strip():
            raise argparse.ArgumentTypeError(
                f"bad --ours {item!r}: use KIND-COLOR=PATH with KIND-COLOR one of "
                f"{', '.join(OURS_KEYS)}"
            )
        ours[key.strip()] = path.strip()
    return ours


def run_psnr(args, parser: argparse.ArgumentParser, *, required: bool) -> int:
    device = args.device
    data = args.data
    if not (data / "images").is_dir():
        print(f"psnr: skipped, no test data at {data} (--data)", file=sys.stderr)
        return 2 if required else 0
    try:
        ours = parse_ours(args.ours)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    models = expand_models(args.models)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}, ours, public")
    sets = args.sets or list(SETS)
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        parser.error(f"unknown sets {unknown}; choose from {', '.join(SETS)}")
    if args.max_images is not None and args.psnr_out is None:
        parser.error(
            "--max-images makes rows of a part of a set, which would replace the full rows of "
            "the default results file; pass --psnr-out too"
        )
    out = args.psnr_out or harness.results_path(PSNR_NAME)
    sigmas = args.sigmas or list(SIGMAS)
    if device == "cuda":  # full float32 convolutions, as on the CPU
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    env = harness.environment(str(torch.device(device)))
    chosen = [s for s in sources(ours) if s.model in models and s.set in sets]
    done = []
    for set_name in sets:
        todo = [s for s in chosen if s.set == set_name]
        if not todo:
            continue
        images = set_images(data, set_name, args.max_images)
        if not images:
            print(f"psnr: no images in {data / 'images' / set_name}, skipped", file=sys.stderr)
            continue
        print(f"\n{set_name}: {len(images)} images")
        for source in todo:
            run_sigmas = [s for s in sigmas if source.sigmas is None or s in source.sigmas]
            if not run_sigmas:
                continue
            try:
                path, label = resolve(source, data)
                net = load_source(source, path, device)
            except Skip as skip:
                print(f"  skip {source.model} on {set_name}: {skip}", file=sys.stderr)
                continue
            sha = _sha256(path)
            for sigma255 in run_sigmas:
                result = denoise_set(net, images, sigma255, device)
                row = {
                    "model": source.model,
                    "weights": label,
                    "weights_sha256": sha,
                    "set": set_name,
                    "sigma255": _sigma_value(sigma255),
                    **result,
                    **env,
                    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                }
                done.append(row)
                store_psnr_rows(out, [row])
                print(
                    f"  {source.model:20s} sigma {_sigma_value(sigma255):>4}: "
                    f"{result['psnr']:.2f} dB (noisy {result['psnr_noisy']:.2f}, "
                    f"{result['seconds']:.1f} s)  [{label}]",
                    flush=True,
                )
            del net
    print(f"\n{len(done)} psnr rows written to {out}")
    return 0


# --------------------------------------------------------------------------------------------
# markdown


def _model_rank(model: str) -> tuple:
    return (MODELS.index(model), "") if model in MODELS else (len(MODELS), model)


def _set_rank(name: str) -> tuple:
    return (list(SETS).index(name), "") if name in SETS else (len(SETS), name)


def psnr_markdown(rows: list[dict]) -> str:
    """Rows: models (and the noisy input); columns: set x sigma. A cell measured on fewer
    images than the most seen for its set is marked with *."""
    rows = [r for r in rows if "model" in r and "psnr" in r]
    if not rows:
        return "No denoising PSNR results yet."
    cols = sorted({(r["set"], r["sigma255"]) for r in rows}, key=lambda c: (_set_rank(c[0]), c[1]))
    full = {}
    for r in rows:
        full[r["set"]] = max(full.get(r["set"], 0), r["images"])
    cells: dict[str, dict] = {}
    weights: dict[str, list[str]] = {}
    noisy: dict[tuple, dict] = {}
    for r in sorted(rows, key=lambda r: (_set_rank(r["set"]), r["sigma255"])):
        cells.setdefault(r["model"], {})[(r["set"], r["sigma255"])] = r
        shown = "shipped" if r["weights"] == "shipped" else Path(r["weights"]).name
        weights.setdefault(r["model"], [])
        if shown not in weights[r["model"]]:
            weights[r["model"]].append(shown)
        col = (r["set"], r["sigma255"])
        if col not in noisy or r["images"] > noisy[col]["images"]:
            noisy[col] = r
    partial = False

    def cell(r: dict | None, key: str) -> str:
        nonlocal partial
        if r is None:
            return "-"
        mark = ""
        if r["images"] < full[r["set"]]:
            mark, partial = "*", True
        return f"{r[key]:.2f}{mark}"

    header = "| model | weights | " + " | ".join(f"{s} σ={g}" for s, g in cols) + " |"
    lines = [header, "|---|---|" + "---|" * len(cols)]
    for model in sorted(cells, key=_model_rank):
        values = [cell(cells[model].get(c), "psnr") for c in cols]
        lines.append(f"| {model} | {', '.join(weights[model])} | " + " | ".join(values) + " |")
    values = [cell(noisy.get(c), "psnr_noisy") for c in cols]
    lines.append("| noisy input | | " + " | ".join(values) + " |")
    sizes = ", ".join(f"{s} {n}" for s, n in sorted(full.items(), key=lambda i: _set_rank(i[0])))
    notes = [f"PSNR in dB, averaged over the images ({sizes})."]
    if partial:
        notes.append("\\* on fewer images than the rest of its set.")
    return "\n".join(lines) + "\n\n" + " ".join(notes)


def speed_markdown(rows: list[dict]) -> str:
    """The latest row per (arch, variant, shape, device)."""
    rows = [r for r in rows if r.get("op") == OP]
    if not rows:
        return "No denoiser speed results yet."
    latest: dict[tuple, dict] = {}
    for r in rows:
        key = (r["arch"], r["variant"], r["shape"], r["device"])
        if key not in latest or str(r["timestamp"]) >= str(latest[key]["timestamp"]):
            latest[key] = r

    def rank(r: dict) -> tuple:
        arch = ARCHS.index(r["arch"]) if r["arch"] in ARCHS else len(ARCHS)
        return (r["device"], r["shape"], arch, r["arch"])

    lines = [
        "| architecture | params | variant | shape | GFLOP/call | median ms (p20-p80) | images/s "
        "| TFLOP/s | CPU ms | device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(latest.values(), key=rank):
        ok = "" if r.get("correct") else " (incorrect)"
        cells = [
            r["arch"],
            f"{r['params'] / 1e6:.2f} M",
            r["variant"] + ok,
            r["shape"],
            f"{r['gflop']:.1f}",
            f"{_fmt(r['median_ms'], '.1f')} "
            f"({_fmt(r['p20_ms'], '.1f')}-{_fmt(r['p80_ms'], '.1f')})",
            _fmt(r.get("images_per_s"), ".1f"),
            _fmt(r.get("tflops"), ".3f"),
            _fmt(r.get("cpu_ms"), ".1f"),
            str(r["device"]),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = harness.common_parser(
        __doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=SPEED_NAME
    )
    p.description += (
        " --providers (or --archs) are the architectures of the speed part; --out is the speed"
        " results file. See the module docstring for the protocols."
    )
    p.add_argument("--part", choices=("speed", "psnr", "all"), default="all")
    p.add_argument(
        "--archs", dest="providers", type=harness.parse_list, help=f"one of {', '.join(ARCHS)}"
    )
    p.add_argument(
        "--variants",
        type=parse_variants,
        default=None,
        help="speed: <dtype>[+channels_last][+compile],... (default: float32 on the CPU, "
        "every dtype/layout plus two compiled ones on CUDA)",
    )
    p.add_argument(
        "--data", type=Path, default=DATA, help="folder with images/ and weights/ (../shared/data)"
    )
    p.add_argument("--sets", type=harness.parse_list, default=None, help="Set12,CBSD68")
    p.add_argument(
        "--sigmas",
        type=lambda t: [float(s) for s in harness.parse_list(t)],
        default=None,
        help="noise levels on the 0-255 scale (default 15,25,50)",
    )
    p.add_argument(
        "--models",
        type=harness.parse_list,
        default=None,
        help=f"psnr: {', '.join(MODELS)}; or the groups ours, public (default all)",
    )
    p.add_argument(
        "--ours",
        action="append",
        default=None,
        metavar="KIND-COLOR=PATH",
        help=f"a pnpfast weight file for one of {', '.join(OURS_KEYS)} instead of the shipped "
        "one (repeatable)",
    )
    p.add_argument("--max-images", type=int, default=None, help="psnr: first N images of a set")
    p.add_argument(
        "--psnr-out",
        type=Path,
        default=None,
        help=f"psnr results file (default benchmarks/results/{PSNR_NAME}.jsonl)",
    )
    p.add_argument(
        "--markdown",
        action="store_true",
        help="only print the Markdown tables of the results files (--psnr-out, --out)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.markdown:
        print(psnr_markdown(read_jsonl(args.psnr_out or harness.results_path(PSNR_NAME))))
        print()
        print(speed_markdown(read_jsonl(args.out)))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    if args.max_images is not None and args.max_images < 1:
        parser.error("--max-images must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rc = 0
    if args.part in ("speed", "all"):
        rc = max(rc, run_speed(args, parser))
    if args.part in ("psnr", "all"):
        rc = max(rc, run_psnr(args, parser, required=args.part == "psnr"))
    return rc


if __name__ == "__main__":
    sys.exit(main())

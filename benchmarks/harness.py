"""The shared benchmark harness: timing, copy bandwidth, result rows and the common CLI.

Every ``benchmarks/bench_<op>.py`` builds its inputs in a setup function, checks each provider
against the pnpfast reference, times it with ``measure`` and appends one row per (provider,
shape, dtype) to ``benchmarks/results/<op>.jsonl`` through ``append_rows``. Rows have the fixed
columns of ``COLUMNS``; ``benchmarks/report.py`` turns them into tables.

Timing: after ``warmup`` untimed calls (so compilation, autotuning and the first call are never
timed), each of ``reps`` calls is timed on its own: on CUDA with a pair of CUDA events around the
call (optionally after flushing the L2 cache, outside the timed region), on the CPU with
``time.perf_counter``. The median and the 20th and 80th percentiles are reported.
``measure_many`` interleaves the timed calls of several providers, so that a machine shared
with other work slows them alike.

Every op benchmark also measures what the dispatcher costs (``run_dispatch_part``): on a tiny
CPU input, the public op with the automatic backend choice against a direct call of the
reference it picks, interleaved over thousands of calls.
"""

import argparse
import ctypes
import datetime
import functools
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
# The real images, kernels and public weights (../shared/data/MANIFEST.md); PNPFAST_SHARED_DATA
# points elsewhere, e.g. at the subset that benchmarks/gpu_pack.sh carries to a GPU machine.
DATA = Path(os.environ.get("PNPFAST_SHARED_DATA") or ROOT.parent / "shared" / "data")

COLUMNS = (
    "op",
    "provider",
    "shape",
    "dtype",
    "median_ms",
    "p20_ms",
    "p80_ms",
    "bytes",
    "gbps",
    "frac_copy_bw",
    "device",
    "torch",
    "triton",
    "cuda",
    "git_sha",
    "timestamp",
    "correct",
    "note",
)

L2_FLUSH_BYTES = 256 * 2**20  # larger than the L2 cache of any current GPU


@dataclass(frozen=True)
class Timing:
    """Per-call wall time over ``reps`` timed calls, in milliseconds."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    reps: int


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) with linear interpolation between order statistics."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def timing_from_samples(samples_ms: Sequence[float]) -> Timing:
    return Timing(
        median_ms=quantile(samples_ms, 0.5),
        p20_ms=quantile(samples_ms, 0.2),
        p80_ms=quantile(samples_ms, 0.8),
        reps=len(samples_ms),
    )


@functools.cache
def _flush_buffer(device: str) -> torch.Tensor:
    return torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)


def measure(
    fn: Callable[[], object],
    *,
    warmup: int,
    reps: int,
    device: str | torch.device,
    flush_l2: bool = False,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls (at least one), then ``reps`` timed calls.

    On CUDA each call is bracketed by two events on the current stream and the host
    synchronises once at the end; with ``flush_l2`` a 256 MiB buffer is zeroed before each call,
    outside the events, so inputs come from device memory. On the CPU each call is timed with
    ``time.perf_counter``.
    """
    timings = measure_many({"fn": fn}, warmup=warmup, reps=reps, device=device, flush_l2=flush_l2)
    return timings["fn"]


def measure_many(
    fns: dict[str, Callable[[], object]],
    *,
    warmup: int,
    reps: int,
    device: str | torch.device,
    flush_l2: bool = False,
) -> dict[str, Timing]:
    """``measure`` for several functions at once, their timed calls interleaved.

    Rep i calls every function once, starting from a different one each rep, so a slow spell
    of the machine (another process, clock changes) falls on all of them alike and their
    ratios stay meaningful. Warmup calls of every function come first and are never timed.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    device = torch.device(device)
    names = list(fns)
    for name in names:
        for _ in range(max(1, warmup)):
            fns[name]()
    cuda = device.type == "cuda"
    flush = _flush_buffer(str(device)) if cuda and flush_l2 else None
    if cuda:
        torch.cuda.synchronize(device)
    events: dict[str, list] = {name: [] for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(reps):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            if cuda:
                if flush is not None:
                    flush.zero_()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fns[name]()
                end.record()
                events[name].append((start, end))
            else:
                t0 = time.perf_counter()
                fns[name]()
                samples[name].append((time.perf_counter() - t0) * 1e3)
    if cuda:
        torch.cuda.synchronize(device)
        samples = {n: [s.elapsed_time(e) for s, e in events[n]] for n in names}
    return {name: timing_from_samples(samples[name]) for name in names}


_copy_bw_cache: dict[str, float] = {}


def copy_bandwidth(device: str | torch.device) -> float:
    """Device copy bandwidth in GB/s (1e9 bytes): bytes read + written by a large copy / time.

    Measured once per process and device: 512 MiB copied on CUDA, 128 MiB on the CPU.
    """
    device = torch.device(device)
    key = str(device)
    if key not in _copy_bw_cache:
        nbytes = (512 if device.type == "cuda" else 128) * 2**20
        src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
        dst = torch.empty_like(src)
        reps = 20 if device.type == "cuda" else 10
        t = measure(lambda: dst.copy_(src), warmup=3, reps=reps, device=device)
        _copy_bw_cache[key] = 2 * nbytes / (t.median_ms * 1e-3) / 1e9
        del src, dst
    return _copy_bw_cache[key]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_note(device: str | torch.device) -> str:
    """On the CPU, the 1-minute load average: other work on the machine skews CPU timings."""
    if torch.device(device).type != "cpu" or not hasattr(os, "getloadavg"):
        return ""
    return f"load avg {os.getloadavg()[0]:.1f} on {_cpu_count()} cores"


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} ({_cpu_count()} cores, {torch.get_num_threads()} threads)"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def git_sha() -> str:
    """Short HEAD, with "+dirty" when the tree differs from it (results files excluded)."""
    sha = _git("rev-parse", "--short", "HEAD") or "unknown"
    status = _git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    return f"{sha}+dirty" if status else sha


@functools.cache
def environment(device: str) -> dict[str, str | None]:
    """The columns that describe where a row was measured."""
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cuda": torch.version.cuda,
        "git_sha": git_sha(),
    }


def make_row(
    *,
    op: str,
    provider: str,
    shape: Sequence[int],
    dtype: torch.dtype,
    timing: Timing,
    nbytes: int | None,
    device: str | torch.device,
    correct: bool,
    note: str = "",
) -> dict:
    """One result row with every column of ``COLUMNS``.

    gbps is ``nbytes`` / median time; frac_copy_bw divides it by the device copy bandwidth.
    ``nbytes=None`` (a benchmark that is not a memory stream) leaves bytes, gbps and
    frac_copy_bw None.
    """
    gbps = None
    if nbytes is not None and timing.median_ms > 0:
        gbps = nbytes / (timing.median_ms * 1e-3) / 1e9
    bw = copy_bandwidth(device) if gbps is not None else 0.0
    row = {
        "op": op,
        "provider": provider,
        "shape": "x".join(str(s) for s in shape),
        "dtype": str(dtype).removeprefix("torch."),
        "median_ms": timing.median_ms,
        "p20_ms": timing.p20_ms,
        "p80_ms": timing.p80_ms,
        "bytes": int(nbytes) if nbytes is not None else None,
        "gbps": gbps,
        "frac_copy_bw": gbps / bw if gbps is not None and bw > 0 else None,
        **environment(str(torch.device(device))),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "correct": bool(correct),
        "note": note,
    }
    return {c: row[c] for c in COLUMNS}


def results_path(name: str) -> Path:
    """benchmarks/results/<name>.jsonl of this checkout."""
    return RESULTS_DIR / f"{name}.jsonl"


def append_rows(path: str | Path, rows: Iterable[dict]) -> Path:
    """Append rows as JSON lines to ``path`` (parent folders created); returns the path. GPU
    rows with a performance model are also printed against it (``print_vs_model``)."""
    path = Path(path)
    rows = list(rows)
    for row in rows:
        missing = [c for c in COLUMNS if c not in row]
        extra = [k for k in row if k not in COLUMNS]
        if missing or extra:
            raise ValueError(f"row has missing columns {missing} and unknown columns {extra}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps({c: row[c] for c in COLUMNS}) + "\n")
    print_vs_model(rows)
    return path


def append_extended_rows(path: str | Path, rows: Iterable[dict]) -> Path:
    """Append rows as JSON lines to ``path`` (parent folders created): each has every harness
    column and may add its benchmark's own keys (kept as given); returns the path."""
    path = Path(path)
    rows = list(rows)
    for row in rows:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row misses the columns {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The size x size centre of x [..., H, W] (top-left of the two middles when odd);
    ValueError when the image is smaller."""
    h, w = x.shape[-2:]
    if min(h, w) < size:
        raise ValueError(f"crop {size} is larger than the image {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


# glibc's mallopt parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def glibc_mallopt(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's M_MMAP_THRESHOLD (blocks at least this large are mmapped afresh) and
    M_TRIM_THRESHOLD (free heap above this is given back) for this process; False where glibc
    is not there or refuses a value."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(M_MMAP_THRESHOLD, mmap_threshold) and mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )


def print_vs_model(rows: Iterable[dict]) -> None:
    """Print, for the rows measured on a GPU that benchmarks/perf_model.py models, the measured
    median next to the modelled time and their ratio (nothing for CPU rows)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    import perf_model

    lines = perf_model.comparison_lines(rows)
    if lines:
        print("\n" + "\n".join(lines), flush=True)


def correct_median(rows: Sequence[dict], provider: str) -> float | None:
    """The median time (ms) of ``provider``'s row when its output was correct, else None."""
    for r in rows:
        if r["provider"] == provider and r["correct"]:
            return r["median_ms"]
    return None


class Skip(Exception):
    """A provider that cannot run here; the message says why."""


def time_checked(
    providers: Sequence[str],
    make: Callable[[str], tuple[Callable[[], torch.Tensor], torch.Tensor, str]],
    rtol: float,
    *,
    device: str,
    warmup: int,
    reps: int,
) -> tuple[dict[str, Timing], dict[str, bool], dict[str, str]]:
    """Run each provider once against its expected output (``make(name)`` gives the function to
    time, the expected output and a note, or raises Skip), then time the ones that ran,
    interleaved. Returns (timings, correct, notes) keyed by provider; a wrong output stays
    timed but is marked incorrect, so no speed-up is claimed for it."""
    fns, checks, notes = {}, {}, {}
    for name in providers:
        try:
            fn, expected, note = make(name)
            out = fn()
        except Skip as skip:
            print(f"  skip {name}: {skip}", file=sys.stderr)
            continue
        correct, err = check_close(out, expected, rtol)
        del out
        if not correct:
            note = f"{note}; " if note else ""
            note += f"output differs from the reference: max rel err {err:.2e}"
        fns[name], checks[name], notes[name] = fn, correct, note
    timings = measure_many(fns, warmup=warmup, reps=reps, device=device, flush_l2=True)
    return timings, checks, notes


def check_close(out: torch.Tensor, ref: torch.Tensor, rtol: float) -> tuple[bool, float]:
    """(max |out - ref| <= rtol * max |ref|, that relative error); shapes must match."""
    if out.shape != ref.shape:
        return False, math.inf
    wide = torch.complex128 if ref.is_complex() else torch.float64
    out, ref = out.to(wide), ref.to(wide)
    diff = (out - ref).abs().max().item()
    scale = ref.abs().max().item()
    err = diff / scale if scale > 0 else diff
    return bool(math.isfinite(err) and err <= rtol), err


def parse_shapes(text: str) -> list[tuple[int, ...]]:
    """ "8x3x256x256,2x3x32x32" -> [(8, 3, 256, 256), (2, 3, 32, 32)]."""
    shapes = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            shape = tuple(int(s) for s in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad shape {part!r}: use e.g. 8x3x256x256") from None
        if any(s < 1 for s in shape):
            raise argparse.ArgumentTypeError(f"bad shape {part!r}: sizes must be >= 1")
        shapes.append(shape)
    if not shapes:
        raise argparse.ArgumentTypeError("no shape given")
    return shapes


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def common_parser(description: str, *, default_shapes: str, name: str) -> argparse.ArgumentParser:
    """The options every bench script takes."""
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=("cpu", "cuda"), default=default_device)
    p.add_argument("--reps", type=int, default=None, help="timed calls per measurement")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls before timing")
    p.add_argument(
        "--shapes",
        type=parse_shapes,
        default=parse_shapes(default_shapes),
        help=f"comma-separated BxCxHxW (default {default_shapes})",
    )
    p.add_argument(
        "--providers", type=parse_list, default=None, help="comma-separated (default: all)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=results_path(name),
        help=f"results file to append to (default benchmarks/results/{name}.jsonl)",
    )
    p.add_argument("--quick", action="store_true", help="few reps, for smoke tests")
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    return p


def check_known(
    parser: argparse.ArgumentParser, what: str, given: Iterable[str], allowed: Iterable[str]
) -> None:
    """parser.error naming the entries of ``given`` that ``allowed`` lacks, and the choices."""
    allowed = list(allowed)
    unknown = [g for g in given if g not in allowed]
    if unknown:
        parser.error(f"unknown {what} {unknown}; choose from {', '.join(allowed)}")


def parse_common(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    providers: Sequence[str],
    quick_skips: Sequence[str] = (),
) -> tuple[argparse.Namespace, list[str], int, int]:
    """Parse ``common_parser``'s options: (args, providers to run, reps, warmup). Checks the
    device and the provider names (errors through the parser), sets the CPU threads, and picks
    the reps and warm-up calls (quick 3/1, GPU 100/10, CPU 20/3) unless given."""
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    chosen = args.providers or [p for p in providers if not (args.quick and p in quick_skips)]
    check_known(parser, "providers", chosen, providers)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    on_gpu = args.device == "cuda"
    reps = args.reps or (3 if args.quick else 100 if on_gpu else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10 if on_gpu else 3)
    return args, chosen, reps, warmup


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table of rows for the terminal."""
    header = ("provider", "shape", "median ms", "p20-p80 ms", "GB/s", "% copy", "ok", "note")
    lines = [
        (
            r["provider"],
            f"{r['shape']} {r['dtype']}",
            _fmt(r["median_ms"], ".3f"),
            f"{_fmt(r['p20_ms'], '.3f')}-{_fmt(r['p80_ms'], '.3f')}",
            _fmt(r["gbps"], ".1f"),
            _fmt(None if r["frac_copy_bw"] is None else 100 * r["frac_copy_bw"], ".0f"),
            "yes" if r["correct"] else "NO",
            r["note"],
        )
        for r in rows
    ]
    return text_table(header, lines)


def text_table(header: Sequence, lines: Sequence[Sequence]) -> str:
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    out = []
    for i, line in enumerate([header, *lines]):
        out.append("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a results file, one per non-empty line (none when the file is
    missing); a line that is not JSON is reported on stderr and skipped."""
    rows = []
    if not path.exists():
        return rows
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                print(f"{path}:{lineno}: skipped, not JSON ({exc})", file=sys.stderr)
    return rows


class Clock:
    """Time marks: recorded CUDA events on CUDA (no synchronisation), perf_counter on the CPU."""

    def __init__(self, device: str):
        self.cuda = torch.device(device).type == "cuda"

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def ms(self, start, end) -> float:
        """Milliseconds between two marks (after ``sync`` on CUDA)."""
        return start.elapsed_time(end) if self.cuda else (end - start) * 1e3

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


class TimedDenoiser:
    """Calls ``fn`` and keeps (iteration, start mark, end mark) per call; ``iteration`` is set by
    the caller (the number of iterations finished so far)."""

    def __init__(self, fn: Callable, clock: Clock):
        self.fn, self.clock = fn, clock
        self.iteration = 0
        self.calls: list[tuple[int, object, object]] = []

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        start = self.clock.mark()
        out = self.fn(x, sigma)
        self.calls.append((self.iteration, start, self.clock.mark()))
        return out


def fast_backend_reason(name: str, device: str) -> str | None:
    """Why the fast backend ``name`` ("triton" or "cuda") is not benchmarked here (None when it
    is): unavailable, or not a CUDA device (the CPU Triton interpreter is a test harness)."""
    import pnpfast

    status = pnpfast.backends()[name]
    if not status.available:
        return f"{name} backend unavailable: {status.reason}"
    if torch.device(device).type != "cuda":
        return f"{name} is benchmarked on CUDA tensors only"
    return None


def timing_rows(
    op: str,
    timings: dict[str, Timing],
    checks: dict[str, bool],
    notes: dict[str, str],
    *,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: str,
    nbytes: int | Callable[[str], int | None] | None = None,
    extra_notes: Sequence[str] = (),
) -> list[dict]:
    """One ``make_row`` per timed provider: its note is the provider's note, then
    ``extra_notes``, then the machine's load; ``nbytes`` is one count for every provider or a
    function of the provider's name."""
    load = load_note(device)
    return [
        make_row(
            op=op,
            provider=name,
            shape=shape,
            dtype=dtype,
            timing=timing,
            nbytes=nbytes(name) if callable(nbytes) else nbytes,
            device=device,
            correct=checks[name],
            note="; ".join(n for n in (notes.get(name, ""), *extra_notes, load) if n),
        )
        for name, timing in timings.items()
    ]


def bound_prox_provider(
    name: str, prox: Callable, x: torch.Tensor, gamma: torch.Tensor, device: str
) -> Callable[[], torch.Tensor] | None:
    """The call a whole-prox benchmark times for the providers that share one bound prox
    (``prox(x, gamma, backend=..., check=False)``, e.g. ``pnpfast.L2(A, y).prox``): "reference",
    "triton", "cuda" and "reference-compiled" (torch.compile of the reference call); None for
    any other provider. Raises Skip when a fast backend or the compile cannot run."""
    if name in ("reference", "triton", "cuda"):
        if name != "reference":
            reason = fast_backend_reason(name, device)
            if reason:
                raise Skip(reason)
        return lambda: prox(x, gamma, backend=name, check=False)
    if name == "reference-compiled":
        compiled = torch.compile(
            lambda x_, g_: prox(x_, g_, backend="reference", check=False), dynamic=False
        )
        try:
            compiled(x, gamma)
        except Exception as exc:
            raise Skip(f"torch.compile failed: {type(exc).__name__}: {exc}") from None
        return lambda: compiled(x, gamma)
    return None


def report_rows(path: str | Path, rows: list[dict], title: str, lines: Iterable[str]) -> None:
    """Append one measurement's rows to ``path`` and print them: a blank line or the title, the
    table and the target lines."""
    append_rows(path, rows)
    print(f"\n{title}" if title else "")
    print(format_table(rows))
    for line in lines:
        print("  " + line)


def copy_bw_line(label: str, frac: float, target: float) -> str:
    """One verdict line of a bandwidth target: "<label>: 87% of copy bw (target >= 85%: met)"."""
    verdict = "met" if frac >= target else "MISSED"
    return f"{label}: {100 * frac:.0f}% of copy bw (target >= {100 * target:.0f}%: {verdict})"


# --- dispatch overhead -----------------------------------------------------------------------

DISPATCH_SHAPE = (1, 1, 8, 8)
DISPATCH_REPS = 3000
DISPATCH_WARMUP = 200
DISPATCH_TARGET_US = 20.0


def add_dispatch_options(parser: argparse.ArgumentParser) -> None:
    """The options of the dispatch-overhead part of an op benchmark."""
    parser.add_argument(
        "--dispatch-reps",
        type=int,
        default=None,
        help=f"interleaved calls of the dispatch-overhead part (default {DISPATCH_REPS}; "
        "0 or --quick skips it)",
    )
    parser.add_argument(
        "--dispatch-only", action="store_true", help="run only the dispatch-overhead part"
    )


def shapes_to_time(
    args: argparse.Namespace, op: str, shapes: Sequence, reps: int, warmup: int
) -> list:
    """The shapes an op benchmark times: none with --dispatch-only, else all of them, after the
    run's header line (device copy bandwidth, reps, warm-up calls)."""
    if args.dispatch_only:
        return []
    bw = copy_bandwidth(args.device)
    print(f"{op} on {args.device}: copy bandwidth {bw:.1f} GB/s, {reps} reps after {warmup} warmup")
    return list(shapes)


def _same_outputs(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    return len(a) == len(b) and all(_same_outputs(x, y) for x, y in zip(a, b, strict=True))


def _difference(a: Timing, b: Timing) -> Timing:
    return Timing(a.median_ms - b.median_ms, a.p20_ms - b.p20_ms, a.p80_ms - b.p80_ms, a.reps)


def dispatch_rows(
    op: str,
    *,
    public: Callable[[], object],
    no_checks: Callable[[], object],
    direct: Callable[[], object],
    reps: int = DISPATCH_REPS,
    warmup: int = DISPATCH_WARMUP,
    shape: Sequence[int] = DISPATCH_SHAPE,
    dtype: torch.dtype = torch.float32,
) -> list[dict]:
    """Rows of what dispatching costs one op on a tiny CPU input.

    ``direct`` calls the reference backend itself, ``public`` the public op with the automatic
    backend choice (argument checks, then the dispatcher, which picks that reference on the
    CPU) and ``no_checks`` the dispatcher alone (the op's FusedOp). The three are timed
    interleaved (``measure_many``); every output must equal the direct one. Providers:

        dispatch/reference        the direct call
        dispatch/auto             the public op
        dispatch/auto-no-checks   the dispatcher alone
        dispatch-overhead         dispatch/auto - dispatch/reference: median, p20 and p80 each
                                  the difference of the two calls' quantiles
        dispatch-overhead/no-checks   the same for dispatch/auto-no-checks
    """
    fns = {
        "dispatch/reference": direct,
        "dispatch/auto": public,
        "dispatch/auto-no-checks": no_checks,
    }
    expected = direct()
    correct = all(_same_outputs(fn(), expected) for fn in (public, no_checks))
    timings = measure_many(fns, warmup=warmup, reps=reps, device="cpu")
    ref = timings["dispatch/reference"]
    timings["dispatch-overhead"] = _difference(timings["dispatch/auto"], ref)
    timings["dispatch-overhead/no-checks"] = _difference(timings["dispatch/auto-no-checks"], ref)
    note = f"CPU reference backend, {reps} interleaved calls each"
    return timing_rows(
        op, timings, dict.fromkeys(timings, correct), {}, shape=shape, dtype=dtype,
        device="cpu", extra_notes=(note,),
    )  # fmt: skip


def run_dispatch_part(
    args: argparse.Namespace,
    op: str,
    calls: Callable[[], tuple[Callable, Callable, Callable]],
) -> list[dict]:
    """The dispatch-overhead part of an op benchmark: ``calls()`` builds (public, no_checks,
    direct) on a tiny input (see ``dispatch_rows``); the rows are appended to ``args.out`` and
    printed with the verdict on the target. Nothing runs when the part is skipped."""
    reps = args.dispatch_reps
    if reps is None:
        reps = 0 if args.quick else DISPATCH_REPS
    if reps <= 0:
        return []
    public, no_checks, direct = calls()
    rows = dispatch_rows(op, public=public, no_checks=no_checks, direct=direct, reps=reps)
    append_rows(args.out, rows)
    print(f"\n{op}: dispatch overhead on {'x'.join(map(str, DISPATCH_SHAPE))} (CPU)")
    print(format_table(rows))
    for r in rows:
        if r["provider"].startswith("dispatch-overhead"):
            us = 1e3 * r["median_ms"]
            verdict = "met" if us <= DISPATCH_TARGET_US and r["correct"] else "MISSED"
            target = f"target <= {DISPATCH_TARGET_US:.0f} us: {verdict}"
            print(f"  {r['provider']}: {us:.1f} us per call ({target})")
    return rows

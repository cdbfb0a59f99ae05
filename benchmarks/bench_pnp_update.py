"""Benchmark of the fused update after a denoiser call (op ``pnp_update``).

Problem: the full case of pnpfast.ops.pnp_update, every input given: seeded images f, z, x, xprev
uniform on [0, 1] and one coef row (a, b, c, d) per image, uniform on [-1, 1]:

    out_b  = a_b f_b + b_b z_b + c_b x_b + d_b xprev_b
    sums_b = [ ||z_b - f_b||^2, ||x_b - xprev_b||^2, ||x_b||^2 ]

Default shapes 8x3x256x256 and 32x3x512x512, float32; ``--quick`` with the default shapes runs
2x3x64x64 and 4x3x128x128 instead, so that a smoke run on the CPU takes seconds.

Providers (all compared with the ``reference`` output):
    torch-unfused        what a solver writes without the fused op: out = a*f + b*z + c*x + d*xprev
                         as separate torch ops, then three separate reductions
                         torch.linalg.vector_norm(., dim=(1, 2, 3)) ** 2 of z - f, x - xprev, x
    reference            pnpfast.ops.pnp_update(..., backend="reference"): the public call
                         (argument checks, dispatch) on the pure torch reference
    reference-compiled   torch.compile(pnp_update_reference) (skipped with a note if it fails)
    triton, cuda         pnp_update(..., backend="triton" / "cuda"), on CUDA tensors only and only
                         where pnpfast.backends() reports them (never the CPU interpreter)

Correctness: before timing, out and sums of each provider must each satisfy
max |out - ref| <= 1e-4 * max |ref|; a provider that fails is still timed but its row says
correct=false and no speed-up is claimed for it.

Bytes moved (per call; e = bytes per element, 4 for float32; N = B*C*H*W): the minimal traffic
of one fused pass, given to every provider (so GB/s is an effective rate): read f, z, x, xprev
and write out (5 * N * e), read coef (4 * B * e) and write sums (3 * B * e). The unfused torch
sequence moves about 26 N elements (each op reads its operands and writes a temporary).
frac_copy_bw divides GB/s by the device copy bandwidth measured by the harness.

Dispatch overhead (harness.run_dispatch_part; skipped by --quick, alone with --dispatch-only):
on a 1x1x8x8 CPU input, pnp_update(f, z, x, xprev, coef) with the automatic backend choice
against pnp_update_reference on the same inputs, interleaved; target: at most 20 us more.

Targets: on a GPU the fused update (triton, cuda) reaches >= 85% of the copy bandwidth and is
>= 3x faster than torch-unfused.
"""

import sys
from collections.abc import Callable

import torch
from harness import (
    DISPATCH_SHAPE,
    add_dispatch_options,
    check_close,
    common_parser,
    copy_bw_line,
    correct_median,
    fast_backend_reason,
    measure_many,
    parse_common,
    parse_shapes,
    report_rows,
    run_dispatch_part,
    shapes_to_time,
    timing_rows,
)

from pnpfast.ops import pnp_update, pnp_update_reference
from pnpfast.ops.pnp_update import _op as pnp_update_op

OP = "pnp_update"
DEFAULT_SHAPES = "8x3x256x256,32x3x512x512"
QUICK_SHAPES = "2x3x64x64,4x3x128x128"
RTOL = 1e-4
PROVIDERS = ("torch-unfused", "reference", "reference-compiled", "triton", "cuda")
QUICK_SKIPS = ("reference-compiled",)
FUSED_FRAC_TARGET = 0.85
UNFUSED_SPEEDUP_TARGET = 3.0

Args = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Result = tuple[torch.Tensor, torch.Tensor]


class Skip(Exception):
    """A provider that cannot run here; the message says why."""


def setup(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0) -> Args:
    """Seeded (f, z, x, xprev, coef) on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    images = [torch.rand(shape, generator=gen, dtype=dtype) for _ in range(4)]
    coef = 2 * torch.rand(shape[0], 4, generator=gen, dtype=dtype) - 1
    f, z, x, xprev, coef = (t.to(device) for t in (*images, coef))
    return f, z, x, xprev, coef


def torch_unfused(f, z, x, xprev, coef) -> Result:
    """The separate torch ops the fused update replaces."""
    a, b, c, d = (coef[:, i].view(-1, 1, 1, 1) for i in range(4))
    out = a * f + b * z + c * x + d * xprev
    dims = (1, 2, 3)
    residual = torch.linalg.vector_norm(z - f, dim=dims) ** 2
    change = torch.linalg.vector_norm(x - xprev, dim=dims) ** 2
    norm = torch.linalg.vector_norm(x, dim=dims) ** 2
    return out, torch.stack([residual, change, norm], dim=1)


def update_bytes(shape: tuple[int, ...], elem: int) -> int:
    B, C, H, W = shape
    return 5 * B * C * H * W * elem + 4 * B * elem + 3 * B * elem


def provider(name: str, args: Args, device: str) -> tuple[Callable[[], Result], str]:
    """(function to time, note) for a provider; raises Skip when it cannot run."""
    if name == "torch-unfused":
        return (lambda: torch_unfused(*args)), ""
    if name in ("reference", "triton", "cuda"):
        if name != "reference":
            reason = fast_backend_reason(name, device)
            if reason:
                raise Skip(reason)
        return (lambda: pnp_update(*args, backend=name)), ""
    if name == "reference-compiled":
        compiled = torch.compile(pnp_update_reference, dynamic=False)
        try:
            compiled(*args)
        except Exception as exc:
            raise Skip(f"torch.compile failed: {type(exc).__name__}: {exc}") from None
        return (lambda: compiled(*args)), ""
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(PROVIDERS)}")


def check_result(result: Result, expected: Result) -> tuple[bool, str]:
    """Whether out and sums both match the reference, and a note when they do not."""
    notes = []
    for what, got, ref in zip(("out", "sums"), result, expected, strict=True):
        ok, err = check_close(got, ref, RTOL)
        if not ok:
            notes.append(f"{what} differs from the reference: max rel err {err:.2e}")
    return not notes, "; ".join(notes)


def run_shape(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: str,
    providers: list[str],
    *,
    warmup: int,
    reps: int,
) -> list[dict]:
    args = setup(shape, dtype, device)
    expected = pnp_update(*args, backend="reference")
    elem = torch.empty((), dtype=dtype).element_size()
    fns, checks, notes = {}, {}, {}
    for name in providers:
        try:
            fn, note = provider(name, args, device)
            result = fn()
        except Skip as skip:
            print(f"  skip {name}: {skip}", file=sys.stderr)
            continue
        correct, why = check_result(result, expected)
        del result
        fns[name], checks[name] = fn, correct
        notes[name] = "; ".join(n for n in (note, why) if n)
    timings = measure_many(fns, warmup=warmup, reps=reps, device=device, flush_l2=True)
    return timing_rows(
        OP, timings, checks, notes, shape=shape, dtype=dtype, device=device,
        nbytes=update_bytes(shape, elem),
    )  # fmt: skip


def target_lines(rows: list[dict], device: str) -> list[str]:
    """Whether the GPU targets stated in the module docstring are met for one shape's rows."""
    if torch.device(device).type != "cuda":
        return []
    lines = []
    unfused = correct_median(rows, "torch-unfused")
    for b in ("triton", "cuda"):
        r = next((r for r in rows if r["provider"] == b and r["correct"]), None)
        if r is None:
            continue
        if r["frac_copy_bw"] is not None:
            lines.append(copy_bw_line(b, r["frac_copy_bw"], FUSED_FRAC_TARGET))
        if unfused:
            ratio = unfused / r["median_ms"]
            verdict = "met" if ratio >= UNFUSED_SPEEDUP_TARGET else "MISSED"
            target = f">= {UNFUSED_SPEEDUP_TARGET:.0f}x"
            lines.append(f"{b} vs torch-unfused: {ratio:.2f}x faster (target {target}: {verdict})")
    return lines


def dispatch_calls() -> tuple[Callable, Callable, Callable]:
    """(public op, dispatcher alone, reference) calls on DISPATCH_SHAPE, every input given."""
    args = setup(DISPATCH_SHAPE, torch.float32, "cpu")
    return (
        lambda: pnp_update(*args),
        lambda: pnp_update_op(*args),
        lambda: pnp_update_reference(*args),
    )


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=OP)
    add_dispatch_options(parser)
    args, providers, reps, warmup = parse_common(parser, argv, PROVIDERS, QUICK_SKIPS)
    device = args.device
    shapes = args.shapes
    if args.quick and shapes == parse_shapes(DEFAULT_SHAPES):
        shapes = parse_shapes(QUICK_SHAPES)
    for shape in shapes:
        if len(shape) != 4:
            parser.error(f"shape {'x'.join(map(str, shape))} is not BxCxHxW")
    for shape in shapes_to_time(args, OP, shapes, reps, warmup):
        rows = run_shape(shape, torch.float32, device, providers, warmup=warmup, reps=reps)
        report_rows(args.out, rows, "", target_lines(rows, device))
    run_dispatch_part(args, OP, dispatch_calls)
    print(f"\nrows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

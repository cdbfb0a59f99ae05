"""Benchmark of the implicit-prior sampler's fused step (op ``constrained_step``).

Problem: one step of Algorithm 2 of Kadkhodaie & Simoncelli (NeurIPS 2021) after the denoiser
call, pnpfast.ops.constrained_step: seeded images x_hat (the denoiser output), y and
lifted = M x_c uniform on [0, 1], per-image h_b uniform on [0.01, 0.5] and c_b on [0.1, 0.5],

    d_b = x_hat_b - y_b - P x_hat_b + lifted_b,   sigma_b = ||d_b|| / sqrt(N)
    out_b = y_b + h_b d_b + c_b sigma_b z_b,      z ~ N(0, I)

for each form of P (``--forms``, default all): ``mask`` (a random 0/1 mask per image, half
measured: inpainting), ``block4`` (4 x 4 block means: super-resolution), ``projected``
(P x_hat given, as for the spectral and compressive-sensing operators; the time of that
projection is not included) and ``free`` (Algorithm 1: d = x_hat - y). Default shapes
8x3x256x256 and 32x3x512x512, float32; ``--quick`` with the default shapes runs 2x3x64x64 and
4x3x128x128 instead.

Providers:
    torch-unfused        the step as the sampler wrote it before the fused op: d from separate
                         torch ops (the projection of f + y, for mask and block4 through the
                         operator's torch code), the norm, torch.randn, and the update
    reference            constrained_step(..., backend="reference"): the public call on the
                         pure torch reference
    reference-compiled   torch.compile(constrained_step_reference) (skipped with a note if it
                         fails)
    triton, cuda         constrained_step(..., backend="triton" / "cuda"), CUDA tensors only

Correctness: every provider runs once with c = 0 (no noise) and its out and sigma must match
the reference's within max |out - ref| <= 1e-4 max |ref|; the timed calls draw noise (c > 0),
which differs between providers (each draws its own) and is checked by the tests.

Bytes moved (per call; e = bytes per element; N = B*C*H*W): what the two passes of the fused op
move, given to every provider: pass 1 reads x_hat, y, lifted (and P x_hat for ``projected``;
the mask once, B*H*W elements) and writes out; pass 2 reads and writes out; so 6 N e (5 N e for
``free``, 7 N e for ``projected``) plus the mask. frac_copy_bw divides GB/s by the device copy
bandwidth measured by the harness.

Dispatch overhead (harness.run_dispatch_part; skipped by --quick, alone with --dispatch-only):
on a 1x1x8x8 CPU input of the ``mask`` form, constrained_step(...) with the automatic backend
choice against constrained_step_reference on the same inputs, interleaved; target: at most
20 us more.

Targets (the issue's): on a GPU the fused step (triton, cuda) reaches >= 85% of the copy
bandwidth.
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
    fast_backend_reason,
    measure_many,
    parse_common,
    parse_list,
    parse_shapes,
    report_rows,
    run_dispatch_part,
    shapes_to_time,
    timing_rows,
)

from pnpfast.operators import BlockAverage, Inpainting
from pnpfast.ops import constrained_step, constrained_step_reference
from pnpfast.ops.constrained_step import _op as constrained_step_op

OP = "constrained_step"
DEFAULT_SHAPES = "8x3x256x256,32x3x512x512"
QUICK_SHAPES = "2x3x64x64,4x3x128x128"
FORMS = ("mask", "block4", "projected", "free")
RTOL = 1e-4
PROVIDERS = ("torch-unfused", "reference", "reference-compiled", "triton", "cuda")
QUICK_SKIPS = ("reference-compiled",)
FUSED_FRAC_TARGET = 0.85
SEED, OFFSET = 1234, 0


class Skip(Exception):
    """A provider that cannot run here; the message says why."""


class Case:
    """The inputs of one (form, shape): tensors on ``device`` and the operator the unfused
    provider uses for its projection."""

    def __init__(self, form: str, shape: tuple[int, ...], dtype, device: str, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        B, _, H, W = shape
        den, y, lifted, proj = (torch.rand(shape, generator=gen, dtype=dtype) for _ in range(4))
        h = 0.01 + 0.49 * torch.rand(B, generator=gen, dtype=dtype)
        c = 0.1 + 0.4 * torch.rand(B, generator=gen, dtype=dtype)
        mask = torch.rand(B, 1, H, W, generator=gen) < 0.5
        self.form = form
        self.den, self.y, self.h, self.c = (t.to(device) for t in (den, y, h, c))
        self.extra: dict = {}
        self.project: Callable | None = None
        if form == "mask":
            A = Inpainting(mask.to(device))
            self.extra = {"lifted": lifted.to(device), "mask": A.mask.to(dtype)}
            self.project = A.project
        elif form == "block4":
            A = BlockAverage(4)
            self.extra = {"lifted": lifted.to(device), "factor": 4}
            self.project = A.project
        elif form == "projected":
            self.extra = {"lifted": lifted.to(device), "projected": proj.to(device)}
        elif form != "free":
            raise ValueError(f"unknown form {form!r}; choose from {', '.join(FORMS)}")

    def args(self, noise: bool = True) -> tuple:
        c = self.c if noise else torch.zeros_like(self.c)
        return (self.den, self.y, self.h, c, SEED, OFFSET)


def torch_unfused(case: Case, noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The separate torch ops of the sampler's step without the fused op."""
    den, y, h, c, *_ = case.args(noise)
    f = den - y
    if case.form == "free":
        d = f
    elif case.form == "projected":  # P x_hat given: P (f + y) = P x_hat
        d = f - case.extra["projected"] + case.extra["lifted"]
    else:
        d = f - case.project(f + y) + case.extra["lifted"]
    sigma = torch.linalg.vector_norm(d, dim=(1, 2, 3)) / d[0].numel() ** 0.5
    z = torch.randn_like(y)
    view = (-1, 1, 1, 1)
    return y + h.view(view) * d + (c * sigma).view(view) * z, sigma


def step_bytes(case: Case) -> int:
    B, C, H, W = case.y.shape
    e = case.y.element_size()
    passes = {"free": 5, "projected": 7}.get(case.form, 6)
    mask = B * H * W * e if case.form == "mask" else 0
    return passes * B * C * H * W * e + mask + 3 * B * e


def provider(name: str, case: Case, device: str) -> tuple[Callable, Callable]:
    """(timed function with noise, the same without noise) for a provider; raises Skip."""
    if name == "torch-unfused":
        return (lambda: torch_unfused(case)), (lambda: torch_unfused(case, noise=False))
    if name in ("reference", "triton", "cuda"):
        if name != "reference":
            reason = fast_backend_reason(name, device)
            if reason:
                raise Skip(reason)

        def run(noise: bool = True):
            return constrained_step(*case.args(noise), **case.extra, backend=name)

        return run, (lambda: run(noise=False))
    if name == "reference-compiled":
        compiled = torch.compile(constrained_step_reference, dynamic=False)
        try:
            compiled(*case.args(False), **case.extra)
        except Exception as exc:
            raise Skip(f"torch.compile failed: {type(exc).__name__}: {exc}") from None
        return (lambda: compiled(*case.args(), **case.extra)), (
            lambda: compiled(*case.args(False), **case.extra)
        )
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(PROVIDERS)}")


def check_result(result, expected) -> tuple[bool, str]:
    notes = []
    for what, got, ref in zip(("out", "sigma"), result, expected, strict=True):
        ok, err = check_close(got, ref, RTOL)
        if not ok:
            notes.append(f"{what} differs from the reference: max rel err {err:.2e}")
    return not notes, "; ".join(notes)


def run_case(case: Case, device: str, providers: list[str], *, warmup: int, reps: int) -> list:
    expected = constrained_step(*case.args(False), **case.extra, backend="reference")
    fns, checks, notes = {}, {}, {}
    for name in providers:
        try:
            fn, quiet = provider(name, case, device)
            correct, why = check_result(quiet(), expected)
            fn()
        except Skip as skip:
            print(f"  skip {name}: {skip}", file=sys.stderr)
            continue
        fns[name], checks[name], notes[name] = fn, correct, why
    timings = measure_many(fns, warmup=warmup, reps=reps, device=device, flush_l2=True)
    return timing_rows(
        f"{OP}/{case.form}", timings, checks, notes, shape=tuple(case.y.shape),
        dtype=case.y.dtype, device=device, nbytes=step_bytes(case),
    )  # fmt: skip


def target_lines(rows: list[dict], device: str) -> list[str]:
    """Whether the bandwidth target of the module docstring is met, for one case's rows."""
    if torch.device(device).type != "cuda":
        return []
    lines = []
    for r in rows:
        if r["provider"] in ("triton", "cuda") and r["correct"] and r["frac_copy_bw"] is not None:
            lines.append(copy_bw_line(r["provider"], r["frac_copy_bw"], FUSED_FRAC_TARGET))
    return lines


def dispatch_calls() -> tuple[Callable, Callable, Callable]:
    """(public op, dispatcher alone, reference) calls of the ``mask`` form on DISPATCH_SHAPE."""
    case = Case("mask", DISPATCH_SHAPE, torch.float32, "cpu")
    args, extra = case.args(), case.extra
    # the dispatcher and the reference take every argument positionally
    full = (*args, extra["lifted"], extra["mask"], 0, None)
    return (
        lambda: constrained_step(*args, **extra),
        lambda: constrained_step_op(*full),
        lambda: constrained_step_reference(*full),
    )


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=OP)
    parser.add_argument("--forms", type=parse_list, default=list(FORMS), help=",".join(FORMS))
    add_dispatch_options(parser)
    args, providers, reps, warmup = parse_common(parser, argv, PROVIDERS, QUICK_SKIPS)
    device = args.device
    for form in args.forms:
        if form not in FORMS:
            parser.error(f"unknown form {form!r}; choose from {', '.join(FORMS)}")
    shapes = args.shapes
    if args.quick and shapes == parse_shapes(DEFAULT_SHAPES):
        shapes = parse_shapes(QUICK_SHAPES)
    for shape in shapes:
        if len(shape) != 4 or shape[2] % 4 or shape[3] % 4:
            parser.error(f"shape {'x'.join(map(str, shape))} is not BxCxHxW with 4 | H, W")
    for shape in shapes_to_time(args, OP, shapes, reps, warmup):
        for form in args.forms:
            case = Case(form, shape, torch.float32, device)
            rows = run_case(case, device, providers, warmup=warmup, reps=reps)
            report_rows(args.out, rows, f"{OP}/{form}", target_lines(rows, device))
    run_dispatch_part(args, OP, dispatch_calls)
    print(f"\nrows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

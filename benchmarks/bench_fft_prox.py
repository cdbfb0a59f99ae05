"""Benchmark of the FFT-domain proximal step of a blur data term (op ``fft_prox``).

Problem: circular deblurring, f(x) = 1/2 ||k * x - y||^2, with one seeded random 15x15
nonnegative kernel normalised to sum 1 (shared by the batch) and one gamma per image, drawn
log-uniformly in [0.1, 10]. Default shapes 8x3x256x256 and 32x3x512x512, float32.

Providers (whole prox, all compared with the ``reference`` output):
    reference            pnpfast.L2(Blur(k), y).prox(v, gamma, backend="reference", check=False):
                         the bound prox as a solver iteration calls it (spectra of y cached when
                         the L2 object is built, gamma already a [B] tensor, no input checks):
                         rfft2, one fused spectral pass, irfft2
    reference-compiled   the same call under torch.compile (skipped with a note if it fails)
    triton, cuda         the same call with backend="triton" / "cuda", on CUDA tensors only and
                         only where pnpfast.backends() reports them (never the CPU interpreter)
    deepinv              deepinv.physics.BlurFFT(img_size=(C, H, W), filter=k[None, None])
                         .prox_l2(v, y, gamma), gamma passed as a [B, 1, 1, 1] tensor
Baselines:
    fft-only             irfft2(rfft2(v)): the floor of any FFT prox (checked against v)
    spectral-pass/<b>    pnpfast.ops.fft_prox on precomputed spectra with backend <b>, checked
                         against spectral-pass/reference

Correctness: before timing, each provider's output must satisfy
max |out - ref| <= 1e-4 * max |ref|; a provider that fails is still timed but its row says
correct=false and no speed-up is claimed for it.

Bytes moved (per call; e = bytes per real element, 4 for float32; N = B*C*H*W real elements;
F = B*C*H*(W//2+1) complex frequencies of 2e bytes each):
    spectral pass   read v_hat and kty (2 * F * 2e), write the result (F * 2e), read the k2
                    plane once per image (B * H*(W//2+1) * e) and gamma (B * e)
    one FFT         read + write of the real image and of its spectrum (N * e + F * 2e);
                    rfft2 and irfft2 are counted once each, as if each were a single pass
    whole prox      spectral pass + 2 FFTs; every whole-prox provider, deepinv included, is
                    given this same count, so its GB/s is an effective rate on the minimal
                    traffic of the problem (deepinv does more passes than that)
    fft-only        2 FFTs
frac_copy_bw divides GB/s by the device copy bandwidth measured by the harness.

Dispatch overhead (harness.run_dispatch_part; skipped by --quick, alone with --dispatch-only):
on a 1x1x8x8 CPU input, fft_prox(v_hat, kty, k2, gamma) with the automatic backend choice
against fft_prox_reference on the same spectra, interleaved; target: at most 20 us more.

Targets: on a GPU the fused spectral pass reaches >= 85% of the copy bandwidth, the fastest
pnpfast prox is within 1.15x of fft-only, and >= 2.5x faster than deepinv; on the CPU the
reference bound prox is >= 1.5x faster than deepinv at 8x3x256x256.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from deepinv_compat import import_deepinv
from harness import (
    DISPATCH_SHAPE,
    Skip,
    add_dispatch_options,
    bound_prox_provider,
    common_parser,
    copy_bw_line,
    correct_median,
    fast_backend_reason,
    parse_common,
    report_rows,
    run_dispatch_part,
    shapes_to_time,
    time_checked,
    timing_rows,
)

import pnpfast
from pnpfast.operators import Blur
from pnpfast.ops import fft_prox, fft_prox_reference
from pnpfast.ops.fft_prox import _op as fft_prox_op

OP = "fft_prox"
DEFAULT_SHAPES = "8x3x256x256,32x3x512x512"
KERNEL_SIZE = 15
RTOL = 1e-4
PROX_PROVIDERS = ("reference", "reference-compiled", "triton", "cuda", "deepinv")
PASS_BACKENDS = ("reference", "triton", "cuda")
PROVIDERS = (
    *PROX_PROVIDERS,
    "fft-only",
    *(f"spectral-pass/{b}" for b in PASS_BACKENDS),
)
QUICK_SKIPS = ("reference-compiled",)


@dataclass
class Inputs:
    kernel: torch.Tensor  # [15, 15]
    y: torch.Tensor  # [B, C, H, W]
    v: torch.Tensor  # [B, C, H, W]
    gamma: torch.Tensor  # [B]
    fidelity: pnpfast.L2
    v_hat: torch.Tensor  # [B, C, H, W // 2 + 1] complex
    expected: torch.Tensor  # the reference prox of v: [B, C, H, W]
    expected_pass: torch.Tensor  # the reference spectral pass: [B, C, H, W // 2 + 1] complex


def setup(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0) -> Inputs:
    """Seeded inputs on ``device``: kernel, y = k * x + noise, v, per-image gamma, and the
    reference outputs every provider is checked against."""
    B = shape[0]
    gen = torch.Generator().manual_seed(seed)
    kernel = torch.rand(KERNEL_SIZE, KERNEL_SIZE, generator=gen, dtype=torch.float64)
    kernel = (kernel / kernel.sum()).to(dtype)
    x = torch.rand(shape, generator=gen, dtype=dtype)
    noise = torch.randn(shape, generator=gen, dtype=dtype)
    v = torch.rand(shape, generator=gen, dtype=dtype).to(device)
    gamma = (10.0 ** (2 * torch.rand(B, generator=gen, dtype=torch.float64) - 1)).to(dtype)
    kernel, x, noise, gamma = (t.to(device) for t in (kernel, x, noise, gamma))
    op = Blur(kernel)
    y = op(x) + 0.01 * noise
    fidelity = pnpfast.L2(op, y)
    v_hat = torch.fft.rfft2(v)
    expected = fidelity.prox(v, gamma, backend="reference", check=False)
    expected_pass = fft_prox(v_hat, fidelity.kty, fidelity.k2, gamma, backend="reference")
    return Inputs(kernel, y, v, gamma, fidelity, v_hat, expected, expected_pass)


def spectral_pass_bytes(shape: tuple[int, ...], elem: int) -> int:
    B, C, H, W = shape
    wr = W // 2 + 1
    freqs = B * C * H * wr
    return 3 * freqs * 2 * elem + B * H * wr * elem + B * elem


def fft_bytes(shape: tuple[int, ...], elem: int) -> int:
    """rfft2 + irfft2, each one read and one write of the image and of its spectrum."""
    B, C, H, W = shape
    return 2 * (B * C * H * W * elem + B * C * H * (W // 2 + 1) * 2 * elem)


def prox_bytes(shape: tuple[int, ...], elem: int) -> int:
    return spectral_pass_bytes(shape, elem) + fft_bytes(shape, elem)


def provider(
    name: str, inp: Inputs, device: str
) -> tuple[Callable[[], torch.Tensor], torch.Tensor, str]:
    """(function to time, expected output, note) for a provider; raises Skip when it cannot run."""
    f, v, y, gamma = inp.fidelity, inp.v, inp.y, inp.gamma
    H, W = v.shape[-2:]
    bound = bound_prox_provider(name, f.prox, v, gamma, device)
    if bound is not None:
        return bound, inp.expected, ""
    if name == "deepinv":
        dinv, note = import_deepinv()
        if dinv is None:
            raise Skip(note)
        C = v.shape[1]
        physics = dinv.physics.BlurFFT(
            img_size=(C, H, W), filter=inp.kernel[None, None], device=device
        )
        g4 = gamma.view(-1, 1, 1, 1)
        gamma_note = "per-image gamma as [B,1,1,1] (a [B] tensor meets the width axis)"
        note = f"{note}; {gamma_note}" if note else gamma_note
        return (lambda: physics.prox_l2(v, y, g4)), inp.expected, note
    if name == "fft-only":
        return (lambda: torch.fft.irfft2(torch.fft.rfft2(v), s=(H, W))), v, "checked against v"
    if name.startswith("spectral-pass/"):
        backend = name.split("/", 1)[1]
        if backend != "reference":
            reason = fast_backend_reason(backend, device)
            if reason:
                raise Skip(reason)
        args = (inp.v_hat, f.kty, f.k2, gamma)
        return (lambda: fft_prox(*args, backend=backend)), inp.expected_pass, ""
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(PROVIDERS)}")


def nbytes_for(name: str, shape: tuple[int, ...], elem: int) -> int:
    if name.startswith("spectral-pass/"):
        return spectral_pass_bytes(shape, elem)
    if name == "fft-only":
        return fft_bytes(shape, elem)
    return prox_bytes(shape, elem)


def run_shape(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: str,
    providers: list[str],
    *,
    warmup: int,
    reps: int,
) -> list[dict]:
    inp = setup(shape, dtype, device)
    elem = torch.empty((), dtype=dtype).element_size()
    timings, checks, notes = time_checked(
        providers,
        lambda name: provider(name, inp, device),
        RTOL,
        device=device,
        warmup=warmup,
        reps=reps,
    )
    return timing_rows(
        OP, timings, checks, notes, shape=shape, dtype=dtype, device=device,
        nbytes=lambda name: nbytes_for(name, shape, elem),
    )  # fmt: skip


def dispatch_calls() -> tuple[Callable, Callable, Callable]:
    """(public op, dispatcher alone, reference) calls of the spectral pass on DISPATCH_SHAPE."""
    B, C, H, W = DISPATCH_SHAPE
    gen = torch.Generator().manual_seed(0)
    v_hat, kty = (
        torch.randn(B, C, H, W // 2 + 1, generator=gen, dtype=torch.complex64) for _ in range(2)
    )
    k2 = torch.rand(1, 1, H, W // 2 + 1, generator=gen)
    gamma = torch.rand(B, generator=gen) + 0.1
    args = (v_hat, kty, k2, gamma)
    return (
        lambda: fft_prox(*args),
        lambda: fft_prox_op(*args),
        lambda: fft_prox_reference(*args),
    )


def target_lines(rows: list[dict], device: str) -> list[str]:
    """Whether the targets stated in the module docstring are met for one shape's rows."""
    shape = rows[0]["shape"] if rows else "?"
    lines = []
    if torch.device(device).type == "cpu":
        ref, dinv = (
            correct_median(rows, "reference"),
            correct_median(rows, "deepinv"),
        )
        if shape == "8x3x256x256" and ref and dinv:
            ratio = dinv / ref
            verdict = "met" if ratio >= 1.5 else "MISSED"
            lines.append(f"reference vs deepinv: {ratio:.2f}x faster (target >= 1.5x: {verdict})")
        return lines
    for b in ("triton", "cuda"):
        r = next((r for r in rows if r["provider"] == f"spectral-pass/{b}" and r["correct"]), None)
        if r and r["frac_copy_bw"] is not None:
            lines.append(copy_bw_line(f"spectral pass {b}", r["frac_copy_bw"], 0.85))
    ours = [
        m
        for p in ("reference", "reference-compiled", "triton", "cuda")
        if (m := correct_median(rows, p))
    ]
    best = min(ours) if ours else None
    fft, dinv = correct_median(rows, "fft-only"), correct_median(rows, "deepinv")
    if best and fft:
        ratio = best / fft
        verdict = "met" if ratio <= 1.15 else "MISSED"
        lines.append(f"fastest prox / fft-only: {ratio:.2f}x (target <= 1.15x: {verdict})")
    if best and dinv:
        ratio = dinv / best
        verdict = "met" if ratio >= 2.5 else "MISSED"
        lines.append(f"fastest prox vs deepinv: {ratio:.2f}x faster (target >= 2.5x: {verdict})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=OP)
    add_dispatch_options(parser)
    args, providers, reps, warmup = parse_common(parser, argv, PROVIDERS, QUICK_SKIPS)
    device = args.device
    for shape in args.shapes:
        if len(shape) != 4:
            parser.error(f"shape {'x'.join(map(str, shape))} is not BxCxHxW")
    for shape in shapes_to_time(args, OP, args.shapes, reps, warmup):
        rows = run_shape(shape, torch.float32, device, providers, warmup=warmup, reps=reps)
        report_rows(args.out, rows, "", target_lines(rows, device))
    run_dispatch_part(args, OP, dispatch_calls)
    print(f"\nrows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the closed-form super-resolution prox (op ``sr_prox``, rows ``sr_prox/x<s>``).

Problem: x = argmin_x 1/2 ||S_s(k * x) - y||^2 + 1/(2 gamma) ||z - x||^2 with k MATLAB's
bicubic kernel of factor s (``SuperResolution.bicubic(s)``, float32), circular convolution and
top-left decimation, y = S_s(k * x0) + noise, one gamma per image drawn log-uniformly in
[0.1, 10]. Default shapes 8x3x256x256 and 32x3x512x512, factors 2, 3, 4 (``--factors``), float32;
H and W are cut down to multiples of the factor (8x3x255x255 and 32x3x510x510 at s = 3), and the
rows record the shape that ran.

Providers (whole prox, all compared with the ``reference`` output):
    reference            pnpfast.L2(SuperResolution.bicubic(s), y).prox(z, gamma,
                         backend="reference", check=False): the bound prox as a solver
                         iteration calls it (A^T y, its spectrum, K^ and mean_s |K^|^2 cached
                         when the L2 object is built, gamma already a [B] tensor, no checks):
                         fft2, the sr_prox spectral step, real_ifft2
    reference-compiled   the same call under torch.compile (skipped with a note if it fails)
    triton, cuda         the same call with backend="triton" / "cuda", on CUDA tensors only and
                         only where pnpfast.backends() reports that backend
    torch-unfused        fft2, pnpfast.ops.sr_prox_reference called directly (the spectral step
                         as separate torch ops, no dispatch), ifft2: the sequence a solver writes
                         without the fused op. On the CPU the reference backend is this same
                         torch sequence, so the two differ only by the dispatch and L2's call
    deepinv              deepinv.physics.Downsampling(img_size=(C, H, W), filter=k[None, None],
                         factor=s, padding="circular").prox_l2(z, y, gamma), gamma as a
                         [B, 1, 1, 1] tensor (deepinv's prox_l2 has the same 1/(2 gamma)
                         convention; both centre an odd kernel at its middle tap, and the
                         bicubic kernels of factors 2-4 are 9x9, 13x13, 19x19)
Baselines:
    fft-only             real_ifft2(fft2(z)), the prox's own FFTs: the floor of any
                         full-FFT prox (checked against z)
    spectral-pass/<b>    pnpfast.ops.sr_prox on precomputed spectra with backend <b> (reference,
                         triton, cuda), checked against spectral-pass/reference

Correctness: before timing, each provider's output must satisfy
max |out - ref| <= 1e-4 * max |ref| (deepinv agrees to about 6e-7 in float32); a provider that
fails is still timed but its row says correct=false and no speed-up is claimed for it.

Bytes moved (per call, from benchmarks/perf_model.py, the one source of these counts; e =
bytes per real element, 4 for float32; N = B*C*H*W; full complex spectra of 2e bytes per
frequency; h = H/s, w = W/s; Bk = 1, the kernel being shared by the batch):
    spectral pass   sr_prox_traffic: read v_hat and kty (2 * N * 2e), write the result (N * 2e),
                    read K^ once per kernel plane (Bk * H*W * 2e), mean_s |K^|^2 once per kernel
                    plane (Bk * h*w * e) and gamma (B * e)
    fft-only        fft2_pair_traffic: fft2 reads the image and writes its spectrum
                    (N * e + N * 2e), irfft2 reads the first W // 2 + 1 columns and writes the
                    image (about N * e + N * e), each FFT counted as a single pass
    whole prox      prox_l2_sr_traffic: those and the spectral pass, about 11 N e plus K^,
                    mean_s |K^|^2 and gamma; given to
                    every whole-prox provider, deepinv and torch-unfused included, so their
                    GB/s is an effective rate on the traffic of pnpfast's sequence

Dispatch overhead (harness.run_dispatch_part; skipped by --quick, alone with --dispatch-only):
on a 1x1x8x8 CPU input at factor 2, sr_prox with the automatic backend choice against
sr_prox_reference on the same spectra, interleaved; target: at most 20 us more.

Targets: on the CPU the reference bound prox is >= 1.5x faster than deepinv (issue 19); on a
GPU the fused spectral pass (triton) reaches >= 85% of the copy bandwidth and the triton prox
is >= 2.5x faster than deepinv (the fft_prox targets).
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from deepinv_compat import import_deepinv
from harness import (
    Skip,
    add_dispatch_options,
    bound_prox_provider,
    common_parser,
    copy_bw_line,
    correct_median,
    fast_backend_reason,
    parse_common,
    parse_list,
    report_rows,
    run_dispatch_part,
    shapes_to_time,
    time_checked,
    timing_rows,
)
from perf_model import H200, fft2_pair_traffic, prox_l2_sr_traffic, sr_prox_traffic

import pnpfast
from pnpfast.operators import SuperResolution
from pnpfast.ops import sr_prox, sr_prox_reference
from pnpfast.ops.sr_prox import _op as sr_prox_op
from pnpfast.ops.sr_prox import real_ifft2

OP = "sr_prox"
DEFAULT_SHAPES = "8x3x256x256,32x3x512x512"
DEFAULT_FACTORS = "2,3,4"
RTOL = 1e-4
PROX_PROVIDERS = ("reference", "reference-compiled", "triton", "cuda", "torch-unfused", "deepinv")
PASS_BACKENDS = ("reference", "triton", "cuda")
PROVIDERS = (
    *PROX_PROVIDERS,
    "fft-only",
    *(f"spectral-pass/{b}" for b in PASS_BACKENDS),
)
QUICK_SKIPS = ("reference-compiled",)


@dataclass
class Inputs:
    factor: int
    kernel: torch.Tensor  # [h, w], the bicubic kernel of the factor
    y: torch.Tensor  # [B, C, H / s, W / s]
    z: torch.Tensor  # [B, C, H, W]
    gamma: torch.Tensor  # [B]
    fidelity: pnpfast.L2
    z_hat: torch.Tensor  # fft2(z): [B, C, H, W] complex
    expected: torch.Tensor  # the reference prox of z: [B, C, H, W]
    expected_pass: torch.Tensor  # the reference spectral step: [B, C, H, W] complex


def setup(
    shape: tuple[int, ...], factor: int, dtype: torch.dtype, device: str, seed: int = 0
) -> Inputs:
    """Seeded inputs on ``device``: y = S(k * x) + noise, z, per-image gamma, and the reference
    outputs every provider is checked against."""
    B, C, H, W = shape
    s = factor
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen, dtype=dtype)
    noise = torch.randn(B, C, H // s, W // s, generator=gen, dtype=dtype)
    z = torch.rand(shape, generator=gen, dtype=dtype).to(device)
    gamma = (10.0 ** (2 * torch.rand(B, generator=gen, dtype=torch.float64) - 1)).to(dtype)
    kernel = SuperResolution.bicubic(s).kernel[0].to(device=device, dtype=dtype)
    x, noise, gamma = (t.to(device) for t in (x, noise, gamma))
    op = SuperResolution(kernel, s)
    y = op(x) + 0.01 * noise
    fidelity = pnpfast.L2(op, y)
    z_hat = torch.fft.fft2(z)
    expected = fidelity.prox(z, gamma, backend="reference", check=False)
    k_hat, k2_mean, _ = fidelity._sr
    expected_pass = sr_prox(z_hat, fidelity.sr_kty, k_hat, k2_mean, gamma, s, backend="reference")
    return Inputs(s, kernel, y, z, gamma, fidelity, z_hat, expected, expected_pass)


def cropped(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """``shape`` with H and W cut down to multiples of ``factor`` (256 -> 255 for s = 3)."""
    B, C, H, W = shape
    return (B, C, H - H % factor, W - W % factor)


def nbytes_for(name: str, shape: tuple[int, ...], factor: int, elem: int, bk: int = 1) -> int:
    """Bytes moved by a provider's call (module docstring), from benchmarks/perf_model.py."""
    if name == "fft-only":
        return fft2_pair_traffic(shape, elem).bytes
    # the bytes do not depend on the backend: the Triton and CUDA kernels move the same
    model = sr_prox_traffic if name.startswith("spectral-pass/") else prox_l2_sr_traffic
    return model(shape, elem, "triton", H200, factor=factor, bk=bk).bytes


def provider(
    name: str, inp: Inputs, device: str
) -> tuple[Callable[[], torch.Tensor], torch.Tensor, str]:
    """(function to time, expected output, note) for a provider; raises Skip when it cannot run."""
    f, z, y, gamma, s = inp.fidelity, inp.z, inp.y, inp.gamma, inp.factor
    k_hat, k2_mean, _ = f._sr
    bound = bound_prox_provider(name, f.prox, z, gamma, device)
    if bound is not None:
        return bound, inp.expected, ""
    if name == "torch-unfused":
        kty = f.sr_kty

        def unfused() -> torch.Tensor:
            x_hat = sr_prox_reference(torch.fft.fft2(z), kty, k_hat, k2_mean, gamma, s)
            return torch.fft.ifft2(x_hat).real

        return unfused, inp.expected, ""
    if name == "deepinv":
        dinv, note = import_deepinv()
        if dinv is None:
            raise Skip(note)
        C, H, W = z.shape[1:]
        physics = dinv.physics.Downsampling(
            img_size=(C, H, W),
            filter=inp.kernel[None, None],
            factor=s,
            device=device,
            padding="circular",
        )
        g4 = gamma.view(-1, 1, 1, 1)
        gamma_note = "per-image gamma as [B,1,1,1]"
        note = f"{note}; {gamma_note}" if note else gamma_note
        return (lambda: physics.prox_l2(z, y, g4)), inp.expected, note
    if name == "fft-only":
        return (lambda: real_ifft2(torch.fft.fft2(z))), z, "checked against z"
    if name.startswith("spectral-pass/"):
        backend = name.split("/", 1)[1]
        if backend != "reference":
            reason = fast_backend_reason(backend, device)
            if reason:
                raise Skip(reason)
        args = (inp.z_hat, f.sr_kty, k_hat, k2_mean, gamma, s)
        return (lambda: sr_prox(*args, backend=backend)), inp.expected_pass, ""
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(PROVIDERS)}")


def run_shape(
    shape: tuple[int, ...],
    factor: int,
    dtype: torch.dtype,
    device: str,
    providers: list[str],
    *,
    warmup: int,
    reps: int,
) -> list[dict]:
    inp = setup(shape, factor, dtype, device)
    elem = torch.empty((), dtype=dtype).element_size()
    bk = inp.fidelity._sr[0].shape[0]
    timings, checks, notes = time_checked(
        providers,
        lambda name: provider(name, inp, device),
        RTOL,
        device=device,
        warmup=warmup,
        reps=reps,
    )
    return timing_rows(
        f"{OP}/x{factor}", timings, checks, notes, shape=shape, dtype=dtype, device=device,
        nbytes=lambda name: nbytes_for(name, shape, factor, elem, bk),
    )  # fmt: skip


def dispatch_calls() -> tuple[Callable, Callable, Callable]:
    """(public op, dispatcher alone, reference) calls of the spectral step on 1x1x8x8, s = 2."""
    B, C, H, W, s = 1, 1, 8, 8, 2
    gen = torch.Generator().manual_seed(0)
    z_hat, kty = (torch.randn(B, C, H, W, generator=gen, dtype=torch.complex64) for _ in range(2))
    k_hat = torch.randn(1, 1, H, W, generator=gen, dtype=torch.complex64)
    k2_mean = torch.rand(1, 1, H // s, W // s, generator=gen)
    gamma = torch.rand(B, generator=gen) + 0.1
    args = (z_hat, kty, k_hat, k2_mean, gamma, s)
    return (
        lambda: sr_prox(*args),
        lambda: sr_prox_op(*args),
        lambda: sr_prox_reference(*args),
    )


def target_lines(rows: list[dict], device: str) -> list[str]:
    """Whether the targets stated in the module docstring are met for one (shape, factor)."""
    lines = []
    dinv = correct_median(rows, "deepinv")
    if torch.device(device).type == "cpu":
        ref = correct_median(rows, "reference")
        if ref and dinv:
            ratio = dinv / ref
            verdict = "met" if ratio >= 1.5 else "MISSED"
            lines.append(f"reference vs deepinv: {ratio:.2f}x faster (target >= 1.5x: {verdict})")
        elif any(r["provider"] == "deepinv" for r in rows):
            lines.append("deepinv's output differs from the reference: no speed-up claimed")
        return lines
    r = next((r for r in rows if r["provider"] == "spectral-pass/triton" and r["correct"]), None)
    if r and r["frac_copy_bw"] is not None:
        lines.append(copy_bw_line("spectral pass triton", r["frac_copy_bw"], 0.85))
    tri = correct_median(rows, "triton")
    if tri and dinv:
        ratio = dinv / tri
        verdict = "met" if ratio >= 2.5 else "MISSED"
        lines.append(f"triton prox vs deepinv: {ratio:.2f}x faster (target >= 2.5x: {verdict})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0], default_shapes=DEFAULT_SHAPES, name=OP)
    parser.add_argument(
        "--factors",
        default=DEFAULT_FACTORS,
        help=f"decimation factors, comma-separated (default {DEFAULT_FACTORS})",
    )
    add_dispatch_options(parser)
    args, providers, reps, warmup = parse_common(parser, argv, PROVIDERS, QUICK_SKIPS)
    try:
        factors = [int(f) for f in parse_list(args.factors)]
    except ValueError:
        parser.error(f"--factors must be comma-separated integers, got {args.factors!r}")
    if not factors or any(f < 1 for f in factors):
        parser.error(f"--factors must be integers >= 1, got {args.factors!r}")
    device = args.device
    for shape in args.shapes:
        if len(shape) != 4:
            parser.error(f"shape {'x'.join(map(str, shape))} is not BxCxHxW")
        if any(shape[2] < f or shape[3] < f for f in factors):
            parser.error(f"shape {'x'.join(map(str, shape))} is smaller than a factor")
    for shape in shapes_to_time(args, OP, args.shapes, reps, warmup):
        for factor in factors:
            rows = run_shape(
                cropped(shape, factor),
                factor,
                torch.float32,
                device,
                providers,
                warmup=warmup,
                reps=reps,
            )
            report_rows(args.out, rows, "", target_lines(rows, device))
    run_dispatch_part(args, OP, dispatch_calls)
    print(f"\nrows appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A static performance model of pnpfast's fused ops: bytes, FLOPs and the expected H200 time.

For every fused op (the table ``MODELS``) and a shape [B, C, H, W], dtype and backend, ``traffic``
counts what one call of the public op moves through device memory and computes, from what the
kernels of kernels/<op>.py and csrc/<op>.cu load and store:

    bytes_read, bytes_written   every tensor element a kernel loads or stores, once; complex
                                values count as two reals; a plane that every channel of an
                                image reads (|K^|^2, K^, the mask) counts once per plane (the
                                other channels read it from the L2 cache); per-block partial sums,
                                the torch reduction that sums them and a second pass (the
                                constrained step's noise) are included
    io_bytes                    the least a call can move: each input read once, each output
                                written once (no partial sums, no second pass)
    flops                       floating-point operations of the formula per element, an FMA
                                counted as 2, a division or a square root as 1
    int_ops                     integer operations that the formula needs (the Philox rounds
                                of the constrained step's noise), not address arithmetic
    launches                    kernels per call, the torch reductions of the partial sums
                                included

The modelled time on a device (``H200``: copy bandwidth 4.3 TB/s measured on an H200 of this
workplace, 4.8 TB/s datasheet; 66.9 TFLOP/s fp32 and 33.5 fp64, 16.7 Tops/s int32: 132 SMs at
1.98 GHz with 128 fp32, 64 fp64 and 64 int32 lanes each) is

    t = sum over the kernels of a call of
            max(bytes / copy_bw, flops / peak_flops(dtype) + int_ops / int_rate)
        + launches * 2 us

The 2 us per launch is the gap between dependent kernels on one stream plus the ramp-up and the
tail of a grid; the host-side cost of a call (argument checks, dispatch, the custom-op wrapper:
``harness.run_dispatch_part`` measures it on the CPU) is not in the model: the benchmarks zero a
256 MiB buffer before each timed call, which gives the host a head start of about 60 us.

For the Triton kernels, ``ptx_mix`` counts the static instruction mix of the PTX of the exact
specialisation each benchmark shape launches (recorded through Triton's own binder with
.ci/aot_triton.py's compile-only driver, compiled for sm_90): 128-bit (``ld.global.v4.b32``,
``ld.global.v2.b64``), 64-bit and scalar global loads and stores, local-memory loads and stores
(must be 0), FMAs and other floating-point operations.

    python benchmarks/perf_model.py                    the table for the benchmark shapes
    python benchmarks/perf_model.py --kernels          also the modelled time per kernel
    python benchmarks/perf_model.py --ptx              also the PTX instruction mix (compiles)
    python benchmarks/perf_model.py --ptx --write      and rewrite results/perf_model.jsonl and
                                                       results/perf_model_ptx.jsonl

On a GPU run, ``harness.append_rows`` prints the measured median of every row that has a model
next to the modelled time and their ratio (``comparison_lines``), and ``report.py`` adds the
same table to its report. A new op needs one traffic function, one ``OpModel`` entry in
``MODELS`` and, for its benchmark rows, one ``BENCH_ROWS`` entry.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS = BENCH_DIR / "results" / "perf_model.jsonl"
PTX_RESULTS = BENCH_DIR / "results" / "perf_model_ptx.jsonl"

Shape = tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------
# The device


@dataclass(frozen=True)
class DeviceModel:
    """The rates the model divides by."""

    name: str
    copy_bw: float  # bytes/s, read + written, of a large device-to-device copy
    datasheet_bw: float  # bytes/s
    peak_fp32: float  # FLOP/s, an FMA counted as 2
    peak_fp64: float
    int_rate: float  # int32 operations/s
    launch_s: float  # per kernel launch
    sms: int

    def peak_flops(self, elem: int) -> float:
        return self.peak_fp64 if elem == 8 else self.peak_fp32


_H200_SMS, _H200_CLOCK = 132, 1.98e9
H200 = DeviceModel(
    name="H200",
    copy_bw=4.3e12,
    datasheet_bw=4.8e12,
    peak_fp32=_H200_SMS * 128 * 2 * _H200_CLOCK,
    peak_fp64=_H200_SMS * 64 * 2 * _H200_CLOCK,
    int_rate=_H200_SMS * 64 * _H200_CLOCK,
    launch_s=2e-6,
    sms=_H200_SMS,
)


# --------------------------------------------------------------------------------------------
# Traffic


@dataclass(frozen=True)
class Traffic:
    """What one call moves and computes (see the module docstring)."""

    bytes_read: int = 0
    bytes_written: int = 0
    io_bytes: int = 0
    flops: int = 0
    int_ops: int = 0
    launches: int = 0
    # each kernel's share: the time is summed over kernels
    kernels: tuple[tuple[str, int, int, int], ...] = ()  # (name, bytes, flops, int_ops)

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.bytes_read + other.bytes_read,
            self.bytes_written + other.bytes_written,
            self.io_bytes + other.io_bytes,
            self.flops + other.flops,
            self.int_ops + other.int_ops,
            self.launches + other.launches,
            self.kernels + other.kernels,
        )


def _kernel(
    name: str, read: int, written: int, flops: int = 0, int_ops: int = 0, io: int = 0
) -> Traffic:
    """One kernel launch; ``io`` is the part of its bytes that is the op's own inputs/outputs."""
    return Traffic(read, written, io, flops, int_ops, 1, ((name, read + written, flops, int_ops),))


def _name(backend: str, triton: str, cuda: str) -> str:
    return triton if backend == "triton" else cuda


def _reduce(slots: int, elem: int, sums: int) -> Traffic:
    """torch's sum over the partial-sum slots: reads ``slots`` values, writes ``sums`` (the op's
    outputs when they are its sums: counted in ``io`` by the caller)."""
    return _kernel("torch sum", slots * elem, sums * elem, flops=slots)


def _elementwise(name: str, n: int, elem: int) -> Traffic:
    """A small torch elementwise op on n values (sigma's division and square root)."""
    return _kernel(name, n * elem, n * elem, flops=n)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def partial_slots(backend: str, images: int, elems: int, block: int, device: DeviceModel) -> int:
    """Partial-sum slots per image of a reduction kernel: one per Triton program of ``block``
    elements, or for CUDA ``pnpfast.ops._alloc.cuda_partial_blocks`` on ``device``'s SMs."""
    if backend == "triton":
        return max(1, _cdiv(elems, block))
    from pnpfast.ops._alloc import _CUDA_BLOCKS_PER_SM, CUDA_THREADS

    waves = device.sms * _CUDA_BLOCKS_PER_SM * 4
    return max(1, min(_cdiv(elems, 4 * CUDA_THREADS), _cdiv(waves, max(images, 1))))


def _triton_block(module: str, name: str = "BLOCK") -> int:
    """A block size of kernels/<module>.py, read from its source (importing it needs triton)."""
    return int(_module_constant(ROOT / "kernels" / f"{module}.py", name))


def _module_constant(path: Path, name: str):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError(f"{path}: no constant {name}")


# --- the ops ----------------------------------------------------------------------------------


def spectral_traffic(
    shape: Shape,
    elem: int,
    backend: str,
    device: DeviceModel,
    *,
    coeffs: int,
    bk: int = 1,
    kernel: str = "_fft_prox_kernel",
) -> Traffic:
    """fft_prox / fft_grad: read v_hat and kty ([B, C, H, Wr] complex), |K^|^2 once per plane
    of [Bk, 1, H, Wr] and ``coeffs`` per-image scalars; write out. Per real element: fft_prox
    (v + g kty) / (1 + g k2) is 2 FMAs and a division (5); fft_grad (s k2 + t) v - s kty is 2
    FMAs and a product (5)."""
    B, C, H, W = shape
    reals = 2 * B * C * H * (W // 2 + 1)
    read = 2 * reals * elem + bk * H * (W // 2 + 1) * elem + coeffs * B * elem
    written = reals * elem
    name = _name(backend, kernel, "spectral_kernel")
    return _kernel(name, read, written, flops=5 * reals, io=read + written)


def fft_prox_traffic(shape, elem, backend, device, *, bk: int = 1) -> Traffic:
    return spectral_traffic(shape, elem, backend, device, coeffs=1, bk=bk)


def fft_grad_traffic(shape, elem, backend, device, *, bk: int = 1) -> Traffic:
    return spectral_traffic(
        shape, elem, backend, device, coeffs=2, bk=bk, kernel="_fft_grad_kernel"
    )


def prox_l2_fft_traffic(shape, elem, backend, device, *, bk: int = 1) -> Traffic:
    """The whole FFT prox (``L2.prox``: rfft2, the fft_prox pass, irfft2), each FFT counted as
    one read and one write of the image and of its spectrum and 2.5 n log2 n FLOPs per plane of
    n = H W: a lower bound (cuFFT may make more passes, and torch copies irfft2's input)."""
    B, C, H, W = shape
    image = B * C * H * W * elem
    spectrum = 2 * B * C * H * (W // 2 + 1) * elem
    fft_flops = int(2.5 * B * C * H * W * math.log2(max(H * W, 2)))
    fft = _kernel("rfft2", image, spectrum, flops=fft_flops)
    ifft = _kernel("irfft2", spectrum, image, flops=fft_flops)
    pass_ = fft_prox_traffic(shape, elem, backend, device, bk=bk)
    total = fft + pass_ + ifft
    # the op's own inputs and outputs: v, y's spectral terms, gamma in; x out
    io = image + spectrum + bk * H * (W // 2 + 1) * elem + B * elem + image
    return dataclasses.replace(total, io_bytes=io)


def _fft2(shape: Shape, elem: int) -> Traffic:
    """torch.fft.fft2 of a real [B, C, H, W] image: one read of the image, one write of its full
    complex spectrum, 2.5 n log2 n FLOPs per plane of n = H W (a real-input transform)."""
    B, C, H, W = shape
    n = B * C * H * W
    flops = int(2.5 * n * math.log2(max(H * W, 2)))
    return _kernel("fft2", n * elem, 2 * n * elem, flops=flops)


def _real_ifft2(shape: Shape, elem: int) -> Traffic:
    """``real_ifft2`` of a full [B, C, H, W] spectrum: irfft2 of its first W // 2 + 1 columns
    (complex in), the real image out, 2.5 n log2 n FLOPs per plane of n = H W."""
    B, C, H, W = shape
    n = B * C * H * W
    half = B * C * H * (W // 2 + 1)
    flops = int(2.5 * n * math.log2(max(H * W, 2)))
    return _kernel("irfft2", half * 2 * elem, n * elem, flops=flops)


def fft2_pair_traffic(shape: Shape, elem: int) -> Traffic:
    """fft2 of a real image, then ``real_ifft2`` of the spectrum: the floor of any
    full-FFT prox (each FFT one pass: a lower bound, as in ``prox_l2_fft_traffic``)."""
    return _fft2(shape, elem) + _real_ifft2(shape, elem)


def _check_factor(shape: Shape, factor: int) -> None:
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be an int >= 1, got {factor!r}")
    if shape[2] % factor or shape[3] % factor:
        raise ValueError(
            f"shape: H and W must be multiples of the factor {factor}, got {shape[2]}x{shape[3]}"
        )


def sr_prox_traffic(shape, elem, backend, device, *, factor: int, bk: int = 1) -> Traffic:
    """sr_prox, the SR prox's spectral step on full spectra (kernels/sr_prox.py): read v_hat and
    kty ([B, C, H, W] complex, 2 * N * 2e), K^ once per plane of [Bk, 1, H, W] complex
    (Bk * H W * 2e) and mean_s |K^|^2 once per plane of [Bk, 1, H/s, W/s] (Bk * H/s W/s * e),
    as |K^|^2 in ``spectral_traffic`` (the other channels, and with Bk = 1 the other images,
    read them from the L2 cache), gamma (B * e); write X^ (N * 2e); N = B C H W. The CUDA
    kernel (csrc/sr_prox.cu, one thread per low-resolution frequency) loads and stores the same.

    FLOPs per full-resolution frequency: R^ = V^ + g kty (2 FMAs: 4), K^ R^ added into the sum
    over the aliases (8), X^ = R^ - conj(K^) Q (8); per low-resolution frequency: the mean's
    1/s^2 (2), 1 + g k2_mean (2), g over it (1), Q (2): 20 N + 7 N / s^2 (the rows a
    non-power-of-2 s^2 pads the Triton tile with are masked and not counted)."""
    _check_factor(shape, factor)
    B, C, H, W = shape
    n = B * C * H * W
    low = (H // factor) * (W // factor)
    read = 2 * n * 2 * elem + bk * H * W * 2 * elem + bk * low * elem + B * elem
    written = n * 2 * elem
    flops = 20 * n + 7 * B * C * low
    name = _name(backend, "_sr_prox_kernel", "sr_prox_kernel")
    return _kernel(name, read, written, flops=flops, io=read + written)


def prox_l2_sr_traffic(shape, elem, backend, device, *, factor: int, bk: int = 1) -> Traffic:
    """The whole SR prox (``L2.prox`` with a SuperResolution: fft2 of v, the sr_prox pass,
    ``real_ifft2``): fft2 reads the image and writes its full spectrum (N e + N 2e), the pass,
    and irfft2 reads the spectrum's first W // 2 + 1 columns and writes the image (about
    N e + N e); each FFT counted as one pass, a lower bound as in ``prox_l2_fft_traffic``. In
    all, about 11 N e plus the pass's K^, mean_s |K^|^2 and gamma."""
    B, C, H, W = shape
    n = B * C * H * W
    pass_ = sr_prox_traffic(shape, elem, backend, device, factor=factor, bk=bk)
    total = _fft2(shape, elem) + pass_ + _real_ifft2(shape, elem)
    low = (H // factor) * (W // factor)
    # the op's own inputs and outputs: v, kty, K^, mean_s |K^|^2, gamma in; x out
    io = n * elem + n * 2 * elem + bk * H * W * 2 * elem + bk * low * elem + B * elem + n * elem
    return dataclasses.replace(total, io_bytes=io)


def pnp_update_traffic(
    shape, elem, backend, device, *, has_x: bool = True, has_xprev: bool = True
) -> Traffic:
    """Read f, z and the given x, xprev, and coef [B, 4]; write out and the [B, slots, 3]
    partial sums, which torch sums into sums [B, 3]. FLOPs per element: the combination
    (1 + 2 per further term), ||z - f||^2 (3), ||x - xprev||^2 (3, or 2 with one of them),
    ||x||^2 (2)."""
    B = shape[0]
    n = math.prod(shape[1:])
    images = 2 + has_x + has_xprev
    slots = partial_slots(backend, B, n, _triton_block("pnp_update"), device)
    per_elem = 1 + 2 * (images - 1) + 3
    if has_x:
        per_elem += 2 + (3 if has_xprev else 0)
    elif has_xprev:
        per_elem += 2
    read = images * B * n * elem + 4 * B * elem
    written = B * n * elem
    partial = B * slots * 3 * elem
    io = read + written + 3 * B * elem
    name = _name(backend, "_pnp_update_kernel", "pnp_update_kernel")
    main = _kernel(name, read, written + partial, flops=per_elem * B * n, io=io)
    finish = _reduce(B * slots * 3, elem, 3 * B)
    return main + finish


def power_step_traffic(shape, elem, backend, device) -> Traffic:
    """Pass: read w, u and state [B, 4], write u' and the [B, slots, 2] partial sums; finish:
    read state and the partials, write state' [B, 4]. FLOPs per element: s w (1), <u, w> (2),
    ||w||^2 (2)."""
    B = shape[0]
    n = math.prod(shape[1:])
    slots = partial_slots(backend, B, n, _triton_block("power_step"), device)
    state = 4 * B * elem
    partial = B * slots * 2 * elem
    io = 2 * B * n * elem + state + B * n * elem + state
    name = _name(backend, "_power_pass_kernel", "power_pass_kernel")
    pass_ = _kernel(name, 2 * B * n * elem + state, B * n * elem + partial, 5 * B * n, io=io)
    name = _name(backend, "_power_finish_kernel", "power_finish_kernel")
    finish = _kernel(name, state + partial, state, flops=2 * B * slots)
    return pass_ + finish


# Per element of the noise pass, from the sm_90 PTX of _noise_kernel (no loop: static counts
# are what runs; a thread draws 16 normals): 184 FMAs and 161 other floating-point operations
# (Box-Muller, with libdevice's logarithm inlined as a polynomial) are 529 FLOPs, 33 per
# element; 431 int32 operations (162 xor, 145 32-bit products, shifts, masks, adds: Philox
# 4x32-10 and the logarithm's exponent split), 27 per element.
NOISE_FLOPS = 33
NOISE_INT_OPS = 27

CONSTRAINED_FORMS = ("free", "mask", "projected", "block")


def constrained_step_traffic(
    shape, elem, backend, device, *, form: str = "free", factor: int = 4, mask_rows: int = -1
) -> Traffic:
    """Pass 1 reads x_hat, y (and lifted; the mask [Bm, 1, H, W] or P x_hat; h [B]), writes out
    and the [B, slots] partial sums of ||d||^2; torch sums them, divides and takes the square
    root (three launches); pass 2 reads sigma, c and out and writes out (the noise, drawn in the
    kernel). FLOPs per element of pass 1: free 5 (d, y + h d, d^2), mask 8, projected 7, block
    8 (the block sums and the lifted/projected terms)."""
    if form not in CONSTRAINED_FORMS:
        raise ValueError(f"form must be one of {CONSTRAINED_FORMS}, got {form!r}")
    B, C, H, W = shape
    n = C * H * W
    N = B * n
    if form == "block":
        tw = min(
            _triton_block("constrained_step", "TILE") // (factor * factor),
            1 << max(0, (W // factor) - 1).bit_length(),
        )
        slots = (
            C * (H // factor) * _cdiv(W // factor, tw)
            if backend == "triton"
            else partial_slots(backend, B, n, 0, device)
        )
    else:
        slots = partial_slots(backend, B, n, _triton_block("constrained_step"), device)
    images = {"free": 2, "mask": 3, "projected": 4, "block": 3}[form]
    mask = (B if mask_rows < 0 else mask_rows) * H * W * elem if form == "mask" else 0
    read1 = images * N * elem + mask + B * elem
    flops1 = {"free": 5, "mask": 8, "projected": 7, "block": 8}[form] * N
    # the op's inputs (x_hat, y, lifted, mask/projected, h, c) and outputs (out, sigma)
    io = read1 + B * elem + N * elem + B * elem
    if form == "block":
        name = _name(backend, "_step_block_kernel", "block_mean_step_kernel")
    else:
        name = _name(backend, "_step_flat_kernel", "flat_step_kernel")
    pass1 = _kernel(name, read1, N * elem + B * slots * elem, flops=flops1, io=io)
    sigma = _reduce(B * slots, elem, B)
    sigma = sigma + _elementwise("torch div", B, elem) + _elementwise("torch sqrt", B, elem)
    noise = _kernel(
        _name(backend, "_noise_kernel", "noise_kernel"),
        2 * B * elem + N * elem,
        N * elem,
        flops=NOISE_FLOPS * N,
        int_ops=NOISE_INT_OPS * N,
    )
    return pass1 + sigma + noise


# --------------------------------------------------------------------------------------------
# The table


def _empty(shape, dtype):
    import torch

    return torch.empty(shape, dtype=dtype)


def _call_spectral(op: str):
    def call(shape, dtype, bk: int = 1):
        import torch

        import pnpfast.ops as ops

        B, C, H, W = shape
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        spec = (B, C, H, W // 2 + 1)
        v, kty = _empty(spec, cdtype), _empty(spec, cdtype)
        k2 = _empty((bk, 1, H, W // 2 + 1), dtype)
        coeffs = [torch.ones(B, dtype=dtype) for _ in range(1 if op == "fft_prox" else 2)]
        return getattr(ops, op)(v, kty, k2, *coeffs, backend="triton")

    return call


def _call_sr_prox(shape, dtype, factor: int, bk: int = 1):
    import torch

    import pnpfast.ops as ops

    B, _, H, W = shape
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    v, kty = _empty(shape, cdtype), _empty(shape, cdtype)
    k_hat = _empty((bk, 1, H, W), cdtype)
    k2_mean = _empty((bk, 1, H // factor, W // factor), dtype)
    gamma = torch.ones(B, dtype=dtype)
    return ops.sr_prox(v, kty, k_hat, k2_mean, gamma, factor, backend="triton")


def _call_pnp_update(shape, dtype, has_x: bool = True, has_xprev: bool = True):
    import pnpfast.ops as ops

    x = _empty(shape, dtype) if has_x else None
    xprev = _empty(shape, dtype) if has_xprev else None
    coef = _empty((shape[0], 4), dtype)
    return ops.pnp_update(_empty(shape, dtype), _empty(shape, dtype), x, xprev, coef, "triton")


def _call_power_step(shape, dtype):
    import torch

    import pnpfast.ops as ops

    state = torch.zeros(shape[0], 4, dtype=dtype)
    return ops.power_step(
        _empty(shape, dtype), _empty(shape, dtype), state, 1e-3, True, backend="triton"
    )


def _call_constrained_step(shape, dtype, form="free", factor=4, mask_rows=-1):
    import torch

    import pnpfast.ops as ops

    B, _, H, W = shape
    h = torch.ones(B, dtype=dtype)
    kw: dict = {}
    if form != "free":
        kw["lifted"] = _empty(shape, dtype)
    if form == "mask":
        kw["mask"] = torch.ones((B if mask_rows < 0 else mask_rows, 1, H, W), dtype=dtype)
    elif form == "projected":
        kw["projected"] = _empty(shape, dtype)
    elif form == "block":
        kw["factor"] = factor
    return ops.constrained_step(
        _empty(shape, dtype), _empty(shape, dtype), h, h, 1, 0, backend="triton", **kw
    )


@dataclass(frozen=True)
class OpModel:
    """One fused op: its traffic, the Triton kernels it launches, and a call of the public op
    with backend="triton" on CPU tensors of a shape (to record the specialisations it
    launches)."""

    name: str
    traffic: Callable[..., Traffic]
    triton_kernels: tuple[str, ...]
    triton_call: Callable[..., object] | None
    doc: str = ""


MODELS: dict[str, OpModel] = {
    m.name: m
    for m in (
        OpModel(
            "fft_prox",
            fft_prox_traffic,
            ("_fft_prox_kernel",),
            _call_spectral("fft_prox"),
            "(v + g kty) / (1 + g k2): the spectral pass of the FFT prox",
        ),
        OpModel(
            "fft_grad",
            fft_grad_traffic,
            ("_fft_grad_kernel",),
            _call_spectral("fft_grad"),
            "(s k2 + t) v - s kty: the spectral pass of a gradient step",
        ),
        OpModel(
            "prox_l2_fft",
            prox_l2_fft_traffic,
            ("_fft_prox_kernel",),
            None,
            "rfft2, fft_prox, irfft2: the whole FFT prox (FFTs as one pass each: a lower bound)",
        ),
        OpModel(
            "sr_prox",
            sr_prox_traffic,
            ("_sr_prox_kernel",),
            _call_sr_prox,
            "R^ - conj(K^) spread(g mean_s(K^ R^) / (1 + g k2_mean)): the SR prox's spectral step",
        ),
        OpModel(
            "prox_l2_sr",
            prox_l2_sr_traffic,
            ("_sr_prox_kernel",),
            None,
            "fft2, sr_prox, ifft2, real part: the whole SR prox (FFTs as one pass each)",
        ),
        OpModel(
            "pnp_update",
            pnp_update_traffic,
            ("_pnp_update_kernel",),
            _call_pnp_update,
            "a f + b z + c x + d xprev and three sums of squares",
        ),
        OpModel(
            "power_step",
            power_step_traffic,
            ("_power_pass_kernel", "_power_finish_kernel"),
            _call_power_step,
            "u' = s w, <u, w>, ||w||^2, then the per-image state",
        ),
        OpModel(
            "constrained_step",
            constrained_step_traffic,
            ("_step_flat_kernel", "_step_block_kernel", "_noise_kernel"),
            _call_constrained_step,
            "y + h d, ||d||, then + c sigma z (two passes)",
        ),
    )
}


@dataclass(frozen=True)
class BenchRows:
    """Where a benchmark times a modelled op: its rows have ``op`` and a provider of
    ``providers`` (provider -> backend); ``options`` go to the model."""

    op: str
    model: str
    providers: dict[str, str]
    script: str  # benchmarks/<script>: its DEFAULT_SHAPES are the shapes modelled
    shapes_constant: str = "DEFAULT_SHAPES"
    options: dict = field(default_factory=dict)
    # H and W cut down to multiples of options["factor"], as bench_sr_prox.py runs them
    crop_to_factor: bool = False


_FAST = {"triton": "triton", "cuda": "cuda"}
# bench_sr_prox.py's factors, read from its source like the shapes
_SR_FACTORS = tuple(
    int(f) for f in _module_constant(BENCH_DIR / "bench_sr_prox.py", "DEFAULT_FACTORS").split(",")
)
BENCH_ROWS: tuple[BenchRows, ...] = (
    BenchRows(
        "fft_prox",
        "fft_prox",
        {"spectral-pass/triton": "triton", "spectral-pass/cuda": "cuda"},
        "bench_fft_prox.py",
    ),
    BenchRows("fft_prox", "prox_l2_fft", _FAST, "bench_fft_prox.py"),
    # no benchmark times fft_grad: modelled at fft_prox's shapes, no provider to compare
    BenchRows("fft_grad", "fft_grad", {}, "bench_fft_prox.py"),
    BenchRows("pnp_update", "pnp_update", _FAST, "bench_pnp_update.py"),
    BenchRows("power_step", "power_step", _FAST, "bench_spectral_norm.py"),
    *(
        BenchRows(
            f"constrained_step/{form}",
            "constrained_step",
            _FAST,
            "bench_constrained_step.py",
            options={"form": "block", "factor": 4} if form == "block4" else {"form": form},
        )
        for form in ("mask", "block4", "projected", "free")
    ),
    *(
        BenchRows(
            f"sr_prox/x{s}",
            model,
            providers,
            "bench_sr_prox.py",
            options={"factor": s},
            crop_to_factor=True,
        )
        for s in _SR_FACTORS
        for model, providers in (
            ("sr_prox", {"spectral-pass/triton": "triton", "spectral-pass/cuda": "cuda"}),
            ("prox_l2_sr", _FAST),
        )
    ),
)


def bench_shapes(entry: BenchRows) -> list[Shape]:
    """The default shapes of the entry's benchmark script (read from its source, not imported),
    cut down to multiples of the factor where the script does so."""
    text = _module_constant(BENCH_DIR / entry.script, entry.shapes_constant)
    shapes = [tuple(int(s) for s in part.split("x")) for part in text.split(",")]
    if entry.crop_to_factor:
        f = entry.options["factor"]
        shapes = [(B, C, H - H % f, W - W % f) for B, C, H, W in shapes]
    return shapes


# --------------------------------------------------------------------------------------------
# Estimates


_ELEM = {"float32": 4, "float64": 8}


@dataclass(frozen=True)
class Estimate:
    model: str
    op: str  # the benchmark rows' op
    backend: str
    shape: Shape
    dtype: str
    traffic: Traffic
    device: DeviceModel
    options: dict = field(default_factory=dict)

    @property
    def t_memory(self) -> float:
        return self.traffic.bytes / self.device.copy_bw

    @property
    def t_compute(self) -> float:
        elem = _ELEM[self.dtype]
        return (
            self.traffic.flops / self.device.peak_flops(elem)
            + self.traffic.int_ops / self.device.int_rate
        )

    @property
    def t_launch(self) -> float:
        return self.traffic.launches * self.device.launch_s

    @property
    def seconds(self) -> float:
        return self.seconds_at(self.device.copy_bw)

    def kernel_seconds(self, copy_bw: float | None = None) -> list[tuple[str, float]]:
        """(kernel, modelled seconds with its launch) for each kernel of the call."""
        bw = copy_bw or self.device.copy_bw
        peak = self.device.peak_flops(_ELEM[self.dtype])
        return [
            (
                name,
                max(nbytes / bw, flops / peak + ints / self.device.int_rate) + self.device.launch_s,
            )
            for name, nbytes, flops, ints in self.traffic.kernels
        ]

    def seconds_at(self, copy_bw: float) -> float:
        """The model with another copy bandwidth (bytes/s): sum over kernels of
        max(bytes / copy_bw, compute time), plus the launches."""
        elem = _ELEM[self.dtype]
        peak = self.device.peak_flops(elem)
        body = sum(
            max(nbytes / copy_bw, flops / peak + ints / self.device.int_rate)
            for _, nbytes, flops, ints in self.traffic.kernels
        )
        return body + self.t_launch

    @property
    def bound(self) -> str:
        return "memory" if self.t_memory >= self.t_compute else "compute"


def estimate(
    model: str,
    shape: Sequence[int],
    dtype: str = "float32",
    backend: str = "triton",
    device: DeviceModel = H200,
    op: str | None = None,
    **options,
) -> Estimate:
    """The model of one call of ``model`` (a key of MODELS) on ``shape`` [B, C, H, W]."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    if dtype not in _ELEM:
        raise ValueError(f"dtype must be one of {sorted(_ELEM)}, got {dtype!r}")
    if backend not in ("triton", "cuda"):
        raise ValueError(f"backend must be 'triton' or 'cuda', got {backend!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be [B, C, H, W] of positive sizes, got {shape}")
    traffic = MODELS[model].traffic(shape, _ELEM[dtype], backend, device, **options)
    return Estimate(model, op or model, backend, shape, dtype, traffic, device, dict(options))


def bench_estimates(device: DeviceModel = H200, dtype: str = "float32") -> list[Estimate]:
    """Every (benchmark op, backend, default shape) of BENCH_ROWS, triton and cuda."""
    out = []
    for entry in BENCH_ROWS:
        for shape in bench_shapes(entry):
            for backend in ("triton", "cuda"):
                out.append(
                    estimate(
                        entry.model, shape, dtype, backend, device, op=entry.op, **entry.options
                    )
                )
    return out


def row_estimate(row: dict, device: DeviceModel = H200) -> Estimate | None:
    """The model of a benchmark result row (None when its (op, provider) has none)."""
    for entry in BENCH_ROWS:
        backend = entry.providers.get(row.get("provider"))
        if row.get("op") != entry.op or backend is None:
            continue
        try:
            shape = tuple(int(s) for s in str(row["shape"]).split("x"))
            return estimate(
                entry.model, shape, row["dtype"], backend, device, op=entry.op, **entry.options
            )
        except (ValueError, KeyError):
            return None
    return None


# --------------------------------------------------------------------------------------------
# Measured against modelled


_CPU_DEVICE = re.compile(r"\(\d+ cores, \d+ threads\)$")


def on_gpu(row: dict) -> bool:
    """Whether a result row was measured on a GPU (harness.device_name names the CPU as
    '<model> (<n> cores, <t> threads)')."""
    device = str(row.get("device") or "")
    return bool(device) and not _CPU_DEVICE.search(device)


def comparisons(rows: Iterable[dict], device: DeviceModel = H200) -> list[dict]:
    """For each GPU row with a model: measured median, modelled time (at the model's copy
    bandwidth, and at the run's own, from gbps / frac_copy_bw) and measured / modelled."""
    out = []
    for row in rows:
        if not on_gpu(row) or not row.get("median_ms"):
            continue
        est = row_estimate(row, device)
        if est is None:
            continue
        model_ms = 1e3 * est.seconds
        run_bw = None
        if row.get("gbps") and row.get("frac_copy_bw"):
            run_bw = 1e9 * row["gbps"] / row["frac_copy_bw"]
        at_run_ms = None if run_bw is None else 1e3 * est.seconds_at(run_bw)
        out.append(
            {
                "op": row["op"],
                "provider": row["provider"],
                "shape": row["shape"],
                "dtype": row["dtype"],
                "device": row["device"],
                "correct": row.get("correct"),
                "measured_ms": row["median_ms"],
                "model_ms": model_ms,
                "ratio": row["median_ms"] / model_ms,
                "run_copy_gbps": None if run_bw is None else run_bw / 1e9,
                "model_at_run_bw_ms": at_run_ms,
                "ratio_at_run_bw": None if at_run_ms is None else row["median_ms"] / at_run_ms,
            }
        )
    return out


def _f(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _us(ms: float | None) -> str:
    return "-" if ms is None else f"{1e3 * ms:.1f}"


def comparison_table(rows: Iterable[dict], device: DeviceModel = H200) -> str:
    """Markdown: measured median against the modelled time, per GPU row that has a model
    ('' when there is none)."""
    comps = comparisons(rows, device)
    if not comps:
        return ""
    lines = [
        f"| op | provider | shape dtype | measured us | model us ({device.name}, "
        f"{device.copy_bw / 1e12:.1f} TB/s) | measured / model | run copy GB/s "
        "| model us at run bw | measured / model at run bw | device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comps:
        flag = "" if c["correct"] else " (incorrect)"
        lines.append(
            f"| {c['op']} | {c['provider']}{flag} | {c['shape']} {c['dtype']} "
            f"| {1e3 * c['measured_ms']:.1f} | {1e3 * c['model_ms']:.1f} | {c['ratio']:.2f} "
            f"| {_f(c['run_copy_gbps'], '.0f')} | {_us(c['model_at_run_bw_ms'])} "
            f"| {_f(c['ratio_at_run_bw'], '.2f')} | {c['device']} |"
        )
    return "\n".join(lines)


def comparison_lines(rows: Iterable[dict], device: DeviceModel = H200) -> list[str]:
    """The printed form of ``comparison_table``: a title and the table ([] without GPU rows
    that have a model)."""
    table = comparison_table(rows, device)
    if not table:
        return []
    return [f"measured vs modelled (benchmarks/perf_model.py, {device.name} model):", table]


# --------------------------------------------------------------------------------------------
# PTX instruction mix

PTX_COLUMNS = (
    "ld_global_128",
    "ld_global_64",
    "ld_global_32",
    "ld_global_narrow",
    "st_global_128",
    "st_global_64",
    "st_global_32",
    "st_global_narrow",
    "ld_local",
    "st_local",
    "ld_shared",
    "st_shared",
    "fma",
    "fp_other",
    "sfu",
    "int_mul",
    "instructions",
)

_PREDICATE = re.compile(r"^@!?%\w+\s+")
_SFU = ("ex2", "lg2", "sqrt", "rsqrt", "rcp", "sin", "cos", "tanh")
_FP_OPS = ("add", "sub", "mul", "div", "neg", "abs", "min", "max")


def _access_bits(parts: list[str]) -> int:
    vector = 1
    bits = 0
    for p in parts:
        if p in ("v2", "v4", "v8"):
            vector = int(p[1:])
        m = re.fullmatch(r"[bfsu](\d+)", p)
        if m:
            bits = int(m.group(1))
    return vector * bits


def ptx_mix(ptx: str) -> dict[str, int]:
    """Static instruction counts of a PTX text (see PTX_COLUMNS): global loads and stores by
    width (128-bit: ld.global.v4.b32 / .v2.b64; 64; 32; narrower), local and shared accesses,
    fma (f32/f64), other floating-point arithmetic, special-function instructions, integer
    multiplications (mul/mad on integer types) and all instructions."""
    counts = dict.fromkeys(PTX_COLUMNS, 0)
    for raw in ptx.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line or line[0] in ".{}()" or line.endswith(":") or line.startswith("$"):
            continue
        line = _PREDICATE.sub("", line)
        opcode = line.split(None, 1)[0].rstrip(";")
        parts = opcode.split(".")
        head = parts[0]
        if not re.fullmatch(r"[a-z][a-z0-9_]*", head):
            continue
        counts["instructions"] += 1
        if head in ("ldmatrix", "stmatrix"):  # warp-wide shared-memory layout changes
            counts[f"{head[:2]}_shared"] += 1
            continue
        if head in ("ld", "st") and len(parts) > 1:
            space = "global" if "global" in parts else parts[1]
            if space == "global":
                bits = _access_bits(parts)
                width = (
                    "128" if bits >= 128 else "64" if bits == 64 else "32" if bits == 32 else None
                )
                counts[f"{head}_global_{width or 'narrow'}"] += 1
            elif space in ("local", "shared"):
                counts[f"{head}_{space}"] += 1
            continue
        floating = any(p in ("f32", "f64") for p in parts)
        if head == "fma" and floating:
            counts["fma"] += 1
        elif head in _SFU:
            counts["sfu"] += 1
        elif head in _FP_OPS and floating:
            counts["fp_other"] += 1
        elif head in ("mul", "mad") and any(re.fullmatch(r"[su]\d+", p) for p in parts):
            counts["int_mul"] += 1
    return counts


def _load_aot():
    """.ci/aot_triton.py as a module (its recording driver and Spec)."""
    name = "pnpfast_ci_aot_triton"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / "aot_triton.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def recorded_specs(estimates: Iterable[Estimate]) -> dict[tuple, list]:
    """The Triton specialisations that each (model, shape, dtype, options) of ``estimates``
    launches: the public op runs with backend="triton" on uninitialised CPU tensors under
    .ci/aot_triton.py's ``recording`` (Triton's binder, no compile, no launch)."""
    import torch

    aot = _load_aot()
    out: dict[tuple, list] = {}
    with aot.recording() as rec:
        for est in estimates:
            call = MODELS[est.model].triton_call
            key = _spec_key(est)
            if call is None or key in out:
                continue
            start = len(rec.launches)
            call(est.shape, getattr(torch, est.dtype), **est.options)
            seen = {}
            for launch in rec.launches[start:]:
                seen.setdefault(launch.spec.spec_id, launch.spec)
            out[key] = list(seen.values())
    return out


def _spec_key(est: Estimate) -> tuple:
    return (est.model, est.shape, est.dtype, tuple(sorted(est.options.items())))


def compile_ptx(spec, cc: int = 90) -> str:
    """The PTX of one recorded specialisation for sm_<cc>, compiled without a GPU."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    aot = _load_aot()
    src = ASTSource(
        aot._resolve(spec),
        dict(spec.signature),
        {(i,): v for i, v in spec.constexprs},
        {(i,): [["tt.divisibility", 16]] for i in spec.divisible},
    )
    options = dict(spec.options)
    options.pop("launch_cooperative_grid", None)
    return triton.compile(src, target=GPUTarget("cuda", cc, 32), options=options).asm["ptx"]


def ptx_rows(estimates: Sequence[Estimate], ptx_dir: Path | None = None, cc: int = 90) -> list:
    """One row per (benchmark op, shape, kernel specialisation): the PTX mix of what the
    benchmark's shape launches. PTX is read from ``ptx_dir`` (.ci/aot_triton.py --ptx-dir)
    where it holds the specialisation, else compiled here."""
    specs = recorded_specs([e for e in estimates if e.backend == "triton"])
    rows, cache = [], {}
    for est in estimates:
        if est.backend != "triton" or _spec_key(est) not in specs:
            continue
        for spec in specs[_spec_key(est)]:
            if spec.spec_id not in cache:
                path = ptx_dir / f"{spec.name}-{spec.spec_id}-sm{cc}.ptx" if ptx_dir else None
                text = path.read_text() if path and path.exists() else compile_ptx(spec, cc)
                cache[spec.spec_id] = ptx_mix(text)
            rows.append(
                {
                    "bench_op": est.op,
                    "shape": "x".join(map(str, est.shape)),
                    "dtype": est.dtype,
                    "kernel": spec.name,
                    "spec": spec.spec_id,
                    "specialisation": spec.describe(),
                    "num_warps": dict(spec.options).get("num_warps"),
                    "arch": f"sm_{cc}",
                    **cache[spec.spec_id],
                }
            )
    return rows


# --------------------------------------------------------------------------------------------
# Rows and the command line

# "bench_op", not "op": report.py reads every row with an "op" as a timing row
COLUMNS = (
    "bench_op",
    "model",
    "backend",
    "shape",
    "dtype",
    "options",
    "bytes_read",
    "bytes_written",
    "bytes",
    "io_bytes",
    "flops",
    "int_ops",
    "launches",
    "t_memory_us",
    "t_compute_us",
    "t_launch_us",
    "model_us",
    "bound",
    "device_model",
    "copy_bw_gbps",
    "launch_us",
    "kernel_us",
    "triton_kernels",
    "torch",
    "triton",
    "git_sha",
    "timestamp",
)


def estimate_row(est: Estimate, env: dict) -> dict:
    t = est.traffic
    row = {
        "bench_op": est.op,
        "model": est.model,
        "backend": est.backend,
        "shape": "x".join(map(str, est.shape)),
        "dtype": est.dtype,
        "options": est.options,
        "bytes_read": t.bytes_read,
        "bytes_written": t.bytes_written,
        "bytes": t.bytes,
        "io_bytes": t.io_bytes,
        "flops": t.flops,
        "int_ops": t.int_ops,
        "launches": t.launches,
        "t_memory_us": 1e6 * est.t_memory,
        "t_compute_us": 1e6 * est.t_compute,
        "t_launch_us": 1e6 * est.t_launch,
        "model_us": 1e6 * est.seconds,
        "bound": est.bound,
        "device_model": est.device.name,
        "copy_bw_gbps": est.device.copy_bw / 1e9,
        "launch_us": 1e6 * est.device.launch_s,
        "kernel_us": [[name, 1e6 * t] for name, t in est.kernel_seconds()],
        "triton_kernels": list(MODELS[est.model].triton_kernels),
        **env,
    }
    return {c: row[c] for c in COLUMNS}


def _environment() -> dict:
    sys.path.insert(0, str(BENCH_DIR))
    import harness
    import torch

    return {
        "torch": torch.__version__,
        "triton": harness._version("triton"),
        "git_sha": harness.git_sha(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def model_table(estimates: Iterable[Estimate]) -> str:
    lines = [
        "| op | model | backend | shape | MB read | MB written | MFLOP | launches "
        "| model us (H200) | bound |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in estimates:
        t = e.traffic
        lines.append(
            f"| {e.op} | {e.model} | {e.backend} | {'x'.join(map(str, e.shape))} {e.dtype} "
            f"| {t.bytes_read / 1e6:.2f} | {t.bytes_written / 1e6:.2f} | {t.flops / 1e6:.1f} "
            f"| {t.launches} | {1e6 * e.seconds:.1f} | {e.bound} |"
        )
    return "\n".join(lines)


def kernel_table(estimates: Iterable[Estimate]) -> str:
    lines = ["| op | backend | shape | kernel | model us (H200) |", "|---|---|---|---|---|"]
    for e in estimates:
        for name, t in e.kernel_seconds():
            shape = "x".join(map(str, e.shape))
            lines.append(f"| {e.op} | {e.backend} | {shape} | {name} | {1e6 * t:.1f} |")
    return "\n".join(lines)


def ptx_table(rows: Iterable[dict]) -> str:
    cols = ("ld_global_128", "ld_global_32", "st_global_128", "st_global_32", "ld_local")
    cols += ("st_local", "fma", "fp_other", "sfu", "int_mul", "instructions")
    lines = [
        "| op | shape | kernel | specialisation | " + " | ".join(cols) + " |",
        "|---|---|---|---|" + "---|" * len(cols),
    ]
    for r in rows:
        cells = [r["bench_op"], r["shape"], r["kernel"], r["specialisation"]]
        cells += [str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ptx", action="store_true", help="also the PTX instruction mix (compiles)")
    p.add_argument(
        "--ptx-dir", type=Path, default=None, help="PTX from .ci/aot_triton.py --ptx-dir"
    )
    p.add_argument("--write", action="store_true", help="rewrite the results files")
    p.add_argument("--kernels", action="store_true", help="also the modelled time per kernel")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--ptx-out", type=Path, default=PTX_RESULTS)
    args = p.parse_args(argv)
    estimates = bench_estimates()
    print(model_table(estimates))
    if args.kernels:
        print()
        print(kernel_table(estimates))
    env = _environment() if args.write else {}
    if args.write:
        _write_jsonl(args.out, (estimate_row(e, env) for e in estimates))
        print(f"\nwrote {len(estimates)} rows to {args.out}")
    if args.ptx or args.ptx_dir:
        if os.environ.get("TRITON_INTERPRET") == "1":
            p.error("the PTX mix needs Triton's compiler: unset TRITON_INTERPRET")
        rows = ptx_rows(estimates, args.ptx_dir)
        print()
        print(ptx_table(rows))
        bad = [r for r in rows if r["ld_local"] or r["st_local"]]
        for r in bad:
            print(f"local-memory traffic in {r['kernel']} ({r['specialisation']})")
        if args.write:
            keep = ("torch", "triton", "git_sha", "timestamp")
            _write_jsonl(args.ptx_out, ({**r, **{k: env[k] for k in keep}} for r in rows))
            print(f"wrote {len(rows)} rows to {args.ptx_out}")
        if bad:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

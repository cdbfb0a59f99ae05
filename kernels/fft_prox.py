"""Triton kernel of the FFT-domain proximal step (reference: pnpfast/ops/fft_prox.py).

Works on the interleaved (re, im) float view of the spectra: the factor 1 / (1 + gamma |K^|^2)
is real, so both parts of a frequency get the same arithmetic and every access is contiguous.
Grid: (blocks along one image plane, B * C planes); gamma and the k2 plane are fixed per program.
"""

import torch
import triton
import triton.language as tl

BLOCK = 2048


@triton.jit
def _fft_prox_kernel(
    v_ptr, kty_ptr, k2_ptr, gamma_ptr, out_ptr, C, plane_len, k2_stride, BLOCK: tl.constexpr
):
    pid = tl.program_id(0)
    plane = tl.program_id(1)
    b = plane // C
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < plane_len
    base = plane.to(tl.int64) * plane_len
    g = tl.load(gamma_ptr + b)
    v = tl.load(v_ptr + base + offs, mask=mask, other=0.0)
    kty = tl.load(kty_ptr + base + offs, mask=mask, other=0.0)
    # plane_len counts floats: frequency f has its real part at 2f and imaginary part at 2f + 1
    k2 = tl.load(k2_ptr + b.to(tl.int64) * k2_stride + offs // 2, mask=mask, other=0.0)
    out = (v + g * kty) / (1.0 + g * k2)
    tl.store(out_ptr + base + offs, out, mask=mask)


def fft_prox_triton(
    v: torch.Tensor, kty: torch.Tensor, k2: torch.Tensor, gamma: torch.Tensor, out: torch.Tensor
) -> None:
    """out = (v + gamma kty) / (1 + gamma k2) on [B, C, H, Wr, 2] float views; writes ``out``."""
    B, C, H, Wr, _ = v.shape
    plane_len = H * Wr * 2
    k2_stride = 0 if k2.shape[0] == 1 else H * Wr
    grid = (triton.cdiv(plane_len, BLOCK), B * C)
    _fft_prox_kernel[grid](v, kty, k2, gamma, out, C, plane_len, k2_stride, BLOCK=BLOCK)

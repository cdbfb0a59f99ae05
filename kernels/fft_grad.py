"""Triton kernel of the fused spectral gradient pass (reference: pnpfast/ops/fft_grad.py).

out = (s_b |K^|^2 + t_b) V^ - s_b conj(K^) Y^ on the interleaved (re, im) float view; the
coefficients are real, so both parts of a frequency get the same arithmetic.
Grid: (blocks along one image plane, B * C planes).
"""

import torch
import triton
import triton.language as tl

BLOCK = 2048


@triton.jit
def _fft_grad_kernel(
    v_ptr, kty_ptr, k2_ptr, s_ptr, t_ptr, out_ptr, C, plane_len, k2_stride, BLOCK: tl.constexpr
):
    pid = tl.program_id(0)
    plane = tl.program_id(1)
    b = plane // C
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < plane_len
    base = plane.to(tl.int64) * plane_len
    s = tl.load(s_ptr + b)
    t = tl.load(t_ptr + b)
    v = tl.load(v_ptr + base + offs, mask=mask, other=0.0)
    kty = tl.load(kty_ptr + base + offs, mask=mask, other=0.0)
    k2 = tl.load(k2_ptr + b.to(tl.int64) * k2_stride + offs // 2, mask=mask, other=0.0)
    out = (s * k2 + t) * v - s * kty
    tl.store(out_ptr + base + offs, out, mask=mask)


def fft_grad_triton(
    v: torch.Tensor,
    kty: torch.Tensor,
    k2: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """out = (s k2 + t) v - s kty on [B, C, H, Wr, 2] float views; writes ``out``."""
    B, C, H, Wr, _ = v.shape
    plane_len = H * Wr * 2
    k2_stride = 0 if k2.shape[0] == 1 else H * Wr
    grid = (triton.cdiv(plane_len, BLOCK), B * C)
    _fft_grad_kernel[grid](v, kty, k2, s, t, out, C, plane_len, k2_stride, BLOCK=BLOCK)

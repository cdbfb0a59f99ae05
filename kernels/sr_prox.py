"""Triton kernel of the super-resolution prox's spectral step (reference: pnpfast/ops/sr_prox.py).

Each program owns BLOCK low-resolution frequencies f = u w + v of one image plane and loads, as
one [S2, BLOCK] tile, the s^2 aliases (u + p h, v + q w) of each (alias a = p s + q on axis 0,
S2 = s^2 rounded up to a power of 2, the extra rows masked): R^ = V^ + gamma kty, the mean of
K^ R^ over axis 0, the division by 1 + gamma k2_mean, and X^ = R^ - conj(K^) Q written back from
the same registers, so every input is read once and X^ written once. Complex spectra come as
interleaved (re, im) float views [..., H, W, 2]. Grid: (blocks of h w, B * C planes); gamma
and the kernel plane are fixed per program.
"""

import torch
import triton
import triton.language as tl

TILE = 512  # elements per program: S2 * BLOCK


@triton.jit
def _sr_prox_kernel(
    v_ptr,
    kty_ptr,
    k_ptr,
    k2m_ptr,
    gamma_ptr,
    out_ptr,
    C,
    H,
    W,
    h,
    w,
    k_stride,
    k2m_stride,
    S: tl.constexpr,
    S2: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    plane = tl.program_id(1)
    b = plane // C
    f = pid * BLOCK + tl.arange(0, BLOCK)  # low-resolution frequencies [BLOCK]
    fmask = f < h * w
    a = tl.arange(0, S2)  # aliases [S2]
    amask = a < S * S
    row = (f // w)[None, :] + (a // S)[:, None] * h
    col = (f % w)[None, :] + (a % S)[:, None] * w
    pix = row * W + col  # [S2, BLOCK], within one plane
    mask = amask[:, None] & fmask[None, :]
    g = tl.load(gamma_ptr + b)
    base = plane.to(tl.int64) * H * W * 2
    kbase = b.to(tl.int64) * k_stride * 2
    # [S2, BLOCK, 2] tiles of (re, im) pairs: one 64-bit (128-bit in float64) access per
    # complex value instead of two scalar ones
    pair = tl.arange(0, 2)
    off = (2 * pix)[:, :, None] + pair[None, None, :]
    mask2 = mask[:, :, None] & (pair[None, None, :] < 2)
    vr, vi = tl.split(tl.load(v_ptr + base + off, mask=mask2, other=0.0))
    yr, yi = tl.split(tl.load(kty_ptr + base + off, mask=mask2, other=0.0))
    kr, ki = tl.split(tl.load(k_ptr + kbase + off, mask=mask2, other=0.0))
    rr = vr + g * yr
    ri = vi + g * yi
    # mean over the aliases of K^ R^ (masked rows load K^ = 0 and add nothing)
    tr = tl.sum(kr * rr - ki * ri, axis=0) / (S * S)
    ti = tl.sum(kr * ri + ki * rr, axis=0) / (S * S)
    k2m = tl.load(k2m_ptr + b.to(tl.int64) * k2m_stride + f, mask=fmask, other=0.0)
    scale = g / (1.0 + g * k2m)
    qr = (scale * tr)[None, :]
    qi = (scale * ti)[None, :]
    # X^ = R^ - conj(K^) Q
    xr = rr - (kr * qr + ki * qi)
    xi = ri - (kr * qi - ki * qr)
    tl.store(out_ptr + base + off, tl.join(xr, xi), mask=mask2)


def sr_prox_triton(
    v: torch.Tensor,
    kty: torch.Tensor,
    k: torch.Tensor,
    k2_mean: torch.Tensor,
    gamma: torch.Tensor,
    factor: int,
    out: torch.Tensor,
) -> None:
    """The SR prox's spectral step on [B, C, H, W, 2] float views of v_hat, kty and out, and
    [Bk, 1, H, W, 2] of k_hat; k2_mean [Bk, 1, H / s, W / s]; writes ``out``."""
    B, C, H, W, _ = v.shape
    s = factor
    h, w = H // s, W // s
    s2 = triton.next_power_of_2(s * s)
    block = TILE // s2
    k_stride = 0 if k.shape[0] == 1 else H * W
    k2m_stride = 0 if k2_mean.shape[0] == 1 else h * w
    grid = (triton.cdiv(h * w, block), B * C)
    _sr_prox_kernel[grid](
        v,
        kty,
        k,
        k2_mean,
        gamma,
        out,
        C,
        H,
        W,
        h,
        w,
        k_stride,
        k2m_stride,
        S=s,
        S2=s2,
        BLOCK=block,
    )

"""Triton kernels of the implicit-prior sampler's step (reference: pnpfast/ops/constrained_step.py).

    d = x_hat - y - P x_hat + lifted        (no constraint: d = x_hat - y)
    pass 1:  out = y + h_b d,  partial[b, program] = that program's share of ||d_b||^2
    pass 2:  out += c_b sigma_b z,  z ~ N(0, 1) drawn in the kernel (Philox: tl.rand4x, then Box-Muller)

Pass 1 has two kernels. The flat one (grid: blocks along the C*H*W elements of one image, B
images) covers no constraint (KIND 0), a mask (KIND 1: P v = mask[b // group] * v on every
channel) and a given P x_hat (KIND 2). The block-mean one (grid: tiles of TW blocks along a
block row, block rows, B*C planes) loads an S x (TW S) strip, so every s x s block lies in
one program and its mean is a register reduction. Each program writes its share of ||d_b||^2
to its own slot of partial [B, slots]; the caller sums the slots with torch (a fixed order, no
atomics) and passes sigma to pass 2. Sums accumulate in the input dtype.
"""

import torch
import triton
import triton.language as tl

BLOCK = 4096  # elements per program of the flat kernels
TILE = 4096  # elements per program of the block-mean kernel (S x TW S)
NUM_WARPS = 8


@triton.jit
def _step_flat_kernel(
    den_ptr,
    y_ptr,
    lifted_ptr,
    aux_ptr,
    h_ptr,
    out_ptr,
    partial_ptr,
    n,
    hw,
    group,
    nblocks,
    KIND: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    base = b * n
    xh = tl.load(den_ptr + base + offs, mask=inside, other=0.0)
    y = tl.load(y_ptr + base + offs, mask=inside, other=0.0)
    d = xh - y
    if KIND == 1:
        m = tl.load(aux_ptr + (b // group) * hw + offs % hw, mask=inside, other=0.0)
        d += tl.load(lifted_ptr + base + offs, mask=inside, other=0.0) - m * xh
    elif KIND == 2:
        p = tl.load(aux_ptr + base + offs, mask=inside, other=0.0)
        d += tl.load(lifted_ptr + base + offs, mask=inside, other=0.0) - p
    h = tl.load(h_ptr + b)
    tl.store(out_ptr + base + offs, y + h * d, mask=inside)
    tl.store(partial_ptr + b * nblocks + pid, tl.sum(d * d, axis=0))


@triton.jit
def _step_block_kernel(
    den_ptr,
    y_ptr,
    lifted_ptr,
    h_ptr,
    out_ptr,
    partial_ptr,
    H,
    W,
    C,
    nblocks,
    S: tl.constexpr,
    TW: tl.constexpr,
):
    j = tl.program_id(0)
    r = tl.program_id(1)
    plane = tl.program_id(2).to(tl.int64)
    rows = r * S + tl.arange(0, S)
    cols = j * (TW * S) + tl.arange(0, TW * S)
    offs = plane * H * W + rows[:, None] * W + cols[None, :]  # [S, TW S]
    inside = (cols < W)[None, :] & (rows < H)[:, None]
    xh = tl.load(den_ptr + offs, mask=inside, other=0.0)
    y = tl.load(y_ptr + offs, mask=inside, other=0.0)
    lifted = tl.load(lifted_ptr + offs, mask=inside, other=0.0)
    # element (i, k S + q) of the strip is (i, k, q): block k, row i, column q in the block
    means = tl.sum(tl.sum(tl.reshape(xh, (S, TW, S)), axis=2), axis=0) / (S * S)
    projected = tl.reshape(tl.broadcast_to(means[None, :, None], (S, TW, S)), (S, TW * S))
    d = xh - y + lifted - projected
    b = plane // C
    h = tl.load(h_ptr + b)
    tl.store(out_ptr + offs, y + h * d, mask=inside)
    slot = (plane % C) * (tl.num_programs(1) * tl.num_programs(0)) + r * tl.num_programs(0) + j
    tl.store(partial_ptr + b * nblocks + slot, tl.sum(tl.sum(d * d, axis=1), axis=0))


@triton.jit
def _normal_pair(u1, u2):
    """Box-Muller: r cos(2 pi u2), r sin(2 pi u2) with r = sqrt(-2 log u1), two independent
    N(0, 1) from two uniforms on [0, 1) (tl.randn4x's transform). The sine and cosine are
    polynomials after an exact reduction of the angle to the nearest quarter turn: tl.cos and
    tl.sin take any argument, and the compiled kernel would keep the local-memory array of their
    reduction for huge arguments, dead code here (the angle is below 2 pi)."""
    r = tl.sqrt(-2.0 * tl.log(tl.maximum(1.0e-7, u1)))
    q = (u2 * 4.0 + 0.5).to(tl.int32)  # the nearest quarter turn, 0 to 4
    # u2 - q / 4 is exact (Sterbenz) and |x| <= pi / 4, where these Taylor polynomials of
    # degrees 9 and 10 are within 4e-9 of sin and cos (float32 rounding is 6e-8)
    x = (u2 - q.to(tl.float32) * 0.25) * 6.283185307179586
    x2 = x * x
    s = x * (1.0 + x2 * (-1 / 6 + x2 * (1 / 120 + x2 * (-1 / 5040 + x2 * (1 / 362880)))))
    c = 1.0 + x2 * (-0.5 + x2 * (1 / 24 + x2 * (-1 / 720 + x2 * (1 / 40320 - x2 / 3628800))))
    k = q % 4  # cos and sin of k pi / 2 + x
    cos = tl.where(k == 0, c, tl.where(k == 1, -s, tl.where(k == 2, -c, s)))
    sin = tl.where(k == 0, s, tl.where(k == 1, c, tl.where(k == 2, -s, -c)))
    return r * cos, r * sin


@triton.jit
def _add_noise(ptr, offs, n, g, z):
    o = tl.load(ptr + offs, mask=offs < n)
    tl.store(ptr + offs, o + g * z, mask=offs < n)


@triton.jit
def _noise_kernel(out_ptr, sigma_ptr, c_ptr, n, seed, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    g = tl.load(c_ptr + b) * tl.load(sigma_ptr + b)
    Q: tl.constexpr = BLOCK // 4
    q = tl.arange(0, Q)
    # one Philox counter per four elements, unique over the call: (image, program, lane)
    u0, u1, u2, u3 = tl.rand4x(seed, (b * tl.num_programs(0) + pid) * Q + q)
    z0, z1 = _normal_pair(u0, u1)
    z2, z3 = _normal_pair(u2, u3)
    # quarter k of the program's BLOCK elements takes the k-th normal of each counter
    ptr = out_ptr + b * n
    offs = pid * BLOCK + q
    _add_noise(ptr, offs, n, g, z0)
    _add_noise(ptr, offs + Q, n, g, z1)
    _add_noise(ptr, offs + 2 * Q, n, g, z2)
    _add_noise(ptr, offs + 3 * Q, n, g, z3)


def _tile_blocks(W: int, factor: int) -> int:
    """Blocks per program of the block-mean kernel: TILE elements, at most a block row."""
    return min(TILE // (factor * factor), triton.next_power_of_2(W // factor))


def partial_blocks(shape: torch.Size, kind: int, factor: int) -> int:
    """Partial-sum slots per image of pass 1 (kind 2: the block-mean kernel)."""
    C, H, W = shape[1:]
    if kind == 2:
        return C * (H // factor) * triton.cdiv(W // factor, _tile_blocks(W, factor))
    return triton.cdiv(C * H * W, BLOCK)


def step_triton(
    denoised: torch.Tensor,
    y: torch.Tensor,
    h: torch.Tensor,
    lifted: torch.Tensor | None,
    mask: torch.Tensor | None,
    factor: int,
    projected: torch.Tensor | None,
    out: torch.Tensor,
    partial: torch.Tensor,
) -> None:
    """Pass 1: out = y + h d and partial [B, partial_blocks(...)]; all contiguous, one dtype."""
    B, C, H, W = y.shape
    nblocks = partial.shape[1]
    if B == 0 or nblocks == 0:
        return
    if lifted is not None and mask is None and factor:
        tw = _tile_blocks(W, factor)
        grid = (triton.cdiv(W // factor, tw), H // factor, B * C)
        _step_block_kernel[grid](
            denoised, y, lifted, h, out, partial, H, W, C, nblocks, S=factor, TW=tw,
            num_warps=NUM_WARPS,
        )  # fmt: skip
        return
    kind = 0 if lifted is None else 1 if mask is not None else 2
    aux = mask if kind == 1 else projected if kind == 2 else y  # y: a pointer never read
    group = B // mask.shape[0] if kind == 1 else 1
    _step_flat_kernel[(nblocks, B)](
        denoised, y, lifted if lifted is not None else y, aux, h, out, partial,
        C * H * W, H * W, group, nblocks, KIND=kind, BLOCK=BLOCK, num_warps=NUM_WARPS,
    )  # fmt: skip


def noise_triton(out: torch.Tensor, sigma: torch.Tensor, c: torch.Tensor, seed: int) -> None:
    """Pass 2, in place: out_b += c_b sigma_b z_b, z from Philox keyed by ``seed``."""
    B = out.shape[0]
    n = out[0].numel() if B else 0
    if B == 0 or n == 0:
        return
    _noise_kernel[(triton.cdiv(n, BLOCK), B)](
        out, sigma, c, n, seed, BLOCK=BLOCK, num_warps=NUM_WARPS
    )

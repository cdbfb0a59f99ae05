"""Triton kernels of one batched power-iteration step (reference: pnpfast/ops/power_step.py).

Per image b, with state[b] = (estimate, scale s, active, steps):

    out_b = s w_b if active else u_b,     partial sums of <u_b, w_b> and ||w_b||^2

Pass: grid (blocks along the elements of one image, B images); each program reads its chunk of
u and w once, writes its chunk of out and its two partial sums to partial[b, block, :].
Finish: grid (B,); one program sums the partials of its image in block order (deterministic, no
atomics) and writes the next state: the estimate, the scale 1 / (s ||w||), the convergence test
and the step count. No host synchronisation.
"""

import torch
import triton
import triton.language as tl

BLOCK = 4096
NUM_WARPS = 8
FINISH_BLOCK = 128  # partial slots summed per loop step of the finish kernel


@triton.jit
def _power_pass_kernel(
    w_ptr, u_ptr, state_ptr, out_ptr, partial_ptr, n, nblocks, BLOCK: tl.constexpr
):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    base = b * n
    scale = tl.load(state_ptr + b * 4 + 1)
    active = tl.load(state_ptr + b * 4 + 2)
    w = tl.load(w_ptr + base + offs, mask=mask, other=0.0)
    u = tl.load(u_ptr + base + offs, mask=mask, other=0.0)
    tl.store(out_ptr + base + offs, tl.where(active > 0, scale * w, u), mask=mask)
    slot = partial_ptr + (b * nblocks + pid) * 2
    tl.store(slot, tl.sum(u * w, axis=0))
    tl.store(slot + 1, tl.sum(w * w, axis=0))


@triton.jit
def _power_finish_kernel(
    state_ptr,
    partial_ptr,
    state_next_ptr,
    tol,
    nblocks,
    GRAM: tl.constexpr,
    FINISH_BLOCK: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    estimate = tl.load(state_ptr + b * 4)
    scale = tl.load(state_ptr + b * 4 + 1)
    active = tl.load(state_ptr + b * 4 + 2)
    steps = tl.load(state_ptr + b * 4 + 3)
    dot = tl.zeros_like(scale)
    ww = tl.zeros_like(scale)
    for start in range(0, nblocks, FINISH_BLOCK):
        k = start + tl.arange(0, FINISH_BLOCK)
        keep = k < nblocks
        slot = partial_ptr + (b * nblocks + k) * 2
        dot += tl.sum(tl.load(slot, mask=keep, other=0.0), axis=0)
        ww += tl.sum(tl.load(slot + 1, mask=keep, other=0.0), axis=0)
    rayleigh = scale * scale * dot
    new = tl.sqrt(tl.maximum(rayleigh, 0.0)) if GRAM else tl.abs(rayleigh)
    wnorm = tl.sqrt(ww)
    zero = wnorm == 0
    new_scale = tl.where(zero, 0.0, 1.0 / tl.where(zero, 1.0, scale * wnorm))
    converged = zero | ((steps > 0) & (tl.abs(new - estimate) <= tol * new))
    on = active > 0
    tl.store(state_next_ptr + b * 4, tl.where(on, new, estimate))
    tl.store(state_next_ptr + b * 4 + 1, tl.where(on, new_scale, scale))
    tl.store(state_next_ptr + b * 4 + 2, tl.where(on & converged, 0.0, active))
    tl.store(state_next_ptr + b * 4 + 3, tl.where(on, steps + 1, steps))


def partial_blocks(n: int, block: int = BLOCK) -> int:
    """Blocks (and partial-sum slots) per image of n elements (at least one, so that the finish
    kernel of an empty image still runs)."""
    return max(1, triton.cdiv(n, block))


def power_step_triton(
    w: torch.Tensor,
    u: torch.Tensor,
    state: torch.Tensor,
    tol: float,
    gram: bool,
    out: torch.Tensor,
    state_next: torch.Tensor,
    partial: torch.Tensor,
    block: int = BLOCK,
) -> None:
    """Writes out (like u), state_next [B, 4] and partial [B, partial_blocks(n, block), 2]; all
    contiguous, one dtype."""
    B = u.shape[0]
    if B == 0:
        return
    n = u[0].numel()
    nblocks = partial.shape[1]
    _power_pass_kernel[(nblocks, B)](
        w, u, state, out, partial, n, nblocks, BLOCK=block, num_warps=NUM_WARPS
    )
    _power_finish_kernel[(B,)](
        state, partial, state_next, tol, nblocks, GRAM=gram, FINISH_BLOCK=FINISH_BLOCK, num_warps=4
    )

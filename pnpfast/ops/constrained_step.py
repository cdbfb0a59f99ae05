"""The step of the implicit-prior sampler after its denoiser call, fused: Algorithms 1 and 2 of
Kadkhodaie & Simoncelli, "Solving linear inverse problems using the prior implicit in a
denoiser", NeurIPS 2021 (see pnpfast/solvers/implicit_prior.py).

With x_hat = D(y) the denoiser's output, f = x_hat - y its residual and P = M M^T the projection
onto the measured subspace, the constrained step direction d = (I - P) f + M (x_c - M^T y)
is d = f - P (f + y) + M x_c, that is

    d_b      = x_hat_b - y_b - P x_hat_b + lifted_b          (lifted = M x_c; Algorithm 1: d = f)
    sigma_b  = ||d_b|| / sqrt(N)                            (N = C H W)
    out_b    = y_b + h_b d_b + c_b sigma_b z_b,    z_b ~ N(0, I)

with per-image h_b (the step h_t) and c_b = sqrt((1 - beta h_t)^2 - (1 - h_t)^2), so that
c_b sigma_b is the noise level gamma_t. An image with h_b = c_b = 0 (one that has stopped)
comes out as y_b unchanged. The projection P x_hat is given in one of three forms:

* ``mask`` [Bm, 1, H, W] (0/1, the dtype of y; Bm divides B and image b uses mask row
  b // (B / Bm)): P v = mask * v, every channel alike (``Inpainting``);
* ``factor`` s (an int >= 1 dividing H and W): P v = the mean of each s x s block
  (``BlockAverage``);
* ``projected`` [B, C, H, W]: P x_hat computed by the caller (``SpectralLowpass``,
  ``CompressiveSensing``: the projection runs through the FFT / fast transform and the rest fuses).

The noise is counter-based: z is a function of (seed, offset) and the element's index, so a
call is reproducible and calls with different offsets (the sampler passes its iteration) draw
independent noise. The backends draw different (equally distributed) noise for the same seed:
they agree exactly on everything else. Shapes: x_hat, y, lifted, projected [B, C, H, W] of one
dtype (float32 or float64) and device; h, c [B] of that dtype; returns out [B, C, H, W] and
sigma [B]. ||d||^2 accumulates in the input dtype.

Fast paths (kernels/constrained_step.py, csrc/constrained_step.cu): sigma_b needs all of d_b
before any noise can be added, so two passes. The first reads x_hat, y, lifted (and the mask or
P x_hat) once, writes y + h d, and writes each block's share of ||d_b||^2 to a [B, blocks]
buffer (summed with torch: a fixed order, no atomics, no host sync); the block-average form
computes the block means in registers. The second adds c_b sigma_b z in place, drawing z inside
the kernel (Philox 4x32-10, four normals per counter).
"""

import math

import torch

from pnpfast import _validate
from pnpfast.dispatch import FusedOp
from pnpfast.ops._alloc import cuda_partial_blocks, empty_output
from pnpfast.ops._checks import not_contiguous, require, require_not_meta

FAST_FACTORS = (2, 4, 8)  # the block sizes the fast paths compile for

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def step_seed(seed: int, offset: int) -> int:
    """The 63-bit key of the noise of call (seed, offset): every backend keys its generator
    with it, so (seed, offset) pairs never share a stream."""
    return _splitmix64(_splitmix64(seed) ^ offset) >> 1


def step_noise_reference(like: torch.Tensor, seed: int, offset: int) -> torch.Tensor:
    """The reference's noise: standard normal, shaped like ``like``, from a torch generator
    keyed by step_seed(seed, offset)."""
    gen = torch.Generator(device=like.device).manual_seed(step_seed(seed, offset))
    return torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)


def block_mean(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Each s x s block of x [B, C, H, W] replaced by its mean (s = factor divides H and W)."""
    B, C, H, W = x.shape
    s = factor
    means = x.view(B, C, H // s, s, W // s, s).mean(dim=(3, 5), keepdim=True)
    return means.expand(B, C, H // s, s, W // s, s).reshape(B, C, H, W)


def constrained_step_reference(
    denoised: torch.Tensor,
    y: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    seed: int,
    offset: int,
    lifted: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    factor: int = 0,
    projected: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Readable torch: d, sigma and the update of the module docstring. Its arguments are
    checked as ``constrained_step``'s are (metadata only: NaN passes through)."""
    check_constrained_step_args(
        denoised,
        y,
        h,
        c,
        seed,
        offset,
        lifted,
        mask,
        factor,
        projected,
        op="constrained_step_reference",
    )
    return _constrained_step_unchecked(
        denoised, y, h, c, seed, offset, lifted, mask, factor, projected
    )


def _constrained_step_unchecked(
    denoised, y, h, c, seed, offset, lifted, mask, factor, projected
) -> tuple[torch.Tensor, torch.Tensor]:
    # the reference after constrained_step has checked the arguments
    view = (-1, 1, 1, 1)
    d = denoised - y
    if lifted is not None:
        if mask is not None:
            projected = mask.repeat_interleave(y.shape[0] // mask.shape[0], 0) * denoised
        elif factor:
            projected = block_mean(denoised, factor)
        d = d + lifted - projected
    n = max(math.prod(y.shape[1:]), 1)  # an empty image has sigma 0
    sigma = d.flatten(1).square().sum(1).div(n).sqrt()
    out = y + h.view(view) * d
    out = out + (c * sigma).view(view) * step_noise_reference(y, seed, offset)
    return out, sigma


def _projection_kind(lifted, mask, factor, projected) -> int:
    """0: Algorithm 1 (no constraint), 1: mask, 2: block mean, 3: P x_hat given."""
    if lifted is None:
        return 0
    return 1 if mask is not None else 2 if factor else 3


def check_constrained_step_args(
    denoised, y, h, c, seed, offset, lifted, mask, factor, projected, op="constrained_step"
) -> None:
    """Validate the arguments (metadata only: shapes, dtypes, devices, sizes; NaN passes
    through); raise TypeError/ValueError naming the argument."""
    images = {"denoised": denoised, "y": y, "lifted": lifted, "projected": projected}
    for name, t in {**images, "h": h, "c": c, "mask": mask}.items():
        if t is None and name in ("lifted", "projected", "mask"):
            continue
        require(isinstance(t, torch.Tensor), f"{op}: {name} must be a tensor", TypeError)
    require(
        y.dtype in (torch.float32, torch.float64),
        f"{op}: y must be float32 or float64, not {y.dtype}",
        TypeError,
    )
    require(y.dim() == 4, f"{op}: y must be [B, C, H, W], got shape {tuple(y.shape)}")
    require_not_meta(op, "y", y)
    B, _, H, W = y.shape
    for name, t in {**images, "h": h, "c": c, "mask": mask}.items():
        if t is None or name == "y":
            continue
        require(t.dtype == y.dtype, f"{op}: {name} has dtype {t.dtype}, y has {y.dtype}", TypeError)
        require(t.device == y.device, f"{op}: {name} is on {t.device}, y on {y.device}")
        if name in images:
            require(
                t.shape == y.shape,
                f"{op}: {name} has shape {tuple(t.shape)}, y has {tuple(y.shape)}",
            )
    for name, t in (("h", h), ("c", c)):
        require(t.shape == (B,), f"{op}: {name} must have shape ({B},), got {tuple(t.shape)}")
    for name, v in (("seed", seed), ("offset", offset)):
        _validate.seed(f"{op}: {name}", v)
    _validate.integer(f"{op}: factor", factor, 0, hint="(0: no block mean)")
    given = {"mask": mask is not None, "factor": factor > 0, "projected": projected is not None}
    forms = [name for name, present in given.items() if present]
    if lifted is None:
        require(not forms, f"{op}: {' and '.join(forms)} given without lifted (the M x_c image)")
        return
    require(
        len(forms) == 1,
        f"{op}: with lifted, give exactly one of mask, factor, projected (got {forms or 'none'})",
    )
    if mask is not None:
        require(
            mask.dim() == 4
            and mask.shape[1] == 1
            and tuple(mask.shape[2:]) == (H, W)
            and mask.shape[0] >= 1
            and B % mask.shape[0] == 0,
            f"{op}: mask must be [Bm, 1, {H}, {W}] with Bm dividing {B}, "
            f"got shape {tuple(mask.shape)}",
        )
    if factor:
        require(
            H % factor == 0 and W % factor == 0,
            f"{op}: factor {factor} must divide the image size {H}x{W}",
        )


def constrained_step_fast_path_check(
    denoised, y, h, c, seed, offset, lifted, mask, factor, projected
) -> str | None:
    """Why the CUDA kernels cannot take these inputs (None when they can)."""
    reason = not_contiguous(
        denoised=denoised, y=y, h=h, c=c, lifted=lifted, mask=mask, projected=projected
    )
    if reason:
        return reason
    if math.prod(y.shape[1:]) >= 2**30:
        return "an image with 2**30 or more elements"
    if lifted is not None and mask is None and factor and factor not in FAST_FACTORS:
        return f"block factor {factor} (the fast paths have {FAST_FACTORS})"
    return None


def constrained_step_triton_check(
    denoised, y, h, c, seed, offset, lifted, mask, factor, projected
) -> str | None:
    """Why the Triton kernels cannot take these inputs (None when they can)."""
    planes = y.shape[0] * (
        y.shape[1] if _projection_kind(lifted, mask, factor, projected) == 2 else 1
    )
    if planes > 65535:
        return "more than 65535 images (image planes for a block mean) in one call"
    if _projection_kind(lifted, mask, factor, projected) == 2 and y.shape[2] // factor > 65535:
        return "more than 65535 block rows"
    return constrained_step_fast_path_check(
        denoised, y, h, c, seed, offset, lifted, mask, factor, projected
    )


@torch.library.custom_op("pnpfast::constrained_step_triton", mutates_args=())
def _constrained_step_triton(
    denoised: torch.Tensor,
    y: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    seed: int,
    offset: int,
    lifted: torch.Tensor | None,
    mask: torch.Tensor | None,
    factor: int,
    projected: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    from pnpfast.kernels import constrained_step as kernels

    kind = _projection_kind(lifted, mask, factor, projected)
    out = empty_output(y)
    partial = empty_output(y, (y.shape[0], kernels.partial_blocks(y.shape, kind, factor)))
    kernels.step_triton(denoised, y, h, lifted, mask, factor, projected, out, partial)
    sigma = partial.sum(1).div(max(math.prod(y.shape[1:]), 1)).sqrt()
    kernels.noise_triton(out, sigma, c, step_seed(seed, offset))
    return out, sigma


@torch.library.custom_op("pnpfast::constrained_step_cuda", mutates_args=())
def _constrained_step_cuda(
    denoised: torch.Tensor,
    y: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    seed: int,
    offset: int,
    lifted: torch.Tensor | None,
    mask: torch.Tensor | None,
    factor: int,
    projected: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    B = y.shape[0]
    n = math.prod(y.shape[1:])
    out = empty_output(y)
    partial = empty_output(y, (B, cuda_partial_blocks(y.device, B, n)))
    torch.ops.pnpfast_C.constrained_step_out(
        denoised, y, h, lifted, mask, factor, projected, out, partial
    )
    sigma = partial.sum(1).div(max(n, 1)).sqrt()
    torch.ops.pnpfast_C.constrained_step_noise_(out, sigma, c, step_seed(seed, offset))
    return out, sigma


@_constrained_step_triton.register_fake
@_constrained_step_cuda.register_fake
def _constrained_step_fake(denoised, y, h, c, seed, offset, lifted, mask, factor, projected):
    return torch.empty_like(y, memory_format=torch.contiguous_format), y.new_empty(y.shape[0])


_op = FusedOp(
    "constrained_step",
    _constrained_step_unchecked,
    {
        "triton": (_constrained_step_triton, constrained_step_triton_check),
        "cuda": (_constrained_step_cuda, constrained_step_fast_path_check),
    },
)


def constrained_step(
    denoised: torch.Tensor,
    y: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    seed: int,
    offset: int,
    lifted: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    factor: int = 0,
    projected: torch.Tensor | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y + h d + c sigma z, sigma) per image with d = x_hat - y - P x_hat + M x_c, on the
    fastest backend that accepts the inputs. See the module docstring."""
    check_constrained_step_args(denoised, y, h, c, seed, offset, lifted, mask, factor, projected)
    return _op(denoised, y, h, c, seed, offset, lifted, mask, factor, projected, backend=backend)

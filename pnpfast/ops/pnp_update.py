"""The fused update after a denoiser call: the next iterate and the stopping-rule sums in one pass.

Every RED and accelerated PnP iteration ends, after its denoiser call f(z), with an affine
combination of a few images and with the norms that its stopping rule and history need. One
pass reads f(z), z and (where the method has them) x_k and x_{k-1} once, and writes

    out_b  = a_b f(z)_b + b_b z_b + c_b x_b + d_b xprev_b
    sums_b = [ ||z_b - f(z)_b||^2, ||x_b - xprev_b||^2, ||x_b||^2 ]

with per-image coefficients coef_b = (a_b, b_b, c_b, d_b). Examples (see pnpfast/solvers/red.py):

* RED proximal gradient (Reehorst & Schniter, "Regularization by Denoising: Clarifications and
  New Interpretations", IEEE TCI 2019): v_{k+1} = (1/L) f(z_k) - ((1 - L)/L) z_k is
  coef = (1/L, -(1 - L)/L, 0, 0), while x = x_k, xprev = x_{k-1} give the change of the iterate;
* FISTA/APG momentum: z = x + m (x - xprev) is coef = (0, 0, 1 + m, -m) with f = z = x;
* the RED-ADMM inner step v <- (lam f(v) + beta (x + u)) / (lam + beta) is
  coef = (lam, 0, beta, beta) / (lam + beta) with z = v, xprev = u.

``x`` and ``xprev`` may be None: a zero image that is never read (so with x = None,
sums[:, 1] is ||xprev||^2 and sums[:, 2] is 0). Shapes: f, z, x, xprev [B, C, H, W], one dtype (float32 or float64) and
device; coef [B, 4] of that dtype; returns out [B, C, H, W] and sums [B, 3] of that dtype. The
sums are accumulated in float64 for float64 input and float32 otherwise, in a fixed order
(deterministic on every backend).

Fast paths (kernels/pnp_update.py, csrc/pnp_update.cu): one pass over the images; each block
writes its share of the three sums of its image to a [B, blocks, 3] buffer, summed over the
blocks with torch (no atomics, no host sync).
"""

import math

import torch

from pnpfast.dispatch import FusedOp
from pnpfast.ops._alloc import cuda_partial_blocks, empty_output
from pnpfast.ops._checks import not_contiguous, require, require_not_meta

SUMS = ("residual", "change", "norm")  # the columns of sums


def pnp_update_reference(
    f: torch.Tensor,
    z: torch.Tensor,
    x: torch.Tensor | None,
    xprev: torch.Tensor | None,
    coef: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Readable torch: the affine combination, then the three per-image sums of squares (a
    missing x or xprev is a zero image)."""
    check_pnp_update_args(f, z, x, xprev, coef, op="pnp_update_reference")
    return _pnp_update_unchecked(f, z, x, xprev, coef)


def _pnp_update_unchecked(f, z, x, xprev, coef) -> tuple[torch.Tensor, torch.Tensor]:
    # the reference after pnp_update has checked the arguments
    a, b, c, d = (coef[:, i].view(-1, 1, 1, 1) for i in range(4))
    x0 = x if x is not None else torch.zeros_like(f)
    p0 = xprev if xprev is not None else torch.zeros_like(f)
    out = a * f + b * z + c * x0 + d * p0
    residual = (z - f).flatten(1).pow(2).sum(1)
    change = (x0 - p0).flatten(1).pow(2).sum(1)
    norm = x0.flatten(1).pow(2).sum(1)
    return out, torch.stack([residual, change, norm], dim=1)


def check_pnp_update_args(f, z, x, xprev, coef, op: str = "pnp_update") -> None:
    """Validate the arguments (metadata only: shapes, dtypes, devices, sizes; NaN passes
    through); raise TypeError/ValueError naming the argument."""
    named = {"f": f, "z": z, "x": x, "xprev": xprev, "coef": coef}
    for name, t in named.items():
        if t is None and name in ("x", "xprev"):
            continue
        require(isinstance(t, torch.Tensor), f"{op}: {name} must be a tensor", TypeError)
    require(
        f.dtype in (torch.float32, torch.float64),
        f"{op}: f must be float32 or float64, not {f.dtype}",
        TypeError,
    )
    require(f.dim() == 4, f"{op}: f must be [B, C, H, W], got shape {tuple(f.shape)}")
    require_not_meta(op, "f", f)
    for name, t in named.items():
        if t is None or name == "f":
            continue
        require(
            t.dtype == f.dtype,
            f"{op}: {name} has dtype {t.dtype}, f has {f.dtype}",
            TypeError,
        )
        require(t.device == f.device, f"{op}: {name} is on {t.device}, f on {f.device}")
        if name != "coef":
            require(
                t.shape == f.shape,
                f"{op}: {name} has shape {tuple(t.shape)}, f has {tuple(f.shape)}",
            )
    B = f.shape[0]
    require(
        coef.shape == (B, 4),
        f"{op}: coef must have shape ({B}, 4), got {tuple(coef.shape)}",
    )


def pnp_update_fast_path_check(f, z, x, xprev, coef) -> str | None:
    """Why the CUDA kernel cannot take these inputs (None when it can)."""
    reason = not_contiguous(f=f, z=z, x=x, xprev=xprev, coef=coef)
    if reason:
        return reason
    if math.prod(f.shape[1:]) >= 2**30:
        return "an image with 2**30 or more elements"
    return None


def pnp_update_triton_check(f, z, x, xprev, coef) -> str | None:
    """Why the Triton kernel cannot take these inputs (None when it can)."""
    if f.shape[0] > 65535:
        return "more than 65535 images in one call"
    return pnp_update_fast_path_check(f, z, x, xprev, coef)


@torch.library.custom_op("pnpfast::pnp_update_triton", mutates_args=())
def _pnp_update_triton(
    f: torch.Tensor,
    z: torch.Tensor,
    x: torch.Tensor | None,
    xprev: torch.Tensor | None,
    coef: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    from pnpfast.kernels.pnp_update import partial_blocks, pnp_update_triton

    out = empty_output(f)
    partial = empty_output(f, (f.shape[0], partial_blocks(math.prod(f.shape[1:])), 3))
    pnp_update_triton(f, z, x, xprev, coef, out, partial)
    return out, partial.sum(1)


@torch.library.custom_op("pnpfast::pnp_update_cuda", mutates_args=())
def _pnp_update_cuda(
    f: torch.Tensor,
    z: torch.Tensor,
    x: torch.Tensor | None,
    xprev: torch.Tensor | None,
    coef: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    B = f.shape[0]
    out = empty_output(f)
    partial = empty_output(f, (B, cuda_partial_blocks(f.device, B, math.prod(f.shape[1:])), 3))
    torch.ops.pnpfast_C.pnp_update_out(f, z, x, xprev, coef, out, partial)
    return out, partial.sum(1)


@_pnp_update_triton.register_fake
@_pnp_update_cuda.register_fake
def _pnp_update_fake(f, z, x, xprev, coef):
    return torch.empty_like(f, memory_format=torch.contiguous_format), f.new_empty(f.shape[0], 3)


_op = FusedOp(
    "pnp_update",
    _pnp_update_unchecked,
    {
        "triton": (_pnp_update_triton, pnp_update_triton_check),
        "cuda": (_pnp_update_cuda, pnp_update_fast_path_check),
    },
)


def pnp_update(
    f: torch.Tensor,
    z: torch.Tensor,
    x: torch.Tensor | None,
    xprev: torch.Tensor | None,
    coef: torch.Tensor,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(a f + b z + c x + d xprev, [||z - f||^2, ||x - xprev||^2, ||x||^2]) per image, on the
    fastest backend that accepts the inputs. See the module docstring."""
    check_pnp_update_args(f, z, x, xprev, coef)
    return _op(f, z, x, xprev, coef, backend=backend)

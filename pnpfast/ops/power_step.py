"""One step of batched power iteration: per-image normalisation, estimate and convergence test.

Power iteration for the largest eigenvalue of a symmetric positive semi-definite map M (J^T J
for the spectral norm of a Jacobian J, or J itself when J is symmetric) keeps, per image b, a
vector u_b of any norm and s_b = 1 / ||u_b||, so that v_b = s_b u_b is the unit iterate. The
caller computes w = M u (one batched product for all images: M is linear, so the scale need not
be applied first) and this step, for every image still active, writes

    u'_b      = s_b w_b                          (= M v_b: the next iterate, of norm ||M v_b||)
    s'_b      = 1 / (s_b ||w_b||)                (= 1 / ||u'_b||)
    rayleigh  = s_b^2 <u_b, w_b>                 (= <v_b, M v_b>)
    estimate  = sqrt(max(rayleigh, 0))  if gram  (||J v_b||: the spectral norm of J)
              = |rayleigh|              else     (the eigenvalue of largest modulus of J)
    converged = |estimate - previous estimate| <= tol * estimate, from the second step on,
                or w_b = 0 (M v_b = 0: the estimate is exactly 0)

A frozen image (active = 0) keeps u and its state. The scale is applied one step late (to w, not
to u before the product), so the vectors stay of the size of ||M|| and no separate normalisation
pass is needed: one pass reads u and w once and writes u' once.

Shapes: w, u [B, ...] (any trailing shape, flattened per image), one dtype (float32 or float64)
and device; state [B, 4] of that dtype with the columns STATE = (estimate, scale, active, steps).
Returns (u' like u, state' [B, 4]). Sums accumulate in the input dtype in a fixed order
(deterministic on every backend).

Fast paths (kernels/power_step.py, csrc/power_step.cu): one pass over the images, each block
writing its partial <u, w> and ||w||^2 to a [B, blocks, 2] buffer, then one program per image
that sums its partials in order and updates its state: two launches, no atomics, no host sync.

Power iteration: von Mises and Pollaczek-Geiringer (1929); its use for the Jacobians of
denoisers, e.g. Ryu et al., "Plug-and-Play Methods Provably Converge with Properly Trained
Denoisers" (ICML 2019), and Hurault, Leclaire, Papadakis (ICLR 2022).
"""

import math

import torch

from pnpfast import _validate
from pnpfast.dispatch import FusedOp
from pnpfast.ops._alloc import cuda_partial_blocks, empty_output
from pnpfast.ops._checks import not_contiguous, require, require_not_meta

STATE = ("estimate", "scale", "active", "steps")  # the columns of state


def initial_state(u: torch.Tensor) -> torch.Tensor:
    """The state [B, 4] that starts power iteration from u: estimate 0, scale 1/||u_b||, every
    image active (an image with u_b = 0 starts frozen: it has no direction), steps 0."""
    require(
        isinstance(u, torch.Tensor),
        f"initial_state: u must be a tensor, not {type(u).__name__}",
        TypeError,
    )
    require(u.is_floating_point(), f"initial_state: u must be floating, not {u.dtype}", TypeError)
    require(
        u.dim() >= 2,
        f"initial_state: u must be [B, ...] with at least one dimension per image, got shape "
        f"{tuple(u.shape)}",
    )
    norm = u.flatten(1).norm(dim=1)
    state = torch.zeros(u.shape[0], 4, dtype=u.dtype, device=u.device)
    state[:, 1] = torch.where(norm > 0, 1 / norm, torch.zeros_like(norm))
    state[:, 2] = (norm > 0).to(u.dtype)
    return state


def power_step_reference(
    w: torch.Tensor, u: torch.Tensor, state: torch.Tensor, tol: float, gram: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Readable torch: the step of the module docstring. Its arguments are checked as
    ``power_step``'s are (metadata only: NaN passes through)."""
    check_power_step_args(w, u, state, tol, gram, op="power_step_reference")
    return _power_step_unchecked(w, u, state, tol, gram)


def _power_step_unchecked(w, u, state, tol, gram) -> tuple[torch.Tensor, torch.Tensor]:
    # the reference after power_step has checked the arguments
    estimate, scale, active, steps = state.unbind(1)
    w2, u2 = w.flatten(1), u.flatten(1)
    dot = (u2 * w2).sum(1)
    ww = (w2 * w2).sum(1)
    rayleigh = scale * scale * dot
    new = rayleigh.clamp_min(0).sqrt() if gram else rayleigh.abs()
    wnorm = ww.sqrt()
    zero = wnorm == 0
    new_scale = torch.where(zero, torch.zeros_like(wnorm), 1 / (scale * wnorm))
    converged = zero | ((steps > 0) & ((new - estimate).abs() <= tol * new))
    on = active > 0
    out = torch.where(
        on.view(-1, *[1] * (u.dim() - 1)), scale.view(-1, *[1] * (u.dim() - 1)) * w, u
    )
    state_next = torch.stack(
        [
            torch.where(on, new, estimate),
            torch.where(on, new_scale, scale),
            torch.where(on & converged, torch.zeros_like(active), active),
            torch.where(on, steps + 1, steps),
        ],
        dim=1,
    )
    return out, state_next


def check_power_step_args(w, u, state, tol, gram, op: str = "power_step") -> None:
    """Validate the arguments (metadata only: shapes, dtypes, devices, sizes; NaN passes
    through); raise TypeError/ValueError naming the argument."""
    for name, t in {"w": w, "u": u, "state": state}.items():
        require(isinstance(t, torch.Tensor), f"{op}: {name} must be a tensor", TypeError)
    require(
        u.dtype in (torch.float32, torch.float64),
        f"{op}: u must be float32 or float64, not {u.dtype}",
        TypeError,
    )
    require(
        u.dim() >= 2,
        f"{op}: u must be [B, ...] with at least one dimension per image, got shape "
        f"{tuple(u.shape)}",
    )
    require_not_meta(op, "u", u)
    for name, t in {"w": w, "state": state}.items():
        require(
            t.dtype == u.dtype,
            f"{op}: {name} has dtype {t.dtype}, u has {u.dtype}",
            TypeError,
        )
        require(t.device == u.device, f"{op}: {name} is on {t.device}, u on {u.device}")
    require(
        w.shape == u.shape,
        f"{op}: w has shape {tuple(w.shape)}, u has {tuple(u.shape)}",
    )
    B = u.shape[0]
    require(
        state.shape == (B, 4),
        f"{op}: state must have shape ({B}, 4), got {tuple(state.shape)}",
    )
    _validate.flag(f"{op}: gram", gram)
    _validate.number(f"{op}: tol", tol, 0)


def power_step_fast_path_check(w, u, state, tol, gram) -> str | None:
    """Why the CUDA kernel cannot take these inputs (None when it can)."""
    reason = not_contiguous(w=w, u=u, state=state)
    if reason:
        return reason
    if u.dim() and math.prod(u.shape[1:]) >= 2**30:
        return "an image with 2**30 or more elements"
    return None


def power_step_triton_check(w, u, state, tol, gram) -> str | None:
    """Why the Triton kernel cannot take these inputs (None when it can)."""
    if u.shape[0] > 65535:
        return "more than 65535 images in one call"
    return power_step_fast_path_check(w, u, state, tol, gram)


@torch.library.custom_op("pnpfast::power_step_triton", mutates_args=())
def _power_step_triton(
    w: torch.Tensor, u: torch.Tensor, state: torch.Tensor, tol: float, gram: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    from pnpfast.kernels.power_step import partial_blocks, power_step_triton

    out = empty_output(u)
    state_next = empty_output(state)
    partial = empty_output(u, (u.shape[0], partial_blocks(math.prod(u.shape[1:])), 2))
    power_step_triton(w, u, state, tol, gram, out, state_next, partial)
    return out, state_next


@torch.library.custom_op("pnpfast::power_step_cuda", mutates_args=())
def _power_step_cuda(
    w: torch.Tensor, u: torch.Tensor, state: torch.Tensor, tol: float, gram: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    B = u.shape[0]
    n = math.prod(u.shape[1:])
    out = empty_output(u)
    state_next = empty_output(state)
    partial = empty_output(u, (B, cuda_partial_blocks(u.device, B, n), 2))
    torch.ops.pnpfast_C.power_step_out(w, u, state, tol, gram, out, state_next, partial)
    return out, state_next


@_power_step_triton.register_fake
@_power_step_cuda.register_fake
def _power_step_fake(w, u, state, tol, gram):
    return (
        torch.empty_like(u, memory_format=torch.contiguous_format),
        torch.empty_like(state, memory_format=torch.contiguous_format),
    )


_op = FusedOp(
    "power_step",
    _power_step_unchecked,
    {
        "triton": (_power_step_triton, power_step_triton_check),
        "cuda": (_power_step_cuda, power_step_fast_path_check),
    },
)


def power_step(
    w: torch.Tensor,
    u: torch.Tensor,
    state: torch.Tensor,
    tol: float = 1e-3,
    gram: bool = True,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(u', state') of one power-iteration step on w = M u, on the fastest backend that accepts
    the inputs. See the module docstring."""
    check_power_step_args(w, u, state, tol, gram)
    return _op(w, u, state, float(tol), gram, backend=backend)

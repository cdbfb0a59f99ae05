"""The iteration engine shared by every solver.

A method supplies ``init(problem) -> state`` and ``step(problem, state, k) -> state``; the
engine owns everything else:

- a per-image active mask: an image whose relative change ||x_k - x_{k-1}|| / ||x_{k-1}|| falls
  under ``tol`` is frozen (its whole state stops changing) while the rest go on. A method whose
  step already has ||x_k - x_{k-1}||^2 and ||x_{k-1}||^2 (the sums of the fused
  ``pnpfast.ops.pnp_update``) hands the [B] relative change over in its new state's
  ``rel_change`` field (see ``rel_change_from_sums``); the engine then skips its own pass over
  x_k and x_{k-1}. Without that field, or with it None, the engine computes the change itself;
- per-image iteration counts and convergence flags;
- an optional history ([iterations, B] tensors: "rel_change" always, "psnr" when x_true is given,
  "objective" when the method's state has an ``objective`` field), kept on the device and
  stacked at the end;
- a method with ``takes_active = True`` gets the [B] active mask as a fourth argument of
  ``step``, to spend no work on frozen images (GS-PnP's per-image backtracking);
- a callback per iteration; NVTX ranges around every phase.

The loop synchronises with the host only every ``check_every`` iterations, to leave early once
every image has converged; the callback may synchronise, at the caller's choice.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pnpfast.fidelity import L2
from pnpfast.profiling import nvtx_range


@dataclass
class Problem:
    """Everything a method reads: the bound data term, the denoiser and per-image parameters."""

    y: torch.Tensor  # [B, C, H, W]
    data: L2
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    sigma: torch.Tensor  # [B] noise level of y
    x0: torch.Tensor  # [B, C, H, W]
    backend: str | None
    tol: float = 0.0  # the stopping tolerance of the run (a method may test its own steps by it)

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        with nvtx_range("pnpfast/denoise"):
            return self.denoiser(x, sigma)


@dataclass
class Result:
    """What ``pnpfast.solve`` returns.

    x: [B, C, H, W] the restored images; iterations: [B] int64 iterations each image ran;
    converged: [B] bool, True where the relative change went under tol; history: name ->
    [iterations, B] tensor, or None when not asked for.
    """

    x: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    history: dict[str, torch.Tensor] | None = None


@dataclass
class IterationInfo:
    """Passed to a callback after every iteration (tensors stay on the device)."""

    iteration: int
    x: torch.Tensor
    active: torch.Tensor
    rel_change: torch.Tensor


def _merge(new, old, active: torch.Tensor):
    """Take ``new`` where active, ``old`` elsewhere, field by field over a state dataclass
    (a field that is not a tensor in both states, e.g. a ``rel_change`` still None, is new's)."""
    values = {}
    for field in dataclasses.fields(new):
        a, b = getattr(new, field.name), getattr(old, field.name)
        if (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dim() > 0
            and a.shape[0] == active.shape[0]
        ):
            mask = active.view(-1, *([1] * (a.dim() - 1)))
            values[field.name] = torch.where(mask, a, b)
        else:
            values[field.name] = a
    return type(new)(**values)


def _rel_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    diff = (new - old).flatten(1).norm(dim=1)
    ref = old.flatten(1).norm(dim=1).clamp_min(torch.finfo(old.dtype).tiny)
    return diff / ref


def rel_change_from_sums(sums: torch.Tensor) -> torch.Tensor:
    """||x_k - x_{k-1}|| / ||x_{k-1}|| per image from the [B, 3] sums of ``pnp_update`` called
    with x = x_{k-1} and xprev = x_k (so that sums[:, 1] = ||x_{k-1} - x_k||^2 and
    sums[:, 2] = ||x_{k-1}||^2): the engine's own rule, without another pass. Returns [B]."""
    ref = sums[:, 2].sqrt().clamp_min(torch.finfo(sums.dtype).tiny)
    return sums[:, 1].sqrt() / ref


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    mse = (x - ref).flatten(1).pow(2).mean(1).clamp_min(1e-20)
    return -10 * torch.log10(mse)


def run(
    method,
    problem: Problem,
    *,
    max_iter: int,
    tol: float,
    x_true: torch.Tensor | None,
    history: bool,
    callback: Callable[[IterationInfo], None] | None,
    check_every: int = 8,
) -> Result:
    """Run ``method`` on ``problem``; see the module docstring."""
    B = problem.batch
    device = problem.y.device
    state = method.init(problem)
    active = torch.ones(B, dtype=torch.bool, device=device)
    converged = torch.zeros(B, dtype=torch.bool, device=device)
    iterations = torch.zeros(B, dtype=torch.int64, device=device)
    records: dict[str, list[torch.Tensor]] = {"rel_change": []}
    if x_true is not None:
        records["psnr"] = []
    # the relative change costs a pass over x: skip it when nothing reads it
    track = tol > 0 or history or x_true is not None or callback is not None
    rel = None
    for k in range(max_iter):
        with nvtx_range("pnpfast/iteration"):
            if getattr(method, "takes_active", False):
                new = method.step(problem, state, k, active)
            else:
                new = method.step(problem, state, k)
            with nvtx_range("pnpfast/bookkeeping"):
                if track:
                    rel = getattr(new, "rel_change", None)
                    if rel is None:
                        rel = _rel_change(new.x, state.x)
                # with tol = 0 every image stays active: no mask to apply
                state = _merge(new, state, active) if tol > 0 else new
                iterations += active.long()
                if tol > 0:
                    done = active & (rel < tol)
                    converged |= done
                    active = active & ~done
                if history or x_true is not None:
                    records["rel_change"].append(rel)
                    objective = getattr(state, "objective", None)
                    if objective is not None:
                        records.setdefault("objective", []).append(objective)
                    if x_true is not None:
                        records["psnr"].append(_psnr(state.x, x_true))
            if callback is not None:
                callback(IterationInfo(k, state.x, active, rel))
        if tol > 0 and (k + 1) % check_every == 0 and not bool(active.any()):
            break
    hist = None
    if history or x_true is not None:
        hist = {name: torch.stack(vals) for name, vals in records.items() if vals}
    return Result(x=method.output(state), iterations=iterations, converged=converged, history=hist)

"""The iteration engine shared by every solver, and the protocol a method follows.

A method (``Method`` below) supplies ``init(problem) -> state``, ``step(problem, state, k) ->
state`` and ``output(state) -> x``; the state is a dataclass with at least ``x``, the iterate.
The engine owns everything else:

- a per-image active mask: an image whose stopping measure (by default the relative change
  ||x_k - x_{k-1}|| / ||x_{k-1}||) falls under ``tol`` is frozen (its whole state stops
  changing) while the rest go on. A method whose step already has ||x_k - x_{k-1}||^2 and
  ||x_{k-1}||^2 (the sums of the fused ``pnpfast.ops.pnp_update``) hands the [B] relative
  change over in its new state's ``rel_change`` field (see ``rel_change_from_sums``); the engine
  then skips its own pass over x_k and x_{k-1}. Without that field, or with it None, the engine
  computes the change itself when something reads it. A method may stop on a measure and level
  of its own instead (``measure``, ``threshold``: the sampler's sigma_t under sigma_L);
- divergence: the measure is NaN where the iterate (or the objective the method watches) is not
  finite, and the engine reads the images with a NaN measure at its host synchronisations, so a
  non-finite iterate costs no pass of its own; where nothing tracks a measure (tol = 0, no
  history, no callback) it checks the iterate itself, at those synchronisations only. Either
  way it raises FloatingPointError naming the method, the images and the iteration;
- per-image iteration counts and convergence flags;
- an optional history ([iterations, B] tensors: the measure ("rel_change", NaN for an image once
  it has stopped), "psnr" of ``method.output(state)`` (what ``Result.x`` returns) when x_true is
  given, and the [B] state fields the method names in ``history_fields`` ("objective" by
  default)), kept on the device and stacked at the end;
- a method with ``takes_active = True`` gets the [B] active mask as a fourth argument of
  ``step``, to spend no work on frozen images (GS-PnP's per-image backtracking, the sampler),
  and leaves their state as it was itself: the engine merges nothing for it;
- a callback per iteration; NVTX ranges around every phase.

The loop synchronises with the host only every ``check_every`` iterations and after the last
one (one read of two flags: any image still active, any image non-finite), to leave early once
every image has stopped; the callback may synchronise, at the caller's choice.
"""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from pnpfast import _validate
from pnpfast.denoisers.base import check_denoised
from pnpfast.fidelity import L2
from pnpfast.operators.super_resolution import super_resolution_factor
from pnpfast.profiling import nvtx_range


@dataclass
class Problem:
    """Everything a method reads: the bound data term, the denoiser and per-image parameters.

    x0 [B, C, H, W] is the start; its batch is the engine's (the sampler runs R realisations of
    each measurement, so its B is R times that of y). data is None for the sampler, which reads
    its measurements through the operator's orthonormal view instead.
    """

    y: torch.Tensor  # the measurement, batch first
    data: L2 | None
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    sigma: torch.Tensor  # [B] noise level of y
    x0: torch.Tensor  # [B, C, H, W]
    backend: str | None
    tol: float = 0.0  # the stopping tolerance of the run (a method may test its own steps by it)

    @property
    def batch(self) -> int:
        return self.x0.shape[0]

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma), its form checked against x (shape, dtype, device: metadata only, no pass
        over the data), so a denoiser that returns the wrong thing is named, not an inner op."""
        with nvtx_range("pnpfast/denoise"):
            out = self.denoiser(x, sigma)
        return check_denoised(out, x)


class Method(Protocol):
    """What a method provides to the engine; every solver of ``pnpfast.solve`` follows it
    (``splitting.HQS`` is the smallest example, ``implicit_prior.ImplicitPrior`` the sampler).

    Class attributes:

    * ``name``: the ``method=`` of ``pnpfast.solve``;
    * ``Params``: the dataclass of its parameters (the keyword arguments ``solve`` accepts);
    * ``default_max_iter``, ``default_tol``: used when ``solve`` is given None;
    * ``default_denoiser``: the name that ``pnpfast.denoisers.load`` takes for the shipped
      denoiser the method is meant for (``solve(..., denoiser=None)`` loads it), or None when
      none is shipped;
    * ``takes_active`` (optional, False): ``step`` gets the [B] bool active mask as a fourth
      argument and must return a state in which every frozen image is unchanged;
    * ``measure`` (optional, "rel_change"): the [B] state field the stopping rule, the callback
      (``IterationInfo.rel_change``) and the history read; NaN where the iterate is not finite;
    * ``history_fields`` (optional, ("objective",)): further [B] state fields for the history;
    * ``sr_max_iter`` (optional): the default max_iter for super-resolution (a
      ``SuperResolution`` of factor >= 2) where it differs: hqs 24 (DPIR's SR recipe), pgd,
      fista, gs-pnp and prox-pnp-pgd 40 (SR_MAX_ITER).

    Set by ``init`` (optional): ``threshold``, a [B] tensor: each image stops once its measure
    falls under it, whatever ``tol`` (the sampler's sigma_L).

    ``solve`` constructs a method as ``cls(params, max_iter)``; ``init(problem)`` resolves the
    per-image parameters and returns the first state (a dataclass with ``x``, the iterate,
    [B, C, H, W]); ``step(problem, state, k)`` returns the state of iteration k + 1 (k from 0);
    ``output(state)`` is the restored image that ``Result.x`` returns and ``history["psnr"]``
    scores (``state.x`` unless the method's answer is another point, e.g. GS-PnP's last
    gradient step).
    """

    name: ClassVar[str]
    Params: ClassVar[type]
    default_max_iter: ClassVar[int]
    default_tol: ClassVar[float]
    default_denoiser: ClassVar[str | None]

    def init(self, problem: Problem) -> Any: ...

    def step(self, problem: Problem, state: Any, k: int, *active: torch.Tensor) -> Any: ...

    def output(self, state: Any) -> torch.Tensor: ...


@dataclass
class Result:
    """What ``pnpfast.solve`` and ``pnpfast.sample`` return, whatever the method.

    x: [B, C, H, W] the restored images (for the sampler [B R, C, H, W], the R realisations of
    measurement b in rows b R .. b R + R - 1); iterations: [B] int64 iterations each image ran;
    converged: [B] bool, True where the stopping measure went under its level (tol; the
    sampler's sigma_L); history: name -> [iterations, B] tensor, or None when not asked for
    (see the engine's docstring; the sampler's measure is "sigma"); mean: the sampler's
    [B, C, H, W] mean of each measurement's realisations (with ``average``), else None.
    """

    x: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    history: dict[str, torch.Tensor] | None = None
    mean: torch.Tensor | None = None


@dataclass
class IterationInfo:
    """Passed to a callback after every iteration (tensors stay on the device).

    x: the iterate ``state.x``; active: [B] bool; rel_change: [B] the method's stopping measure
    (the relative change; the sampler's sigma_t), None where nothing computed it; state: the
    method's whole state.
    """

    iteration: int
    x: torch.Tensor
    active: torch.Tensor
    rel_change: torch.Tensor | None
    state: Any = None


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
    """||new - old|| / ||old|| per image, NaN where new or old is not finite: [B]."""
    diff = (new - old).flatten(1).norm(dim=1)
    ref = old.flatten(1).norm(dim=1).clamp_min(torch.finfo(old.dtype).tiny)
    return torch.where(torch.isfinite(diff), diff / ref, math.nan)


def rel_change_from_sums(sums: torch.Tensor) -> torch.Tensor:
    """||x_k - x_{k-1}|| / ||x_{k-1}|| per image from the [B, 3] sums of ``pnp_update`` called
    with x = x_{k-1} and xprev = x_k (so that sums[:, 1] = ||x_{k-1} - x_k||^2 and
    sums[:, 2] = ||x_{k-1}||^2): the engine's own rule, without another pass; NaN where the
    change is not finite (x_k or x_{k-1} NaN or Inf), which the engine reads as divergence.
    (A zero x_{k-1} gives Inf, not NaN.) Returns [B]."""
    ref = sums[:, 2].sqrt().clamp_min(torch.finfo(sums.dtype).tiny)
    diff = sums[:, 1].sqrt()
    return torch.where(torch.isfinite(diff), diff / ref, math.nan)


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    mse = (x - ref).flatten(1).pow(2).mean(1).clamp_min(1e-20)
    return -10 * torch.log10(mse)


#: the engine counts iterations per image in int64
MAX_ITER_LIMIT = 2**63 - 1

# The lowest default denoiser level of the fixed-level methods (RED, prox-pnp) for
# super-resolution (a SuperResolution of factor >= 2). Decimation leaves (s^2 - 1) / s^2 of the
# image unmeasured, constrained by the denoiser alone, and at their deblurring levels (down to
# 5/255 or 7.65/255) the shipped denoisers let it drift: on 72x72 Set12 and Set3C crops at
# 2.55/255 the PSNR peaked within 10 to 35 iterations and then fell for the rest of the run
# (red-dpg on Set3C butterfly x2 from 30.4 to 24.3 dB, bicubic upsampling 26.2; prox-pnp-pgd
# on a Set12 crop x2 from 26.4 to 13.7 dB). Floored at 15/255 they stay at their best: red-dpg
# ends at 30.6 dB there, red-apg at 30.7 (issue 19).
SR_SIGMA_D = 15 / 255


# The default max_iter of the forward-backward methods (pgd, fista, gs-pnp, prox-pnp-pgd) for
# super-resolution. Their data step moves nothing in the unmeasured part of the image, which
# the denoiser alone shapes, and with the shipped networks the iterates keep drifting there long
# after the PSNR peaked (at 5 to 45 iterations) on textured crops: on a 72x72 Set12 crop (01.png,
# x2 bicubic, 2.55/255) gs-pnp rose to 22.8 dB by iteration 10 and fell to 15.0 by 400, and
# prox-pnp-pgd (sigma_d 15/255) from 23.0 to 18.1 by 300 (bicubic upsampling: 21.6); on a
# CBSD68 crop pgd fell from 24.5 to 22.5 by 100. Stopped at 40, the mean gain over bicubic
# upsampling on three Set12 crops (x2 bicubic, x3 Gaussian, x4 bicubic at 2.55 and 7.65 /255)
# went from 0.06 to 0.92 dB (gs-pnp) and from 0.99 to 1.47 dB (prox-pnp-pgd), better on every
# problem (issue 19).
SR_MAX_ITER = 40


def sigma_d_floor(problem: "Problem", floor: float) -> float:
    """The floor of a method's default denoiser level: ``floor``, raised to SR_SIGMA_D for a
    super-resolution problem."""
    if super_resolution_factor(problem.data.operator):
        return max(floor, SR_SIGMA_D)
    return floor


def check_max_iter(max_iter) -> int:
    """The iteration cap: an int in [1, 2**63 - 1] (TypeError for another type, bool included;
    ValueError out of range). No smaller cap: a huge value is a long run, stopped by tol (or the
    sampler's sigma_L); the methods compute their schedules per iteration, so it costs no
    memory."""
    return _validate.integer(
        "max_iter", max_iter, 1, MAX_ITER_LIMIT, hint="(iterations are counted in int64)"
    )


def check_run_options(history, callback) -> None:
    """history a bool, callback None or callable: TypeError naming the argument otherwise."""
    _validate.flag("history", history)
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be None or callable as callback(info: IterationInfo), not "
            f"{type(callback).__name__}"
        )


def diverged(name: str, images: list[int], iteration: int) -> FloatingPointError:
    """The error for images whose iterate (or watched objective) went NaN or Inf."""
    return FloatingPointError(
        f"{name}: the iterate of images {images} is NaN or Inf by iteration {iteration} (the "
        "denoiser returned NaN or Inf, or the iteration diverged: try smaller steps)"
    )


def run(
    method: Method,
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
    device = problem.x0.device
    state = method.init(problem)
    takes_active = getattr(method, "takes_active", False)
    measure = getattr(method, "measure", "rel_change")
    threshold = getattr(method, "threshold", None)
    # with tol = 0 and no threshold of its own every image stays active: no mask to apply
    stopping = threshold is not None or tol > 0
    threshold = tol if threshold is None else threshold
    active = torch.ones(B, dtype=torch.bool, device=device)
    converged = torch.zeros(B, dtype=torch.bool, device=device)
    iterations = torch.zeros(B, dtype=torch.int64, device=device)
    nonfinite = torch.zeros(B, dtype=torch.bool, device=device)
    record = history or x_true is not None
    records: dict[str, list[torch.Tensor]] = {measure: []}
    if x_true is not None:
        records["psnr"] = []
    fields = getattr(method, "history_fields", ("objective",))
    # the relative change costs a pass over x: skip it when nothing reads it
    track = stopping or record or callback is not None
    for k in range(max_iter):
        with nvtx_range("pnpfast/iteration"):
            if takes_active:
                new = method.step(problem, state, k, active)
            else:
                new = method.step(problem, state, k)
            with nvtx_range("pnpfast/bookkeeping"):
                m = getattr(new, measure, None)
                if m is None and track:
                    m = _rel_change(new.x, state.x)
                if m is not None:
                    nonfinite |= active & m.isnan()
                state = _merge(new, state, active) if stopping and not takes_active else new
                iterations += active.long()
                if record:
                    records[measure].append(torch.where(active, m, math.nan) if stopping else m)
                    for name in fields:
                        value = getattr(state, name, None)
                        if value is not None:
                            records.setdefault(name, []).append(value)
                    if x_true is not None:
                        records["psnr"].append(_psnr(method.output(state), x_true))
                if stopping:
                    done = active & (m < threshold)
                    converged |= done
                    active = active & ~done
            if callback is not None:
                callback(IterationInfo(k, state.x, active, m, state))
        if (k + 1) % check_every == 0 or k + 1 == max_iter:
            if m is None:  # nothing tracked a measure: look at the iterate, here only
                nonfinite = ~torch.isfinite(state.x).flatten(1).all(1)
            any_bad, any_active = torch.stack([nonfinite.any(), active.any()]).tolist()
            if any_bad:
                raise diverged(method.name, nonfinite.nonzero().flatten().tolist(), k + 1)
            if stopping and not any_active:
                break
    hist = None
    if record:
        hist = {name: torch.stack(vals) for name, vals in records.items() if vals}
    return Result(x=method.output(state), iterations=iterations, converged=converged, history=hist)

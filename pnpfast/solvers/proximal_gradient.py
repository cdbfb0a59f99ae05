"""Proximal-gradient methods: PnP-PGD and PnP-FISTA, with f(x) = 1/2 ||A x - y||^2.

PGD (Kamilov, Bouman, Buzzard, Wohlberg, IEEE SPM 2023, "forward-backward" PnP):

    x_{k+1} = D(x_k - tau grad f(x_k), sigma_d)

FISTA (Beck & Teboulle 2009 momentum around the same step; Kamilov, Mansour, Wohlberg,
IEEE SPL 2017):

    z_{k+1} = D(v_k - tau grad f(v_k), sigma_d)
    t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
    v_{k+1} = z_{k+1} + (t_k - 1) / t_{k+1} (z_{k+1} - z_k)

with a restart (``restart=True``, the default): where the step grows, ||z_{k+1} - z_k|| >
||z_k - z_{k-1}||, t_{k+1} is reset to 1, so the next extrapolation has no momentum. Momentum
turns a denoiser that expands slightly (a Jacobian norm above 1, as trained CNNs have at low
sigma_d) into a geometric blow-up; the growing step is its first sign (a safeguard in the
spirit of the adaptive restart of O'Donoghue & Candes, Found. Comput. Math. 2015). The step
norms come from the sums of the ``pnp_update`` pass, so the test costs no pass of its own, and
it acts one iteration late.

tau defaults to 1 / L with L = ||A^T A|| (1 for a blur kernel that sums to 1) and must lie in
(0, 2 / L). sigma_d (the denoiser strength) defaults to max(sigma, 7.65/255) for PGD and
max(sigma, 12.75/255) for FISTA: the noise level of y makes the fixed point the MAP estimate
under the denoiser's prior with tau = 1 (prox of sigma_d^2 phi after a tau-step on f weighs phi
by sigma_d^2 / tau = sigma^2), and the floor keeps the shipped conditional denoiser out of the
range where it expands: at sigma_d = 2.55/255 FISTA diverged on every CBSD432 tuning crop (the
restart alone did not save it) and PGD drifted 3 dB below its best iterate on one of six; at
7.65/255 FISTA with the restart still diverged on 3 of the 8 tuning crops with the sharpest
vivid edges (``--select edges``), at 12.75/255 on none (tuned here, see
benchmarks/results/defaults.jsonl). The gradient
step is one fused spectral pass for Blur (``L2.grad_step``); FISTA's momentum step is one fused
``pnp_update`` pass that also yields the relative change of z for the stopping rule.
"""

from dataclasses import dataclass

import torch

from pnpfast import _validate
from pnpfast.ops import pnp_update
from pnpfast.solvers.engine import SR_MAX_ITER, Problem, rel_change_from_sums


@dataclass
class PGDParams:
    """tau: step size in (0, 2 / L) (default 1 / L, Kamilov et al. 2023); sigma_d: denoiser
    strength (default max(sigma, 7.65/255) for pgd, max(sigma, 12.75/255) for fista: the MAP
    weighting with tau = 1, floored where the shipped denoiser stops expanding, tuned here on
    CBSD432 crops, see benchmarks/results/defaults.jsonl). Floats or length-B tensors.
    restart: fista's momentum restart where the step grows (default True; pgd, which has no
    momentum, refuses it rather than ignore it)."""

    tau: float | torch.Tensor | None = None
    sigma_d: float | torch.Tensor | None = None
    restart: bool | None = None  # None: True for fista


def check_restart(restart: object, method: str, momentum: bool) -> bool:
    """The momentum restart switch of fista and red-apg: a bool, None for the default (True);
    TypeError otherwise, and for a method without momentum (pgd, red-pg) that would ignore it.
    Returns the switch."""
    if restart is None:
        return momentum
    if not momentum:
        raise TypeError(
            f"method {method!r} does not take restart: it has no momentum to restart (the "
            "accelerated method, fista or red-apg, has)"
        )
    return _validate.flag("restart", restart)


def restarted(t: torch.Tensor, step2: torch.Tensor, prev_step2: torch.Tensor) -> torch.Tensor:
    """The momentum sequence t [B] with t = 1 where the step grew (step2 > prev_step2, the
    squared step norms the fused update's sums already hold): no extrapolation next time."""
    return torch.where(step2 > prev_step2, torch.ones_like(t), t)


def lipschitz(problem: Problem) -> torch.Tensor:
    """L = ||A^T A|| per image ([B]), checked > 0 and finite: a step 1 / L on a degenerate
    operator (A x = 0 for those images, e.g. an all-zero kernel) would be infinite, so the error
    names the operator rather than a step the caller never set."""
    L = problem.data.lipschitz()
    bad = ~(torch.isfinite(L) & (L > 0))
    if bool(bad.any()):
        images = bad.nonzero().flatten().tolist()
        name = type(problem.data.operator).__name__
        raise ValueError(
            f"operator {name} has ||A^T A|| = {[float(v) for v in L[bad]]} for images {images}: "
            "it maps them to zero (or is not finite), so the data term has no gradient step "
            "(an all-zero blur kernel?)"
        )
    return L


def step_size(name: str, value, problem: Problem, default: float = 1.0) -> torch.Tensor:
    """A per-image gradient step on f in (0, 2 / L), L = ||A^T A|| per image (None: default / L,
    default in (0, 2)); ValueError naming ``name`` and the images' limits otherwise. Returns
    [B]."""
    L = lipschitz(problem)
    if value is None:
        return default / L
    step = _validate.per_image(name, value, problem.batch, problem.y, positive=True)
    too_big = step * L >= 2
    if bool(too_big.any()):
        bad = [round(float(t), 6) for t in step[too_big]]
        limit = [round(float(2 / v), 6) for v in L[too_big]]
        raise ValueError(f"{name} must be in (0, 2/L) for convergence; got {bad}, limit {limit}")
    return step


def _resolve(
    params: PGDParams, problem: Problem, sigma_d_min: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    B, y = problem.batch, problem.y
    tau = step_size("tau", params.tau, problem)
    sigma_d = params.sigma_d
    if sigma_d is None:
        sigma_d = problem.sigma.clamp_min(sigma_d_min)
    return tau, _validate.per_image("sigma_d", sigma_d, B, y, nonnegative=True)


@dataclass
class PGDState:
    x: torch.Tensor


class PGD:
    name = "pgd"
    Params = PGDParams
    default_denoiser = "conditional"
    default_max_iter = 100
    sr_max_iter = SR_MAX_ITER  # engine.SR_MAX_ITER
    default_tol = 1e-4
    momentum = False

    def __init__(self, params: PGDParams, max_iter: int):
        self.restart = check_restart(params.restart, self.name, self.momentum)
        self.params = params

    sigma_d_min = 7.65 / 255  # the floor of the default sigma_d

    def init(self, problem: Problem) -> PGDState:
        self.tau, self.sigma_d = _resolve(self.params, problem, self.sigma_d_min)
        return PGDState(x=problem.x0)

    def step(self, problem: Problem, state: PGDState, k: int) -> PGDState:
        v = problem.data.grad_step(state.x, self.tau, backend=problem.backend, check=False)
        return PGDState(x=problem.denoise(v, self.sigma_d))

    def output(self, state: PGDState) -> torch.Tensor:
        return state.x


@dataclass
class FISTAState:
    x: torch.Tensor  # z_k, the denoised iterate
    v: torch.Tensor  # the extrapolated point
    t: torch.Tensor  # [B] momentum sequence
    rel_change: torch.Tensor | None = None  # [B] ||z_k - z_{k-1}|| / ||z_{k-1}||
    step2: torch.Tensor | None = None  # [B] ||z_k - z_{k-1}||^2, for the restart


class FISTA(PGD):
    name = "fista"
    momentum = True
    sigma_d_min = 12.75 / 255  # momentum needs more margin from the expanding range

    def init(self, problem: Problem) -> FISTAState:
        x0 = super().init(problem).x
        ones = torch.ones(problem.batch, dtype=x0.dtype, device=x0.device)
        return FISTAState(x=x0, v=x0, t=ones, step2=torch.full_like(ones, float("inf")))

    def step(self, problem: Problem, state: FISTAState, k: int) -> FISTAState:
        g = problem.data.grad_step(state.v, self.tau, backend=problem.backend, check=False)
        z = problem.denoise(g, self.sigma_d)
        t_next = (1 + torch.sqrt(1 + 4 * state.t**2)) / 2
        m = (state.t - 1) / t_next
        zero = torch.zeros_like(m)
        # v = (1 + m) z_k - m z_{k-1}; x = z_{k-1}, xprev = z_k give the change sums
        v, sums = pnp_update(
            z, g, state.x, z, torch.stack([1 + m, zero, -m, zero], 1), backend=problem.backend
        )
        step2 = sums[:, 1]
        if self.restart:
            t_next = restarted(t_next, step2, state.step2)
        return FISTAState(x=z, v=v, t=t_next, rel_change=rel_change_from_sums(sums), step2=step2)

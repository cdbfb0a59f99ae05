"""Regularization by Denoising (RED): the fixed points of l(x) + lam rho(x), with the gradient
of the regulariser given by the denoiser, grad rho(x) = x - f(x), f(x) = D(x, sigma_d).

The data term is the negative log-likelihood of white Gaussian noise of level sigma_n,

    l(x) = 1 / (2 sigma_n^2) ||A x - y||^2,      sigma_n = max(sigma, SIGMA_FLOOR),

sigma_n being the ``sigma`` argument of ``pnpfast.solve`` floored at DPIR's 0.255/255 (as in
HQS), so that sigma = 0 does not divide by zero. Every RED method looks for x with
grad l(x) + lam (x - f(x)) = 0; with a linear symmetric denoiser f(x) = W x that is the linear
system (A^T A / sigma_n^2 + lam (I - W)) x = A^T y / sigma_n^2.

Romano, Elad, Milanfar, "The Little Engine That Could: Regularization by Denoising (RED)",
SIAM J. Imaging Sci. 2017:

* "red-sd" (steepest descent): x <- x - mu (grad l(x) + lam (x - f(x))); mu in (0, 2 / Lip),
  Lip = ||A^T A|| / sigma_n^2 + 2 lam, default 1 / Lip. One fused spectral pass (``L2.grad_step``)
  for x - mu/sigma_n^2 A^T (A x - y), then one ``pnp_update`` pass for the rest.
* "red-fp" (fixed point): x_{k+1} = argmin_x l(x) + lam/2 ||x - f(x_k)||^2
  = ``L2.prox(f(x_k), gamma = 1 / (lam sigma_n^2))``.
* "red-admm": x_{k+1} = argmin_x l(x) + beta/2 ||x - (v_k - u_k)||^2 (``L2.prox`` with
  gamma = 1 / (beta sigma_n^2)); v_{k+1} by ``inner_iter`` fixed-point steps
  v <- (lam f(v) + beta (x_{k+1} + u_k)) / (lam + beta), each one ``pnp_update`` pass;
  u_{k+1} = u_k + x_{k+1} - v_{k+1}, one ``pnp_update`` pass. Starts at v = x_0, u = 0.

Reehorst & Schniter, "Regularization by Denoising: Clarifications and New Interpretations",
IEEE TCI 2019 (their code: github.com/edward-reehorst/On_RED, minimizers/Run{PG,APG,DPG}.m):

* "red-pg" (proximal gradient), "red-apg" (accelerated), "red-dpg" (dynamic):

      x_{k+1} = argmin_x l(x) + lam L_k / 2 ||x - v_k||^2   (L2.prox, gamma = 1/(lam L_k sigma_n^2))
      t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2 (red-apg; t_0 = 1),  t_k = 1 (red-pg, red-dpg)
      z_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1} (x_{k+1} - x_k)
      v_{k+1} = (1 / L_{k+1}) f(z_{k+1}) - ((1 - L_{k+1}) / L_{k+1}) z_{k+1}

  from x_0 and v_0 = (1 / L_0) f(x_0) - ((1 - L_0) / L_0) x_0 (one denoiser call before the
  first iteration, as in the authors' code). L_k = L for red-pg and red-apg; red-dpg grows it
  from L0 towards Lf by the rule of the authors' RunDPG.m,

      L_k = 1 / (1/Lf + (1/L0 - 1/Lf) / sqrt(k + 1)),   k = 0, 1, 2, ...   (L_0 = L0).

  The momentum step and the v update are ``pnp_update`` passes.

* "red-gd": x <- x - mu (A^T (A x - y) + lam (x - f(x))), the same step on the unweighted data
  term 1/2 ||A x - y||^2 (no 1 / sigma_n^2): fixed point (A^T A + lam (I - W)) x = A^T y.
  mu in (0, 2 / Lip), Lip = ||A^T A|| + 2 lam, default 1 / Lip.

Defaults. The step parameters follow the papers' deblurring experiments: L = 1, L0 = 0.2,
Lf = 2, inner_iter = 1, and beta = lam / 20 (their beta = 0.001 for lam = 0.02 on the [0, 255]
scale). The denoiser strength and the weight are rules, for the shipped noise-conditional
denoiser (``pnpfast.denoisers.load()``): sigma_d = max(1.5 sigma, 7.65/255) (15/255 for
super-resolution, ``engine.SR_SIGMA_D``; tuned here on
CBSD432 crops, benchmarks/results/defaults.jsonl: at sigma_d = sigma the trained denoiser
expands at 2.55/255 and the iterates drift away from their best), and lam = 1 / sigma_d^2
(Tweedie's formula: an MMSE denoiser has x - f(x) = sigma_d^2 grad(-log p_sigma_d)(x), so
lam rho is the negative log-prior and the fixed point a MAP estimate; the tuning grid agreed,
its best lam lying within a factor 2 of it); for red-gd lam = sigma_n^2 / sigma_d^2 (the same
problem as red-sd). The papers' lam = 0.02 * 255^2 = 1300.5 with sigma_d = sigma drifted on
those crops at 2.55/255, and with the shipped blind denoiser, which ignores sigma_d, every RED
method drifted at 7.65/255. red-apg restarts its momentum (t <- 1) where the step
||x_{k+1} - x_k|| grows (``restart``, as pnpfast's fista: momentum turns a slightly expanding
denoiser into a blow-up). Every parameter but inner_iter and restart may be a float or a
length-B tensor (one per image).

The relative change that the stopping rule reads comes with the ``pnp_update`` sums in red-admm
and the proximal-gradient methods; red-sd, red-gd and red-fp leave it to the engine. red-admm
stops on the larger of ||x_{k+1} - x_k|| and the primal residual ||x_{k+1} - v_{k+1}||, both
over ||x_k||. The output is x (for red-admm the data-prox iterate, as in the papers' code).
"""

import math
from dataclasses import dataclass

import torch

from pnpfast import _validate
from pnpfast.ops import pnp_update
from pnpfast.solvers.engine import Problem, rel_change_from_sums, sigma_d_floor
from pnpfast.solvers.proximal_gradient import check_restart, restarted
from pnpfast.solvers.splitting import SIGMA_FLOOR

#: each inner step is a denoiser call; the papers use 1 to a few
MAX_INNER_ITER = 100

LAM = 0.02 * 255**2  # RED's deblurring weight 0.02 on the [0, 255] scale (not the default)
BETA_RATIO = 0.001 / 0.02  # RED-ADMM's penalty beta over lam in RED's deblurring experiments
# Default denoiser strength max(1.5 sigma, 7.65/255) and weight lam = 1 / sigma_d^2: tuned here
# on CBSD432 crops with the shipped conditional denoiser (benchmarks/results/defaults.jsonl).
SIGMA_D_FACTOR = 1.5
SIGMA_D_MIN = 7.65 / 255

PerImage = float | torch.Tensor


def _coef(a, b, c, d, like: torch.Tensor) -> torch.Tensor:
    """[B, 4] pnp_update coefficients from four [B] tensors or numbers."""
    cols = [
        v if isinstance(v, torch.Tensor) else torch.full_like(like, float(v)) for v in (a, b, c, d)
    ]
    return torch.stack(cols, 1)


def _noise(problem: Problem) -> torch.Tensor:
    """sigma_n = max(sigma, SIGMA_FLOOR) per image: [B]."""
    return problem.sigma.clamp_min(SIGMA_FLOOR)


def _per_image(problem: Problem, name: str, value, default=None, **bounds) -> torch.Tensor:
    value = default if value is None else value
    return _validate.per_image(name, value, problem.batch, problem.y, **bounds)


def _sigma_d(problem: Problem, sigma_d) -> torch.Tensor:
    """sigma_d, default max(SIGMA_D_FACTOR sigma, SIGMA_D_MIN) per image (SIGMA_D_MIN raised to
    engine.SR_SIGMA_D for super-resolution): [B]."""
    default = (SIGMA_D_FACTOR * problem.sigma).clamp_min(sigma_d_floor(problem, SIGMA_D_MIN))
    return _per_image(problem, "sigma_d", sigma_d, default, nonnegative=True)


def _lam(problem: Problem, lam, sigma_d: torch.Tensor, scale=1.0) -> torch.Tensor:
    """lam, default scale / sigma_d^2 per image (Tweedie: x - f(x) = sigma_d^2 grad(-log p)
    for an MMSE denoiser, so lam rho is the negative log-prior): [B]."""
    default = scale / sigma_d.clamp_min(SIGMA_FLOOR) ** 2
    return _per_image(problem, "lam", lam, default, positive=True)


def _step_size(problem: Problem, mu, lip: torch.Tensor, rule: str) -> torch.Tensor:
    """mu in (0, 2 / Lip), default 1 / Lip: [B]."""
    if mu is None:
        return 1 / lip
    mu = _per_image(problem, "mu", mu, positive=True)
    too_big = mu * lip >= 2
    if bool(too_big.any()):
        bad = [round(float(m), 8) for m in mu[too_big]]
        limit = [round(float(2 / v), 8) for v in lip[too_big]]
        raise ValueError(
            f"mu must be in (0, 2/Lip) for convergence, Lip = {rule}; got {bad}, limit {limit}"
        )
    return mu


class _RED:
    """What every RED method shares: its parameters, the stopping default, the shipped
    denoiser it is meant for, the output x."""

    # the noise-conditional network follows sigma_d; the defaults are tuned with it
    # (benchmarks/bench_defaults.py), and with the blind one red-apg diverges at them
    default_denoiser = "conditional"
    default_max_iter = 100
    default_tol = 1e-4

    def __init__(self, params, max_iter: int):
        # red-pg and red-apg have the field; only red-apg has momentum to restart
        if hasattr(params, "restart"):
            self.restart = check_restart(params.restart, self.name, self.accelerated)
        self.params = params
        self.max_iter = max_iter

    def output(self, state) -> torch.Tensor:
        return state.x


@dataclass
class REDState:
    x: torch.Tensor


@dataclass
class REDSDParams:
    """red-sd and red-gd. lam: regularisation weight > 0 (default 1 / sigma_d^2 for red-sd,
    sigma_n^2 / sigma_d^2 for red-gd); mu: step size in (0, 2 / Lip) (default 1 / Lip); sigma_d:
    denoiser strength (default max(1.5 sigma, 7.65/255), tuned here). Floats or length-B
    tensors; see the module docstring."""

    lam: PerImage | None = None
    mu: PerImage | None = None
    sigma_d: PerImage | None = None


class REDSD(_RED):
    """x <- x - mu (A^T (A x - y) / sigma_n^2 + lam (x - f(x))); see the module docstring."""

    name = "red-sd"
    Params = REDSDParams
    default_max_iter = 200
    weighted = True  # l(x) = ||A x - y||^2 / (2 sigma_n^2); red-gd drops the 1 / sigma_n^2

    def init(self, problem: Problem) -> REDState:
        s2 = _noise(problem) ** 2
        scale = torch.ones_like(s2) if not self.weighted else 1 / s2
        self.sigma_d = _sigma_d(problem, self.params.sigma_d)
        lam = _lam(problem, self.params.lam, self.sigma_d, 1.0 if self.weighted else s2)
        lip = problem.data.lipschitz() * scale + 2 * lam
        rule = "||A^T A||/sigma^2 + 2 lam" if self.weighted else "||A^T A|| + 2 lam"
        mu = _step_size(problem, self.params.mu, lip, rule)
        self.tau = mu * scale  # the gradient step on 1/2 ||A x - y||^2
        # x_new = g + mu lam f(x) - mu lam x, g = x - tau A^T (A x - y)
        self.coef = _coef(mu * lam, -mu * lam, 1, 0, lam)
        return REDState(x=problem.x0)

    def step(self, problem: Problem, state: REDState, k: int) -> REDState:
        f = problem.denoise(state.x, self.sigma_d)
        g = problem.data.grad_step(state.x, self.tau, backend=problem.backend, check=False)
        x, _ = pnp_update(f, state.x, g, None, self.coef, backend=problem.backend)
        return REDState(x=x)


class REDGD(REDSD):
    """x <- x - mu (A^T (A x - y) + lam (x - f(x))); see the module docstring."""

    name = "red-gd"
    weighted = False


@dataclass
class REDFPParams:
    """lam: regularisation weight > 0 (default 1 / sigma_d^2); sigma_d: denoiser strength
    (default max(1.5 sigma, 7.65/255), tuned here). Floats or length-B tensors; see the module
    docstring."""

    lam: PerImage | None = None
    sigma_d: PerImage | None = None


class REDFP(_RED):
    """x_{k+1} = argmin_x l(x) + lam/2 ||x - f(x_k)||^2; see the module docstring."""

    name = "red-fp"
    Params = REDFPParams

    def init(self, problem: Problem) -> REDState:
        self.sigma_d = _sigma_d(problem, self.params.sigma_d)
        lam = _lam(problem, self.params.lam, self.sigma_d)
        self.gamma = 1 / (lam * _noise(problem) ** 2)
        return REDState(x=problem.x0)

    def step(self, problem: Problem, state: REDState, k: int) -> REDState:
        f = problem.denoise(state.x, self.sigma_d)
        x = problem.data.prox(f, self.gamma, backend=problem.backend, check=False)
        return REDState(x=x)


@dataclass
class REDADMMParams:
    """lam: regularisation weight > 0 (default 1 / sigma_d^2); beta: ADMM penalty > 0 (default
    lam / 20, the papers' ratio); inner_iter: fixed-point steps of the v update, a positive int
    (default 1); sigma_d: denoiser strength (default max(1.5 sigma, 7.65/255), tuned here).
    lam, beta, sigma_d: floats or length-B tensors; see the module docstring."""

    lam: PerImage | None = None
    beta: PerImage | None = None
    inner_iter: int = 1
    sigma_d: PerImage | None = None


@dataclass
class REDADMMState:
    x: torch.Tensor  # the data-prox iterate, the output
    v: torch.Tensor  # the denoiser-side iterate
    u: torch.Tensor  # the scaled dual variable
    rel_change: torch.Tensor | None = None


class REDADMM(_RED):
    """RED-ADMM; see the module docstring."""

    name = "red-admm"
    Params = REDADMMParams

    def init(self, problem: Problem) -> REDADMMState:
        j = self.params.inner_iter
        _validate.integer("inner_iter", j, 1, MAX_INNER_ITER)
        self.sigma_d = _sigma_d(problem, self.params.sigma_d)
        lam = _lam(problem, self.params.lam, self.sigma_d)
        beta = _per_image(problem, "beta", self.params.beta, BETA_RATIO * lam, positive=True)
        self.gamma = 1 / (beta * _noise(problem) ** 2)
        # v <- (lam f(v) + beta x + beta u) / (lam + beta) on (f, z, x, xprev) = (f(v), v, x, u)
        self.v_coef = _coef(lam, 0, beta, beta, lam) / (lam + beta).view(-1, 1)
        # u <- u - v + x_{k+1} on (f, z, x, xprev) = (v, u, x_k, x_{k+1}): the change sums
        self.u_coef = _coef(-1, 1, 0, 1, lam)
        x0 = problem.x0
        return REDADMMState(x=x0, v=x0, u=torch.zeros_like(x0))

    def step(self, problem: Problem, state: REDADMMState, k: int) -> REDADMMState:
        backend = problem.backend
        x = problem.data.prox(state.v - state.u, self.gamma, backend=backend, check=False)
        v = state.v
        for _ in range(self.params.inner_iter):
            f = problem.denoise(v, self.sigma_d)
            v, _ = pnp_update(f, v, x, state.u, self.v_coef, backend=backend)
        u, sums = pnp_update(v, state.u, state.x, x, self.u_coef, backend=backend)
        # x alone can stand still while v moves (the prox of a partial isometry keeps x_0 = A^T y
        # at the first step), so the primal residual ||x_{k+1} - v_{k+1}|| = ||u_{k+1} - u_k||
        # joins the change: the run stops where both x and the constraint x = v have settled
        ref = sums[:, 2].sqrt().clamp_min(torch.finfo(sums.dtype).tiny)
        primal = (x - v).flatten(1).norm(dim=1) / ref
        rel = torch.maximum(rel_change_from_sums(sums), primal)
        return REDADMMState(x=x, v=v, u=u, rel_change=rel)


@dataclass
class REDPGParams:
    """red-pg and red-apg. lam: regularisation weight > 0 (default 1 / sigma_d^2); L: the step
    parameter > 0 (default 1, the papers' choice; the prox weight is lam L); sigma_d: denoiser
    strength (default max(1.5 sigma, 7.65/255), tuned here). Floats or length-B tensors.
    restart: red-apg's momentum restart where the step grows (default True; red-pg, which has
    no momentum, refuses it rather than ignore it). See the module docstring."""

    lam: PerImage | None = None
    L: PerImage = 1.0
    sigma_d: PerImage | None = None
    restart: bool | None = None  # None: True for red-apg


@dataclass
class REDDPGParams:
    """red-dpg. lam: regularisation weight > 0 (default 1 / sigma_d^2); L0, Lf: the first and
    the limiting L of the schedule L_k = 1 / (1/Lf + (1/L0 - 1/Lf) / sqrt(k + 1)), both > 0
    (defaults 0.2 and 2, Reehorst & Schniter's experiments); sigma_d: denoiser strength
    (default max(1.5 sigma, 7.65/255), tuned here). Floats or length-B tensors; see the module
    docstring."""

    lam: PerImage | None = None
    L0: PerImage = 0.2
    Lf: PerImage = 2.0
    sigma_d: PerImage | None = None


@dataclass
class REDPGState:
    x: torch.Tensor  # x_k, the data-prox iterate, the output
    v: torch.Tensor  # v_{k+1}, the next prox centre
    t: torch.Tensor  # [B] t_k of the momentum sequence
    rel_change: torch.Tensor | None = None
    step2: torch.Tensor | None = None  # [B] ||x_k - x_{k-1}||^2, for red-apg's restart


class REDPG(_RED):
    """RED proximal gradient; see the module docstring."""

    name = "red-pg"
    Params = REDPGParams
    accelerated = False

    def schedule(self, problem: Problem) -> None:
        """Resolve L (red-pg, red-apg: L_k = L); ``L_at(k)`` gives L_k, [B]."""
        self.L = _per_image(problem, "L", self.params.L, positive=True)

    def L_at(self, k: int) -> torch.Tensor:
        return self.L

    def _v_coef(self, L: torch.Tensor) -> torch.Tensor:
        """v = (1/L) f(z) - ((1 - L)/L) z on (f, z): [B, 4]."""
        zero = torch.zeros_like(L)
        return torch.stack([1 / L, (L - 1) / L, zero, zero], -1)

    def init(self, problem: Problem) -> REDPGState:
        self.sigma_d = _sigma_d(problem, self.params.sigma_d)
        lam = _lam(problem, self.params.lam, self.sigma_d)
        self.schedule(problem)
        # gamma_k = 1 / (lam L_k sigma_n^2); L_k and the v coefficients are made per iteration
        # (red-dpg's change with k), so that any max_iter costs no memory
        self.prox_weight = lam * _noise(problem) ** 2
        x0 = problem.x0
        f = problem.denoise(x0, self.sigma_d)
        v, _ = pnp_update(f, x0, None, None, self._v_coef(self.L_at(0)), backend=problem.backend)
        return REDPGState(
            x=x0, v=v, t=torch.ones_like(lam), step2=torch.full_like(lam, float("inf"))
        )

    def step(self, problem: Problem, state: REDPGState, k: int) -> REDPGState:
        backend = problem.backend
        gamma = 1 / (self.prox_weight * self.L_at(k))
        v_coef = self._v_coef(self.L_at(k + 1))
        x = problem.data.prox(state.v, gamma, backend=backend, check=False)
        t = state.t
        if self.accelerated:
            t = (1 + torch.sqrt(1 + 4 * state.t**2)) / 2
            m = (state.t - 1) / t
            # z = (1 + m) x_k - m x_{k-1} on (f, x, xprev) = (x_k, x_{k-1}, x_k): the change sums
            z, sums = pnp_update(x, x, state.x, x, _coef(1 + m, 0, -m, 0, m), backend=backend)
            f = problem.denoise(z, self.sigma_d)
            v, _ = pnp_update(f, z, None, None, v_coef, backend=backend)
            if self.restart:
                t = restarted(t, sums[:, 1], state.step2)
        else:
            f = problem.denoise(x, self.sigma_d)
            v, sums = pnp_update(f, x, state.x, x, v_coef, backend=backend)
        return REDPGState(x=x, v=v, t=t, rel_change=rel_change_from_sums(sums), step2=sums[:, 1])


class REDAPG(REDPG):
    """RED accelerated proximal gradient (FISTA momentum); see the module docstring."""

    name = "red-apg"
    accelerated = True


class REDDPG(REDPG):
    """RED proximal gradient with the dynamic L_k of Reehorst & Schniter; see the module
    docstring."""

    name = "red-dpg"
    Params = REDDPGParams

    def schedule(self, problem: Problem) -> None:
        L0 = _per_image(problem, "L0", self.params.L0, positive=True)
        Lf = _per_image(problem, "Lf", self.params.Lf, positive=True)
        self.inv_Lf, self.inv_gap = 1 / Lf, 1 / L0 - 1 / Lf

    def L_at(self, k: int) -> torch.Tensor:
        """L_k = 1 / (1/Lf + (1/L0 - 1/Lf) / sqrt(k + 1)): [B]."""
        return 1 / (self.inv_Lf + self.inv_gap / math.sqrt(k + 1))


METHODS = (REDSD, REDFP, REDADMM, REDPG, REDAPG, REDDPG, REDGD)

__all__ = [
    "METHODS",
    "REDADMMParams",
    "REDDPGParams",
    "REDFPParams",
    "REDPGParams",
    "REDSDParams",
]

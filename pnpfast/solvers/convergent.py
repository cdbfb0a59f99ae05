"""Provably convergent PnP: GS-PnP with per-image backtracking, Prox-PnP (PGD and DRS) and
PnP-ReG.

S. Hurault, A. Leclaire, N. Papadakis, "Gradient Step Denoiser for convergent Plug-and-Play",
ICLR 2022. With the gradient-step denoiser D_sigma = I - grad g_sigma
(``pnpfast.denoisers.GradientStep``) PnP becomes proximal gradient descent on the explicit
objective

    F(x) = f(x) + lam g_sigma(x),       f(x) = 1/2 ||A x - y||^2,

    x_{k+1} = prox_{tau f}(x_k - tau lam grad g_sigma(x_k)),     x_0 = prox_{tau f}(x0),

and a step is accepted only with sufficient decrease,

    F(x_k) - F(x_{k+1}) >= (gamma / tau) ||x_k - x_{k+1}||^2,

else tau <- eta tau for that image and its step is redone (tau carries over to the next
iteration, as in the paper). Every image has its own tau and backtracks on its own: a retry
evaluates the denoiser on the images that retry only, so a batch of images with different
kernels and noise levels gives what each image gives alone. F never increases: a candidate that
would raise F is never taken (an image whose candidates change F by less than ``tol`` relative
stops instead). The stopping rule is the relative change of F, |F(x_k) - F(x_{k+1})| / F(x_k)
< tol; ``Result.history["objective"]`` holds F per iteration and image.

Defaults: lam = 0.05, sigma_d = max(2.6 sigma, 15.3/255) (the denoiser's noise level, from the
noise level sigma of y; tuned here with the shipped gradient-step denoiser on CBSD432 crops,
benchmarks/results/defaults.jsonl), tau = 1 / lam, gamma = 0.1, eta = 0.9, up to 400
iterations, tol = 1e-5. The paper's lam = 0.1, sigma_d = 1.8 sigma: with the shipped network,
whose g is far from convex at low sigma_d, F converged at 2.55/255 to points up to 5 dB below
an early iterate (3 of the 8 tuning crops with the sharpest vivid edges, ``--select edges``),
and sigma_d = 2 sigma collapsed at 7.65/255 on 2 of them (7 with lam = 0.05); the defaults slid on none of the
tuning crops at either level and lost 1 dB to the paper's settings on the ordinary ones at
2.55/255 (none at 7.65/255). The output, as in the paper, is the last gradient step
x_K - tau lam grad g_sigma(x_K) (= D_sigma(x_K) when tau lam = 1).

Prox-PnP (Hurault, Leclaire, Papadakis, "Proximal denoiser for convergent plug-and-play
optimization with nonconvex regularization", ICML 2022): trained with ||Hess g_sigma|| < 1, the
gradient-step denoiser is the proximal map of a weakly convex phi_sigma, with
phi_sigma(D_sigma(z)) = g_sigma(z) - 1/2 ||z - D_sigma(z)||^2. The relaxed denoiser
D_alpha = I - alpha grad g_sigma is the one of the potential alpha g_sigma, so below phi is
evaluated with alpha g_sigma (g_sigma itself when alpha = 1, the paper's PGD setting), and the
methods minimise F = f + phi / lam:

* "prox-pnp-pgd":  z_k = x_k - lam A^T (A x_k - y),  x_{k+1} = D_alpha(z_k),
  F(x_{k+1}) = f(x_{k+1}) + (alpha g_sigma(z_k) - 1/2 ||z_k - x_{k+1}||^2) / lam, with lam ||A^T A|| < 1
  for the theory (< 2 is enforced); stop on the relative change of F.
  Defaults (the paper's deblurring): lam = 0.99, sigma_d = max(sigma / 2, 5/255) (the paper
  floors at 1.9/255; 5/255 is the lowest level at which the shipped proximal denoiser's
  ||Hess g|| < 1 was checked), alpha = 1.
* "prox-pnp-drs":  y_k = D_alpha(w_k),  z_k = prox_{lam f}(2 y_k - w_k),  w_{k+1} = w_k + beta (z_k - y_k)
  (beta the relaxation, 1 for plain DRS), F(y_k) = f(y_k) + (alpha g_sigma(w_k) - 1/2 ||w_k - y_k||^2) / lam,
  and the stopping rule reads the relative change of the paper's Lyapunov function
  Psi_k = f(z_k) + (alpha g_sigma(w_k) - 1/2 ||w_k - y_k||^2 + <y_k - w_k, y_k - z_k>
  + 1/2 ||y_k - z_k||^2) / lam.
  The output is y. The paper's deblurring settings by noise level 2.55, 7.65, 12.75 /255 are
  lam = 5, 1.5, 1 and sigma_d = 2, 1, 0.75 times the noise level, alpha = 0.5; the default lam
  follows them as lam = (12.75/255) / max(sigma, 2.55/255) (5, 1.67, 1 at those levels; on
  CBSD432 tuning crops with the shipped proximal denoiser lam = 5 was 1.6 dB better than 1.5 at
  2.55/255 and 1.3 dB worse at 7.65/255, benchmarks/results/defaults.jsonl), with sigma_d =
  sigma, alpha = 0.5, beta = 1.
  Super-resolution (a ``SuperResolution`` of factor >= 2): both floor sigma_d at 15/255
  (``engine.SR_SIGMA_D``: at the deblurring levels the unmeasured part of the image drifts).
  Both: up to 300 iterations, tol = 1e-6 (the paper runs up to 1000 with 1e-8; on the tuning
  crops the PSNR after 100 iterations was within 0.05 dB of that after 200, where the relative
  change was about 1e-5, so 1000 iterations bought nothing and cost 8 minutes for one 256x256
  image on a CPU); ``Result.history["objective"]`` holds F.

PnP-ReG (Fermanian, Le Pendu, Guillemot, "PnP-ReG: Learned Regularizing Gradient for
Plug-and-Play Gradient Descent", SIAM J. Imaging Sci. 2023): a network G trained as the gradient of
the regulariser, sigma^2 G(D_sigma(z)) ~ z - D_sigma(z), drives gradient descent on
1/2 ||A x - y||^2 + lam sigma^2 R(x):

* "pnp-reg":  x_{k+1} = x_k - mu (A^T (A x_k - y) + lam sigma^2 G(x_k)),
  sigma the noise level of y, G called as G(x, 0) (it takes no noise level); mu in (0, 2 / L)
  (default 1 / L, L = ||A^T A||), lam = 1. Stops on the relative change of x (default tol 1e-5,
  up to 500 iterations).
"""

import math
from dataclasses import dataclass

import torch

from pnpfast import _validate
from pnpfast.denoisers import ByChannels
from pnpfast.profiling import nvtx_range
from pnpfast.solvers.engine import SR_MAX_ITER, Problem, sigma_d_floor
from pnpfast.solvers.proximal_gradient import step_size

PerImage = float | torch.Tensor


@dataclass
class GSPnPParams:
    """lam: weight of g_sigma (> 0; default 0.05, tuned here; the paper's 0.1); sigma_d: the
    denoiser's noise level (default max(2.6 sigma, 15.3/255), tuned here; the paper's 1.8 sigma);
    tau: starting step (default 1 / lam); gamma (> 0) and eta (in (0, 1)): the sufficient-decrease
    constant and the step shrink factor of the backtracking; max_backtracks: retries per iteration
    before an image stops. lam, sigma_d and tau may be floats or length-B tensors."""

    lam: PerImage = 0.05
    sigma_d: PerImage | None = None
    tau: PerImage | None = None
    gamma: float = 0.1
    eta: float = 0.9
    max_backtracks: int = 50


@dataclass
class GSPnPState:
    x: torch.Tensor
    objective: torch.Tensor  # [B] F(x)
    potential: torch.Tensor  # [B] g_sigma(x)
    grad: torch.Tensor  # grad g_sigma(x)
    tau: torch.Tensor  # [B]
    rel_change: torch.Tensor | None = None  # [B] relative change of F


#: eta^1000 < 1e-45 for the default eta = 0.9: more retries only burn denoiser calls
MAX_BACKTRACKS = 1000


def _check_scalar(
    name: str, value, low: float, high: float | None, *, high_closed: bool = False
) -> float:
    """A Python number in (low, high) (or (low, high] with high_closed; > low and finite
    without high): TypeError for another type (a tensor included: these are not per image),
    ValueError out of range."""
    return _validate.number(
        name,
        value,
        low,
        math.inf if high is None else high,
        low_open=True,
        high_open=not high_closed,
    )


def _checked_potential(denoiser, out, x: torch.Tensor, rows: int):
    """(potential [rows], grad like x) from ``potential_and_gradient``, their form checked
    (metadata only: no pass over the data), so that a wrong output is named here rather than
    by a broadcast deep in the step."""
    what = f"{type(denoiser).__name__}.potential_and_gradient"
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(
            f"{what} returned {type(out).__name__}, not a tuple (potential [B], gradient "
            f"[B, C, H, W])"
        )
    potential, grad = out
    for name, t, shape in (("potential", potential, (rows,)), ("gradient", grad, x.shape)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what} returned a {name} of type {type(t).__name__}, not a tensor")
        if tuple(t.shape) != tuple(shape):
            raise ValueError(
                f"{what} returned a {name} of shape {tuple(t.shape)} for input of shape "
                f"{tuple(x.shape)}; it must be {tuple(shape)}"
            )
        if t.dtype != x.dtype or t.device != x.device:
            raise TypeError(
                f"{what} returned a {name} of {t.dtype} on {t.device} for input of {x.dtype} "
                f"on {x.device}; it must match the input"
            )
    return potential, grad


class GSPnP:
    name = "gs-pnp"
    Params = GSPnPParams
    default_max_iter = 400
    default_tol = 1e-5
    default_denoiser = "gradient-step"
    takes_active = True
    sr_max_iter = SR_MAX_ITER  # engine.SR_MAX_ITER

    def __init__(self, params: GSPnPParams, max_iter: int):
        self.params = params
        self.gamma = _check_scalar("gamma", params.gamma, 0.0, None)
        self.eta = _check_scalar("eta", params.eta, 0.0, 1.0)
        n = params.max_backtracks
        _validate.integer("max_backtracks", n, 0, MAX_BACKTRACKS)

    def _objective(self, problem: Problem, x, potential, rows=None) -> torch.Tensor:
        lam = self.lam if rows is None else self.lam[rows]
        f = problem.data.value(x)
        return (f if rows is None else f[rows]) + lam * potential

    def _potential(self, problem: Problem, x: torch.Tensor, sigma: torch.Tensor):
        with nvtx_range("pnpfast/denoise"):
            out = problem.denoiser.potential_and_gradient(x, sigma)
        return _checked_potential(problem.denoiser, out, x, x.shape[0])

    def init(self, problem: Problem) -> GSPnPState:
        _needs_potential(self, problem)
        B, y, p = problem.batch, problem.y, self.params
        self.lam = _validate.per_image("lam", p.lam, B, y, positive=True)
        sigma_d = p.sigma_d
        if sigma_d is None:
            sigma_d = (2.6 * problem.sigma).clamp_min(15.3 / 255)
        self.sigma_d = _validate.per_image("sigma_d", sigma_d, B, y, nonnegative=True)
        tau = 1 / self.lam if p.tau is None else p.tau
        tau = _validate.per_image("tau", tau, B, y, positive=True).clone()
        x = problem.data.prox(problem.x0, tau, backend=problem.backend, check=False)
        potential, grad = self._potential(problem, x, self.sigma_d)
        objective = self._objective(problem, x, potential)
        return GSPnPState(x=x, objective=objective, potential=potential, grad=grad, tau=tau)

    def _candidate(self, problem: Problem, state: GSPnPState, tau: torch.Tensor) -> torch.Tensor:
        z = state.x - (tau * self.lam).view(-1, 1, 1, 1) * state.grad
        return problem.data.prox(z, tau, backend=problem.backend, check=False)

    def step(self, problem: Problem, state: GSPnPState, k: int, active: torch.Tensor) -> GSPnPState:
        x, F = state.x, state.objective
        tau = state.tau.clone()
        new = GSPnPState(
            x=x.clone(),
            objective=F.clone(),
            potential=state.potential.clone(),
            grad=state.grad.clone(),
            tau=tau,
            rel_change=torch.zeros_like(F),
        )
        todo = active.clone()
        tiny = torch.finfo(F.dtype).tiny
        for _ in range(self.params.max_backtracks + 1):
            rows = todo.nonzero().squeeze(1)  # the host learns which images still backtrack
            if rows.numel() == 0:
                break
            xp = self._candidate(problem, state, tau)
            xs = xp if rows.numel() == len(todo) else xp[rows]
            potential, grad = self._potential(problem, xs, self.sigma_d[rows])
            Fp = self._objective(problem, xp, potential, rows)
            # a NaN or Inf candidate ends the image's backtracking with a NaN rel_change, which
            # the engine reports at its next host synchronisation
            bad = ~torch.isfinite(Fp)
            new.rel_change[rows[bad]] = math.nan
            dF = F[rows] - Fp
            dx = (xs - x[rows]).flatten(1).pow(2).sum(1)
            small = dF.abs() <= problem.tol * F[rows].abs()
            accept = (dF >= self.gamma / tau[rows] * dx) | (small & (dF >= 0))
            stay = small & ~accept  # every candidate would raise F, by a negligible amount
            take = rows[accept]
            new.x[take] = xs[accept]
            new.objective[take] = Fp[accept]
            new.potential[take] = potential[accept]
            new.grad[take] = grad[accept]
            new.rel_change[take] = dF[accept].abs() / F[take].abs().clamp_min(tiny)
            retry = rows[~(accept | stay | bad)]
            tau[retry] *= self.eta
            todo[rows[accept | stay | bad]] = False
        # images that ran out of backtracks keep x and stop (rel_change stays 0)
        return new

    def output(self, state: GSPnPState) -> torch.Tensor:
        return state.x - (state.tau * self.lam).view(-1, 1, 1, 1) * state.grad


def _sq(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).pow(2).sum(1)


def _rel(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """|new - old| / |old| per image; 1 where old is not finite (the first iteration), NaN
    where new is not finite (the engine's sign of divergence)."""
    tiny = torch.finfo(new.dtype).tiny
    rel = (new - old).abs() / old.abs().clamp_min(tiny)
    rel = torch.where(torch.isfinite(old), rel, torch.ones_like(rel))
    return torch.where(torch.isfinite(new), rel, math.nan)


def _needs_potential(method, problem: Problem) -> None:
    """TypeError naming the shipped denoiser to use unless the denoiser has a potential for
    images with the problem's channel count."""
    denoiser = problem.denoiser
    found = callable(getattr(denoiser, "potential_and_gradient", None))
    what = type(denoiser).__name__
    if found and isinstance(denoiser, ByChannels):
        # a shipped gray+color pair: only its gradient-step networks have a potential
        channels = problem.x0.shape[1]
        inner = denoiser.network(channels)
        found = callable(getattr(inner, "potential_and_gradient", None))
        what = f"{what} whose {channels}-channel network is a {type(inner).__name__}"
    if not found:
        raise TypeError(
            f"method {method.name!r} needs a gradient-step denoiser with potential_and_gradient("
            f'x, sigma): pass pnpfast.denoisers.load("{method.default_denoiser}") (what '
            f"denoiser=None loads) or pnpfast.denoisers.GradientStep(network); got {what}"
        )


@dataclass
class ProxPnPParams:
    """lam: the data weight (also the data step of PGD; default 0.99 / ||A^T A|| for PGD,
    (12.75/255) / max(sigma, 2.55/255) for DRS, following the paper's per-level settings);
    sigma_d: the denoiser's noise level (default max(sigma / 2, 5/255) for PGD, sigma for DRS;
    floored at 15/255 for a SuperResolution of factor >= 2, engine.SR_SIGMA_D);
    alpha in (0, 1]: the relaxed denoiser I - alpha grad g (default 1 for PGD, 0.5 for DRS);
    beta in (0, 2): the DRS relaxation (default 1; prox-pnp-pgd refuses it rather than ignore it). lam and sigma_d may be floats
    or length-B tensors."""

    lam: PerImage | None = None
    sigma_d: PerImage | None = None
    alpha: float | None = None
    beta: float | None = None  # None: 1 for prox-pnp-drs


@dataclass
class ProxPGDState:
    x: torch.Tensor
    objective: torch.Tensor  # [B] F(x)
    rel_change: torch.Tensor | None = None


class ProxPnPPGD:
    name = "prox-pnp-pgd"
    Params = ProxPnPParams
    default_max_iter = 300
    default_tol = 1e-6
    default_denoiser = "proximal"
    sr_max_iter: int | None = SR_MAX_ITER
    default_lam = 0.99
    default_alpha = 1.0
    relaxed = False  # takes beta

    def __init__(self, params: ProxPnPParams, max_iter: int):
        self.params = params
        alpha = self.default_alpha if params.alpha is None else params.alpha
        self.alpha = _check_scalar("alpha", alpha, 0.0, 1.0, high_closed=True)
        if params.beta is not None and not self.relaxed:
            raise TypeError(
                f"method {self.name!r} does not take beta: it is prox-pnp-drs's relaxation"
            )
        beta = 1.0 if params.beta is None else params.beta
        self.beta = _check_scalar("beta", beta, 0.0, 2.0)

    def _sigma_d(self, problem: Problem) -> torch.Tensor:
        # the paper floors at 1.9/255; the shipped proximal denoiser's ||Hess g|| < 1 is
        # checked from 5/255 up (README "Convergent PnP"); super-resolution: SR_SIGMA_D
        return (0.5 * problem.sigma).clamp_min(sigma_d_floor(problem, 5 / 255))

    def _lam(self, problem: Problem) -> torch.Tensor:
        return step_size("lam", self.params.lam, problem, default=self.default_lam)

    def init(self, problem: Problem) -> ProxPGDState:
        _needs_potential(self, problem)
        B, y, p = problem.batch, problem.y, self.params
        self.lam = self._lam(problem)
        sigma_d = self._sigma_d(problem) if p.sigma_d is None else p.sigma_d
        self.sigma_d = _validate.per_image("sigma_d", sigma_d, B, y, nonnegative=True)
        inf = torch.full((B,), float("inf"), dtype=y.dtype, device=y.device)
        return ProxPGDState(x=problem.x0, objective=inf)

    def _denoise(self, problem: Problem, z: torch.Tensor):
        """(D_alpha(z), g_sigma(z))."""
        with nvtx_range("pnpfast/denoise"):
            out = problem.denoiser.potential_and_gradient(z, self.sigma_d)
        potential, grad = _checked_potential(problem.denoiser, out, z, z.shape[0])
        return z - self.alpha * grad, potential

    def _phi(self, z, out, potential) -> torch.Tensor:
        """phi(out) / lam with out = D_alpha(z): (alpha g(z) - 1/2 ||z - out||^2) / lam
        (D_alpha = I - grad(alpha g) is the gradient-step denoiser of alpha g)."""
        return (self.alpha * potential - 0.5 * _sq(z - out)) / self.lam

    def step(self, problem: Problem, state: ProxPGDState, k: int) -> ProxPGDState:
        z = problem.data.grad_step(state.x, self.lam, backend=problem.backend, check=False)
        x, potential = self._denoise(problem, z)
        F = problem.data.value(x) + self._phi(z, x, potential)
        return ProxPGDState(x=x, objective=F, rel_change=_rel(F, state.objective))

    def output(self, state) -> torch.Tensor:
        return state.x


@dataclass
class ProxDRSState:
    x: torch.Tensor  # y_k, the denoised iterate (the output)
    w: torch.Tensor  # the DRS variable
    objective: torch.Tensor  # [B] F(y_k)
    lyapunov: torch.Tensor  # [B] Psi_k
    rel_change: torch.Tensor | None = None


class ProxPnPDRS(ProxPnPPGD):
    name = "prox-pnp-drs"
    default_alpha = 0.5
    sr_max_iter = None  # its iterates stayed at their best with SR_SIGMA_D (issue 19)
    relaxed = True

    def _sigma_d(self, problem: Problem) -> torch.Tensor:
        return problem.sigma.clamp_min(sigma_d_floor(problem, 0.0))

    def _lam(self, problem: Problem) -> torch.Tensor:
        lam = self.params.lam
        if lam is None:  # the paper's lam = 5, 1.5, 1 at 2.55, 7.65, 12.75 /255, as one rule
            lam = (12.75 / 255) / problem.sigma.clamp_min(2.55 / 255)
        return _validate.per_image("lam", lam, problem.batch, problem.y, positive=True)

    def init(self, problem: Problem) -> ProxDRSState:
        s = super().init(problem)
        return ProxDRSState(x=s.x, w=s.x, objective=s.objective, lyapunov=s.objective.clone())

    def step(self, problem: Problem, state: ProxDRSState, k: int) -> ProxDRSState:
        w = state.w
        y, potential = self._denoise(problem, w)
        z = problem.data.prox(2 * y - w, self.lam, backend=problem.backend, check=False)
        phi = self._phi(w, y, potential)
        F = problem.data.value(y) + phi
        inner = (y - w).flatten(1).mul((y - z).flatten(1)).sum(1)
        psi = problem.data.value(z) + phi + (inner + 0.5 * _sq(y - z)) / self.lam
        return ProxDRSState(
            x=y,
            w=w + self.beta * (z - y),
            objective=F,
            lyapunov=psi,
            rel_change=_rel(psi, state.lyapunov),
        )


@dataclass
class PnPReGParams:
    """mu: step in (0, 2 / L) (default 1 / L); lam: weight of the learned regulariser
    (default 1). Floats or length-B tensors."""

    mu: PerImage | None = None
    lam: PerImage = 1.0


@dataclass
class PnPReGState:
    x: torch.Tensor


class PnPReG:
    name = "pnp-reg"
    Params = PnPReGParams
    default_max_iter = 500
    default_tol = 1e-5
    default_denoiser = None  # no regulariser-gradient network G is shipped

    def __init__(self, params: PnPReGParams, max_iter: int):
        self.params = params

    def init(self, problem: Problem) -> PnPReGState:
        B, y = problem.batch, problem.y
        self.mu = step_size("mu", self.params.mu, problem)
        lam = _validate.per_image("lam", self.params.lam, B, y, nonnegative=True)
        self.weight = (lam * problem.sigma**2).view(-1, 1, 1, 1)
        self.zero = torch.zeros(B, dtype=y.dtype, device=y.device)
        return PnPReGState(x=problem.x0)

    def step(self, problem: Problem, state: PnPReGState, k: int) -> PnPReGState:
        x = state.x
        G = problem.denoise(x, self.zero)
        v = problem.data.grad_step(x, self.mu, backend=problem.backend, check=False)
        return PnPReGState(x=v - self.mu.view(-1, 1, 1, 1) * self.weight * G)

    def output(self, state: PnPReGState) -> torch.Tensor:
        return state.x


METHODS = (GSPnP, ProxPnPPGD, ProxPnPDRS, PnPReG)

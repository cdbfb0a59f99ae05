"""Provably convergent PnP with a gradient-step denoiser: GS-PnP with per-image backtracking.

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

Defaults: the paper's deblurring settings, lam = 0.1, sigma_d = 1.8 sigma (the denoiser's noise
level, from the noise level sigma of y), tau = 1 / lam, gamma = 0.1, eta = 0.9, up to 400
iterations, tol = 1e-5. The output, as in the paper, is the last gradient step
x_K - tau lam grad g_sigma(x_K) (= D_sigma(x_K) when tau lam = 1).
"""

from dataclasses import dataclass

import torch

from pnpfast import _validate
from pnpfast.profiling import nvtx_range
from pnpfast.solvers.engine import Problem

PerImage = float | torch.Tensor


@dataclass
class GSPnPParams:
    """lam: weight of g_sigma (> 0); sigma_d: the denoiser's noise level (default 1.8 sigma);
    tau: starting step (default 1 / lam); gamma (> 0) and eta (in (0, 1)): the sufficient-decrease
    constant and the step shrink factor of the backtracking; max_backtracks: retries per iteration
    before an image stops. lam, sigma_d and tau may be floats or length-B tensors."""

    lam: PerImage = 0.1
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


def _check_scalar(name: str, value, low: float, high: float | None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and value > low and (high is None or value < high)
    if not ok:
        where = f"in ({low}, {high})" if high is not None else f"> {low}"
        raise ValueError(f"{name} must be a number {where}, not {value!r}")
    return float(value)


class GSPnP:
    name = "gs-pnp"
    Params = GSPnPParams
    default_max_iter = 400
    default_tol = 1e-5
    takes_active = True

    def __init__(self, params: GSPnPParams, max_iter: int):
        self.params = params
        self.tol = self.default_tol  # pnpfast.solve sets the tol of the call
        self.gamma = _check_scalar("gamma", params.gamma, 0.0, None)
        self.eta = _check_scalar("eta", params.eta, 0.0, 1.0)
        if not isinstance(params.max_backtracks, int) or params.max_backtracks < 0:
            raise ValueError(f"max_backtracks must be an int >= 0, not {params.max_backtracks!r}")

    def _objective(self, problem: Problem, x, potential, rows=None) -> torch.Tensor:
        lam = self.lam if rows is None else self.lam[rows]
        f = problem.data.value(x)
        return (f if rows is None else f[rows]) + lam * potential

    def _potential(self, problem: Problem, x: torch.Tensor, sigma: torch.Tensor):
        with nvtx_range("pnpfast/denoise"):
            return problem.denoiser.potential_and_gradient(x, sigma)

    def init(self, problem: Problem) -> GSPnPState:
        if not callable(getattr(problem.denoiser, "potential_and_gradient", None)):
            raise TypeError(
                "method 'gs-pnp' needs a gradient-step denoiser with potential_and_gradient(x, "
                f"sigma), e.g. pnpfast.denoisers.GradientStep(network); got "
                f"{type(problem.denoiser).__name__}"
            )
        B, y, p = problem.batch, problem.y, self.params
        self.lam = _validate.per_image("lam", p.lam, B, y, positive=True)
        sigma_d = 1.8 * problem.sigma if p.sigma_d is None else p.sigma_d
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
            xs = xp[rows]
            potential, grad = self._potential(problem, xs, self.sigma_d[rows])
            Fp = self._objective(problem, xp, potential, rows)
            dF = F[rows] - Fp
            dx = (xs - x[rows]).flatten(1).pow(2).sum(1)
            small = dF.abs() <= self.tol * F[rows].abs()
            accept = (dF >= self.gamma / tau[rows] * dx) | (small & (dF >= 0))
            stay = small & ~accept  # every candidate would raise F, by a negligible amount
            take = rows[accept]
            new.x[take] = xs[accept]
            new.objective[take] = Fp[accept]
            new.potential[take] = potential[accept]
            new.grad[take] = grad[accept]
            new.rel_change[take] = dF[accept].abs() / F[take].abs().clamp_min(tiny)
            retry = rows[~(accept | stay)]
            tau[retry] *= self.eta
            todo[rows[accept | stay]] = False
        # images that ran out of backtracks keep x and stop (rel_change stays 0)
        return new

    def output(self, state: GSPnPState) -> torch.Tensor:
        return state.x - (state.tau * self.lam).view(-1, 1, 1, 1) * state.grad


METHODS = (GSPnP,)

"""Splitting methods: PnP-HQS (DPIR) and PnP-ADMM, with f(x) = 1/2 ||A x - y||^2.

HQS (Zhang et al., "Plug-and-Play Image Restoration with Deep Denoiser Prior", TPAMI 2021):

    x_k = prox_{f / alpha_k}(z_{k-1}) = argmin_x f(x) + alpha_k / 2 ||x - z_{k-1}||^2
    z_k = D(x_k, sigma_k)

with sigma_k log-spaced from ``sigma_start`` (49/255) down to ``sigma_end`` (the noise level),
alpha_k = lam * max(sigma, 0.255/255)^2 / sigma_k^2, lam = 0.23, 8 iterations, z_0 = x0 (A^T y
by default): DPIR's deblurring defaults. Each image has its own schedule when sigma is per image.
With a ``SuperResolution`` operator of factor s >= 2, DPIR's super-resolution recipe
(``main_dpir_sisr.py``) replaces what the caller leaves unset: 24 iterations, sigma_end =
max(sigma, s/255) (its ``modelSigma2 = max(sf, noise * 255)``) and z_0 = ``A.upsample(y)``, the
bicubic interpolation of y placed on the operator's grid (DPIR: cv2 bicubic resize, shifted by
(s - 1) / 2 pixels for kernels centred on the kept pixel); lam and sigma_start are unchanged.

ADMM (Venkatakrishnan, Bouman, Wohlberg, GlobalSIP 2013; Chan, Wang, Elgendy, IEEE TCI 2017):

    v_{k+1} = prox_{gamma f}(z_k - u_k)
    z_{k+1} = D(v_{k+1} + u_k, sigma_d)
    u_{k+1} = u_k + v_{k+1} - z_{k+1}

with gamma = sigma_d^2 / (lam sigma^2) unless given (the coupling of HQS at a fixed sigma_d:
with D = prox of sigma_d^2 phi, ADMM minimises f + lam sigma^2 phi, so lam = 1 is the MAP
weighting), lam = 1 and sigma_d = 5 max(sigma, 0.255/255) unless given (tuned here on CBSD432
crops with the shipped conditional denoiser: a strong denoiser with a large prox step gamma =
25 / lam, within about 0.5 dB of HQS there, where sigma_d = sigma and lam = 0.23 were 2.5-3.5 dB
under it; benchmarks/results/defaults.jsonl); the output is z. The dual update is one fused
``pnp_update`` pass that also yields the relative change of z for the stopping rule.

DRS (Douglas-Rachford splitting; Lions & Mercier, SIAM J. Numer. Anal. 1979; as PnP, e.g.
Ryu et al., "Plug-and-Play Methods Provably Converge with Properly Trained Denoisers", ICML
2019), the data prox first (deepinv's ``optim.DRS`` with ``g_first=False``):

    u_{k+1} = prox_{gamma f}(z_k)
    x_{k+1} = D(2 u_{k+1} - z_k, sigma_d)
    z_{k+1} = z_k + beta (x_{k+1} - u_{k+1})

i.e. z_{k+1} = z_k + beta (D(2 prox_{gamma f}(z_k) - z_k) - prox_{gamma f}(z_k)), z_0 = x0
(A^T y by default), beta in (0, 2) the relaxation (1: plain DRS, z <- (z + R_D R_f z) / 2 with
the reflections R = 2 prox - I; beta < 1 damps). The output and the iterate the stopping rule
watches are the denoised x; at a fixed point x = u, so x solves x = D(x - gamma A^T (A x - y)),
the fixed point of ADMM with the same gamma and sigma_d (with beta = 1, DRS taken with the
denoiser first is ADMM itself, through s = v + u). The defaults are therefore ADMM's: sigma_d =
5 max(sigma, 0.255/255), gamma = sigma_d^2 / (lam sigma^2), lam = 1, beta = 1, 50 iterations,
tol 1e-4. The z update is one fused ``pnp_update`` pass whose sums give the relative change of x.
"""

from dataclasses import dataclass

import torch

from pnpfast import _validate
from pnpfast.operators.super_resolution import super_resolution_factor
from pnpfast.ops import pnp_update
from pnpfast.solvers.engine import Problem, rel_change_from_sums

SIGMA_FLOOR = 0.255 / 255  # DPIR's floor on the noise level in alpha_k
DPIR_SR_MAX_ITER = 24  # DPIR's super-resolution iterations (main_dpir_sisr.py)
ADMM_SIGMA_D_FACTOR = 5.0  # ADMM's default sigma_d / sigma, tuned here (see ADMMParams)


@dataclass
class HQSParams:
    """lam: regularisation weight in alpha_k; sigma_start, sigma_end: the denoiser schedule
    (sigma_end defaults to the noise level of y, and to max(sigma, s/255) for a
    ``SuperResolution`` of factor s >= 2, DPIR's SR recipe, which also runs 24 iterations from
    ``A.upsample(y)`` unless max_iter or x0 are given). Each may be a float or a length-B
    tensor."""

    lam: float | torch.Tensor = 0.23
    sigma_start: float | torch.Tensor = 49 / 255
    sigma_end: float | torch.Tensor | None = None


@dataclass
class HQSState:
    x: torch.Tensor  # z_k, the denoised iterate


class HQS:
    name = "hqs"
    Params = HQSParams
    default_denoiser = "conditional"
    default_max_iter = 8
    sr_max_iter = DPIR_SR_MAX_ITER
    default_tol = 0.0

    def __init__(self, params: HQSParams, max_iter: int):
        self.params = params
        self.max_iter = max_iter

    def schedule(self, problem: Problem) -> None:
        """Resolve the per-image schedule: sigma_k = exp(log s_0 + k / (K - 1) log(s_end / s_0))
        and alpha_k = lam max(sigma, floor)^2 / sigma_k^2 are computed at each step
        (``at``), so that any max_iter costs no memory."""
        B, y = problem.batch, problem.y
        lam = _validate.per_image("lam", self.params.lam, B, y, positive=True)
        start = _validate.per_image("sigma_start", self.params.sigma_start, B, y, positive=True)
        end_value = self.params.sigma_end
        if end_value is None:
            s = super_resolution_factor(problem.data.operator)
            end_value = problem.sigma.clamp_min(s / 255) if s else problem.sigma
        end = _validate.per_image("sigma_end", end_value, B, y, nonnegative=True).clamp_min(
            SIGMA_FLOOR
        )
        self.log_start = torch.log(start)
        self.log_ratio = torch.log(end) - self.log_start
        self.weight = lam * problem.sigma.clamp_min(SIGMA_FLOOR) ** 2  # alpha_k sigma_k^2

    def at(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigma_k, gamma_k = 1 / alpha_k) of iteration k (from 0), each [B]."""
        frac = 0.0 if self.max_iter == 1 else k / (self.max_iter - 1)
        sigma = torch.exp(self.log_start + frac * self.log_ratio)
        return sigma, 1 / (self.weight / sigma**2)

    def init(self, problem: Problem) -> HQSState:
        self.schedule(problem)
        return HQSState(x=problem.x0)

    def step(self, problem: Problem, state: HQSState, k: int) -> HQSState:
        sigma, gamma = self.at(k)
        x = problem.data.prox(state.x, gamma, backend=problem.backend, check=False)
        return HQSState(x=problem.denoise(x, sigma))

    def output(self, state: HQSState) -> torch.Tensor:
        return state.x


@dataclass
class ADMMParams:
    """sigma_d: denoiser strength (default 5 max(sigma, 0.255/255), tuned here on CBSD432 crops,
    see benchmarks/results/defaults.jsonl); gamma: prox step of the data term (default
    sigma_d^2 / (lam sigma^2)); lam: used only for that default (default 1, the MAP weighting
    f + sigma^2 phi for D = prox of sigma_d^2 phi), so giving both gamma and lam is an error."""

    sigma_d: float | torch.Tensor | None = None
    gamma: float | torch.Tensor | None = None
    lam: float | torch.Tensor | None = None  # None: 1


@dataclass
class ADMMState:
    x: torch.Tensor  # z, the denoised iterate
    v: torch.Tensor  # the data-prox iterate
    u: torch.Tensor  # the scaled dual variable
    rel_change: torch.Tensor | None = None  # [B] ||z_k - z_{k-1}|| / ||z_{k-1}||


class ADMM:
    name = "admm"
    Params = ADMMParams
    default_denoiser = "conditional"
    default_max_iter = 50
    default_tol = 1e-4

    def __init__(self, params: ADMMParams, max_iter: int):
        self.params = params

    def init(self, problem: Problem) -> ADMMState:
        B = problem.batch
        self.sigma_d, self.gamma = _sigma_d_and_gamma("admm", self.params, problem)
        x0 = problem.x0
        # u_{k+1} = (v_{k+1} + u_k) - z_{k+1}: coef (-1, 1, 0, 0) on (f, z) = (z_{k+1}, v + u)
        self.dual_coef = x0.new_tensor([-1.0, 1.0, 0.0, 0.0]).expand(B, 4).contiguous()
        return ADMMState(x=x0, v=x0, u=torch.zeros_like(x0))

    def step(self, problem: Problem, state: ADMMState, k: int) -> ADMMState:
        v = problem.data.prox(state.x - state.u, self.gamma, backend=problem.backend, check=False)
        w = v + state.u
        z = problem.denoise(w, self.sigma_d)
        # x = z_k, xprev = z_{k+1} give the change sums
        u, sums = pnp_update(z, w, state.x, z, self.dual_coef, backend=problem.backend)
        return ADMMState(x=z, v=v, u=u, rel_change=rel_change_from_sums(sums))

    def output(self, state: ADMMState) -> torch.Tensor:
        return state.x


def _sigma_d_and_gamma(name: str, params, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """admm's and drs's [B] denoiser level sigma_d (default 5 max(sigma, floor)) and data-prox
    weight gamma (``params.gamma``, default sigma_d^2 / (lam sigma^2)): one fixed point."""
    B, y = problem.batch, problem.y
    sigma_d = params.sigma_d
    if sigma_d is None:
        sigma_d = ADMM_SIGMA_D_FACTOR * problem.sigma.clamp_min(SIGMA_FLOOR)
    sigma_d = _validate.per_image("sigma_d", sigma_d, B, y, nonnegative=True)
    if params.gamma is not None and params.lam is not None:
        raise ValueError(
            f"{name} takes gamma or lam, not both: lam only sets the default gamma = "
            "sigma_d^2 / (lam sigma^2), so with gamma given it would be ignored"
        )
    if params.gamma is not None:
        return sigma_d, _validate.per_image("gamma", params.gamma, B, y, positive=True)
    lam = 1.0 if params.lam is None else params.lam
    lam = _validate.per_image("lam", lam, B, y, positive=True)
    noise = problem.sigma.clamp_min(SIGMA_FLOOR)
    return sigma_d, sigma_d.clamp_min(SIGMA_FLOOR) ** 2 / (lam * noise**2)


@dataclass
class DRSParams:
    """sigma_d: denoiser strength (default 5 max(sigma, 0.255/255), ADMM's); gamma: prox step
    of the data term (default sigma_d^2 / (lam sigma^2)); lam: used only for that default
    (default 1), so giving both gamma and lam is an error; beta: the relaxation, in (0, 2)
    (default 1, plain DRS). Each may be a float or a length-B tensor."""

    sigma_d: float | torch.Tensor | None = None
    gamma: float | torch.Tensor | None = None
    lam: float | torch.Tensor | None = None  # None: 1
    beta: float | torch.Tensor = 1.0


@dataclass
class DRSState:
    x: torch.Tensor  # x_k = D(2 u_k - z_{k-1}), the denoised iterate (the output)
    z: torch.Tensor  # the DRS variable z_k
    rel_change: torch.Tensor | None = None  # [B] ||x_k - x_{k-1}|| / ||x_{k-1}||


class DRS:
    name = "drs"
    Params = DRSParams
    default_denoiser = "conditional"
    default_max_iter = 50
    default_tol = 1e-4

    def __init__(self, params: DRSParams, max_iter: int):
        self.params = params

    def init(self, problem: Problem) -> DRSState:
        B, y = problem.batch, problem.y
        self.sigma_d, self.gamma = _sigma_d_and_gamma("drs", self.params, problem)
        beta = _validate.per_image("beta", self.params.beta, B, y, positive=True)
        too_large = [v for v in beta.tolist() if v >= 2]  # init only: one read of B numbers
        if too_large:
            raise ValueError(
                f"beta must be in (0, 2), the relaxation range of DRS, got {too_large[0]}"
            )
        x0 = problem.x0
        # z_{k+1} = z_k - beta u + beta x_{k+1}: coef (1, -beta, 0, beta) on (f, z, x, xprev) =
        # (z_k, u, x_k, x_{k+1}); x = x_k, xprev = x_{k+1} also give the change sums
        zero, one = torch.zeros_like(beta), torch.ones_like(beta)
        self.coef = torch.stack([one, -beta, zero, beta], dim=1).contiguous()
        return DRSState(x=x0, z=x0)

    def step(self, problem: Problem, state: DRSState, k: int) -> DRSState:
        u = problem.data.prox(state.z, self.gamma, backend=problem.backend, check=False)
        x = problem.denoise(2 * u - state.z, self.sigma_d)
        z, sums = pnp_update(state.z, u, state.x, x, self.coef, backend=problem.backend)
        return DRSState(x=x, z=z, rel_change=rel_change_from_sums(sums))

    def output(self, state: DRSState) -> torch.Tensor:
        return state.x


__all__ = ["ADMM", "DRS", "HQS", "ADMMParams", "DRSParams", "HQSParams"]

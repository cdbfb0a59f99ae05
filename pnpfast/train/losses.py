"""Training losses: the hook through which other training modes use the same loop.

A loss is called as ``loss(model, batch) -> (value, metrics)``: ``model`` the network being
trained, ``batch`` a ``pnpfast.train.data.Batch`` already on the training device, ``value`` a
scalar tensor to minimise, ``metrics`` a dict of floats or 0-d tensors written to the log (the
loop averages them over the logging interval). A loss that is a ``torch.nn.Module`` with
parameters of its own (a second network trained jointly, say) has them optimised, clipped and
checkpointed with the model's.

Register a new mode with ``register_loss(name, factory)``; ``TrainConfig(loss=name,
loss_options={...})`` then builds it as ``factory(**loss_options)``.
"""

from collections.abc import Callable

import torch

from pnpfast import _validate
from pnpfast.train.data import Batch

__all__ = [
    "LOSSES",
    "MSELoss",
    "NoiseWeightedMSELoss",
    "RegulariserGradientLoss",
    "SpectralPenaltyLoss",
    "make_loss",
    "register_loss",
]

LossFn = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict]]


def _denoise(model: torch.nn.Module, batch: Batch, sigma: torch.Tensor | None = None):
    """``model(batch.noisy, sigma)``, checked to be a tensor of the batch's shape (a wrong shape
    would broadcast silently in the loss). Metadata only: no host synchronisation."""
    if not isinstance(batch, Batch):
        raise TypeError(f"batch must be a pnpfast.train.Batch, not {type(batch).__name__}")
    out = model(batch.noisy, batch.sigma if sigma is None else sigma)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}, not a tensor")
    if out.shape != batch.clean.shape:
        raise ValueError(
            f"the model returned shape {tuple(out.shape)} for a batch of shape "
            f"{tuple(batch.clean.shape)}; a denoiser must return the shape of its input"
        )
    return out


class MSELoss(torch.nn.Module):
    """The denoising loss ``mean_b ||D(y_b, sigma_b) - x_b||^2 / N`` (mean squared error over
    every pixel of the batch), with ``y = x + sigma n``."""

    def forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        out = _denoise(model, batch)
        loss = torch.mean((out.float() - batch.clean.float()) ** 2)
        return loss, {}


class NoiseWeightedMSELoss(torch.nn.Module):
    """The denoising loss with each patch weighted by its noise level:

        mean_b w_b ||D(y_b, sigma_b) - x_b||^2 / N,   w_b = (s_ref^2 + s_0^2) / (sigma_b^2 + s_0^2).

    The plain MSE of a good denoiser grows like sigma^2, so a sigma range such as [0, 100]/255
    spends nearly all of its gradient on the high levels and leaves the low ones undertrained.
    Dividing by sigma^2 gives every level the same say in the log of its error, that is in its
    PSNR; ``s_0`` (``sigma_floor``) bounds the weight of the nearly clean patches and
    ``s_ref`` (``sigma_ref``) is the level of weight 1, so the loss reads as an MSE there.
    Both are on the [0, 1] scale.
    """

    def __init__(self, sigma_ref: float = 25 / 255, sigma_floor: float = 2 / 255):
        super().__init__()
        self.sigma_ref = _validate.number("sigma_ref", sigma_ref, 0, low_open=True)
        self.sigma_floor = _validate.number("sigma_floor", sigma_floor, 0, low_open=True)

    def forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        out = _denoise(model, batch)
        per_patch = torch.mean((out.float() - batch.clean.float()) ** 2, dim=(1, 2, 3))
        floor2 = self.sigma_floor**2
        weight = (self.sigma_ref**2 + floor2) / (batch.sigma.float() ** 2 + floor2)
        return torch.mean(weight * per_patch), {"mse": per_patch.mean().detach()}


class SpectralPenaltyLoss(torch.nn.Module):
    """Denoising MSE plus a penalty on the spectral norm of the Jacobian of I - D, for the
    proximal denoiser (Hurault, Leclaire, Papadakis, ICML 2022; the penalty of Pesquet et al.,
    SIAM J. Imaging Sci. 2021):

        mean_b ||D(y_b) - x_b||^2 / N  +  weight mean_b max(||J_{I - D}(y_b)||_2, 1 - eps)

    For a gradient-step denoiser I - D = grad g and its Jacobian is the Hessian of g, symmetric
    (``symmetric=True``: power iteration on it, one product per step); ||Hess g|| < 1 makes D
    the proximal map of a weakly convex potential. The norm is estimated at the noisy inputs by
    ``iters`` power-iteration steps without graph and one last product with it
    (``pnpfast.diagnostics.spectral_norm``, differentiable mode), or, with
    ``method="lanczos"`` (symmetric only), by ``iters`` Lanczos steps and one product with the
    graph at the Ritz vector (``pnpfast.diagnostics.lanczos_edges``): at high noise many
    eigenvalues crowd under the largest and power iteration's estimate stays low for hundreds of
    steps (on gray crops at sigma 50, 8 steps read 0.83 where 100 read 1.03), so the penalty
    misses what it should push down; 20 Lanczos steps came within 0.003 of 80 there. The
    estimate enters the log as ``spectral_norm`` (batch mean) and ``spectral_norm_max``.
    """

    def __init__(
        self,
        weight: float = 1e-3,
        eps: float = 0.1,
        iters: int = 10,
        symmetric: bool = True,
        method: str = "power",
    ):
        super().__init__()
        _validate.number("weight", weight, 0)
        _validate.number("eps", eps, 0, 1, high_open=True)
        _validate.integer("iters", iters, 1)
        _validate.flag("symmetric", symmetric)
        if method not in ("power", "lanczos") or (method == "lanczos" and not symmetric):
            raise ValueError(
                f"method must be 'power' or 'lanczos' (lanczos needs symmetric=True); got "
                f"{method!r} with symmetric={symmetric!r}"
            )
        self.weight, self.eps, self.iters = float(weight), float(eps), int(iters)
        self.symmetric, self.method = bool(symmetric), method
        self.seed = 0

    def forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        from pnpfast.diagnostics import residual_lipschitz

        out = _denoise(model, batch)
        mse = torch.mean((out.float() - batch.clean.float()) ** 2)
        self.seed += 1  # fresh starting vectors every step
        if self.method == "lanczos":
            options = {"steps": self.iters}
        else:
            options = {
                "iters": self.iters,
                "tol": 0.0,
                "symmetric": self.symmetric,
                "compact": False,
            }
        est = residual_lipschitz(
            model,
            batch.noisy.float(),
            batch.sigma.float(),
            method=self.method,
            differentiable=True,
            seed=self.seed,
            **options,
        ).norm
        penalty = torch.clamp(est, min=1 - self.eps).mean()
        metrics = {"mse": mse.detach(), "spectral_norm": est.detach().mean()}
        metrics["spectral_norm_max"] = est.detach().max()
        return mse + self.weight * penalty, metrics


class RegulariserGradientLoss(torch.nn.Module):
    """PnP-ReG training (Fermanian, Le Pendu, Guillemot, SIAM J. Imaging Sci. 2023): a second
    network G, the gradient of the regulariser, trained jointly with the denoiser D so that
    sigma^2 G(D_sigma(z)) matches the residual z - D_sigma(z):

        delta L_D + lam L_grad,   L_D = mean ||D_sigma(z) - x||^2 / N,
        L_grad = mean ||sigma^2 G(D_sigma(z)) - (z - D_sigma(z))||^2 / N,

    z = x + sigma_0 n. The calls alternate: even calls assume the true level (sigma = sigma_0,
    delta = 1), odd calls an independent sigma uniform in [0, sigma_max] (delta = 0), so G
    learns the residual of D at mismatched levels too. ``network``: the ``config()`` dict of G
    (e.g. the DRUNet of D without the noise map, ``"noise_map": False``); it is saved as
    ``G.pt`` beside the model (``networks()``) and loads with ``pnpfast.denoisers.load``.

    ``detach`` (default True): L_grad trains G only; D(z) enters it without gradient, so D
    learns from L_D alone. With the gradient (``detach=False``) L_grad at mismatched levels
    pulls D away from denoising: from the shipped conditional color U-Net, 625 steps took its
    Set5 validation PSNR from 31.96 to 26.93 dB.
    """

    def __init__(
        self,
        network: dict,
        lam: float = 1.0,
        sigma_max: float = 50 / 255,
        detach: bool = True,
    ):
        super().__init__()
        from pnpfast.denoisers.architectures import build

        _validate.number("lam", lam, 0, low_open=True)
        _validate.number("sigma_max", sigma_max, 0, low_open=True)
        if not isinstance(network, dict):
            raise TypeError(
                f"network must be a build config dict (e.g. {{'arch': 'drunet', ...}}), not "
                f"{type(network).__name__}"
            )
        self.G = build(network)
        self.lam, self.sigma_max, self.detach = float(lam), float(sigma_max), bool(detach)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G}

    def forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        matched = int(self.calls) % 2 == 0
        self.calls += 1
        if matched:
            sigma = batch.sigma
        else:
            gen = torch.Generator().manual_seed(int(self.calls))
            draw = torch.rand(batch.sigma.shape, generator=gen, dtype=batch.sigma.dtype)
            sigma = draw.to(batch.sigma.device) * self.sigma_max
        d = _denoise(model, batch, sigma)
        dg = d.detach() if self.detach else d
        g = self.G(dg, torch.zeros_like(sigma))
        target = batch.noisy - dg
        l_grad = torch.mean((sigma.view(-1, 1, 1, 1) ** 2 * g - target).float() ** 2)
        l_d = torch.mean((d.float() - batch.clean.float()) ** 2)
        value = self.lam * l_grad + l_d if matched else self.lam * l_grad
        return value, {"grad_loss": l_grad.detach(), "denoise_loss": l_d.detach()}


LOSSES: dict[str, Callable[..., LossFn]] = {
    "mse": MSELoss,
    "mse-sigma": NoiseWeightedMSELoss,
    "spectral-penalty": SpectralPenaltyLoss,
    "pnp-reg": RegulariserGradientLoss,
}


def register_loss(name: str, factory: Callable[..., LossFn]) -> None:
    """Make ``factory`` available as ``TrainConfig(loss=name)``; a taken name raises ValueError,
    a name that is not a non-empty str or a factory that is not callable TypeError/ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name.strip() or name != name.strip():
        raise ValueError(f"name must be non-empty, without surrounding spaces, got {name!r}")
    if not callable(factory):
        raise TypeError(
            f"factory must be callable (a loss class or a function returning a loss), not "
            f"{type(factory).__name__}"
        )
    if name in LOSSES:
        raise ValueError(f"a loss named {name!r} is already registered")
    LOSSES[name] = factory


def make_loss(name: str, options: dict | None = None) -> LossFn:
    """The loss registered under ``name``, built with ``options``."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {name!r}")
    return LOSSES[name](**(options or {}))

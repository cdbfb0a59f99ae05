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

from pnpfast.train.data import Batch

__all__ = ["LOSSES", "MSELoss", "NoiseWeightedMSELoss", "make_loss", "register_loss"]

LossFn = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict]]


class MSELoss(torch.nn.Module):
    """The denoising loss ``mean_b ||D(y_b, sigma_b) - x_b||^2 / N`` (mean squared error over
    every pixel of the batch), with ``y = x + sigma n``."""

    def forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        out = model(batch.noisy, batch.sigma)
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
        if not sigma_ref > 0 or not sigma_floor > 0:
            raise ValueError(
                f"sigma_ref and sigma_floor must be > 0, not {sigma_ref!r} and {sigma_floor!r}"
            )
        self.sigma_ref = float(sigma_ref)
        self.sigma_floor = float(sigma_floor)

    def forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        out = model(batch.noisy, batch.sigma)
        per_patch = torch.mean((out.float() - batch.clean.float()) ** 2, dim=(1, 2, 3))
        floor2 = self.sigma_floor**2
        weight = (self.sigma_ref**2 + floor2) / (batch.sigma.float() ** 2 + floor2)
        return torch.mean(weight * per_patch), {"mse": per_patch.mean().detach()}


LOSSES: dict[str, Callable[..., LossFn]] = {"mse": MSELoss, "mse-sigma": NoiseWeightedMSELoss}


def register_loss(name: str, factory: Callable[..., LossFn]) -> None:
    """Make ``factory`` available as ``TrainConfig(loss=name)``; a taken name raises ValueError."""
    if name in LOSSES:
        raise ValueError(f"a loss named {name!r} is already registered")
    LOSSES[name] = factory


def make_loss(name: str, options: dict | None = None) -> LossFn:
    """The loss registered under ``name``, built with ``options``."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {name!r}")
    return LOSSES[name](**(options or {}))

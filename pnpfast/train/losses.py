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

__all__ = ["LOSSES", "MSELoss", "make_loss", "register_loss"]

LossFn = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict]]


class MSELoss(torch.nn.Module):
    """The denoising loss ``mean_b ||D(y_b, sigma_b) - x_b||^2 / N`` (mean squared error over
    every pixel of the batch), with ``y = x + sigma n``."""

    def forward(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        out = model(batch.noisy, batch.sigma)
        loss = torch.mean((out.float() - batch.clean.float()) ** 2)
        return loss, {}


LOSSES: dict[str, Callable[..., LossFn]] = {"mse": MSELoss}


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

"""BF-CNN: the bias-free CNN denoiser used as the implicit prior of Kadkhodaie & Simoncelli.

Z. Kadkhodaie, E. P. Simoncelli, "Solving linear inverse problems using the prior implicit in
a denoiser", NeurIPS 2021 (the network is the bias-free CNN of S. Mohan, Z. Kadkhodaie,
E. P. Simoncelli, C. Fernandez-Granda, "Robust and interpretable blind image denoising via
bias-free convolutional neural networks", ICLR 2020).
"""

import torch
import torch.nn.functional as F

from pnpfast._validate import integer, number
from pnpfast.denoisers._layers import (
    MAX_DEPTH,
    conv3x3,
    load_mapped,
    network_input,
)
from pnpfast.denoisers.base import Denoiser

__all__ = ["BFCNN"]


class _BufferList(torch.nn.Module):
    """Buffers named "0", "1", ... so that their state-dict keys read ``<name>.<k>``."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        super().__init__()
        for k, t in enumerate(tensors):
            self.register_buffer(str(k), t)

    def __getitem__(self, k: int) -> torch.Tensor:
        return getattr(self, str(k))

    def __len__(self) -> int:
        return len(self._buffers)


class BFCNN(Denoiser):
    """Bias-free CNN of Kadkhodaie & Simoncelli (NeurIPS 2021), blind, gray or color.

    ``depth`` 3x3 convolutions without biases (``conv_layers.0`` C -> F, ``conv_layers.1`` to
    ``conv_layers.{depth-2}`` F -> F, ``conv_layers.{depth-1}`` F -> C), each inner one followed
    by a bias-free scaling and a ReLU. In eval mode the network computes the residual

        h = relu(conv_0(y))
        h = relu(conv_l(h) / running_sd[l-1] * gammas[l-1])      for l = 1 .. depth-2
        r(y) = conv_{depth-1}(h)

    (``running_sd`` and ``gammas`` are [1, F, 1, 1]; no mean, no eps, no additive term) and the
    denoiser returns ``D(y, sigma) = y - r(y)``; ``sigma`` is ignored. Without biases and with
    ReLU, r is positively homogeneous: ``r(a y) = a r(y)`` for a > 0, hence so is D.

    In train mode the scaling divides by the per-channel batch standard deviation
    ``sqrt(var_batch + 1e-5)`` and moves ``running_sd`` towards it with momentum 0.1.

    Defaults: ``channels=1``, ``depth=20``, ``features=64`` (the public weights: gray trained on
    BSD400, color on BSD300, noise std in [0, 100]/255). Shapes: y [B, C, H, W], any H, W;
    the network runs in the dtype of its weights and returns the dtype of y.
    """

    blind = True

    def __init__(
        self, channels: int = 1, depth: int = 20, features: int = 64, *, momentum: float = 0.1
    ) -> None:
        super().__init__()
        integer("channels", channels, 1)
        integer("depth", depth, 3, MAX_DEPTH)
        integer("features", features, 1)
        momentum = number("momentum", momentum, 0.0, 1.0)
        self.channels = channels
        self.depth = depth
        self.features = features
        self.momentum = momentum
        widths = [channels] + [features] * (depth - 1) + [channels]
        self.conv_layers = torch.nn.ModuleList(
            conv3x3(widths[k], widths[k + 1], bias=False) for k in range(depth)
        )
        self.running_sd = _BufferList([torch.ones(1, features, 1, 1) for _ in range(depth - 2)])
        self.gammas = torch.nn.ParameterList(
            torch.nn.Parameter(torch.ones(1, features, 1, 1)) for _ in range(depth - 2)
        )

    def config(self) -> dict:
        """The constructor arguments, enough to rebuild the architecture."""
        return {
            "arch": "bfcnn",
            "channels": self.channels,
            "depth": self.depth,
            "features": self.features,
        }

    def _scale(self, h: torch.Tensor, k: int) -> torch.Tensor:
        if self.training:
            sd = torch.sqrt(h.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
            with torch.no_grad():
                self.running_sd[k].lerp_(sd.detach(), self.momentum)
        else:
            sd = self.running_sd[k]
        return h / sd * self.gammas[k]

    def residual(self, y: torch.Tensor) -> torch.Tensor:
        """The network output r(y), the noise estimate: [B, C, H, W] -> [B, C, H, W]."""
        h = F.relu(self.conv_layers[0](y))
        for k in range(1, self.depth - 1):
            h = F.relu(self._scale(self.conv_layers[k](h), k - 1))
        return self.conv_layers[self.depth - 1](h)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``x - r(x)``; sigma is checked for its form and otherwise ignored."""
        x, _ = self.check_input(x, sigma)
        y = network_input(x, self.conv_layers[0].weight)
        return (y - self.residual(y)).to(x.dtype)

    @staticmethod
    def file_keys(depth: int) -> list[str]:
        """The state-dict keys of the public BF-CNN files for a network of ``depth`` layers."""
        keys = [f"conv_layers.{k}.weight" for k in range(depth)]
        keys += [f"running_sd.{k}" for k in range(depth - 2)]
        keys += [f"gammas.{k}" for k in range(depth - 2)]
        return keys

    def load_weights(self, state: dict[str, torch.Tensor]) -> "BFCNN":
        """Load a state dict in the layout of the public files (keys as in ``file_keys``).

        The mapping is one to one and strict: a missing or unexpected key or a wrong shape
        raises ValueError listing them.
        """
        load_mapped(self, state, {k: k for k in self.file_keys(self.depth)})
        return self

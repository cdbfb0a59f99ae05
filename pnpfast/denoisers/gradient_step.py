"""The gradient-step denoiser: an explicit gradient step on a learned potential.

S. Hurault, A. Leclaire, N. Papadakis, "Gradient Step Denoiser for convergent Plug-and-Play",
ICLR 2022. For a smooth network N_sigma (e.g. the DRUNet of pnpfast with ``activation="elu"``),

    g_sigma(x) = 1/2 ||x - N_sigma(x)||^2                       (per image)
    D_sigma(x) = x - grad g_sigma(x) = N_sigma(x) + J_N(x)^T (x - N_sigma(x)),

so D_sigma is exactly a gradient step on g_sigma: its Jacobian I - Hess g_sigma is symmetric,
and PnP with it minimises an explicit objective f + lambda g_sigma (the GS-PnP solver checks
that objective's decrease, image by image). With a penalty keeping ||Hess g_sigma|| < 1 during
training, D_sigma is also the proximal map of a weakly convex potential (Hurault et al., "Proximal
denoiser for convergent plug-and-play optimization with nonconvex regularization", ICML 2022).

The product J_N^T r goes through ``torch.func.vjp``: it composes with training (the outer
autograd differentiates through it, the double backward of the paper) and with the Jacobian
diagnostics of ``pnpfast.diagnostics`` (forward over reverse), and it runs under ``torch.no_grad``
too. Shapes: x [B, C, H, W], sigma a float or [B]; D(x) like x, ``potential`` [B].
"""

import torch

from pnpfast._validate import integer
from pnpfast.denoisers.base import Denoiser

__all__ = ["GradientStep"]


class GradientStep(Denoiser):
    """``D(x, sigma) = x - grad g_sigma(x)``, g_sigma(x) = 1/2 ||x - network(x, sigma)||^2.

    ``network``: a denoiser module ``network(x, sigma)`` with smooth activations (ReLU makes the
    Hessian of g zero almost everywhere and its gradient discontinuous). Weight files and the
    training loop build one from ``config()`` with ``pnpfast.denoisers.architectures.build``,
    which builds the inner network from its own config dict first.
    """

    def __init__(self, network: torch.nn.Module, channels: int | None = None) -> None:
        super().__init__()
        if not isinstance(network, torch.nn.Module):
            raise TypeError(
                f"network must be a torch.nn.Module (architectures.build makes a GradientStep "
                f"from a config dict), not {type(network).__name__}"
            )
        if channels is not None:
            integer("channels", channels, 1)
        inner = getattr(network, "channels", None)
        if channels is not None and inner is not None and inner != channels:
            raise ValueError(f"channels is {channels} but the network takes {inner}")
        self.network = network
        self.channels = inner if inner is not None else channels
        self.blind = bool(getattr(network, "blind", False))

    def config(self) -> dict:
        """The constructor arguments, enough to rebuild the architecture."""
        if not hasattr(self.network, "config"):
            raise TypeError(f"{type(self.network).__name__} has no config(): it cannot be saved")
        return {
            "arch": "gradient_step",
            "channels": self.channels,
            "network": self.network.config(),
        }

    def _checked(self, n, x: torch.Tensor) -> torch.Tensor:
        """The network's output n, its form checked against x (metadata only)."""
        if not isinstance(n, torch.Tensor) or n.shape != x.shape or n.dtype != x.dtype:
            got = f"shape {tuple(n.shape)}, {n.dtype}" if isinstance(n, torch.Tensor) else type(n)
            raise ValueError(
                f"the network of GradientStep ({type(self.network).__name__}) returned {got} "
                f"for input of shape {tuple(x.shape)}, {x.dtype}: it must return x's shape and dtype"
            )
        return n

    def potential(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """g_sigma(x) = 1/2 ||x - N_sigma(x)||^2 per image, shape [B]."""
        x, s = self.check_input(x, sigma)
        return 0.5 * (x - self._checked(self.network(x, s), x)).flatten(1).pow(2).sum(1)

    def potential_and_gradient(
        self, x: torch.Tensor, sigma: float | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(g_sigma(x) [B], grad g_sigma(x) [B, C, H, W]) from one forward and one backward pass."""
        x, s = self.check_input(x, sigma)
        n, vjp = torch.func.vjp(lambda z: self.network(z, s), x)
        self._checked(n, x)
        r = x - n
        return 0.5 * r.flatten(1).pow(2).sum(1), r - vjp(r)[0]

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x, s = self.check_input(x, sigma)
        n, vjp = torch.func.vjp(lambda z: self.network(z, s), x)
        self._checked(n, x)
        return n + vjp(x - n)[0]

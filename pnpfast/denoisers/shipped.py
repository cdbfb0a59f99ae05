"""The denoisers shipped inside pnpfast: trained here, stored in ``pnpfast/weights``.

Every kind is a gray and a color network (the file names are ``<kind>-gray.pt`` and
``<kind>-color.pt``, pnpfast weight files, see ``pnpfast.denoisers.weight_file``); the kinds are
``SHIPPED`` of ``pnpfast.denoisers.catalog``. The embedded defaults (``DEFAULTS``):

* ``"conditional"``: a small DRUNet with a noise-level map input, sigma in [0, 60]/255; the
  default of ``pnpfast.denoisers.load()``, for HQS/DPIR, ADMM and the gradient-step methods.
* ``"blind"``: the same U-Net without the noise map, bias-free (positively homogeneous, like
  BF-CNN), sigma in [0, 100]/255; for RED and the implicit-prior sampler.

and, for the provably convergent methods (``CONVERGENT``, gray and color too):

* ``"gradient-step"``: ``GradientStep`` of the same U-Net with ELU, sigma in [0, 50]/255, for
  ``gs-pnp``;
* ``"proximal"``: the same with softplus, fine-tuned with the spectral-norm penalty so that
  ||Hess g|| < 1 (the proximal denoiser), for ``prox-pnp-pgd`` and ``prox-pnp-drs``.

``ByChannels`` wraps the networks of a kind and picks one by the channel count of its input (and
passes ``potential_and_gradient`` through to a gradient-step network). How each file was
trained (recipe, data, steps) is in its ``meta`` entry and in the README.
"""

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import torch

from pnpfast._validate import integer
from pnpfast.denoisers.base import Denoiser, check_image
from pnpfast.denoisers.catalog import SHIPPED
from pnpfast.denoisers.weight_file import read_network

__all__ = ["ByChannels", "shipped", "shipped_path"]

_CHANNELS = {1: "gray", 3: "color"}


class ByChannels(Denoiser):
    """One denoiser for gray and color input: ``D(x, sigma)`` runs ``networks[str(C)]`` on an
    x with C channels. Shapes as the wrapped networks: x [B, C, H, W] with C in the keys."""

    def __init__(self, networks: dict[int, Denoiser]) -> None:
        super().__init__()
        if not isinstance(networks, Mapping):
            raise TypeError(
                f"networks must be a dict {{channels: denoiser}}, not {type(networks).__name__}"
            )
        if not networks:
            raise ValueError("networks must hold at least one denoiser")
        for c, net in networks.items():
            integer(f"networks key {c!r} (a channel count)", c, 1)
            if not isinstance(net, torch.nn.Module):
                raise TypeError(
                    f"networks[{c}] must be a torch.nn.Module denoiser, not {type(net).__name__}"
                )
            takes = getattr(net, "channels", None)
            if takes is not None and takes != c:
                raise ValueError(f"networks[{c}] takes {takes} channels, not {c}")
        self.networks = torch.nn.ModuleDict({str(c): net for c, net in networks.items()})
        self.blind = all(getattr(net, "blind", False) for net in self.networks.values())

    def network(self, channels: int) -> Denoiser:
        """The network that denoises images with ``channels`` channels."""
        if str(channels) not in self.networks:
            accepted = " or ".join(sorted(self.networks))
            raise ValueError(f"x has {channels} channels but this denoiser takes {accepted}")
        return self.networks[str(channels)]

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x = check_image(x)
        return self.network(x.shape[1])(x, sigma)

    def potential_and_gradient(
        self, x: torch.Tensor, sigma: float | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(g(x), grad g(x)) of the gradient-step network for x's channel count."""
        x = check_image(x)
        net = self.network(x.shape[1])
        if not hasattr(net, "potential_and_gradient"):
            raise TypeError(f"{type(net).__name__} is not a gradient-step denoiser")
        return net.potential_and_gradient(x, sigma)


def shipped_path(kind: str, channels: int) -> Path:
    """The path of the shipped file of ``kind`` for ``channels`` (1 or 3) channels."""
    if kind not in SHIPPED:
        raise ValueError(f"kind must be one of {', '.join(SHIPPED)}, not {kind!r}")
    if channels not in _CHANNELS:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return Path(str(resources.files("pnpfast") / "weights" / f"{kind}-{_CHANNELS[channels]}.pt"))


def shipped(kind: str) -> ByChannels:
    """The shipped ``kind`` (one of ``SHIPPED``) as a gray+color ``ByChannels``."""
    networks = {}
    for channels in _CHANNELS:
        path = shipped_path(kind, channels)
        if not path.exists():
            raise FileNotFoundError(
                f"the shipped {kind} denoiser file {path} is missing from this installation; "
                f"reinstall pnpfast (pip install -e .) or pass weights= a file of your own"
            )
        networks[channels] = read_network(path)
    return ByChannels(networks)

"""The trainable network architectures by name, and ``build`` from a ``config()`` dict.

Every network class here has ``config()`` returning its constructor arguments with an
``"arch"`` entry; ``build(net.config())`` makes a fresh network of the same architecture. The
training loop, the checkpoints and the shipped weight files store that dict, so a file says
what it holds.
"""

from collections.abc import Mapping

from pnpfast.denoisers.base import Denoiser
from pnpfast.denoisers.bfcnn import BFCNN
from pnpfast.denoisers.dncnn import DnCNN
from pnpfast.denoisers.drunet import DRUNet
from pnpfast.denoisers.gradient_step import GradientStep

__all__ = ["ARCHITECTURES", "build"]

ARCHITECTURES: dict[str, type[Denoiser]] = {
    "drunet": DRUNet,
    "dncnn": DnCNN,
    "bfcnn": BFCNN,
    "gradient_step": GradientStep,
}


def build(config: Mapping) -> Denoiser:
    """A freshly initialised network from ``{"arch": name, **constructor arguments}``.

    Lists become tuples (JSON has no tuples); the ``"network"`` entry of a ``"gradient_step"``
    config is itself a config, built first. Errors: ValueError for a missing or unknown
    ``arch``, TypeError (from the constructor) for an argument it does not take.
    """
    if not isinstance(config, Mapping) or "arch" not in config:
        raise ValueError(f"config must be a mapping with an 'arch' entry, got {config!r}")
    arch = str(config["arch"]).lower()
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, not {config['arch']!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k != "arch"}
    if arch == "gradient_step" and isinstance(kwargs.get("network"), Mapping):
        # the inner network's config; the outer channel count, when given, is the inner one's
        channels = kwargs.get("channels")
        kwargs["network"] = build(
            {**kwargs["network"], **({"channels": channels} if channels else {})}
        )
    return ARCHITECTURES[arch](**kwargs)

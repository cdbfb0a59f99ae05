"""``load``: a denoiser by name (``pnpfast.denoisers.catalog``), with its weights where it is a
network: the shipped files, a pnpfast weight file, a public file of another project, or a
registry entry downloaded once into the cache.
"""

import os

import torch

from pnpfast.denoisers import catalog, public, registry
from pnpfast.denoisers.base import Denoiser
from pnpfast.denoisers.gaussian import GaussianSmoothing
from pnpfast.denoisers.shipped import shipped
from pnpfast.denoisers.tv import TotalVariation
from pnpfast.denoisers.weight_file import read_network

__all__ = ["load"]


def load(
    name: str | None = None,
    weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
) -> Denoiser:
    """A denoiser ready for ``D(x, sigma)``: eval mode, parameters with requires_grad False.

    Names (case-insensitive):

    * ``None`` or ``"conditional"``: the shipped noise-conditional DRUNet (gray and color, picked
      by the input's channel count; ``pnpfast.denoisers.shipped``), for HQS/DPIR, ADMM and the
      gradient-step methods. With ``weights`` and no name: a pnpfast weight file.
    * ``"blind"``: the shipped blind bias-free U-Net (gray and color), for RED and the sampler.
    * ``"gradient-step"`` and ``"proximal"``: the shipped gradient-step and proximal denoisers
      (``GradientStep``; gray and color), for ``gs-pnp`` and ``prox-pnp-*``.
    * ``"pnpfast"``: a pnpfast weight file (written by ``pnpfast train``), any architecture.
    * ``"bfcnn"``, ``"bf-dncnn"``, ``"dncnn"``: a public file of that architecture
      (``pnpfast.denoisers.public.read_network`` lists the layouts each one reads).
    * ``"gaussian"``: ``GaussianSmoothing()``; ``"tv"``: ``TotalVariation()``.
    * A name of ``pnpfast.denoisers.registry`` (``"drunet-color"``, ``"bfcnn-gray"``,
      ``"dncnn-25"``, ...): the public weights, downloaded once into the cache
      (``PNPFAST_CACHE``, default ``~/.cache/pnpfast``), checksum-verified where the checksum is
      known; with ``weights`` the local file is used instead.

    ``weights`` is the path of a weight file: required for the architecture names
    (``"bfcnn"``, ``"bf-dncnn"``, ``"dncnn"``, ``"pnpfast"``), refused for the shipped and
    classical ones. The channel count, depth and width are read from the file. Errors:
    ValueError for an unknown name, a missing or superfluous ``weights``, a file that does
    not match the architecture (listing the missing and unexpected keys), or a device that
    torch does not know or that holds no data (``"meta"``); TypeError for a name, weights or
    device of the wrong type; FileNotFoundError when ``weights`` does not exist.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {type(name).__name__} ({name!r})")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights must be the path of a weight file (str or os.PathLike) or None, "
            f"not {type(weights).__name__}"
        )
    device = _device(device)
    if name is None:
        key = "conditional" if weights is None else catalog.WEIGHT_FILE
    else:
        key = str(name).strip().lower()
    group = catalog.family(key)
    if group == "registry":
        return registry.load_entry(key, weights=weights, device=device)
    if group in ("weight-file", "file-architecture"):
        if weights is None:
            raise ValueError(f"weights (the path of a weight file) is required for {key!r}")
        if group == "weight-file":
            net: Denoiser = read_network(weights)
        else:
            net = public.read_network(key, weights)
    else:
        if weights is not None:
            raise ValueError(
                f"weights is not used by {key!r}; pass None (or name=None / 'pnpfast' for a "
                f"weight file of your own)"
            )
        if group == "shipped":
            net = shipped(key)
        else:
            net = GaussianSmoothing() if key == "gaussian" else TotalVariation()
    net.requires_grad_(False)
    return net.eval().to(device)


def _device(device: object) -> torch.device:
    """``device`` as a torch.device, refusing by name what would fail later or hold no data."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"device must be a str or torch.device (e.g. 'cpu', 'cuda:0'), not "
            f"{type(device).__name__}"
        )
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} is not a torch device: {err}") from err
    if device.type == "meta":
        raise ValueError("device 'meta' holds no data: a denoiser needs its weights on cpu or cuda")
    if device.type == "cuda":
        # torch would raise an AssertionError ("not compiled with CUDA") or an invalid ordinal
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ValueError(
                f"device {str(device)!r} is not available here ({count} CUDA device(s)); "
                f"use device='cpu'"
            )
    return device

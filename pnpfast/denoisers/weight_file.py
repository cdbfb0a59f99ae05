"""The pnpfast weight file: a network's architecture, weights and provenance in one file.

    {"format": "pnpfast-denoiser", "version": 1,
     "config": {"arch": "drunet", "channels": 1, ...},     # pnpfast.denoisers.architectures
     "state_dict": {name: tensor},                          # float32, or float16 to ship
     "meta": {...}}                                         # training data, step, PSNR, ...

Written with ``torch.save`` atomically (``pnpfast._atomic``: a temporary file, then a rename)
and read with ``torch.load(weights_only=True)``, so reading one runs no code. The one module
that knows the format: the training loop (``pnpfast.train``), ``pnpfast export``, the shipped
denoisers and ``pnpfast.denoisers.load("pnpfast", weights=...)`` all write and read through it.
"""

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from pnpfast._atomic import atomic_open
from pnpfast.denoisers.architectures import build
from pnpfast.denoisers.base import Denoiser

__all__ = [
    "FORMAT",
    "VERSION",
    "WeightFile",
    "export_weights",
    "is_weights_file",
    "read_network",
    "read_weights",
    "save_weights",
]

FORMAT = "pnpfast-denoiser"
VERSION = 1


@dataclass(frozen=True)
class WeightFile:
    """What a weight file holds: ``config`` (``build(config)`` makes the architecture),
    ``state_dict`` (as stored: float32, or float16 for shipped files) and ``meta``."""

    config: dict
    state_dict: dict[str, torch.Tensor]
    meta: dict


def save_weights(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    meta: dict | None = None,
    half: bool = False,
) -> Path:
    """Write ``model`` (which must have ``config()``) to ``path``; ``half`` stores the floating
    tensors as float16 (half the size; they are read back as float32). Returns the path."""
    if not hasattr(model, "config"):
        raise TypeError(
            f"{type(model).__name__} has no config(); it cannot be saved as a pnpfast file"
        )
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.to(torch.float16)
        state[key] = value.clone()
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config(),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    path = Path(path)
    with atomic_open(path) as f:
        torch.save(obj, f)
    return path


def is_weights_file(obj: object) -> bool:
    """Whether a loaded object is a pnpfast weight file."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def read_weights(path: str | os.PathLike) -> WeightFile:
    """The content of the weight file ``path``. Errors name the file: FileNotFoundError, or
    ValueError for a file torch cannot read or that is not a pnpfast weight file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise ValueError(f"weights {path} could not be read as a torch file: {err}") from err
    if not is_weights_file(obj):
        raise ValueError(
            f"weights {path} is not a pnpfast weight file (written by pnpfast train or "
            f"pnpfast.train.save_weights); for public files name the architecture, "
            f"e.g. load('bfcnn', weights=...)"
        )
    return WeightFile(dict(obj["config"]), dict(obj["state_dict"]), dict(obj.get("meta", {})))


def read_network(path: str | os.PathLike) -> Denoiser:
    """The network stored in the weight file ``path``, float32, on the CPU, in eval mode with
    requires_grad False. Errors name the file: those of ``read_weights``, and ValueError for a
    config or state dict that does not build or fit."""
    return _network(read_weights(path), path)


def _network(stored: WeightFile, path: str | os.PathLike) -> Denoiser:
    try:
        net = build(stored.config)
        net.load_state_dict({k: v.float() for k, v in stored.state_dict.items()})
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"weights {os.fspath(path)}: {err}") from err
    net.requires_grad_(False)
    return net.eval()


def export_weights(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    half: bool = True,
    meta: dict | None = None,
) -> Path:
    """Copy the pnpfast weight file ``source`` to ``target``, float16 when ``half`` (the form
    pnpfast ships), with ``meta`` merged into the stored one. Returns the target path."""
    stored = read_weights(source)
    net = _network(stored, source)
    return save_weights(net, target, meta={**stored.meta, **(meta or {})}, half=half)

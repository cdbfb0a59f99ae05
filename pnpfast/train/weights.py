"""The pnpfast weight file: a network's architecture, weights and provenance in one file.

    {"format": "pnpfast-denoiser", "version": 1,
     "config": {"arch": "drunet", "channels": 1, ...},     # pnpfast.denoisers.architectures
     "state_dict": {name: tensor},                          # float32, or float16 to ship
     "meta": {...}}                                         # training data, step, PSNR, ...

Written with ``torch.save`` (atomically: a temporary file, then a rename) and read with
``torch.load(weights_only=True)``, so reading one runs no code. ``pnpfast.denoisers.load``
recognises the format and rebuilds the network from ``config``.
"""

import os
from pathlib import Path

import torch

__all__ = ["FORMAT", "export_weights", "is_weights_file", "save_weights"]

FORMAT = "pnpfast-denoiser"
VERSION = 1


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
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def is_weights_file(obj: object) -> bool:
    """Whether a loaded object is a pnpfast weight file."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def export_weights(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    half: bool = True,
    meta: dict | None = None,
) -> Path:
    """Copy the pnpfast weight file ``source`` to ``target``, float16 when ``half`` (the form
    pnpfast ships), with ``meta`` merged into the stored one. Returns the target path."""
    from pnpfast.denoisers.loaders import read_pnpfast_file

    net = read_pnpfast_file(source)
    stored = torch.load(os.fspath(source), map_location="cpu", weights_only=True)["meta"]
    return save_weights(net, target, meta={**stored, **(meta or {})}, half=half)

"""The pnpfast weight file: a network's architecture, weights and provenance in one file.

    {"format": "pnpfast-denoiser", "version": 2,
     "config": {"arch": "drunet", "channels": 1, ...},     # pnpfast.denoisers.architectures
     "state_dict": {name: tensor},                          # float32, or float16 to ship
     "meta": {...},                                         # training data, step, PSNR, ...
     "sha256": "..."}                                 # file_checksum(state_dict, config, meta)

Written with ``torch.save`` atomically (``pnpfast._atomic``: a temporary file, then a rename)
and read with ``torch.load(weights_only=True)``, so reading one runs no code. The checksum covers
the tensors (names, dtypes, shapes and bytes) and, from version 2 on, the config and the meta in
a canonical form: torch does not check the zip archive's CRCs, so without it a file with flipped
bytes in its tensor data loads silently with wrong weights, and an edited config (another
architecture field, a flipped ``noise_map``) builds another network from the same weights.
Version 1 files carry the checksum of their tensors alone (``tensor_checksum``) and are checked
against that; files written before the checksum existed (no ``"sha256"``) still load, unchecked.
The checksum detects corruption and edits made without pnpfast; it is not a signature (whoever
edits a file can recompute it). The one module
that knows the format: the training loop (``pnpfast.train``), ``pnpfast export``, the shipped
denoisers and ``pnpfast.denoisers.load("pnpfast", weights=...)`` all write and read through it.
"""

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from pnpfast._atomic import atomic_open
from pnpfast.denoisers.architectures import build
from pnpfast.denoisers.base import Denoiser
from pnpfast.denoisers.torch_file import check_finite, load_torch_file

__all__ = [
    "FORMAT",
    "VERSION",
    "WeightFile",
    "export_weights",
    "file_checksum",
    "is_weights_file",
    "read_network",
    "read_weights",
    "save_weights",
    "tensor_checksum",
]

FORMAT = "pnpfast-denoiser"
VERSION = 2
# version -> what its "sha256" covers; read_weights refuses other versions by name
_CHECKSUMS = {1: "its tensors", 2: "its tensors, config and meta"}


@dataclass(frozen=True)
class WeightFile:
    """What a weight file holds: ``config`` (``build(config)`` makes the architecture),
    ``state_dict`` (as stored: float32, or float16 for shipped files) and ``meta``."""

    config: dict
    state_dict: dict[str, torch.Tensor]
    meta: dict


def tensor_checksum(state: Mapping[str, torch.Tensor]) -> str:
    """The sha256 (hex) of a state dict: for each tensor in the order of its sorted names, the
    name, dtype and shape as text, then the tensor's bytes (row-major, CPU byte order)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{value.dtype}\0{tuple(value.shape)}\0".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _canonical(value):
    """A JSON-encodable form of a config or meta value that keeps what torch.load gives back
    apart: dicts become their items sorted by the key's canonical text (keys of any type),
    tuples and lists are tagged, tensors are reduced to dtype, shape and the sha256 of their
    bytes; bool, int, float (NaN and Inf included), str and None stay as they are."""
    if isinstance(value, Mapping):
        items = [[_canonical(k), _canonical(v)] for k, v in value.items()]
        return {"dict": sorted(items, key=lambda kv: json.dumps(kv[0], sort_keys=True))}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_canonical(v) for v in value]}
    if isinstance(value, torch.Tensor):
        return {"tensor": tensor_checksum({"": value})}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a {type(value).__name__}, which a weight file cannot hold")


def file_checksum(state: Mapping[str, torch.Tensor], config: Mapping, meta: Mapping) -> str:
    """The sha256 (hex) that a version-2 weight file stores: of ``tensor_checksum(state)`` and
    the canonical JSON (sorted keys, no spaces) of ``config`` and ``meta``."""
    text = json.dumps(
        [tensor_checksum(state), _canonical(config), _canonical(meta)],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


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
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if meta is not None:
        _check_meta(meta)
    state = {}
    for key, value in model.state_dict().items():
        if value.device.type == "meta":
            raise ValueError(f"model: {key} is on the meta device (it holds no data)")
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.to(torch.float16)
        state[key] = value.clone()
    return _write(WeightFile(model.config(), state, dict(meta or {})), path)


def _check_meta(meta, where: str = "meta") -> None:
    """``meta`` holds only what the safe loader reads back: dicts, lists and tuples of None,
    bools, numbers, strings and tensors (an object of another class would be written, then
    refused at load as a damaged file)."""
    if where == "meta" and not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, not {type(meta).__name__}")
    if isinstance(meta, dict):
        for key, value in meta.items():
            _check_meta(key, f"{where} key {key!r}")
            _check_meta(value, f"{where}[{key!r}]")
    elif isinstance(meta, (list, tuple)):
        for i, value in enumerate(meta):
            _check_meta(value, f"{where}[{i}]")
    elif not (meta is None or isinstance(meta, (bool, int, float, str, torch.Tensor))):
        raise TypeError(
            f"{where} is a {type(meta).__name__}; meta may hold dicts, lists, None, bools, "
            "numbers, strings and tensors"
        )


def _write(stored: WeightFile, path: str | os.PathLike) -> Path:
    """Write ``stored`` with its checksum to ``path`` (atomically)."""
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "config": stored.config,
        "state_dict": stored.state_dict,
        "meta": stored.meta,
        "sha256": file_checksum(stored.state_dict, stored.config, stored.meta),
    }
    path = Path(path)
    with atomic_open(path) as f:
        torch.save(obj, f)
    return path


def is_weights_file(obj: object) -> bool:
    """Whether a loaded object is a pnpfast weight file."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def read_weights(path: str | os.PathLike) -> WeightFile:
    """The content of the weight file ``path``, its checksum verified (where it has one).

    Errors name the file and say what is wrong: FileNotFoundError; ValueError for a file torch
    cannot read (text, truncated, damaged), one that is not a pnpfast weight file, a missing or
    malformed ``config``, ``state_dict`` or ``meta``, an unknown ``version``, a checksum mismatch
    (modified or corrupted tensors, config or meta; version 1 files: tensors), and NaN or Inf
    in a tensor.
    """
    path = os.fspath(path)
    obj = load_torch_file(path)
    if not is_weights_file(obj):
        raise ValueError(
            f"weights {path} is not a pnpfast weight file (written by pnpfast train or "
            f"pnpfast.train.save_weights); for public files name the architecture, "
            f"e.g. load('bfcnn', weights=...)"
        )
    for key, kind in (("config", dict), ("state_dict", dict), ("meta", dict)):
        if key not in obj:
            raise ValueError(f"weights {path}: the pnpfast weight file has no {key!r} entry")
        if not isinstance(obj[key], kind):
            raise ValueError(
                f"weights {path}: {key!r} must be a dict, the file holds a "
                f"{type(obj[key]).__name__}"
            )
    state = dict(obj["state_dict"])
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad or not state:
        raise ValueError(
            f"weights {path}: 'state_dict' must map parameter names to tensors; "
            + (f"entries that are not named tensors: {bad[:12]}" if bad else "it is empty")
        )
    version = obj.get("version")
    if isinstance(version, bool) or version not in _CHECKSUMS:
        raise ValueError(
            f"weights {path}: unknown weight-file version {version!r}; this pnpfast reads "
            f"versions {', '.join(map(str, _CHECKSUMS))} (a newer pnpfast may have written it)"
        )
    expected = obj.get("sha256")
    if expected is not None:
        if version == 1:
            actual = tensor_checksum(state)
        else:
            try:
                actual = file_checksum(state, obj["config"], obj["meta"])
            except TypeError as err:  # an object save_weights never writes
                raise ValueError(f"weights {path}: 'config' or 'meta' holds {err}") from err
        if actual != expected:
            raise ValueError(
                f"weights {path}: checksum mismatch: the file was modified or corrupted (the "
                f"sha256 of {_CHECKSUMS[version]} differs from the one stored when it was "
                f"written); use a fresh copy of the file"
            )
    check_finite(state, path)
    return WeightFile(dict(obj["config"]), state, dict(obj["meta"]))


def read_network(path: str | os.PathLike) -> Denoiser:
    """The network stored in the weight file ``path``, float32, on the CPU, in eval mode with
    requires_grad False. Errors name the file: those of ``read_weights``, and ValueError for a
    config or state dict that does not build or fit."""
    return _network(read_weights(path), path)


def _network(stored: WeightFile, path: str | os.PathLike) -> Denoiser:
    try:
        net = build(stored.config)
        net.load_state_dict({k: v.float() for k, v in stored.state_dict.items()})
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        raise ValueError(
            f"weights {os.fspath(path)}: its config or state dict does not build the network: "
            f"{type(err).__name__}: {err}"
        ) from err
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

"""Public weight files of other projects: read a state dict, recognise its layout, build the net.

The files are read with ``torch.load(..., map_location="cpu", weights_only=True)`` (tensors
saved on a GPU load on a CPU-only machine; no arbitrary code runs), the architecture and channel
count are read from the keys and shapes, and the state dict is loaded strictly into a fresh
module (``BFCNN.load_weights``, ``DnCNN.load_weights``). The architecture names are
``pnpfast.denoisers.catalog.FILE_ARCHITECTURES``.
"""

import os
import re
from collections.abc import Mapping

import torch

from pnpfast.denoisers.base import Denoiser
from pnpfast.denoisers.bfcnn import BFCNN
from pnpfast.denoisers.catalog import FILE_ARCHITECTURES
from pnpfast.denoisers.dncnn import DnCNN
from pnpfast.denoisers.torch_file import check_finite, load_torch_file
from pnpfast.denoisers.weight_file import is_weights_file

__all__ = ["read_network", "read_state_dict"]


def read_state_dict(weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in ``weights``, on the CPU.

    Accepts a plain state dict and the training checkpoint of Mohan et al. (a dict whose
    ``"model"`` entry is a list holding the state dict, with an ``argparse.Namespace`` of
    arguments, allowed through ``torch.serialization.add_safe_globals``). A ``module.`` prefix
    on every key (``nn.DataParallel``) is removed. Errors name ``weights`` and say what is
    wrong: FileNotFoundError; ValueError for a directory, an empty, text, truncated or damaged
    file, content that is not a state dict, and NaN or Inf in a tensor.
    """
    path = os.fspath(weights)
    obj = load_torch_file(path)
    if is_weights_file(obj):
        raise ValueError(
            f"weights {path} is a pnpfast weight file, which names its own architecture: load "
            f"it with load('pnpfast', weights=...) (pnpfast deblur --denoiser pnpfast)"
        )
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), (list, tuple)) and obj["model"]:
        obj = obj["model"][0]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"weights {path} holds a {type(obj).__name__}, not a non-empty state dict "
            f"(a mapping from parameter names to tensors)"
        )
    state = dict(obj)
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"weights {path}: entries that are not named tensors: {bad[:12]}")
    check_finite(state, path)
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    """1 + the largest index matched by ``pattern`` (one group) among the keys, 0 when none."""
    found = [int(m.group(1)) for k in state if (m := re.fullmatch(pattern, k))]
    return max(found) + 1 if found else 0


def _convs(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many convolution weights (4-d tensors) ``<prefix>.<k>.weight`` the keys hold."""
    pattern = re.escape(prefix) + r"\.\d+\.weight"
    return sum(1 for k, v in state.items() if re.fullmatch(pattern, k) and v.dim() == 4)


def _widths(first: torch.Tensor) -> tuple[int, int]:
    """(channels, features) from the first convolution's weight [F, C, 3, 3]; (1, 64) when it
    is malformed, so that the strict load reports the wrong shape."""
    return (first.shape[1], first.shape[0]) if first.dim() == 4 else (1, 64)


def _depth(found: int, public: int) -> int:
    """The depth read from the keys, or the public files' depth when too few layers are there
    (the strict load then lists what is missing)."""
    return found if found >= 3 else public


def _bfcnn(state: dict[str, torch.Tensor]) -> BFCNN:
    first = state.get("conv_layers.0.weight")
    if first is None:
        # the default architecture, only to report the missing and unexpected keys
        return BFCNN().load_weights(state)
    channels, features = _widths(first)
    depth = _depth(_count(state, r"conv_layers\.(\d+)\.weight"), 20)
    return BFCNN(channels, depth, features).load_weights(state)


def _dncnn(state: dict[str, torch.Tensor], *, bias_free_only: bool) -> DnCNN:
    if "first_layer.weight" in state:
        channels, features = _widths(state["first_layer.weight"])
        bias = "first_layer.bias" in state
        if bias_free_only and bias:
            raise ValueError(
                "these weights have biases (Mohan et al. DnCNN with bias); load them with "
                "name='dncnn', or give a bias-free file to 'bf-dncnn'"
            )
        depth = _depth(_count(state, r"hidden_layer_list\.(\d+)\.weight") + 2, 20)
        norm = "batch" if bias else "bias-free"
        net = DnCNN(channels, depth, features, bias=bias, norm=norm)
        return net.load_weights(state, "mohan")
    if bias_free_only:
        # the layout BF-DnCNN files have, only to report the missing and unexpected keys
        return DnCNN(depth=20, bias=False, norm="bias-free").load_weights(state, "mohan")
    if "model.0.weight" in state:
        channels, features = _widths(state["model.0.weight"])
        bias = "model.0.bias" in state
        net = DnCNN(channels, _depth(_convs(state, "model"), 17), features, bias=bias, norm="none")
        return net.load_weights(state, "kair")
    if "dncnn.0.weight" in state:
        channels, features = _widths(state["dncnn.0.weight"])
        bias = "dncnn.0.bias" in state
        net = DnCNN(channels, _depth(_convs(state, "dncnn"), 17), features, bias=bias)
        return net.load_weights(state, "saoyan")
    shown = sorted(state)[:12]
    raise ValueError(
        "the state dict does not match DnCNN in any known layout: missing keys "
        "[first_layer.weight (Mohan et al.) | model.0.weight (KAIR) | "
        f"dncnn.0.weight or module.dncnn.0.weight (SaoYan)]; unexpected keys {shown}"
        + (f", ... ({len(state) - 12} more)" if len(state) > 12 else "")
    )


def read_network(kind: str, weights: str | os.PathLike) -> Denoiser:
    """The network of architecture ``kind`` (one of ``FILE_ARCHITECTURES``) stored in the public
    file ``weights``, float32 on the CPU, in training mode (the caller sets eval and devices).

    * ``"bfcnn"``: ``BFCNN``, gray or color, from the Kadkhodaie & Simoncelli files
      (keys ``conv_layers.k.weight``, ``running_sd.k``, ``gammas.k``).
    * ``"bf-dncnn"``: bias-free ``DnCNN`` from the Mohan et al. checkpoints (bias-free only).
    * ``"dncnn"``: ``DnCNN`` in any of the layouts the keys reveal: Mohan et al. (bias-free or
      with bias, ``first_layer.*``), KAIR (``model.{2k}.*``, batch norm folded) and SaoYan
      (``[module.]dncnn.*``, batch norm, 17 or 20 layers).

    Errors: ValueError for another kind or a file that does not match the architecture (naming
    the file and listing the missing and unexpected keys); FileNotFoundError.
    """
    if kind not in FILE_ARCHITECTURES:
        raise ValueError(f"kind must be one of {', '.join(FILE_ARCHITECTURES)}, not {kind!r}")
    state = read_state_dict(weights)
    try:
        if kind == "bfcnn":
            return _bfcnn(state)
        return _dncnn(state, bias_free_only=kind == "bf-dncnn")
    except ValueError as err:
        raise ValueError(f"weights {os.fspath(weights)} for {kind!r}: {err}") from err

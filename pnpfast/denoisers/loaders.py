"""``load``: a denoiser by name, with the weights of a public file where it is a network.

The network files are read with ``torch.load(..., map_location="cpu", weights_only=True)``
(tensors saved on a GPU load on a CPU-only machine; no arbitrary code runs), the architecture
and channel count are read from the keys and shapes, and the state dict is loaded strictly into
a fresh module (``BFCNN.load_weights``, ``DnCNN.load_weights``).
"""

import argparse
import os
import pickle
import re
from collections.abc import Mapping

import torch

from pnpfast.denoisers import registry
from pnpfast.denoisers.base import Denoiser
from pnpfast.denoisers.bfcnn import BFCNN
from pnpfast.denoisers.dncnn import DnCNN
from pnpfast.denoisers.gaussian import GaussianSmoothing
from pnpfast.denoisers.shipped import SHIPPED, shipped
from pnpfast.denoisers.tv import TotalVariation

__all__ = ["NAMES", "load", "read_state_dict"]

NAMES: tuple[str, ...] = (
    "conditional",
    "blind",
    "gradient-step",
    "proximal",
    "pnpfast",
    "bfcnn",
    "bf-dncnn",
    "dncnn",
    "gaussian",
    "tv",
)
_NETWORKS = ("bfcnn", "bf-dncnn", "dncnn")


def read_state_dict(weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in ``weights``, on the CPU.

    Accepts a plain state dict and the training checkpoint of Mohan et al. (a dict whose
    ``"model"`` entry is a list holding the state dict, with an ``argparse.Namespace`` of
    arguments, allowed through ``torch.serialization.add_safe_globals``). A ``module.`` prefix
    on every key (``nn.DataParallel``) is removed. Errors name ``weights``.
    """
    path = os.fspath(weights)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"weights must be a file, {path} is a directory")
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise ValueError(f"weights {path} could not be read as a torch state dict: {err}") from err
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
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def read_pnpfast_file(weights: str | os.PathLike) -> Denoiser:
    """The network stored in a pnpfast weight file (``pnpfast.train.weights``), float32, on the
    CPU, in eval mode. Errors name the file: FileNotFoundError, or ValueError for another kind
    of file or a state dict that does not fit the stored architecture."""
    from pnpfast.denoisers.architectures import build
    from pnpfast.train.weights import is_weights_file

    path = os.fspath(weights)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise ValueError(f"weights {path} could not be read as a torch file: {err}") from err
    if not is_weights_file(obj):
        raise ValueError(
            f"weights {path} is not a pnpfast weight file (written by pnpfast train or "
            f"pnpfast.train.save_weights); for public files name the architecture, "
            f"e.g. load('bfcnn', weights=...)"
        )
    try:
        net = build(obj["config"])
        net.load_state_dict({k: v.float() for k, v in obj["state_dict"].items()})
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"weights {path}: {err}") from err
    net.requires_grad_(False)
    return net.eval()


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
    * ``"bfcnn"``: ``BFCNN``, gray or color, from the Kadkhodaie & Simoncelli files
      (keys ``conv_layers.k.weight``, ``running_sd.k``, ``gammas.k``).
    * ``"bf-dncnn"``: bias-free ``DnCNN`` from the Mohan et al. checkpoints (bias-free only).
    * ``"dncnn"``: ``DnCNN`` in any of the layouts the keys reveal: Mohan et al. (bias-free or
      with bias, ``first_layer.*``), KAIR (``model.{2k}.*``, batch norm folded) and SaoYan
      (``[module.]dncnn.*``, batch norm, 17 or 20 layers).
    * ``"gaussian"``: ``GaussianSmoothing()``; ``"tv"``: ``TotalVariation()``.
    * A name of ``pnpfast.denoisers.registry`` (``"drunet-color"``, ``"bfcnn-gray"``,
      ``"dncnn-25"``, ...): the public weights, downloaded once into the cache
      (``PNPFAST_CACHE``, default ``~/.cache/pnpfast``), checksum-verified where the checksum is
      known; with ``weights`` the local file is used instead.

    ``weights`` is the path of a weight file: required for the architecture names
    (``"bfcnn"``, ``"bf-dncnn"``, ``"dncnn"``, ``"pnpfast"``), refused for the shipped and
    classical ones. The channel count, depth and width are read from the file. Errors:
    ValueError for an unknown name, a missing or superfluous ``weights``, or a file that does
    not match the architecture (listing the missing and unexpected keys); FileNotFoundError
    when ``weights`` does not exist.
    """
    if name is None:
        key = "conditional" if weights is None else "pnpfast"
    else:
        key = str(name).strip().lower()
    if key in registry.REGISTRY:
        return registry.load_entry(key, weights=weights, device=device)
    if key not in NAMES:
        raise ValueError(
            f"name must be one of {', '.join(NAMES)} or a registry name "
            f"({', '.join(registry.names())}), or None; not {name!r}"
        )
    if key in (*_NETWORKS, "pnpfast"):
        if weights is None:
            raise ValueError(f"weights (the path of a weight file) is required for {key!r}")
        if key == "pnpfast":
            net: Denoiser = read_pnpfast_file(weights)
        else:
            state = read_state_dict(weights)
            try:
                net = (
                    _bfcnn(state)
                    if key == "bfcnn"
                    else _dncnn(state, bias_free_only=key == "bf-dncnn")
                )
            except ValueError as err:
                raise ValueError(f"weights {os.fspath(weights)} for {key!r}: {err}") from err
    else:
        if weights is not None:
            raise ValueError(
                f"weights is not used by {key!r}; pass None (or name=None / 'pnpfast' for a "
                f"weight file of your own)"
            )
        if key in SHIPPED:
            net = shipped(key)
        else:
            net = GaussianSmoothing() if key == "gaussian" else TotalVariation()
    net.requires_grad_(False)
    return net.eval().to(device)

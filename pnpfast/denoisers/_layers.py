"""Pieces shared by the network denoisers: 3x3 convolutions, the dtype/device rule for network
inputs, checks of constructor arguments, and strict loading of a state dict whose keys follow
another naming scheme."""

import re

import torch

_LIST_AT_MOST = 12
# upper bounds of the architecture counts: far above any published network, low enough that a
# typo fails at once instead of building modules for minutes (or padding to 2**levels pixels)
MAX_DEPTH = 1000
MAX_BLOCKS = 100
MAX_LEVELS = 10


def conv3x3(cin: int, cout: int, bias: bool) -> torch.nn.Conv2d:
    """A 3x3 convolution, stride 1, zero padding 1 (the layer of every network here)."""
    return torch.nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=bias)


def network_input(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x`` in the dtype of the network's parameters (``reference``).

    A network runs in the dtype of its weights; a float64 image is computed in float32 by a
    float32 network and the caller casts the result back. Devices must already agree.
    """
    if x.device != reference.device:
        raise ValueError(
            f"x is on {x.device} but the network's weights are on {reference.device}; "
            f"move one of them (net.to(device) or x.to(device))"
        )
    return x if x.dtype == reference.dtype else x.to(reference.dtype)


def _natural(key: str) -> list[str | int]:
    """Sort key that puts layer 2 before layer 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_AT_MOST])
    more = len(keys) - _LIST_AT_MOST
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]"


def load_mapped(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    mapping: dict[str, str],
    *,
    optional: frozenset[str] = frozenset(),
) -> None:
    """Load ``state`` into ``module`` after renaming its keys with ``mapping`` (file -> module).

    Every key of ``state`` must appear in ``mapping`` and every key of ``mapping`` must be in
    ``state``, except the file keys in ``optional`` (they keep the module's own value, e.g. the
    ``num_batches_tracked`` counter that old files lack). Shapes must agree. Missing keys are
    listed in the order of ``mapping`` (layer order), unexpected ones in natural order. Any mismatch raises
    one ValueError that lists the missing keys, the unexpected keys and the wrong shapes; the
    final ``load_state_dict`` runs with ``strict=True``.
    """
    missing = [k for k in mapping if k not in state and k not in optional]
    unexpected = sorted((k for k in state if k not in mapping), key=_natural)
    own = module.state_dict()
    shapes = []
    for key, value in state.items():
        if key in mapping and not isinstance(value, torch.Tensor):
            shapes.append(f"{key}: not a tensor ({type(value).__name__})")
        elif key in mapping and tuple(value.shape) != tuple(own[mapping[key]].shape):
            shapes.append(
                f"{key}: {tuple(value.shape)} in the file, "
                f"{tuple(own[mapping[key]].shape)} in the architecture"
            )
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listing(unexpected)}")
        if shapes:
            parts.append(f"wrong shapes {_listing(shapes)}")
        raise ValueError(
            f"the state dict does not match {type(module).__name__}: " + "; ".join(parts)
        )
    renamed = {mapping[k]: v for k, v in state.items()}
    for key in optional:
        if key not in state and key in mapping:
            renamed[mapping[key]] = own[mapping[key]]
    module.load_state_dict(renamed, strict=True)

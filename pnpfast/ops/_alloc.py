"""The one place where fast paths allocate their outputs.

Tests wrap calls in ``poisoned_outputs()`` so that every output starts as NaN: an element a
kernel forgot to write then fails the comparison with the reference.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_poison = False


def empty_output(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor shaped like ``like`` (NaN-filled inside ``poisoned_outputs``)."""
    out = torch.empty_like(like, memory_format=torch.contiguous_format)
    if _poison:
        out.fill_(float("nan"))
    return out


@contextmanager
def poisoned_outputs() -> Iterator[None]:
    """Fill every fast-path output with NaN before the kernel writes it."""
    global _poison
    previous, _poison = _poison, True
    try:
        yield
    finally:
        _poison = previous

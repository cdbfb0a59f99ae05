"""The one place where fast paths allocate their outputs.

Tests wrap calls in ``poisoned_outputs()`` so that every output starts as NaN: an element a
kernel forgot to write then fails the comparison with the reference.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

_poison = False


def empty_output(like: torch.Tensor, shape: Sequence[int] | None = None) -> torch.Tensor:
    """An uninitialised contiguous tensor with the dtype and device of ``like``, shaped like it
    or ``shape`` (NaN-filled inside ``poisoned_outputs``)."""
    if shape is None:
        out = torch.empty_like(like, memory_format=torch.contiguous_format)
    else:
        out = torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
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

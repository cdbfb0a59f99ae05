"""The one place where fast paths allocate their outputs.

Tests wrap calls in ``poisoned_outputs()`` so that every output starts as NaN: an element a
kernel forgot to write then fails the comparison with the reference.
"""

import functools
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


# Launch shape of the CUDA reduction kernels (kThreads and kResidentThreads in csrc/common.h):
# 256 threads per block, up to 2048 resident threads per SM.
CUDA_THREADS = 256
_CUDA_BLOCKS_PER_SM = 2048 // CUDA_THREADS


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def cuda_partial_blocks(device: torch.device, images: int, elems: int) -> int:
    """Blocks per image (and partial-sum slots) of a CUDA reduction kernel over ``images``
    images of ``elems`` elements: about four waves of resident blocks over the batch, and no
    more than one block per 1024 elements (a thread takes 4 floats per step)."""
    waves = _sm_count(device.index) * _CUDA_BLOCKS_PER_SM * 4
    return max(1, min(-(-elems // (4 * CUDA_THREADS)), -(-waves // max(images, 1))))

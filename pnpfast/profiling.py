"""NVTX ranges for Nsight: every phase of every solver iteration is named ``pnpfast/<phase>``.

Uses the ``nvtx`` package, whose ranges cost next to nothing when no profiler is attached;
without the package the ranges are no-ops.
"""

from contextlib import AbstractContextManager, nullcontext

import torch

try:
    import nvtx as _nvtx
except ImportError:  # pragma: no cover - nvtx is a declared dependency
    _nvtx = None

DOMAIN = "pnpfast"


def nvtx_range(name: str) -> AbstractContextManager:
    """A context manager that marks ``name`` on the NVTX timeline (domain "pnpfast").

    ``name`` must be a non-empty str (TypeError/ValueError otherwise, with or without nvtx, so
    a wrong name fails on every machine, not only under a profiler)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("name must be a non-empty str")
    if _nvtx is None or torch.compiler.is_compiling():
        return nullcontext()  # compiled graphs are marked by the profiler itself
    return _nvtx.annotate(name, domain=DOMAIN)

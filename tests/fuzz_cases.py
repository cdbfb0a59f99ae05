"""The case tables of the fuzz suite (tests/fuzz/): one row per bad or edge input.

A ``Bad`` row calls a public entry point with one bad input and states the exact exception type
and a pattern that the message must contain (the argument's name and what is wrong). A ``Good``
row is an edge input that must work: its result is compared with an independent oracle (a closed
form, a float64 computation written in the test, or the same problem in a form already checked
against an oracle elsewhere). Rows carry the entry point and the category so that
tests/fuzz/test_fuzz_coverage.py can check that every public entry point is covered.
"""

import atexit
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

# The categories of issue 17's fuzz; every row names one.
CATEGORIES = (
    "nan-inf",  # NaN or Inf in a tensor or a parameter
    "rank",  # wrong number of dimensions
    "mismatch",  # batch, channel or size mismatch between arguments
    "dtype",  # float16, bfloat16, float64, int, bool, complex
    "layout",  # non-contiguous, channels_last
    "size",  # zero, 1x1, kernels larger than the image
    "value",  # negative, zero or infinite parameters, counts out of range
    "name",  # unknown names (methods, denoisers, backends, keys)
    "meta",  # tensors on the meta device
    "denoiser",  # denoisers returning NaN or the wrong shape, dtype or type
    "file",  # corrupt, truncated, tampered or missing files
    "type",  # an argument of the wrong Python type
)


@dataclass(frozen=True)
class Bad:
    """call() must raise exactly ``error`` with a message matching ``match`` (re.search)."""

    entry: str  # the public entry point, e.g. "pnpfast.solve"
    category: str
    id: str
    call: Callable[[], object]
    error: type[BaseException]
    match: str


@dataclass(frozen=True)
class Good:
    """call() must succeed and agree with oracle() to ``atol`` (tensors or tuples of them)."""

    entry: str
    category: str
    id: str
    call: Callable[[], object]
    oracle: Callable[[], object]
    atol: float = 1e-5


def case_id(case: Bad | Good) -> str:
    return f"{case.entry}:{case.category}:{case.id}"


def check(case: Bad | Good) -> None:
    """Run one row; a failure says what the call did instead."""
    assert case.category in CATEGORIES, f"unknown category {case.category!r}"
    if isinstance(case, Bad):
        try:
            out = case.call()
        except Exception as e:  # the exact type is checked below, not by isinstance
            assert type(e) is case.error, (
                f"expected {case.error.__name__}, got {type(e).__name__}: {e}"
            )
            assert re.search(case.match, str(e)), (
                f"message {str(e)!r} does not match {case.match!r}"
            )
            return
        pytest.fail(f"no error raised; the call returned {_describe(out)}")
    got, want = case.call(), case.oracle()
    _close(got, want, case.atol)


def _close(got, want, atol: float) -> None:
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
        assert bool(torch.isfinite(got).all()), "the result holds NaN or Inf"
        err = (got.double() - want.double()).abs().max().item() if got.numel() else 0.0
        assert err <= atol, f"max abs error {err:.3g} > {atol:.3g}"
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _close(g, w, atol)
    else:
        assert abs(float(got) - float(want)) <= atol, f"{got} != {want} (atol {atol})"


def _describe(out) -> str:
    if isinstance(out, torch.Tensor):
        finite = (
            bool(torch.isfinite(out).all()) if out.numel() and out.device.type != "meta" else None
        )
        return f"a tensor of shape {tuple(out.shape)}, all finite: {finite}"
    return repr(out)[:200]


def params(cases: list[Bad | Good]):
    """pytest.mark.parametrize over a table with readable ids."""
    return pytest.mark.parametrize("case", cases, ids=[case_id(c) for c in cases])


# -- inputs and oracles shared by the tables ------------------------------------------------------


def transposed(x: torch.Tensor) -> torch.Tensor:
    """The same values as x in a non-contiguous layout (H and W strides swapped)."""
    out = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not out.is_contiguous()
    return out


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """The same values as x in channels_last layout (C > 1, so the layout really differs)."""
    out = x.contiguous(memory_format=torch.channels_last)
    assert not out.is_contiguous()
    return out


def blur_matrix(k: np.ndarray, H: int, W: int) -> np.ndarray:
    """Dense [HW, HW] circular convolution, kernel centred at (h // 2, w // 2):
    (A x)[r, c] = sum_{a, b} k[a, b] x[(r - a + h // 2) % H, (c - b + w // 2) % W]."""
    h, w = k.shape
    A = np.zeros((H * W, H * W))
    for r in range(H):
        for c in range(W):
            for a in range(h):
                for b in range(w):
                    A[r * W + c, ((r - a + h // 2) % H) * W + (c - b + w // 2) % W] += k[a, b]
    return A


_SCRATCH: dict[str, Path] = {}


def scratch_folder(table: str) -> Path:
    """A new empty folder for one row, under one temporary folder per table removed at exit."""
    if table not in _SCRATCH:
        _SCRATCH[table] = Path(tempfile.mkdtemp(prefix=f"pnpfast-fuzz-{table}-"))
        atexit.register(shutil.rmtree, _SCRATCH[table], ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=_SCRATCH[table]))

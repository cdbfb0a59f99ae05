"""Shared test setup: the Triton interpreter on CPU-only machines, devices, tolerances, data.

TRITON_INTERPRET must be set before triton is first imported, so it is set here, at the top,
when no CUDA device is visible (checked without initialising CUDA).
"""

import os
import pathlib

if not os.environ.get("CUDA_VISIBLE_DEVICES", "x") or not pathlib.Path("/dev/nvidia0").exists():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib.util

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

HAS_TRITON = importlib.util.find_spec("triton") is not None

# Tolerances per dtype for a fast path against the reference on the same inputs. The spectral
# ops do a handful of flops per element, so float32 agrees to a few ulps of the largest value.
TOLERANCES = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.float64: {"rtol": 1e-12, "atol": 1e-13},
    torch.complex64: {"rtol": 1e-5, "atol": 1e-6},
    torch.complex128: {"rtol": 1e-12, "atol": 1e-13},
}


def devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    return out


@pytest.fixture(params=devices())
def device(request) -> str:
    return request.param


def fast_backends(device: str) -> list[str]:
    """The fast backends that can run on ``device`` in this test session."""
    import pnpfast

    status = pnpfast.backends()
    out = []
    if status["triton"].available and (
        device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
    ):
        out.append("triton")
    if status["cuda"].available and device == "cuda":
        out.append("cuda")
    return out


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, *, rtol: float, atol: float, what: str = ""
):
    """Like torch.testing.assert_close, but says how many elements differ and where."""
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    a = torch.view_as_real(actual) if actual.is_complex() else actual
    e = torch.view_as_real(expected) if expected.is_complex() else expected
    a, e = a.detach().cpu().double(), e.detach().cpu().double()
    bad = ~((a - e).abs() <= atol + rtol * e.abs())
    if bad.any():
        idx = bad.nonzero()[:5].tolist()
        worst = (a - e).abs().nan_to_num(float("inf")).max().item()
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.numel()} elements differ (max abs diff {worst:.3e}, "
            f"rtol={rtol}, atol={atol}); first at {idx}"
        )


def shared_data() -> pathlib.Path:
    """../shared/data beside the repo, or skip the test with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

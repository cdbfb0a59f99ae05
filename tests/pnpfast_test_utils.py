"""Helpers shared by the tests: devices, fast backends, tolerances, a verbose comparison."""

import os

import torch

# Tolerances per dtype for a fast path against the reference on the same inputs. The spectral
# ops do a handful of flops per element, so float32 agrees to a few ulps of the largest value.
TOLERANCES = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.float64: {"rtol": 1e-12, "atol": 1e-13},
}


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def fast_backends(device: str) -> list[str]:
    """The fast backends that can run on ``device`` in this test session."""
    import pnpfast

    status = pnpfast.backends()
    out = []
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if status["triton"].available and (device == "cuda" or interpreted):
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

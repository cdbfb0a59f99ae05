"""Helpers shared by the tests: devices, fast backends, tolerances, a verbose comparison."""

import os
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
# The real images, kernels and public weights (../shared/data/MANIFEST.md); PNPFAST_SHARED_DATA
# points elsewhere, e.g. at the subset that benchmarks/gpu_pack.sh carries to a GPU machine.
SHARED_DATA = Path(os.environ.get("PNPFAST_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")

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


def assert_rel(got: torch.Tensor, want: torch.Tensor, what: str, rtol: float) -> None:
    """max |got - want| <= rtol * max |want| (relative to the largest value), saying where the
    largest error is and how many elements are over."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got - want).abs()
    scale = want.abs().max().item()
    where = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
    assert err.max().item() <= rtol * scale, (
        f"{what}: max error {err.max().item():.3g} at {where} (scale {scale:.3g}, "
        f"{int((err > rtol * scale).sum())} of {err.numel()} elements over {rtol:g} relative)"
    )


def check_orthonormal_operator(A, x: torch.Tensor, *, atol: float = 1e-10) -> None:
    """The contract of a ``pnpfast.operators.OrthonormalOperator`` on the images x (float64,
    [B, C, H, W]), against oracles that do not use the operator's own algebra:

    * adjoint: <M^T x, c> = <x, M c> for random x and coefficients c = M^T z (dot-product test);
    * isometry: M^T M c = c and ||M c|| = ||c|| (orthonormal columns);
    * projection: P = M M^T is ``project``, idempotent (P P x = P x) and symmetric;
    * prox_l2: the closed form against batched conjugate gradients on the normal equations
      (A^T A + I / gamma) x = A^T y + v / gamma, with a different gamma per image;
    * forward/adjoint are measure/lift, and the outputs keep dtype, device and batch.
    """
    from pnpfast.operators.base import batched_cg

    g = torch.Generator().manual_seed(1234)

    def rand_like(t):
        return torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device)

    def dot(a, b):
        return (a * b).flatten(1).sum(1)

    B = x.shape[0]
    c = A.measure(rand_like(x))
    assert c.dtype == x.dtype and c.device == x.device and c.shape[0] == B
    assert torch.equal(A.forward(x), A.measure(x))
    assert torch.equal(A.adjoint(c), A.lift(c))
    lifted = A.lift(c)
    assert lifted.shape == x.shape and lifted.dtype == x.dtype

    z = rand_like(x)
    lhs, rhs = dot(A.measure(z), c), dot(z, A.lift(c))
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=atol), (lhs, rhs)

    assert torch.allclose(A.measure(A.lift(c)), c, atol=atol)
    assert torch.allclose(dot(lifted, lifted), dot(c, c), rtol=1e-10, atol=atol)

    px = A.project(z)
    assert torch.allclose(px, A.lift(A.measure(z)), atol=atol)
    assert torch.allclose(A.project(px), px, atol=atol)
    w = rand_like(x)
    assert torch.allclose(dot(A.project(w), z), dot(w, px), rtol=1e-10, atol=atol)

    gamma = torch.linspace(0.3, 3.0, B, dtype=x.dtype, device=x.device)
    v = rand_like(x)
    got = A.prox_l2(v, c, gamma)
    gv = gamma.view(-1, 1, 1, 1)
    want = batched_cg(
        lambda u: A.adjoint(A.forward(u)) + u / gv,
        A.adjoint(c) + v / gv,
        v,
        max_iter=200,
        tol=1e-13,
    )
    assert torch.allclose(got, want, atol=1e-8), float((got - want).abs().max())


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` (not a package) as a fresh module."""
    import importlib.util
    import sys

    key = f"_pnpfast_bench_{name}"
    spec = importlib.util.spec_from_file_location(key, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


DEEPINV_MISSING = (
    "deepinv is not installed (the interop tests' oracle: `make deepinv` installs it as CI does)"
)


def load_deepinv():
    """(deepinv, "") or (None, why not). deepinv imports torchvision at import time; where
    torchvision cannot load beside the installed torch, benchmarks/deepinv_compat.py puts a stub
    in its place (the physics, optim and models used in the tests never call it)."""
    import importlib.util

    if importlib.util.find_spec("deepinv") is None:
        return None, DEEPINV_MISSING
    deepinv, note = load_benchmark("deepinv_compat").import_deepinv()
    return (deepinv, "") if deepinv is not None else (None, note)


def deepinv_or_skip():
    """deepinv, or a pytest skip that says why it cannot be imported."""
    import pytest

    deepinv, why = load_deepinv()
    if deepinv is None:
        pytest.skip(why)
    return deepinv

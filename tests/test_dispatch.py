"""The dispatcher: automatic order, explicit requests, the environment switch, reporting."""

import importlib
import importlib.util
import logging
import os
import statistics
import subprocess
import sys
import time

import pytest
import torch

import pnpfast
from pnpfast import dispatch
from pnpfast.dispatch import BackendError
from pnpfast.ops import (
    constrained_step_reference,
    fft_grad_reference,
    fft_prox,
    fft_prox_reference,
    pnp_update_reference,
    power_step_reference,
)
from pnpfast.ops.constrained_step import _op as constrained_step_op
from pnpfast.ops.fft_grad import _op as fft_grad_op
from pnpfast.ops.fft_prox import _op as fft_prox_op
from pnpfast.ops.pnp_update import _op as pnp_update_op
from pnpfast.ops.power_step import _op as power_step_op
from pnpfast.ops.power_step import initial_state


def inputs(B=2, C=3, H=8, W=10):
    Wr = W // 2 + 1
    v = torch.randn(B, C, H, Wr, dtype=torch.complex64)
    kty = torch.randn(B, C, H, Wr, dtype=torch.complex64)
    k2 = torch.rand(1, 1, H, Wr)
    gamma = torch.rand(B) + 0.1
    return v, kty, k2, gamma


def test_backends_reports_every_backend_with_a_reason():
    status = pnpfast.backends()
    assert list(status) == ["cuda", "triton", "reference"]
    assert status["reference"].available
    for s in status.values():
        assert s.reason
    if not torch.cuda.is_available():
        assert not status["cuda"].available
        assert "pnpfast._C" in status["cuda"].reason


def test_cpu_tensors_pick_the_reference_automatically():
    assert fft_prox_op.select(inputs()) == "reference"


def test_explicit_cuda_without_extension_raises_clearly():
    if pnpfast.backends()["cuda"].available and torch.cuda.is_available():
        pytest.skip("the CUDA extension is built here")
    with pytest.raises(BackendError, match="fft_prox: backend 'cuda' cannot run"):
        fft_prox(*inputs(), backend="cuda")


def test_unknown_backend_name_is_a_value_error():
    with pytest.raises(ValueError, match="backend must be one of"):
        fft_prox(*inputs(), backend="opencl")


def test_environment_forces_a_backend(monkeypatch):
    monkeypatch.setenv("PNPFAST_BACKEND", "reference")
    assert fft_prox_op.select(inputs()) == "reference"
    monkeypatch.setenv("PNPFAST_BACKEND", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError):
            fft_prox(*inputs())
    monkeypatch.setenv("PNPFAST_BACKEND", "fastest")
    with pytest.raises(ValueError, match="PNPFAST_BACKEND"):
        fft_prox(*inputs())


def test_argument_overrides_environment(monkeypatch):
    monkeypatch.setenv("PNPFAST_BACKEND", "cuda")
    v, kty, k2, gamma = inputs()
    out = fft_prox(v, kty, k2, gamma, backend="reference")
    torch.testing.assert_close(out, fft_prox_reference(v, kty, k2, gamma))


def test_fallback_reason_is_logged_once(caplog):
    fft_prox_op._logged.clear()
    with caplog.at_level(logging.INFO, logger="pnpfast"):
        for _ in range(3):
            fft_prox(*inputs())
    messages = [
        r.getMessage() for r in caplog.records if "skips the cuda backend" in r.getMessage()
    ]
    assert len(messages) == 1


@pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="needs the Triton interpreter"
)
def test_triton_on_cpu_only_when_asked_for():
    args = inputs()
    assert fft_prox_op.select(args) == "reference"
    assert fft_prox_op.select(args, backend="triton") == "triton"


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_import_is_cheap_and_cpu_safe(tmp_path):
    code = (
        "import sys, pnpfast, torch\n"
        "assert 'triton' not in sys.modules, 'import pnpfast imported triton'\n"
        "assert not torch.cuda.is_initialized(), 'import pnpfast initialised CUDA'\n"
        "pnpfast.backends()\n"
        "assert 'triton' not in sys.modules, 'backends() imported triton'\n"
    )
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_kernels_install_as_a_subpackage_only(tmp_path):
    code = (
        "import importlib.util\n"
        "assert importlib.util.find_spec('kernels') is None, 'a top-level kernels module is installed'\n"
        "assert importlib.util.find_spec('pnpfast.kernels.fft_prox') is not None\n"
    )
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr


def tiny_calls() -> dict:
    """Per op: (its dispatcher, its reference, positional arguments) on a 1x1x8x8 CPU input."""
    gen = torch.Generator().manual_seed(0)
    v, kty = (torch.randn(1, 1, 8, 5, generator=gen, dtype=torch.complex64) for _ in range(2))
    k2, s = torch.rand(1, 1, 8, 5, generator=gen), torch.rand(1, generator=gen) + 0.1
    x, z, f, p = (torch.rand(1, 1, 8, 8, generator=gen) for _ in range(4))
    return {
        "fft_prox": (fft_prox_op, fft_prox_reference, (v, kty, k2, s)),
        "fft_grad": (fft_grad_op, fft_grad_reference, (v, kty, k2, s, s)),
        "pnp_update": (pnp_update_op, pnp_update_reference, (f, z, x, p, torch.rand(1, 4))),
        "constrained_step": (
            constrained_step_op,
            constrained_step_reference,
            (x, z, s, s, 1, 2, f, (p > 0.5).float(), 0, None),
        ),
        "power_step": (power_step_op, power_step_reference, (x, z, initial_state(z), 1e-3, True)),
    }


def _refuse(*args, **kwargs):
    raise AssertionError("looked up a module during a dispatched call")


def test_dispatch_looks_nothing_up_after_the_first_call(monkeypatch):
    """Whether triton and pnpfast._C import is looked up once per process, not per call."""
    monkeypatch.delenv("PNPFAST_BACKEND", raising=False)
    calls = tiny_calls()
    for op, _, args in calls.values():
        op(*args)
    monkeypatch.setattr(importlib.util, "find_spec", _refuse)
    monkeypatch.setattr(importlib, "import_module", _refuse)
    for name, (op, reference, args) in calls.items():
        assert op.select(args) == "reference", name
        for backend in ("cuda", "triton"):
            assert op._reason(backend, args, dispatch._devices(args), explicit=False), name
        torch.testing.assert_close(op(*args), reference(*args), rtol=0, atol=0)
    pnpfast.backends()


def test_environment_is_read_on_every_call(monkeypatch):
    """PNPFAST_BACKEND is not cached: setting it after earlier calls takes effect at once."""
    monkeypatch.delenv("PNPFAST_BACKEND", raising=False)
    args = inputs()
    fft_prox(*args)
    monkeypatch.setenv("PNPFAST_BACKEND", "opencl")
    with pytest.raises(ValueError, match="PNPFAST_BACKEND"):
        fft_prox(*args)
    monkeypatch.setenv("PNPFAST_BACKEND", " Reference ")
    assert fft_prox_op.select(args) == "reference"


def test_clear_caches_looks_availability_up_again(monkeypatch):
    dispatch.clear_caches()
    try:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
        status = pnpfast.backends()["triton"]
        assert not status.available and "triton is not installed" in status.reason
    finally:
        monkeypatch.undo()
        dispatch.clear_caches()
    assert pnpfast.backends()["triton"].available == (
        importlib.util.find_spec("triton") is not None
    )


def _median_us(fn, args, reps: int) -> float:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(samples)


@pytest.mark.parametrize(
    "name", ["fft_prox", "fft_grad", "pnp_update", "constrained_step", "power_step"]
)
def test_dispatch_costs_under_20_us_per_call(name, monkeypatch):
    """The dispatcher adds at most 20 us to its backend on a tiny input (about 3 us here).

    The two calls are timed in alternating blocks and the smallest of several median
    differences is kept, so other work on a shared machine slows both alike or is skipped.
    """
    monkeypatch.delenv("PNPFAST_BACKEND", raising=False)
    op, reference, args = tiny_calls()[name]
    for _ in range(50):
        op(*args)
        reference(*args)
    overheads = []
    for _ in range(7):
        dispatched = _median_us(op, args, 200)
        direct = _median_us(reference, args, 200)
        overheads.append(dispatched - direct)
    assert min(overheads) < 20.0, f"{name}: dispatch overheads {overheads} us"

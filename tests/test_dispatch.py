"""The dispatcher: automatic order, explicit requests, the environment switch, reporting."""

import logging
import os
import subprocess
import sys

import pytest
import torch

import pnpfast
from pnpfast.dispatch import BackendError
from pnpfast.ops import fft_prox, fft_prox_reference
from pnpfast.ops.fft_prox import _op as fft_prox_op


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

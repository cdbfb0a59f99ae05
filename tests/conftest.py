"""Shared test setup: the Triton interpreter on CPU-only machines, the device fixture, a seed.

TRITON_INTERPRET must be set before triton is first imported, so it is set here, at the top,
when no NVIDIA device node exists (checked without initialising CUDA). Helpers that tests
import live in tests/pnpfast_test_utils.py.
"""

import os
import pathlib

if not pathlib.Path("/dev/nvidia0").exists():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
from pnpfast_test_utils import devices


@pytest.fixture(params=devices())
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

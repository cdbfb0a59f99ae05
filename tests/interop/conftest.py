"""Fixtures of the deepinv interop tests: deepinv itself, or a skip saying why it cannot be
imported, and pnpfast.interop.deepinv imported after it."""

import importlib

import pytest
from pnpfast_test_utils import deepinv_or_skip


@pytest.fixture(scope="module")
def dinv():
    """deepinv, or a skip that says why not."""
    return deepinv_or_skip()


@pytest.fixture(scope="module")
def fast(dinv):
    """pnpfast.interop.deepinv (imported after deepinv, which the compat loader may need)."""
    return importlib.import_module("pnpfast.interop.deepinv")

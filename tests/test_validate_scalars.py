"""The shared scalar checks: one wording, TypeError for a wrong type, ValueError out of range."""

import math

import numpy as np
import pytest

from pnpfast import _validate


def test_integer_accepts_numpy_and_returns_python_int():
    out = _validate.integer("n", np.int64(3), 1, 5)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("bad", [True, 2.0, "2", None, np.float32(2)])
def test_integer_wrong_type(bad):
    with pytest.raises(TypeError, match=r"^n must be an int in \[1, 5\], not "):
        _validate.integer("n", bad, 1, 5)


@pytest.mark.parametrize("bad", [0, 6, -(2**70)])
def test_integer_out_of_range(bad):
    with pytest.raises(ValueError, match=r"^f: n must be an int in \[1, 5\] \(why\), not -?\d"):
        _validate.integer("f: n", bad, 1, 5, hint="(why)")


def test_seed_bounds():
    assert _validate.seed("seed", 2**63 - 1) == 2**63 - 1
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*63 - 1\], not 9"):
        _validate.seed("seed", 2**63)
    with pytest.raises(TypeError, match=r"seed must be an int in \[0, 2\*\*63 - 1\], not bool"):
        _validate.seed("seed", False)


def test_flag():
    assert _validate.flag("f", False) is False
    with pytest.raises(TypeError, match="f must be True or False, not int 1"):
        _validate.flag("f", 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, 10**400, 1.0, -0.5])
def test_number_values(bad):
    with pytest.raises(ValueError, match=r"^eps must be a finite number in \[0, 1\), not "):
        _validate.number("eps", bad, 0, 1, high_open=True)


@pytest.mark.parametrize("bad", [True, "1", None, np.array(1.0)])
def test_number_types(bad):
    with pytest.raises(TypeError, match=r"^t must be a finite number > 0, not "):
        _validate.number("t", bad, 0, low_open=True)


def test_number_returns_float():
    out = _validate.number("t", np.float32(0.5), 0)
    assert out == 0.5 and type(out) is float

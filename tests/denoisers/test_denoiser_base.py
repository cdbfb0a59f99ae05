"""The protocol's argument checks: errors name ``x`` and ``sigma``."""

import math

import pytest
import torch

from pnpfast.denoisers import BFCNN, Denoiser, DnCNN, GaussianSmoothing, TotalVariation
from pnpfast.denoisers.base import check_image, sigma_per_image

X = torch.rand(3, 2, 9, 11)


@pytest.mark.parametrize(
    ("sigma", "expected"),
    [
        pytest.param(0.1, [0.1] * 3, id="float"),
        pytest.param(0, [0.0] * 3, id="int-zero"),
        pytest.param(torch.tensor(0.2), [0.2] * 3, id="0d-tensor"),
        pytest.param(torch.tensor([0.3]), [0.3] * 3, id="length-1"),
        pytest.param(torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64), [0.0, 0.1, 0.2], id="B"),
    ],
)
def test_sigma_per_image_forms(sigma, expected):
    s = sigma_per_image(sigma, X)
    assert s.shape == (3,)
    assert s.dtype == X.dtype and s.device == X.device
    torch.testing.assert_close(s, torch.tensor(expected, dtype=X.dtype))


@pytest.mark.parametrize(
    ("sigma", "error"),
    [
        pytest.param(torch.tensor([0.1, 0.2]), ValueError, id="wrong-length"),
        pytest.param(torch.zeros(3, 1), ValueError, id="2d-tensor"),
        pytest.param(-0.1, ValueError, id="negative-float"),
        pytest.param(torch.tensor([0.1, -0.1, 0.1]), ValueError, id="negative-tensor"),
        pytest.param(math.nan, ValueError, id="nan-float"),
        pytest.param(torch.tensor([0.1, math.nan, 0.1]), ValueError, id="nan-tensor"),
        pytest.param(math.inf, ValueError, id="inf"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param("0.1", TypeError, id="string"),
        pytest.param(None, TypeError, id="none"),
        pytest.param(torch.tensor([0.1j, 0.1j, 0.1j]), TypeError, id="complex"),
    ],
)
def test_sigma_errors_name_sigma(sigma, error):
    with pytest.raises(error, match="sigma"):
        sigma_per_image(sigma, X)
    for denoiser in (GaussianSmoothing(), TotalVariation(iterations=2)):
        with pytest.raises(error, match="sigma"):
            denoiser(X, sigma)


def test_blind_network_checks_the_form_of_sigma_only():
    net = DnCNN(channels=2, depth=3, features=4).eval()
    with pytest.raises(ValueError, match="sigma"):
        net(X, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="sigma"):
        net(X, -0.1)
    with pytest.raises(TypeError, match="sigma"):
        net(X, "0.1")
    # the values of a tensor sigma are not read by a network that ignores them
    net(X, torch.tensor([0.1, -1.0, math.nan]))


@pytest.mark.parametrize(
    ("x", "error"),
    [
        pytest.param(torch.rand(2, 9, 11), ValueError, id="3d"),
        pytest.param(torch.rand(1, 2, 2, 9, 11), ValueError, id="5d"),
        pytest.param(torch.zeros(1, 2, 9, 11, dtype=torch.int64), TypeError, id="integer"),
        pytest.param([[0.0]], TypeError, id="list"),
    ],
)
def test_x_errors_name_x(x, error):
    with pytest.raises(error, match="x"):
        check_image(x)
    for denoiser in (GaussianSmoothing(), TotalVariation(iterations=2), BFCNN(2, depth=3)):
        with pytest.raises(error, match="x"):
            denoiser(x, 0.1)


def test_network_checks_channel_count():
    with pytest.raises(ValueError, match="x has 2 channels"):
        BFCNN(channels=1, depth=3, features=4).eval()(X, 0.1)
    with pytest.raises(ValueError, match="x has 2 channels"):
        DnCNN(channels=3, depth=3, features=4).eval()(X, 0.1)
    # classical denoisers take any channel count
    assert GaussianSmoothing()(torch.rand(1, 5, 8, 8), 0.1).shape == (1, 5, 8, 8)


def test_network_checks_device():
    x = torch.empty(1, 1, 8, 8, device="meta")
    with pytest.raises(ValueError, match="x is on the meta device"):
        DnCNN(depth=3, features=4).eval()(x, 0.1)


def test_network_returns_the_dtype_of_x():
    net = DnCNN(channels=2, depth=3, features=4).eval()
    x64 = X.double()
    out = net(x64, 0.1)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, net(X, 0.1).double())


def test_base_forward_is_not_implemented():
    with pytest.raises(NotImplementedError, match="Denoiser"):
        Denoiser()(X, 0.1)

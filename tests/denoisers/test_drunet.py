"""DRUNet: shapes at any size, the noise map per image, bias-free homogeneity, the options, and
``architectures.build`` from ``config()``."""

import pytest
import torch

from pnpfast.denoisers.architectures import ARCHITECTURES, build
from pnpfast.denoisers.bfcnn import BFCNN
from pnpfast.denoisers.dncnn import DnCNN
from pnpfast.denoisers.drunet import DRUNet


def small(**options) -> DRUNet:
    torch.manual_seed(0)
    return DRUNet(options.pop("channels", 1), (4, 8, 16), 1, **options).eval()


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (5, 3), (1, 1)])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_size_and_channel_count(size, channels):
    net = small(channels=channels)
    x = torch.rand(2, channels, *size, dtype=torch.float64)
    out = net(x, 0.1)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


def test_the_formula_on_a_size_that_needs_no_padding():
    # the docstring's formula written out: head, downs, body, ups with additive skips, tail
    net = small()
    x = torch.rand(1, 1, 16, 20)
    h = [net.head(torch.cat([x, torch.full_like(x, 0.1)], 1))]
    for down in net.downs:
        h.append(down(h[-1]))
    u = net.body(h[-1])
    for k in reversed(range(len(net.ups))):
        u = net.ups[k](u + h[k + 1])
    torch.testing.assert_close(net(x, 0.1), net.tail(u + h[0]))


def test_noise_map_is_per_image():
    net = small()
    x = torch.rand(3, 1, 12, 12)
    sigma = torch.tensor([0.0, 0.1, 0.3])
    both = net(x, sigma)
    for b in range(3):
        torch.testing.assert_close(both[b : b + 1], net(x[b : b + 1], float(sigma[b])))
    assert (net(x, 0.0) - net(x, 0.3)).abs().max() > 0


def test_blind_bias_free_relu_is_positively_homogeneous_and_ignores_sigma():
    net = small(noise_map=False, bias=False)
    assert net.blind
    x = torch.rand(2, 1, 13, 18, dtype=torch.float64)
    net = net.double()
    out = net(x, 0.2)
    torch.testing.assert_close(net(7.0 * x, 0.2), 7.0 * out)
    assert torch.equal(net(x, 0.0), out)


def test_with_biases_it_is_not_homogeneous():
    net = small(noise_map=False, bias=True).double()
    for p in net.parameters():  # biases start at small values; make them matter
        if p.dim() == 1:
            p.data.fill_(0.5)
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    assert (net(3.0 * x, 0) - 3.0 * net(x, 0)).abs().max() > 1e-3


@pytest.mark.parametrize("activation", ["relu", "elu", "softplus", "silu"])
def test_activation_options_and_smooth_ones_are_differentiable_twice(activation):
    net = small(activation=activation).double()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(net(x, 0.1).square().sum(), x, create_graph=True)
    assert torch.isfinite(g).all()
    if activation != "relu":
        (h,) = torch.autograd.grad(g.sum(), x)
        assert torch.isfinite(h).all() and h.abs().max() > 0


def test_bad_options():
    with pytest.raises(ValueError, match="activation"):
        DRUNet(1, (4, 8), 1, activation="tanh")
    with pytest.raises(ValueError, match="widths"):
        DRUNet(1, (), 1)
    with pytest.raises(ValueError, match="blocks"):
        DRUNet(1, (4, 8), -1)
    with pytest.raises(ValueError, match="channels"):
        small()(torch.rand(1, 3, 8, 8), 0.1)


@pytest.mark.parametrize(
    "net",
    [
        DRUNet(3, (4, 8), 2, noise_map=False, bias=True, activation="elu"),
        DnCNN(1, 5, 8, bias=False, norm="bias-free"),
        BFCNN(3, 4, 8),
    ],
    ids=lambda n: type(n).__name__,
)
def test_build_from_config_gives_the_same_architecture(net):
    again = build(net.config())
    assert type(again) is type(net) and again.config() == net.config()
    again.load_state_dict(net.state_dict())  # same keys and shapes
    assert set(ARCHITECTURES) == {"drunet", "dncnn", "bfcnn", "gradient_step"}


def test_build_errors():
    with pytest.raises(ValueError, match="arch"):
        build({"channels": 1})
    with pytest.raises(ValueError, match="arch must be one of"):
        build({"arch": "resnet"})
    with pytest.raises(TypeError):
        build({"arch": "drunet", "depth": 3})


def test_residual_adds_the_input_and_keeps_homogeneity():
    torch.manual_seed(0)
    plain = DRUNet(3, (4, 8), 1, noise_map=False).double().eval()
    torch.manual_seed(0)
    residual = DRUNet(3, (4, 8), 1, noise_map=False, residual=True).double().eval()
    residual.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 10, 14, dtype=torch.float64)
    torch.testing.assert_close(residual(x, 0), x + plain(x, 0))
    torch.testing.assert_close(residual(2.5 * x, 0), 2.5 * residual(x, 0))
    for p in residual.parameters():
        p.data.zero_()
    assert torch.equal(residual(x, 0), x)  # zero weights: the identity
    assert build(residual.config()).residual

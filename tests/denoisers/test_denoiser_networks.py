"""BFCNN and DnCNN: forward passes against a functional oracle written here with conv2d, the
state-dict layouts of the public files (built here key by key), and homogeneity."""

import argparse

import pytest
import torch
import torch.nn.functional as F

import pnpfast.denoisers as dn
from pnpfast.denoisers import BFCNN, DnCNN
from pnpfast.denoisers.dncnn import BiasFreeBatchNorm2d

FEATURES = 8
DEPTH = 5


def rand(*shape: int, g: torch.Generator, low: float = -0.5, high: float = 0.5) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=g)


def random_layers(channels: int, bias: bool, norm: str, seed: int = 0) -> dict:
    """Random weights of a DEPTH-layer network: convs [(w, b)], norms [dict]."""
    g = torch.Generator().manual_seed(seed)
    widths = [channels] + [FEATURES] * (DEPTH - 1) + [channels]
    convs = []
    for k in range(DEPTH):
        w = rand(widths[k + 1], widths[k], 3, 3, g=g)
        convs.append((w, rand(widths[k + 1], g=g, low=-0.1, high=0.1) if bias else None))
    norms = []
    if norm != "none":
        for _ in range(DEPTH - 2):
            norms.append(
                {
                    "weight": rand(FEATURES, g=g, low=0.5, high=1.5),
                    "bias": rand(FEATURES, g=g, low=-0.1, high=0.1),
                    "running_mean": rand(FEATURES, g=g, low=-0.2, high=0.2),
                    "running_var": rand(FEATURES, g=g, low=0.5, high=2.0),
                    "num_batches_tracked": torch.tensor(7),
                }
            )
    return {"convs": convs, "norms": norms, "norm": norm}


def oracle_residual(y: torch.Tensor, layers: dict) -> torch.Tensor:
    """The network output r(y) by the formulas of MANIFEST.md, one conv2d at a time."""
    convs, norms, norm = layers["convs"], layers["norms"], layers["norm"]
    h = F.relu(F.conv2d(y, convs[0][0], convs[0][1], padding=1))
    for k in range(1, DEPTH - 1):
        h = F.conv2d(h, convs[k][0], convs[k][1], padding=1)
        if norm != "none":
            n = {key: v.view(1, -1, 1, 1) for key, v in norms[k - 1].items() if v.dim() == 1}
            if norm == "batch":
                h = (h - n["running_mean"]) / torch.sqrt(n["running_var"] + 1e-5)
                h = h * n["weight"] + n["bias"]
            elif norm == "bias-free":
                h = h / (torch.sqrt(n["running_var"]) + 1e-5) * n["weight"]
            else:  # BF-CNN: running_sd and gammas, stored here as running_var and weight
                h = h / n["running_var"] * n["weight"]
        h = F.relu(h)
    return F.conv2d(h, convs[-1][0], convs[-1][1], padding=1)


def mohan_file(layers: dict) -> dict:
    convs, norms = layers["convs"], layers["norms"]
    state = {"first_layer.weight": convs[0][0]}
    for i in range(DEPTH - 2):
        state[f"hidden_layer_list.{i}.weight"] = convs[i + 1][0]
        for key, value in norms[i].items():
            state[f"bn_layer_list.{i}.{key}"] = value
    state["last_layer.weight"] = convs[-1][0]
    if convs[0][1] is not None:
        state["first_layer.bias"] = convs[0][1]
        state["last_layer.bias"] = convs[-1][1]
        for i in range(DEPTH - 2):
            state[f"hidden_layer_list.{i}.bias"] = convs[i + 1][1]
    args = argparse.Namespace(model="dncnn", num_layers=DEPTH, bias=convs[0][1] is not None)
    return {"step": 1, "model": [state], "optimizer": None, "args": args}


def kair_file(layers: dict) -> dict:
    state = {}
    for k, (w, b) in enumerate(layers["convs"]):
        state[f"model.{2 * k}.weight"] = w
        state[f"model.{2 * k}.bias"] = b
    return state


def saoyan_file(layers: dict) -> dict:
    convs, norms = layers["convs"], layers["norms"]
    state = {"module.dncnn.0.weight": convs[0][0]}
    for i in range(DEPTH - 2):
        state[f"module.dncnn.{2 + 3 * i}.weight"] = convs[i + 1][0]
        for key in ("weight", "bias", "running_mean", "running_var"):  # no num_batches_tracked
            state[f"module.dncnn.{3 + 3 * i}.{key}"] = norms[i][key]
    state[f"module.dncnn.{3 * (DEPTH - 2) + 2}.weight"] = convs[-1][0]
    return state


def bfcnn_file(layers: dict) -> dict:
    state = {f"conv_layers.{k}.weight": w for k, (w, _) in enumerate(layers["convs"])}
    for i, n in enumerate(layers["norms"]):
        state[f"running_sd.{i}"] = n["running_var"].view(1, -1, 1, 1)
        state[f"gammas.{i}"] = n["weight"].view(1, -1, 1, 1)
    return state


LAYOUTS = [
    # load name, file builder, channels, conv biases, normalisation (as in oracle_residual)
    pytest.param("bf-dncnn", mohan_file, 1, False, "bias-free", id="mohan-bias-free"),
    pytest.param("dncnn", mohan_file, 1, True, "batch", id="mohan-with-bias"),
    pytest.param("dncnn", kair_file, 1, True, "none", id="kair"),
    pytest.param("dncnn", saoyan_file, 1, False, "batch", id="saoyan"),
    pytest.param("bfcnn", bfcnn_file, 1, False, "bfcnn", id="bfcnn-gray"),
    pytest.param("bfcnn", bfcnn_file, 3, False, "bfcnn", id="bfcnn-color"),
]


@pytest.mark.parametrize(("name", "build", "channels", "bias", "norm"), LAYOUTS)
def test_load_layout_matches_functional_oracle(name, build, channels, bias, norm, tmp_path):
    layers = random_layers(channels, bias, norm)
    path = tmp_path / "weights.pt"
    torch.save(build(layers), path)
    net = dn.load(name, path)
    assert not net.training
    assert all(not p.requires_grad for p in net.parameters())
    assert net.channels == channels and net.depth == DEPTH
    if isinstance(net, DnCNN):
        assert (net.bias, net.norm) == (bias, norm)
    y = torch.rand(2, channels, 13, 18, generator=torch.Generator().manual_seed(5))
    expected = y - oracle_residual(y, layers)
    torch.testing.assert_close(net(y, 0.1), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.residual(y), oracle_residual(y, layers), rtol=1e-5, atol=1e-6)


def scaled_pair(net: torch.nn.Module, channels: int):
    y = torch.rand(2, channels, 16, 15, generator=torch.Generator().manual_seed(1)).double()
    return net.double().eval(), y


@pytest.mark.parametrize("a", [0.25, 3.0])
def test_bfcnn_residual_is_positively_homogeneous(a, tmp_path):
    layers = random_layers(3, False, "bfcnn", seed=4)
    torch.save(bfcnn_file(layers), tmp_path / "bfcnn.pt")
    net, y = scaled_pair(dn.load("bfcnn", tmp_path / "bfcnn.pt"), 3)
    r = net.residual(y)
    assert r.abs().max() > 1e-3  # a non-trivial response
    torch.testing.assert_close(net.residual(a * y), a * r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net(a * y, 0.1), a * net(y, 0.1), rtol=1e-10, atol=1e-12)


def test_homogeneity_holds_for_bias_free_dncnn_only(tmp_path):
    torch.save(mohan_file(random_layers(1, False, "bias-free", seed=2)), tmp_path / "bf.pt")
    torch.save(mohan_file(random_layers(1, True, "batch", seed=2)), tmp_path / "b.pt")
    bf, y = scaled_pair(dn.load("bf-dncnn", tmp_path / "bf.pt"), 1)
    torch.testing.assert_close(bf(2.5 * y, 0.1), 2.5 * bf(y, 0.1), rtol=1e-10, atol=1e-12)
    with_bias, y = scaled_pair(dn.load("dncnn", tmp_path / "b.pt"), 1)
    assert not torch.allclose(with_bias(2.5 * y, 0.1), 2.5 * with_bias(y, 0.1), rtol=1e-6)


def test_train_mode_normalises_by_the_batch_statistics():
    g = torch.Generator().manual_seed(0)
    h = 2.0 + 3.0 * torch.randn(4, 6, 9, 9, generator=g)
    bn = BiasFreeBatchNorm2d(6).train()
    out = bn(h)
    sd = h.var(dim=(0, 2, 3), unbiased=False).sqrt().view(1, -1, 1, 1)
    torch.testing.assert_close(out, h / (sd + 1e-5))
    expected_var = 0.9 + 0.1 * h.var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_var, expected_var)
    net = BFCNN(channels=1, depth=4, features=5).train()
    net(torch.rand(2, 1, 8, 8, generator=g), 0.1)
    assert not torch.equal(net.running_sd[0], torch.ones(1, 5, 1, 1))


def test_constructor_checks():
    with pytest.raises(ValueError, match="depth"):
        DnCNN(depth=2)
    with pytest.raises(ValueError, match="norm"):
        DnCNN(norm="group")
    with pytest.raises(ValueError, match="depth"):
        BFCNN(depth=1)
    with pytest.raises(ValueError, match="layout"):
        DnCNN().file_keys("matconvnet")
    with pytest.raises(ValueError, match="kair"):
        DnCNN(norm="batch").file_keys("kair")

"""pnpfast.denoisers.load: names, defaults, errors for bad weight files, the public files."""

import collections

import pytest
import torch

import pnpfast.denoisers as dn


def kair_like(depth: int = 4, features: int = 6) -> dict[str, torch.Tensor]:
    widths = [1] + [features] * (depth - 1) + [1]
    state = {}
    for k in range(depth):
        state[f"model.{2 * k}.weight"] = torch.randn(widths[k + 1], widths[k], 3, 3)
        state[f"model.{2 * k}.bias"] = torch.randn(widths[k + 1])
    return state


def test_default_is_the_shipped_conditional_network_and_classical_names():
    default = dn.load()
    assert isinstance(default, dn.ByChannels) and not default.blind
    assert dn.load("blind").blind
    assert type(dn.load("tv")) is dn.TotalVariation
    assert type(dn.load("Gaussian", device="cpu")) is dn.GaussianSmoothing


def test_unknown_name():
    with pytest.raises(ValueError, match="name must be one of"):
        dn.load("drunet", "weights.pth")


@pytest.mark.parametrize("name", ["bfcnn", "bf-dncnn", "dncnn"])
def test_networks_need_weights(name, tmp_path):
    with pytest.raises(ValueError, match="weights"):
        dn.load(name)
    with pytest.raises(FileNotFoundError, match="weights"):
        dn.load(name, tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="weights"):
        dn.load(name, tmp_path)  # a directory


@pytest.mark.parametrize("name", ["tv", "conditional", "blind"])
def test_classical_and_shipped_names_refuse_weights(name, tmp_path):
    with pytest.raises(ValueError, match="weights is not used"):
        dn.load(name, tmp_path / "w.pt")


def test_loaded_network_is_frozen_and_in_eval_mode(tmp_path):
    torch.save(kair_like(), tmp_path / "w.pth")
    net = dn.load("dncnn", str(tmp_path / "w.pth"), device=torch.device("cpu"))
    assert not net.training
    assert all(not p.requires_grad for p in net.parameters())
    assert (net.depth, net.norm, net.bias) == (4, "none", True)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = kair_like()
    del state["model.4.bias"]
    state["model.4.gain"] = torch.ones(6)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"missing keys \[model\.4\.bias\]") as info:
        dn.load("dncnn", tmp_path / "w.pth")
    assert "unexpected keys [model.4.gain]" in str(info.value)
    assert "w.pth" in str(info.value)


def test_wrong_shapes_are_listed(tmp_path):
    state = kair_like()
    state["model.2.bias"] = torch.zeros(5)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"wrong shapes \[model\.2\.bias: \(5,\)"):
        dn.load("dncnn", tmp_path / "w.pth")


def test_state_dict_of_another_architecture(tmp_path):
    torch.save(kair_like(), tmp_path / "kair.pth")
    with pytest.raises(ValueError, match=r"missing keys \[conv_layers\.0\.weight") as info:
        dn.load("bfcnn", tmp_path / "kair.pth")
    assert "unexpected keys [model.0.bias" in str(info.value)
    with pytest.raises(ValueError, match=r"missing keys \[first_layer\.weight, hidden_layer"):
        dn.load("bf-dncnn", tmp_path / "kair.pth")
    torch.save({"conv_layers.0.weight": torch.zeros(8, 1, 3, 3)}, tmp_path / "bf.pt")
    with pytest.raises(ValueError, match="does not match DnCNN in any known layout"):
        dn.load("dncnn", tmp_path / "bf.pt")


def test_with_bias_file_is_refused_by_bf_dncnn(tmp_path):
    state = {"first_layer.weight": torch.zeros(4, 1, 3, 3), "first_layer.bias": torch.zeros(4)}
    torch.save({"model": [state]}, tmp_path / "mohan.pt")
    with pytest.raises(ValueError, match="biases"):
        dn.load("bf-dncnn", tmp_path / "mohan.pt")


class NotAllowed:
    """A class that weights_only loading must refuse to build."""


@pytest.mark.parametrize(
    "content",
    [
        pytest.param([torch.zeros(1)], id="a-list"),
        pytest.param({}, id="empty"),
        pytest.param({"model.0.weight": [1.0, 2.0]}, id="not-a-tensor"),
        pytest.param(collections.OrderedDict(x=NotAllowed()), id="unsafe-pickle"),
    ],
)
def test_files_that_are_not_state_dicts(content, tmp_path):
    torch.save(content, tmp_path / "w.pt")
    with pytest.raises(ValueError, match="weights"):
        dn.load("dncnn", tmp_path / "w.pt")


def test_garbage_file(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="could not be read"):
        dn.load("bfcnn", tmp_path / "w.pt")


def _public_file(folder, edit=None):
    """A small BF-CNN state dict saved as the public files are (torch.save of a dict)."""
    torch.manual_seed(0)
    state = dn.BFCNN(1, 3, 4).state_dict()
    if edit is not None:
        edit(state)
    path = folder / "bfcnn.pt"
    torch.save(state, path)
    return path


def _cut(fraction):
    def make(folder):
        path = _public_file(folder)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return make


def _poison(value):
    def edit(state):
        state["conv_layers.1.weight"].view(-1)[5] = value

    return lambda folder: _public_file(folder, edit)


def _text(folder):
    (folder / "bfcnn.pt").write_text("weights: see the README\n")
    return folder / "bfcnn.pt"


# id -> (make the file in a folder, a phrase of the ValueError's message)
CORRUPT_PUBLIC = {
    "truncated-to-half": (_cut(0.5), "truncated"),
    "truncated-by-one-byte": (_cut(0.999), "truncated"),
    "text": (_text, "text file"),
    "nan-tensor": (_poison(float("nan")), "NaN or Inf"),
    "inf-tensor": (_poison(float("-inf")), "NaN or Inf"),
}


@pytest.mark.parametrize("case", list(CORRUPT_PUBLIC))
@pytest.mark.parametrize("name", ["bfcnn", "dncnn", "bf-dncnn"])
def test_corrupt_public_files_are_errors_naming_the_file(case, name, tmp_path):
    make, phrase = CORRUPT_PUBLIC[case]
    path = make(tmp_path)
    with pytest.raises(ValueError) as info:
        dn.load(name, weights=path)
    assert str(path) in str(info.value) and phrase in str(info.value)


def test_the_good_public_file_of_the_corrupt_cases_loads(tmp_path):
    net = dn.load("bfcnn", weights=_public_file(tmp_path))
    assert isinstance(net, dn.BFCNN)


# The public files, as described in MANIFEST.md "Pretrained denoisers": how each loads.
PUBLIC = [
    ("bfcnn", "kadkhodaie_bfcnn/bfcnn_gray_bsd400_sigma0-100.pt", dn.BFCNN, 1, 20, None),
    ("bfcnn", "kadkhodaie_bfcnn/bfcnn_color_bsd300_sigma0-100.pt", dn.BFCNN, 3, 20, None),
    (
        "bf-dncnn",
        "mohan_bias_free/bf_dncnn_gray_sigma0-10.pt",
        dn.DnCNN,
        1,
        20,
        (False, "bias-free"),
    ),
    ("dncnn", "mohan_bias_free/bf_dncnn_gray_sigma0-100.pt", dn.DnCNN, 1, 20, (False, "bias-free")),
    (
        "dncnn",
        "mohan_bias_free/dncnn_withbias_gray_sigma0-100.pt",
        dn.DnCNN,
        1,
        20,
        (True, "batch"),
    ),
    ("dncnn", "kair/dncnn_25.pth", dn.DnCNN, 1, 17, (True, "none")),
    ("dncnn", "saoyan_dncnn/DnCNN-S-15.pth", dn.DnCNN, 1, 17, (False, "batch")),
    ("dncnn", "saoyan_dncnn/DnCNN-S-50.pth", dn.DnCNN, 1, 17, (False, "batch")),
    ("dncnn", "saoyan_dncnn/DnCNN-B.pth", dn.DnCNN, 1, 20, (False, "batch")),
]


@pytest.mark.shared
@pytest.mark.parametrize(("name", "weights", "cls", "channels", "depth", "options"), PUBLIC)
def test_public_files_load_on_cpu(name, weights, cls, channels, depth, options, weights_file):
    net = dn.load(name, weights_file(weights))
    assert type(net) is cls
    assert (net.channels, net.depth) == (channels, depth)
    if options is not None:
        assert (net.bias, net.norm) == options
    assert all(p.device.type == "cpu" for p in net.state_dict().values())


@pytest.mark.shared
def test_public_bfcnn_is_homogeneous(weights_file, image_set):
    net = dn.load("bfcnn", weights_file("kadkhodaie_bfcnn/bfcnn_gray_bsd400_sigma0-100.pt"))
    y = image_set("Set12", False)[0][..., 100:148, 60:108]
    y = y + 0.1 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        r = net.residual(y)
        torch.testing.assert_close(net.residual(0.4 * y), 0.4 * r, rtol=1e-4, atol=1e-5)

"""pnpfast.denoisers.weight_file: save, read, export; a failed save keeps the old file."""

import pytest
import torch

import pnpfast.denoisers as dn
from pnpfast.denoisers import weight_file
from pnpfast.denoisers.drunet import DRUNet
from pnpfast.denoisers.gradient_step import GradientStep


def tiny_gs() -> GradientStep:
    return GradientStep(DRUNet(1, (4, 8), 1, activation="elu", residual=True))


def test_round_trip_rebuilds_a_gradient_step_network(tmp_path):
    net = tiny_gs()
    path = weight_file.save_weights(net, tmp_path / "gs.pt", meta={"step": 7})
    stored = weight_file.read_weights(path)
    assert stored.config == net.config() and stored.meta == {"step": 7}
    back = weight_file.read_network(path)
    assert type(back) is GradientStep and type(back.network) is DRUNet
    assert not back.training and not any(p.requires_grad for p in back.parameters())
    for (k, a), (j, b) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == j and torch.equal(a, b)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(back(x, 0.1), net(x, 0.1), rtol=0, atol=0)
    loaded = dn.load("pnpfast", weights=path)
    assert type(loaded) is GradientStep and torch.equal(loaded(x, 0.1), back(x, 0.1))


def test_half_stores_float16_and_export_merges_meta(tmp_path):
    net = DRUNet(3, (4, 8), 1)
    source = weight_file.save_weights(net, tmp_path / "full.pt", meta={"a": 1, "b": 2})
    target = weight_file.export_weights(source, tmp_path / "half.pt", meta={"b": "x"})
    stored = weight_file.read_weights(target)
    assert stored.meta == {"a": 1, "b": "x"}
    assert all(
        v.dtype == torch.float16 for v in stored.state_dict.values() if v.is_floating_point()
    )
    back = weight_file.read_network(target)
    for key, value in net.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(back.state_dict()[key], expected), key


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = weight_file.save_weights(DRUNet(1, (4, 8), 1), tmp_path / "w.pt", meta={"v": 1})
    before = path.read_bytes()

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 the start of a zip")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="simulated"):
        weight_file.save_weights(DRUNet(1, (4, 8), 1), path, meta={"v": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        weight_file.read_weights(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a torch file")
    with pytest.raises(ValueError, match=r"garbage\.pt could not be read"):
        weight_file.read_weights(garbage)
    other = tmp_path / "state.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match=r"state\.pt is not a pnpfast weight file"):
        weight_file.read_network(other)
    wrong = tmp_path / "wrong.pt"
    weight_file.save_weights(DRUNet(1, (4, 8), 1), wrong)
    obj = torch.load(wrong, weights_only=True)
    obj["config"]["widths"] = [4, 16]
    torch.save(obj, wrong)
    with pytest.raises(ValueError, match=r"(?s)wrong\.pt: .*size mismatch"):
        weight_file.read_network(wrong)
    with pytest.raises(TypeError, match="has no config"):
        weight_file.save_weights(torch.nn.Conv2d(1, 1, 3), tmp_path / "conv.pt")

"""pnpfast.denoisers.weight_file: save, read, export; a failed save keeps the old file; corrupt
and tampered files are errors naming the file (issue 17)."""

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import pnpfast.denoisers as dn
from pnpfast.cli import main
from pnpfast.denoisers import weight_file
from pnpfast.denoisers.catalog import SHIPPED
from pnpfast.denoisers.drunet import DRUNet
from pnpfast.denoisers.gradient_step import GradientStep
from pnpfast.denoisers.shipped import shipped_path
from pnpfast.io import write_image


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
    obj["sha256"] = weight_file.file_checksum(obj["state_dict"], obj["config"], obj["meta"])
    torch.save(obj, wrong)
    with pytest.raises(ValueError, match=r"(?s)wrong\.pt: .*size mismatch"):
        weight_file.read_network(wrong)
    with pytest.raises(TypeError, match="has no config"):
        weight_file.save_weights(torch.nn.Conv2d(1, 1, 3), tmp_path / "conv.pt")


# ---- corrupt and tampered files (issue 17): every one is an error naming the file ----------


def _good(folder: Path) -> Path:
    torch.manual_seed(0)
    return weight_file.save_weights(DRUNet(1, (4, 8), 1), folder / "good.pt", meta={"v": 1})


def _largest_record(path: Path) -> tuple[int, int]:
    """(offset, size) in the file of the bytes of the largest tensor storage (``.../data/N``),
    read from the zip archive's own headers."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename and i.file_size > 0),
            key=lambda i: i.file_size,
        )
    assert info.compress_type == zipfile.ZIP_STORED
    with path.open("rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.file_size


def _flip(path: Path, start: int, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


def flipped_in_tensor_data(folder: Path) -> Path:
    path = _good(folder)
    offset, size = _largest_record(path)
    assert size >= 128
    _flip(path, offset + size // 2 - 32)
    return path


def flipped_in_the_middle(folder: Path) -> Path:
    path = _good(folder)
    _flip(path, path.stat().st_size // 2 - 32)
    return path


def truncated(fraction: float) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = _good(folder)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return make


def text(folder: Path) -> Path:
    path = folder / "notes.pt"
    path.write_text("hello, these are not weights\n")
    return path


def empty(folder: Path) -> Path:
    path = folder / "empty.pt"
    path.write_bytes(b"")
    return path


def with_value(value: float) -> Callable[[Path], Path]:
    """A file written by save_weights (valid checksum) whose network holds ``value``."""

    def make(folder: Path) -> Path:
        net = DRUNet(1, (4, 8), 1)
        with torch.no_grad():
            next(iter(net.parameters())).view(-1)[3] = value
        return weight_file.save_weights(net, folder / "nonfinite.pt")

    return make


def edited(edit: Callable[[dict], None]) -> Callable[[Path], Path]:
    """A good file, loaded, edited in memory and saved again with torch.save (the stored
    checksum is kept as it was)."""

    def make(folder: Path) -> Path:
        path = _good(folder)
        obj = torch.load(path, weights_only=True)
        edit(obj)
        torch.save(obj, path)
        return path

    return make


def _scale_a_tensor(obj: dict) -> None:
    key = next(iter(obj["state_dict"]))
    obj["state_dict"][key] = obj["state_dict"][key] * 1.001


def _reshape_a_tensor(obj: dict) -> None:
    key = next(k for k, v in obj["state_dict"].items() if v.dim() == 4)
    obj["state_dict"][key] = obj["state_dict"][key].reshape(-1)


def _widen(obj: dict) -> None:
    """A config that does not fit the tensors, checksummed again (as if written so)."""
    obj["config"]["widths"] = [4, 16]
    obj["sha256"] = weight_file.file_checksum(obj["state_dict"], obj["config"], obj["meta"])


def a_directory(folder: Path) -> Path:
    path = folder / "folder.pt"
    path.mkdir()
    return path


def a_plain_state_dict(folder: Path) -> Path:
    path = folder / "state.pt"
    torch.save(DRUNet(1, (4, 8), 1).state_dict(), path)
    return path


# id -> (make the file in a folder, the exception, a phrase of its message)
CORRUPT = {
    "flipped-64-bytes-in-tensor-data": (flipped_in_tensor_data, ValueError, "checksum mismatch"),
    "flipped-64-bytes-mid-file": (flipped_in_the_middle, ValueError, ""),
    "truncated-to-half": (truncated(0.5), ValueError, "truncated"),
    "truncated-to-100-bytes": (truncated(100 / 12000), ValueError, "truncated"),
    "truncated-by-one-byte": (truncated(0.9999), ValueError, "truncated"),
    "text": (text, ValueError, "text file"),
    "empty": (empty, ValueError, "empty file"),
    "nan-tensor": (with_value(float("nan")), ValueError, "NaN or Inf"),
    "inf-tensor": (with_value(float("inf")), ValueError, "NaN or Inf"),
    "tensor-changed-after-save": (edited(_scale_a_tensor), ValueError, "checksum mismatch"),
    "tensor-reshaped-after-save": (edited(_reshape_a_tensor), ValueError, "checksum mismatch"),
    "no-config": (edited(lambda o: o.pop("config")), ValueError, "no 'config'"),
    "no-state-dict": (edited(lambda o: o.pop("state_dict")), ValueError, "no 'state_dict'"),
    "no-meta": (edited(lambda o: o.pop("meta")), ValueError, "no 'meta'"),
    "config-not-a-dict": (edited(lambda o: o.update(config=[1])), ValueError, "must be a dict"),
    "config-without-arch": (edited(lambda o: o["config"].pop("arch")), ValueError, "config"),
    "state-not-tensors": (
        edited(lambda o: o.update(state_dict={"a": 1.0}, sha256=None)),
        ValueError,
        "not named tensors",
    ),
    "wrong-shapes-for-the-architecture": (edited(_widen), ValueError, "size mismatch"),
    "a-directory": (a_directory, ValueError, "is a directory"),
    "a-plain-state-dict": (a_plain_state_dict, ValueError, "not a pnpfast weight file"),
    "missing": (lambda folder: folder / "absent.pt", FileNotFoundError, "not found"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
@pytest.mark.parametrize("reader", ["read_network", "load", "export"])
def test_corrupt_files_are_errors_naming_the_file(case, reader, tmp_path):
    make, error, phrase = CORRUPT[case]
    path = make(tmp_path)
    read = {
        "read_network": weight_file.read_network,
        "load": lambda p: dn.load("pnpfast", weights=p),
        "export": lambda p: weight_file.export_weights(p, tmp_path / "exported.pt"),
    }[reader]
    with pytest.raises(error) as info:
        read(path)
    assert str(path) in str(info.value)
    assert phrase in str(info.value)
    assert not (tmp_path / "exported.pt").exists()


def test_flipped_tensor_bytes_are_invisible_to_torch(tmp_path):
    """The flip of CORRUPT lands in tensor data: torch.load reads the file without complaint
    and gets other weights, so only the checksum can refuse it."""
    original = torch.load(_good(tmp_path), weights_only=True)["state_dict"]
    flipped = torch.load(flipped_in_tensor_data(tmp_path), weights_only=True)["state_dict"]
    changed = [k for k in original if not torch.equal(original[k], flipped[k])]
    assert len(changed) == 1
    assert all(torch.equal(original[k], flipped[k]) for k in original if k not in changed)


def test_file_without_checksum_still_loads(tmp_path):
    path = _good(tmp_path)
    obj = torch.load(path, weights_only=True)
    assert isinstance(obj["sha256"], str) and len(obj["sha256"]) == 64
    del obj["sha256"]
    torch.save(obj, tmp_path / "old.pt")
    back = weight_file.read_network(tmp_path / "old.pt")
    for key, value in weight_file.read_network(path).state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_shipped_files_carry_the_checksum():
    for kind in SHIPPED:
        for channels in (1, 3):
            path = shipped_path(kind, channels)
            obj = torch.load(path, weights_only=True)
            assert isinstance(obj.get("sha256"), str), path
            weight_file.read_weights(path)


@pytest.mark.parametrize("case", ["flipped-64-bytes-in-tensor-data", "truncated-to-half", "text"])
def test_cli_refuses_bad_weight_files_naming_them(case, tmp_path, capsys):
    path = CORRUPT[case][0](tmp_path)
    np.save(tmp_path / "k.npy", np.full((3, 3), 1 / 9, dtype=np.float32))
    image = tmp_path / "in.png"
    write_image(image, torch.full((1, 1, 16, 16), 0.5))
    kernel = ["--kernel", str(tmp_path / "k.npy"), "--noise", "5", "-o", str(tmp_path / "out")]
    code = main(["deblur", str(image), *kernel, "--denoiser", "pnpfast", "--weights", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err
    assert main(["export", str(path), str(tmp_path / "exported.pt")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and not (tmp_path / "exported.pt").exists()
    assert not (tmp_path / "out").exists()

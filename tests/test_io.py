"""pnpfast.io: image round trips, atomic writes, kernel files, and errors that name the file."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from pnpfast_test_utils import SHARED_DATA

from pnpfast import io
from pnpfast.io import (
    ImageReadError,
    KernelReadError,
    read_image,
    read_kernel,
    side_by_side,
    write_image,
)

SHARED_KERNELS = SHARED_DATA / "kernels"


def _rand_image(c, h, w, seed=0):
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))


def _quantised(x):
    return (x.clamp(0, 1) * 255).round() / 255


# ---------------------------------------------------------------------------------------------
# images


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
@pytest.mark.parametrize("c", [1, 3], ids=["gray", "rgb"])
def test_lossless_round_trip(tmp_path, ext, c):
    x = _rand_image(c, 13, 21)
    path = tmp_path / f"img{ext}"
    write_image(path, x)
    y = read_image(path)
    assert y.shape == (1, c, 13, 21)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, _quantised(x), atol=1e-7, rtol=0)


def test_jpeg_round_trip_is_close(tmp_path):
    x = torch.linspace(0, 1, 32).expand(1, 3, 24, 32).contiguous()
    write_image(tmp_path / "a.jpg", x)
    y = read_image(tmp_path / "a.jpg")
    assert y.shape == x.shape
    assert (y - x).abs().mean() < 0.02


def test_write_accepts_chw_and_clamps_and_rounds(tmp_path):
    x = torch.tensor([[[-0.5, 0.0, 0.5 / 255, 1.6 / 255, 1.0, 2.0]]], dtype=torch.float64)
    write_image(tmp_path / "a.png", x)  # [C, H, W]
    a = np.asarray(Image.open(tmp_path / "a.png"))
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, [[0, 0, 0, 2, 255, 255]])


def test_read_16bit_png_scaled_by_65535(tmp_path):
    a = (np.arange(20 * 30, dtype=np.uint32) * 109 % 65536).astype(np.uint16).reshape(20, 30)
    a[0, 0], a[0, 1] = 0, 65535
    Image.fromarray(a).save(tmp_path / "deep.png")
    x = read_image(tmp_path / "deep.png")
    assert x.shape == (1, 1, 20, 30)
    np.testing.assert_allclose(x[0, 0].numpy(), a / 65535.0, rtol=0, atol=1e-7)
    assert x[0, 0, 0, 1] == 1.0


def test_read_drops_alpha_and_expands_palette(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (9, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    x = read_image(tmp_path / "rgba.png")
    assert x.shape == (1, 3, 9, 7)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), rgba[..., :3] / 255.0, atol=1e-7)

    pal = Image.fromarray(rgba[..., :3], "RGB").quantize(colors=16)
    pal.save(tmp_path / "pal.png")
    y = read_image(tmp_path / "pal.png")
    want = np.asarray(pal.convert("RGB")) / 255.0
    assert y.shape == (1, 3, 9, 7)
    np.testing.assert_allclose(y[0].permute(1, 2, 0).numpy(), want, atol=1e-7)


def test_missing_image_names_path(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageReadError, match=r"nope\.png") as info:
        read_image(path)
    assert info.value.path == str(path)
    assert "no such file" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_not_an_image_names_path(tmp_path):
    path = tmp_path / "junk.png"
    path.write_bytes(b"this is not a png file at all")
    with pytest.raises(ImageReadError, match=r"junk\.png"):
        read_image(path)


def test_truncated_image_names_path(tmp_path):
    write_image(tmp_path / "full.png", _rand_image(3, 64, 64))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_image(tmp_path / "cut.png")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_image(tmp_path / "a.png", _rand_image(3, 8, 8))
    write_image(tmp_path / "a.png", _rand_image(3, 8, 8, seed=1))  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    torch.testing.assert_close(read_image(tmp_path / "a.png"), _quantised(_rand_image(3, 8, 8, 1)))


def _failing_save(self, fp, format=None, **kwargs):
    fp.write(b"\x89PNG half of an image")  # some bytes reach the file, then the encoder dies
    raise OSError("disk full (simulated)")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(OSError, match="simulated"):
        write_image(tmp_path / "out.png", _rand_image(3, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    old = _rand_image(1, 8, 8)
    write_image(tmp_path / "out.png", old)
    before = (tmp_path / "out.png").read_bytes()
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(OSError, match="simulated"):
        write_image(tmp_path / "out.png", _rand_image(1, 8, 8, seed=3))
    assert (tmp_path / "out.png").read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_failed_rename_cleans_up(tmp_path, monkeypatch):
    def no_replace(src, dst):
        raise PermissionError("rename refused (simulated)")

    monkeypatch.setattr(io.os, "replace", no_replace)
    with pytest.raises(PermissionError):
        write_image(tmp_path / "out.png", _rand_image(3, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="one image"):
        write_image(tmp_path / "a.png", torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        write_image(tmp_path / "a.png", torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "a.png", torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="extension"):
        write_image(tmp_path / "a.xyz", torch.rand(1, 1, 4, 4))
    assert list(tmp_path.iterdir()) == []


def test_written_file_has_ordinary_permissions(tmp_path):
    write_image(tmp_path / "a.png", _rand_image(1, 4, 4))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------------------------
# side_by_side


def test_side_by_side_mixed_channels_and_heights():
    a = torch.zeros(1, 1, 5, 4)
    b = torch.full((1, 3, 7, 2), 0.5)
    out = side_by_side([a, b], gap=3)
    assert out.shape == (1, 3, 7, 4 + 3 + 2)
    assert (out[:, :, :5, :4] == 0).all()  # gray repeated to three channels
    assert (out[:, :, 5:, :4] == 1).all()  # padded below with white
    assert (out[:, :, :, 4:7] == 1).all()  # the white gap
    assert (out[:, :, :, 7:] == 0.5).all()


def test_side_by_side_gray_only_and_no_gap():
    a, b = torch.zeros(1, 1, 3, 3), torch.ones(1, 1, 3, 2) * 0.25
    out = side_by_side([a, b], gap=0)
    assert out.shape == (1, 1, 3, 5)
    assert torch.equal(out, torch.cat([a, b], dim=-1))
    with pytest.raises(ValueError):
        side_by_side([])
    with pytest.raises(ValueError):
        side_by_side([torch.zeros(1, 3, 3)])


# ---------------------------------------------------------------------------------------------
# kernels


def _kernel(h=7, w=5, seed=0):
    k = np.random.default_rng(seed).random((h, w))
    return k / k.sum()


def test_kernel_npy_2d_and_stack(tmp_path):
    k = _kernel().astype(np.float32)
    np.save(tmp_path / "k.npy", k)
    got = read_kernel(tmp_path / "k.npy")
    assert got.dtype == torch.float32
    assert got.shape == (7, 5)
    np.testing.assert_array_equal(got.numpy(), k)

    stack = np.stack([_kernel(seed=s) for s in range(3)])  # [n, h, w]
    np.save(tmp_path / "s.npy", stack)
    np.testing.assert_allclose(
        read_kernel(tmp_path / "s.npy", index=2).numpy(), stack[2], atol=1e-7
    )
    with pytest.raises(KernelReadError, match="out of range"):
        read_kernel(tmp_path / "s.npy", index=3)


def test_kernel_npy_not_normalised(tmp_path):
    np.save(tmp_path / "k.npy", np.ones((3, 3)))
    assert read_kernel(tmp_path / "k.npy").sum().item() == pytest.approx(9.0)


def test_kernel_png_gray_normalised(tmp_path):
    a = np.zeros((9, 9), dtype=np.uint8)
    a[4, 2:7] = [50, 100, 255, 100, 50]
    Image.fromarray(a).save(tmp_path / "k.png")
    k = read_kernel(tmp_path / "k.png")
    assert k.shape == (9, 9)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(k.numpy(), a / a.sum(), atol=1e-7)


def test_kernel_png_rejects_colour_and_black(tmp_path):
    rgb = np.zeros((5, 5, 3), dtype=np.uint8)
    rgb[2, 2] = [255, 0, 0]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(KernelReadError, match=r"c\.png"):
        read_kernel(tmp_path / "c.png")
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(tmp_path / "z.png")
    with pytest.raises(KernelReadError, match=r"z\.png"):
        read_kernel(tmp_path / "z.png")


def test_kernel_mat_v5_first_2d_and_key(tmp_path):
    k1, k2 = _kernel(seed=1), _kernel(9, 9, seed=2)
    path = tmp_path / "k.mat"
    scipy.io.savemat(path, {"note": "motion", "k1": k1, "k2": k2})
    np.testing.assert_allclose(read_kernel(path).numpy(), k1, atol=1e-7)
    np.testing.assert_allclose(read_kernel(path, key="k2").numpy(), k2, atol=1e-7)
    with pytest.raises(KernelReadError, match="no variable 'k3'"):
        read_kernel(path, key="k3")
    with pytest.raises(KernelReadError, match="single kernel"):
        read_kernel(path, index=1)


def test_kernel_mat_v5_cell_and_stack(tmp_path):
    kernels = [_kernel(5 + 2 * i, 5 + 2 * i, seed=i) for i in range(3)]
    cell = np.empty((1, 3), dtype=object)
    for i, k in enumerate(kernels):
        cell[0, i] = k
    stack = np.stack(kernels[:1] * 2 + [kernels[0] * 2], axis=-1)  # MATLAB h x w x n
    scipy.io.savemat(tmp_path / "c.mat", {"kernels": cell})
    scipy.io.savemat(tmp_path / "s.mat", {"stack": stack})
    for i in range(3):
        got = read_kernel(tmp_path / "c.mat", index=i)
        np.testing.assert_allclose(got.numpy(), kernels[i], atol=1e-7)
    np.testing.assert_allclose(
        read_kernel(tmp_path / "s.mat", index=2).numpy(), 2 * kernels[0], atol=1e-6
    )
    with pytest.raises(KernelReadError, match="out of range"):
        read_kernel(tmp_path / "c.mat", index=5)


def _matlab_v73(path: Path, variables: dict):
    """A minimal MATLAB v7.3 file: a 512-byte header, then HDF5 with transposed arrays."""
    h5py = pytest.importorskip("h5py")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            if isinstance(value, list):  # a 1 x n cell
                ref_list = []
                for i, k in enumerate(value):
                    d = refs.create_dataset(f"r{name}{i}", data=np.asarray(k).T)
                    d.attrs["MATLAB_class"] = np.bytes_("double")
                    ref_list.append(d.ref)
                ds = f.create_dataset(
                    name, data=np.array(ref_list, dtype=h5py.ref_dtype).reshape(-1, 1)
                )
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                ds = f.create_dataset(name, data=np.asarray(value).T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")


def test_kernel_mat_v73_matrix_and_cell(tmp_path):
    k = _kernel(7, 5, seed=4)  # non-square: catches a missing transpose
    _matlab_v73(tmp_path / "m.mat", {"k": k})
    np.testing.assert_allclose(read_kernel(tmp_path / "m.mat").numpy(), k, atol=1e-7)

    kernels = [_kernel(3 + i, 4 + i, seed=i) for i in range(3)]
    _matlab_v73(tmp_path / "c.mat", {"kernels": kernels})
    for i in range(3):
        got = read_kernel(tmp_path / "c.mat", key="kernels", index=i)
        np.testing.assert_allclose(got.numpy(), kernels[i], atol=1e-7)


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_KERNELS.is_dir(), reason="needs ../shared/data/kernels")
def test_kernel_mat_files_of_the_shared_data():
    pytest.importorskip("h5py")
    levin = SHARED_KERNELS / "Levin09.mat"  # v7.3, a cell of 8
    for i in (0, 3, 7):
        want = np.load(SHARED_KERNELS / "levin09" / f"levin09_k{i + 1}.npy")
        np.testing.assert_allclose(read_kernel(levin, index=i).numpy(), want, atol=1e-7)
    k12 = np.load(SHARED_KERNELS / "kernels_12.npy")  # v5, a 1 x 12 cell
    for i in (0, 9, 11):
        got = read_kernel(SHARED_KERNELS / "kernels_12.mat", index=i)
        np.testing.assert_array_equal(got.numpy(), k12[i])


def test_kernel_rejects_nan_and_zero_sum(tmp_path):
    k = _kernel()
    k[1, 1] = np.nan
    np.save(tmp_path / "nan.npy", k)
    with pytest.raises(KernelReadError, match=r"nan\.npy.*NaN"):
        read_kernel(tmp_path / "nan.npy")
    z = np.zeros((5, 5))
    z[0, 0], z[4, 4] = 1.0, -1.0
    np.save(tmp_path / "zero.npy", z)
    with pytest.raises(KernelReadError, match=r"zero\.npy.*positive sum"):
        read_kernel(tmp_path / "zero.npy")
    scipy.io.savemat(tmp_path / "zero.mat", {"k": np.zeros((3, 3))})
    with pytest.raises(KernelReadError, match=r"zero\.mat.*positive sum"):
        read_kernel(tmp_path / "zero.mat")


def test_kernel_missing_and_corrupt_files_name_path(tmp_path):
    for name in ("gone.npy", "gone.mat", "gone.png"):
        with pytest.raises(KernelReadError, match=name.replace(".", r"\.")):
            read_kernel(tmp_path / name)
    for name in ("bad.npy", "bad.mat", "bad.png"):
        (tmp_path / name).write_bytes(b"\x00garbage" * 40)
        with pytest.raises(KernelReadError, match=name.replace(".", r"\.")):
            read_kernel(tmp_path / name)
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2, 2)))
    with pytest.raises(KernelReadError, match="cube"):
        read_kernel(tmp_path / "cube.npy")
    (tmp_path / "k.txt").write_text("1 2 3")
    with pytest.raises(KernelReadError, match="unknown kernel format"):
        read_kernel(tmp_path / "k.txt")


# ---------------------------------------------------------------------------------------------
# read_image_file / write_image_file: bit depth and alpha kept


def _samples(c, depth, seed, h=5, w=7):
    """Random integer samples [1, c, h, w] with 0 and the maximum among them."""
    top = 2**depth - 1
    q = torch.randint(0, top + 1, (1, c, h, w), generator=torch.Generator().manual_seed(seed))
    q[0, 0, 0, 0], q[0, -1, -1, -1] = 0, top
    return q


def _as_int(x, depth):
    return (x.double() * (2**depth - 1)).round().long()


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("c", [1, 3], ids=["gray", "rgb"])
@pytest.mark.parametrize("with_alpha", [False, True], ids=["opaque", "alpha"])
def test_image_file_round_trip_is_exact(tmp_path, ext, depth, c, with_alpha):
    top = 2**depth - 1
    q = _samples(c, depth, seed=c + depth)
    qa = _samples(1, depth, seed=7) if with_alpha else None
    path = tmp_path / f"a{ext}"
    io.write_image_file(
        path, q.double() / top, alpha=None if qa is None else qa / top, bit_depth=depth
    )
    f = io.read_image_file(path)
    assert f.bit_depth == depth and f.format == ("png" if ext == ".png" else "tiff")
    assert f.pixels.shape == (1, c, 5, 7) and f.pixels.dtype == torch.float32
    assert torch.equal(_as_int(f.pixels, depth), q)
    if qa is None:
        assert f.alpha is None
    else:
        assert f.alpha.shape == (1, 1, 5, 7) and torch.equal(_as_int(f.alpha, depth), qa)
    # read(write(read(file))): the float32 samples written back give the same file content
    io.write_image_file(tmp_path / f"b{ext}", f.pixels, alpha=f.alpha, bit_depth=f.bit_depth)
    g = io.read_image_file(tmp_path / f"b{ext}")
    assert torch.equal(g.pixels, f.pixels) and g.bit_depth == depth
    assert (g.alpha is None) == (f.alpha is None)
    if f.alpha is not None:
        assert torch.equal(g.alpha, f.alpha)


def _png_decode_filter0(data: bytes) -> tuple[dict, np.ndarray]:
    """Decode a PNG whose rows all use filter 0, written out here from the specification."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (n,) = np.frombuffer(data[pos : pos + 4], ">u4")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        crc = int(np.frombuffer(data[pos + 8 + n : pos + 12 + n], ">u4")[0])
        import zlib

        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            w, h = np.frombuffer(body[:8], ">u4")
            ihdr = {"w": int(w), "h": int(h), "depth": body[8], "colour": body[9]}
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    import zlib

    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(ihdr["h"], -1)
    assert (raw[:, 0] == 0).all()
    return ihdr, raw[:, 1:].copy().view(">u2").reshape(ihdr["h"], ihdr["w"], -1)


def test_16bit_png_encoder_follows_the_specification(tmp_path):
    q = _samples(3, 16, seed=3)
    qa = _samples(1, 16, seed=4)
    io.write_image_file(tmp_path / "a.png", q / 65535.0, alpha=qa / 65535.0, bit_depth=16)
    ihdr, a = _png_decode_filter0((tmp_path / "a.png").read_bytes())
    assert ihdr == {"w": 7, "h": 5, "depth": 16, "colour": 6}  # RGBA
    np.testing.assert_array_equal(a[..., :3], q[0].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(a[..., 3], qa[0, 0].numpy())


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filtered(samples: np.ndarray) -> bytes:
    """Scanlines of [h, w, s] 16-bit samples, row i with filter type i % 5 (none, sub, up,
    average, Paeth), encoded in plain Python from the PNG specification."""
    h, _, s = samples.shape
    bpp = 2 * s
    rows = [bytes(samples[i].astype(">u2").tobytes()) for i in range(h)]
    out, prev = b"", bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        ft = i % 5
        enc = bytearray()
        for j, x in enumerate(row):
            a = row[j - bpp] if j >= bpp else 0
            b = prev[j]
            c = prev[j - bpp] if j >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ft]
            enc.append((x - pred) % 256)
        out += bytes([ft]) + bytes(enc)
        prev = row
    return out


# Adam7 passes: (first row, first column, row step, column step)
_ADAM7 = [
    (0, 0, 8, 8),
    (0, 4, 8, 8),
    (4, 0, 8, 4),
    (0, 2, 4, 4),
    (2, 0, 4, 2),
    (0, 1, 2, 2),
    (1, 0, 2, 1),
]


def _png16_all_filters(samples: np.ndarray, colour: int, interlace: bool = False) -> bytes:
    """A 16-bit PNG with all five row filters, optionally Adam7-interlaced (each pass a small
    image of its own), as other software writes them."""
    import struct
    import zlib

    h, w, _ = samples.shape
    if interlace:
        passes = [samples[r::dr, c::dc] for r, c, dr, dc in _ADAM7]
        out = b"".join(_filtered(p) for p in passes if p.shape[0] and p.shape[1])
    else:
        out = _filtered(samples)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, int(interlace)))
        + chunk(b"IDAT", zlib.compress(out))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("s", "colour"), [(1, 0), (2, 4), (3, 2), (4, 6)], ids=["g", "ga", "rgb", "rgba"]
)
@pytest.mark.parametrize("interlace", [False, True], ids=["progressive", "adam7"])
def test_16bit_png_of_other_software_is_read_exactly(tmp_path, s, colour, interlace):
    a = np.random.default_rng(s).integers(0, 65536, (11, 10, s)).astype(np.uint16)
    (tmp_path / "x.png").write_bytes(_png16_all_filters(a, colour, interlace))
    f = io.read_image_file(tmp_path / "x.png")
    assert f.bit_depth == 16
    c = 1 if s <= 2 else 3
    np.testing.assert_array_equal(_as_int(f.pixels, 16)[0].permute(1, 2, 0).numpy(), a[..., :c])
    if s in (2, 4):
        np.testing.assert_array_equal(_as_int(f.alpha, 16)[0, 0].numpy(), a[..., -1])
    else:
        assert f.alpha is None


def test_tiff_written_by_tifffile_is_read_exactly(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    a = np.random.default_rng(0).integers(0, 65536, (4, 6, 5)).astype(np.uint16)  # [S, H, W]
    tifffile.imwrite(
        tmp_path / "p.tif",
        a,
        photometric="rgb",
        planarconfig="separate",
        extrasamples=["unassalpha"],
    )
    f = io.read_image_file(tmp_path / "p.tif")
    assert f.bit_depth == 16 and f.format == "tiff"
    np.testing.assert_array_equal(_as_int(f.pixels, 16)[0].numpy(), a[:3])
    np.testing.assert_array_equal(_as_int(f.alpha, 16)[0, 0].numpy(), a[3])
    # and ours read by tifffile: gray + alpha, contiguous
    x = _samples(1, 16, seed=5)
    al = _samples(1, 16, seed=6)
    io.write_image_file(tmp_path / "o.tiff", x / 65535.0, alpha=al / 65535.0, bit_depth=16)
    b = tifffile.imread(tmp_path / "o.tiff")
    assert b.dtype == np.uint16 and b.shape == (5, 7, 2)
    np.testing.assert_array_equal(b[..., 0], x[0, 0].numpy())
    np.testing.assert_array_equal(b[..., 1], al[0, 0].numpy())


def test_8bit_alpha_of_pillow_files(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    f = io.read_image_file(tmp_path / "rgba.png")
    assert f.bit_depth == 8 and f.pixels.shape == (1, 3, 4, 5)
    np.testing.assert_array_equal(_as_int(f.pixels, 8)[0].permute(1, 2, 0).numpy(), rgba[..., :3])
    np.testing.assert_array_equal(_as_int(f.alpha, 8)[0, 0].numpy(), rgba[..., 3])
    gray = np.array([[0, 10, 20], [30, 0, 40]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "trns.png", transparency=0)  # tRNS: 0 is transparent
    g = io.read_image_file(tmp_path / "trns.png")
    assert g.pixels.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(_as_int(g.pixels, 8)[0, 0].numpy(), gray)
    np.testing.assert_array_equal(_as_int(g.alpha, 8)[0, 0].numpy(), np.where(gray == 0, 0, 255))
    Image.fromarray(rgba[..., :3]).save(tmp_path / "a.jpg")
    j = io.read_image_file(tmp_path / "a.jpg")
    assert (j.format, j.bit_depth, j.alpha) == ("jpeg", 8, None)


def test_write_image_file_rounds_and_clips(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    x = torch.tensor([[[-0.2, 0.0, 0.4 / 65535, 1.6 / 65535, 65534.6 / 65535, 1.0, 1.3]]])
    io.write_image_file(tmp_path / "r.tif", x.double(), bit_depth=16)
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "r.tif"), [[0, 0, 0, 2, 65535, 65535, 65535]]
    )
    io.write_image_file(tmp_path / "r.png", x.double(), bit_depth=8)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "r.png")), [[0, 0, 0, 0, 255, 255, 255]]
    )


def test_write_image_file_refuses_bad_input_and_writes_nothing(tmp_path):
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="pixels contains NaN"):
        io.write_image_file(
            tmp_path / "a.png", torch.full((1, 3, 4, 4), float("nan")), bit_depth=16
        )
    with pytest.raises(ValueError, match="alpha contains NaN"):
        io.write_image_file(tmp_path / "a.png", x, alpha=torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="bit_depth must be 8 or 16, not 12"):
        io.write_image_file(tmp_path / "a.png", x, bit_depth=12)
    with pytest.raises(TypeError, match="bit_depth must be an int"):
        io.write_image_file(tmp_path / "a.png", x, bit_depth="16")
    with pytest.raises(ValueError, match="alpha must have the height and width"):
        io.write_image_file(tmp_path / "a.png", x, alpha=torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"only \.png and \.tif/\.tiff hold 16-bit"):
        io.write_image_file(tmp_path / "a.jpg", x, bit_depth=16)
    assert list(tmp_path.iterdir()) == []


class _Crash(OSError):
    pass


@pytest.mark.parametrize(("ext", "depth"), [(".png", 8), (".png", 16), (".tif", 16)])
def test_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch, ext, depth):
    path = tmp_path / f"out{ext}"
    io.write_image_file(path, torch.rand(1, 3, 6, 6), bit_depth=depth)
    before = path.read_bytes()
    real = io.atomic_open

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[: len(data) // 2])
            self.f.flush()
            raise _Crash("killed mid-write (simulated)")

        def __getattr__(self, name):
            return getattr(self.f, name)

    import contextlib

    @contextlib.contextmanager
    def crashing(p, mode="wb"):
        with real(p, mode) as f:
            yield HalfWriter(f)

    monkeypatch.setattr(io, "atomic_open", crashing)
    with pytest.raises(_Crash):
        io.write_image_file(
            path, torch.rand(1, 3, 6, 6), alpha=torch.rand(1, 1, 6, 6), bit_depth=depth
        )
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_read_image_file_errors_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"gone\.png.*no such file"):
        io.read_image_file(tmp_path / "gone.png")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 20)
    with pytest.raises(ImageReadError, match=r"bad\.tif.*corrupt"):
        io.read_image_file(tmp_path / "bad.tif")
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((3, 3), np.float32))
    with pytest.raises(ImageReadError, match=r"f\.tif.*float32 samples.*read_image reads"):
        io.read_image_file(tmp_path / "f.tif")
    with pytest.raises(TypeError, match="path must be a str"):
        io.read_image_file(3)


def test_tiff_codecs_tifffile_lacks_are_read_through_pillow(tmp_path):
    # LZW needs imagecodecs in tifffile; Pillow (libtiff) decodes 8-bit RGBA and 16-bit gray whole
    rgba = np.random.default_rng(2).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.tif", compression="tiff_lzw")
    f = io.read_image_file(tmp_path / "c.tif")
    assert (f.format, f.bit_depth) == ("tiff", 8)
    np.testing.assert_array_equal(_as_int(f.pixels, 8)[0].permute(1, 2, 0).numpy(), rgba[..., :3])
    np.testing.assert_array_equal(_as_int(f.alpha, 8)[0, 0].numpy(), rgba[..., 3])
    g16 = np.random.default_rng(3).integers(0, 65536, (6, 7)).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g.tif", compression="tiff_lzw")
    g = io.read_image_file(tmp_path / "g.tif")
    assert g.bit_depth == 16 and g.alpha is None
    np.testing.assert_array_equal(_as_int(g.pixels, 16)[0, 0].numpy(), g16)
    bits = np.random.default_rng(4).random((5, 9)) > 0.5
    Image.fromarray(bits).save(tmp_path / "b.tif", compression="group4")
    b = io.read_image_file(tmp_path / "b.tif")
    assert b.bit_depth == 8
    np.testing.assert_array_equal(_as_int(b.pixels, 8)[0, 0].numpy(), np.where(bits, 255, 0))

"""Fuzz table (issue 17) of image and kernel files, the bundled data, the dispatcher, NVTX
ranges: pnpfast.io, pnpfast.data, pnpfast.dispatch, the PNPFAST_BACKEND and TRITON_INTERPRET
variables and pnpfast.profiling.nvtx_range. Training and the command line are in
test_fuzz_train_cli.py.

Files are written on the fly into a temporary folder (removed at exit): truncated, damaged,
empty and text files, images in every Pillow mode the reader takes. Good rows compare with
what Pillow, NumPy or SciPy wrote or read independently of pnpfast.
"""

import contextlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import scipy.io
import torch
from fuzz_cases import Bad, Good, check, params, scratch_folder
from PIL import Image
from skimage import data as skdata

from pnpfast import dispatch, io
from pnpfast.data import astronaut, camera, motion_kernel
from pnpfast.denoisers import registry
from pnpfast.dispatch import BackendError
from pnpfast.io import ImageReadError, KernelReadError
from pnpfast.ops import fft_prox
from pnpfast.profiling import nvtx_range

# ---------------------------------------------------------------------------------------------
# files written on the fly


def folder() -> Path:
    """A new empty folder for one row (removed at exit)."""
    return scratch_folder("io")


GRAY8 = (np.arange(48, dtype=np.uint8) * 5).reshape(6, 8)
GRAY16 = (np.arange(48, dtype=np.uint16) * 1365).reshape(6, 8)  # up to 64155
RGB8 = (np.arange(6 * 8 * 3, dtype=np.uint8) * 1).reshape(6, 8, 3)


def _save(name: str, pixels: np.ndarray, mode: str | None = None, **options) -> Path:
    path = folder() / name
    img = Image.fromarray(pixels, mode=mode) if mode else Image.fromarray(pixels)
    img.save(path, **options)
    return path


def _bytes(name: str, content: bytes) -> Path:
    path = folder() / name
    path.write_bytes(content)
    return path


def _noise_png(suffix: str = ".png") -> bytes:
    """A 64x64 random gray image encoded as PNG or JPEG (large enough to cut in the data)."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    path = folder() / f"whole{suffix}"
    Image.fromarray(pixels).save(path)
    return path.read_bytes()


def _truncated(suffix: str) -> Path:
    whole = _noise_png(suffix)
    return _bytes(f"cut{suffix}", whole[: len(whole) // 2])


def _damaged_png() -> Path:
    whole = bytearray(_noise_png())
    whole[200:260] = bytes(60)  # zeros in the middle of the compressed data
    return _bytes("damaged.png", bytes(whole))


def _mkdir(name: str) -> Path:
    path = folder() / name
    path.mkdir()
    return path


def _npy(name: str, array: np.ndarray) -> Path:
    path = folder() / name
    np.save(path, array)
    return path


def _bomb_png() -> Path:
    """A PNG header announcing 30000x30000 pixels (beyond Pillow's decompression-bomb guard)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return _bytes("bomb.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def _npz_as_npy() -> Path:
    path = folder() / "several.npz"
    np.savez(path, a=np.ones((3, 3)), b=np.ones((3, 3)))
    return path.rename(path.with_suffix(".npy"))


def _mat(name: str = "k.mat") -> Path:
    path = folder() / name
    stack = np.stack([np.full((3, 3), 1.0), np.arange(9.0).reshape(3, 3) + 1], axis=-1)
    scipy.io.savemat(path, {"k": np.ones((3, 3)) / 9, "s": stack})
    return path


def _read_back(path: Path) -> torch.Tensor:
    """An 8-bit file read by Pillow alone: [C, H, W] float64 on [0, 1]."""
    a = np.asarray(Image.open(path), dtype=np.float64) / 255.0
    return torch.from_numpy(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))


def _written(name: str, x: torch.Tensor) -> torch.Tensor:
    path = folder() / name
    io.write_image(path, x)
    return _read_back(path)


def _grid(channels: int, h: int = 4, w: int = 5) -> np.ndarray:
    """Distinct 8-bit levels, [C, H, W] uint8."""
    return (np.arange(channels * h * w) * 7 % 256).astype(np.uint8).reshape(channels, h, w)


def _as_image(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return (torch.from_numpy(a.astype(np.float64)) / 255.0).to(dtype)[None]


def _f64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# ---------------------------------------------------------------------------------------------
# read_image

RI = "pnpfast.io.read_image"
READ_IMAGE = [
    Bad(
        RI,
        "file",
        "missing",
        lambda: io.read_image(folder() / "nope.png"),
        ImageReadError,
        r"nope\.png: no such file",
    ),
    Bad(
        RI, "file", "directory", lambda: io.read_image(folder()), ImageReadError, r"is a directory"
    ),
    Bad(
        RI,
        "file",
        "empty",
        lambda: io.read_image(_bytes("e.png", b"")),
        ImageReadError,
        r"e\.png: the file is empty",
    ),
    Bad(
        RI,
        "file",
        "text",
        lambda: io.read_image(_bytes("t.png", b"hello")),
        ImageReadError,
        r"t\.png: not an image file",
    ),
    Bad(
        RI,
        "file",
        "truncated-png",
        lambda: io.read_image(_truncated(".png")),
        ImageReadError,
        r"cut\.png: corrupt or truncated",
    ),
    Bad(
        RI,
        "file",
        "truncated-jpeg",
        lambda: io.read_image(_truncated(".jpg")),
        ImageReadError,
        r"cut\.jpg: corrupt or truncated",
    ),
    Bad(
        RI,
        "file",
        "damaged-png",
        lambda: io.read_image(_damaged_png()),
        ImageReadError,
        r"damaged\.png: corrupt or truncated",
    ),
    Bad(
        RI,
        "nan-inf",
        "nan-float-tiff",
        lambda: io.read_image(_save("nan.tif", np.full((3, 3), np.nan, np.float32))),
        ImageReadError,
        r"nan\.tif: floating-point samples contain NaN",
    ),
    Bad(
        RI,
        "value",
        "int32-beyond-16-bit",
        lambda: io.read_image(_save("i32.tif", np.array([[-5, 70000]], np.int32))),
        ImageReadError,
        r"i32\.tif: 32-bit integer samples outside the 16-bit range",
    ),
    Bad(
        RI,
        "size",
        "decompression-bomb",
        lambda: io.read_image(_bomb_png()),
        ImageReadError,
        r"bomb\.png: too large for Pillow's guard .* raise PIL\.Image\.MAX_IMAGE_PIXELS",
    ),
    Bad(
        RI,
        "type",
        "path-none",
        lambda: io.read_image(None),
        TypeError,
        r"path must be a str or os\.PathLike, not NoneType",
    ),
    Bad(
        RI,
        "type",
        "path-int",
        lambda: io.read_image(3),
        TypeError,
        r"path must be a str or os\.PathLike, not int",
    ),
    Good(
        RI,
        "dtype",
        "16-bit-gray-png",
        lambda: io.read_image(_save("g16.png", GRAY16)),
        lambda: _f64(GRAY16 / 65535.0)[None, None],
        1e-7,
    ),
    Good(
        RI,
        "dtype",
        "16-bit-gray-tiff",
        lambda: io.read_image(_save("g16.tif", GRAY16)),
        lambda: _f64(GRAY16 / 65535.0)[None, None],
        1e-7,
    ),
    Good(
        RI,
        "dtype",
        "8-bit-gray",
        lambda: io.read_image(_save("g8.png", GRAY8)),
        lambda: _f64(GRAY8 / 255.0)[None, None],
        1e-7,
    ),
    Good(
        RI,
        "dtype",
        "rgba-drops-alpha",
        lambda: io.read_image(_save("rgba.png", np.dstack([RGB8, np.full((6, 8), 7, np.uint8)]))),
        lambda: _f64(RGB8.transpose(2, 0, 1) / 255.0)[None],
        1e-7,
    ),
    Good(
        RI,
        "dtype",
        "gray-alpha",
        lambda: io.read_image(_save("la.png", np.dstack([GRAY8, GRAY8[::-1]]), "LA")),
        lambda: _f64(GRAY8 / 255.0)[None, None],
        1e-7,
    ),
    Good(
        RI,
        "dtype",
        "palette",
        lambda: io.read_image(_palette_png()),
        lambda: _f64(PALETTE[PAL_INDEX].transpose(2, 0, 1) / 255.0)[None],
        1e-7,
    ),
    Good(
        RI,
        "dtype",
        "1-bit",
        lambda: io.read_image(_save("bw.png", GRAY8 > 100)),
        lambda: _f64(GRAY8 > 100)[None, None],
        0.0,
    ),
    Good(
        RI,
        "value",
        "float-tiff-clipped",
        lambda: io.read_image(_save("f.tif", np.array([[-1.0, 0.25, 2.0]], np.float32))),
        lambda: _f64([[[[0.0, 0.25, 1.0]]]]),
        0.0,
    ),
    Good(
        RI,
        "file",
        "png-named-jpg",
        lambda: io.read_image(_save("png.jpg", GRAY8, format="PNG")),
        lambda: _f64(GRAY8 / 255.0)[None, None],
        1e-7,
    ),
    Good(
        RI,
        "size",
        "1x1",
        lambda: io.read_image(_save("one.png", GRAY8[:1, :1])),
        lambda: _f64(GRAY8[:1, :1] / 255.0)[None, None],
        1e-7,
    ),
]

PALETTE = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30]], dtype=np.uint8)
PAL_INDEX = (np.arange(48) % 3).reshape(6, 8)


def _palette_png() -> Path:
    img = Image.fromarray(PAL_INDEX.astype(np.uint8), mode="P")
    img.putpalette(PALETTE.reshape(-1).tolist())
    path = folder() / "pal.png"
    img.save(path)
    return path


# ---------------------------------------------------------------------------------------------
# write_image

WI = "pnpfast.io.write_image"
X = torch.rand(1, 1, 4, 4)
WRITE_IMAGE = [
    Bad(
        WI,
        "nan-inf",
        "nan",
        lambda: _written("o.png", torch.full((1, 1, 2, 2), float("nan"))),
        ValueError,
        r"x contains NaN or Inf",
    ),
    Bad(
        WI,
        "nan-inf",
        "inf",
        lambda: _written("o.png", torch.full((1, 3, 2, 2), float("inf"))),
        ValueError,
        r"x contains NaN or Inf",
    ),
    Bad(
        WI,
        "rank",
        "2-d",
        lambda: _written("o.png", torch.rand(4, 4)),
        ValueError,
        r"x must have shape \[1, C, H, W\] or \[C, H, W\]",
    ),
    Bad(
        WI,
        "rank",
        "5-d",
        lambda: _written("o.png", torch.rand(1, 1, 1, 4, 4)),
        ValueError,
        r"x must have shape \[1, C, H, W\]",
    ),
    Bad(
        WI,
        "mismatch",
        "batch-2",
        lambda: _written("o.png", torch.rand(2, 1, 4, 4)),
        ValueError,
        r"x must hold one image",
    ),
    Bad(
        WI,
        "mismatch",
        "2-channels",
        lambda: _written("o.png", torch.rand(1, 2, 4, 4)),
        ValueError,
        r"x must have shape .* C = 1 or 3",
    ),
    Bad(
        WI,
        "dtype",
        "uint8",
        lambda: _written("o.png", torch.zeros(1, 1, 4, 4, dtype=torch.uint8)),
        TypeError,
        r"x must be floating point .* not torch\.uint8",
    ),
    Bad(
        WI,
        "dtype",
        "bool",
        lambda: _written("o.png", torch.zeros(1, 1, 4, 4, dtype=torch.bool)),
        TypeError,
        r"x must be floating point",
    ),
    Bad(
        WI,
        "dtype",
        "complex",
        lambda: _written("o.png", torch.zeros(1, 1, 4, 4, dtype=torch.complex64)),
        TypeError,
        r"x must be floating point",
    ),
    Bad(
        WI,
        "meta",
        "meta",
        lambda: _written("o.png", torch.zeros(1, 1, 4, 4, device="meta")),
        ValueError,
        r"x is on the meta device",
    ),
    Bad(
        WI,
        "size",
        "zero-height",
        lambda: _written("o.png", torch.zeros(1, 1, 0, 4)),
        ValueError,
        r"x has a dimension of size 0",
    ),
    Bad(
        WI,
        "type",
        "numpy",
        lambda: _written("o.png", np.zeros((1, 4, 4))),
        TypeError,
        r"x must be a torch\.Tensor",
    ),
    Bad(
        WI,
        "type",
        "path-none",
        lambda: io.write_image(None, X),
        TypeError,
        r"path must be a str or os\.PathLike, not NoneType",
    ),
    Bad(
        WI,
        "name",
        "unknown-extension",
        lambda: _written("o.xyz", X),
        ValueError,
        r"o\.xyz from its extension; use \.png",
    ),
    Bad(
        WI,
        "name",
        "no-extension",
        lambda: _written("noext", X),
        ValueError,
        r"noext from its extension",
    ),
    Bad(
        WI,
        "name",
        "read-only-format",
        lambda: _written("o.psd", X),
        ValueError,
        r"o\.psd: Pillow reads PSD files but cannot write them",
    ),
    Bad(
        WI,
        "file",
        "format-cannot-hold-rgb",
        lambda: _written("o.xbm", torch.rand(1, 3, 4, 4)),
        OSError,
        r"cannot write .*o\.xbm as XBM: cannot write mode RGB",
    ),
    Bad(
        WI,
        "file",
        "missing-folder",
        lambda: io.write_image(folder() / "no" / "o.png", X),
        FileNotFoundError,
        r"cannot write .*o\.png: the folder .*no does not exist",
    ),
    Bad(
        WI,
        "file",
        "folder-is-a-file",
        lambda: io.write_image(_bytes("afile", b"x") / "o.png", X),
        NotADirectoryError,
        r"cannot write .*afile/o\.png: .*afile is a file, not a folder",
    ),
    Bad(
        WI,
        "file",
        "path-is-a-folder",
        lambda: io.write_image(_mkdir("d.png"), X),
        IsADirectoryError,
        r"cannot write .*: it is a folder",
    ),
    # sysfs refuses new files, to root too
    Bad(
        WI,
        "file",
        "unwritable-folder",
        lambda: io.write_image("/sys/o.png", X),
        PermissionError,
        r"cannot write /sys/o\.png: Permission denied",
    ),
    # the documented clamp to [0, 1] and 8-bit rounding, read back by Pillow
    Good(
        WI,
        "value",
        "out-of-range-clamped",
        lambda: _written("clamp.png", torch.tensor([[[[-0.5, 0.31, 1.7, 0.999]]]])),
        lambda: _f64([[[0.0, 79 / 255, 1.0, 1.0]]]),
        1e-12,
    ),
    Good(
        WI,
        "dtype",
        "float64",
        lambda: _written("f64.png", _as_image(_grid(3), torch.float64)),
        lambda: _f64(_grid(3) / 255.0),
        1e-12,
    ),
    Good(
        WI,
        "dtype",
        "float16",
        lambda: _written("f16.png", _as_image(_grid(1), torch.float16)),
        lambda: _f64(_grid(1) / 255.0),
        1e-12,
    ),
    Good(
        WI,
        "dtype",
        "bfloat16",
        lambda: _written("bf16.png", _as_image(_grid(1)).bfloat16()),
        # bfloat16 keeps 8 bits of mantissa: the level can move by one near 1
        lambda: _f64(_grid(1) / 255.0),
        1.0 / 255 + 1e-12,
    ),
    Good(
        WI,
        "layout",
        "channels-last",
        lambda: _written("cl.png", _as_image(_grid(3)).to(memory_format=torch.channels_last)),
        lambda: _f64(_grid(3) / 255.0),
        1e-12,
    ),
    Good(
        WI,
        "layout",
        "transposed",
        lambda: _written("tr.png", _as_image(_grid(1)).transpose(2, 3)),
        lambda: _f64(_grid(1).transpose(0, 2, 1) / 255.0),
        1e-12,
    ),
    Good(
        WI,
        "rank",
        "chw",
        lambda: _written("chw.png", _as_image(_grid(3))[0]),
        lambda: _f64(_grid(3) / 255.0),
        1e-12,
    ),
    Good(
        WI,
        "size",
        "1x1",
        lambda: _written("one.png", _as_image(_grid(1, 1, 1))),
        lambda: _f64(_grid(1, 1, 1) / 255.0),
        1e-12,
    ),
    Good(
        WI,
        "layout",
        "requires-grad",
        lambda: _written("g.png", _as_image(_grid(1)).requires_grad_()),
        lambda: _f64(_grid(1) / 255.0),
        1e-12,
    ),
]

# ---------------------------------------------------------------------------------------------
# side_by_side

SB = "pnpfast.io.side_by_side"
G1 = torch.zeros(1, 1, 3, 2)
SIDE_BY_SIDE = [
    Bad(
        SB,
        "size",
        "empty-list",
        lambda: io.side_by_side([]),
        ValueError,
        r"side_by_side needs at least one image",
    ),
    Bad(
        SB,
        "type",
        "tensor-not-list",
        lambda: io.side_by_side(G1),
        TypeError,
        r"images must be a list of \[1, C, H, W\] tensors, not Tensor",
    ),
    Bad(
        SB,
        "type",
        "iterator",
        lambda: io.side_by_side(iter([G1])),
        TypeError,
        r"images must be a list",
    ),
    Bad(
        SB,
        "value",
        "gap-negative",
        lambda: io.side_by_side([G1], gap=-1),
        ValueError,
        r"gap must be an int >= 0, not -1",
    ),
    Bad(
        SB,
        "type",
        "gap-float",
        lambda: io.side_by_side([G1], gap=1.5),
        TypeError,
        r"gap must be an int >= 0, not float 1\.5",
    ),
    Bad(
        SB,
        "type",
        "gap-bool",
        lambda: io.side_by_side([G1], gap=True),
        TypeError,
        r"gap must be an int >= 0, not bool True",
    ),
    Bad(
        SB,
        "mismatch",
        "2-channels",
        lambda: io.side_by_side([G1, torch.rand(1, 2, 3, 2)]),
        ValueError,
        r"images\[1\] must have 1 or 3 channels, got 2",
    ),
    Bad(
        SB,
        "rank",
        "3-d",
        lambda: io.side_by_side([torch.rand(1, 3, 2)]),
        ValueError,
        r"images\[0\] must be a \[1, C, H, W\] tensor, got \(1, 3, 2\)",
    ),
    Bad(
        SB,
        "mismatch",
        "batch-2",
        lambda: io.side_by_side([torch.rand(2, 1, 3, 2)]),
        ValueError,
        r"images\[0\] must be a \[1, C, H, W\] tensor",
    ),
    Bad(
        SB,
        "type",
        "numpy",
        lambda: io.side_by_side([G1, np.zeros((1, 1, 3, 2))]),
        TypeError,
        r"images\[1\] must be a \[1, C, H, W\] tensor, not ndarray",
    ),
    Bad(
        SB,
        "dtype",
        "uint8",
        lambda: io.side_by_side([G1.to(torch.uint8)]),
        TypeError,
        r"images\[0\] must be floating point",
    ),
    Bad(
        SB,
        "meta",
        "meta",
        lambda: io.side_by_side([G1, G1.to("meta")]),
        ValueError,
        r"images\[1\] is on the meta device",
    ),
    Bad(
        SB,
        "size",
        "zero-width",
        lambda: io.side_by_side([torch.zeros(1, 1, 3, 0)]),
        ValueError,
        r"images\[0\] has a dimension of size 0",
    ),
    Good(
        SB,
        "dtype",
        "mixed-dtypes-take-the-first",
        lambda: io.side_by_side([G1, torch.full((1, 1, 3, 1), 0.5, dtype=torch.float64)], gap=1),
        lambda: _f64([[[[0, 0, 1, 0.5]] * 3]]),
        0.0,
    ),
    Good(
        SB,
        "mismatch",
        "gray-and-color-heights",
        lambda: io.side_by_side([torch.zeros(1, 1, 1, 1), torch.full((1, 3, 2, 1), 0.25)], gap=0),
        lambda: _f64(np.broadcast_to([[0.0, 0.25], [1.0, 0.25]], (1, 3, 2, 2)).copy()),
        0.0,
    ),
    Good(
        SB,
        "size",
        "one-image-no-gap",
        lambda: io.side_by_side([G1 + 0.5], gap=0),
        lambda: _f64(np.full((1, 1, 3, 2), 0.5)),
        0.0,
    ),
]

# ---------------------------------------------------------------------------------------------
# read_kernel

RK = "pnpfast.io.read_kernel"
STACK = np.stack([np.ones((3, 3)), np.arange(9.0).reshape(3, 3) + 1])
READ_KERNEL = [
    Bad(
        RK,
        "nan-inf",
        "nan",
        lambda: io.read_kernel(_npy("nan.npy", np.full((3, 3), np.nan))),
        KernelReadError,
        r"nan\.npy: the kernel contains NaN or Inf",
    ),
    Bad(
        RK,
        "nan-inf",
        "inf",
        lambda: io.read_kernel(_npy("inf.npy", np.array([[np.inf, 1.0], [1.0, 1.0]]))),
        KernelReadError,
        r"inf\.npy: the kernel contains NaN or Inf",
    ),
    Bad(
        RK,
        "value",
        "negative-sum",
        lambda: io.read_kernel(_npy("neg.npy", -np.ones((3, 3)))),
        KernelReadError,
        r"neg\.npy: the kernel must have a positive sum, got -9",
    ),
    Bad(
        RK,
        "value",
        "all-zero",
        lambda: io.read_kernel(_npy("zero.npy", np.zeros((3, 3)))),
        KernelReadError,
        r"zero\.npy: the kernel must have a positive sum, got 0",
    ),
    Bad(
        RK,
        "rank",
        "1-d",
        lambda: io.read_kernel(_npy("v.npy", np.ones(3))),
        KernelReadError,
        r"v\.npy: expected a \[h, w\] kernel or an \[n, h, w\] stack, got \(3,\)",
    ),
    Bad(
        RK,
        "size",
        "empty",
        lambda: io.read_kernel(_npy("e.npy", np.ones((0, 3)))),
        KernelReadError,
        r"e\.npy: a kernel must be a non-empty 2-D array",
    ),
    Bad(
        RK,
        "dtype",
        "bool",
        lambda: io.read_kernel(_npy("b.npy", np.ones((3, 3), bool))),
        KernelReadError,
        r"b\.npy: holds a bool array, not real numbers",
    ),
    Bad(
        RK,
        "dtype",
        "complex",
        lambda: io.read_kernel(_npy("c.npy", np.ones((3, 3), complex))),
        KernelReadError,
        r"c\.npy: holds a complex128 array",
    ),
    Bad(
        RK,
        "file",
        "npz-named-npy",
        lambda: io.read_kernel(_npz_as_npy()),
        KernelReadError,
        r"several\.npy: holds several arrays \(\.npz\)",
    ),
    Bad(
        RK,
        "file",
        "text-npy",
        lambda: io.read_kernel(_bytes("t.npy", b"0.1 0.2\n")),
        KernelReadError,
        r"t\.npy: not a \.npy file",
    ),
    Bad(
        RK,
        "file",
        "truncated-npy",
        lambda: io.read_kernel(
            _bytes("cut.npy", _npy("w.npy", np.ones((9, 9))).read_bytes()[:100])
        ),
        KernelReadError,
        r"cut\.npy: not a readable \.npy array",
    ),
    Bad(
        RK,
        "value",
        "index-out-of-range",
        lambda: io.read_kernel(_npy("s.npy", STACK), index=5),
        KernelReadError,
        r"s\.npy: index 5 is out of range for a stack of 2",
    ),
    Bad(
        RK,
        "value",
        "index-of-single",
        lambda: io.read_kernel(_npy("k.npy", np.ones((3, 3))), index=1),
        KernelReadError,
        r"k\.npy: the array holds a single kernel; index 1 does not apply",
    ),
    Bad(
        RK,
        "value",
        "index-negative",
        lambda: io.read_kernel(_npy("s.npy", STACK), index=-1),
        ValueError,
        r"index must be an int >= 0, not -1",
    ),
    Bad(
        RK,
        "type",
        "index-float",
        lambda: io.read_kernel(_npy("s.npy", STACK), index=1.0),
        TypeError,
        r"index must be an int >= 0, not float 1\.0",
    ),
    Bad(
        RK,
        "type",
        "index-bool",
        lambda: io.read_kernel(_npy("s.npy", STACK), index=True),
        TypeError,
        r"index must be an int >= 0, not bool True",
    ),
    Bad(
        RK,
        "name",
        "key-on-npy",
        lambda: io.read_kernel(_npy("k.npy", np.ones((3, 3))), key="k"),
        KernelReadError,
        r"k\.npy: key names a MATLAB variable and applies to \.mat files only",
    ),
    Bad(
        RK,
        "type",
        "key-int",
        lambda: io.read_kernel(_mat(), key=3),
        TypeError,
        r"key must be a str .* not int",
    ),
    Bad(
        RK,
        "name",
        "unknown-mat-key",
        lambda: io.read_kernel(_mat(), key="zz"),
        KernelReadError,
        r"k\.mat: no variable 'zz'; it holds \['k', 's'\]",
    ),
    Bad(
        RK,
        "value",
        "mat-stack-index",
        lambda: io.read_kernel(_mat(), key="s", index=2),
        KernelReadError,
        r"k\.mat: index 2 is out of range for stack 's' of 2",
    ),
    Bad(
        RK,
        "file",
        "text-mat",
        lambda: io.read_kernel(_bytes("t.mat", b"hello")),
        KernelReadError,
        r"t\.mat: not a readable MATLAB file",
    ),
    Bad(
        RK,
        "file",
        "truncated-mat",
        lambda: io.read_kernel(_bytes("cut.mat", _mat().read_bytes()[:150])),
        KernelReadError,
        r"cut\.mat: not a readable MATLAB file",
    ),
    Bad(
        RK,
        "file",
        "missing",
        lambda: io.read_kernel(folder() / "none.npy"),
        KernelReadError,
        r"none\.npy: no such file",
    ),
    Bad(
        RK,
        "file",
        "directory",
        lambda: io.read_kernel(folder()),
        KernelReadError,
        r"is a directory",
    ),
    Bad(
        RK,
        "name",
        "unknown-format",
        lambda: io.read_kernel(_save("k.jpg", GRAY8)),
        KernelReadError,
        r"k\.jpg: unknown kernel format '\.jpg'; use \.npy, \.png or \.mat",
    ),
    Bad(
        RK,
        "value",
        "black-png",
        lambda: io.read_kernel(_save("black.png", GRAY8 * 0)),
        KernelReadError,
        r"black\.png: the image is black",
    ),
    Bad(
        RK,
        "value",
        "color-png",
        lambda: io.read_kernel(_save("rgb.png", RGB8)),
        KernelReadError,
        r"rgb\.png: a kernel image must be grayscale",
    ),
    Bad(
        RK,
        "file",
        "truncated-png",
        lambda: io.read_kernel(_truncated(".png")),
        KernelReadError,
        r"cut\.png: corrupt or truncated",
    ),
    Bad(
        RK,
        "type",
        "path-none",
        lambda: io.read_kernel(None),
        TypeError,
        r"path must be a str or os\.PathLike, not NoneType",
    ),
    Good(
        RK,
        "type",
        "numpy-int-index",
        lambda: io.read_kernel(_npy("s.npy", STACK), index=np.int64(1)),
        lambda: _f64(STACK[1]),
        0.0,
    ),
    Good(
        RK,
        "value",
        "mat-stack-index-1",
        lambda: io.read_kernel(_mat(), key="s", index=1),
        lambda: _f64(np.arange(9.0).reshape(3, 3) + 1),
        0.0,
    ),
    Good(
        RK,
        "value",
        "mat-first-2-d",
        lambda: io.read_kernel(_mat()),
        lambda: _f64(np.ones((3, 3)) / 9),
        1e-7,
    ),
    # documented: negative entries are kept as stored when the sum is positive (bicubic kernels)
    Good(
        RK,
        "value",
        "negative-entries",
        lambda: io.read_kernel(_npy("bic.npy", np.array([[-0.5, 1.0], [1.0, -0.25]]))),
        lambda: _f64([[-0.5, 1.0], [1.0, -0.25]]),
        0.0,
    ),
    Good(
        RK,
        "value",
        "png-normalised",
        lambda: io.read_kernel(_save("kp.png", GRAY8)),
        lambda: _f64(GRAY8 / GRAY8.sum()),
        1e-7,
    ),
    Good(
        RK,
        "size",
        "1x1",
        lambda: io.read_kernel(_npy("one.npy", np.array([[2.5]]))),
        lambda: _f64([[2.5]]),
        0.0,
    ),
]

# ---------------------------------------------------------------------------------------------
# pnpfast.data


def _motion_closed_form(size: int, horizontal: bool) -> torch.Tensor:
    """A motion kernel along a row or column through the centre: the segment covers the whole
    middle line, every pixel of it at distance 0 (weight 1), the others at distance >= 1."""
    k = np.zeros((size, size))
    if horizontal:
        k[size // 2, :] = 1.0
    else:
        k[:, size // 2] = 1.0
    return _f64(k / k.sum())


SIZE_512 = r"size must be an int in \[1, 512\] \(the side of the centre crop of the 512x512"
SIZE_MOTION = r"size must be an int in \[3, 1001\] \(odd\), not "
DATA = [
    *[
        Bad(
            "pnpfast.data.astronaut",
            cat,
            f"size-{size!r}",
            lambda size=size: astronaut(size),
            TypeError if cat == "type" else ValueError,
            SIZE_512,
        )
        for cat, size in [
            ("size", 0),
            ("size", 513),
            ("value", -1),
            ("type", 8.0),
            ("type", True),
            ("type", "8"),
        ]
    ],
    Bad("pnpfast.data.camera", "size", "size-0", lambda: camera(0), ValueError, SIZE_512),
    Bad("pnpfast.data.camera", "size", "size-huge", lambda: camera(10**9), ValueError, SIZE_512),
    *[
        Bad(
            "pnpfast.data.motion_kernel",
            cat,
            f"size-{size!r}",
            lambda size=size: motion_kernel(size),
            TypeError if cat == "type" else ValueError,
            SIZE_MOTION,
        )
        for cat, size in [
            ("size", 0),
            ("value", -3),
            ("size", 1),
            ("type", 3.0),
            ("type", True),
            ("size", 10**6 + 1),
            ("type", "5"),
        ]
    ],
    Bad(
        "pnpfast.data.motion_kernel",
        "value",
        "size-4",
        lambda: motion_kernel(4),
        ValueError,
        r"size must be odd \(the kernel has a centre pixel\), not 4",
    ),
    *[
        Bad(
            "pnpfast.data.motion_kernel",
            "nan-inf",
            f"angle-{angle}",
            lambda angle=angle: motion_kernel(5, angle),
            ValueError,
            r"angle must be a finite number \(in degrees\), not",
        )
        for angle in (float("nan"), float("inf"), -float("inf"))
    ],
    *[
        Bad(
            "pnpfast.data.motion_kernel",
            "type",
            f"angle-{name}",
            lambda angle=angle: motion_kernel(5, angle),
            TypeError,
            rf"angle must be a finite number \(in degrees\), not {name}",
        )
        for name, angle in (
            ("str", "30"),
            ("NoneType", None),
            ("bool", True),
            ("Tensor", torch.tensor(30.0)),
        )
    ],
    Good(
        "pnpfast.data.astronaut",
        "type",
        "numpy-int-size",
        lambda: astronaut(np.int64(2)),
        lambda: _f64(skdata.astronaut()[255:257, 255:257].transpose(2, 0, 1)[None] / 255.0),
        1e-7,
    ),
    Good(
        "pnpfast.data.camera",
        "size",
        "1x1",
        lambda: camera(1),
        lambda: _f64(skdata.camera()[255:256, 255:256][None, None] / 255.0),
        1e-7,
    ),
    Good(
        "pnpfast.data.motion_kernel",
        "size",
        "3-horizontal",
        lambda: motion_kernel(3, 0.0),
        lambda: _motion_closed_form(3, True),
        1e-7,
    ),
    Good(
        "pnpfast.data.motion_kernel",
        "value",
        "360-degrees-numpy-size",
        lambda: motion_kernel(np.int64(5), 360.0),
        lambda: _motion_closed_form(5, True),
        1e-7,
    ),
    Good(
        "pnpfast.data.motion_kernel",
        "value",
        "vertical-negative-angle",
        lambda: motion_kernel(5, -90.0),
        lambda: _motion_closed_form(5, False),
        1e-7,
    ),
    Good(
        "pnpfast.data.motion_kernel",
        "size",
        "largest-sums-to-1",
        lambda: float(motion_kernel(1001, 30.0).double().sum()),
        lambda: 1.0,
        1e-5,
    ),
]

# ---------------------------------------------------------------------------------------------
# dispatch, environment variables, NVTX


@contextlib.contextmanager
def _environ(**values: str | None):
    """Set (or, with None, unset) environment variables; the dispatcher's caches are cleared
    before and after, so TRITON_INTERPRET is read again."""
    before = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        dispatch.clear_caches()
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        dispatch.clear_caches()


def _with_env(call, **values):
    def run():
        with _environ(**values):
            return call()

    return run


def _spectral(dtype=torch.complex128):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 1, 4, 3, dtype=dtype, generator=g)
    kty = torch.randn(2, 1, 4, 3, dtype=dtype, generator=g)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    k2 = torch.rand(1, 1, 4, 3, dtype=real, generator=g)
    gamma = torch.tensor([0.5, 2.0], dtype=real)
    return v, kty, k2, gamma


def _prox_oracle() -> torch.Tensor:
    """(v + gamma kty) / (1 + gamma k2), per image, in complex128 written out here."""
    v, kty, k2, gamma = _spectral()
    g = gamma.view(-1, 1, 1, 1)
    return torch.view_as_real((v + g * kty) / (1 + g * k2))


def _prox(backend=None):
    return lambda: torch.view_as_real(fft_prox(*_spectral(), backend=backend))


def _select() -> float:
    from pnpfast.ops.fft_prox import _op

    return float(_op.select(_spectral()) == "reference")


def _interpreter() -> float:
    from pnpfast import _env

    return float(_env.triton_interpreter())


def _nvtx(name):
    with nvtx_range(name):
        return 1.0


FP = "pnpfast.ops.fft_prox"
BS = "pnpfast.dispatch.backend_status"
DISPATCH = [
    Bad(
        BS,
        "name",
        "unknown",
        lambda: dispatch.backend_status("opencl"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'opencl'",
    ),
    Bad(
        BS,
        "name",
        "wrong-case",
        lambda: dispatch.backend_status("Reference"),
        ValueError,
        r"backend must be one of .* not 'Reference'",
    ),
    Bad(
        BS,
        "type",
        "none",
        lambda: dispatch.backend_status(None),
        TypeError,
        r"backend must be a str, one of cuda, triton, reference, not NoneType",
    ),
    Bad(
        FP,
        "name",
        "backend-unknown",
        _prox("opencl"),
        ValueError,
        r"backend must be one of cuda, triton, reference, not 'opencl'",
    ),
    Bad(FP, "type", "backend-int", _prox(3), TypeError, r"backend must be a str, .* not int"),
    Bad(
        FP,
        "name",
        "env-backend-unknown",
        _with_env(_prox(), PNPFAST_BACKEND="fastest"),
        ValueError,
        r"PNPFAST_BACKEND must be one of cuda, triton, reference, not 'fastest'",
    ),
    Bad(
        FP,
        "value",
        "env-backend-cuda-on-cpu-tensors",
        _with_env(_prox(), PNPFAST_BACKEND="cuda"),
        BackendError,
        r"fft_prox: backend 'cuda' cannot run this call",
    ),
    Bad(
        FP,
        "value",
        "env-backend-triton-without-interpreter",
        _with_env(_prox(), PNPFAST_BACKEND="triton", TRITON_INTERPRET="0"),
        BackendError,
        r"fft_prox: backend 'triton' cannot run this call",
    ),
    Bad(
        "pnpfast.dispatch.backends",
        "value",
        "env-triton-interpret-unknown",
        _with_env(lambda: dispatch.backends(), TRITON_INTERPRET="maybe"),
        ValueError,
        r"TRITON_INTERPRET must be 1, true, yes or on .* not 'maybe'",
    ),
    Bad(
        "pnpfast.dispatch.backends",
        "value",
        "env-triton-interpret-spaces",
        _with_env(lambda: dispatch.backends(), TRITON_INTERPRET=" 1"),
        ValueError,
        r"TRITON_INTERPRET must be .* not ' 1'",
    ),
    # Triton reads 'false', 'off' and 'no' as false (they meant 'on' to pnpfast before)
    *[
        Good(
            "pnpfast.dispatch.backends",
            "value",
            f"env-triton-interpret-{value}",
            _with_env(_interpreter, TRITON_INTERPRET=value),
            lambda want=want: want,
            0.0,
        )
        for value, want in (("false", 0.0), ("off", 0.0), ("", 0.0), ("TRUE", 1.0), ("yes", 1.0))
    ],
    Good(
        FP,
        "name",
        "env-backend-spaces-and-case",
        _with_env(_select, PNPFAST_BACKEND=" Reference "),
        lambda: 1.0,
        0.0,
    ),
    Good(
        FP, "name", "env-backend-empty", _with_env(_prox(), PNPFAST_BACKEND=""), _prox_oracle, 1e-12
    ),
    Good(FP, "name", "backend-reference", _prox("reference"), _prox_oracle, 1e-12),
    # the public-weights cache: PNPFAST_OFFLINE read strictly, PNPFAST_CACHE must be a folder
    Bad(
        "pnpfast.denoisers.registry.fetch",
        "value",
        "env-offline-unknown",
        _with_env(
            lambda: registry.fetch("drunet-gray", cache_dir=folder()), PNPFAST_OFFLINE="maybe"
        ),
        ValueError,
        r"PNPFAST_OFFLINE must be 1, true, yes or on .* not 'maybe'",
    ),
    Bad(
        "pnpfast.denoisers.registry.fetch",
        "value",
        "env-offline-on-with-spaces",
        _with_env(
            lambda: registry.fetch("drunet-gray", cache_dir=folder()), PNPFAST_OFFLINE=" On "
        ),
        registry.WeightsUnavailableError,
        r"offline mode",
    ),
    Bad(
        "pnpfast.denoisers.registry.cache_dir",
        "file",
        "env-cache-is-a-file",
        _with_env(registry.cache_dir, PNPFAST_CACHE="/dev/null"),
        NotADirectoryError,
        r"the weight cache /dev/null \(cache_dir or PNPFAST_CACHE\) is a file",
    ),
    Bad(
        "pnpfast.profiling.nvtx_range",
        "type",
        "int",
        lambda: _nvtx(5),
        TypeError,
        r"name must be a str, not int",
    ),
    Bad(
        "pnpfast.profiling.nvtx_range",
        "type",
        "bytes",
        lambda: _nvtx(b"x"),
        TypeError,
        r"name must be a str, not bytes",
    ),
    Bad(
        "pnpfast.profiling.nvtx_range",
        "value",
        "empty",
        lambda: _nvtx(""),
        ValueError,
        r"name must be a non-empty str",
    ),
    Good(
        "pnpfast.profiling.nvtx_range",
        "name",
        "unicode",
        lambda: _nvtx("pnpfast/é"),
        lambda: 1.0,
        0.0,
    ),
]

CASES = [*READ_IMAGE, *WRITE_IMAGE, *SIDE_BY_SIDE, *READ_KERNEL, *DATA, *DISPATCH]


@params(CASES)
def test_fuzz(case):
    check(case)

"""Fuzz table (issue 17) of the production runner's ledger and of the image files that keep bit
depth and alpha: pnpfast.runner.ledger (settings_fingerprint, file_sha256, Ledger, its record and
fail, read_ledger, merge) and pnpfast.io (ImageFile, read_image_file, write_image_file).

Files are written on the fly into a temporary folder (removed at exit). Good rows compare with
what Pillow, tifffile or hashlib wrote or computed independently of pnpfast.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import tifffile
import torch
from fuzz_cases import Bad, Good, check, params, scratch_folder
from PIL import Image

from pnpfast import io
from pnpfast.io import ImageFile, ImageReadError
from pnpfast.runner.ledger import (
    Ledger,
    SettingsMismatchError,
    file_sha256,
    merge,
    read_ledger,
    settings_fingerprint,
)


def folder() -> Path:
    return scratch_folder("runner-ledger")


S = {"task": "deblur", "sigma": 0.01}
GRAY16 = (np.arange(48, dtype=np.uint16) * 1365).reshape(6, 8)
X = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))


def _file(data: bytes = b"output", name: str = "o.png") -> Path:
    p = folder() / name
    p.write_bytes(data)
    return p


def _ledger(settings=S) -> Ledger:
    return Ledger(folder() / "l.jsonl", settings)


def _ledger_with(done: int, failed: int) -> Path:
    led = _ledger()
    for i in range(done):
        out = led.path.parent / f"{i}.png"
        out.write_bytes(bytes([i]))
        led.record(f"k{i}", out)
    for i in range(failed):
        led.fail(f"f{i}", "broken")
    return led.path


def _deleted_one() -> Path:
    path = _ledger_with(3, 0)
    (path.parent / "1.png").unlink()
    return path


def _torn() -> Path:
    path = _ledger_with(2, 0)
    with open(path, "ab") as f:
        f.write(b'{"type": "done", "key": "k9", "outp')
    return path


def _mismatch():
    path = _ledger_with(1, 0)
    return Ledger(path, {"task": "deblur", "sigma": 0.02})


def _two_ranks_one_duplicate():
    a, b = _ledger_with(2, 0), _ledger_with(3, 1)
    r = merge([a, b])
    return [r["done"], r["failed"], len(r["duplicates"])]


def _rewritten(x, alpha, depth, ext):
    """write_image_file then tifffile/Pillow read back, as integers."""
    p = folder() / f"x{ext}"
    io.write_image_file(p, x, alpha=alpha, bit_depth=depth)
    a = tifffile.imread(p) if ext == ".tif" else np.asarray(Image.open(p))
    return torch.from_numpy(a.astype(np.int64))


def _quantised(x, alpha, depth):
    top = 2**depth - 1
    parts = [x[0]] + ([alpha[0]] if alpha is not None else [])
    q = (torch.cat(parts).double().clamp(0, 1) * top).round().long().permute(1, 2, 0)
    return q[..., 0] if q.shape[-1] == 1 else q


def _gray16_png() -> Path:
    p = folder() / "g16.png"
    Image.fromarray(GRAY16).save(p)
    return p


F = "pnpfast.runner.ledger.settings_fingerprint"
L = "pnpfast.runner.ledger.Ledger"
R = "pnpfast.runner.ledger.Ledger.record"
FA = "pnpfast.runner.ledger.Ledger.fail"
M = "pnpfast.runner.ledger.merge"
RL = "pnpfast.runner.ledger.read_ledger"
SH = "pnpfast.runner.ledger.file_sha256"
IF = "pnpfast.io.ImageFile"
RIF = "pnpfast.io.read_image_file"
WIF = "pnpfast.io.write_image_file"

CASES = [
    # -- settings_fingerprint
    Bad(
        F,
        "type",
        "list",
        lambda: settings_fingerprint(["a"]),
        TypeError,
        "settings must be a mapping",
    ),
    Bad(
        F,
        "type",
        "int-key",
        lambda: settings_fingerprint({1: 2}),
        TypeError,
        "settings keys must be str",
    ),
    Bad(
        F,
        "type",
        "object-value",
        lambda: settings_fingerprint({"d": object()}),
        TypeError,
        r"settings\[d\] must be JSON data",
    ),
    Bad(
        F,
        "nan-inf",
        "nan",
        lambda: settings_fingerprint({"lam": float("nan")}),
        ValueError,
        r"settings\[lam\] must be finite",
    ),
    Bad(
        F,
        "nan-inf",
        "nested-inf",
        lambda: settings_fingerprint({"p": {"g": [1.0, float("inf")]}}),
        ValueError,
        r"settings\[p\.g\[1\]\] must be finite",
    ),
    Good(
        F,
        "value",
        "canonical-json",
        lambda: int(
            settings_fingerprint({"b": (1,), "a": 0.5})
            == hashlib.sha256(b'{"a":0.5,"b":[1]}').hexdigest()
        ),
        lambda: 1,
        0,
    ),
    Good(
        F,
        "size",
        "empty",
        lambda: int(settings_fingerprint({}) == hashlib.sha256(b"{}").hexdigest()),
        lambda: 1,
        0,
    ),
    # -- file_sha256
    Good(
        SH,
        "size",
        "empty-file",
        lambda: int(file_sha256(_file(b"")) == hashlib.sha256(b"").hexdigest()),
        lambda: 1,
        0,
    ),
    Bad(SH, "file", "missing", lambda: file_sha256(folder() / "none"), FileNotFoundError, "none"),
    # -- Ledger
    Bad(
        L, "type", "path-int", lambda: Ledger(3, S), TypeError, "path must be a str or os.PathLike"
    ),
    Bad(
        L,
        "type",
        "settings-list",
        lambda: Ledger(folder() / "l.jsonl", [1]),
        TypeError,
        "settings must be a mapping",
    ),
    Bad(
        L,
        "type",
        "overwrite-str",
        lambda: Ledger(folder() / "l.jsonl", S, overwrite="yes"),
        TypeError,
        "overwrite must be True or False",
    ),
    Bad(
        L,
        "type",
        "verify-int",
        lambda: Ledger(folder() / "l.jsonl", S, verify=1),
        TypeError,
        "verify must be True or False",
    ),
    Bad(
        L,
        "nan-inf",
        "settings-nan",
        lambda: Ledger(folder() / "l.jsonl", {"s": float("nan")}),
        ValueError,
        r"settings\[s\] must be finite",
    ),
    Bad(
        L,
        "file",
        "no-folder",
        lambda: Ledger(folder() / "no" / "l.jsonl", S),
        FileNotFoundError,
        "no folder",
    ),
    Bad(L, "file", "is-a-folder", lambda: Ledger(folder(), S), IsADirectoryError, "is a folder"),
    Bad(
        L,
        "mismatch",
        "other-settings",
        _mismatch,
        SettingsMismatchError,
        r"sigma: 0\.01 before, 0\.02 now.*--overwrite",
    ),
    Good(L, "file", "torn-last-line", lambda: len(Ledger(_torn(), S).done), lambda: 2, 0),
    Good(L, "file", "torn-line-counted", lambda: Ledger(_torn(), S).skipped_lines, lambda: 1, 0),
    Good(L, "file", "empty-file", lambda: len(Ledger(_file(b"", "e.jsonl"), S).done), lambda: 0, 0),
    Good(
        L,
        "file",
        "verify-intact",
        lambda: len(Ledger(_ledger_with(3, 0), S, verify=True).done),
        lambda: 3,
        0,
    ),
    Good(L, "file", "output-deleted", lambda: len(Ledger(_deleted_one(), S).done), lambda: 2, 0),
    Good(
        L,
        "value",
        "overwrite-redoes",
        lambda: len(Ledger(_ledger_with(3, 0), {"x": 1}, overwrite=True).done),
        lambda: 0,
        0,
    ),
    # -- Ledger.record and Ledger.fail
    Bad(R, "type", "key-int", lambda: _ledger().record(1, _file()), TypeError, "key must be a str"),
    Bad(
        R,
        "value",
        "key-empty",
        lambda: _ledger().record("", _file()),
        ValueError,
        "key must be a non-empty str",
    ),
    Bad(
        R,
        "value",
        "key-newline",
        lambda: _ledger().record("a\nb", _file()),
        ValueError,
        "key must be a non-empty str on one line",
    ),
    Bad(
        R,
        "type",
        "output-int",
        lambda: _ledger().record("a", 5),
        TypeError,
        "output must be a str or os.PathLike",
    ),
    Bad(
        R,
        "file",
        "output-missing",
        lambda: _ledger().record("a", folder() / "x.png"),
        FileNotFoundError,
        "write the output before recording it",
    ),
    Bad(
        R,
        "name",
        "reserved-field",
        lambda: _ledger().record("a", _file(), sha256="0"),
        ValueError,
        r"fields \['sha256'\] are written by the ledger",
    ),
    Bad(
        R,
        "nan-inf",
        "field-nan",
        lambda: _ledger().record("a", _file(), seconds=float("nan")),
        ValueError,
        r"fields\[seconds\] must be finite",
    ),
    Bad(
        R,
        "type",
        "field-object",
        lambda: _ledger().record("a", _file(), t=object()),
        TypeError,
        r"fields\[t\] must be JSON data",
    ),
    Good(
        R,
        "value",
        "checksum",
        lambda: int(
            _ledger().record("a", _file(b"abc"))["sha256"] == hashlib.sha256(b"abc").hexdigest()
        ),
        lambda: 1,
        0,
    ),
    Bad(
        FA,
        "type",
        "reason-none",
        lambda: _ledger().fail("a", None),
        TypeError,
        "reason must be a str",
    ),
    Bad(FA, "type", "key-bytes", lambda: _ledger().fail(b"a", "x"), TypeError, "key must be a str"),
    # -- read_ledger
    Bad(
        RL,
        "file",
        "missing",
        lambda: read_ledger(folder() / "none.jsonl"),
        FileNotFoundError,
        "no run ledger",
    ),
    Bad(
        RL,
        "type",
        "path-none",
        lambda: read_ledger(None),
        TypeError,
        "path must be a str or os.PathLike",
    ),
    Good(
        RL,
        "file",
        "not-json",
        lambda: read_ledger(_file(b"[1]\nnot json\n" + json.dumps({"type": "x"}).encode() + b"\n"))[
            2
        ],
        lambda: 3,
        0,
    ),
    # -- merge
    Bad(
        M,
        "type",
        "one-path",
        lambda: merge(folder() / "l.jsonl"),
        TypeError,
        "paths must be a list of ledger paths",
    ),
    Bad(M, "type", "path-int", lambda: merge([1]), TypeError, r"paths\[0\] must be a str"),
    Bad(M, "size", "empty", lambda: merge([]), ValueError, "paths must name at least one ledger"),
    Bad(
        M,
        "file",
        "missing",
        lambda: merge([folder() / "gone.jsonl"]),
        FileNotFoundError,
        "no run ledger",
    ),
    Bad(
        M,
        "mismatch",
        "two-runs",
        lambda: merge([_ledger_with(1, 0), Ledger(folder() / "l.jsonl", {"x": 1}).path]),
        ValueError,
        "different settings",
    ),
    Good(M, "value", "two-ranks", _two_ranks_one_duplicate, lambda: [3, 1, 2], 0),
    # -- pnpfast.io.ImageFile
    Bad(
        IF,
        "type",
        "pixels-array",
        lambda: ImageFile(np.zeros((1, 1, 2, 2)), None, 8, "png"),
        TypeError,
        "pixels must be a",
    ),
    Bad(
        IF,
        "rank",
        "pixels-3d",
        lambda: ImageFile(torch.zeros(1, 2, 2), None, 8, "png"),
        ValueError,
        r"pixels must have shape \[1, C, H, W\]",
    ),
    Bad(
        IF,
        "mismatch",
        "alpha-size",
        lambda: ImageFile(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3), 8, "png"),
        ValueError,
        r"alpha must have shape \(1, 1, 2, 2\)",
    ),
    Bad(
        IF,
        "value",
        "bit-depth-12",
        lambda: ImageFile(torch.zeros(1, 1, 2, 2), None, 12, "png"),
        ValueError,
        "bit_depth must be 8 or 16",
    ),
    # -- read_image_file
    Bad(RIF, "type", "path-int", lambda: io.read_image_file(1), TypeError, "path must be a str"),
    Bad(
        RIF,
        "file",
        "missing",
        lambda: io.read_image_file(folder() / "a.png"),
        ImageReadError,
        "no such file",
    ),
    Bad(
        RIF,
        "file",
        "empty",
        lambda: io.read_image_file(_file(b"", "e.png")),
        ImageReadError,
        "the file is empty",
    ),
    Bad(
        RIF,
        "file",
        "tiff-garbage",
        lambda: io.read_image_file(_file(b"MM\x00*" + b"\x00" * 8, "g.tif")),
        ImageReadError,
        "corrupt or truncated TIFF",
    ),
    Bad(
        RIF,
        "file",
        "text",
        lambda: io.read_image_file(_file(b"hello", "t.png")),
        ImageReadError,
        "not an image file",
    ),
    Bad(
        RIF,
        "dtype",
        "float-tiff",
        lambda: io.read_image_file(_tiff_float()),
        ImageReadError,
        "float32 samples",
    ),
    Good(
        RIF,
        "dtype",
        "gray16-png",
        lambda: io.read_image_file(_gray16_png()).pixels,
        lambda: torch.from_numpy(GRAY16 / 65535.0)[None, None],
        1e-7,
    ),
    Good(
        RIF,
        "size",
        "1x1-rgba",
        lambda: io.read_image_file(_one_rgba()).alpha,
        lambda: torch.full((1, 1, 1, 1), 7 / 255),
        1e-7,
    ),
    # -- write_image_file
    Bad(
        WIF, "type", "path-int", lambda: io.write_image_file(2, X), TypeError, "path must be a str"
    ),
    Bad(
        WIF,
        "type",
        "pixels-array",
        lambda: io.write_image_file(folder() / "a.png", np.zeros((1, 3, 2, 2))),
        TypeError,
        "pixels must be a torch.Tensor",
    ),
    Bad(
        WIF,
        "dtype",
        "pixels-uint8",
        lambda: io.write_image_file(folder() / "a.png", torch.zeros(1, 3, 2, 2, dtype=torch.uint8)),
        TypeError,
        "pixels must be floating point",
    ),
    Bad(
        WIF,
        "rank",
        "pixels-2d",
        lambda: io.write_image_file(folder() / "a.png", torch.zeros(2, 2)),
        ValueError,
        r"pixels must have shape \[1, C, H, W\]",
    ),
    Bad(
        WIF,
        "size",
        "batch-2",
        lambda: io.write_image_file(folder() / "a.png", torch.zeros(2, 3, 2, 2)),
        ValueError,
        "pixels must hold one image",
    ),
    Bad(
        WIF,
        "size",
        "empty",
        lambda: io.write_image_file(folder() / "a.png", torch.zeros(1, 3, 0, 2)),
        ValueError,
        "pixels has a dimension of size 0",
    ),
    Bad(
        WIF,
        "meta",
        "pixels-meta",
        lambda: io.write_image_file(folder() / "a.png", torch.zeros(1, 3, 2, 2, device="meta")),
        ValueError,
        "pixels is on the meta device",
    ),
    Bad(
        WIF,
        "nan-inf",
        "pixels-nan",
        lambda: io.write_image_file(
            folder() / "a.png", torch.full((1, 1, 2, 2), float("nan")), bit_depth=16
        ),
        ValueError,
        "pixels contains NaN",
    ),
    Bad(
        WIF,
        "nan-inf",
        "alpha-inf",
        lambda: io.write_image_file(
            folder() / "a.tif", X, alpha=torch.full((1, 1, 4, 5), float("inf"))
        ),
        ValueError,
        "alpha contains NaN or Inf",
    ),
    Bad(
        WIF,
        "rank",
        "alpha-rgb",
        lambda: io.write_image_file(folder() / "a.png", X, alpha=X),
        ValueError,
        r"alpha must have shape \[1, C, H, W\] or \[C, H, W\] with C = 1",
    ),
    Bad(
        WIF,
        "mismatch",
        "alpha-size",
        lambda: io.write_image_file(folder() / "a.png", X, alpha=torch.zeros(1, 1, 4, 4)),
        ValueError,
        "alpha must have the height and width of pixels",
    ),
    Bad(
        WIF,
        "value",
        "bit-depth-12",
        lambda: io.write_image_file(folder() / "a.png", X, bit_depth=12),
        ValueError,
        "bit_depth must be 8 or 16, not 12",
    ),
    Bad(
        WIF,
        "type",
        "bit-depth-float",
        lambda: io.write_image_file(folder() / "a.png", X, bit_depth=16.0),
        TypeError,
        "bit_depth must be an int",
    ),
    Bad(
        WIF,
        "name",
        "jpeg-16-bit",
        lambda: io.write_image_file(folder() / "a.jpg", X, bit_depth=16),
        ValueError,
        r"only \.png and \.tif/\.tiff hold 16-bit",
    ),
    Bad(
        WIF,
        "name",
        "bmp-alpha",
        lambda: io.write_image_file(folder() / "a.bmp", X, alpha=X[:, :1]),
        ValueError,
        "cannot write .* with alpha",
    ),
    Bad(
        WIF,
        "file",
        "no-folder",
        lambda: io.write_image_file(folder() / "no" / "a.png", X),
        FileNotFoundError,
        "does not exist",
    ),
    Good(
        WIF,
        "dtype",
        "16-bit-rgba-tiff",
        lambda: _rewritten(X, X[:, :1], 16, ".tif"),
        lambda: _quantised(X, X[:, :1], 16),
        0,
    ),
    Good(
        WIF,
        "value",
        "clipped-8-bit-png",
        lambda: _rewritten(3 * X - 1, None, 8, ".png"),
        lambda: _quantised(3 * X - 1, None, 8),
        0,
    ),
    Good(
        WIF,
        "dtype",
        "float64-gray-16",
        lambda: _rewritten(X[:, :1].double(), None, 16, ".tif"),
        lambda: _quantised(X[:, :1], None, 16),
        0,
    ),
    Good(
        WIF,
        "layout",
        "channels-last",
        lambda: _rewritten(X.contiguous(memory_format=torch.channels_last), None, 16, ".tif"),
        lambda: _quantised(X, None, 16),
        0,
    ),
]


def _tiff_float() -> Path:
    p = folder() / "f.tif"
    tifffile.imwrite(p, np.zeros((2, 2), np.float32))
    return p


def _one_rgba() -> Path:
    p = folder() / "one.png"
    Image.fromarray(np.array([[[1, 2, 3, 7]]], np.uint8), "RGBA").save(p)
    return p


@params(CASES)
def test_fuzz(case):
    check(case)

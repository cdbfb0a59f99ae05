"""Fuzz table (issue 17 conventions) of ``pnpfast restore`` (issue 21).

Rows call ``pnpfast.cli.main`` in the process on tiny PNGs written on the fly (removed at exit),
with the Gaussian smoothing denoiser and 2 iterations. A bad input must end with a nonzero exit
code and exactly one error line on stderr naming the flag, never a traceback (``CliFailed``
carries the code and that line). Good rows compare what was written with ``pnpfast.solve`` run
here on the image as Pillow reads it.
"""

import contextlib
import io as textio
import json
import os
from pathlib import Path

import numpy as np
import torch
from fuzz_cases import Bad, Good, check, params, scratch_folder
from PIL import Image

import pnpfast
from pnpfast.cli import main

RESTORE = "pnpfast restore"
FAST = ("--denoiser", "gaussian", "--max-iter", "2", "--no-progress")


class CliFailed(Exception):
    """main returned a nonzero code with one error line; str(): 'exit N: <that line>'."""


def folder() -> Path:
    return scratch_folder("cli-restore")


def cli(*argv, env: dict | None = None) -> int:
    """``pnpfast restore *argv`` in this process; CliFailed for a nonzero exit code. An
    AssertionError (the wrong type for every row) on a traceback or not one error line."""
    out, err = textio.StringIO(), textio.StringIO()
    env = {"RANK": None, "WORLD_SIZE": None, "LOCAL_RANK": None, **(env or {})}
    before = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        os.environ.pop(k, None) if v is None else os.environ.update({k: v})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["restore", *(str(a) for a in argv)])
    finally:
        for k, v in before.items():
            os.environ.pop(k, None) if v is None else os.environ.update({k: v})
    stderr = err.getvalue()
    assert "Traceback" not in stderr, f"a traceback on stderr: {stderr}"
    if code == 0:
        return 0
    lines = [line for line in stderr.splitlines() if line.startswith("pnpfast")]
    assert len(lines) == 1, f"expected one error line, stderr was {stderr!r}"
    raise CliFailed(f"exit {code}: {lines[0]}")


def _gray(seed: int = 0, size: int = 8, dtype=np.uint8) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, top + 1, (size, size), dtype=dtype)


def _images(count: int = 2, dtype=np.uint8) -> Path:
    where = folder() / "in"
    where.mkdir()
    for k in range(count):
        Image.fromarray(_gray(k, dtype=dtype)).save(where / f"img{k}.png")
    return where


def _file(name: str, content: bytes) -> Path:
    path = folder() / name
    path.write_bytes(content)
    return path


def _npy(name: str, array: np.ndarray) -> Path:
    path = folder() / name
    np.save(path, array)
    return path


def _denoise(*extra, inputs=None, out=None, env=None) -> int:
    inputs = [_images()] if inputs is None else inputs
    out = folder() / "out" if out is None else out
    return cli(*inputs, "-o", out, "--task", "denoise", *FAST, *extra, env=env)


def _twice(first: list, second: list) -> int:
    src, out = _images(), folder() / "out"
    cli(src, "-o", out, "--task", "denoise", *FAST, *first)
    return cli(src, "-o", out, "--task", "denoise", *FAST, *second)


def _solved(pixels: np.ndarray, top: int, noise255: float) -> torch.Tensor:
    """The oracle: pnpfast.solve on the image as Pillow gives it, on the [0, 1] scale."""
    y = torch.from_numpy(pixels.astype(np.float64) / top).float()[None, None]
    D = pnpfast.denoisers.load("gaussian")
    x = pnpfast.solve(y, pnpfast.operators.Identity(), D, "hqs", sigma=noise255 / 255, max_iter=2)
    return x.x.clamp(0, 1)


def _restored(dtype=np.uint8, *extra) -> tuple[torch.Tensor, str]:
    """(the restored img0 on the [0, 1] scale, its Pillow mode)."""
    src, out = _images(1, dtype), folder() / "out"
    cli(src, "-o", out, "--task", "denoise", "--noise", 5, *FAST, *extra)
    with Image.open(out / "img0.png") as img:
        mode, a = img.mode, np.asarray(img)
    top = 255 if a.dtype == np.uint8 else 65535
    return torch.from_numpy(a.astype(np.float64) / top).float()[None, None], mode


def _sixteen() -> tuple[float, torch.Tensor]:
    """(1.0 when the output of a 16-bit input is 16-bit, the output)."""
    x, mode = _restored(np.uint16)
    return float(mode == "I;16"), x


def _skipped_on_rerun() -> int:
    src, out = _images(3), folder() / "out"
    args = [src, "-o", out, "--task", "denoise", "--noise", 5, *FAST]
    cli(*args)
    cli(*args)
    return json.loads((out / "restore-report.json").read_text())["skipped"]


U2 = r"^exit 2: pnpfast restore: error: "
CASES = [
    Bad(
        RESTORE,
        "file",
        "input-missing",
        lambda: _denoise("--noise", 5, inputs=[folder() / "no.png"]),
        CliFailed,
        rf"{U2}input .*no\.png: no such file",
    ),
    Bad(
        RESTORE,
        "file",
        "folder-without-images",
        lambda: _denoise("--noise", 5, inputs=[folder()]),
        CliFailed,
        rf"{U2}folder .* holds no image files",
    ),
    Bad(
        RESTORE,
        "value",
        "no-input-no-manifest",
        lambda: _denoise("--noise", 5, inputs=[]),
        CliFailed,
        rf"{U2}give at least one INPUT, or --manifest",
    ),
    Bad(
        RESTORE,
        "file",
        "manifest-missing",
        lambda: _denoise("--noise", 5, "--manifest", folder() / "m.csv", inputs=[]),
        CliFailed,
        rf"{U2}--manifest: manifest .*m\.csv: no such file",
    ),
    Bad(
        RESTORE,
        "file",
        "input-corrupt-fails-alone",
        lambda: _denoise("--noise", 5, inputs=[_images(), _file("bad.png", b"junk")]),
        CliFailed,
        r"^exit 1: pnpfast restore: failed: 1 of 3 images \(first: bad\.png: ImageReadError: ",
    ),
    Bad(
        RESTORE,
        "file",
        "output-is-a-file",
        lambda: _denoise("--noise", 5, out=_file("afile", b"x")),
        CliFailed,
        rf"{U2}-o: the output folder .*afile is a file",
    ),
    Bad(
        RESTORE,
        "nan-inf",
        "noise-nan",
        lambda: _denoise("--noise", "nan"),
        CliFailed,
        rf"{U2}argument --noise: the noise level must be a number > 0, got nan",
    ),
    Bad(
        RESTORE,
        "value",
        "noise-above-255",
        lambda: _denoise("--noise", 300),
        CliFailed,
        r"argument --noise: the noise level is on the 0\.\.255 scale",
    ),
    Bad(
        RESTORE,
        "value",
        "noise-missing",
        lambda: _denoise(),
        CliFailed,
        rf"{U2}--noise: method hqs needs the noise level",
    ),
    Bad(
        RESTORE,
        "value",
        "batch-0",
        lambda: _denoise("--noise", 5, "--batch", 0),
        CliFailed,
        r"argument --batch: expected an integer >= 1 or auto, got '0'",
    ),
    Bad(
        RESTORE,
        "type",
        "batch-text",
        lambda: _denoise("--noise", 5, "--batch", "many"),
        CliFailed,
        r"argument --batch: expected an integer >= 1 or auto, got 'many'",
    ),
    Bad(
        RESTORE,
        "value",
        "precision-unknown",
        lambda: _denoise("--noise", 5, "--precision", "half"),
        CliFailed,
        r"argument --precision: invalid choice: 'half' \(choose from '?fp32'?, '?bf16'?, '?fp16'?\)",
    ),
    Bad(
        RESTORE,
        "value",
        "cuda-graphs-on-cpu",
        lambda: _denoise("--noise", 5, "--cuda-graphs"),
        CliFailed,
        rf"{U2}--cuda-graphs: cuda_graphs needs a CUDA device, not cpu",
    ),
    Bad(
        RESTORE,
        "value",
        "max-iter-huge",
        lambda: _denoise("--noise", 5, "--max-iter", 10**9),
        CliFailed,
        r"argument --max-iter: expected at most 100000 iterations",
    ),
    Bad(
        RESTORE,
        "value",
        "tile-0",
        lambda: _denoise("--noise", 5, "--tile", 0),
        CliFailed,
        r"argument --tile: expected an integer >= 1, got '0'",
    ),
    Bad(
        RESTORE,
        "value",
        "overlap-negative",
        lambda: _denoise("--noise", 5, "--tile", 4, "--overlap=-1"),
        CliFailed,
        r"argument --overlap: expected an integer >= 0, got '-1'",
    ),
    Bad(
        RESTORE,
        "size",
        "overlap-not-below-tile",
        lambda: _denoise("--noise", 5, "--tile", 4, "--overlap", 4),
        CliFailed,
        rf"{U2}--overlap: overlap must be an int in \[0, 3\], not 4",
    ),
    Bad(
        RESTORE,
        "value",
        "overlap-without-tile",
        lambda: _denoise("--noise", 5, "--overlap", 2),
        CliFailed,
        rf"{U2}--overlap: overlap applies with tile only",
    ),
    Bad(
        RESTORE,
        "name",
        "task-unknown",
        lambda: _denoise("--noise", 5, "--task", "zoom"),
        CliFailed,
        r"argument --task: invalid choice: 'zoom'",
    ),
    Bad(
        RESTORE,
        "name",
        "ext-jpg",
        lambda: _denoise("--noise", 5, "--ext", "jpg"),
        CliFailed,
        r"argument --ext: invalid choice: 'jpg'",
    ),
    Bad(
        RESTORE,
        "value",
        "bit-depth-12",
        lambda: _denoise("--noise", 5, "--bit-depth", 12),
        CliFailed,
        r"argument --bit-depth: invalid choice: 12",
    ),
    Bad(
        RESTORE,
        "name",
        "method-unknown",
        lambda: _denoise("--noise", 5, "--method", "zz"),
        CliFailed,
        rf"{U2}--method: method must be one of hqs, .* not 'zz'",
    ),
    Bad(
        RESTORE,
        "name",
        "param-unknown",
        lambda: _denoise("--noise", 5, "--param", "zz=1"),
        CliFailed,
        rf"{U2}--param: params: method 'hqs' has no parameter 'zz'",
    ),
    Bad(
        RESTORE,
        "value",
        "param-value-negative",
        lambda: _denoise("--noise", 5, "--param", "lam=-2"),
        CliFailed,
        rf"{U2}--param: params: lam must be > 0, got -2",
    ),
    Bad(
        RESTORE,
        "value",
        "param-not-name-value",
        lambda: _denoise("--noise", 5, "--param", "lam"),
        CliFailed,
        r"argument --param: expected NAME=VALUE such as lam=0\.2, got 'lam'",
    ),
    Bad(
        RESTORE,
        "value",
        "param-twice",
        lambda: _denoise("--noise", 5, "--param", "lam=1", "--param", "lam=2"),
        CliFailed,
        rf"{U2}--param: lam given twice",
    ),
    Bad(
        RESTORE,
        "name",
        "denoiser-unknown",
        lambda: _denoise("--noise", 5, "--denoiser", "zz"),
        CliFailed,
        rf"{U2}--denoiser: denoiser: cannot load it: .*zz",
    ),
    Bad(
        RESTORE,
        "file",
        "weights-missing",
        lambda: _denoise("--noise", 5, "--denoiser", "dncnn", "--weights", folder() / "w.pt"),
        CliFailed,
        rf"{U2}--weights: weights: no such file .*w\.pt",
    ),
    Bad(
        RESTORE,
        "file",
        "public-weights-offline",
        lambda: cli(
            _images(),
            "-o",
            folder(),
            "--task",
            "denoise",
            "--noise",
            5,
            "--denoiser",
            "drunet-color",
            env={"PNPFAST_OFFLINE": "1", "PNPFAST_CACHE": str(folder())},
        ),
        CliFailed,
        rf"{U2}--denoiser: weights 'drunet-color' are not in the cache .*--weights FILE",
    ),
    Bad(
        RESTORE,
        "name",
        "device-unknown",
        lambda: _denoise("--noise", 5, "--device", "gpu"),
        CliFailed,
        rf"{U2}--device: device must be 'cpu', 'cuda', 'cuda:N'",
    ),
    Bad(
        RESTORE,
        "value",
        "device-index-absent",
        lambda: _denoise("--noise", 5, "--device", "cuda:99"),
        CliFailed,
        rf"{U2}--device: device cuda:99 was asked for but",
    ),
    Bad(
        RESTORE,
        "mismatch",
        "operator-of-another-task",
        lambda: cli(_images(), "-o", folder(), "--noise", 5, "--operator", "sr:bicubic:x2"),
        CliFailed,
        rf"{U2}--operator: operator 'sr:bicubic:x2' is a sr operator; task 'deblur'",
    ),
    Bad(
        RESTORE,
        "value",
        "deblur-without-kernel",
        lambda: cli(_images(), "-o", folder(), "--noise", 5),
        CliFailed,
        rf"{U2}--operator: task deblur needs the blur kernel",
    ),
    Bad(
        RESTORE,
        "file",
        "kernel-missing",
        lambda: cli(
            _images(), "-o", folder(), "--noise", 5, "--operator", f"blur:{folder() / 'k.npy'}"
        ),
        CliFailed,
        rf"{U2}--operator: operator: no such file .*k\.npy",
    ),
    Bad(
        RESTORE,
        "nan-inf",
        "kernel-nan",
        lambda: cli(
            _images(),
            "-o",
            folder(),
            "--noise",
            5,
            "--operator",
            f"blur:{_npy('nan.npy', np.full((3, 3), np.nan))}",
        ),
        CliFailed,
        rf"{U2}--operator: cannot read kernel .*nan\.npy: the kernel contains NaN",
    ),
    Bad(
        RESTORE,
        "value",
        "mask-for-deblur",
        lambda: _denoise("--noise", 5, "--mask", "m.png"),
        CliFailed,
        rf"{U2}--mask: mask applies to the task inpainting only",
    ),
    Bad(
        RESTORE,
        "file",
        "mask-corrupt",
        lambda: cli(
            _images(),
            "-o",
            folder(),
            "--task",
            "inpainting",
            "--noise",
            5,
            "--mask",
            _file("m.png", b"junk"),
            *FAST,
        ),
        CliFailed,
        rf"{U2}--mask: cannot read image .*m\.png",
    ),
    Bad(
        RESTORE,
        "value",
        "inpainting-without-mask",
        lambda: cli(_images(), "-o", folder(), "--task", "inpainting", "--noise", 5),
        CliFailed,
        rf"{U2}--mask: task inpainting needs the mask image",
    ),
    Bad(
        RESTORE,
        "mismatch",
        "rerun-with-other-noise",
        lambda: _twice(["--noise", 5], ["--noise", 6]),
        CliFailed,
        rf"{U2}.* holds a run with other settings \(noise \(--noise\): 5\.0 before, 6\.0 now\); add --overwrite",
    ),
    Bad(
        RESTORE,
        "mismatch",
        "rerun-with-other-method",
        lambda: _twice(["--noise", 5], ["--noise", 5, "--method", "drs"]),
        CliFailed,
        rf"{U2}.*method \(--method\): \"hqs\" before, \"drs\" now",
    ),
    Bad(
        RESTORE,
        "value",
        "rank-not-a-number",
        lambda: cli(_images(), "-o", folder(), "--noise", 5, env={"RANK": "one"}),
        CliFailed,
        rf"{U2}the environment variable RANK must be an integer >= 0, not 'one'",
    ),
    Bad(
        RESTORE,
        "value",
        "rank-not-below-world-size",
        lambda: cli(_images(), "-o", folder(), "--noise", 5, env={"RANK": "3", "WORLD_SIZE": "2"}),
        CliFailed,
        rf"{U2}the environment variable RANK must be below WORLD_SIZE \(2\), not 3",
    ),
    Bad(
        RESTORE,
        "value",
        "world-size-0",
        lambda: cli(_images(), "-o", folder(), "--noise", 5, env={"WORLD_SIZE": "0"}),
        CliFailed,
        rf"{U2}the environment variable WORLD_SIZE must be an integer >= 1, not '0'",
    ),
    Bad(
        RESTORE,
        "value",
        "local-rank-not-a-number-with-cuda",
        lambda: _denoise("--noise", 5, "--device", "cuda", env={"LOCAL_RANK": "x"}),
        CliFailed,
        rf"{U2}the environment variable LOCAL_RANK must be an integer >= 0, not 'x'",
    ),
    Good(
        RESTORE,
        "value",
        "denoise-8-bit-equals-solve",
        lambda: _restored()[0],
        lambda: _solved(_gray(0), 255, 5),
        0.5 / 255 + 1e-6,
    ),
    Good(
        RESTORE,
        "dtype",
        "16-bit-input-kept-16-bit",
        _sixteen,
        lambda: (1.0, _solved(_gray(0, dtype=np.uint16), 65535, 5)),
        0.5 / 65535 + 1e-6,
    ),
    Good(
        RESTORE,
        "dtype",
        "bit-depth-16-from-8-bit",
        lambda: _restored(np.uint8, "--bit-depth", 16)[0],
        lambda: _solved(_gray(0), 255, 5),
        0.5 / 65535 + 1e-6,
    ),
    Good(RESTORE, "value", "rerun-skips-all", _skipped_on_rerun, lambda: 3, 0),
]


@params(CASES)
def test_fuzz(case):
    check(case)

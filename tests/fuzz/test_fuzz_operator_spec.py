"""Fuzz table (issue 17 conventions) of operators by name (issue 19): pnpfast.operators.from_spec,
pnpfast.operators.OperatorSpec (construction, parse, kernel_tensor, build) and the command line's
``pnpfast deblur --operator``.

Bad rows: the exact exception type and a message naming the field and what it accepts. Good rows
compare with NumPy float64 oracles written from the definition (the dense circulant of
fuzz_cases.blur_matrix keeping the rows of the top-left pixel of each s x s block; the Gaussian
formula) or, for the command line, with pnpfast.solve on the operator built by hand (the same
problem in a form already checked). Tiny images.
"""

import contextlib
import io as textio

import numpy as np
import torch
from fuzz_cases import Bad, Good, blur_matrix, check, params, scratch_folder

import pnpfast
from pnpfast.cli import main
from pnpfast.io import KernelReadError, read_image, write_image
from pnpfast.operators import OperatorSpec, SuperResolution, from_spec
from pnpfast.operators.super_resolution import bicubic_kernel

F64 = torch.float64
FS = "pnpfast.operators.from_spec"
OS = "pnpfast.operators.OperatorSpec"
DEBLUR = "pnpfast deblur"


def rand(*shape, seed=0) -> torch.Tensor:
    return torch.rand(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def sr_dense(k: np.ndarray, s: int, x: torch.Tensor) -> torch.Tensor:
    """(k * x) decimated by s, from the dense circulant's rows of the pixels (s i, s j)."""
    B, C, H, W = x.shape
    A = blur_matrix(k, H, W)[[r * W + c for r in range(0, H, s) for c in range(0, W, s)]]
    out = x.reshape(B * C, H * W).numpy() @ A.T
    return torch.from_numpy(out.reshape(B, C, H // s, W // s))


def gaussian(std: float, size: int) -> np.ndarray:
    d = np.arange(size) - size // 2
    g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * std**2))
    return g / g.sum()


def kernel_file(name: str = "k.npy", values: np.ndarray | None = None) -> str:
    """A 3x2 kernel (or ``values``) saved as .npy in a fresh folder."""
    path = scratch_folder("operator_spec") / name
    k = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.1]]) if values is None else values
    np.save(path, k)
    return str(path)


def as_read(path: str) -> np.ndarray:
    """The kernel as read_kernel gives it: float32 (the oracle then computes in float64)."""
    return np.load(path).astype(np.float32).astype(np.float64)


class CliFailed(Exception):
    """main returned a nonzero code; str(): 'exit N: <the pnpfast error line>'."""


def cli(*argv) -> int:
    err = textio.StringIO()
    with contextlib.redirect_stdout(textio.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert "Traceback" not in err.getvalue(), err.getvalue()
    if code:
        lines = [line for line in err.getvalue().splitlines() if line.startswith("pnpfast")]
        assert len(lines) == 1, err.getvalue()
        raise CliFailed(f"exit {code}: {lines[0]}")
    return code


def _low_image() -> str:
    path = scratch_folder("operator_spec") / "low.png"
    write_image(path, rand(1, 3, 8, 6, seed=7).float())
    return str(path)


def _cli_sr() -> torch.Tensor:
    low = _low_image()
    out = scratch_folder("operator_spec")
    cli("deblur", low, "--operator", "sr:x2", "--noise", "2.55", "--iters", "1", "--denoiser", "tv",
        "-o", out)  # fmt: skip
    return read_image(out / "low.png")


def _solve_sr() -> torch.Tensor:
    y = read_image(_low_image())
    tv = pnpfast.denoisers.load("tv")
    res = pnpfast.solve(y, SuperResolution.bicubic(2), tv, "hqs", sigma=2.55 / 255, max_iter=1)
    return res.x.clamp(0, 1)


def _cli_bad(spec: str) -> int:
    return cli("deblur", _low_image(), "--operator", spec, "--noise", "2", "-o",
               scratch_folder("operator_spec"))  # fmt: skip


X = rand(2, 2, 12, 12, seed=1)
X3 = rand(1, 2, 15, 18, seed=2)  # bicubic x3 is 13x13

CASES = [
    # -- from_spec: good ------------------------------------------------------------------------
    Good(
        FS,
        "value",
        "sr:bicubic:x2 = MATLAB bicubic, dense",
        lambda: from_spec("sr:bicubic:x2")(X),
        lambda: sr_dense(bicubic_kernel(2).numpy(), 2, X),
        1e-12,
    ),
    Good(
        FS,
        "value",
        "sr:gaussian:x3:std=1.2 dense",
        lambda: from_spec("sr:gaussian:x3:std=1.2")(X),
        lambda: sr_dense(gaussian(1.2, 9), 3, X),
        1e-12,
    ),
    Good(
        FS,
        "value",
        "dict gaussian x2 std=0.9",
        lambda: from_spec({"name": "sr", "factor": 2, "kernel": "gaussian", "std": 0.9})(X),
        lambda: sr_dense(gaussian(0.9, 7), 2, X),
        1e-12,
    ),
    Good(
        FS,
        "size",
        "sr kernel file 3x2 x4 (even width)",
        lambda: from_spec(f"sr:{kernel_file()}:x4")(X),
        lambda: sr_dense(as_read(kernel_file()), 4, X),
        1e-12,
    ),
    Good(
        FS,
        "size",
        "blur:file = x1, no decimation",
        lambda: from_spec(f"blur:{kernel_file()}")(X),
        lambda: sr_dense(as_read(kernel_file()), 1, X),
        1e-12,
    ),
    # -- from_spec: bad -------------------------------------------------------------------------
    Bad(FS, "type", "int spec", lambda: from_spec(2), TypeError, r"spec must be a str such as"),
    Bad(FS, "type", "None spec", lambda: from_spec(None), TypeError, r"not NoneType"),
    Bad(
        FS,
        "type",
        "factor float",
        lambda: from_spec({"name": "sr", "factor": 2.0}),
        TypeError,
        r"factor must be an int >= 1, not float 2\.0",
    ),
    Bad(
        FS,
        "type",
        "factor str in dict",
        lambda: from_spec({"name": "sr", "factor": "2"}),
        TypeError,
        r"factor must be an int >= 1, not str",
    ),
    Bad(FS, "type", "name int", lambda: from_spec({"name": 1}), TypeError, r"name must be a str"),
    Bad(
        FS,
        "type",
        "kernel tensor",
        lambda: from_spec({"name": "sr", "factor": 2, "kernel": torch.ones(3, 3)}),
        TypeError,
        r"kernel must be 'bicubic', 'gaussian' or a kernel file, as a str or path, not Tensor",
    ),
    Bad(
        FS,
        "type",
        "std str",
        lambda: from_spec({"name": "sr", "factor": 2, "kernel": "gaussian", "std": "1"}),
        TypeError,
        r"std must be a finite number .*not str",
    ),
    Bad(
        FS,
        "type",
        "key int",
        lambda: from_spec({"name": "blur", "kernel": "k.mat", "key": 1}),
        TypeError,
        r"key must be a str \(a MATLAB variable name\)",
    ),
    Bad(
        FS,
        "type",
        "index bool",
        lambda: from_spec({"name": "blur", "kernel": "k.mat", "index": True}),
        TypeError,
        r"index must be an int >= 0, not bool",
    ),
    Bad(
        FS,
        "name",
        "unknown operator",
        lambda: from_spec("inpaint:x2"),
        ValueError,
        r"name must be one of 'sr' \(or 'super-resolution'\), 'blur' \(or 'deblur'\), "
        r"not 'inpaint'",
    ),
    Bad(
        FS,
        "name",
        "misspelt kernel",
        lambda: from_spec("sr:bicubc:x2"),
        ValueError,
        r"kernel must be 'bicubic', 'gaussian' or a kernel file \(\.npy, \.png, \.mat\), "
        r"not 'bicubc'",
    ),
    Bad(
        FS,
        "name",
        "unknown text field",
        lambda: from_spec("sr:x2:scale=3"),
        ValueError,
        r"unknown field 'scale'; fields: kernel, factor, std, key, index",
    ),
    Bad(
        FS,
        "name",
        "unknown dict field",
        lambda: from_spec({"name": "sr", "factor": 2, "sigma": 1}),
        ValueError,
        r"spec has unknown fields \['sigma'\]; fields: name, kernel, factor",
    ),
    Bad(
        FS,
        "name",
        "dict without name",
        lambda: from_spec({"factor": 2}),
        ValueError,
        r"spec has no 'name': one of 'sr'",
    ),
    Bad(FS, "value", "empty", lambda: from_spec(""), ValueError, r"spec '' has no operator name"),
    Bad(
        FS,
        "value",
        "no factor",
        lambda: from_spec("sr:gaussian"),
        ValueError,
        r"factor is required for sr: an int >= 1",
    ),
    Bad(
        FS,
        "value",
        "factor 0",
        lambda: from_spec("sr:x0"),
        ValueError,
        r"factor must be an int >= 1, not 0",
    ),
    Bad(
        FS,
        "value",
        "factor 1.5",
        lambda: from_spec("sr:x1.5"),
        ValueError,
        r"factor must be an integer, not '1\.5'",
    ),
    Bad(
        FS,
        "value",
        "factor twice",
        lambda: from_spec("sr:x2:factor=2"),
        ValueError,
        r"gives factor twice",
    ),
    Bad(
        FS,
        "value",
        "factor on blur",
        lambda: from_spec(f"blur:{kernel_file()}:x2"),
        ValueError,
        r"factor applies to sr only, not to blur",
    ),
    Bad(
        FS,
        "value",
        "blur without kernel",
        lambda: from_spec("blur"),
        ValueError,
        r"kernel is required for blur: a kernel file",
    ),
    Bad(
        FS,
        "value",
        "blur bicubic",
        lambda: from_spec("blur:bicubic"),
        ValueError,
        r"kernel 'bicubic' is a super-resolution kernel; blur takes a kernel file",
    ),
    Bad(
        FS,
        "value",
        "std zero",
        lambda: from_spec("sr:gaussian:x2:std=0"),
        ValueError,
        r"std must be a finite number in \(0, 10000\]",
    ),
    Bad(
        FS,
        "nan-inf",
        "std inf",
        lambda: from_spec("sr:gaussian:x2:std=inf"),
        ValueError,
        r"std must be a finite number in \(0, 10000\]",
    ),
    Bad(
        FS,
        "value",
        "std on bicubic",
        lambda: from_spec("sr:bicubic:x2:std=1"),
        ValueError,
        r"std applies to kernel 'gaussian' only, not to 'bicubic'",
    ),
    Bad(
        FS,
        "value",
        "index on named kernel",
        lambda: from_spec("sr:gaussian:x2:index=1"),
        ValueError,
        r"key and index apply to kernel files only, not to the named kernel 'gaussian'",
    ),
    Bad(
        FS,
        "value",
        "negative index",
        lambda: from_spec(f"sr:{kernel_file()}:x2:index=-1"),
        ValueError,
        r"index must be an int >= 0, not -1",
    ),
    Bad(
        FS,
        "file",
        "missing kernel file",
        lambda: from_spec("sr:/nonexistent/k.npy:x2"),
        KernelReadError,
        r"cannot read kernel /nonexistent/k\.npy: no such file",
    ),
    Bad(
        FS,
        "file",
        "NaN kernel file",
        lambda: from_spec(f"sr:{kernel_file('nan.npy', np.array([[np.nan, 1.0]]))}:x2"),
        KernelReadError,
        r"cannot read kernel .*nan\.npy: the kernel contains NaN or Inf",
    ),
    Bad(
        FS,
        "file",
        "key on npy",
        lambda: from_spec(f"blur:{kernel_file()}:key=k"),
        KernelReadError,
        r"key names a MATLAB variable and applies to \.mat files only",
    ),
    Bad(
        FS,
        "size",
        "gaussian x4 kernel larger than the image",
        lambda: from_spec("sr:gaussian:x4")(X[..., :8, :8]),
        ValueError,
        r"kernel of size 25x25 is larger than x of size 8x8",
    ),
    Bad(
        FS,
        "mismatch",
        "x3 on 8x8",
        lambda: from_spec("sr:x3")(rand(1, 1, 8, 8)),
        ValueError,
        r"x has size 8x8, which is not divisible by the factor 3",
    ),
    # -- OperatorSpec ---------------------------------------------------------------------------
    Good(
        OS,
        "value",
        "kernel_tensor gaussian std 0.6",
        lambda: OperatorSpec("sr", kernel="gaussian", factor=2, std=0.6).kernel_tensor(),
        lambda: torch.from_numpy(gaussian(0.6, 5)),
        1e-15,
    ),
    Good(
        OS,
        "value",
        "parse then build = from_spec dense",
        lambda: OperatorSpec.parse("super-resolution:Bicubic:factor=3").build()(X3),
        lambda: sr_dense(bicubic_kernel(3).numpy(), 3, X3),
        1e-12,
    ),
    Bad(
        OS,
        "type",
        "parse int",
        lambda: OperatorSpec.parse(3),
        TypeError,
        r"spec must be a str such as 'sr:bicubic:x2', not int",
    ),
    Bad(
        OS,
        "name",
        "unknown name",
        lambda: OperatorSpec("upscale", factor=2),
        ValueError,
        r"name must be one of 'sr'",
    ),
    Bad(
        OS,
        "value",
        "factor huge negative",
        lambda: OperatorSpec("sr", factor=-4),
        ValueError,
        r"factor must be an int >= 1, not -4",
    ),
    Bad(
        OS,
        "value",
        "empty kernel",
        lambda: OperatorSpec("sr", kernel="", factor=2),
        ValueError,
        r"kernel must be 'bicubic', 'gaussian' or a kernel file, not an empty string",
    ),
    # -- the command line -----------------------------------------------------------------------
    Good(
        DEBLUR,
        "value",
        "--operator sr:x2 = solve with SuperResolution.bicubic(2) (8-bit)",
        _cli_sr,
        _solve_sr,
        1 / 255 + 1e-6,
    ),
    Bad(
        DEBLUR,
        "name",
        "--operator unknown kernel",
        lambda: _cli_bad("sr:lanczos:x2"),
        CliFailed,
        r"exit 2: pnpfast deblur: error: --operator: kernel must be 'bicubic', 'gaussian'",
    ),
    Bad(
        DEBLUR,
        "value",
        "--operator factor 0",
        lambda: _cli_bad("sr:x0"),
        CliFailed,
        r"exit 2: pnpfast deblur: error: --operator: factor must be an int >= 1, not 0",
    ),
    Bad(
        DEBLUR,
        "file",
        "--operator missing kernel file",
        lambda: _cli_bad("sr:/nonexistent/k.npy:x2"),
        CliFailed,
        r"exit 2: pnpfast deblur: error: cannot read kernel /nonexistent/k\.npy: no such file",
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)

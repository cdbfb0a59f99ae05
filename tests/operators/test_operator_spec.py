"""pnpfast.operators.from_spec / OperatorSpec: an operator named by text or a mapping is the one
built by hand (forward on a random float64 image, and a dense matrix from the definition for
kernel files), the text form round-trips, the command line's --operator reaches it, and every
bad spec is refused with a message naming the field and what it accepts."""

import re

import numpy as np
import pytest
import scipy.io
import torch

import pnpfast
from pnpfast.io import KernelReadError
from pnpfast.operators import Blur, OperatorSpec, SuperResolution, from_spec

F64 = torch.float64


def rand(*shape, seed=0) -> torch.Tensor:
    return torch.rand(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def dense_sr(k: np.ndarray, s: int, H: int, W: int) -> np.ndarray:
    """[H W / s^2, H W] from the definition:
    y[i, j] = sum_{m, n} k[m, n] x[(s i + h//2 - m) % H, (s j + w//2 - n) % W]."""
    h, w = k.shape
    A = np.zeros((H // s, W // s, H, W))
    for i in range(H // s):
        for j in range(W // s):
            for m in range(h):
                for n in range(w):
                    A[i, j, (s * i + h // 2 - m) % H, (s * j + w // 2 - n) % W] += k[m, n]
    return A.reshape(-1, H * W)


def apply_dense(k: np.ndarray, s: int, x: torch.Tensor) -> torch.Tensor:
    B, C, H, W = x.shape
    out = x.reshape(B * C, H * W).numpy() @ dense_sr(k, s, H, W).T
    return torch.from_numpy(out).reshape(B, C, H // s, W // s)


@pytest.fixture(scope="module")
def kernel_files(tmp_path_factory):
    """A 5x4 kernel in .npy and a stack of two 3x3 kernels in a .mat (MATLAB h x w x n)."""
    folder = tmp_path_factory.mktemp("kernels")
    k = rand(5, 4, seed=3).numpy() + 0.1
    np.save(folder / "k.npy", k / k.sum())
    stack = rand(3, 3, 2, seed=4).numpy() + 0.1
    scipy.io.savemat(folder / "k.mat", {"note": "x", "kernels": stack / stack.sum((0, 1))})
    return folder


@pytest.mark.parametrize(
    "text,direct,shape",
    [
        ("sr:bicubic:x2", lambda: SuperResolution.bicubic(2), (2, 3, 18, 14)),
        ("sr:x3", lambda: SuperResolution.bicubic(3), (1, 2, 27, 21)),
        ("super-resolution:gaussian:x2", lambda: SuperResolution.gaussian(2), (2, 1, 14, 16)),
        ("sr:gaussian:x3:std=1.6", lambda: SuperResolution.gaussian(3, 1.6), (1, 3, 21, 18)),
        ("sr:factor=4:kernel=Gaussian:std=0.7", lambda: SuperResolution.gaussian(4, 0.7), None),
    ],
)
def test_named_kernels_are_the_direct_operators(text, direct, shape):
    shape = shape or (2, 1, 16, 12)
    x = rand(*shape, seed=1)
    A, B = from_spec(text), direct()
    assert type(A) is SuperResolution and A.factor == B.factor
    torch.testing.assert_close(A(x), B(x), rtol=0, atol=1e-14)
    torch.testing.assert_close(A.kernel, B.kernel, rtol=0, atol=0)


def test_mapping_and_text_give_the_same_operator():
    x = rand(2, 3, 24, 18, seed=2)
    by_text = from_spec("sr:gaussian:x3:std=2")
    by_map = from_spec({"name": "super-resolution", "factor": 3, "kernel": "gaussian", "std": 2})
    by_spec = from_spec(OperatorSpec("sr", kernel="gaussian", factor=3, std=2.0))
    torch.testing.assert_close(by_text(x), by_map(x), rtol=0, atol=0)
    torch.testing.assert_close(by_text(x), by_spec(x), rtol=0, atol=0)


@pytest.mark.parametrize("s", [1, 2, 3])
def test_kernel_file_matches_the_dense_definition(kernel_files, s):
    k = np.load(kernel_files / "k.npy")
    x = rand(2, 2, 6 * s, 4 * s, seed=s)
    A = from_spec(f"sr:{kernel_files / 'k.npy'}:x{s}")
    torch.testing.assert_close(A(x), apply_dense(k, s, x), rtol=0, atol=1e-6)  # float32 file
    path_form = from_spec({"name": "sr", "kernel": kernel_files / "k.npy", "factor": s})
    torch.testing.assert_close(path_form(x), A(x), rtol=0, atol=0)


def test_blur_from_a_mat_stack_matches_the_dense_definition(kernel_files):
    mat = kernel_files / "k.mat"
    k1 = scipy.io.loadmat(mat)["kernels"][:, :, 1]
    x = rand(1, 3, 7, 9, seed=5)
    A = from_spec(f"deblur:{mat}:key=kernels:index=1")
    assert type(A) is Blur
    torch.testing.assert_close(A(x), apply_dense(k1, 1, x), rtol=0, atol=1e-6)
    # factor 1 is allowed for blur and means no decimation
    torch.testing.assert_close(from_spec(f"blur:{mat}:index=1:x1")(x), A(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "spec,text",
    [
        (OperatorSpec("sr", factor=2), "sr:bicubic:x2"),
        (OperatorSpec("super-resolution", kernel="GAUSSIAN", factor=3), "sr:gaussian:x3"),
        (OperatorSpec("sr", kernel="gaussian", factor=4, std=1.25), "sr:gaussian:x4:std=1.25"),
        (OperatorSpec("sr", kernel="x2.npy", factor=2), "sr:x2.npy:x2"),
        (OperatorSpec("sr", kernel="x2.5", factor=2), "sr:kernel=x2.5:x2"),
        (OperatorSpec("sr", kernel="a=b.npy", factor=2), "sr:kernel=a=b.npy:x2"),
        (OperatorSpec("blur", kernel="k.mat", key="K", index=3), "blur:k.mat:key=K:index=3"),
        (OperatorSpec("deblur", kernel="k.npy"), "blur:k.npy"),
    ],
)
def test_canonical_text_round_trips(spec, text):
    assert str(spec) == text
    assert OperatorSpec.parse(text) == spec
    assert OperatorSpec.parse(str(spec)) == spec


def test_kernel_tensor_of_the_named_kernels():
    g = OperatorSpec("sr", kernel="gaussian", factor=2, std=0.8).kernel_tensor()
    d = np.arange(-3, 4)  # 2 ceil(3 * 0.8) + 1 = 7 taps
    want = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * 0.8**2))
    np.testing.assert_allclose(g.numpy(), want / want.sum(), rtol=0, atol=1e-15)
    assert OperatorSpec("sr", factor=3).kernel_tensor().shape == (13, 13)  # default: bicubic


BAD = [
    # (spec, exception type, message as a regex)
    (5, TypeError, r"^spec must be a str such as 'sr:bicubic:x2', a mapping .* not int$"),
    ("foo:x2", ValueError, r"^name must be one of 'sr' \(or 'super-resolution'\), 'blur'"),
    ("", ValueError, r"^spec '' has no operator name: write NAME\[:FIELD\]"),
    ("sr:bicubic", ValueError, r"^factor is required for sr: an int >= 1 \(text form: x2"),
    ("sr:x0", ValueError, r"^factor must be an int >= 1, not 0$"),
    ("sr:x2.5", ValueError, r"^factor must be an integer, not '2\.5' \(in spec 'sr:x2\.5'\)$"),
    ("sr:x2:x3", ValueError, r"^spec 'sr:x2:x3' gives factor twice$"),
    ("sr:x2:fac=3", ValueError, r"unknown field 'fac'; fields: kernel, factor, std, key, index"),
    ("sr:bicubik:x2", ValueError, r"^kernel must be 'bicubic', 'gaussian' or a kernel file"),
    ("sr:gaussian:x2:std=-1", ValueError, r"^std must be a finite number in \(0, 10000\]"),
    ("sr:gaussian:x2:std=nan", ValueError, r"^std must be a finite number"),
    ("sr:gaussian:x2:std=wide", ValueError, r"^std must be a number, not 'wide'"),
    (
        "sr:bicubic:x2:std=1",
        ValueError,
        r"^std applies to kernel 'gaussian' only, not to 'bicubic'",
    ),
    ("sr:bicubic:x2:index=1", ValueError, r"^key and index apply to kernel files only"),
    ("sr:k.npy:x2:index=-1", ValueError, r"^index must be an int >= 0, not -1$"),
    ("blur", ValueError, r"^kernel is required for blur: a kernel file \(\.npy, \.png, \.mat\)$"),
    ("blur:bicubic", ValueError, r"^kernel 'bicubic' is a super-resolution kernel; blur takes"),
    ("blur:k.npy:x2", ValueError, r"^factor applies to sr only, not to blur \(got 2\)$"),
    ({"factor": 2}, ValueError, r"^spec has no 'name': one of 'sr'"),
    ({"name": "sr", "factor": 2, "size": 3}, ValueError, r"^spec has unknown fields \['size'\]"),
    ({"name": 3}, TypeError, r"^name must be a str, one of 'sr'"),
    ({"name": "sr", "factor": 2.0}, TypeError, r"^factor must be an int >= 1, not float 2\.0$"),
    ({"name": "sr", "factor": True}, TypeError, r"^factor must be an int >= 1, not bool True$"),
    ({"name": "sr", "factor": 2, "kernel": 3}, TypeError, r"^kernel must be 'bicubic', .* not int"),
    ({"name": "sr", "factor": 2, "kernel": ""}, ValueError, r"^kernel must be .* not an empty"),
    (
        {"name": "sr", "factor": 2, "kernel": "gaussian", "std": "1"},
        TypeError,
        r"^std must be a finite number .* not str '1'$",
    ),
    ({"name": "blur", "kernel": "k.mat", "key": 3}, TypeError, r"^key must be a str"),
    ({"name": "blur", "kernel": "k.mat", "index": 1.0}, TypeError, r"^index must be an int >= 0"),
]


@pytest.mark.parametrize("spec,error,match", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_specs(spec, error, match):
    with pytest.raises(Exception) as info:
        from_spec(spec)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert re.search(match, str(info.value)), str(info.value)


def test_bad_kernel_files(kernel_files, tmp_path):
    with pytest.raises(KernelReadError, match=r"cannot read kernel .*none\.npy: no such file"):
        from_spec(f"sr:{tmp_path / 'none.npy'}:x2")
    with pytest.raises(KernelReadError, match=r"key names a MATLAB variable"):
        from_spec(f"blur:{kernel_files / 'k.npy'}:key=k")
    with pytest.raises(KernelReadError, match=r"out of range"):
        from_spec(f"blur:{kernel_files / 'k.mat'}:key=kernels:index=2")
    # nothing is read while parsing: a spec may name a file that is written later
    assert OperatorSpec.parse(f"sr:{tmp_path / 'none.npy'}:x2").factor == 2


def test_cli_operator_runs_super_resolution(tmp_path, capsys):
    """--operator sr:bicubic:x2 writes the 2x image that pnpfast.solve gives on the same input
    with SuperResolution.bicubic(2) (8-bit output: to one level)."""
    from pnpfast.cli import main
    from pnpfast.io import read_image, write_image

    low = tmp_path / "low.png"
    write_image(low, rand(1, 3, 12, 10, seed=6).float())
    args = ["deblur", low, "--operator", "sr:bicubic:x2", "--noise", "2.55", "--iters", "2"]
    assert main([*map(str, args), "--denoiser", "tv", "-o", str(tmp_path / "out")]) == 0
    got = read_image(tmp_path / "out" / "low.png")
    y = read_image(low)
    res = pnpfast.solve(
        y, SuperResolution.bicubic(2), pnpfast.denoisers.load("tv"), "hqs", sigma=0.01, max_iter=2
    )
    assert got.shape == (1, 3, 24, 20)
    assert (got - res.x.clamp(0, 1)).abs().max() <= 1 / 255 + 1e-6
    assert "1 images: 1 done, 0 skipped (done before), 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--operator", "sr:bicubik:x2"], "--operator: kernel must be 'bicubic', 'gaussian'"),
        (["--operator", "sr:x2", "--kernel-index", "1"], "--kernel-key and --kernel-index go"),
        (["--operator", "sr:x2", "-k", "k.npy"], "not allowed with argument --operator"),
        ([], "one of the arguments -k/--kernel --operator is required"),
    ],
)
def test_cli_operator_errors(tmp_path, capsys, extra, message):
    from pnpfast.cli import main

    argv = ["deblur", str(tmp_path / "a.png"), "--noise", "2", "-o", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

"""The pnpfast command line: the demo end to end, deblur over several files, exit codes."""

import re

import numpy as np
import pytest
import torch

import pnpfast
from pnpfast.cli import main, motion_kernel
from pnpfast.io import read_image, write_image

NOISE255 = 5.0


def test_motion_kernel():
    k = motion_kernel()
    assert k.shape == (15, 15)
    assert k.dtype == torch.float32
    assert (k >= 0).all()
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(k, k.flip(0, 1))  # a segment through the centre
    assert k[7, 7] == k.max()
    # 30 degrees: the segment rises to the right, so the upper-right corner region holds mass
    assert k[:7, 8:].sum() > 0.4 and k[:7, :7].sum() == 0
    flat = motion_kernel(5, 0.0)
    assert torch.allclose(flat[2], torch.full((5,), 0.2))
    with pytest.raises(ValueError):
        motion_kernel(4)


def _table(out: str) -> dict[str, tuple[float, float]]:
    rows = {}
    for label in ("degraded", "restored"):
        m = re.search(rf"^{label}\s+([\d.]+)\s+([\d.]+)$", out, flags=re.MULTILINE)
        assert m, f"no {label} row in:\n{out}"
        rows[label] = (float(m.group(1)), float(m.group(2)))
    return rows


def test_demo_end_to_end(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "-o", str(out_dir), "--size", "64", "--iters", "2"]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM" in out and " s" in out
    names = ["comparison.png", "degraded.png", "input.png", "restored.png"]
    assert sorted(p.name for p in out_dir.iterdir()) == names
    for name in ("input.png", "degraded.png", "restored.png"):
        assert read_image(out_dir / name).shape == (1, 3, 64, 64)
    assert read_image(out_dir / "comparison.png").shape == (1, 3, 64, 3 * 64 + 2 * 4)
    rows = _table(out)
    assert rows["restored"][0] > rows["degraded"][0]
    assert rows["restored"][1] > rows["degraded"][1]


def test_demo_bad_arguments(tmp_path):
    assert main(["demo", "-o", str(tmp_path), "--size", "8"]) == 2
    assert main(["demo", "-o", str(tmp_path), "--noise", "-1"]) == 2
    assert main(["demo", "-o", str(tmp_path), "--iters", "0"]) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def blurred_inputs(tmp_path):
    """Three 24x24 inputs (gray, RGB, and a corrupt file) and a 5x5 kernel in .npy."""
    g = torch.Generator().manual_seed(0)
    kernel = motion_kernel(5, 45.0)
    np.save(tmp_path / "k.npy", kernel.numpy())
    blur = pnpfast.operators.Blur(kernel)
    src = tmp_path / "in"
    src.mkdir()
    for name, c in (("gray.png", 1), ("color.png", 3)):
        x = torch.rand(1, c, 24, 24, generator=g)
        write_image(src / name, blur(x) + NOISE255 / 255 * torch.randn(x.shape, generator=g))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return tmp_path, [src / "gray.png", src / "broken.png", src / "color.png"]


def _deblur(inputs, tmp, *extra):
    return main(
        [
            "deblur",
            *map(str, inputs),
            "--kernel",
            str(tmp / "k.npy"),
            "--noise",
            str(NOISE255),
            "--iters",
            "2",
            "-o",
            str(tmp / "out"),
            *extra,
        ]
    )


def test_deblur_reports_bad_file_and_does_the_others(blurred_inputs, capsys):
    tmp, inputs = blurred_inputs
    assert _deblur(inputs, tmp) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in (tmp / "out").glob("*.png")) == ["color.png", "gray.png"]
    assert "broken.png" in captured.err
    assert "3 images: 2 done, 0 skipped (done before), 1 failed" in captured.out
    # deblur is restore --task deblur: its ledger makes a rerun skip what is done
    assert _deblur(inputs, tmp) == 1  # broken.png fails again
    assert "2 skipped (done before), 1 failed" in capsys.readouterr().out

    # each output is what the Python API gives for that image
    for name, c in (("gray", 1), ("color", 3)):
        y = read_image(tmp / "in" / f"{name}.png")
        kernel = torch.from_numpy(np.load(tmp / "k.npy"))
        want = pnpfast.solve(
            y,
            pnpfast.operators.Blur(kernel),
            pnpfast.denoisers.load(),
            method="hqs",
            sigma=NOISE255 / 255,
            max_iter=2,
        ).x
        write_image(tmp / f"want_{name}.png", want)
        got = read_image(tmp / "out" / f"{name}.png")
        assert got.shape == (1, c, 24, 24)
        assert torch.equal(got, read_image(tmp / f"want_{name}.png"))


def test_deblur_all_good_returns_0_and_missing_file_fails(blurred_inputs, capsys):
    tmp, inputs = blurred_inputs
    assert _deblur([inputs[0]], tmp) == 0
    assert "1 images: 1 done, 0 skipped (done before), 0 failed" in capsys.readouterr().out
    missing = tmp / "in" / "missing.png"
    assert _deblur([missing, inputs[2]], tmp) == 2  # a missing INPUT is a usage error
    captured = capsys.readouterr()
    assert "missing.png" in captured.err and "no such" in captured.err
    assert _deblur([tmp / "in"], tmp) == 1  # a folder: its images, broken.png failing
    assert "3 images: 1 done, 1 skipped (done before), 1 failed" in capsys.readouterr().out


def test_deblur_skip_existing(blurred_inputs, capsys):
    tmp, inputs = blurred_inputs
    good = [inputs[0], inputs[2]]
    (tmp / "out").mkdir()
    sentinel = b"an earlier result"
    (tmp / "out" / "gray.png").write_bytes(sentinel)
    assert _deblur(good, tmp, "--skip-existing") == 0
    out = capsys.readouterr().out
    assert "1 skipped (output exists)" in out and "1 images: 1 done" in out
    assert (tmp / "out" / "gray.png").read_bytes() == sentinel
    # without the flag an output no run recorded is replaced; the recorded one is skipped
    assert _deblur(good, tmp) == 0
    assert "2 images: 1 done, 1 skipped (done before)" in capsys.readouterr().out
    assert read_image(tmp / "out" / "gray.png").shape == (1, 1, 24, 24)


def test_deblur_kernel_from_mat_and_png(blurred_inputs, capsys):
    scipy_io = pytest.importorskip("scipy.io")
    tmp, inputs = blurred_inputs
    k = np.load(tmp / "k.npy")
    scipy_io.savemat(tmp / "k.mat", {"note": "x", "kernels": np.stack([k, k], axis=-1)})
    args = ["deblur", str(inputs[0]), "--noise", "5", "--iters", "1", "-o", str(tmp / "o")]
    kernel_args = ["--kernel", str(tmp / "k.mat"), "--kernel-key", "kernels", "--kernel-index", "1"]
    assert main(args + kernel_args) == 0
    assert main([*args, "--kernel", str(tmp / "k.mat"), "--kernel-index", "2"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_bad_arguments_return_2(blurred_inputs, capsys):
    tmp, inputs = blurred_inputs
    good = str(inputs[0])
    base = ["--noise", "5", "-o", str(tmp / "out")]
    kernel = ["--kernel", str(tmp / "k.npy")]
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["deblur", good, *base]) == 2  # no --kernel
    assert main(["deblur", *kernel, *base]) == 2  # no input
    assert main(["deblur", good, *kernel, "-o", str(tmp / "out")]) == 2  # no --noise
    assert main(["deblur", good, *kernel, *base, "--noise", "0"]) == 2
    assert main(["deblur", good, *kernel, *base, "--iters", "two"]) == 2
    assert main(["deblur", good, *kernel, *base, "--method", "nope"]) == 2
    capsys.readouterr()
    assert main(["deblur", good, *kernel, *base, "--kernel-index", "-1"]) == 2
    assert "index must be an int >= 0, not -1" in capsys.readouterr().err  # read_kernel's own check
    assert main(["deblur", good, *kernel, *base, "--denoiser", "nope"]) == 2
    assert main(["deblur", good, *kernel, *base, "--weights", str(tmp / "k.npy")]) == 2
    assert main(["deblur", good, "--kernel", str(tmp / "none.npy"), *base]) == 2
    assert "none.npy" in capsys.readouterr().err
    twin = tmp / "twin" / "gray.png"
    twin.parent.mkdir()
    twin.write_bytes(inputs[0].read_bytes())
    assert main(["deblur", good, str(twin), *kernel, *base]) == 2  # two inputs, one output
    assert "gray.png" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["deblur", good, *kernel, *base, "--device", "cuda"]) == 2
    assert not (tmp / "out").exists()  # nothing was started


def test_help_and_version_return_0(capsys):
    assert main(["--help"]) == 0
    assert main(["deblur", "--help"]) == 0
    assert main(["--version"]) == 0
    assert pnpfast.__version__ in capsys.readouterr().out


def test_backends_table(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["backend", "available", "reason"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert set(rows) == set(pnpfast.backends())
    assert rows["reference"] == "yes"

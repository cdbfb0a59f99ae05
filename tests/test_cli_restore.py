"""``pnpfast restore``: a folder restored, resumed, refused with other settings, redone with
--overwrite; failed images and exit codes; progress lines; Ctrl-C; ``python -m pnpfast``.

Tiny 12x12 PNGs in tmp_path and the Gaussian smoothing denoiser with 2 iterations keep each run
well under a second. Restored pixels are compared with ``pnpfast.solve`` run in the test on the
image as read (the runner's own equivalence with solve is tested in tests/runner/).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pnpfast
import pnpfast.cli
from pnpfast.cli import main
from pnpfast.io import read_image

FAST = ["--denoiser", "gaussian", "--max-iter", "2"]
NAMES = ["a.png", "b.png", "sub/c.png", "sub/deep/d.png"]


def _tree(root: Path, names=NAMES, size: int = 12) -> Path:
    """Random 8-bit RGB images at ``names`` under ``root``."""
    rng = np.random.default_rng(0)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return root


def _kernel(tmp_path: Path) -> Path:
    k = np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 8.0
    np.save(tmp_path / "k.npy", k)
    return tmp_path / "k.npy"


def _run(*argv) -> int:
    return main(["restore", *(str(a) for a in argv)])


def _report(out: Path) -> dict:
    return json.loads((out / "restore-report.json").read_text())


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("pnpfast restore: error")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_folder_restored_mirrors_the_tree(tmp_path, capsys):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    k = _kernel(tmp_path)
    code = _run(src, "-o", out, "--operator", f"blur:{k}", "--noise", 5, *FAST, "--batch", 3)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(NAMES)
    report = _report(out)
    assert (report["done"], report["skipped"], report["failed"], report["total"]) == (4, 0, [], 4)
    assert report["device"] == "cpu" and report["interrupted"] is False
    assert set(report["seconds"]) >= {"read", "solve", "denoiser", "data", "write", "total"}
    # the summary: counts, speed, time per phase, memory, device, where the report is
    assert "4 images: 4 done, 0 skipped (done before), 0 failed" in captured.out
    assert "images/s" in captured.out and "denoiser" in captured.out
    assert "peak memory" in captured.out and "on cpu" in captured.out
    assert str(out / "restore-report.json") in captured.out
    # each output is solve on its image as read, 8-bit like its input
    y = read_image(src / "sub/c.png")
    A = pnpfast.operators.Blur(torch.from_numpy(np.load(k)).float())
    D = pnpfast.denoisers.load("gaussian")
    want = pnpfast.solve(y, A, D, "hqs", sigma=5 / 255, max_iter=2).x.clamp(0, 1)
    got = read_image(out / "sub/c.png")
    assert (got - want).abs().max().item() <= 0.5 / 255 + 1e-6
    assert (got - y).abs().max().item() > 2 / 255  # something was restored, not copied


def test_rerun_skips_then_other_noise_is_refused_then_overwrite_redoes(tmp_path, capsys):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    base = [src, "-o", out, "--task", "denoise", *FAST]
    assert _run(*base, "--noise", 5) == 0
    first = (out / "a.png").stat().st_mtime_ns
    capsys.readouterr()

    assert _run(*base, "--noise", 5) == 0
    report = _report(out)
    assert (report["done"], report["skipped"]) == (0, 4)
    assert (out / "a.png").stat().st_mtime_ns == first
    assert "0 done, 4 skipped" in capsys.readouterr().out

    assert _run(*base, "--noise", 7) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "noise (--noise): 5.0 before, 7.0 now" in line and "--overwrite" in line
    assert _report(out)["skipped"] == 4  # the refused run wrote no report

    assert _run(*base, "--noise", 7, "--overwrite") == 0
    report = _report(out)
    assert (report["done"], report["skipped"]) == (4, 0)
    y = read_image(src / "a.png")
    D = pnpfast.denoisers.load("gaussian")
    want = pnpfast.solve(y, pnpfast.operators.Identity(), D, "hqs", sigma=7 / 255, max_iter=2).x
    assert (read_image(out / "a.png") - want.clamp(0, 1)).abs().max().item() <= 0.5 / 255 + 1e-6


def test_corrupt_file_fails_alone(tmp_path, capsys):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    (src / "sub" / "broken.png").write_bytes(b"not a png")
    code = _run(src, "-o", out, "--task", "denoise", "--noise", 5, *FAST, "--no-progress")
    captured = capsys.readouterr()
    assert code == 1
    report = _report(out)
    assert report["done"] == 4 and report["total"] == 5
    assert [f["key"] for f in report["failed"]] == ["sub/broken.png"]
    assert "ImageReadError" in report["failed"][0]["reason"]
    assert all((out / name).is_file() for name in NAMES)
    assert "failed: sub/broken.png: ImageReadError" in captured.out
    err = [line for line in captured.err.splitlines() if line.startswith("pnpfast")]
    assert len(err) == 1 and "failed: 1 of 5 images" in err[0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--noise", "-3"], "argument --noise: the noise level must be a number > 0"),
        (["--noise", "5", "--batch", "0"], "argument --batch: expected an integer >= 1"),
        (["--noise", "5", "--max-iter", "0"], "argument --max-iter: expected an integer >= 1"),
        (["--noise", "5", "--bit-depth", "12"], "argument --bit-depth: invalid choice: 12"),
        (["--noise", "5", "--ext", "jpg"], "argument --ext: invalid choice: 'jpg'"),
        (["--noise", "5", "--task", "x"], "argument --task: invalid choice: 'x'"),
        (["--noise", "5", "--param", "lam"], "argument --param: expected NAME=VALUE"),
        (["--noise", "5", "--param", "zz=1"], "--param: params: method 'hqs' has no parameter"),
        (["--noise", "5", "--method", "zz"], "--method: method must be one of"),
        (["--noise", "5", "--device", "gpu"], "--device: device must be 'cpu', 'cuda'"),
        (["--noise", "5", "--overlap", "2"], "--overlap: overlap applies with tile only"),
        (["--noise", "5", "--tile", "4", "--overlap", "4"], "--overlap: overlap must be an int"),
        (["--noise", "5", "--mask", "m.png"], "--mask: mask applies to the task inpainting"),
        ([], "--noise: method hqs needs the noise level"),
    ],
)
def test_bad_flags_are_one_line_naming_the_flag(tmp_path, capsys, flags, expected):
    src, out = _tree(tmp_path / "in", NAMES[:1]), tmp_path / "out"
    assert _run(src, "-o", out, "--task", "denoise", *FAST, *flags) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("pnpfast")]
    assert len(lines) == 1 and expected in lines[0], err
    assert not (out / "a.png").exists()


def test_unreadable_files_and_offline_weights_exit_2(tmp_path, capsys, monkeypatch):
    src = _tree(tmp_path / "in", NAMES[:1])
    np.save(tmp_path / "nan.npy", np.full((3, 3), np.nan))
    (tmp_path / "mask.png").write_bytes(b"junk")
    cases = [
        (["--operator", f"blur:{tmp_path / 'none.npy'}"], "--operator: operator: no such file"),
        (["--operator", f"blur:{tmp_path / 'nan.npy'}"], "--operator: cannot read kernel"),
        (["--operator", "sr:bicubic:x2"], "--operator: operator 'sr:bicubic:x2' is a sr"),
        ([], "--operator: task deblur needs the blur kernel"),
        (["--task", "inpainting", "--mask", tmp_path / "mask.png"], "--mask: cannot read image"),
        (["--task", "inpainting"], "--mask: task inpainting needs the mask image"),
        (["--task", "sr"], "--operator: task sr needs the operator"),
        (["--task", "denoise", "--denoiser", "zz"], "--denoiser: denoiser: cannot load it"),
        (["--task", "denoise", "--denoiser", "dncnn", "--weights", "no.pt"], "--weights: "),
        (["--task", "denoise", "--denoiser", "drunet-color"], "--denoiser: weights 'drunet-color'"),
    ]
    monkeypatch.setenv("PNPFAST_OFFLINE", "1")
    monkeypatch.setenv("PNPFAST_CACHE", str(tmp_path / "cache"))
    for i, (flags, expected) in enumerate(cases):
        code = _run(src, "-o", tmp_path / f"out{i}", "--noise", 5, "--max-iter", 2, *flags)
        line = _one_error_line(capsys.readouterr().err)
        assert code == 2 and expected in line, (flags, line)
    assert _run(tmp_path / "missing", "-o", tmp_path / "o", "--task", "denoise", "--noise", 5) == 2
    assert "missing: no such file" in _one_error_line(capsys.readouterr().err)
    assert _run("-o", tmp_path / "o", "--task", "denoise", "--noise", 5) == 2
    assert "give at least one INPUT, or --manifest" in capsys.readouterr().err


def test_progress_lines_when_not_a_terminal(tmp_path, capsys):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    args = [src, "-o", out, "--task", "denoise", "--noise", 5, *FAST, "--batch", 1]
    assert _run(*args, "--progress-every", 0) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 4, lines
    for n, line in enumerate(lines, start=1):
        assert line.startswith(f"pnpfast restore: {n}/4 images, ")
        assert "images/s, ETA " in line
    assert _run(*args, "--overwrite", "--no-progress") == 0
    assert capsys.readouterr().err == ""


def test_ctrl_c_stops_after_the_batch_and_a_rerun_finishes(tmp_path, capsys, monkeypatch):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    args = [src, "-o", out, "--task", "denoise", "--noise", 5, *FAST, "--batch", 1]
    calls = []
    original = pnpfast.cli._Progress.__call__

    def interrupting(self, finished, total, elapsed):
        calls.append(finished)
        if len(calls) == 1:  # as a user's Ctrl-C during the second batch would
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, finished, total, elapsed)

    monkeypatch.setattr(pnpfast.cli._Progress, "__call__", interrupting)
    assert _run(*args) == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err and "run the same command again" in captured.err
    report = _report(out)
    assert report["interrupted"] is True and 1 <= report["done"] < 4
    ledger = (out / ".pnpfast-ledger.rank0.jsonl").read_text().splitlines()
    assert sum('"done"' in line for line in ledger) == report["done"]
    done_before = report["done"]

    monkeypatch.setattr(pnpfast.cli._Progress, "__call__", original)
    assert _run(*args) == 0
    report = _report(out)
    assert (report["skipped"], report["done"]) == (done_before, 4 - done_before)


def test_rank_and_world_size_from_the_environment(tmp_path, capsys, monkeypatch):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    args = [src, "-o", out, "--task", "denoise", "--noise", 5, *FAST]
    monkeypatch.setenv("WORLD_SIZE", "2")
    shares = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert _run(*args) == 0
        report = json.loads((out / f"restore-report.rank{rank}.json").read_text())
        assert (report["rank"], report["world_size"]) == (rank, 2)
        shares.append(report["done"])
    assert sum(shares) == 4 and min(shares) >= 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(NAMES)
    monkeypatch.setenv("RANK", "2")
    assert _run(*args) == 2
    assert "RANK must be below WORLD_SIZE (2), not 2" in _one_error_line(capsys.readouterr().err)


def test_report_flag_under_several_ranks_is_one_file_per_rank(tmp_path, monkeypatch):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        args = [src, "-o", out, "--task", "denoise", "--noise", 5, *FAST]
        assert _run(*args, "--report", tmp_path / "r" / "run.json") == 0
    for rank in (0, 1):  # not one file written by both
        report = json.loads((tmp_path / "r" / f"run.rank{rank}.json").read_text())
        assert report["rank"] == rank
    assert not (tmp_path / "r" / "run.json").exists()


def test_batch_auto_bf16_channels_last(tmp_path, capsys):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    args = [src, "-o", out, "--task", "denoise", "--noise", 5, *FAST]
    assert _run(*args, "--batch", "auto", "--precision", "bf16", "--channels-last") == 0
    report = _report(out)
    assert report["done"] == 4 and report["auto_batch"] == {"3x12x12": 64}  # the cap: tiny images
    assert report["fp32_reruns"] == []
    # the ledger fingerprints the precision: fp32 into the same folder is refused, naming it
    capsys.readouterr()
    assert _run(*args) == 2
    assert "--precision" in _one_error_line(capsys.readouterr().err)


def test_python_dash_m_pnpfast_restore(tmp_path):
    src, out = _tree(tmp_path / "in", NAMES[:2]), tmp_path / "out"
    argv = [sys.executable, "-m", "pnpfast", "restore", str(src), "-o", str(out)]
    argv += ["--task", "denoise", "--noise", "5", *FAST, "--progress-every", "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert "2 images: 2 done" in run.stdout
    assert "pnpfast restore: 2/2 images" in run.stderr  # stderr is a pipe: plain lines
    assert _report(out)["done"] == 2


class _Terminal:
    """A stderr that says it is a terminal, keeping what was written."""

    def __init__(self):
        self.text = []

    def isatty(self):
        return True

    def write(self, s):
        self.text.append(s)
        return len(s)

    def flush(self):
        pass


def test_progress_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    src, out = _tree(tmp_path / "in"), tmp_path / "out"
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = _run(src, "-o", out, "--task", "denoise", "--noise", 5, *FAST, "--batch", 2)
    assert code == 0
    drawn = "".join(terminal.text)
    assert "restore" in drawn and "4/4" in drawn and "image/s" in drawn
    assert "pnpfast restore: 4/4 images" not in drawn  # the bar, not the plain lines


def test_help_names_torchrun_and_exit_codes(capsys):
    assert main(["restore", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "RANK and WORLD_SIZE" in text and "torch.distributed is not initialised" in text
    assert "130 stopped by Ctrl-C" in text


def test_report_path_and_many_failures_summarised(tmp_path, capsys):
    src, out = _tree(tmp_path / "in", NAMES[:1]), tmp_path / "out"
    for i in range(12):
        (src / f"broken{i:02d}.png").write_bytes(b"junk")
    report_path = tmp_path / "reports" / "run.json"
    args = [src, "-o", out, "--task", "denoise", "--noise", 5, *FAST, "--report", report_path]
    assert _run(*args) == 1
    stdout = capsys.readouterr().out
    assert not (out / "restore-report.json").exists()
    report = json.loads(report_path.read_text())
    assert (report["done"], len(report["failed"]), report["total"]) == (1, 12, 13)
    assert stdout.count("  failed: broken") == 10
    assert "... and 2 more failures in the report" in stdout
    assert not list(report_path.parent.glob(".*.tmp"))  # the atomic write left nothing behind


def test_edited_kernel_is_refused_naming_the_operator(tmp_path, capsys):
    src, out = _tree(tmp_path / "in", NAMES[:2]), tmp_path / "out"
    k = _kernel(tmp_path)
    args = [src, "-o", out, "--operator", f"blur:{k}", "--noise", 5, *FAST]
    assert _run(*args) == 0
    np.save(k, np.full((3, 3), 1 / 9))
    assert _run(*args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "operator_sha256 (--operator): the file's content changed" in line
    assert "--overwrite" in line


def test_manifest_alone_gives_each_image_its_kernel_and_noise(tmp_path, capsys):
    src, out = _tree(tmp_path / "in", ["a.png", "sub/b.png"]), tmp_path / "out"
    k3 = np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 8.0
    k5 = np.full((5, 5), 1 / 25)
    np.save(src / "k3.npy", k3)
    np.save(src / "k5.npy", k5)
    manifest = src / "jobs.csv"
    manifest.write_text("path,kernel,noise\na.png,k3.npy,3\nsub/b.png,k5.npy,9\n")
    assert _run("-o", out, "--manifest", manifest, *FAST) == 0  # no --operator, no --noise
    assert _report(out)["done"] == 2
    D = pnpfast.denoisers.load("gaussian")
    for name, k, noise in (("a.png", k3, 3), ("sub/b.png", k5, 9)):
        A = pnpfast.operators.Blur(torch.from_numpy(k).float())
        y = read_image(src / name)
        want = pnpfast.solve(y, A, D, "hqs", sigma=noise / 255, max_iter=2).x.clamp(0, 1)
        assert (read_image(out / name) - want).abs().max().item() <= 0.5 / 255 + 1e-6, name

    manifest.write_text("path,kernel,noise\na.png,k3.npy,-3\n")
    assert _run("-o", tmp_path / "out2", "--manifest", manifest, *FAST) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("pnpfast restore: error: --manifest: ") and "noise" in line, line


def test_cuda_under_torchrun_is_the_local_rank(monkeypatch):
    from pnpfast._env import torchrun_device as _rank_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert _rank_device("cuda") == "cuda"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert _rank_device("cuda") == "cuda:3"
    assert _rank_device("cuda:1") == "cuda:1" and _rank_device("cpu") == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ValueError, match="LOCAL_RANK must be an integer >= 0, not 'x'"):
        _rank_device("cuda")
    assert _rank_device("cpu") == "cpu"  # only cuda reads it


def test_sigint_to_a_process_exits_130_after_the_batch(tmp_path):
    """A real Ctrl-C: SIGINT after the first progress line (the first batch is written); 40
    images of about 50 ms each leave seconds for the signal to arrive before the end."""
    src = tmp_path / "in"
    _tree(src, [f"{i:02d}.png" for i in range(40)], size=24)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "pnpfast", "restore", str(src), "-o", str(out)]
    argv += ["--task", "denoise", "--noise", "5", "--denoiser", "gaussian", "--max-iter", "400"]
    argv += ["--batch", "1", "--progress-every", "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        first = proc.stderr.readline()
        assert first.startswith("pnpfast restore: 1/40 images"), first
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: the finished images" in stderr
    report = _report(out)
    assert report["interrupted"] is True and 1 <= report["done"] < 40
    assert "(interrupted)" in stdout
    written = sorted(p.name for p in out.glob("*.png"))
    assert len(written) == report["done"]

"""Fast CPU tests of the benchmark harness, the report and the benchmark scripts (fft_prox,
pnp_update, denoisers, red)."""

import importlib.util
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from pnpfast_test_utils import SHARED_DATA, load_benchmark

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _load(name: str):
    return load_benchmark(name)


def _run_bench(script: str, *args: str, out: Path) -> tuple[subprocess.CompletedProcess, list]:
    """Run benchmarks/<script> with ``args`` and ``--out out``; (the finished process, the rows
    it wrote, none when it wrote no file). Fails the test when the script fails."""
    cmd = [sys.executable, str(BENCH / script), *args, "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return done, rows


@pytest.fixture(scope="module")
def harness():
    return _load("harness")


@pytest.fixture(scope="module")
def report():
    return _load("report")


@pytest.fixture
def fake_copy_bw(harness, monkeypatch):
    """A known CPU copy bandwidth, so rows need no real measurement."""
    monkeypatch.setitem(harness._copy_bw_cache, "cpu", 10.0)
    return 10.0


def test_measure_percentiles_of_a_fake_clock(harness, monkeypatch):
    clock = [0.0]
    durations_ms = [1000.0, 1000.0] + [float(d) for d in range(1, 11)]  # 2 warmups, 10 timed

    def fake_fn():
        clock[0] += durations_ms.pop(0) * 1e-3

    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])
    t = harness.measure(fake_fn, warmup=2, reps=10, device="cpu")
    assert durations_ms == []
    assert t.reps == 10
    assert t.median_ms == pytest.approx(5.5)
    assert t.p20_ms == pytest.approx(2.8)
    assert t.p80_ms == pytest.approx(8.2)


def test_measure_always_warms_up_once(harness):
    calls = []
    t = harness.measure(lambda: calls.append(1), warmup=0, reps=3, device="cpu")
    assert len(calls) == 4
    assert t.reps == 3
    with pytest.raises(ValueError, match="reps"):
        harness.measure(lambda: None, warmup=1, reps=0, device="cpu")


def test_measure_many_interleaves(harness):
    order = []
    fns = {name: (lambda n=name: order.append(n)) for name in "abc"}
    timings = harness.measure_many(fns, warmup=1, reps=3, device="cpu")
    assert set(timings) == {"a", "b", "c"}
    assert order[:3] == ["a", "b", "c"]  # warmups
    assert order[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def _row(harness, **over):
    timing = harness.Timing(median_ms=2.0, p20_ms=1.5, p80_ms=2.5, reps=10)
    kwargs = dict(
        op="fft_prox",
        provider="reference",
        shape=(2, 3, 32, 32),
        dtype=harness.torch.float32,
        timing=timing,
        nbytes=4_000_000,
        device="cpu",
        correct=True,
        note="",
    )
    kwargs.update(over)
    return harness.make_row(**kwargs)


def test_rows_have_every_column(harness, fake_copy_bw):
    row = _row(harness)
    assert tuple(row) == harness.COLUMNS
    assert row["shape"] == "2x3x32x32"
    assert row["dtype"] == "float32"
    assert row["gbps"] == pytest.approx(2.0)  # 4e6 bytes in 2 ms
    assert row["frac_copy_bw"] == pytest.approx(2.0 / fake_copy_bw)
    assert row["correct"] is True
    assert row["git_sha"]
    assert "cores" in row["device"]


def test_append_rows_writes_jsonl(harness, fake_copy_bw, tmp_path):
    path = tmp_path / "results" / "fft_prox.jsonl"
    harness.append_rows(path, [_row(harness), _row(harness, provider="deepinv")])
    harness.append_rows(path, [_row(harness, provider="fft-only")])
    lines = path.read_text().splitlines()
    assert [json.loads(line)["provider"] for line in lines] == ["reference", "deepinv", "fft-only"]
    assert all(list(json.loads(line)) == list(harness.COLUMNS) for line in lines)
    bad = _row(harness)
    del bad["gbps"]
    with pytest.raises(ValueError, match="gbps"):
        harness.append_rows(path, [bad])
    assert len(path.read_text().splitlines()) == 3


def test_parse_shapes(harness):
    assert harness.parse_shapes("8x3x256x256, 2x3x32x32") == [(8, 3, 256, 256), (2, 3, 32, 32)]
    with pytest.raises(Exception, match="bad shape"):
        harness.parse_shapes("8x3xfoo")


def test_check_close(harness):
    torch = harness.torch
    ref = torch.tensor([1.0, -2.0, 4.0])
    assert harness.check_close(ref + 1e-6, ref, 1e-4)[0]
    assert not harness.check_close(ref + 1e-2, ref, 1e-4)[0]
    assert not harness.check_close(ref * float("nan"), ref, 1e-4)[0]
    spec = torch.tensor([1 + 1j, 2 - 2j])
    assert not harness.check_close(spec.conj(), spec, 1e-4)[0]  # imaginary parts count


def _write_results(harness, path: Path, rows: list[dict]) -> None:
    harness.append_rows(path, rows)


def test_report_renders_latest_rows(harness, report, fake_copy_bw, tmp_path):
    old = _row(harness, timing=harness.Timing(9.0, 8.0, 10.0, 5))
    old["timestamp"] = "2000-01-01T00:00:00+00:00"
    rows = [
        old,
        _row(harness),  # the newer reference: 2 ms
        _row(harness, provider="deepinv", timing=harness.Timing(5.0, 4.0, 6.0, 10)),
        _row(harness, provider="triton", timing=harness.Timing(1.0, 1.0, 1.0, 10), correct=False),
    ]
    _write_results(harness, tmp_path / "fft_prox.jsonl", rows)
    text = report.render(report.load_rows(tmp_path))
    assert text.startswith("### fft_prox")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| provider | shape | median ms (p20-p80) | GB/s | % of copy bw")
    body = {line.split(" | ")[0].lstrip("| "): line for line in table[1:]}
    assert set(body) == {"reference", "deepinv", "triton"}
    assert "2.000 (1.500-2.500)" in body["reference"]
    assert "| 1.00x |" in body["reference"]
    assert "| 0.40x |" in body["deepinv"]
    assert "| incorrect |" in body["triton"]


def test_report_refuses_readme_without_markers(harness, report, fake_copy_bw, tmp_path, capsys):
    results = tmp_path / "results"
    _write_results(harness, results / "fft_prox.jsonl", [_row(harness)])
    readme = tmp_path / "README.md"
    readme.write_text("# pnpfast\n\nno markers here\n")
    args = ["--results", str(results), "--update-readme", "--readme", str(readme)]
    assert report.main(args) == 1
    assert readme.read_text() == "# pnpfast\n\nno markers here\n"
    assert "bench:start" in capsys.readouterr().err

    readme.write_text(f"intro\n{report.START}\nold table\n{report.END}\noutro\n")
    assert report.main(args) == 0
    content = readme.read_text()
    assert "old table" not in content
    assert content.startswith(f"intro\n{report.START}\n### fft_prox")
    assert content.endswith(f"{report.END}\noutro\n")


def test_bench_fft_prox_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "fft_prox.jsonl"
    cmd = [
        sys.executable,
        str(BENCH / "bench_fft_prox.py"),
        "--quick",
        "--device",
        "cpu",
        "--shapes",
        "2x3x32x32",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_provider = {r["provider"]: r for r in rows}
    assert {"reference", "fft-only", "spectral-pass/reference"} <= set(by_provider)
    assert all(r["shape"] == "2x3x32x32" and r["device"] for r in rows)
    assert by_provider["reference"]["correct"] is True
    assert by_provider["spectral-pass/reference"]["correct"] is True
    assert by_provider["reference"]["median_ms"] > 0


def test_bench_sr_prox_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "sr_prox.jsonl"
    cmd = [sys.executable, str(BENCH / "bench_sr_prox.py"), "--quick", "--device", "cpu"]
    cmd += ["--shapes", "2x3x32x32", "--factors", "2,3", "--threads", "1", "--out", str(out)]
    cmd += ["--providers", "reference,torch-unfused,fft-only,spectral-pass/reference"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["op"], r["shape"]) for r in rows} == {
        ("sr_prox/x2", "2x3x32x32"),
        ("sr_prox/x3", "2x3x30x30"),  # cut down to a multiple of the factor
    }
    N, e = 2 * 3 * 32 * 32, 4
    for r in rows:
        assert r["correct"] is True and r["median_ms"] > 0
        if r["op"] != "sr_prox/x2":
            continue
        # spectral pass: 2 spectra in, 1 out, the shared K^ and mean_s |K^|^2 once, gamma
        spectral = 3 * N * 2 * e + 32 * 32 * 2 * e + 16 * 16 * e + 2 * e
        # fft2: image in, spectrum out; real_ifft2: W // 2 + 1 = 17 of 32 columns of complex
        # in, the image out
        ffts = (N * e + N * 2 * e) + (N // 32 * 17 * 2 * e + N * e)
        if r["provider"] == "reference":
            assert r["bytes"] == spectral + ffts
        elif r["provider"] == "fft-only":
            assert r["bytes"] == ffts
        elif r["provider"] == "spectral-pass/reference":
            assert r["bytes"] == spectral


def test_bench_deepinv_quick_runs_end_to_end(report, tmp_path):
    args = ("--quick", "--shapes", "2x3x32x32", "--problems", "dpir/blur,pgd/blur")
    done, rows = _run_bench("bench_deepinv.py", *args, out=tmp_path / "deepinv.jsonl")
    if "deepinv benchmark skipped" in done.stderr:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    by = {(r["op"], r["provider"]): r for r in rows}
    for algorithm in ("dpir", "pgd"):
        for denoiser in ("identity", "conditional"):
            for physics in ("original", "accelerated"):
                r = by[("deepinv", f"{algorithm}/blur/{denoiser}/{physics}")]
                assert r["correct"] is True and r["median_ms"] > 0 and r["shape"] == "2x3x32x32"
    phases = {p for op, p in by if op == "deepinv-phases"}
    assert {"prox_l2/blur/accelerated", "A_adjoint/blur/original"} <= phases
    assert "relaxation/blur/deepinv" in phases
    assert "dpir/blur/identity:" in done.stdout and "x (target >= 1.5x" in done.stdout
    # the report's speed-up of <problem>/accelerated is against <problem>/original
    table = report.render(report.load_rows(tmp_path))
    line = next(x for x in table.splitlines() if "| dpir/blur/identity/accelerated |" in x)
    orig = by[("deepinv", "dpir/blur/identity/original")]["median_ms"]
    acc = by[("deepinv", "dpir/blur/identity/accelerated")]["median_ms"]
    assert f"| {orig / acc:.2f}x |" in line


def test_bench_functional_quick_runs_end_to_end(report, tmp_path):
    args = ("--quick", "--device", "cpu", "--threads", "1")
    done, rows = _run_bench("bench_functional.py", *args, out=tmp_path / "functional.jsonl")
    by = {r["provider"]: r for r in rows}
    problems = ("dpir-deblur", "dpir-sr", "dpir-deblur-loop", "dpir-sr-loop", "gspnp-prox")
    problems += ("proxpnp-grad", "proxpnp-grad-sr", "sampler")
    for problem in problems:
        for variant in ("original", "accelerated"):
            r = by[f"{problem}/{variant}"]
            assert r["op"] == "functional" and r["correct"] is True and r["median_ms"] > 0
            assert r["shape"] == ("2x3x16x16" if problem == "sampler" else "2x3x32x32")
        assert f"{problem}/accelerated vs {problem}/original: " in done.stdout
    assert {"gspnp-prox/original-batched", "sampler/original-batched", "sampler/network"} <= set(by)
    assert "without the network" in done.stdout
    # rfft2 (image in, half spectrum out), the spectral pass (two half spectra and |K^|^2's half
    # plane in, alpha per image, one out), irfft2: N = 2*3*32*32 reals, 17 of 32 columns
    e, image, half = 4, 2 * 3 * 32 * 32 * 4, 2 * 2 * 3 * 32 * 17 * 4
    prox = 2 * image + 5 * half + 32 * 17 * e + 2 * e
    assert by["dpir-deblur/original"]["bytes"] == by["dpir-deblur/accelerated"]["bytes"] == prox
    assert by["proxpnp-grad/accelerated"]["bytes"] == prox + 2 * e  # s and t per image
    assert by["sampler/accelerated"]["bytes"] is None
    table = report.render(report.load_rows(tmp_path))
    line = next(x for x in table.splitlines() if "| dpir-sr/accelerated |" in x)
    orig, acc = by["dpir-sr/original"]["median_ms"], by["dpir-sr/accelerated"]["median_ms"]
    assert f"| {orig / acc:.2f}x |" in line


def test_bench_pnp_update_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "pnp_update.jsonl"
    cmd = [sys.executable, str(BENCH / "bench_pnp_update.py"), "--quick", "--device", "cpu"]
    cmd += ["--shapes", "2x3x32x32", "--threads", "1", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_provider = {r["provider"]: r for r in rows}
    assert set(by_provider) == {"torch-unfused", "reference"}  # no compile with --quick
    for r in rows:
        assert r["op"] == "pnp_update" and r["shape"] == "2x3x32x32" and r["correct"] is True
        assert r["bytes"] == 5 * 2 * 3 * 32 * 32 * 4 + 7 * 2 * 4  # 4 reads + 1 write, coef, sums
        assert r["median_ms"] > 0
    assert "skip triton" in done.stderr and "skip cuda" in done.stderr


def test_bench_spectral_norm_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "spectral_norm.jsonl"
    cmd = [sys.executable, str(BENCH / "bench_spectral_norm.py"), "--quick", "--device", "cpu"]
    cmd += ["--threads", "1", "--iters", "8", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    batch = {r["provider"]: r for r in rows if r["op"] == "spectral_norm"}
    step = {r["provider"]: r for r in rows if r["op"] == "power_step"}
    assert set(batch) == {"batched", "per-image loop"}
    assert set(step) == {"torch-unfused", "reference"}  # no compile with --quick
    for r in rows:
        assert r["correct"] is True and r["median_ms"] > 0
    for r in batch.values():
        assert r["shape"] == "3x1x24x24" and r["bytes"] is None and "images/s" in r["note"]
    for r in step.values():
        assert r["shape"] == "4x3x32x32" and r["bytes"] == (3 * 4 * 3 * 32 * 32 + 8 * 4) * 4
    assert "batched vs per-image loop" in done.stdout


def test_bench_constrained_step_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "constrained_step.jsonl"
    cmd = [sys.executable, str(BENCH / "bench_constrained_step.py"), "--quick", "--device", "cpu"]
    cmd += ["--shapes", "2x3x32x32", "--threads", "1", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["op"], r["provider"]) for r in rows} == {
        (f"constrained_step/{form}", provider)
        for form in ("mask", "block4", "projected", "free")
        for provider in ("torch-unfused", "reference")  # no compile with --quick
    }
    N, e = 2 * 3 * 32 * 32, 4
    passes = {"mask": 6, "block4": 6, "projected": 7, "free": 5}
    for r in rows:
        form = r["op"].split("/")[1]
        mask = 2 * 32 * 32 * e if form == "mask" else 0
        assert r["bytes"] == passes[form] * N * e + mask + 3 * 2 * e
        assert r["shape"] == "2x3x32x32" and r["correct"] is True and r["median_ms"] > 0
    assert "skip triton" in done.stderr and "skip cuda" in done.stderr


# --- bench_denoisers.py ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench_denoisers():
    return _load("bench_denoisers")


@pytest.fixture
def one_thread(bench_denoisers):
    """Tiny networks on one thread: on a busy machine thread barriers cost more than the work."""
    torch = bench_denoisers.torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_conv_flops_and_parameters(bench_denoisers):
    torch = bench_denoisers.torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.up = torch.nn.ConvTranspose2d(8, 4, 2, 2)

        def forward(self, x, sigma):
            return self.up(self.conv(x))

    flops = bench_denoisers.conv_flops(Net(), torch.rand(2, 3, 16, 16), 0.1)
    conv = 2 * 3 * 9 * 8 * (2 * 16 * 16)  # 2 Cin k*k Cout B Hout Wout
    up = 2 * 8 * 4 * 4 * (2 * 16 * 16)  # 2 Cin Cout k*k B Hin Win
    assert flops == conv + up
    with torch.device("meta"):
        dpir = bench_denoisers.build(bench_denoisers.arch_config("drunet-dpir", 3))
    assert round(sum(p.numel() for p in dpir.parameters()) / 1e6, 1) == 32.6
    shipped = bench_denoisers.arch_config("conditional", 3)
    assert shipped["widths"] == [32, 64, 128] and shipped["noise_map"] and not shipped["bias"]
    assert bench_denoisers.arch_config("blind", 1)["noise_map"] is False


def test_parse_variant(bench_denoisers):
    v = bench_denoisers.parse_variant("bfloat16+channels_last+compile")
    assert (v.dtype, v.channels_last, v.compile) == (bench_denoisers.torch.bfloat16, True, True)
    assert v.layout == "channels_last+compile"
    assert v.name == "bfloat16+channels_last+compile"
    assert bench_denoisers.parse_variant("float32").layout == "eager"
    with pytest.raises(Exception, match="bad variant"):
        bench_denoisers.parse_variant("float64")
    with pytest.raises(Exception, match="bad variant"):
        bench_denoisers.parse_variant("float16+fast")


def _fake_data(root: Path, torch) -> tuple[Path, Path, Path]:
    """A data folder with tiny Set12 (2 gray) and CBSD68 (1 color) images and tiny BF-CNN files
    in the public layout, plus two pnpfast weight files (gray, color) of a tiny U-Net."""
    from pnpfast.denoisers import BFCNN, DRUNet
    from pnpfast.io import write_image
    from pnpfast.train import save_weights

    gen = torch.Generator().manual_seed(1)
    for set_name, channels, count in (("Set12", 1, 2), ("CBSD68", 3, 1)):
        folder = root / "images" / set_name
        folder.mkdir(parents=True)
        for i in range(count):
            write_image(folder / f"{i:02d}.png", torch.rand(1, channels, 16, 16, generator=gen))
    bf = root / "weights" / "kadkhodaie_bfcnn"
    bf.mkdir(parents=True)
    torch.save(BFCNN(1, 3, 4).state_dict(), bf / "bfcnn_gray_bsd400_sigma0-100.pt")
    torch.save(BFCNN(3, 3, 4).state_dict(), bf / "bfcnn_color_bsd300_sigma0-100.pt")
    gray = save_weights(DRUNet(1, (4, 8), 0), root / "ours-gray.pt")
    color = save_weights(DRUNet(3, (4, 8), 0), root / "ours-color.pt")
    return root, gray, color


def test_bench_denoisers_runs_end_to_end(bench_denoisers, report, one_thread, tmp_path, capsys):
    torch = bench_denoisers.torch
    data, gray, color = _fake_data(tmp_path / "data", torch)
    speed, quality = tmp_path / "results" / "speed.jsonl", tmp_path / "results" / "psnr.jsonl"
    common = ["--device", "cpu", "--data", str(data), "--out", str(speed)]
    common += ["--psnr-out", str(quality), "--sigmas", "25"]
    args = [*common, "--shapes", "1x1x16x16", "--archs", "conditional,bfcnn-20"]
    args += ["--variants", "float32,float32+channels_last", "--reps", "1", "--warmup", "0"]
    args += ["--models", "conditional,bfcnn,kair-dncnn-25"]
    args += ["--ours", f"conditional-gray={gray}", "--ours", f"conditional-color={color}"]
    assert bench_denoisers.main(args) == 0
    err = capsys.readouterr().err
    assert "skip kair-dncnn-25 on Set12" in err  # its file is not in the fake data

    rows = [json.loads(line) for line in speed.read_text().splitlines()]
    assert {r["provider"] for r in rows} == {
        "conditional/eager",
        "conditional/channels_last",
        "bfcnn-20/eager",
        "bfcnn-20/channels_last",
    }
    for r in rows:
        assert set(bench_denoisers.harness.COLUMNS) <= set(r)
        assert r["op"] == "denoiser_forward" and r["correct"] is True
        assert r["shape"] == "1x1x16x16" and r["dtype"] == "float32"
        assert r["median_ms"] > 0 and r["gflop"] > 0 and r["params"] > 0
    text = report.render(report.load_rows(speed.parent))  # the psnr rows have no "op"
    assert text.startswith("### denoiser_forward") and "bfcnn-20/eager" in text

    rows = [json.loads(line) for line in quality.read_text().splitlines()]
    assert [(r["model"], r["set"], r["sigma255"], r["images"]) for r in rows] == [
        ("conditional", "Set12", 25, 2),
        ("bfcnn", "Set12", 25, 2),
        ("conditional", "CBSD68", 25, 1),
        ("bfcnn", "CBSD68", 25, 1),
    ]
    assert rows[1]["weights"] == "weights/kadkhodaie_bfcnn/bfcnn_gray_bsd400_sigma0-100.pt"
    assert "op" not in rows[0]
    # the noise: one generator seeded 0 per (model, set, sigma), images in file order
    from pnpfast.io import read_image
    from pnpfast.metrics import psnr

    g = torch.Generator().manual_seed(0)
    noisy = []
    for path in sorted((data / "images" / "Set12").glob("*.png")):
        x = read_image(path)
        noisy.append(psnr(x + 25 / 255 * torch.randn(x.shape, generator=g), x).item())
    assert rows[0]["psnr_noisy"] == pytest.approx(sum(noisy) / 2, abs=1e-3)
    assert rows[1]["psnr_noisy"] == rows[0]["psnr_noisy"]
    assert all(math.isfinite(r["psnr"]) for r in rows)

    # measured again: the rows of the same (model, set, sigma) are replaced, the others kept
    again = [*common, "--part", "psnr", "--models", "bfcnn", "--sets", "Set12"]
    assert bench_denoisers.main(again) == 0
    rows2 = [json.loads(line) for line in quality.read_text().splitlines()]
    assert [(r["model"], r["set"]) for r in rows2] == [
        ("conditional", "Set12"),
        ("conditional", "CBSD68"),
        ("bfcnn", "CBSD68"),
        ("bfcnn", "Set12"),
    ]
    assert rows2[3]["psnr"] == rows[1]["psnr"]

    capsys.readouterr()
    assert (
        bench_denoisers.main(["--markdown", "--psnr-out", str(quality), "--out", str(speed)]) == 0
    )
    table = capsys.readouterr().out
    assert "| model | weights | Set12 σ=25 | CBSD68 σ=25 |" in table
    weights = "bfcnn_gray_bsd400_sigma0-100.pt, bfcnn_color_bsd300_sigma0-100.pt"
    assert f"| bfcnn | {weights} | {rows[1]['psnr']:.2f} |" in table
    assert "| architecture | params | variant |" in table

    with pytest.raises(SystemExit):  # partial rows only into an explicitly named file
        bench_denoisers.main(["--part", "psnr", "--data", str(data), "--max-images", "1"])


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_bench_denoisers_public_bfcnn_gray(bench_denoisers, one_thread, tmp_path):
    out = tmp_path / "psnr.jsonl"
    args = ["--part", "psnr", "--device", "cpu", "--models", "bfcnn", "--sets", "Set12"]
    args += ["--sigmas", "25", "--max-images", "1", "--psnr-out", str(out)]
    assert bench_denoisers.main(args) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["images"] == 1 and row["weights_sha256"] == "cb99c1acae801b4e"
    # Set12 01.png alone; over all 12 images this protocol gives MANIFEST's 30.26 dB
    assert row["psnr_noisy"] == pytest.approx(20.183, abs=0.01)
    assert row["psnr"] == pytest.approx(29.77, abs=0.02)


# --- bench_red.py ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench_red():
    return _load("bench_red")


def test_red_summaries(bench_red):
    assert bench_red.stays_at_most([0.5, 2e-3, 9e-4, 2e-3, 1e-4], 1e-3) == 5
    assert bench_red.stays_at_most([0.5, 9e-4, 8e-4, 1e-4], 1e-3) == 2
    assert bench_red.stays_at_most([0.5, 9e-4, float("nan")], 1e-3) is None
    assert bench_red.stays_at_most([0.5, 0.2], 1e-3) is None
    # the PSNR settles (stays within 0.1 dB of the last value) from iteration 4 on
    assert bench_red.settled_within([20.0, 25.0, 24.0, 25.22, 25.28, 25.2], 0.1) == 4
    assert bench_red.settled_within([25.0], 0.1) == 1
    assert bench_red.settled_within([], 0.1) is None
    assert bench_red.speedup_verdict(10, 30, 200, 2.5)[:2] == (3.0, True)
    assert bench_red.speedup_verdict(20, 30, 200, 2.5)[:2] == (1.5, False)
    assert bench_red.speedup_verdict(50, None, 200, 2.5)[:2] == (None, True)  # > 4x
    assert bench_red.speedup_verdict(100, None, 200, 2.5)[:2] == (None, None)  # > 2x only
    assert bench_red.speedup_verdict(None, 30, 200, 2.5)[:2] == (None, False)
    assert bench_red.speedup_verdict(None, None, 200, 2.5)[:2] == (None, None)
    rgb = bench_red.torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    luma = bench_red.ycbcr_luma(rgb).flatten().tolist()  # MATLAB rgb2ycbcr: Y in [16, 235]/255
    assert luma == pytest.approx([16 / 255, 235 / 255])


def test_red_jacobian_eigenvalue_of_a_known_operator(bench_red):
    torch = bench_red.torch
    g = torch.Generator().manual_seed(3)
    # f(x) = d * x + b (affine, diagonal Jacobian): the dominant eigenvalue is max |d| = 1.5,
    # whatever the point; a negative second one (-1.2) checks that the sign is kept
    d = torch.rand(1, 1, 7, 9, generator=g, dtype=torch.float64) * 0.8
    d[0, 0, 3, 4], d[0, 0, 1, 1] = 1.5, -1.2
    b = torch.randn(1, 1, 7, 9, generator=g, dtype=torch.float64)
    x = torch.randn(2, 1, 7, 9, generator=g, dtype=torch.float64)
    eig, gain = bench_red.jacobian_eigenvalue(lambda z: d * z + b, x, iters=80)
    assert eig == pytest.approx(1.5, rel=1e-6) and gain == pytest.approx(1.5, rel=1e-6)
    d[0, 0, 3, 4] = 0.5  # now -1.2 dominates
    eig, _ = bench_red.jacobian_eigenvalue(lambda z: d * z + b, x, iters=80)
    assert eig == pytest.approx(-1.2, rel=1e-6)


def test_red_data_prox_weights_are_the_prox_jacobian(bench_red):
    torch = bench_red.torch
    from pnpfast.fidelity import L2
    from pnpfast.operators import Blur

    g = torch.Generator().manual_seed(4)
    kernel = torch.rand(3, 5, generator=g, dtype=torch.float64)
    kernel /= kernel.sum()
    A = Blur(kernel)
    y = torch.randn(1, 1, 10, 12, generator=g, dtype=torch.float64)
    v, dv = torch.randn(2, 1, 1, 10, 12, generator=g, dtype=torch.float64)
    gamma = torch.tensor([1 / (bench_red.LAM * bench_red.SIGMA_N**2)], dtype=torch.float64)
    data = L2(A, y)
    # prox is affine in v: its change along dv is the Jacobian applied to dv
    jdv = data.prox(v + dv, gamma, backend="reference") - data.prox(v, gamma, backend="reference")
    w = bench_red.data_prox_weights(A, y.shape)
    got = torch.fft.irfft2(w * torch.fft.rfft2(dv), s=(10, 12))
    assert (got - jdv).abs().max() < 1e-10 and jdv.abs().max() > 1e-2


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set3C, RED kernels)")
def test_bench_red_quick_runs_end_to_end(bench_red, tmp_path, capsys):
    torch = bench_red.torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    conv, timing = tmp_path / "red_convergence.jsonl", tmp_path / "red_timing.jsonl"
    args = ["--quick", "--device", "cpu", "--convergence-out", str(conv), "--out", str(timing)]
    try:
        assert bench_red.main(args) == 0
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert "target red-apg >= 2.5x fewer iterations than red-fp:" in out
    assert "plot skipped: matplotlib" in out or conv.with_suffix(".png").is_file()

    rows = {r["method"]: r for r in map(json.loads, conv.read_text().splitlines())}
    assert list(rows) == list(bench_red.METHODS)
    for r in rows.values():
        assert r["shape"] == "1x1x48x48" and r["iters"] == 8 and r["git_sha"] and r["device"]
        assert r["denoiser"] == "bf-dncnn-0-10:bf_dncnn_gray_sigma0-10.pt"
        for key in ("psnr", "fpr", "rel_change", "seconds"):
            assert len(r[key]) == 8 and all(math.isfinite(v) for v in r[key])
        assert all(b > a for a, b in zip(r["seconds"][:-1], r["seconds"][1:], strict=True))
        assert r["final_psnr"] == r["psnr"][-1]
        assert r["jacobian_iters"] == 3
        assert all(math.isfinite(r[k]) for k in bench_red.RATE_KEYS)
        assert all(math.isfinite(r[f"{k}_at_fp_final"]) for k in bench_red.RATE_KEYS)
        assert "x_final" not in r
    assert "dominant eigenvalue of the denoiser's Jacobian" in out
    assert rows["red-fp"]["final_psnr"] > rows["red-fp"]["psnr_input"] + 3
    assert rows["red-sd"]["params"]["lam"] == pytest.approx(0.02 * 255**2)
    assert rows["red-gd"]["params"]["lam"] == pytest.approx(0.02 * 2)  # lam sigma_n^2 = 0.02 * 2
    # red-pg with L = 1 is red-fp: the same iterates
    assert rows["red-pg"]["psnr"] == pytest.approx(rows["red-fp"]["psnr"], abs=1e-3)
    assert rows["red-pg"]["fpr"] == pytest.approx(rows["red-fp"]["fpr"], rel=1e-3)

    rows = [json.loads(line) for line in timing.read_text().splitlines()]
    assert [r["provider"] for r in rows] == list(bench_red.METHODS)
    for r in rows:
        assert set(bench_red.harness.COLUMNS) <= set(r)
        assert r["op"] == "red_iteration" and r["shape"] == "1x3x32x32" and r["correct"] is True
        assert r["denoiser_calls_per_iter"] == 1 and r["median_ms"] > 0
        assert 0 <= r["frac_not_denoiser"] < 1 and r["target_met"] is None


@pytest.mark.shared
@pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set3C, CBSD68, kernels)"
)
def test_bench_convergent_runs_every_part(tmp_path):
    """Every part on a tiny random gradient-step network: the rows, the table and the plot."""
    from pnpfast.denoisers import DRUNet, GradientStep
    from pnpfast.denoisers.weight_file import save_weights

    torch.manual_seed(0)
    weights = tmp_path / "gs.pt"
    save_weights(GradientStep(DRUNet(3, (4, 8), 1, activation="softplus", residual=True)), weights)
    out, plot = tmp_path / "convergent.jsonl", tmp_path / "objective.png"
    cmd = [sys.executable, str(BENCH / "bench_convergent.py"), "--threads", "1"]
    cmd += ["--weights", f"gs={weights}", "--weights", f"prox={weights}", "--max-images", "1"]
    cmd += ["--crop", "32", "--max-iter", "3", "--power-iters", "3", "--lanczos-steps", "4"]
    cmd += ["--batch", "2"]
    cmd += ["--throughput-iters", "2", "--reps", "1", "--out", str(out), "--plot", str(plot)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    parts = {r["part"] for r in rows}
    assert parts == {"denoise", "lipschitz", "deblur", "throughput"}
    deblur = [r for r in rows if r["part"] == "deblur"]
    # Set3C and one CBSD68 image, 10 kernels, 3 levels, gs-pnp and the two prox methods
    assert len(deblur) == (3 + 1) * 10 * 3 * 3
    assert {r["kernel"] for r in deblur} >= {"levin1", "levin8", "uniform", "gaussian"}
    assert all(r["iterations"] <= 3 and r["psnr"] > 5 for r in deblur)
    lip = [r for r in rows if r["part"] == "lipschitz"]
    assert {(r["network"], r["sigma255"]) for r in lip} == {
        (k, s) for k in ("gs", "prox") for s in (15, 25, 50)
    }
    assert all(0 < r["mean"] <= r["max"] for r in lip)
    assert all(r["lanczos_steps"] == 4 and 0 < r["lanczos_mean"] <= r["lanczos_max"] for r in lip)
    assert all(r["under_1"] == (max(r["max"], r["lanczos_max"]) < 1) for r in lip)
    assert "| Set3C | gs-pnp | 2.55 |" in done.stdout
    if importlib.util.find_spec("matplotlib"):
        assert plot.is_file()


def _gpu_check(tmp_path, *args, env: dict | None = None):
    out = tmp_path / "device_out"  # what $OUT is on the device machine
    out.mkdir()
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu_check.sh"), "--no-build", *args, str(tmp_path / "work")],
        env={**(os.environ if env is None else env), "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = (tmp_path / "work" / "summary.tsv").read_text().splitlines()
    rows = {r.split("\t")[0]: r.split("\t")[1] for r in lines[1:]}
    return proc, rows, out


def test_gpu_check_lists_one_step_per_benchmark():
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu_check.sh"), "--list"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    steps = proc.stdout.split()
    for script in BENCH.glob("bench_*.py"):
        assert script.stem in steps
    assert {"build", "pytest-ops", "pytest-rest", "pytest-ops-reference", "report"} <= set(steps)
    assert steps[-2:] == ["quality_precision", "report"]


def test_gpu_check_only_runs_the_chosen_steps_and_packs_outputs(tmp_path):
    proc, rows, out = _gpu_check(tmp_path, "--only", "rep*", "--budget", "200")
    assert list(rows) == ["supported", "nvidia-smi", "versions", "backends", "report"], proc.stdout
    assert rows["supported"] == "0", proc.stdout  # this machine's versions are supported
    assert "pnpfast supports (pyproject.toml)" in proc.stdout
    assert rows["backends"] == "0" and rows["report"] == "0", proc.stdout
    assert proc.returncode == (0 if set(rows.values()) == {"0"} else 1), proc.stdout
    assert (out / "summary.tsv").read_text() == (tmp_path / "work" / "summary.tsv").read_text()
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = tar.getnames()
    assert "./report.md" in names and "./backends.txt" in names
    assert any(n.startswith("benchmarks/results/") and n.endswith(".jsonl") for n in names)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_check_runs_restore_and_precision_on_cuda_with_its_arguments(tmp_path):
    """bench_restore and quality_precision get --device cuda and gpu_check's default
    BENCH_ARGS_restore / BENCH_ARGS_precision (parsed, or argparse would name them), so here,
    without CUDA, each stops at the device check."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_ARGS_")}
    only = ("--only", "bench_restore,quality_precision", "--budget", "200")
    proc, rows, _ = _gpu_check(tmp_path, *only, env=env)
    assert rows["bench_restore"] == "2" and rows["quality_precision"] == "2", proc.stdout
    for log in ("bench_restore.txt", "quality_precision.txt"):
        text = (tmp_path / "work" / log).read_text()
        assert "--device cuda but no CUDA device is available" in text, text


def test_gpu_check_skips_steps_once_the_budget_is_spent(tmp_path):
    proc, rows, out = _gpu_check(tmp_path, "--only", "report", "--budget", "3")
    assert set(rows.values()) == {"skipped"}, proc.stdout
    assert proc.returncode == 1
    assert (out / "summary.tsv").is_file()


# --- bench_defaults.py -----------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set3C, Levin kernels)")
def test_bench_defaults_report_and_table(tmp_path, monkeypatch, capsys):
    bench = _load("bench_defaults")
    torch = bench.torch
    before = torch.get_num_threads()
    out = tmp_path / "defaults.jsonl"
    args = ["--part", "report", "--datasets", "Set3C", "--images", "1", "--kernels", "1,8"]
    args += ["--crop", "32", "--noise", "7.65", "--methods", "hqs", "--threads", "1"]
    try:
        assert bench.main([*args, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["image"], r["kernel"]) for r in rows] == [("butterfly", "k1"), ("butterfly", "k8")]
    for r in rows:
        assert list(r) == list(bench.COLUMNS)
        assert r["part"] == "report" and r["method"] == "hqs" and r["denoiser"] == "conditional"
        assert r["iterations"] == 8 and r["crop"] == 32 and r["git_sha"] and r["device"]
        assert r["psnr"] > r["psnr_input"] + 1 and not r["diverged"] and r["error"] is None
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{bench.START}\nold\n{bench.END}\nafter\n")
    monkeypatch.setattr(bench, "README", readme)
    assert bench.main(["--part", "table", "--out", str(out), "--update-readme"]) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "| hqs | conditional |" in text and "| pnp-reg | - |" in text
    assert "| hqs | conditional |" in capsys.readouterr().out


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set12)")
def test_bench_defaults_sr_report_and_table(tmp_path, monkeypatch, capsys):
    """--part sr-report on one 24x24 Set12 crop with hqs (DPIR's 24 iterations): one row per
    problem, the start is bicubic upsampling of the seeded, unrounded y, and --part sr-table
    writes its own README block."""
    bench = _load("bench_defaults")
    from pnpfast.operators import SuperResolution

    before = torch.get_num_threads()
    out = tmp_path / "defaults_sr.jsonl"
    args = ["--part", "sr-report", "--datasets", "Set12", "--images", "1", "--crop", "24"]
    args += ["--noise", "7.65", "--methods", "hqs", "--threads", "1"]
    try:
        assert bench.main([*args, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["kernel"], r["factor"]) for r in rows] == [
        ("bicubic", 2),
        ("gaussian 1.5", 3),
        ("bicubic", 4),
    ]
    x = bench._centre(SHARED_DATA / "images" / "Set12" / "01.png", 24)
    A = SuperResolution.bicubic(2)
    y = A(x)
    g = torch.Generator().manual_seed(0)
    y = y + 7.65 / 255 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    mse = (A.upsample(y).clamp(0, 1) - x).pow(2).mean()
    assert rows[0]["psnr_input"] == pytest.approx(-10 * math.log10(mse), abs=1e-3)
    for r in rows:
        assert list(r) == list(bench.SR_COLUMNS)
        assert r["part"] == "sr-report" and r["image"] == "01" and r["crop"] == 24
        assert r["iterations"] == 24 and r["denoiser"] == "conditional" and r["error"] is None
        assert r["gain_db"] == pytest.approx(r["psnr"] - r["psnr_input"], abs=2e-3)
        assert math.isfinite(r["psnr"]) and not r["diverged"]
    assert rows[0]["psnr"] > rows[0]["psnr_input"] + 1  # x2 (at x4 a 6x6 y is too little)
    readme = tmp_path / "README.md"
    readme.write_text(f"{bench.START}\nkeep\n{bench.END}\n{bench.SR_START}\nold\n{bench.SR_END}\n")
    monkeypatch.setattr(bench, "README", readme)
    assert bench.main(["--part", "sr-table", "--out", str(out), "--update-readme"]) == 0
    text = readme.read_text()
    assert "keep" in text and "old" not in text
    assert "| bicubic upsampling (the start) |" in text and "| hqs | conditional |" in text
    assert "bicubic x2 7.65" in capsys.readouterr().out


def test_bench_defaults_diverged_is_nonfinite_or_a_drift_from_the_best_iterate():
    """The report's definition: non-finite, or more than DRIFT_DB under the best iterate;
    ending under the start alone is below_input, not a divergence."""
    bench = _load("bench_defaults")
    final = torch.tensor([20.0, 20.0, float("nan"), 10.0])
    best = torch.tensor([24.0, 22.0, 22.0, 11.0])
    finite = torch.tensor([True, True, False, True])
    its, conv = torch.ones(4, dtype=torch.int64), torch.ones(4, dtype=torch.bool)
    at = {"psnr": {}, "rel_change": {}}
    got = [bench.outcome(b, [None] * 4, final, finite, best, its, conv, at, 15.0) for b in range(4)]
    assert [g["diverged"] for g in got] == [True, False, True, False]
    assert [g["below_input"] for g in got] == [False, False, False, True]
    err = bench.outcome(0, ["FloatingPointError: x"], final, finite, best, its, conv, at, 15.0)
    assert err["diverged"] and err["psnr"] is None


# --- bench_restore.py ------------------------------------------------------------------------


def test_bench_restore_model_shards_as_the_runner():
    """The ranks model's busiest rank holds what worklist.shard gives it, and a rank's time is
    its full batches plus the partial one."""
    from pnpfast.runner.worklist import WorkItem, shard

    bench = _load("bench_restore")
    for n in (1, 7, 16, 68):
        items = [
            WorkItem(Path(f"/in/{i:03d}.png"), Path(f"{i:03d}.png"), Path(f"/out/{i:03d}.png"))
            for i in range(n)
        ]
        for ranks in range(1, 9):
            most = max(len(shard(items, r, ranks)) for r in range(ranks))
            assert bench.shard_max(n, ranks) == most, (n, ranks)
    seconds = {8: 5.0, 1: 2.0, 3: 3.0}
    assert bench.rank_seconds(17, 8, seconds.__getitem__) == 2 * 5.0 + 2.0
    assert bench.rank_seconds(3, 8, seconds.__getitem__) == 3.0


def test_bench_restore_pipeline_model_follows_the_runner():
    """The pipelined GPU model: the writer threads the runner starts on a GPU host, and
    pipeline_seconds on cases worked out by hand (read-, compute- and write-bound, with the
    first window's read and the last batch's writes not hidden)."""
    from pnpfast.runner import run

    bench = _load("bench_restore")
    cores = os.cpu_count() or 1
    assert bench.writer_threads(cores) == run._io_threads(torch.device("cuda"))
    assert [bench.writer_threads(c) for c in (1, 2, 9, 16, 64)] == [1, 1, 4, 7, 8]

    def sim(images, batch, compute, read, write, writers):
        return bench.pipeline_seconds(images, batch, compute, read, write, writers)

    free = lambda b: 0.0  # noqa: E731
    # read-bound: 64 images 8 at a time, then the last 8 read while the first window is solved
    assert sim(72, 8, free, 1.0, 0.0, 8) == 8.0 + 1.0
    # one window of 16 (2 s on 8 decoders), two solves of 10, the last batch's 3 s of writes
    assert sim(16, 8, lambda b: 10.0, 1.0, 3.0, 8) == 2 + 2 * 10 + 3
    # 8 images on 3 writers: ceil(8 / 3) rounds of 1 s
    assert sim(8, 8, free, 0.0, 1.0, 3) == 3.0
    # writes longer than a solve: each solve waits for the previous batch's outputs
    assert sim(24, 8, lambda b: 1.0, 0.0, 5.0, 8) == 1 + 5 + 5 + 5
    # a partial batch at the window's end: 70 images of batch 32 are 32 + 32 + 6 (window 64)
    solved = []
    sim(70, 32, lambda b: solved.append(b) or 0.0, 0.0, 0.0, 8)
    assert solved == [32, 32, 6]
    assert bench.pipeline_steady(8, 2.0, 1.0, 3.0, 8) == 3.0
    assert bench.pipeline_steady(8, 2.0, 1.0, 3.0, 4) == 6.0
    assert bench.pipeline_steady(32, 2.0, 0.01, 3.0, 8) == 12.0


def test_bench_restore_pads_kernels_about_their_centre():
    """A Levin kernel zero-padded to 27x27 blurs as the kernel itself (circular convolution)."""
    import numpy as np

    from pnpfast.operators import Blur

    bench = _load("bench_restore")
    g = torch.Generator().manual_seed(0)
    k = torch.rand(5, 3, generator=g, dtype=torch.float64)
    padded = bench.pad_kernel(k.numpy(), 9)
    assert padded.shape == (9, 9) and np.count_nonzero(padded) == 15
    x = torch.rand(1, 3, 20, 24, generator=g, dtype=torch.float64)
    torch.testing.assert_close(Blur(torch.from_numpy(padded))(x), Blur(k)(x))
    with pytest.raises(ValueError, match="cannot be centred"):
        bench.pad_kernel(np.ones((4, 3)), 9)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_bench_restore_refuses_cuda_without_a_gpu(capsys):
    bench = _load("bench_restore")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--device", "cuda", "--quick", "--parts", "model"])
    assert exc.value.code == 2
    assert "--device cuda but no CUDA device is available" in capsys.readouterr().err


def test_bench_restore_torchrun_ranks_need_a_gpu_each():
    bench = _load("bench_restore")
    assert bench.rank_counts("cpu", 0) == ((1, 2), "")
    assert bench.rank_counts("cuda", 8) == ((1, 2), "")
    counts, why = bench.rank_counts("cuda", 1)
    assert counts == (1,) and why == "2 ranks need 2 GPUs (one per rank), this machine has 1"


def _bench_restore_variants(tmp_path, device: str, variants: str) -> dict:
    """Rows of a --parts measure run of bench_restore on two 32x32 images, by provider."""
    args = ("--quick", "--images", "2", "--parts", "measure", "--device", device)
    _, rows = _run_bench(
        "bench_restore.py", *args, "--variants", variants, out=tmp_path / "restore.jsonl"
    )
    return {r["provider"]: r for r in rows}


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (CBSD68, Levin kernels)")
def test_bench_restore_gpu_variants_run_on_the_cpu_too(tmp_path):
    """The variants measured by default on CUDA (batch auto; bf16 with channels_last) reach the
    runner's settings: the chosen auto batch is reported, bf16 changes the PSNR a little."""
    by = _bench_restore_variants(
        tmp_path, "cpu", "solve-loop,restore/batchauto,restore/batch8/bf16+channels_last"
    )
    loop, auto = by["solve-loop"], by["restore/batchauto"]
    bf16 = by["restore/batch8/bf16+channels_last"]
    assert loop["psnr_vs_fp32_db"] == 0 and loop["precision"] == "fp32" and loop["batch"] is None
    assert auto["batch"] == "auto" and list(auto["auto_batch"]) == ["3x32x32"]
    assert 1 <= auto["auto_batch"]["3x32x32"] <= 64
    assert auto["correct"] is True and abs(auto["psnr_vs_fp32_db"]) < 0.05
    assert (bf16["batch"], bf16["precision"], bf16["channels_last"]) == (8, "bf16", True)
    assert bf16["psnr_fp32"] == loop["psnr"] and bf16["correct"] is True
    # bfloat16 rounding moves the outputs, by far less than the 0.1 dB allowed
    assert 0 < abs(bf16["psnr_vs_fp32_db"]) < 0.1 and bf16["fp32_reruns"] == 0
    assert all(r["peak_cuda_bytes"] is None and "cores" in r["device"] for r in by.values())


@pytest.mark.cuda
@pytest.mark.shared
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (CBSD68, Levin kernels)")
def test_bench_restore_runs_on_a_gpu(tmp_path):
    by = _bench_restore_variants(
        tmp_path, "cuda", "solve-loop,restore/batch8,restore/batch8/bf16+channels_last"
    )
    name = torch.cuda.get_device_name()
    for r in by.values():
        assert r["device"] == name and r["peak_cuda_bytes"] > 0 and r["correct"] is True
        assert r["psnr"] > r["psnr_input"] + 1


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (CBSD68, Levin kernels)")
def test_bench_restore_quick_runs_every_part(tmp_path):
    """Two 32x32 images: restore, the solve loop and deepinv's DPIR loop restore them to the
    same PSNR (each output file read back), torchrun with 1 and 2 ranks too, and the model."""
    args = ("--quick", "--images", "2", "--variants", "restore/batch8,solve-loop,deepinv-dpir-loop")
    done, rows = _run_bench("bench_restore.py", *args, out=tmp_path / "restore.jsonl")
    by = {(r["op"], r["provider"]): r for r in rows}
    loop = by[("restore", "solve-loop")]
    assert loop["psnr"] > loop["psnr_input"] + 1  # the restoration does restore
    providers = ["restore/batch8", "solve-loop", "torchrun/ranks1", "torchrun/ranks2"]
    if "deepinv-dpir-loop left out" not in done.stderr and "skip deepinv" not in done.stderr:
        providers.append("deepinv-dpir-loop")
    for name in providers:
        r = by[("restore", name)]
        assert r["shape"] == "2x3x32x32" and r["images"] == 2 and r["modelled"] is False
        assert r["images_per_s"] > 0 and r["peak_rss_bytes"] > 0
        assert abs(r["psnr"] - loop["psnr"]) < 0.05, name
    assert by[("restore", "restore/batch8")]["correct"] is True
    if "deepinv-dpir-loop" in providers:  # deepinv's DPIR schedule is pnpfast's HQS default
        assert by[("restore", "deepinv-dpir-loop")]["schedule_max_rel_diff"] < 1e-5
    assert by[("restore", "restore/batch8")]["threads"] == 1
    modelled = [r for r in rows if r["op"] == "restore/modelled"]
    assert modelled and all(r["modelled"] and "modelled" in r["device"] for r in modelled)
    modelled_by = {r["provider"]: r for r in modelled}
    for r in range(1, 9):
        for suffix, mode in (("", "pipelined"), ("/before", "before"), ("/no-io", "no-io")):
            assert modelled_by[f"restore/batch8/ranks{r}{suffix}"]["pipeline"] == mode
    for b in (8, 32):  # overlapping the I/O is never slower than doing it in line
        piped, before = modelled_by[f"restore/batch{b}"], modelled_by[f"restore/batch{b}/before"]
        # the runner's writers on the modelled 16-core host: (16 - 1) // 2
        assert piped["writers"] == 7 and piped["median_ms"] <= before["median_ms"]
    assert "rows appended" in done.stdout

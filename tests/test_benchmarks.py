"""Fast CPU tests of the benchmark harness, the report and the fft_prox benchmark script."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_pnpfast_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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

"""gpu_check.sh's first step (benchmarks/gpu_versions.py): the supported ranges come from the
repository's own files, and a version outside them is refused."""

import sys
from pathlib import Path

import pytest
from pnpfast_test_utils import load_benchmark

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gv():
    return load_benchmark("gpu_versions")


def test_ranges_are_read_from_pyproject(gv):
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sup = gv.read_supported()
    torch_dep = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert sup.ranges["torch"] == torch_dep.removeprefix("torch")
    assert sup.ranges["python"] == project["requires-python"]
    assert "triton" in sup.ranges
    assert sup.tested_cpu["torch"] in (ROOT / "constraints.txt").read_text()
    assert sup.ccs == (80, 90)


def test_ranges_without_tomllib(gv, monkeypatch):
    with_toml = gv.read_supported().ranges
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10: no tomllib
    assert gv.read_supported().ranges == with_toml


def _sup(gv):
    return gv.Supported(
        ranges={"python": ">=3.10", "torch": ">=2.4", "triton": ">=3.0"},
        tested_cpu={"torch": "2.13.0", "triton": "3.6.0"},
        tested_extension={"torch": "2.14.1", "triton": "3.8.0"},
        ccs=(80, 90),
    )


def _inst(gv, **over):
    base = {
        "python": "3.12.3",
        "torch": "2.13.0+cu128",
        "torch_cuda": "12.8",
        "triton": "3.6.0",
        "nvcc": "12.8",
        "gpu": "NVIDIA H200",
        "capability": (9, 0),
    }
    base.update(over)
    return gv.Installed(**base)


def test_supported_versions_pass_quietly(gv):
    lines, status = gv.verdict(_inst(gv), _sup(gv))
    assert status == 0
    assert not [line for line in lines if not line.startswith("ok:")], lines


@pytest.mark.parametrize(
    "over,name",
    [
        ({"torch": "2.3.1+cu121"}, "torch 2.3.1+cu121 is outside the supported range >=2.4"),
        ({"python": "3.9.18"}, "python 3.9.18 is outside the supported range >=3.10"),
        ({"triton": "2.3.0"}, "triton 2.3.0 is outside the supported range >=3.0"),
        ({"torch": None}, "torch is not installed"),
    ],
)
def test_outside_the_range_is_refused(gv, over, name):
    lines, status = gv.verdict(_inst(gv, **over), _sup(gv))
    assert status == 2
    assert any(line.startswith("REFUSED") and name in line for line in lines), lines


def test_a_pre_release_counts_as_its_release(gv):
    _, status = gv.verdict(_inst(gv, torch="2.11.0a0+git1234"), _sup(gv))
    assert status == 0


@pytest.mark.parametrize(
    "over,arch_list,warning",
    [
        ({"torch": "2.11.0+cu128"}, "9.0", "torch 2.11.0+cu128 is not a version CI tests"),
        ({"triton": None}, "9.0", "triton is not installed"),
        ({"nvcc": "13.0"}, "9.0", "nvcc 13.0 and torch's CUDA 12.8 differ"),
        ({"capability": (8, 0)}, "9.0", "TORCH_CUDA_ARCH_LIST '9.0' has no 8.0"),
        ({"capability": (12, 0)}, "9.0;12.0", "sm_120 is not an architecture CI compiles"),
        ({"capability": None, "gpu": None}, "9.0", "no CUDA device"),
        ({"torch_cuda": None}, "9.0", "torch is a CPU build"),
    ],
)
def test_what_ci_does_not_test_is_a_warning(gv, over, arch_list, warning):
    lines, status = gv.verdict(_inst(gv, **over), _sup(gv), arch_list)
    assert status == 0
    assert any(line.startswith("WARNING") and warning in line for line in lines), lines


def _run_gpu_check(tmp_path, *args):
    """gpu_check.sh with a python3 whose gpu_versions.py refuses (exit 2), the rest real."""
    import os
    import subprocess

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text(
        "#!/bin/sh\n"
        'case "$1" in *gpu_versions.py) echo "REFUSED: torch 1.0 is outside"; exit 2 ;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    (fake / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    env.pop("OUT", None)
    work = tmp_path / "work"
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--no-build", *args, str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = (work / "summary.tsv").read_text().splitlines()
    return proc, [r.split("\t")[:2] for r in lines[1:]]


def test_gpu_check_stops_when_versions_are_refused(tmp_path):
    proc, rows = _run_gpu_check(tmp_path, "--only", "nothing")
    assert proc.returncode == 2, proc.stdout
    assert rows == [["supported", "2"]]
    assert "REFUSED: torch 1.0" in proc.stdout and "gpu_check: refused" in proc.stdout


def test_gpu_check_ignore_versions_goes_on(tmp_path):
    proc, rows = _run_gpu_check(tmp_path, "--only", "nothing", "--ignore-versions")
    assert [r[0] for r in rows] == ["supported", "nvidia-smi", "versions", "backends"]
    assert proc.returncode == 1  # the refused step counts as a failure

"""The per-kernel resource report of .ci/check_cuda.sh (.ci/cuda_resources.py), fed ptxas logs."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cuda_resources", ROOT / ".ci" / "cuda_resources.py")
cr = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cr
_spec.loader.exec_module(cr)

# ptxas -v of CUDA 13.0 (sm_80): a kernel that spills, one without a properties line, and a
# device function whose properties must not be taken for the entry's
LOG_80 = """\
ptxas info    : 0 bytes gmem
ptxas info    : Function properties for _Z6helperv
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Compiling entry function '_ZN7pnpfast6kernelIfLi4EEEvPKT_l' for 'sm_80'
ptxas info    : Function properties for _ZN7pnpfast6kernelIfLi4EEEvPKT_l
    16 bytes stack frame, 24 bytes spill stores, 20 bytes spill loads
ptxas info    : Used 32 registers, used 1 barriers, 16 bytes cumulative stack size, 32 bytes smem, 440 bytes cmem[0]
ptxas info    : Compiling entry function '_ZN7pnpfast6kernelIdLi2EEEvPKT_l' for 'sm_80'
ptxas info    : Used 40 registers, used 0 barriers, 424 bytes cmem[0]
"""
# sm_90 omits cmem[0]
LOG_90 = """\
ptxas info    : Compiling entry function '_ZN7pnpfast6kernelIfLi4EEEvPKT_l' for 'sm_90'
ptxas info    : Function properties for _ZN7pnpfast6kernelIfLi4EEEvPKT_l
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 29 registers, used 1 barriers, 32 bytes smem
"""


def test_rows_from_ptxas_logs():
    logs = [("csrc/k.cu", "sm_80", LOG_80), ("csrc/k.cu", "sm_90", LOG_90)]
    rows = cr.build_rows(logs, "13.0.88", "abc1234")
    assert [tuple(r) for r in rows] == [cr.COLUMNS] * 3
    by = {(r["kernel"], r["arch"]): r for r in rows}
    assert set(by) == {
        ("kernel<double, 2>", "sm_80"),
        ("kernel<float, 4>", "sm_80"),
        ("kernel<float, 4>", "sm_90"),
    }
    spill = by["kernel<float, 4>", "sm_80"]
    assert (spill["registers"], spill["spill_stores"], spill["spill_loads"]) == (32, 24, 20)
    assert (spill["stack"], spill["shared_static"], spill["cmem"], spill["barriers"]) == (
        16,
        32,
        440,
        1,
    )
    clean = by["kernel<double, 2>", "sm_80"]
    assert (clean["registers"], clean["spill_stores"], clean["stack"], clean["shared_static"]) == (
        40,
        0,
        0,
        0,
    )
    assert by["kernel<float, 4>", "sm_90"]["cmem"] is None
    assert by["kernel<float, 4>", "sm_90"]["cc"] == 90
    assert cr.problems(rows) == [
        "csrc/k.cu sm_80 kernel<float, 4>: 24 bytes spill stores, 20 bytes spill loads, "
        "16 bytes stack frame"
    ]


def test_main_writes_the_table_and_fails_on_spills(tmp_path, capsys):
    log80, log90 = tmp_path / "a.log", tmp_path / "b.log"
    log80.write_text(LOG_80)
    log90.write_text(LOG_90)
    out = tmp_path / "res" / "cuda_resources.jsonl"
    assert cr.main([str(out), f"csrc/k.cu:sm_80:{log80}", f"csrc/k.cu:sm_90:{log90}"]) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and "spills or local memory" in capsys.readouterr().err
    # without the spilling kernel: exit 0
    log80.write_text(LOG_80.replace("24 bytes spill stores, 20", "0 bytes spill stores, 0"))
    log80.write_text(log80.read_text().replace("16 bytes stack frame", "0 bytes stack frame"))
    assert cr.main([str(out), f"csrc/k.cu:sm_80:{log80}"]) == 0


def test_a_log_without_kernels_or_with_a_kernel_twice_is_an_error():
    with pytest.raises(ValueError, match="reported no kernel"):
        cr.build_rows([("csrc/k.cu", "sm_80", "ptxas info    : 0 bytes gmem\n")], "x", "y")
    twice = LOG_90 + LOG_90
    with pytest.raises(ValueError, match="reported twice"):
        cr.build_rows([("csrc/k.cu", "sm_90", twice)], "x", "y")


def test_short_names():
    assert cr.short_name(
        "void pnpfast::(anonymous namespace)::k<float, 4>(float const*, long)"
    ) == ("k<float, 4>")
    assert (
        cr.short_name("void pnpfast::detail::s<double, pnpfast::detail::L<1, 2>>(double const*)")
        == "s<double, L<1, 2>>"
    )

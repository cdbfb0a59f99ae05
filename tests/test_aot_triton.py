"""The ahead-of-time Triton check (.ci/aot_triton.py) can fail: a spilling kernel is reported
as spilling, one that does not compile as such, a kernel that no case launches as missing; and
the recorder sees the types, constexprs and 16-byte divisibility that Triton's binder gives a
real launch of fft_prox.

Compiling needs no GPU (Triton's own ptxas runs on the CPU) but needs real JITFunctions: under
TRITON_INTERPRET=1 (conftest.py) triton.jit and Triton's own library functions (tl.sum) are
interpreted. So one subprocess without the interpreter records and compiles everything the
tests look at (about 10 s), and the tests read its JSON.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")
import triton.language as tl  # noqa: TID251
from triton.runtime.jit import JITFunction  # noqa: TID251

pytestmark = pytest.mark.triton

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("aot_triton", ROOT / ".ci" / "aot_triton.py")
aot = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("aot_triton", aot)  # dataclasses look their module up there
_spec.loader.exec_module(aot)

_TOYS = """
import triton
import triton.language as tl


@triton.jit
def wide_sum(x_ptr, out_ptr, N: tl.constexpr):
    # every element stays live across the reduction: N / 32 float64 per thread of one warp
    offs = tl.arange(0, N)
    x = tl.load(x_ptr + offs)
    tl.store(out_ptr + offs, x * tl.sum(x, axis=0))
"""

_SCRIPT = """
import json, sys
sys.path[:0] = [".ci", sys.argv[1]]
import torch
import aot_triton as aot
import pnpfast.ops as ops

out = {}

# 1. toy kernels: 4096 float64 in one warp (128 per thread: 256 registers of values, more than
# the 255 a thread has), 64 in one warp (2 per thread), and a block of 48 (not a power of 2)
def toy(n):
    return aot.Spec("aot_toys", "wide_sum",
                    (("x_ptr", "*fp64"), ("out_ptr", "*fp64"), ("N", "constexpr")),
                    ((2, n),), (0, 1), (("num_warps", 1), ("num_ctas", 1), ("num_stages", 3)))
for name, n, cc in (("big", 4096, 80), ("small", 64, 90), ("bad", 48, 80)):
    res = aot.compile_spec(toy(n), cc)
    out[name] = {"res": res, "problems": aot.resource_problems(toy(n), cc, res)}

# 2. fft_prox through the public op
def spectra(B, C, H, Wr, dtype, Bk, offset=0):
    v = torch.randn(B * C * H * Wr + offset, dtype=dtype)[offset:].view(B, C, H, Wr)
    kty = torch.randn(B, C, H, Wr, dtype=dtype)
    real = torch.float32 if dtype == torch.complex64 else torch.float64
    return v, kty, torch.rand(Bk, 1, H, Wr, dtype=real), torch.rand(B, dtype=real)

cases = [
    aot.Case("fft_prox", "a", lambda: ops.fft_prox(
        *spectra(2, 3, 4, 4, torch.complex64, 2), backend="triton"), {"_fft_prox_kernel": {}}),
    aot.Case("fft_prox", "b", lambda: ops.fft_prox(
        *spectra(1, 1, 3, 5, torch.complex64, 1, offset=1), backend="triton"),
        {"_fft_prox_kernel": {}}),
    aot.Case("fft_prox", "c", lambda: ops.fft_prox(
        *spectra(2, 2, 8, 8, torch.complex128, 1), backend="triton"), {"_fft_prox_kernel": {}}),
    aot.Case("fft_prox", "nothing", lambda: None, {}),
    aot.Case("fft_prox", "other kernel", lambda: ops.fft_prox(
        *spectra(1, 1, 2, 2, torch.complex64, 1), backend="triton"), {"_fft_grad_kernel": {}}),
]
launches, problems = aot.record(cases)
out["fft_prox"] = {"specs": [[l.case, l.spec.to_json()] for l in launches], "problems": problems}

# 3. the whole table, recorded only: its problems and what is missing from kernels/
launches, problems = aot.record(aot.launcher_cases())
kernels = aot.defined_kernels()
out["table"] = {
    "problems": problems,
    "missing": aot.missing_kernels(kernels, {l.spec.kernel for l in launches}),
    "defined": sorted(kernels),
    "launched": sorted({l.spec.kernel for l in launches}),
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict:
    toys = tmp_path_factory.mktemp("aot_toys")
    (toys / "aot_toys.py").write_text(_TOYS)
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(toys / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(toys)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_spilling_kernel_is_reported_and_a_small_one_passes(checked):
    big = checked["big"]
    assert big["res"]["spill_stores"] > 0 and big["res"]["spill_loads"] > 0, big
    assert any("spills" in p and "wide_sum" in p and "sm_80" in p for p in big["problems"]), big
    assert any("local memory" in p for p in big["problems"]), big
    small = checked["small"]
    res = small["res"]
    assert res["spill_stores"] == res["spill_loads"] == res["stack"] == res["local"] == 0, res
    assert res["arch"] == "sm_90a" and 0 < res["registers"] < 64, res
    assert small["problems"] == []


def test_a_kernel_that_does_not_compile_is_reported(checked):
    (problem,) = checked["bad"]["problems"]
    assert "does not compile" in problem and "wide_sum" in problem, problem


def _helper(x):
    return x + 1


def _launched(p):
    tl.store(p, _helper(tl.load(p)))


def _forgotten(p):
    tl.store(p, tl.load(p) * 2)


_helper = JITFunction(_helper)
_launched = JITFunction(_launched)
_forgotten = JITFunction(_forgotten)


def test_a_kernel_never_launched_is_missing_and_a_called_helper_is_not():
    kernels = {f"m:{f.fn.__name__}": f for f in (_helper, _launched, _forgotten)}
    assert aot.missing_kernels(kernels, ["m:_launched"]) == ["m:_forgotten"]
    assert aot.missing_kernels(kernels, []) == ["m:_forgotten", "m:_helper", "m:_launched"]
    assert aot.missing_kernels(kernels, ["m:_launched", "m:_forgotten"]) == []


# Expectations from Triton's rules (an int argument equal to 1 becomes a constexpr; a pointer
# at a multiple of 16 bytes and an int multiple of 16 get tt.divisibility 16) and
# fft_prox_triton's arguments (plane_len = 2 H Wr, k2_stride = H Wr per image or 0 shared, C,
# BLOCK = 2048, the default 4 warps).
def test_recorder_sees_what_a_launch_of_fft_prox_would_compile(checked):
    got = checked["fft_prox"]
    assert got["problems"][0] == "fft_prox: nothing: launched no Triton kernel"
    assert got["problems"][1].startswith(
        "fft_prox: other kernel: expected a launch of _fft_grad_kernel with {}"
    )
    assert len(got["problems"]) == 2
    specs = {case: spec for case, spec in got["specs"]}
    assert sorted(specs) == ["fft_prox: a", "fft_prox: b", "fft_prox: c", "fft_prox: other kernel"]
    pointers = ["v_ptr", "kty_ptr", "k2_ptr", "gamma_ptr", "out_ptr"]

    def signature(dtype, c_type):
        sig = dict.fromkeys(pointers, f"*{dtype}")
        return sig | {"C": c_type, "plane_len": "i32", "k2_stride": "i32", "BLOCK": "constexpr"}

    a, b, c = specs["fft_prox: a"], specs["fft_prox: b"], specs["fft_prox: c"]
    # a: C = 3, plane 2*4*4 = 32, per-image k2 stride 16: all but C divisible
    assert a["signature"] == signature("fp32", "i32")
    assert a["constexprs"] == {"BLOCK": 2048}
    assert sorted(a["divisible"]) == sorted([*pointers, "plane_len", "k2_stride"])
    # b: C = 1 (a constexpr), plane 30, shared k2 (stride 0), v one complex64 (8 bytes) in
    assert b["signature"] == signature("fp32", "constexpr")
    assert b["constexprs"] == {"C": 1, "BLOCK": 2048}
    assert sorted(b["divisible"]) == sorted(
        ["kty_ptr", "k2_ptr", "gamma_ptr", "out_ptr", "k2_stride"]
    )
    # c: float64, C = 2, plane 128, shared k2
    assert c["signature"] == signature("fp64", "i32")
    assert sorted(c["divisible"]) == sorted([*pointers, "plane_len", "k2_stride"])
    for spec in (a, b, c):
        assert spec["kernel"] == "pnpfast.kernels.fft_prox:_fft_prox_kernel"
        assert spec["options"]["num_warps"] == 4 and spec["variant"] == "launched"


def test_every_kernel_in_kernels_is_reached_by_the_table(checked):
    """The check's own table records without a problem, and every @triton.jit function of
    kernels/ is launched or called by a launched kernel (_add_noise, _normal_pair)."""
    table = checked["table"]
    assert table["problems"] == [] and table["missing"] == []
    launched = {name.split(":")[1] for name in table["launched"]}
    assert {"_step_flat_kernel", "_step_block_kernel", "_noise_kernel"} <= launched
    assert len(table["defined"]) > len(table["launched"])  # the device functions

"""The static performance model (benchmarks/perf_model.py): byte counts against the sizes of the
tensors the reference ops really take and return, the partial-sum slots against the launchers'
own counts, monotonicity in the shape, the PTX counter on a hand-written PTX text, and the
measured-vs-modelled printing on a fake GPU row."""

import math

import pytest
import torch
from pnpfast_test_utils import load_benchmark

from pnpfast.ops import (
    constrained_step_reference,
    fft_grad_reference,
    fft_prox_reference,
    pnp_update_reference,
    power_step_reference,
    sr_prox_reference,
)
from pnpfast.ops.power_step import initial_state


@pytest.fixture(scope="module")
def pm():
    return load_benchmark("perf_model")


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


DTYPES = {"float32": torch.float32, "float64": torch.float64}
SHAPES = [(1, 1, 5, 7), (2, 3, 17, 23), (3, 2, 64, 96)]


def _block(module: str, name: str = "BLOCK") -> int:
    import importlib

    return getattr(importlib.import_module(f"pnpfast.kernels.{module}"), name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("per_image_k2", [False, True], ids=["shared-k2", "per-image-k2"])
@pytest.mark.parametrize("op", ["fft_prox", "fft_grad"])
def test_spectral_bytes_are_the_tensors_in_and_out(pm, op, per_image_k2, shape, dtype):
    B, C, H, W = shape
    real = DTYPES[dtype]
    cplx = torch.complex64 if real == torch.float32 else torch.complex128
    v = torch.randn(B, C, H, W // 2 + 1, dtype=cplx)
    kty = torch.randn_like(v)
    k2 = torch.rand(B if per_image_k2 else 1, 1, H, W // 2 + 1, dtype=real)
    coeffs = [torch.rand(B, dtype=real) + 0.5 for _ in range(1 if op == "fft_prox" else 2)]
    ref = fft_prox_reference if op == "fft_prox" else fft_grad_reference
    out = ref(v, kty, k2, *coeffs)
    est = pm.estimate(op, shape, dtype, bk=k2.shape[0])
    # a pure streaming op: it reads each input once and writes its output once
    assert est.traffic.bytes == nbytes(v, kty, k2, *coeffs, out)
    assert est.traffic.io_bytes == est.traffic.bytes
    assert est.traffic.launches == 1
    # one kernel, memory-bound: bytes over the copy bandwidth plus one launch
    assert est.seconds == pytest.approx(est.traffic.bytes / 4.3e12 + 2e-6)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize(
    "has_x,has_xprev", [(True, True), (True, False), (False, True), (False, False)]
)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_pnp_update_bytes(pm, shape, has_x, has_xprev, backend, monkeypatch):
    f, z, x, xprev = (torch.randn(shape) for _ in range(4))
    x = x if has_x else None
    xprev = xprev if has_xprev else None
    coef = torch.randn(shape[0], 4)
    out, sums = pnp_update_reference(f, z, x, xprev, coef)
    est = pm.estimate("pnp_update", shape, backend=backend, has_x=has_x, has_xprev=has_xprev)
    assert est.traffic.io_bytes == nbytes(f, z, x, xprev, coef, out, sums)
    # the [B, slots, 3] partial sums are written by the kernel and read back by torch's sum
    slots = _slots(backend, shape, _block("pnp_update"), monkeypatch)
    assert est.traffic.bytes - est.traffic.io_bytes == 2 * shape[0] * slots * 3 * 4
    assert est.traffic.launches == 2


def _slots(backend, shape, block, monkeypatch) -> int:
    """Partial-sum slots per image as the launchers count them: Triton one per program of
    ``block`` elements; CUDA pnpfast.ops._alloc.cuda_partial_blocks on an H200's 132 SMs."""
    n = math.prod(shape[1:])
    if backend == "triton":
        return -(-n // block)
    import pnpfast.ops._alloc as alloc

    monkeypatch.setattr(alloc, "_sm_count", lambda index: 132)
    return alloc.cuda_partial_blocks(torch.device("cuda", 0), shape[0], n)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_power_step_bytes(pm, shape, backend, monkeypatch):
    w, u = torch.randn(shape), torch.randn(shape)
    state = initial_state(u)
    out, state_next = power_step_reference(w, u, state, 1e-3, True)
    est = pm.estimate("power_step", shape, backend=backend)
    assert est.traffic.io_bytes == nbytes(w, u, state, out, state_next)
    slots = _slots(backend, shape, _block("power_step"), monkeypatch)
    # the finish kernel reads state again and the [B, slots, 2] partials written by the pass
    extra = nbytes(state) + 2 * shape[0] * slots * 2 * 4
    assert est.traffic.bytes - est.traffic.io_bytes == extra
    assert est.traffic.launches == 2


FORMS = ["free", "mask", "projected", "block"]


@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 3, 16, 24), (3, 2, 64, 96)], ids=str)
def test_constrained_step_bytes(pm, shape, form, backend, monkeypatch):
    B, _, H, W = shape
    den, y, lifted, proj = (torch.rand(shape) for _ in range(4))
    h, c = torch.rand(B), torch.rand(B)
    kw = {}
    if form != "free":
        kw["lifted"] = lifted
    if form == "mask":
        kw["mask"] = (torch.rand(B, 1, H, W) > 0.5).float()
    elif form == "projected":
        kw["projected"] = proj
    elif form == "block":
        kw["factor"] = 4
    out, sigma = constrained_step_reference(den, y, h, c, 1, 0, **kw)
    est = pm.estimate("constrained_step", shape, backend=backend, form=form, factor=4)
    inputs = [den, y, h, c, kw.get("lifted"), kw.get("mask"), kw.get("projected")]
    assert est.traffic.io_bytes == nbytes(*inputs, out, sigma)
    if form == "block" and backend == "triton":
        from pnpfast.kernels.constrained_step import partial_blocks

        slots = partial_blocks(torch.Size(shape), 2, 4)
    else:
        slots = _slots(backend, shape, _block("constrained_step"), monkeypatch)
    # the noise pass reads and writes out again; the partials go out and come back; sigma's
    # sum, division and square root move a few numbers per image
    extra = est.traffic.bytes - est.traffic.io_bytes - 2 * nbytes(out) - 2 * B * slots * 4
    assert 0 <= extra <= 8 * B * 4
    assert est.traffic.launches == 5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_image_k", [False, True], ids=["shared-k", "per-image-k"])
@pytest.mark.parametrize("factor", [1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 1, 6, 12), (2, 3, 18, 12)], ids=str)
def test_sr_prox_bytes_are_the_tensors_in_and_out(pm, shape, factor, per_image_k, dtype):
    B, _, H, W = shape
    real = DTYPES[dtype]
    cplx = torch.complex64 if real == torch.float32 else torch.complex128
    bk = B if per_image_k else 1
    v, kty = torch.randn(shape, dtype=cplx), torch.randn(shape, dtype=cplx)
    k_hat = torch.randn(bk, 1, H, W, dtype=cplx)
    k2_mean = torch.rand(bk, 1, H // factor, W // factor, dtype=real)
    gamma = torch.rand(B, dtype=real) + 0.5
    out = sr_prox_reference(v, kty, k_hat, k2_mean, gamma, factor)
    est = pm.estimate("sr_prox", shape, dtype, factor=factor, bk=bk)
    # one streaming pass: K^ and mean_s |K^|^2 once per kernel plane (L2 serves the rest)
    assert est.traffic.bytes == nbytes(v, kty, k_hat, k2_mean, gamma, out)
    assert est.traffic.io_bytes == est.traffic.bytes
    assert est.traffic.launches == 1
    assert est.seconds == pytest.approx(est.traffic.bytes / 4.3e12 + 2e-6)


@pytest.mark.parametrize("per_image_k", [False, True], ids=["shared-k", "per-image-k"])
@pytest.mark.parametrize("factor", [2, 3])
def test_prox_l2_sr_bytes(pm, factor, per_image_k):
    import pnpfast
    from pnpfast.operators import SuperResolution

    B, C, H, W = 2, 3, 12, 18
    kernel = torch.rand(B, 3, 3) if per_image_k else torch.rand(3, 3)
    op = SuperResolution(kernel, factor)
    fidelity = pnpfast.L2(op, op(torch.rand(B, C, H, W)))
    v, gamma = torch.rand(B, C, H, W), torch.rand(B) + 0.5
    x = fidelity.prox(v, gamma, backend="reference")
    k_hat, k2_mean, _ = fidelity._sr
    est = pm.estimate("prox_l2_sr", (B, C, H, W), factor=factor, bk=k_hat.shape[0])
    # the cached terms L2 really holds, v in and x out
    assert est.traffic.io_bytes == nbytes(v, fidelity.sr_kty, k_hat, k2_mean, gamma, x)
    # complex intermediates written once and read once: fft2(v), and the pass's X^, of which
    # irfft2 reads the first W // 2 + 1 columns only
    spectrum = nbytes(fidelity.sr_kty)
    half = spectrum // W * (W // 2 + 1)
    assert est.traffic.bytes - est.traffic.io_bytes == 2 * spectrum + spectrum + half
    names = [name for name, _ in est.kernel_seconds()]
    assert names == ["fft2", "_sr_prox_kernel", "irfft2"]


def test_sr_prox_bad_arguments_are_named(pm):
    with pytest.raises(ValueError, match="multiples of the factor 3, got 8x9"):
        pm.estimate("sr_prox", (1, 1, 8, 9), factor=3)
    with pytest.raises(ValueError, match="factor must be an int >= 1, got 0"):
        pm.estimate("prox_l2_sr", (1, 1, 8, 8), factor=0)


CASES = [
    ("fft_prox", {}),
    ("fft_grad", {}),
    ("prox_l2_fft", {}),
    ("sr_prox", {"factor": 2}),
    ("prox_l2_sr", {"factor": 2}),
    ("pnp_update", {}),
    ("power_step", {}),
    *(("constrained_step", {"form": f}) for f in FORMS),
]


@pytest.mark.parametrize("model,options", CASES, ids=lambda c: str(c))
@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_monotonic_in_the_shape(pm, model, options, axis):
    base = [2, 3, 64, 96]
    bigger = list(base)
    bigger[axis] *= 2
    for backend in ("triton", "cuda"):
        small = pm.estimate(model, base, backend=backend, **options)
        large = pm.estimate(model, bigger, backend=backend, **options)
        assert large.traffic.bytes > small.traffic.bytes
        assert large.traffic.flops >= small.traffic.flops
        assert large.seconds > small.seconds


def test_bad_arguments_are_named(pm):
    with pytest.raises(ValueError, match="model must be one of"):
        pm.estimate("nope", (1, 1, 4, 4))
    with pytest.raises(ValueError, match="dtype must be"):
        pm.estimate("fft_prox", (1, 1, 4, 4), "float16")
    with pytest.raises(ValueError, match="shape must be"):
        pm.estimate("fft_prox", (1, 4, 4))
    with pytest.raises(ValueError, match="form must be"):
        pm.estimate("constrained_step", (1, 1, 4, 4), form="diagonal")


def test_bench_estimates_cover_every_benchmark_op(pm):
    ests = pm.bench_estimates()
    ops = {e.op for e in ests}
    assert {"fft_prox", "pnp_update", "power_step", "constrained_step/block4"} <= ops
    assert {"sr_prox/x2", "sr_prox/x3", "sr_prox/x4"} <= ops
    assert all(e.shape[0] >= 8 for e in ests)  # the benchmarks' default shapes, not --quick
    sr = [e for e in ests if e.op.startswith("sr_prox/")]
    # at s = 3 the shapes bench_sr_prox.py runs (256 -> 255)
    assert {e.shape for e in sr if e.op == "sr_prox/x3"} == {(8, 3, 255, 255), (32, 3, 510, 510)}


PTX = """
//
// Generated by hand
.version 8.7
.target sm_90a
.visible .entry k(
	.param .u64 k_param_0
)
{
	.reg .pred 	%p<3>;
	.local .align 4 .b8 	__local_depot0[28];
	mov.u32 	%r1, %tid.x;
	mul.lo.s32 	%r2, %r1, 4;
	mad.lo.s32 	%r3, %r2, 3, %r1;
	// begin inline asm
	@%p1 ld.global.v4.b32 { %r4, %r5, %r6, %r7 }, [ %rd1 + 0 ];
	// end inline asm
	@!%p2 ld.global.L1::evict_last.v2.b64 { %rd2, %rd3 }, [ %rd1 + 0 ];
	ld.global.b32 	%r8, [%rd4];
	ld.global.nc.v2.f32 	{%f1, %f2}, [%rd4];
	ld.global.u8 	%rs1, [%rd4];
	fma.rn.f32 	%f3, %f1, %f2, %f1;
	fma.rn.f64 	%fd1, %fd2, %fd3, %fd4;
	add.f32 	%f4, %f3, %f1;
	div.rn.f32 	%f5, %f4, %f3;
	add.s32 	%r9, %r8, 1;
	lg2.approx.f32 	%f6, %f5;
	sqrt.rn.f32 	%f7, %f6;
	st.local.u32 	[%rd5], %r9;
	ld.local.u32 	%r10, [%rd5];
	ld.shared.f32 	%f8, [%r1];
	stmatrix.sync.aligned.m8n8.x4.shared.b16 [%r1], {%r4, %r5, %r6, %r7};
	@%p1 st.global.v4.b32 [ %rd6 + 0 ], { %r4, %r5, %r6, %r7 };
	st.global.b32 	[%rd6], %r9;
$L__BB0_2:
	bar.sync 	0;
	ret;
}
"""


def test_ptx_counter_on_a_hand_written_ptx(pm):
    mix = pm.ptx_mix(PTX)
    assert mix["ld_global_128"] == 2  # v4.b32 and v2.b64, predicated either way
    assert mix["ld_global_64"] == 1  # v2.f32
    assert mix["ld_global_32"] == 1
    assert mix["ld_global_narrow"] == 1
    assert mix["st_global_128"] == 1
    assert mix["st_global_32"] == 1
    assert mix["ld_local"] == 1
    assert mix["st_local"] == 1
    assert mix["ld_shared"] == 1
    assert mix["st_shared"] == 1  # stmatrix
    assert mix["fma"] == 2
    assert mix["fp_other"] == 2  # add.f32, div.rn.f32 (add.s32 is integer)
    assert mix["sfu"] == 2
    assert mix["int_mul"] == 2
    # mov, mul, mad, 5 loads, 2 fma, add, div, add.s32, lg2, sqrt, 2 local, 2 shared,
    # 2 stores, bar, ret
    assert mix["instructions"] == 23


def _gpu_row(op="pnp_update", provider="triton", shape="8x3x256x256", median_ms=0.05, **over):
    row = {
        "op": op,
        "provider": provider,
        "shape": shape,
        "dtype": "float32",
        "median_ms": median_ms,
        "p20_ms": median_ms,
        "p80_ms": median_ms,
        "bytes": 1,
        "gbps": 3000.0,
        "frac_copy_bw": 0.75,
        "device": "NVIDIA H200",
        "torch": "2.11.0",
        "triton": "3.6.0",
        "cuda": "12.8",
        "git_sha": "abc",
        "timestamp": "2026-12-05T00:00:00+00:00",
        "correct": True,
        "note": "",
    }
    row.update(over)
    return row


def test_a_gpu_row_is_printed_against_the_model(pm, tmp_path, capsys):
    harness = load_benchmark("harness")
    rows = [
        _gpu_row(),
        _gpu_row(op="constrained_step/block4", provider="cuda", median_ms=0.03),
        _gpu_row(provider="torch-unfused"),  # no model: not printed
        _gpu_row(device="AMD EPYC (2 cores, 1 threads)"),  # a CPU row: not printed
    ]
    harness.append_rows(tmp_path / "r.jsonl", rows)
    text = capsys.readouterr().out
    assert "measured vs modelled" in text
    # pnp_update 8x3x256x256 float32, triton: 4 images read, 1 written, coef, partial sums
    n, B = 3 * 256 * 256, 8
    slots = -(-n // _block("pnp_update"))
    total = (5 * B * n + 4 * B + 2 * 3 * B * slots + 3 * B) * 4
    model_ms = 1e3 * (total / 4.3e12 + 2 * 2e-6)
    lines = [line for line in text.splitlines() if line.startswith("| pnp_update")]
    assert len(lines) == 1
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[1] == "triton"
    assert float(cells[3]) == pytest.approx(50.0)  # microseconds
    assert float(cells[4]) == pytest.approx(1e3 * model_ms, abs=0.051)
    assert float(cells[5]) == pytest.approx(0.05 / model_ms, abs=0.006)
    # the run's copy bandwidth is gbps / frac_copy_bw = 4000 GB/s
    assert float(cells[6]) == pytest.approx(4000)
    assert float(cells[7]) == pytest.approx(1e6 * (total / 4.0e12 + 4e-6), abs=0.051)
    assert sum(line.startswith("| constrained_step/block4") for line in text.splitlines()) == 1
    assert "torch-unfused" not in text and "AMD EPYC" not in text


def test_cpu_rows_print_nothing(pm, tmp_path, capsys):
    harness = load_benchmark("harness")
    harness.append_rows(tmp_path / "r.jsonl", [_gpu_row(device="Intel Xeon (8 cores, 8 threads)")])
    assert capsys.readouterr().out == ""


def test_report_adds_the_comparison(pm):
    report = load_benchmark("report")
    text = report.render([_gpu_row(), _gpu_row(device="AMD EPYC (2 cores, 1 threads)")])
    assert "### measured vs modelled" in text
    assert text.count("| pnp_update | triton |") == 1
    assert "measured vs modelled" not in report.render([_gpu_row(device="X (2 cores, 1 threads)")])


def test_model_rows_are_not_timing_rows(pm, tmp_path):
    # report.py reads every row with an "op" as a timing row: the model's rows have none
    report = load_benchmark("report")
    est = pm.estimate("pnp_update", (2, 3, 8, 8))
    row = pm.estimate_row(est, {"torch": "t", "triton": "t", "git_sha": "s", "timestamp": "x"})
    assert "op" not in row and row["bench_op"] == "pnp_update"
    pm._write_jsonl(tmp_path / "perf_model.jsonl", [row])
    assert report.load_rows(tmp_path) == []


def test_committed_model_rows_are_current(pm):
    import json

    rows = [json.loads(line) for line in pm.RESULTS.read_text().splitlines()]
    ests = pm.bench_estimates()
    hint = "stale: rerun python benchmarks/perf_model.py --ptx --write"
    assert len(rows) == len(ests), hint
    for row, est in zip(rows, ests, strict=True):
        key = (est.op, est.model, est.backend, "x".join(map(str, est.shape)))
        assert (row["bench_op"], row["model"], row["backend"], row["shape"]) == key, hint
        assert row["bytes"] == est.traffic.bytes, hint
        assert row["model_us"] == pytest.approx(1e6 * est.seconds), hint


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_times_add_up(pm, backend):
    est = pm.estimate("constrained_step", (2, 3, 64, 96), backend=backend, form="block")
    kernels = est.kernel_seconds()
    assert sum(t for _, t in kernels) == pytest.approx(est.seconds)
    names = [name for name, _ in kernels]
    first, last = ("_step_block_kernel", "_noise_kernel")
    if backend == "cuda":
        first, last = ("block_mean_step_kernel", "noise_kernel")
    assert names == [first, "torch sum", "torch div", "torch sqrt", last]

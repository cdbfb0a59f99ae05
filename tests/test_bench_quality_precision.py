"""Tests of benchmarks/quality_precision.py: its centre crop and table on hand values, and a
--quick smoke run on the shared test data (CBSD68, the Levin kernels)."""

import json

import pytest
import torch
from pnpfast_test_utils import SHARED_DATA, load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("quality_precision")


def test_centre_crop_takes_the_middle(bench):
    x = torch.arange(5 * 7, dtype=torch.float64).view(1, 1, 5, 7)
    got = bench.harness.centre_crop(x, 3)
    assert got.shape[-2:] == (3, 3)
    assert got[0, 0, 0].tolist() == [9.0, 10.0, 11.0]  # row 1 (7 + ...), columns 2..4
    with pytest.raises(ValueError, match="crop 6 is larger than the image 5x7"):
        bench.harness.centre_crop(x, 6)


def test_parse_variant(bench):
    assert bench.parse_variant("fp32") == ("fp32", False, False)
    assert bench.parse_variant("bf16+channels_last+cuda_graphs") == ("bf16", True, True)
    assert bench.parse_variant("fp16+cuda_graphs") == ("fp16", False, True)
    for bad in ("half", "bf16+nhwc", "channels_last"):
        with pytest.raises(ValueError, match="a precision"):
            bench.parse_variant(bad)


def test_table_shows_unavailable_variants_with_their_reason(bench):
    def row(variant, available, **kw):
        base = dict.fromkeys(bench.COLUMNS)
        base.update({"variant": variant, "available": available, "reason": "", **kw})
        return base

    numbers = dict(mean_psnr=28.5, mean_psnr_diff_db=-0.0012, min_psnr_diff_db=-0.02,
                   max_psnr_diff_db=0.01, max_abs_diff=0.00936, seconds=8.06)  # fmt: skip
    lines = bench.format_table(
        [row("bf16", True, **numbers), row("fp16", False, reason="ValueError: no fp16 here")]
    ).splitlines()
    assert lines[2] == "| bf16 | 28.500 | -0.0012 | -0.0200 .. +0.0100 | 0.00936 | 8.1 |"
    assert lines[3] == "| fp16 | unavailable: ValueError: no fp16 here | | | | |"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_is_refused_without_a_gpu(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--device", "cuda", "--quick"])
    assert exc.value.code == 2
    assert "--device cuda but no CUDA device is available" in capsys.readouterr().err


@pytest.mark.shared
@pytest.mark.skipif(
    not (SHARED_DATA / "images" / "CBSD68").is_dir(), reason="needs ../shared/data (CBSD68)"
)
def test_quality_precision_quick_runs_end_to_end(bench, tmp_path):
    out = tmp_path / "precision.jsonl"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        variants = "fp32,bf16,fp32+cuda_graphs"
        args = ["--quick", "--device", "cpu", "--variants", variants, "--out", str(out)]
        assert bench.main(args) == 0
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["fp32", "bf16", "fp32+cuda_graphs"]
    assert all(list(r) == list(bench.COLUMNS) for r in rows)
    fp32, bf16, graphs = rows
    assert (
        not graphs["available"] and "cuda_graphs=True needs x on a CUDA device" in graphs["reason"]
    )
    assert fp32["mean_psnr_diff_db"] == 0 and fp32["max_abs_diff"] == 0
    # bf16 changed the output (the cast happened) by about bfloat16's rounding, not more
    assert 0 < bf16["max_abs_diff"] < 5e-2
    assert abs(bf16["mean_psnr_diff_db"]) < 0.1
    assert fp32["mean_psnr"] > fp32["input_psnr"] + 1  # HQS restored the 32x32 crops

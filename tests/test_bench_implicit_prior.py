"""Tests of benchmarks/bench_implicit_prior.py: its helpers on CPU, and a --quick smoke run on
the shared test data (Set5, Set14, BSD68 and the BF-CNN weights)."""

import json
import math
from pathlib import Path

import pytest
import torch
from pnpfast_test_utils import SHARED_DATA, load_benchmark

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _load(name: str):
    return load_benchmark(name)


@pytest.fixture(scope="module")
def bench():
    return _load("bench_implicit_prior")


def test_psnr_on_y_against_a_hand_computed_value(bench):
    # R raised by 0.1 on a flat image: Y moves by 65.481 * 0.1 / 255 everywhere, so
    # PSNR = -20 log10(6.5481 / 255) = 31.8085 dB; G and B alone move it by their weights
    ref = torch.full((2, 3, 12, 12), 0.5, dtype=torch.float64)
    x = ref.clone()
    x[:, 0] += 0.1
    got = bench.psnr_y(x, ref)
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx([31.808497545388143] * 2, abs=1e-9)
    x = ref.clone()
    x[:, 2] -= 0.2
    assert bench.psnr_y(x, ref)[0].item() == pytest.approx(-20 * math.log10(24.966 * 0.2 / 255))
    # MATLAB rgb2ycbcr: black and white have Y 16/255 and 235/255
    rgb = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    assert (bench.luma(rgb).flatten() * 255).tolist() == pytest.approx([16.0, 235.0])


def test_scores_clamp_and_use_y_for_color(bench):
    clean = torch.full((1, 3, 16, 16), 0.25)
    est = torch.cat([clean, clean + 2.0])  # the second clamps to 1
    s = bench.scores(est, clean)
    assert s["psnr"][0] == math.inf and s["ssim"][0] == pytest.approx(1.0)
    assert s["psnr_rgb"][1] == pytest.approx(-20 * math.log10(0.75), abs=1e-4)
    assert s["psnr"][1] == pytest.approx(-20 * math.log10(219 * 0.75 / 255), abs=1e-4)
    gray = bench.scores(est[:, :1], clean[:, :1])
    assert gray["psnr_rgb"] is None and gray["psnr"][1] == pytest.approx(s["psnr_rgb"][1])
    assert bench.mean_std([1.0, 3.0]) == (2.0, 1.0) and bench.mean_std([2.5]) == (2.5, 0.0)


def test_crop_and_experiment_list(bench):
    assert bench.crop_size(321, 481, None) == (320, 480)
    assert bench.crop_size(321, 481, 64) == (64, 64)
    assert bench.crop_size(228, 344, 256) == (224, 256)
    x = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 4, 10)
    assert bench.centre(x, 4, 4)[0, 0, 0].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert bench.parse_experiments("all") == list(bench.EXPERIMENTS)
    assert bench.parse_experiments("cs4, sr8") == ["cs4", "sr8"]
    with pytest.raises(Exception, match="among"):
        bench.parse_experiments("sr3")


def test_reference_sampler_is_pnpfast_algorithm_2(bench):
    """The plain one-image loop of the throughput part starts from the same noise as pnpfast's
    sampler with one measurement; with beta = 1 (no noise in the steps, whose noise pnpfast
    draws in its fused step) their iterates agree to rounding."""
    import pnpfast
    from pnpfast.operators import BlockAverage

    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    A = BlockAverage(2)

    def D(y, sigma):  # a stand-in denoiser: shrink towards a smooth image
        return 0.3 + 0.7 * y

    params = {"sigma_0": 1.0, "sigma_L": 0.01, "h0": 0.05, "beta": 1.0}
    ref = pnpfast.solve(A.measure(x), A, D, method="implicit-prior", seed=7, max_iter=6, **params)
    y, t = bench.reference_sampler(
        A.measure(x), A, D, max_iter=6, generator=torch.Generator().manual_seed(7), **params
    )
    assert t == 6 and ref.iterations.tolist() == [6]
    assert (y - ref.x).abs().max().item() < 1e-10


@pytest.mark.shared
@pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set5, Set14, BSD68, BF-CNN weights)"
)
def test_bench_implicit_prior_quick_runs_end_to_end(bench, tmp_path, capsys):
    from pnpfast.io import read_image

    out, png = tmp_path / "ip.jsonl", tmp_path / "ip.png"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    args = ["--quick", "--device", "cpu", "--out", str(out), "--figure", str(png)]
    try:
        assert bench.main(args) == 0
    finally:
        torch.set_num_threads(before)
    printed = capsys.readouterr().out
    assert "batched / loop:" in printed and f"rows appended to {out}" in printed

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    experiments = [r for r in rows if r["part"] == "experiments"]
    throughput = [r for r in rows if r["part"] == "throughput"]
    assert len(experiments) + len(throughput) == len(rows)
    # --quick: the first image of each set, so one row per (experiment, set)
    expected = [(name, dataset) for name, e in bench.EXPERIMENTS.items() for dataset in e.datasets]
    assert [(r["experiment"], r["dataset"]) for r in experiments] == expected
    for r in experiments:
        color = r["dataset"] != "BSD68"
        assert r["image"] == {"Set5": "baby", "Set14": "baboon", "BSD68": "test001"}[r["dataset"]]
        assert r["shape"] == ("1x3x32x32" if color else "1x1x32x32")
        assert r["psnr_on"] == ("Y" if color else "gray")
        assert r["denoiser"].startswith("bfcnn-color:" if color else "bfcnn-gray:")
        assert r["realisations"] == 2 and r["max_iter"] == 30
        assert r["params"] == {"sigma_0": 1.0, "sigma_L": 0.01, "h0": 0.01, "beta": 0.01}
        assert len(r["psnr_each"]) == 2 and len(r["ssim_each"]) == 2
        keys = ["psnr", "ssim"] + (["psnr_rgb"] if color else [])
        for key in keys:
            for stat in ("mean", "std", "avg", "direct"):
                assert math.isfinite(r[f"{key}_{stat}"]), (r["experiment"], key, stat)
        if not color:
            assert r["psnr_rgb_avg"] is None
        assert 1 <= r["iterations_mean"] <= r["iterations_max"] <= 30
        assert 0 <= r["converged"] <= 2 and r["seconds"] > 0
        assert 0 < r["measured_fraction"] <= 0.3 and r["operator"]
        assert r["git_sha"] and r["device"] and r["timestamp"]
    fractions = {r["experiment"]: r["measured_fraction"] for r in experiments}
    assert fractions["sr4"] == 1 / 16 and fractions["sr8"] == 1 / 64
    assert fractions["cs25"] == 0.25 and fractions["cs4"] == pytest.approx(0.04, abs=1e-3)

    (t,) = throughput
    assert t["shape"] == "2x3x16x16" and t["images"] == 2 and t["max_iter"] == 20
    assert t["batched_images_per_s"] > 0 and t["loop_images_per_s"] > 0
    assert t["speedup"] == pytest.approx(t["batched_images_per_s"] / t["loop_images_per_s"])
    assert t["batched_iterations_mean"] == t["loop_iterations_mean"] == 20
    assert t["target_met"] is None  # on the CPU the 10x target is only reported
    assert t["denoiser_calls"] == 20 and 0 < t["frac_not_denoiser"] < 1
    assert t["not_denoiser_target_met"] is None

    # the figure: 4 samples of 16x16, then sr, spec and cs rows of four 32x32 panels, 4 px gaps
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tuple(read_image(png).shape) == (1, 3, 16 + 3 * 32 + 3 * 4, 4 * 32 + 3 * 4)


def test_missing_data_exits_2(bench, tmp_path, capsys):
    args = ["--quick", "--device", "cpu", "--data", str(tmp_path / "none")]
    assert bench.main([*args, "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "needs the test data" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()


def test_help_prints(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--help"])
    assert exc.value.code == 0 and "--experiments" in capsys.readouterr().out

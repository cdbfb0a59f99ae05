"""Tests of benchmarks/quality_sr.py: its PSNR on Y with shaved borders and its table on hand
values, and a --quick smoke run on the shared test data (Set5, Set14)."""

import json
import math

import pytest
import torch
from pnpfast_test_utils import SHARED_DATA, load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("quality_sr")


def test_psnr_on_y_with_shaved_borders_against_hand_values(bench):
    ref = torch.full((2, 3, 12, 12), 0.5, dtype=torch.float64)
    x = ref.clone()
    x[:, 0] += 0.1  # R up by 0.1: Y moves by 65.481 * 0.1 / 255 everywhere
    x[..., :2, :] = 1.0  # a wrong 2-pixel border, which shave=2 must drop
    x[..., -2:, :] = 0.0
    x[..., :, :2] = 1.0
    x[..., :, -2:] = 0.0
    got = bench.psnr(bench.luma(x), bench.luma(ref), 2)
    assert got.tolist() == pytest.approx([-20 * math.log10(6.5481 / 255)] * 2, abs=1e-9)
    assert bench.psnr(x, ref, 2).tolist() == pytest.approx([10 * math.log10(3 / 0.01)] * 2)
    assert (bench.psnr(x, ref, 1) < bench.psnr(x, ref, 2) - 10).all()
    # MATLAB rgb2ycbcr: black and white have Y 16/255 and 235/255
    rgb = torch.tensor([0.0, 1.0], dtype=torch.float64).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    assert (bench.luma(rgb).flatten() * 255).tolist() == pytest.approx([16.0, 235.0])


def test_table_means_each_set_and_method(bench):
    def row(dataset, image, method, rgb, y):
        return dict(
            dataset=dataset, image=image, kernel="gaussian", factor=3, noise_255=2.55,
            method=method, psnr_rgb=rgb, psnr_y=y,
        )  # fmt: skip

    rows = [
        row("Set5", "a", "hqs", 30.0, 31.0),
        row("Set5", "b", "hqs", 32.0, 34.0),
        row("Set5", "a", "upsample", 20.0, 21.0),
    ]
    lines = bench.format_table(rows).splitlines()
    assert lines[0] == "| kernel | s | noise (/255) | Set5 upsample | Set5 hqs | Set5 deepinv-hqs |"
    # upsample ran on 1 of the set's 2 images: its count is shown
    assert lines[2] == "| gaussian | 3 | 2.55 | 20.00 / 21.00 (1) | 31.00 / 32.50 | - |"
    rows += [row("Set5", "a", "deepinv-hqs", 30.01, 30.98), row("Set5", "b", "upsample", 22, 23)]
    lines = bench.format_table(rows).splitlines()
    assert lines[0].endswith("| Set5 deepinv-hqs | Set5 hqs - deepinv-hqs |")
    # the difference over the images where both ran (a only): 30 - 30.01, 31 - 30.98
    assert lines[2] == (
        "| gaussian | 3 | 2.55 | 21.00 / 22.00 | 31.00 / 32.50 | 30.01 / 30.98 (1) "
        "| -0.010 / +0.020 (1) |"
    )
    gaps = bench.image_gaps(rows)
    assert gaps == {("Set5", "a"): (pytest.approx(0.02), 1)}


def test_modcrop_keeps_the_top_left_multiple_of_s(bench):
    x = torch.arange(7 * 11, dtype=torch.float64).view(1, 1, 7, 11)
    assert bench.modcrop(x, 3).shape[-2:] == (6, 9)
    assert bench.modcrop(x, 3)[0, 0, -1, -1].item() == 5 * 11 + 8  # row 5, column 8 of x
    assert bench.modcrop(x, 1).shape[-2:] == (7, 11)


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set5, Set14)")
def test_quality_sr_quick_runs_end_to_end(bench, tmp_path, capsys):
    out = tmp_path / "sr_quality.jsonl"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert bench.main(["--quick", "--device", "cpu", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(list(r) == list(bench.COLUMNS) for r in rows)
    methods = {r["method"] for r in rows}
    assert {"upsample", "hqs"} <= methods
    assert {(r["dataset"], r["image"]) for r in rows} == {("Set5", "baby"), ("Set14", "baboon")}
    for r in rows:
        assert r["crop"] == 24 and r["factor"] == 2 and r["shave"] == 2 and r["git_sha"]
        assert r["kernel"] == "bicubic" and r["noise_255"] in (0.0, 2.55)
        assert r["iterations"] == (0 if r["method"] == "upsample" else 2)
        assert 10 < r["psnr_rgb"] < 60 and 10 < r["psnr_y"] < 60
    assert "24x24 centre crops" in capsys.readouterr().out
    if "deepinv-hqs" in methods:  # the same algorithm, so the same numbers
        key = ("dataset", "kernel", "noise_255", "image")
        ours = {tuple(r[k] for k in key): r for r in rows if r["method"] == "hqs"}
        for r in rows:
            if r["method"] == "deepinv-hqs":
                mine = ours[tuple(r[k] for k in key)]
                assert abs(mine["psnr_rgb"] - r["psnr_rgb"]) < 0.05
                assert abs(mine["psnr_y"] - r["psnr_y"]) < 0.05


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set5, Set14)")
def test_quality_sr_full_images_are_mod_cropped_and_resume_skips_done_rows(bench, tmp_path):
    out = tmp_path / "sr_quality.jsonl"
    argv = ["--quick", "--crop", "0", "--methods", "upsample", "--device", "cpu", "--out", str(out)]
    assert bench.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # Set5 baby is 512x512, Set14 baboon 480x500 (H x W): both already even
    sizes = {(r["image"], r["noise_255"]): (r["height"], r["width"]) for r in rows}
    assert sizes == {(i, n): hw for i, hw in [("baby", (512, 512)), ("baboon", (480, 500))]
                     for n in (0.0, 2.55)}  # fmt: skip
    assert all(r["crop"] == 0 and r["batch_size"] == 1 and r["vs_hqs_db"] is None for r in rows)
    assert [r["dataset"] for r in rows] == ["Set5", "Set5", "Set14", "Set14"]  # set by set
    assert bench.main([*argv, "--resume"]) == 0
    assert len(out.read_text().splitlines()) == len(rows)  # nothing left to do


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (Set5, Set14)")
def test_full_images_at_x3_group_by_size_after_the_mod_crop(bench):
    batches = bench.load_sets(0, 3)
    sizes = {image: tuple(x.shape[-2:]) for x, names in batches for _, image in names}
    assert len(sizes) == 19 and all(x.shape[1] == 3 for x, _ in batches)  # bridge made RGB
    assert sizes["comic"] == (360, 249) and sizes["ppt3"] == (654, 528)  # 361x250, 656x529
    five = [names for x, names in batches if x.shape[-2:] == (510, 510)]
    assert [image for _, image in five[0]] == ["baby", "bridge", "lenna", "man", "pepper"]

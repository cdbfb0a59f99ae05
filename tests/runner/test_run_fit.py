"""pnpfast.runner.run.restore fitting the work to the machine (issue 21): batch_size "auto",
an image too large for memory alone retried on tiles, and the denoiser in bf16 with a NaN batch
rerun in fp32. Each output is checked against the same problem solved directly."""

import numpy as np
import pytest
import torch
from test_run import CountingSolve  # pnpfast.solvers.solve recording each batch's y shape

import pnpfast.solvers
from pnpfast.denoisers import GaussianSmoothing
from pnpfast.io import read_image_file, write_image_file
from pnpfast.operators import Blur
from pnpfast.runner import run as run_module
from pnpfast.runner import tiles
from pnpfast.runner.ledger import read_ledger
from pnpfast.runner.run import RunConfig, restore

NOISE = 9.0
HALF_STEP16 = 0.5 / 65535 + 1e-6  # a 16-bit output against the float result


@pytest.fixture
def folder(tmp_path):
    """Eight 16-bit RGB PNGs under in/: four 20x20 and four 24x16; one 3x3 kernel."""
    (tmp_path / "in").mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(8):
        h, w = (20, 20) if i % 2 == 0 else (24, 16)
        write_image_file(
            tmp_path / "in" / f"im{i}.png", torch.rand(1, 3, h, w, generator=g), bit_depth=16
        )
    k = np.random.default_rng(1).random((3, 3)).astype(np.float32)
    np.save(tmp_path / "k.npy", k / k.sum())
    return tmp_path


def _config(root, **kw) -> RunConfig:
    base = dict(
        task="deblur",
        operator=f"blur:{root / 'k.npy'}",
        noise=NOISE,
        denoiser=GaussianSmoothing(),
        max_iter=2,
        batch_size=4,
    )
    base.update(kw)
    return RunConfig(**base)


def _direct(root, name, denoiser) -> torch.Tensor:
    """The image solved alone, directly with pnpfast.solve: the oracle of every run here."""
    y = read_image_file(root / "in" / name).pixels
    kernel = torch.from_numpy(np.load(root / "k.npy"))
    x = pnpfast.solvers.solve(y, Blur(kernel), denoiser, "hqs", sigma=NOISE / 255, max_iter=2).x
    return x.clamp(0, 1)


def _out(root, sub, name) -> torch.Tensor:
    return read_image_file(root / sub / name).pixels


# ---------------------------------------------------------------------------------------------
# batch_size "auto"


def test_auto_batch_fits_the_measured_image_bytes_into_free_memory(folder, monkeypatch):
    asked = []

    def image_bytes(denoiser, shape, **kw):
        asked.append(tuple(shape))
        return 1000

    monkeypatch.setattr(tiles, "image_bytes", image_bytes)
    monkeypatch.setattr(tiles, "free_memory", lambda device: 3800)  # 0.8 * 3800 // 1000 = 3
    calls = CountingSolve(monkeypatch)
    report = restore([folder / "in"], folder / "out", _config(folder, batch_size="auto"))
    assert report.done == 8 and report.failed == []
    assert sorted(asked) == [(3, 20, 20), (3, 24, 16)]  # measured once per image size
    assert report.auto_batch == {"3x20x20": 3, "3x24x16": 3}
    assert sorted(s[0] for s in calls.shapes) == [1, 1, 3, 3]  # 4 images of each size: 3 + 1
    for i in range(8):
        name = f"im{i}.png"
        want = _direct(folder, name, GaussianSmoothing())
        assert (_out(folder, "out", name) - want).abs().max() <= HALF_STEP16 + 2e-6, name


def test_auto_batch_with_the_real_measurement_runs_and_records_its_choice(folder):
    report = restore([folder / "in"], folder / "out", _config(folder, batch_size="auto"))
    assert report.done == 8
    assert set(report.auto_batch) == {"3x20x20", "3x24x16"}
    # tiny images on a machine with GiBs free: the cap
    assert all(1 <= n <= run_module.AUTO_BATCH_CAP for n in report.auto_batch.values())


def test_auto_batch_shrinks_after_an_out_of_memory_error(folder, monkeypatch):
    monkeypatch.setattr(tiles, "image_bytes", lambda *a, **k: 1)
    monkeypatch.setattr(tiles, "free_memory", lambda device: 10**9)  # says 64: wrong
    calls = CountingSolve(monkeypatch)
    report = restore(
        [folder / "in"], folder / "out", _config(folder, batch_size="auto", denoiser=OOMAbove(1))
    )
    assert report.done == 8 and report.failed == []
    # per size: 4 (OOM), each half 2 (OOM), each quarter 1 (tiles.run_halving)
    assert sorted(s[0] for s in calls.shapes) == [1] * 8 + [2] * 4 + [4] * 2


# ---------------------------------------------------------------------------------------------
# an image too large for memory alone: the denoiser on tiles


class OOMAbove(GaussianSmoothing):
    """Gaussian smoothing raising CUDA's out-of-memory error for more than ``images`` images
    or, with ``pixels``, for inputs of more than ``pixels`` pixels (H W) per image."""

    def __init__(self, images: int = 64, pixels: int | None = None):
        super().__init__()
        self.images, self.pixels = images, pixels

    def forward(self, x, sigma):
        too_many = x.shape[0] > self.images
        if too_many or (self.pixels is not None and x.shape[-2] * x.shape[-1] > self.pixels):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x, sigma)


def test_an_image_out_of_memory_alone_is_denoised_on_the_largest_tile_that_fits(
    folder, monkeypatch
):
    monkeypatch.setattr(run_module, "AUTO_TILE_START", 32)
    monkeypatch.setattr(run_module, "AUTO_TILE_MIN", 8)
    # whole 20x20 / 24x16 images (400, 384 pixels) do not fit; tiles of 16 (256) do; 32 not
    calls = CountingSolve(monkeypatch)
    report = restore(
        [folder / "in"], folder / "out", _config(folder, denoiser=OOMAbove(pixels=300))
    )
    assert report.done == 8 and report.failed == []
    assert report.tiled == {"3x20x20": 16, "3x24x16": 16}
    overlap = tiles.overlap_for(16)
    for i in range(8):
        name = f"im{i}.png"
        want = _direct(folder, name, tiles.TiledDenoiser(GaussianSmoothing(), 16, overlap))
        assert (_out(folder, "out", name) - want).abs().max() <= HALF_STEP16 + 2e-6, name
    _, records, _ = read_ledger(folder / "out" / ".pnpfast-ledger.rank0.jsonl")
    assert {r["key"]: r.get("tile") for r in records if r["type"] == "done"} == {
        f"im{i}.png": 16 for i in range(8)
    }
    # each size: a batch of 4 whole (OOM, halved to 2 and 1), then tiles; after that the size
    # goes straight to tiles: no batch of a size runs whole twice
    assert len(calls.shapes) < 20


def test_an_image_that_fails_even_on_the_smallest_tile_fails_with_the_oom_reason(
    folder, monkeypatch
):
    monkeypatch.setattr(run_module, "AUTO_TILE_START", 32)
    monkeypatch.setattr(run_module, "AUTO_TILE_MIN", 8)
    report = restore([folder / "in"], folder / "out", _config(folder, denoiser=OOMAbove(pixels=10)))
    assert report.done == 0 and len(report.failed) == 8
    assert all("out of memory" in f["reason"] for f in report.failed)


# ---------------------------------------------------------------------------------------------
# precision


class ConvSmooth(torch.nn.Module):
    """A 3x3 box filter as a convolution: an op torch.autocast runs in bf16 (GaussianSmoothing
    filters with FFTs, which autocast leaves in fp32)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", torch.full((3, 1, 3, 3), 1 / 9))

    def forward(self, x, sigma):
        return torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), self.weight, groups=3
        )


def test_bf16_denoiser_is_close_to_fp32_but_not_equal(folder):
    fp32 = restore([folder / "in"], folder / "fp32", _config(folder, denoiser=ConvSmooth()))
    bf16 = restore(
        [folder / "in"], folder / "bf16", _config(folder, precision="bf16", denoiser=ConvSmooth())
    )
    assert fp32.done == bf16.done == 8 and bf16.fp32_reruns == []
    diffs = [
        (_out(folder, "fp32", f"im{i}.png") - _out(folder, "bf16", f"im{i}.png")).abs().max()
        for i in range(8)
    ]
    assert max(diffs) > 1e-4  # the network really ran in bfloat16 (8 mantissa bits)
    assert max(diffs) < 2e-2  # and two HQS steps of it stay close


class NaNInLowPrecision(GaussianSmoothing):
    """Gaussian smoothing that returns NaN under autocast: a network overflowing in fp16."""

    def forward(self, x, sigma):
        out = super().forward(x, sigma)
        return out * float("nan") if torch.is_autocast_enabled("cpu") else out


def test_a_batch_that_goes_nan_in_low_precision_is_rerun_in_fp32(folder):
    fp32 = restore([folder / "in"], folder / "fp32", _config(folder))
    low = restore(
        [folder / "in"],
        folder / "fp16",
        _config(folder, precision="fp16", denoiser=NaNInLowPrecision()),
    )
    assert fp32.done == low.done == 8 and low.failed == []
    assert sorted(low.fp32_reruns) == sorted(f"im{i}.png" for i in range(8))
    for i in range(8):
        name = f"im{i}.png"
        assert torch.equal(_out(folder, "fp32", name), _out(folder, "fp16", name)), name
    _, records, _ = read_ledger(folder / "fp16" / ".pnpfast-ledger.rank0.jsonl")
    assert all(r.get("precision") == "fp32" for r in records if r["type"] == "done")


def test_precision_is_a_setting_of_the_run(folder):
    from pnpfast.runner.ledger import SettingsMismatchError

    restore([folder / "in"], folder / "out", _config(folder))
    with pytest.raises(SettingsMismatchError, match='precision: <absent> before, "bf16" now'):
        restore([folder / "in"], folder / "out", _config(folder, precision="bf16"))


def test_channels_last_gives_the_fp32_result(folder):
    restore([folder / "in"], folder / "a", _config(folder))
    report = restore([folder / "in"], folder / "b", _config(folder, channels_last=True))
    assert report.done == 8
    for i in range(8):
        name = f"im{i}.png"
        assert (_out(folder, "a", name) - _out(folder, "b", name)).abs().max() <= 2 / 65535


# ---------------------------------------------------------------------------------------------
# deblur kernels of several sizes in one batch (GPUs; forced here)


def test_kernels_of_several_sizes_share_a_batch_each_zero_padded(folder, monkeypatch):
    rng = np.random.default_rng(3)
    rows = ["path,kernel"]
    for i in range(8):  # sizes 3x3, 5x5, 4x6 (even: its centre tap is (2, 3)), 7x5
        h, w = [(3, 3), (5, 5), (4, 6), (7, 5)][i % 4]
        k = rng.random((h, w)).astype(np.float32)
        np.save(folder / f"k{i}.npy", k / k.sum())
        rows.append(f"in/im{i}.png,k{i}.npy")
    (folder / "jobs.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(run_module, "PAD_KERNELS", True)
    calls = CountingSolve(monkeypatch)
    config = _config(folder, operator=None)
    report = restore([folder / "in"], folder / "out", config, manifest=folder / "jobs.csv")
    assert report.done == 8 and report.failed == []
    assert sorted(s[0] for s in calls.shapes) == [4, 4]  # one batch per image size
    for i in range(8):  # each as solved alone with its own, unpadded kernel
        y = read_image_file(folder / "in" / f"im{i}.png").pixels
        A = Blur(torch.from_numpy(np.load(folder / f"k{i}.npy")))
        want = pnpfast.solvers.solve(
            y, A, GaussianSmoothing(), "hqs", sigma=NOISE / 255, max_iter=2
        )
        got = _out(folder, "out", f"im{i}.png")
        assert (got - want.x.clamp(0, 1)).abs().max() <= HALF_STEP16 + 2e-6, i

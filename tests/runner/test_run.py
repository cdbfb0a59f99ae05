"""Tests of pnpfast.runner.run: restore a folder in batches, resumably.

The oracle of every output is ``pnpfast.solve`` called on that image alone (read with
``read_image_file``), with the operator, noise and parameters the run should give it; outputs
are 8-bit files, so they agree with the oracle to half a quantisation step.
"""

import json
import os
import signal

import numpy as np
import pytest
import torch

import pnpfast.solvers
from pnpfast.denoisers import GaussianSmoothing
from pnpfast.io import read_image_file, write_image_file
from pnpfast.operators import Blur, Identity, Inpainting, SuperResolution
from pnpfast.runner import run as run_module
from pnpfast.runner.ledger import SettingsMismatchError, merge, read_ledger
from pnpfast.runner.run import RunConfig, restore

SIZES = [(16, 16), (20, 24), (24, 20)]
HALF_STEP = 0.5 / 255 + 1e-5  # an 8-bit output against the float result


def _image(c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def tree(tmp_path):
    """A dozen RGB PNGs of three sizes under in/ (half in in/sub/), two kernels, a manifest
    giving each image a kernel (3x3 or 5x5) and a noise level."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    k3 = rng.random((3, 3)).astype(np.float32)
    k5 = rng.random((5, 5)).astype(np.float32)
    np.save(tmp_path / "k3.npy", k3 / k3.sum())
    np.save(tmp_path / "k5.npy", k5 / k5.sum())
    rows = ["path,kernel,noise"]
    names = []
    for i in range(12):
        h, w = SIZES[i % 3]
        name = f"{'sub/' if i % 2 else ''}im{i:02d}.png"
        write_image_file(tmp_path / "in" / name, _image(3, h, w, i))
        rows.append(f"in/{name},{'k3.npy' if i % 4 < 2 else 'k5.npy'},{5.0 + i}")
        names.append(name)
    (tmp_path / "jobs.csv").write_text("\n".join(rows) + "\n")
    return tmp_path, names


def _config(**kw) -> RunConfig:
    base = dict(task="deblur", denoiser=GaussianSmoothing(), max_iter=2, batch_size=4)
    base.update(kw)
    return RunConfig(**base)


class CountingSolve:
    """pnpfast.solvers.solve, counting the calls and recording each batch's y shape."""

    def __init__(self, monkeypatch):
        self.shapes = []
        self._solve = pnpfast.solvers.solve
        monkeypatch.setattr(pnpfast.solvers, "solve", self)

    def __call__(self, y, *args, **kwargs):
        if not isinstance(args[1], run_module._DryDenoiser):  # RunConfig's check of params
            self.shapes.append(tuple(y.shape))
        return self._solve(y, *args, **kwargs)


def _alone(src, kernel_file, noise) -> torch.Tensor:
    y = read_image_file(src).pixels
    kernel = torch.from_numpy(np.load(kernel_file))
    return pnpfast.solvers.solve(
        y, Blur(kernel), GaussianSmoothing(), "hqs", sigma=noise / 255, max_iter=2
    ).x


def _run(tree_path, config, **kw):
    return restore(
        [tree_path / "in"], tree_path / "out", config, manifest=tree_path / "jobs.csv", **kw
    )


def test_deblur_folder_batches_by_size_and_each_output_equals_the_image_alone(tree, monkeypatch):
    root, names = tree
    calls = CountingSolve(monkeypatch)
    report = _run(root, _config())
    assert (report.done, report.skipped, report.failed, report.total) == (12, 0, [], 12)
    # 3 sizes x 2 kernel sizes = 6 groups of 2 images each: 6 calls of batch 2
    assert sorted(calls.shapes) == sorted([(2, 3, h, w) for h, w in SIZES for _ in range(2)])
    for i, name in enumerate(names):
        out = root / "out" / name  # the tree is mirrored
        assert out.is_file()
        got = read_image_file(out).pixels
        want = _alone(root / "in" / name, root / ("k3.npy" if i % 4 < 2 else "k5.npy"), 5.0 + i)
        assert (got - want.clamp(0, 1)).abs().max() <= HALF_STEP, name
    _, records, _ = read_ledger(root / "out" / ".pnpfast-ledger.rank0.jsonl")
    assert sorted(r["key"] for r in records) == sorted(names)
    assert all({"read", "solve", "write", "sha256"} <= r.keys() for r in records)
    json.dumps(report.as_dict())  # JSON data
    assert set(report.seconds) == {"read", "solve", "denoiser", "data", "write", "total"}
    assert 0 < report.seconds["denoiser"] < report.seconds["solve"]
    assert report.peak_memory_bytes > 0 and report.versions["torch"] == torch.__version__


def test_rerun_skips_everything_other_noise_is_refused_and_overwrite_redoes(tree, monkeypatch):
    root, _ = tree
    _run(root, _config(noise=7.65))
    calls = CountingSolve(monkeypatch)
    again = _run(root, _config(noise=7.65))
    assert (again.done, again.skipped, calls.shapes) == (0, 12, [])
    with pytest.raises(SettingsMismatchError, match=r"noise: 7\.65 before, 10\.0 now"):
        _run(root, _config(noise=10.0))
    assert calls.shapes == []
    redo = _run(root, _config(noise=10.0, overwrite=True))
    assert (redo.done, redo.skipped) == (12, 0) and len(calls.shapes) == 6


def test_16_bit_and_alpha_are_kept(tmp_path):
    (tmp_path / "in").mkdir()
    x16 = (torch.randint(0, 65536, (1, 1, 16, 18)).double() / 65535).float()
    rgb = _image(3, 17, 16, 1)
    alpha = (torch.randint(0, 256, (1, 1, 17, 16)).double() / 255).float()
    write_image_file(tmp_path / "in" / "deep.png", x16, bit_depth=16)
    write_image_file(tmp_path / "in" / "rgba.png", rgb, alpha=alpha)
    report = restore(
        tmp_path / "in", tmp_path / "out", _config(task="denoise", noise=10.0, batch_size=2)
    )
    assert report.done == 2
    deep = read_image_file(tmp_path / "out" / "deep.png")
    assert deep.bit_depth == 16 and deep.alpha is None
    want = pnpfast.solvers.solve(
        read_image_file(tmp_path / "in" / "deep.png").pixels,
        Identity(),
        GaussianSmoothing(),
        sigma=10 / 255,
        max_iter=2,
    ).x
    assert (deep.pixels - want.clamp(0, 1)).abs().max() <= 0.5 / 65535 + 1e-6
    rgba = read_image_file(tmp_path / "out" / "rgba.png")
    assert rgba.bit_depth == 8
    assert torch.equal(rgba.alpha, read_image_file(tmp_path / "in" / "rgba.png").alpha)


def test_corrupt_file_is_reported_failed_and_the_rest_done(tree):
    root, _ = tree
    (root / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    report = restore(
        [root / "in"], root / "out", _config(operator=f"blur:{root / 'k3.npy'}", noise=7.65)
    )
    assert report.done == 12
    assert [f["key"] for f in report.failed] == ["broken.png"]
    assert "broken.png" in report.failed[0]["reason"]
    assert not (root / "out" / "broken.png").exists()
    merged = merge([root / "out" / ".pnpfast-ledger.rank0.jsonl"])
    assert merged["done"] == 12 and merged["failures"][0]["key"] == "broken.png"


class OOMAbove(GaussianSmoothing):
    """Gaussian smoothing that raises the CUDA out-of-memory error for batches above ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def forward(self, x, sigma):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x, sigma)


def test_out_of_memory_halves_the_batch_and_gives_the_outputs_of_batch_1(tree, monkeypatch):
    root, names = tree
    spec = f"blur:{root / 'k3.npy'}"
    one = restore([root / "in"], root / "one", _config(operator=spec, noise=9.0, batch_size=1))
    calls = CountingSolve(monkeypatch)
    report = restore(
        [root / "in"],
        root / "oom",
        _config(operator=spec, noise=9.0, batch_size=4, denoiser=OOMAbove(2)),
    )
    assert one.done == report.done == 12 and report.failed == []
    # each size's 4 images: one call of 4 (OOM), then two of 2, then the next batches of 2
    assert max(s[0] for s in calls.shapes) == 4 and calls.shapes.count((4, 3, 16, 16)) == 1
    for name in names:
        a = read_image_file(root / "one" / name).pixels
        b = read_image_file(root / "oom" / name).pixels
        assert (a - b).abs().max() <= 1 / 255 + 1e-6, name  # a rounding flip at most


def _ledger_keys(path):
    return [r["key"] for r in read_ledger(path)[1] if r["type"] == "done"]


def test_keyboard_interrupt_after_the_first_batch_then_rerun_completes(tree):
    root, names = tree

    def stop(done, total, elapsed):
        raise KeyboardInterrupt

    report = _run(root, _config(), progress=stop)
    # progress first sees the first batch recorded after the second batch's solve (outputs are
    # written while the next batch is solved); the second batch's outputs are finished too
    assert report.interrupted and report.done == 4
    ledger = root / "out" / ".pnpfast-ledger.rank0.jsonl"
    first = _ledger_keys(ledger)
    assert len(first) == 4 and all((root / "out" / k).is_file() for k in first)
    assert sum(1 for p in (root / "out").rglob("*.png")) == 4
    rest = _run(root, _config())
    assert (rest.done, rest.skipped, rest.interrupted) == (8, 4, False)
    keys = _ledger_keys(ledger)
    assert sorted(keys) == sorted(names) and len(keys) == 12  # no duplicate


def test_keyboard_interrupt_inside_a_batch_loses_only_that_batch(tree):
    root, _ = tree

    class Interrupting(GaussianSmoothing):
        calls = 0

        def forward(self, x, sigma):
            Interrupting.calls += 1
            if Interrupting.calls > 3:  # max_iter 2: the second batch's second call
                raise KeyboardInterrupt
            return super().forward(x, sigma)

    report = _run(root, _config(denoiser=Interrupting()))
    assert report.interrupted and report.done == 2
    assert len(_ledger_keys(root / "out" / ".pnpfast-ledger.rank0.jsonl")) == 2


def test_sigint_stops_after_the_current_batch(tree):
    root, _ = tree
    seen = []

    def send(done, total, elapsed):
        seen.append(done)
        if len(seen) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    report = _run(root, _config(), progress=send)
    # sent when the first batch is recorded, after the second batch's solve: that batch is
    # written and recorded, no third one starts
    assert report.interrupted and report.done == 4 and seen == [2]


def test_two_ranks_restore_every_image_exactly_once(tree):
    root, names = tree
    reports = [_run(root, _config(), rank=r, world_size=2) for r in (0, 1)]
    assert [r.done for r in reports] == [6, 6]
    merged = merge([root / "out" / f".pnpfast-ledger.rank{r}.jsonl" for r in (0, 1)])
    assert merged["done"] == 12 and merged["duplicates"] == [] and merged["failed"] == 0
    assert sorted(
        p.relative_to(root / "out").as_posix() for p in (root / "out").rglob("*.png")
    ) == (sorted(names))


def test_super_resolution_upsamples_alpha_by_replication(tmp_path):
    (tmp_path / "in").mkdir()
    y = _image(3, 8, 10, 3)
    alpha = (torch.randint(0, 256, (1, 1, 8, 10)).double() / 255).float()
    write_image_file(tmp_path / "in" / "a.png", y, alpha=alpha)
    config = _config(task="sr", operator="sr:bicubic:x2", noise=2.55)
    assert restore(tmp_path / "in", tmp_path / "out", config).done == 1
    out = read_image_file(tmp_path / "out" / "a.png")
    assert out.pixels.shape == (1, 3, 16, 20)
    a = read_image_file(tmp_path / "in" / "a.png").alpha
    assert torch.equal(out.alpha, a.repeat_interleave(2, -2).repeat_interleave(2, -1))
    want = pnpfast.solvers.solve(
        read_image_file(tmp_path / "in" / "a.png").pixels,
        SuperResolution.bicubic(2),
        GaussianSmoothing(),
        sigma=2.55 / 255,
        max_iter=2,
    ).x
    assert (out.pixels - want.clamp(0, 1)).abs().max() <= HALF_STEP


def test_inpainting_with_a_mask_file(tmp_path):
    (tmp_path / "in").mkdir()
    x = _image(1, 16, 16, 4)
    write_image_file(tmp_path / "in" / "g.png", x)
    mask = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(5)) > 0.3).float()
    write_image_file(tmp_path / "mask.png", mask)
    config = _config(task="inpainting", mask=tmp_path / "mask.png", noise=5.0)
    assert restore(tmp_path / "in", tmp_path / "out", config).done == 1
    y = read_image_file(tmp_path / "in" / "g.png").pixels * mask
    want = pnpfast.solvers.solve(
        y, Inpainting(mask.bool()), GaussianSmoothing(), sigma=5 / 255, max_iter=2
    ).x
    got = read_image_file(tmp_path / "out" / "g.png").pixels
    assert (got - want.clamp(0, 1)).abs().max() <= HALF_STEP


def test_mask_of_another_size_fails_that_image_only(tmp_path):
    (tmp_path / "in").mkdir()
    write_image_file(tmp_path / "in" / "a.png", _image(1, 16, 16, 0))
    write_image_file(tmp_path / "in" / "b.png", _image(1, 12, 16, 0))
    write_image_file(tmp_path / "mask.png", torch.ones(1, 1, 16, 16))
    config = _config(task="inpainting", mask=tmp_path / "mask.png", noise=5.0)
    report = restore(tmp_path / "in", tmp_path / "out", config)
    assert report.done == 1 and [f["key"] for f in report.failed] == ["b.png"]
    assert "mask" in report.failed[0]["reason"]


def test_no_noise_anywhere_fails_each_image_naming_noise(tmp_path):
    (tmp_path / "in").mkdir()
    write_image_file(tmp_path / "in" / "a.png", _image(1, 16, 16, 0))
    report = restore(tmp_path / "in", tmp_path / "out", _config(task="denoise"))
    assert report.done == 0 and "noise" in report.failed[0]["reason"]


def test_rerun_with_another_world_size_skips_what_any_rank_finished(tree, monkeypatch):
    root, _ = tree
    first = _run(root, _config(), rank=0, world_size=2)
    calls = CountingSolve(monkeypatch)
    whole = _run(root, _config())  # world size 1: rank 0's ledger already holds 6 of them
    assert (first.done, whole.skipped, whole.done, sum(s[0] for s in calls.shapes)) == (6, 6, 6, 6)
    late = _run(root, _config(), rank=1, world_size=2)  # its share was done by the rerun
    assert (late.done, late.skipped) == (0, 6)


class Mean3(GaussianSmoothing):
    """(1 - 10 sigma) x + 10 sigma mean3x3(x), replicate padding: each output pixel depends on
    inputs within 1 pixel, so tiles with a margin of 1 give exactly the untiled result."""

    widths: list[int]

    def forward(self, x, sigma):
        self.widths = [*getattr(self, "widths", []), x.shape[-1]]
        a = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) * 10
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        return (1 - a) * x + a * torch.nn.functional.avg_pool2d(padded, 3, stride=1)


def test_tiled_denoiser_gives_the_untiled_outputs_for_a_local_denoiser(tree):
    root, names = tree
    spec = f"blur:{root / 'k3.npy'}"
    whole = restore(
        [root / "in"], root / "whole", _config(operator=spec, noise=5.0, denoiser=Mean3())
    )
    local = Mean3()
    tiled = restore(
        [root / "in"],
        root / "tiled",
        _config(operator=spec, noise=5.0, denoiser=local, tile=8, overlap=4),
    )
    assert max(local.widths) == 8  # the denoiser saw tiles only
    assert whole.done == tiled.done == 12
    for name in names:  # 16..24 pixels in tiles of 8: several tiles per image
        a = read_image_file(root / "whole" / name).pixels
        b = read_image_file(root / "tiled" / name).pixels
        assert (a - b).abs().max() <= 1 / 255 + 1e-6, name


def test_progress_is_called_when_only_reads_failed(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.png").write_bytes(b"not an image")
    seen = []
    report = restore(
        tmp_path / "in",
        tmp_path / "out",
        _config(task="denoise", noise=5.0),
        progress=lambda *a: seen.append(a[:2]),
    )
    assert report.done == 0 and len(report.failed) == 1 and seen == [(1, 1)]


def test_default_denoiser_is_the_methods_shipped_one(tmp_path):
    from pnpfast.denoisers import load

    (tmp_path / "in").mkdir()
    write_image_file(tmp_path / "in" / "a.png", _image(3, 16, 16, 7))
    config = RunConfig("denoise", noise=15.0, max_iter=1)
    assert restore(tmp_path / "in", tmp_path / "out", config).done == 1
    y = read_image_file(tmp_path / "in" / "a.png").pixels
    want = pnpfast.solvers.solve(y, Identity(), load(), sigma=15 / 255, max_iter=1).x
    got = read_image_file(tmp_path / "out" / "a.png").pixels
    assert (got - want.clamp(0, 1)).abs().max() <= HALF_STEP


def test_implicit_prior_sampler_inpainting_needs_no_noise(tmp_path):
    (tmp_path / "in").mkdir()
    write_image_file(tmp_path / "in" / "g.png", _image(1, 16, 16, 8))
    mask = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(9)) > 0.5).float()
    write_image_file(tmp_path / "mask.png", mask)
    p = {"seed": 3, "realisations": 2, "average": True}
    config = _config(task="inpainting", mask=tmp_path / "mask.png", method="implicit-prior",
                     params=p, max_iter=3)  # fmt: skip
    report = restore(tmp_path / "in", tmp_path / "out", config)
    assert report.done == 1, report.failed
    y = read_image_file(tmp_path / "in" / "g.png").pixels * mask
    want = pnpfast.solvers.solve(
        y, Inpainting(mask.bool()), GaussianSmoothing(), "implicit-prior", max_iter=3, **p
    ).mean
    got = read_image_file(tmp_path / "out" / "g.png").pixels
    assert (got - want.clamp(0, 1)).abs().max() <= HALF_STEP


def test_output_format_without_alpha_fails_that_image_with_the_reason(tmp_path):
    (tmp_path / "in").mkdir()
    write_image_file(
        tmp_path / "in" / "a.png", _image(3, 16, 16, 0), alpha=torch.ones(1, 1, 16, 16)
    )
    write_image_file(tmp_path / "in" / "b.png", _image(3, 16, 16, 1))
    config = _config(task="denoise", noise=5.0, extension="jpg")
    report = restore(tmp_path / "in", tmp_path / "out", config)
    assert report.done == 1 and (tmp_path / "out" / "b.jpg").is_file()
    assert [f["key"] for f in report.failed] == ["a.png"] and "alpha" in report.failed[0]["reason"]


def test_an_edited_kernel_file_is_another_run(tree):
    root, _ = tree
    config = _config(operator=f"blur:{root / 'k3.npy'}", noise=5.0)
    assert restore([root / "in"], root / "out", config).done == 12
    np.save(root / "k3.npy", np.full((3, 3), 1 / 9, np.float32))
    with pytest.raises(SettingsMismatchError, match="operator_sha256"):
        restore([root / "in"], root / "out", config)


def test_manifest_alone_with_per_image_method_parameters_and_sr_factors(tmp_path):
    """inputs None: the manifest's rows are the work list; each image its own lam and factor."""
    (tmp_path / "in").mkdir()
    rows = ["path,factor,noise,params.lam"]
    for i, (factor, lam) in enumerate([(2, 0.1), (2, 0.3), (3, 0.1), (2, 0.1)]):
        write_image_file(tmp_path / "in" / f"{i}.png", _image(3, 6, 6, i))
        rows.append(f"in/{i}.png,{factor},{2 + i},{lam}")
    (tmp_path / "jobs.csv").write_text("\n".join(rows) + "\n")
    calls = []
    report = restore(
        None,
        tmp_path / "out",
        _config(task="sr"),
        manifest=tmp_path / "jobs.csv",
        progress=lambda done, total, t: calls.append(done),
    )
    assert report.done == 4 and calls == [2, 3, 4]  # {0, 3} share factor 2 and lam 0.1
    for i, (factor, lam) in enumerate([(2, 0.1), (2, 0.3), (3, 0.1), (2, 0.1)]):
        got = read_image_file(tmp_path / "out" / "in" / f"{i}.png").pixels
        want = pnpfast.solvers.solve(
            read_image_file(tmp_path / "in" / f"{i}.png").pixels,
            SuperResolution.bicubic(factor),
            GaussianSmoothing(),
            sigma=(2 + i) / 255,
            max_iter=2,
            lam=lam,
        ).x
        assert got.shape == (1, 3, 6 * factor, 6 * factor)
        assert (got - want.clamp(0, 1)).abs().max() <= HALF_STEP, i


_KILLED_SCRIPT = """
import sys, time
from pathlib import Path
from pnpfast.denoisers import GaussianSmoothing
from pnpfast.runner.run import RunConfig, restore

class Slow(GaussianSmoothing):
    def forward(self, x, sigma):
        time.sleep(0.02)
        return super().forward(x, sigma)

root = Path(sys.argv[1])
marker = root / "started"
config = RunConfig("deblur", denoiser=Slow(), max_iter=2, batch_size=2)
report = restore([root / "in"], root / "out", config, manifest=root / "jobs.csv",
                 progress=lambda *a: marker.touch())
print(report.done, report.skipped)
"""


def test_sigkill_mid_run_then_rerun_loses_nothing_and_duplicates_nothing(tree):
    import subprocess
    import sys
    import time

    from pnpfast.runner.ledger import Ledger

    root, names = tree
    script = root / "run.py"
    script.write_text(_KILLED_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (root / "started").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.01)
    time.sleep(0.05)  # into a later batch: its solve, write or ledger line
    proc.kill()
    proc.wait()
    ledger = root / "out" / ".pnpfast-ledger.rank0.jsonl"
    first = set(_ledger_keys(ledger))
    assert 0 < len(first) < 12, "the kill did not land mid-run"
    out = subprocess.run(
        [sys.executable, str(script), str(root)], capture_output=True, text=True, check=True
    )
    done, skipped = map(int, out.stdout.split())
    assert skipped == len(first) and done + skipped == 12
    merged = merge([ledger])
    assert merged["done"] == 12 and merged["duplicates"] == []
    # every recorded output is whole: its sha256 matches the ledger line
    header = read_ledger(ledger)[0]
    assert Ledger(ledger, header["settings"], verify=True).done == set(names)


def test_an_empty_mask_fails_its_image_not_the_batch(tmp_path):
    (tmp_path / "in").mkdir()
    rows = ["path,mask"]
    for i in range(2):
        write_image_file(tmp_path / "in" / f"{i}.png", _image(1, 16, 16, i))
        write_image_file(tmp_path / f"m{i}.png", torch.full((1, 1, 16, 16), float(i)))
        rows.append(f"in/{i}.png,m{i}.png")
    (tmp_path / "jobs.csv").write_text("\n".join(rows) + "\n")
    config = _config(task="inpainting", noise=5.0)
    report = restore(None, tmp_path / "out", config, manifest=tmp_path / "jobs.csv")
    assert report.done == 1 and [f["key"] for f in report.failed] == ["in/0.png"]
    assert "measures no pixel" in report.failed[0]["reason"]


def test_gradient_step_method_gets_the_shipped_gradient_step_denoiser(tmp_path):
    from pnpfast.denoisers import load

    (tmp_path / "in").mkdir()
    write_image_file(tmp_path / "in" / "a.png", _image(3, 16, 16, 11))
    config = RunConfig("denoise", noise=15.0, method="gs-pnp", max_iter=1)
    report = restore(tmp_path / "in", tmp_path / "out", config)
    assert report.done == 1, report.failed
    assert report.seconds["denoiser"] == 0.0  # its potential is called: the object is not wrapped
    y = read_image_file(tmp_path / "in" / "a.png").pixels
    want = pnpfast.solvers.solve(
        y, Identity(), load("gradient-step"), "gs-pnp", sigma=15 / 255, max_iter=1
    ).x
    got = read_image_file(tmp_path / "out" / "a.png").pixels
    assert (got - want.clamp(0, 1)).abs().max() <= HALF_STEP

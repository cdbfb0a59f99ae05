"""``pnpfast restore`` under torchrun: 2 CPU ranks (gloo) restore a dozen tiny images of three
sizes exactly once, rank 0 merges the ledgers into one report, a rerun skips everything; and the
helpers of pnpfast.runner.distributed on their own.

The oracle of the outputs is a single-process ``pnpfast restore`` of the same folder (the runner's
own equivalence with ``pnpfast.solve`` is tested in tests/runner/test_run.py). torchrun's
``--standalone`` rendezvous picks a free port itself, so parallel test runs do not collide.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pnpfast.cli import main
from pnpfast.io import read_image
from pnpfast.runner import distributed
from pnpfast.runner.run import RunConfig, restore

ARGS = ["--task", "denoise", "--noise", "10", "--denoiser", "gaussian", "--batch", "2"]
SIZES = [(8, 10), (12, 12), (10, 7)]


def _folder(root: Path, n: int = 12) -> list[str]:
    """``n`` random RGB PNGs cycling through three sizes; returns their names."""
    rng = np.random.default_rng(21)
    root.mkdir(parents=True)
    names = []
    for i in range(n):
        h, w = SIZES[i % 3]
        name = f"im{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
        names.append(name)
    return names


# run by torchrun in place of ``-m pnpfast``: rank 1 kills itself (SIGKILL) right after writing
# its second output, before the ledger line of that image
DYING = """
import os, signal, sys
import pnpfast.runner.run as run
from pnpfast.cli import main
if os.environ["RANK"] == "1":
    original, written = run._write, []
    def dying(*args):
        original(*args)
        written.append(1)
        if len(written) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    run._write = dying
sys.exit(main(sys.argv[1:]))
"""


def _torchrun(src: Path, out: Path, script: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "pnpfast"] if script is None else [str(script)]
    cmd += ["restore", str(src), "-o", str(out), *ARGS, "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def _done_keys(ledger: Path) -> list[str]:
    lines = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    return [r["key"] for r in lines if r.get("type") == "done"]


def test_two_ranks_restore_each_image_once_and_rank0_merges(tmp_path):
    src, out, single = tmp_path / "in", tmp_path / "out", tmp_path / "single"
    names = _folder(src)
    result = _torchrun(src, out)
    assert result.returncode == 0, result.stdout + result.stderr
    # each rank restored its share, into its own ledger, and no image twice
    keys = [_done_keys(out / f".pnpfast-ledger.rank{r}.jsonl") for r in (0, 1)]
    assert keys[0] and keys[1] and not set(keys[0]) & set(keys[1])
    assert len(keys[0] + keys[1]) == 12
    assert sorted(p.name for p in out.glob("*.png")) == names
    report = json.loads((out / "restore-report.json").read_text())
    assert (report["world_size"], report["total"], report["done"], report["skipped"]) == (
        2,
        12,
        12,
        0,
    )
    assert report["failed"] == [] and report["images_per_s"] > 0
    assert report["ledger"]["done"] == 12 and report["ledger"]["duplicates"] == []
    assert sorted(r["rank"] for r in report["ranks"]) == [0, 1]
    assert "2 ranks: 12 images: 12 done, 0 skipped" in result.stdout
    for r in (0, 1):
        assert json.loads((out / f"restore-report.rank{r}.json").read_text())["rank"] == r
    # the same images restored by one process
    assert main(["restore", str(src), "-o", str(single), *ARGS, "--no-progress"]) == 0
    for name in names:
        got, want = read_image(out / name), read_image(single / name)
        assert got.shape == want.shape and torch.equal(got, want), name
    # a rerun of the same command skips all twelve
    again = _torchrun(src, out)
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads((out / "restore-report.json").read_text())
    assert (report["done"], report["skipped"], report["ledger"]["done"]) == (0, 12, 12)
    assert report["ledger"]["duplicates"] == []


def test_backend_follows_the_device():
    assert distributed.backend_for("cuda:1") == "nccl"
    assert distributed.backend_for("cuda") == "nccl"
    assert distributed.backend_for("cpu") == "gloo"


def test_no_group_without_torchrun():
    assert distributed.init(1, "cpu") is False
    # RANK and WORLD_SIZE set by hand (pytest is not started by torchrun): no rendezvous
    assert distributed.init(2, "cpu") is False
    assert distributed.active() is False
    distributed.finalize()  # nothing to destroy: no error


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"world_size": 0}, ValueError, "world_size must be an int >= 1"),
        ({"world_size": 2.0}, TypeError, "world_size must be an int >= 1"),
        ({"device": "gpu"}, ValueError, "device must name a device"),
        ({"device": 0}, TypeError, "device must be a str or torch.device"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        distributed.init(**{"world_size": 2, "device": "cpu", **kwargs})


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), float("nan")])
def test_bad_timeout_value_is_refused(timeout):
    with pytest.raises(ValueError, match="timeout_s must be a positive, finite number"):
        distributed.init(2, "cpu", timeout_s=timeout)


@pytest.mark.parametrize("timeout", ["60", True, None])
def test_bad_timeout_type_is_refused(timeout):
    with pytest.raises(TypeError, match="timeout_s must be a number of seconds"):
        distributed.init(2, "cpu", timeout_s=timeout)


def test_merge_reports_of_two_shards_in_one_process(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder(src, n=6)
    config = RunConfig(task="denoise", noise=10.0, denoiser="gaussian", batch_size=2)
    reports = [restore([src], out, config, rank=r, world_size=2).as_dict() for r in (0, 1)]
    merged = distributed.merge_reports(reports, out, 2)
    assert (merged["total"], merged["done"], merged["skipped"]) == (6, 6, 0)
    assert merged["ledger"]["done"] == 6 and merged["ledger"]["duplicates"] == []
    assert [x["done"] for x in merged["ledger"]["ledgers"]] == [r["done"] for r in reports]
    wall = max(r["seconds"]["total"] for r in reports)
    assert merged["images_per_s"] == pytest.approx(6 / wall)
    # no process group: this rank's report merged alone
    alone = distributed.gather_report(restore([src], out, config, rank=0, world_size=2), out)
    assert (alone["done"], alone["skipped"], alone["total"]) == (0, 3, 3)


def test_a_rank_killed_stops_the_run_and_a_rerun_finishes_it(tmp_path):
    src, out, single = tmp_path / "in", tmp_path / "out", tmp_path / "single"
    names = _folder(src)
    script = tmp_path / "dying.py"
    script.write_text(DYING)
    killed = _torchrun(src, out, script)  # returns (torchrun stops rank 0): no hang
    assert killed.returncode != 0
    assert len(_done_keys(out / ".pnpfast-ledger.rank1.jsonl")) == 1  # the second was in flight
    assert not (out / "restore-report.json").exists()
    rerun = _torchrun(src, out)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    report = json.loads((out / "restore-report.json").read_text())
    assert (report["ledger"]["done"], report["ledger"]["duplicates"]) == (12, [])
    assert report["done"] + report["skipped"] == 12 and report["done"] >= 5
    assert main(["restore", str(src), "-o", str(single), *ARGS, "--no-progress"]) == 0
    for name in names:
        assert torch.equal(read_image(out / name), read_image(single / name)), name


def test_a_rank_that_never_comes_gives_up_after_the_timeout(tmp_path):
    """Rank 0 of 2 started as torchrun would start it, with no rank 1: it exits after
    --dist-timeout with one line saying so, instead of waiting forever."""
    src, out = tmp_path / "in", tmp_path / "out"
    _folder(src, n=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TORCHELASTIC_RUN_ID": "test", "MASTER_ADDR": "127.0.0.1"}
    env.update(MASTER_PORT=str(port), RANK="0", WORLD_SIZE="2", LOCAL_RANK="0")
    cmd = [sys.executable, "-m", "pnpfast", "restore", str(src), "-o", str(out), *ARGS]
    start = time.perf_counter()
    run = subprocess.run(
        [*cmd, "--no-progress", "--dist-timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert time.perf_counter() - start < 30
    assert run.returncode == 1
    assert "rank 0 could not join the other ranks" in run.stderr
    assert "--dist-timeout 2 s" in run.stderr and "Traceback" not in run.stderr
    assert not list(out.glob("*.png"))

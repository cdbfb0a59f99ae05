"""Kill and rerun (issue 21): ``pnpfast restore`` SIGKILLed several times in a row, at different
points of a batch, then rerun to completion, loses no output and restores no image twice.

What the design promises (pnpfast/runner/ledger.py, pnpfast/_atomic.py): an output is written
atomically (a hidden ``.<name>.<12 hex>.tmp`` renamed over it) *before* its ledger line, and a
ledger line is one fsync-ed append. So after any kill:

* every complete "done" line names an output that is whole (its sha256 is the recorded one);
* a key has at most one complete "done" line (a rerun redoes only keys without one);
* an output written but not yet recorded (the batch being written while the next one is
  solved) is simply redone by the rerun;
* a torn last line is ignored, and the next record starts on a line of its own;

and after the final rerun every image has exactly one "done" line, its output is byte for byte
the output of an uninterrupted run into another folder, no temporary file is left, and the
report's counts add up (done + skipped == total, skipped == what the killed runs finished).

The kills land at chosen points, injected by a small wrapper script around ``pnpfast.cli.main``
(``KILLER`` below): inside a batch after its solve, right after an output is written and before
its ledger line, halfway through a ledger line (a record, or a new ledger's header), inside an
atomic write (temporary file written, not yet renamed: an output's, or the report's); and at
seeded-random delays after a new ledger line appears, sent from the test. Under torchrun one
rank kills itself and torchrun stops the other wherever it is.
"""

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pnpfast.cli import main
from pnpfast.runner import worklist

ARGS = [
    "--task",
    "denoise",
    "--noise",
    "10",
    "--denoiser",
    "gaussian",
    "--max-iter",
    "2",
    "--batch",
    "2",
    "--no-progress",
]
SIZES = [(16, 16), (24, 20)]
N = 12
LEDGER = ".pnpfast-ledger.rank{rank}.jsonl"
# pnpfast._atomic's temporary files: ".<name>.<12 hex>.tmp" beside the output
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")

# ``python KILLER restore ...`` runs pnpfast's CLI; PNPFAST_TEST_KILL="RANK:PHASE:N" makes the
# process of that rank SIGKILL itself at the N-th occurrence of PHASE:
#   solve    a batch has been solved, none of its outputs written
#   written  an output has been written, its ledger line not yet
#   torn     half of a "done" ledger line has been appended (the rest never is)
#   header   half of the ledger's header line has been written (a new ledger)
#   temp     an output's temporary file is complete, not yet renamed over the output
#   report   the report's temporary file is complete, not yet renamed (every image is done)
# PNPFAST_TEST_SLOW=S sleeps S seconds before each batch's solve and between each output and its
# ledger line: room for a kill from outside to land in either.
KILLER = """
import os, signal, sys, time
import pnpfast.runner.run as run
from pnpfast.cli import main
from pnpfast.runner.ledger import Ledger

slow = float(os.environ.get("PNPFAST_TEST_SLOW", "0"))
rank, phase, nth = (os.environ.get("PNPFAST_TEST_KILL") or "-1:none:0").split(":")
if rank != os.environ.get("RANK", "0"):
    phase = "none"
nth, seen = int(nth), []

def count(name):
    if phase == name:
        seen.append(1)
        if len(seen) == nth:
            os.kill(os.getpid(), signal.SIGKILL)

# one writer thread, as on a 2-core machine: the phases below then count one serial order
run._io_threads = lambda device: 1

solve_batch = run._solve_batch
def slow_solve(*args, **kwargs):
    time.sleep(slow)
    out = solve_batch(*args, **kwargs)
    count("solve")
    return out
run._solve_batch = slow_solve

write = run._write
def written(*args):
    write(*args)
    count("written")
    time.sleep(slow)
run._write = written

ledger_write = Ledger._write
def torn(self, data):
    kind = "torn" if b'"type":"done"' in data else "header" if b'"type":"header"' in data else ""
    if phase == kind and len(seen) + 1 == nth:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        os.write(fd, data[: len(data) // 2])
        os.fsync(fd)
        os.kill(os.getpid(), signal.SIGKILL)
    ledger_write(self, data)
    count(kind)
Ledger._write = torn

replace = os.replace
def renamed(src, dst, **kwargs):
    if str(src).endswith(".tmp"):
        count("temp" if str(dst).endswith(".png") else "report")
    return replace(src, dst, **kwargs)
os.replace = renamed

sys.exit(main(sys.argv[1:]))
"""


def _folder(root: Path) -> list[str]:
    """N random RGB PNGs of two sizes, a third of them in sub/; returns their keys."""
    rng = np.random.default_rng(2121)
    (root / "sub").mkdir(parents=True)
    keys = []
    for i in range(N):
        h, w = SIZES[(i // 2) % 2]  # both sizes in both shards (round robin over sorted keys)
        key = f"{'sub/' if i % 3 == 0 else ''}im{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / key)
        keys.append(key)
    return sorted(keys)


def _env(kill: str = "", slow: float = 0.0) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PNPFAST_TEST_KILL=kill, PNPFAST_TEST_SLOW=str(slow))
    return env


def _command(tmp: Path, src: Path, out: Path, ranks: int) -> list[str]:
    script = tmp / "killer.py"
    if not script.exists():
        script.write_text(KILLER)
    cmd = [sys.executable]
    if ranks > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    return [*cmd, str(script), "restore", str(src), "-o", str(out), *ARGS]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class State:
    """The ledgers of ``out`` as the test reads them itself (complete JSON lines only)."""

    def __init__(self, out: Path, ranks: int):
        self.done: dict[str, list[dict]] = {}  # key -> its complete "done" lines, all ledgers
        self.headers = 0
        self.torn = 0
        for r in range(ranks):
            path = out / LEDGER.format(rank=r)
            if not path.exists():
                continue
            for line in path.read_bytes().split(b"\n"):
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    self.torn += 1
                    continue
                if rec["type"] == "header":
                    self.headers += 1
                elif rec["type"] == "done":
                    self.done.setdefault(rec["key"], []).append({**rec, "rank": r})

    def check(self, out: Path, before: set[str]) -> None:
        """The promises that hold after any kill (see the module docstring)."""
        twice = {k: len(v) for k, v in self.done.items() if len(v) > 1}
        assert not twice, f"keys with more than one done line: {twice}"
        lost = before - set(self.done)
        assert not lost, f"keys done before this run are no longer done: {sorted(lost)}"
        for key, (rec,) in self.done.items():
            assert _sha256(out / rec["output"]) == rec["sha256"], f"{key}: not whole"

    def orphans(self, out: Path, keys: list[str]) -> set[str]:
        """Outputs on disk without a done line: written by the batch in flight."""
        return {k for k in keys if (out / k).exists() and k not in self.done}


def _temporaries(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if TEMPORARY.match(p.name))


def _run(cmd, env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def _reference(src: Path, ref: Path) -> None:
    assert main(["restore", str(src), "-o", str(ref), *ARGS]) == 0


def _final_checks(out: Path, ref: Path, keys: list[str], ranks: int, before: set[str]) -> dict:
    state = State(out, ranks)
    state.check(out, before)
    assert sorted(state.done) == keys, f"not done: {sorted(set(keys) - set(state.done))}"
    for key in keys:
        assert (out / key).read_bytes() == (ref / key).read_bytes(), key
    assert _temporaries(out) == [], "temporary files left behind"
    report = json.loads((out / "restore-report.json").read_text())
    assert report["total"] == N and report["failed"] == []
    assert report["skipped"] == len(before) and report["done"] == N - len(before)
    return report


def test_sigkill_at_chosen_and_random_points_then_rerun_loses_and_duplicates_nothing(tmp_path):
    src, out, ref = tmp_path / "in", tmp_path / "out", tmp_path / "ref"
    keys = _folder(src)
    _reference(src, ref)
    cmd = _command(tmp_path, src, out, 1)
    before: set[str] = set()

    def killed(kill: str) -> State:
        run = _run(cmd, _env(kill))
        assert run.returncode == -signal.SIGKILL, f"{kill}: not killed\n{run.stderr}"
        state = State(out, 1)
        state.check(out, before)
        return state

    # a new ledger's header torn in half: no run is recorded, nothing done
    state = killed("0:header:1")
    assert (state.headers, state.torn, state.done) == (0, 1, {})
    assert state.orphans(out, keys) == set()
    # the third batch solved: the first batch's outputs were awaited after the second solve,
    # the second batch's are written by a thread meanwhile (a kill loses at most the batch
    # being solved and the one being written)
    state = killed("0:solve:3")
    assert 2 <= len(state.done) <= 4 and len(state.orphans(out, keys)) <= 1
    before = set(state.done)
    # an output written, its line not: it is on disk, unrecorded (with an orphan of the kill
    # before, if this run has not rewritten it yet)
    orphans_before = state.orphans(out, keys)
    state = killed("0:written:1")
    assert set(state.done) == before and 1 <= len(state.orphans(out, keys)) <= 2
    assert len(state.orphans(out, keys) - orphans_before) <= 1
    orphan = state.orphans(out, keys)
    # the second line of a batch torn in half: the first line counts, the torn one does not
    state = killed("0:torn:2")
    assert state.torn == 2 and len(state.done) == len(before) + 1
    assert orphan <= set(state.done) | state.orphans(out, keys)
    before = set(state.done)
    # from outside, at seeded-random delays after a new ledger line, twice
    rng = random.Random(21)
    for _ in range(2):
        proc = subprocess.Popen(
            cmd, env=_env(slow=0.03), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while len(State(out, 1).done) == len(before):
                assert proc.poll() is None, "the run ended before a new ledger line"
                assert time.monotonic() < deadline, "no new ledger line"
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.09))  # one batch: 3 x 0.03 s
        finally:
            proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the run ended before the kill"
        state = State(out, 1)
        state.check(out, before)
        assert len(before) < len(state.done) < N, "the kill did not land mid-run"
        # at most the batch being written (2 images) is on disk without its line
        assert len(state.orphans(out, keys)) <= 2, state.orphans(out, keys)
        before = set(state.done)

    # the rerun finishes: one header (a plain rerun never starts a new run), the torn lines
    run = _run(cmd, _env())
    assert run.returncode == 0, run.stdout + run.stderr
    _final_checks(out, ref, keys, 1, before)
    state = State(out, 1)
    assert (state.headers, state.torn) == (1, 2)


def test_sigkill_inside_an_atomic_write_leaves_no_temporary_file_after_the_rerun(tmp_path):
    """A kill between a temporary file and its rename leaves the hidden ``.<name>.<hex>.tmp``:
    inside an output's write, the rerun that redoes that image removes it; inside the report's
    write (every image done), the rerun that finds nothing to do removes it."""
    src, out, ref = tmp_path / "in", tmp_path / "out", tmp_path / "ref"
    keys = _folder(src)
    _reference(src, ref)
    cmd = _command(tmp_path, src, out, 1)
    run = _run(cmd, _env("0:temp:3"))
    assert run.returncode == -signal.SIGKILL, run.stderr
    state = State(out, 1)
    state.check(out, set())
    assert len(state.done) == 2 and state.orphans(out, keys) == set()
    assert len(_temporaries(out)) == 1  # the kill landed inside the write
    run = _run(cmd, _env("0:report:1"))
    assert run.returncode == -signal.SIGKILL, run.stderr
    state = State(out, 1)
    state.check(out, set())
    assert sorted(state.done) == keys and not (out / "restore-report.json").exists()
    (left,) = _temporaries(out)  # the image's is gone, the report's is left
    assert left.startswith(".restore-report.json."), left
    run = _run(cmd, _env())
    assert run.returncode == 0, run.stdout + run.stderr
    _final_checks(out, ref, keys, 1, set(keys))


def test_two_ranks_killed_at_several_points_then_a_rerun_finishes_exactly_once(tmp_path):
    """torchrun, 2 gloo ranks: three runs in a row, each one rank SIGKILLs itself at another
    point (between an output and its line, halfway through a line, inside an atomic write; the
    rank with the most left to do, so that the kill lands), and torchrun stops the other rank
    wherever it is (SIGTERM; both ranks sleep in each batch so that it is still mid-run); a
    fourth run finishes. Each image ends up done by exactly one rank, once."""
    src, out, ref = tmp_path / "in", tmp_path / "out", tmp_path / "ref"
    keys = _folder(src)
    _reference(src, ref)
    cmd = _command(tmp_path, src, out, 2)
    items = worklist.collect([src], out)
    shards = [{it.key for it in worklist.shard(items, r, 2)} for r in (0, 1)]
    before: set[str] = set()
    for phase in ("written:1", "torn:2", "temp:2"):
        left = [len(shards[r] - before) for r in (0, 1)]
        victim = int(left[1] > left[0])
        run = _run(cmd, _env(f"{victim}:{phase}", slow=0.05))
        assert run.returncode != 0, f"{victim}:{phase}: not killed\n{run.stdout}{run.stderr}"
        # torchrun's summary: the victim is the root cause, killed by signal 9
        killed = rf"rank\s*: {victim} \(local_rank: {victim}\)\s+exitcode\s*: -9"
        assert re.search(killed, run.stderr), f"rank {victim} was not SIGKILLed: {run.stderr}"
        if phase.startswith("temp"):  # the kill landed inside an output's write
            assert any(".png." in t for t in _temporaries(out)), _temporaries(out)
        assert not (out / "restore-report.json").exists()
        state = State(out, 2)
        state.check(out, before)
        for key, (rec,) in state.done.items():  # each image in its own rank's ledger
            assert key in shards[rec["rank"]], key
        assert len(state.done) < N
        before = set(state.done)
    run = _run(cmd, _env())
    assert run.returncode == 0, run.stdout + run.stderr
    report = _final_checks(out, ref, keys, 2, before)
    assert report["world_size"] == 2
    assert report["ledger"]["done"] == N and report["ledger"]["duplicates"] == []
    assert report["ledger"]["skipped_lines"] == State(out, 2).torn >= 1

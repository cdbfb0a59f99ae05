"""Fuzz table (issue 17) of pnpfast.runner.distributed, the torchrun side of ``pnpfast restore``:
backend_for, init's argument checks (no process group is ever created here: pytest is not
started by torchrun), merge_reports and gather_report (without a process group).

The ledgers that merge_reports reads are JSONL files written by hand in the rows, and the merged
counts are worked out in the rows from the reports' numbers (sums, done / slowest wall time).
"""

import json
import os
from pathlib import Path

import torch
from fuzz_cases import Bad, Good, check, params, scratch_folder

from pnpfast.runner.distributed import backend_for, gather_report, init, merge_reports
from pnpfast.runner.run import RunReport

BACKEND = "pnpfast.runner.distributed.backend_for"
INIT = "pnpfast.runner.distributed.init"
MERGE = "pnpfast.runner.distributed.merge_reports"
GATHER = "pnpfast.runner.distributed.gather_report"


def folder() -> Path:
    return scratch_folder("runner-distributed")


def codes(text: str) -> list[int]:
    return [ord(c) for c in text]


def report(done=0, skipped=0, total=0, seconds=1.0, failed=(), rank=0, world_size=1) -> dict:
    return RunReport(
        done=done,
        skipped=skipped,
        total=total,
        failed=[{"key": k, "reason": "broken"} for k in failed],
        seconds={"total": seconds},
        rank=rank,
        world_size=world_size,
    ).as_dict()


def ledgers(*keys_per_rank: list[str]) -> Path:
    """A folder with one hand-written ledger per rank: a header, then one done line per key."""
    root = folder()
    for rank, keys in enumerate(keys_per_rank):
        lines = [{"type": "header", "version": 1, "fingerprint": "f", "settings": {"task": "x"}}]
        for k in keys:
            lines.append({"type": "done", "key": k, "output": k, "sha256": "0", "bytes": 1})
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (root / f".pnpfast-ledger.rank{rank}.jsonl").write_text(text)
    return root


def _a_file() -> Path:
    path = folder() / "report.json"
    path.write_text("{}")
    return path


def _merged_numbers(merged: dict) -> list[float]:
    return [
        merged["world_size"],
        merged["total"],
        merged["done"],
        merged["skipped"],
        merged["images_per_s"],
        merged["seconds"]["wall"],
        float(merged["interrupted"]),
    ]


def _two_ranks_one_duplicate() -> list[float]:
    out = ledgers(["a.png", "c.png"], ["b.png", "c.png"])
    merged = merge_reports(
        [report(2, 1, 3, 4.0, rank=0), report(1, 0, 3, 2.0, failed=["d.png"], rank=1)], out, 2
    )
    led = merged["ledger"]
    return [
        *_merged_numbers(merged),
        *codes("".join(f["key"] for f in merged["failed"])),
        led["done"],
        *codes("".join(d["key"] for d in led["duplicates"])),
    ]


def _no_ledgers() -> list[float]:
    merged = merge_reports([report(0, 0, 0, 0.0)], folder(), 1)
    return [*_merged_numbers(merged), float(merged["ledger"] is None)]


def _gathered_alone() -> list[float]:
    out = ledgers(["a.png", "b.png"])
    rep = RunReport(done=2, skipped=1, total=3, seconds={"total": 0.5})
    merged = gather_report(rep, out)
    return [*_merged_numbers(merged), merged["ledger"]["done"]]


def _under_torchrun(device: str) -> bool:
    """init as a torchrun worker calls it (TORCHELASTIC_RUN_ID set), in a launch that set no
    MASTER_ADDR nor MASTER_PORT (torch refuses at once: no rendezvous is tried)."""
    names = ("TORCHELASTIC_RUN_ID", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    old = {k: os.environ.pop(k) for k in names if k in os.environ}
    os.environ.update(TORCHELASTIC_RUN_ID="fuzz", RANK="0", WORLD_SIZE="2")
    try:
        return init(2, device, timeout_s=5)
    finally:
        for k in names:
            os.environ.pop(k, None)
        os.environ.update(old)


def _reports(n: int) -> list[dict]:
    return [report(rank=r, world_size=n) for r in range(n)]


CASES = [
    # -- backend_for ----------------------------------------------------------------------------
    Bad(BACKEND, "type", "None", lambda: backend_for(None), TypeError, "device must be a str"),
    Bad(BACKEND, "type", "bytes", lambda: backend_for(b"cpu"), TypeError, "not bytes"),
    Bad(BACKEND, "name", "gpu", lambda: backend_for("gpu"), ValueError, "device must name a"),
    Bad(BACKEND, "size", "empty", lambda: backend_for(""), ValueError, "device must name a"),
    Bad(BACKEND, "value", "cuda:-1", lambda: backend_for("cuda:-1"), ValueError, "not 'cuda:-1'"),
    # naming a CUDA device touches no GPU: these run on this CPU-only machine
    Good(
        BACKEND,
        "value",
        "cuda:3 is nccl",
        lambda: codes(backend_for("cuda:3")),
        lambda: codes("nccl"),
    ),
    Good(
        BACKEND,
        "type",
        "torch.device cuda 1 is nccl",
        lambda: codes(backend_for(torch.device("cuda", 1))),
        lambda: codes("nccl"),
    ),
    Good(
        BACKEND,
        "meta",
        "meta device is gloo",
        lambda: codes(backend_for(torch.device("meta"))),
        lambda: codes("gloo"),
    ),
    Good(BACKEND, "name", "cpu is gloo", lambda: codes(backend_for("cpu")), lambda: codes("gloo")),
    # -- init -----------------------------------------------------------------------------------
    Bad(INIT, "type", "world_size str", lambda: init("2", "cpu"), TypeError, "world_size must"),
    Bad(INIT, "type", "world_size bool", lambda: init(True, "cpu"), TypeError, "world_size must"),
    Bad(INIT, "type", "world_size 2.0", lambda: init(2.0, "cpu"), TypeError, "world_size must"),
    Bad(INIT, "value", "world_size 0", lambda: init(0, "cpu"), ValueError, r"world_size .* >= 1"),
    Bad(INIT, "type", "device int", lambda: init(2, 0), TypeError, "device must be a str"),
    Bad(INIT, "name", "device gpu", lambda: init(2, "gpu"), ValueError, "device must name a"),
    Bad(
        INIT,
        "type",
        "timeout str",
        lambda: init(2, "cpu", timeout_s="60"),
        TypeError,
        "timeout_s must be a number of seconds, not str",
    ),
    Bad(
        INIT,
        "nan-inf",
        "timeout nan",
        lambda: init(2, "cpu", timeout_s=float("nan")),
        ValueError,
        "timeout_s must be a positive, finite number",
    ),
    Bad(
        INIT,
        "nan-inf",
        "timeout inf",
        lambda: init(2, "cpu", timeout_s=float("inf")),
        ValueError,
        "timeout_s must be a positive, finite number",
    ),
    Bad(
        INIT,
        "value",
        "timeout 0",
        lambda: init(2, "cpu", timeout_s=0),
        ValueError,
        "timeout_s must be a positive",
    ),
    # refused before any rendezvous, on a machine with GPUs or without (no 100th GPU anywhere)
    Bad(
        INIT,
        "value",
        "torchrun rank on cuda:99",
        lambda: _under_torchrun("cuda:99"),
        ValueError,
        r"device cuda:99 was asked for but (CUDA is not available|there are \d+ CUDA devices)",
    ),
    # a broken launch is a RuntimeError (could not join), never the ValueError of a bad argument
    Bad(
        INIT,
        "value",
        "torchrun rank without MASTER_ADDR",
        lambda: _under_torchrun("cpu"),
        RuntimeError,
        "cannot join the process group: .*MASTER_ADDR expected, but not set",
    ),
    # nothing to join: one process, or RANK and WORLD_SIZE without torchrun
    Good(INIT, "value", "world_size 1", lambda: init(1, "cpu"), lambda: False),
    Good(INIT, "value", "not launched by torchrun", lambda: init(2, "cpu", 1.5), lambda: False),
    Good(
        INIT, "value", "world_size 1 on cuda touches no GPU", lambda: init(1, "cuda:0"), lambda: 0
    ),
    # -- merge_reports --------------------------------------------------------------------------
    Bad(
        MERGE,
        "type",
        "one dict, not a list",
        lambda: merge_reports(report(), folder(), 1),
        TypeError,
        "reports must be a list of the ranks' RunReport.as_dict",
    ),
    Bad(
        MERGE,
        "type",
        "RunReport objects",
        lambda: merge_reports([RunReport()], folder(), 1),
        TypeError,
        r"reports\[0\] must be a dict \(RunReport.as_dict\(\)\), not RunReport",
    ),
    Bad(
        MERGE,
        "value",
        "a report without its fields",
        lambda: merge_reports([report(), {"done": 1}], folder(), 2),
        ValueError,
        r"reports\[1\] lacks total, skipped, failed, interrupted, seconds",
    ),
    Bad(
        MERGE,
        "mismatch",
        "3 reports for 2 ranks",
        lambda: merge_reports(_reports(3), folder(), 2),
        ValueError,
        "reports must hold one report per rank: 3 for world_size 2",
    ),
    Bad(
        MERGE,
        "size",
        "no reports",
        lambda: merge_reports([], folder(), 1),
        ValueError,
        "one report per rank: 0 for world_size 1",
    ),
    Bad(
        MERGE,
        "type",
        "world_size str",
        lambda: merge_reports(_reports(2), folder(), "2"),
        TypeError,
        "world_size must be an int >= 1, not str",
    ),
    Bad(
        MERGE,
        "value",
        "world_size 0",
        lambda: merge_reports([], folder(), 0),
        ValueError,
        "world_size must be an int >= 1, not 0",
    ),
    Bad(
        MERGE,
        "type",
        "out_dir int",
        lambda: merge_reports(_reports(1), 5, 1),
        TypeError,
        "out_dir must be the run's output folder",
    ),
    Bad(
        MERGE,
        "file",
        "out_dir missing",
        lambda: merge_reports(_reports(1), folder() / "nowhere", 1),
        FileNotFoundError,
        "out_dir: no such folder .*nowhere",
    ),
    Bad(
        MERGE,
        "file",
        "out_dir a file",
        lambda: merge_reports(_reports(1), _a_file(), 1),
        NotADirectoryError,
        "out_dir: .*report.json is a file",
    ),
    # counts summed over ranks, images/s over the slowest rank (3 images / 4 s), the failures
    # by key, the ledgers merged: a, b, c done, c twice (rank 0 and rank 1)
    Good(
        MERGE,
        "mismatch",
        "two ranks, one key done by both",
        _two_ranks_one_duplicate,
        lambda: [2, 6, 3, 1, 0.75, 4.0, 0.0, *codes("d.png"), 3, *codes("c.png")],
    ),
    # a rank with nothing to do: 0 s of wall time gives 0 images/s, not a division by zero
    Good(
        MERGE, "size", "no work, no ledgers", _no_ledgers, lambda: [1, 0, 0, 0, 0.0, 0.0, 0.0, 1.0]
    ),
    # -- gather_report (no process group: this rank's report alone) -----------------------------
    Bad(
        GATHER,
        "type",
        "a dict",
        lambda: gather_report(report(), folder()),
        TypeError,
        "report must be a pnpfast.runner.run.RunReport .*, not dict",
    ),
    Bad(
        GATHER,
        "type",
        "out_dir None",
        lambda: gather_report(RunReport(), None),
        TypeError,
        "out_dir must be the run's output folder .*, not NoneType",
    ),
    Bad(
        GATHER,
        "file",
        "out_dir missing",
        lambda: gather_report(RunReport(), folder() / "gone"),
        FileNotFoundError,
        "out_dir: no such folder",
    ),
    Good(
        GATHER,
        "value",
        "alone: 2 done in 0.5 s",
        _gathered_alone,
        lambda: [1, 3, 2, 1, 4.0, 0.5, 0.0, 2],
    ),
]


@params(CASES)
def test_fuzz(case):
    check(case)

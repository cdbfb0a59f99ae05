"""Many processes for ``pnpfast restore``: torch.distributed is the engine, we add no other.

Under ``torchrun --nproc_per_node=N -m pnpfast restore ...`` every rank restores its share of
the work list (``worklist.shard`` inside ``run.restore``), each into its own ledger; then::

    init(world_size, device)        # NCCL on a CUDA device, gloo otherwise; env:// rendezvous
    report = run.restore(..., rank=rank, world_size=world_size)
    merged = gather_report(report, out_dir)   # barrier; rank 0 gets the merged report
    finalize()                      # destroy the process group (call it in a finally)

``torch.distributed`` reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE itself (torchrun sets
them), so pnpfast reads no environment variable here. A rank that dies does not hang the others
forever: torchrun stops the whole group when one worker fails, and under any other launcher the
barrier gives up after ``timeout_s``. A rerun of the same command then finishes what is left,
from the ledgers.
"""

import datetime
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from pnpfast import _validate
from pnpfast.runner import ledger
from pnpfast.runner.run import LEDGER_NAME, RunReport

# long enough for the slowest rank's share of a large run; the barrier waits that long at most
DEFAULT_TIMEOUT_S = 4 * 3600
# what merge_reports reads of each rank's RunReport.as_dict()
_REPORT_FIELDS = ("total", "done", "skipped", "failed", "interrupted", "seconds")


def backend_for(device: str | torch.device) -> str:
    """``"nccl"`` for a CUDA device, ``"gloo"`` for any other (the CPU)."""
    return "nccl" if _device(device).type == "cuda" else "gloo"


def _device(device) -> torch.device:
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, not {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must name a device (cpu, cuda, cuda:N), not {device!r}") from None


def _folder(out_dir) -> Path:
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(
            f"out_dir must be the run's output folder (str or Path), not {type(out_dir).__name__}"
        )
    path = Path(out_dir)
    if not path.exists():
        raise FileNotFoundError(f"out_dir: no such folder {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"out_dir: {path} is a file, not the run's output folder")
    return path


def init(world_size: int, device: str | torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Join the process group of a torchrun launch; nothing to do when ``world_size`` is 1,
    when a process group exists already, or when the process was not started by torchrun
    (``torch.distributed.is_torchelastic_launched``: RANK and WORLD_SIZE set by hand).

    Returns whether a process group was initialised here (then call ``finalize``).

    Raises:
        TypeError: ``world_size`` is not an int, ``device`` not a str or torch.device, or
            ``timeout_s`` not a number.
        ValueError: ``timeout_s`` is not a positive finite number, ``world_size`` < 1, or ``device``
            names no device; under torchrun, a CUDA device that is not there.
        RuntimeError: torch.distributed is not available in this build of torch, or joining the
            group failed (the rendezvous timed out, the launch set no MASTER_ADDR, ...): a
            ValueError always means a bad argument.
    """
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool):
        raise TypeError(f"timeout_s must be a number of seconds, not {type(timeout_s).__name__}")
    if not (0 < timeout_s < math.inf):
        raise ValueError(f"timeout_s must be a positive, finite number of seconds, not {timeout_s}")
    world_size = _validate.integer("world_size", world_size, 1)
    device = _device(device)
    if world_size == 1:
        return False
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this build of torch")
    if dist.is_initialized():  # a caller that set it up itself keeps it
        return False
    if not dist.is_torchelastic_launched():
        # RANK and WORLD_SIZE set by hand (a job array, shards run one after another): there is
        # no rendezvous to join; each rank restores its share and writes its own report
        return False
    backend = backend_for(device)
    if backend == "nccl":
        # said here: torch.cuda.set_device would fail with an AttributeError on a CPU build
        _validate.cuda_device_present(
            device, " (under torchrun, cuda is cuda:LOCAL_RANK: at most one rank per GPU)"
        )
        if device.index is not None:
            torch.cuda.set_device(device)  # NCCL's collectives run on this rank's GPU
    try:
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            timeout=datetime.timedelta(seconds=float(timeout_s)),
        )
    except ValueError as exc:  # torch's env:// checks: the launch is at fault, not an argument
        raise RuntimeError(f"cannot join the process group: {exc}") from exc
    return True


def active() -> bool:
    """Whether this process is in a torch.distributed process group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def finalize() -> None:
    """Destroy the process group, if there is one (safe to call twice, or after a failure)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def merge_reports(reports: list[dict], out_dir: str | Path, world_size: int) -> dict:
    """One report for the whole run from the ranks' reports and ledgers.

    ``reports``: every rank's ``RunReport.as_dict()``. The counts of this run (done now, skipped,
    failed with reasons, total) are sums over the ranks; ``images_per_s`` is the images done now
    over the wall time of the slowest rank; ``ledger`` is ``ledger.merge`` of the ranks' ledgers
    (everything done in this folder so far, and ``duplicates``: keys done by more than one rank,
    empty for an exactly-once run).

    Raises:
        TypeError: ``reports`` is not a list of dicts, ``out_dir`` not a path, ``world_size``
            not an int.
        ValueError: ``world_size`` < 1, not one report per rank, or a report without the
            fields of ``RunReport.as_dict()`` (the field is named).
        FileNotFoundError, NotADirectoryError: ``out_dir`` is missing or a file.
    """
    world_size = _validate.integer("world_size", world_size, 1)
    if not isinstance(reports, (list, tuple)):
        raise TypeError(
            f"reports must be a list of the ranks' RunReport.as_dict(), not {type(reports).__name__}"
        )
    if len(reports) != world_size:
        raise ValueError(
            f"reports must hold one report per rank: {len(reports)} for world_size {world_size}"
        )
    for i, r in enumerate(reports):
        if not isinstance(r, Mapping):
            raise TypeError(
                f"reports[{i}] must be a dict (RunReport.as_dict()), not {type(r).__name__}"
            )
        missing = [k for k in _REPORT_FIELDS if k not in r]
        if missing:
            raise ValueError(
                f"reports[{i}] lacks {', '.join(missing)}: give RunReport.as_dict() of each rank"
            )
    out_dir = _folder(out_dir)
    present = [out_dir / LEDGER_NAME.format(rank=r) for r in range(world_size)]
    present = [p for p in present if p.is_file()]
    merged = ledger.merge(present) if present else None
    wall = max((float(r["seconds"].get("total", 0.0)) for r in reports), default=0.0)
    done = sum(int(r["done"]) for r in reports)
    failed = sorted((f for r in reports for f in r["failed"]), key=lambda f: f["key"])
    return {
        "world_size": world_size,
        "total": sum(int(r["total"]) for r in reports),
        "done": done,
        "skipped": sum(int(r["skipped"]) for r in reports),
        "failed": failed,
        "interrupted": any(r["interrupted"] for r in reports),
        "images_per_s": done / wall if wall > 0 else 0.0,
        "seconds": {"wall": wall},
        "ranks": reports,
        "ledger": merged,
    }


def gather_report(report: RunReport, out_dir: str | Path) -> dict | None:
    """Wait for every rank (a barrier), then give rank 0 the merged report of the run
    (``merge_reports``); the other ranks get None. Without a process group: this rank's
    report merged alone.

    Raises:
        TypeError: ``report`` is not a RunReport, ``out_dir`` not a path.
        FileNotFoundError, NotADirectoryError: ``out_dir`` is missing or a file.
        RuntimeError: (torch.distributed) a rank did not reach the barrier within the timeout.
    """
    # checked before the barrier: a rank that raised after it would leave the others waiting
    if not isinstance(report, RunReport):
        raise TypeError(
            f"report must be a pnpfast.runner.run.RunReport (what restore returns), not "
            f"{type(report).__name__}"
        )
    _folder(out_dir)
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return merge_reports([report.as_dict()], out_dir, 1)
    start = time.perf_counter()
    dist.barrier()
    world_size = dist.get_world_size()
    gathered: list[dict] | None = [None] * world_size if dist.get_rank() == 0 else None
    dist.gather_object(report.as_dict(), gathered, dst=0)
    if gathered is None:
        return None
    merged = merge_reports(gathered, out_dir, world_size)
    merged["seconds"]["barrier"] = time.perf_counter() - start
    return merged

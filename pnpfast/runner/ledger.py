"""The run ledger: an append-only JSONL record of finished images that makes a rerun resume.

One file per rank (``ledger.rank0.jsonl``, ...), beside the outputs. Each line is one JSON object,
written with a single ``os.write`` on a descriptor opened with ``O_APPEND`` and made durable with
``os.fsync`` before ``record`` returns::

    {"type": "header", "version": 1, "fingerprint": "<sha256>", "settings": {...}, "time": ...}
    {"type": "done", "key": "a/b.png", "output": "out/a/b.png", "sha256": "...", "bytes": 1234,
     "time": 1733420000.0, "seconds": 0.41, ...}
    {"type": "failed", "key": "c.png", "reason": "cannot read image c.png: ...", "time": ...}

The outputs themselves are written atomically (``pnpfast._atomic``) *before* their line, so a
line names an output that is whole. A SIGKILL can tear only the last line: reading skips any line
that is not a complete JSON object (counted in ``skipped_lines``), and opening the ledger again
first ends the torn line with a newline so that the next record starts on a line of its own. The
file is never rewritten: ``overwrite=True`` (the CLI's ``--overwrite``) appends a new header, and
only the records after the last header count.

Resuming: ``done`` holds the keys whose last record in the current run is "done" and whose output
still exists with the recorded size. That costs one ``stat`` per record (10,000 records open in a
few tens of milliseconds); ``verify=True`` also recomputes every output's sha256, which reads all
the outputs (seconds to minutes on a large run), for when the outputs may have been altered in
place with an unchanged size.
"""

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from pnpfast._atomic import _fsync_folder

__all__ = [
    "Ledger",
    "SettingsMismatchError",
    "file_sha256",
    "merge",
    "read_ledger",
    "settings_fingerprint",
]

VERSION = 1
# the fields every record carries; record(**fields) may not replace them
_RESERVED = ("type", "key", "output", "sha256", "bytes", "time", "reason")

PathLike = str | os.PathLike


class SettingsMismatchError(ValueError):
    """A ledger was written with other settings than this run's; ``differences`` maps each
    differing setting (dotted for nested ones) to (old value, new value); a missing side is the
    string "<absent>"."""

    def __init__(self, path: PathLike, differences: dict[str, tuple[object, object]]):
        self.path = os.fspath(path)
        self.differences = differences
        listed = "; ".join(
            f"{k}: {_shown(old)} before, {_shown(new)} now" for k, (old, new) in differences.items()
        )
        super().__init__(
            f"the run ledger {self.path} was written with other settings ({listed}); rerun with "
            "--overwrite (Ledger(..., overwrite=True)) to redo every image with the new settings, "
            "or write to another output folder"
        )


_ABSENT = "<absent>"


def _shown(v) -> str:
    return v if v == _ABSENT else json.dumps(v, sort_keys=True)


def _canonical(value, where: str, label: str = "settings"):
    """``value`` as plain JSON data (dicts with str keys, lists, str, int, float, bool, None);
    paths become strings, tuples lists, numpy scalars Python numbers."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{label}[{where}] must be finite, not {value}")
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy or torch scalar
        return _canonical(value.item(), where, label)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"{label} keys must be str, not {type(k).__name__} ({k!r} in {where or label})"
                )
            out[k] = _canonical(v, f"{where}.{k}" if where else k, label)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]", label) for i, v in enumerate(value)]
    raise TypeError(
        f"{label}[{where}] must be JSON data (str, number, bool, None, list, mapping, path), "
        f"not {type(value).__name__}"
    )


def _settings(settings) -> dict:
    if not isinstance(settings, Mapping):
        raise TypeError(
            f"settings must be a mapping of names to values, not {type(settings).__name__}"
        )
    return _canonical(settings, "")


def _dumps(obj) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def settings_fingerprint(settings: Mapping) -> str:
    """sha256 (hex) of the canonical JSON of ``settings``: keys sorted at every level, no spaces,
    UTF-8, tuples as lists, paths as strings. Equal settings give equal fingerprints whatever the
    order of their keys; 1 and 1.0 differ (their JSON differs).

    Raises:
        TypeError: ``settings`` is not a mapping, has a non-str key or a value that is not JSON
            data (the key is named).
        ValueError: a NaN or infinite number (the key is named).
    """
    return hashlib.sha256(_dumps(_settings(settings)).encode("utf-8")).hexdigest()


def file_sha256(path: PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out.update(_flat(v, name))
        else:
            out[name] = v
    return out


def _differences(old: dict, new: dict) -> dict[str, tuple[object, object]]:
    a, b = _flat(old), _flat(new)
    return {
        k: (a.get(k, _ABSENT), b.get(k, _ABSENT))
        for k in sorted(a.keys() | b.keys())
        if k not in a or k not in b or _dumps(a[k]) != _dumps(b[k])
    }


def read_ledger(path: PathLike) -> tuple[dict | None, list[dict], int]:
    """The current run of a ledger file: (its last header or None, the records after it in
    order, the number of lines skipped because they are not complete JSON objects).

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        FileNotFoundError: no such file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no run ledger at {os.fspath(path)}")
    with open(path, "rb") as f:
        data = f.read()
    header, records, skipped = None, [], 0
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:  # a line torn by a kill (or damaged): its image is simply redone
            skipped += 1
            continue
        if not isinstance(obj, dict):
            skipped += 1
            continue
        kind = obj.get("type")
        if kind == "header":
            header, records = obj, []
        elif kind in ("done", "failed") and isinstance(obj.get("key"), str):
            records.append(obj)
        else:
            skipped += 1
    return header, records, skipped


def _intact(folder: Path, rec: dict, verify: bool) -> bool:
    p = Path(rec.get("output", ""))
    p = p if p.is_absolute() else folder / p
    try:
        if p.stat().st_size != rec.get("bytes"):
            return False
    except OSError:
        return False
    return not verify or file_sha256(p) == rec.get("sha256")


def done_records(records: Iterable[dict], folder: Path, *, verify: bool = False) -> dict[str, dict]:
    """key -> record, for the keys whose last record (of ``read_ledger``'s) is "done" and whose
    output (relative to ``folder``, the ledger's) exists with the recorded size; with ``verify``
    also the recorded sha256 (reads every output)."""
    last: dict[str, dict] = {}
    for r in records:
        last[r["key"]] = r
    return {k: r for k, r in last.items() if r["type"] == "done" and _intact(folder, r, verify)}


class Ledger:
    """Open (or create) the run ledger at ``path`` for a run with ``settings``.

    Args:
        path: the JSONL file; its folder must exist.
        settings: the run's settings (everything that changes an output: task, method, denoiser,
            precision, ...), a mapping of JSON data; compared with the ledger's last header.
        overwrite: start a new run in this ledger (a new header): nothing counts as done.
        verify: also recompute each recorded output's sha256 when opening (reads every output).

    Attributes:
        done: set of keys finished in this run whose output exists (see the module docstring).
        failed: key -> reason of the keys whose last record in this run is a failure.
        records: key -> last "done" record of the keys in ``done``.
        skipped_lines: lines ignored on opening (a torn last line, or damage).

    Raises:
        SettingsMismatchError (a ValueError): the ledger's settings differ and its run has
            recorded an image (a header alone is replaced); the message names each differing
            key with its old and new value and says --overwrite redoes.
        TypeError, ValueError: bad ``path``, ``settings``, ``overwrite`` or ``verify``.
        FileNotFoundError, NotADirectoryError: the folder of ``path`` is missing or a file.
    """

    def __init__(
        self, path: PathLike, settings: Mapping, *, overwrite: bool = False, verify: bool = False
    ):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        for name, flag in (("overwrite", overwrite), ("verify", verify)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, not {type(flag).__name__}")
        self.path = Path(path)
        self.settings = _settings(settings)
        self.fingerprint = settings_fingerprint(self.settings)
        folder = self.path.parent
        if self.path.is_dir():
            raise IsADirectoryError(f"the run ledger {self.path} is a folder")
        if not folder.exists():
            raise FileNotFoundError(f"cannot open the run ledger {self.path}: no folder {folder}")
        if not folder.is_dir():
            raise NotADirectoryError(f"cannot open the run ledger {self.path}: {folder} is a file")

        self.done: set[str] = set()
        self.failed: dict[str, str] = {}
        self.records: dict[str, dict] = {}
        self.skipped_lines = 0
        header = None
        if self.path.exists():
            header, records, self.skipped_lines = read_ledger(self.path)
            differs = header is not None and header.get("fingerprint") != self.fingerprint
            if differs and not overwrite and records:
                raise SettingsMismatchError(
                    self.path, _differences(header.get("settings") or {}, self.settings)
                )
            # a header without records (a run refused before its first image, e.g. for a
            # denoiser that cannot load) holds nothing to protect: the new settings replace it
            overwrite = overwrite or differs
            self._end_torn_line()
        if header is None or overwrite:
            self._append(
                {
                    "type": "header",
                    "version": VERSION,
                    "fingerprint": self.fingerprint,
                    "settings": self.settings,
                    "time": time.time(),
                }
            )
            _fsync_folder(folder)  # the new file's name survives a power cut too
            return
        for r in records:
            self._apply(r)  # the failures
        self.records = done_records(records, folder, verify=verify)
        self.done = set(self.records)

    # -- reading --------------------------------------------------------------------------

    def _apply(self, rec: dict) -> None:
        key = rec["key"]
        if rec["type"] == "done":
            self.done.add(key)
            self.records[key] = rec
            self.failed.pop(key, None)
        else:
            self.failed[key] = str(rec.get("reason", ""))
            self.done.discard(key)
            self.records.pop(key, None)

    # -- writing --------------------------------------------------------------------------

    def _end_torn_line(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
        if last != b"\n":
            self._write(b"\n")

    def _write(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            view = memoryview(data)
            while view:  # one write in practice; a short write is finished, never dropped
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _append(self, obj: dict) -> None:
        self._write((_dumps(obj) + "\n").encode("utf-8"))

    @staticmethod
    def _key(key) -> str:
        if not isinstance(key, str):
            raise TypeError(
                f"key must be a str (the image's relative path), not {type(key).__name__}"
            )
        if not key or "\n" in key:
            raise ValueError(f"key must be a non-empty str on one line, not {key!r}")
        return key

    @staticmethod
    def _fields(fields: dict) -> dict:
        clash = sorted(set(fields) & set(_RESERVED))
        if clash:
            raise ValueError(f"fields {clash} are written by the ledger itself; use other names")
        return _canonical(fields, "", "fields")

    def record(self, key: str, output: PathLike, **fields) -> dict:
        """Append the line saying ``key`` is done, its output written at ``output``; returns it.

        The line holds the key, the output path (relative to the ledger's folder when inside
        it), the output's sha256 and size, the wall time, and ``fields`` (timings such as
        ``seconds=0.4``, any JSON data). Flushed and fsync-ed before returning.

        Raises:
            TypeError, ValueError: a bad ``key`` or ``output``, a field that is not JSON data
                or that takes a reserved name (type, key, output, sha256, bytes, time, reason).
            FileNotFoundError: ``output`` does not exist (write the output first).
        """
        key = self._key(key)
        if not isinstance(output, (str, os.PathLike)):
            raise TypeError(f"output must be a str or os.PathLike, not {type(output).__name__}")
        extra = self._fields(fields)
        p = Path(output)
        if not p.is_file():
            raise FileNotFoundError(
                f"output {p} of {key!r} is not a file: write the output before recording it"
            )
        try:
            shown = os.path.relpath(p.resolve(), self.path.parent.resolve())
        except ValueError:  # another drive (Windows)
            shown = str(p.resolve())
        if shown.startswith(".."):
            shown = str(p.resolve())
        rec = {
            **extra,
            "type": "done",
            "key": key,
            "output": shown,
            "sha256": file_sha256(p),
            "bytes": p.stat().st_size,
            "time": time.time(),
        }
        self._append(rec)
        self._apply(rec)
        return rec

    def fail(self, key: str, reason: str, **fields) -> dict:
        """Append the line saying ``key`` failed, with ``reason`` (one line for the report);
        returns it. A failed image is tried again by the next run."""
        key = self._key(key)
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")
        rec = {**self._fields(fields), "type": "failed", "key": key, "reason": reason}
        rec["time"] = time.time()
        self._append(rec)
        self._apply(rec)
        return rec


def merge(paths: Iterable[PathLike]) -> dict:
    """Combine the ledgers of the ranks of one run into one report (rank 0 calls it).

    Returns a dict:
        ``fingerprint``, ``settings``: of the run (all ledgers must agree);
        ``done``: number of distinct keys done; ``failed``: number of keys that failed and were
        not done in any ledger; ``failures``: [{"key", "reason", "ledger"}] of those, sorted by
        key; ``duplicates``: [{"key", "ledgers"}] of the keys done more than once in this run
        (in two ledgers, or twice in one) — an exactly-once run has none; ``skipped_lines``:
        torn or damaged lines ignored; ``totals``: the sum over done records of each numeric
        field (``seconds`` and other timings); ``ledgers``: per file, its done and failed counts.
    Only what the ledgers say is counted; the outputs are not opened.

    Raises:
        TypeError: ``paths`` is not an iterable of paths.
        ValueError: no paths, or ledgers with different settings (the files are named).
        FileNotFoundError: a ledger is missing.
    """
    if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Iterable):
        raise TypeError(f"paths must be a list of ledger paths, not {type(paths).__name__}")
    paths = list(paths)
    if not paths:
        raise ValueError("paths must name at least one ledger")
    for i, p in enumerate(paths):
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"paths[{i}] must be a str or os.PathLike, not {type(p).__name__}")
    done_in: dict[str, list[str]] = {}
    failures: dict[str, dict] = {}
    totals: dict[str, float] = {}
    per_file, skipped, header0, first = [], 0, None, None
    for p in paths:
        name = os.fspath(p)
        header, records, n_skipped = read_ledger(p)
        skipped += n_skipped
        fp = header.get("fingerprint") if header else None
        if first is None:
            first, header0 = name, header
        elif fp != (header0.get("fingerprint") if header0 else None):
            raise ValueError(
                f"ledgers {first} and {name} record different settings; merge the ledgers of one "
                "run only"
            )
        n_done, n_failed = 0, 0
        for r in records:
            if r["type"] == "done":
                n_done += 1
                done_in.setdefault(r["key"], []).append(name)
                for k, v in r.items():
                    if (
                        isinstance(v, (int, float))
                        and not isinstance(v, bool)
                        and k
                        not in (
                            "bytes",
                            "time",
                        )
                    ):
                        totals[k] = totals.get(k, 0.0) + float(v)
            else:
                n_failed += 1
                failures[r["key"]] = {
                    "key": r["key"],
                    "reason": r.get("reason", ""),
                    "ledger": name,
                }
        per_file.append({"ledger": name, "done": n_done, "failed": n_failed})
    failed = [failures[k] for k in sorted(failures) if k not in done_in]
    duplicates = [{"key": k, "ledgers": v} for k, v in sorted(done_in.items()) if len(v) > 1]
    return {
        "fingerprint": header0.get("fingerprint") if header0 else None,
        "settings": header0.get("settings") if header0 else None,
        "done": len(done_in),
        "failed": len(failed),
        "failures": failed,
        "duplicates": duplicates,
        "skipped_lines": skipped,
        "totals": totals,
        "ledgers": per_file,
    }

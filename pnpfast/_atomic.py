"""Atomic file writes: a reader finds the whole old file or the whole new one, never a part.

    with atomic_open(path) as f:          # binary; atomic_open(path, "w") for text (UTF-8)
        torch.save(obj, f)

The content goes to a fresh temporary file in the folder of ``path`` (hidden, random name
``.<name>.<hex>.tmp``, so two writers never share it), which is flushed and fsync-ed, renamed
over ``path`` with ``os.replace`` (atomic on POSIX and Windows within one file system) and the
folder fsync-ed, so that the rename itself survives a power cut. When the body of the ``with``
raises, the temporary file is removed, ``path`` keeps its old content (or stays absent) and the
exception propagates. The file gets the permissions a plain ``open(path, "w")`` would give
(0o666 under the umask).

The one place pnpfast writes files atomically: images (``pnpfast.io``), weight files
(``pnpfast.denoisers.weight_file``), downloads (``pnpfast.denoisers.registry``) and the
training loop's checkpoint, config and log. No pnpfast imports, so anything may import it.
"""

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_open", "remove_stale_temporaries"]

_MODES = ("wb", "w")


# the name _temporary gives: group 1 is the name of the file it will replace
_TEMPORARY = re.compile(r"\.(.+)\.[0-9a-f]{12}\.tmp")


def _temporary(folder: Path, name: str) -> tuple[int, Path]:
    """A new, exclusively created file ``.<name>.<12 hex>.tmp`` in ``folder``: (fd, path)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {folder}")


def remove_stale_temporaries(paths) -> int:
    """Remove the temporary files a killed writer left beside each of ``paths``
    (``.<name>.<12 hex>.tmp``); returns how many. For a caller that is the only writer of
    those paths (a restore rank owns its images' outputs): anyone else's write in flight
    would lose its temporary file."""
    by_folder: dict[Path, set[str]] = {}
    for p in map(Path, paths):
        by_folder.setdefault(p.parent, set()).add(p.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not created yet: nothing to remove
            continue
        for entry in entries:
            m = _TEMPORARY.fullmatch(entry.name)
            if m and m.group(1) in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable. Windows cannot open a folder, and some file systems refuse
    fsync on one: the rename has happened by then, so those failures are not errors."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """A file object whose content replaces ``path`` when the ``with`` body ends without error.

    ``mode``: ``"wb"`` (bytes) or ``"w"`` (text, UTF-8). The folder of ``path`` must exist.
    Errors: ValueError for another mode; FileNotFoundError, NotADirectoryError or
    IsADirectoryError naming ``path`` when its folder is missing or a file, or ``path`` is a
    folder; OSError from the file system (the temporary file is removed); any exception of the
    body, after removing the temporary file.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    path = Path(path)
    folder = path.parent
    # said up front: otherwise the error would name the temporary file, not ``path``
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    if not folder.exists():
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        fd, tmp = _temporary(folder, path.name)
    except OSError as exc:
        if exc.errno is None:
            raise
        # the same class (PermissionError, ...), naming path rather than the temporary file
        raise type(exc)(
            exc.errno,
            f"cannot write {path}: {exc.strerror} (creating a temporary file in {folder})",
        ) from exc
    try:
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)

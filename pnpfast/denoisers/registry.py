"""The weights registry: well-known public denoiser weights by name, downloaded once and cached.

``REGISTRY`` (the table is in ``pnpfast.denoisers.catalog``, with every other denoiser name)
maps a name (``"drunet-color"``, ``"bfcnn-gray"``, ...) to an ``Entry``: the official download
URL, the sha256 where it is known, the file name in the cache, the loader kind and
architecture, and a description and license. ``load_entry(name)`` fetches the file and
builds the denoiser; ``fetch(name)`` only returns the path of the cached file.

Where the files go: ``cache_dir()``, i.e. the ``cache_dir`` argument, else the environment
variable ``PNPFAST_CACHE``, else ``~/.cache/pnpfast``; created on demand. Each file is
downloaded once, with urllib (30 s timeout), into a temporary file in that folder
(``pnpfast._atomic``) that is checked (sha256 where known, and the byte count against
Content-Length) and then renamed into place, so an interrupted or corrupt download never leaves
a file under the final name.

A cached file with a known sha256 is hashed again on every use; when it does not match, a
ValueError says so and asks to delete the file (it is not deleted or replaced automatically:
it may be a file the user put there).

Offline: with ``offline=True``, or the environment variable ``PNPFAST_OFFLINE`` set to a true
value (``1``, ``true``, ``yes``, ``on``), nothing is downloaded and only cached files are used.
A file that is missing then, or cannot be downloaded (no network, HTTP error, interrupted
transfer), raises ``WeightsUnavailableError``, whose message gives the URL to download, the
exact path to save it at, and that ``load(name, weights=PATH)`` takes a local file instead.
"""

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

import torch

from pnpfast import _env
from pnpfast._atomic import atomic_open
from pnpfast.denoisers import public
from pnpfast.denoisers.base import Denoiser
from pnpfast.denoisers.catalog import REGISTRY, Entry
from pnpfast.denoisers.drunet import DRUNet

__all__ = [
    "REGISTRY",
    "Entry",
    "WeightsUnavailableError",
    "cache_dir",
    "entry",
    "fetch",
    "load_entry",
    "names",
]

TIMEOUT_S = 30.0
_CHUNK = 1 << 16


class WeightsUnavailableError(RuntimeError):
    """A registry weight file is not in the cache and could not be downloaded (offline mode, no
    network, an HTTP error or an interrupted transfer). The message says what to download,
    where to save it and how to load a local file instead."""


def names() -> tuple[str, ...]:
    """The registry's names, in table order."""
    return tuple(REGISTRY)


def entry(name: str) -> Entry:
    """The ``Entry`` for ``name`` (case-insensitive, surrounding spaces ignored).

    Raises ValueError, listing the known names, when ``name`` is not in the registry.
    """
    key = str(name).strip().lower()
    if key not in REGISTRY:
        raise ValueError(f"name must be one of {', '.join(REGISTRY)}, not {name!r}")
    return REGISTRY[key]


def _folder(folder: str | os.PathLike | None) -> Path:
    if folder is None:
        folder = _env.cache_folder()
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"the weight cache {path} (cache_dir or PNPFAST_CACHE) is a file")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the cached weight files, created when missing: ``cache_dir``, else the
    environment variable ``PNPFAST_CACHE``, else ``~/.cache/pnpfast`` (``~`` expanded)."""
    return _folder(cache_dir)


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return _env.offline()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _unavailable(name: str, item: Entry, target: Path, reason: str) -> WeightsUnavailableError:
    checksum = f" (sha256 {item.sha256})" if item.sha256 else ""
    return WeightsUnavailableError(
        f"weights {name!r} are not in the cache and were not downloaded: {reason}.\n"
        f"Download {item.url}{checksum}\n"
        f"and save it as {target}\n"
        f"or pass a local copy: pnpfast.denoisers.load({name!r}, weights=PATH)."
    )


class _TransferError(Exception):
    """Internal: the network side of a download failed (reason in the message)."""


def _download(name: str, item: Entry, target: Path, progress: bool) -> None:
    """Download ``item.url`` to ``target`` through a temporary file in the same folder; on any
    failure the temporary file is removed and ``target`` is left untouched."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(item.url, headers={"User-Agent": "pnpfast"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise _TransferError(f"HTTP {err.code} {err.reason} from {item.url}") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise _TransferError(f"cannot reach {item.url} ({reason})") from err
    digest = hashlib.sha256()
    received = 0
    with response, atomic_open(target) as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.strip().isdigit() else None
        bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=target.name,
            disable=not progress or total is None,
        )
        with bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _TransferError(
                        f"download of {item.url} interrupted after {received} bytes "
                        f"({type(err).__name__}: {err})"
                    ) from err
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        # http.client returns b"" rather than raising when the connection drops early
        if total is not None and received != total:
            raise _TransferError(
                f"download of {item.url} interrupted: {received} of {total} bytes received"
            )
        actual = digest.hexdigest()
        if item.sha256 is not None and actual != item.sha256:
            raise ValueError(
                f"weights {name!r}: the file downloaded from {item.url} has sha256 {actual}, "
                f"expected {item.sha256}; it was not saved"
            )


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> Path:
    """The path of the cached weight file of ``name``, downloaded first when missing.

    ``cache_dir``: see ``cache_dir()``. ``offline``: never download (default: the environment
    variable ``PNPFAST_OFFLINE`` is true). ``progress``: a tqdm progress bar on stderr while
    downloading (when the size is known).

    Errors: ValueError for an unknown name, for a download whose sha256 differs from the
    registry's (nothing is saved), and for a cached file whose sha256 differs (delete it to
    download again); WeightsUnavailableError when the file is missing and offline, or the
    download fails (no network, HTTP error, interrupted transfer; nothing is saved); OSError
    when the cache folder cannot be written.
    """
    item = entry(name)
    key = str(name).strip().lower()
    target = _folder(cache_dir) / item.filename
    if target.is_file():
        if item.sha256 is not None:
            actual = _sha256(target)
            if actual != item.sha256:
                raise ValueError(
                    f"cached weights {key!r} at {target} have sha256 {actual}, expected "
                    f"{item.sha256} (a corrupt or different file); delete {target} to "
                    f"download it again from {item.url}"
                )
        return target
    if _offline(offline):
        reason = "offline mode (offline=True or PNPFAST_OFFLINE is set)"
        raise _unavailable(key, item, target, reason)
    try:
        _download(key, item, target, progress)
    except _TransferError as err:
        raise _unavailable(key, item, target, str(err)) from err.__cause__
    return target


def load_entry(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    device: str | torch.device = "cpu",
) -> Denoiser:
    """The denoiser of registry entry ``name``: eval mode, requires_grad False, on ``device``.

    The file is ``weights`` when given (a local copy; not checked against the sha256), else
    ``fetch(name, cache_dir=cache_dir, offline=offline)``. Kinds ``"bfcnn"``, ``"bf-dncnn"``,
    ``"dncnn"`` are built by ``pnpfast.denoisers.public.read_network(kind, path)``;
    ``"drunet"`` by ``DRUNet(channels, **arch).load_weights(state, "kair")``.

    Errors: those of ``fetch``; ValueError when the file does not match the architecture.
    """
    item = entry(name)
    key = str(name).strip().lower()
    path = Path(weights) if weights is not None else None
    if path is None:
        path = fetch(key, cache_dir=cache_dir, offline=offline)
    if item.kind != "drunet":
        net = public.read_network(item.kind, path)
    else:
        net = DRUNet(item.channels, **item.arch)
        try:
            net.load_weights(public.read_state_dict(path), "kair")
        except ValueError as err:
            raise ValueError(f"weights {path} for {key!r}: {err}") from err
    net.requires_grad_(False)
    return net.eval().to(device)

"""The weights registry: well-known public denoiser weights by name, downloaded once and cached.

``REGISTRY`` maps a name (``"drunet-color"``, ``"bfcnn-gray"``, ...) to an ``Entry``: the
official download URL, the sha256 where it is known, the file name in the cache, the loader
kind and architecture, and a description and license. ``load_entry(name)`` fetches the file and
builds the denoiser; ``fetch(name)`` only returns the path of the cached file.

Where the files go: ``cache_dir()``, i.e. the ``cache_dir`` argument, else the environment
variable ``PNPFAST_CACHE``, else ``~/.cache/pnpfast``; created on demand. Each file is
downloaded once, with urllib (30 s timeout), into a temporary file in that folder that is
checked (sha256 where known, and the byte count against Content-Length) and then renamed into
place, so an interrupted or corrupt download never leaves a file under the final name.

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
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from pnpfast.denoisers.base import Denoiser
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

KINDS: tuple[str, ...] = ("bfcnn", "bf-dncnn", "dncnn", "drunet")
TIMEOUT_S = 30.0
_CHUNK = 1 << 16
_TRUE = frozenset({"1", "true", "yes", "on"})


class WeightsUnavailableError(RuntimeError):
    """A registry weight file is not in the cache and could not be downloaded (offline mode, no
    network, an HTTP error or an interrupted transfer). The message says what to download,
    where to save it and how to load a local file instead."""


@dataclass(frozen=True)
class Entry:
    """One public weight file.

    ``url``: the official download URL; ``sha256``: hex digest of the file, None when not
    known; ``filename``: the name in the cache folder; ``kind``: the loader, one of ``KINDS``
    (``"drunet"`` is DPIR's DRUNet in KAIR's layout); ``channels``: 1 (gray) or 3 (color);
    ``blind``: True when the network takes no noise level; ``sigmas``: the training noise std
    range on the 0-255 scale; ``description``: one line; ``license``: that of the source
    repository; ``arch``: constructor arguments besides ``channels`` (used for ``"drunet"``;
    the other kinds read their architecture from the file).
    """

    url: str
    sha256: str | None
    filename: str
    kind: str
    channels: int
    blind: bool
    sigmas: tuple[float, float]
    description: str
    license: str
    arch: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits or None, not {self.sha256!r}")
        if not self.filename or Path(self.filename).name != self.filename:
            raise ValueError(f"filename must be a plain file name, not {self.filename!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels!r}")


_KAIR = "https://github.com/cszn/KAIR/releases/download/v1.0/"
_KAIR_RAW = "https://raw.githubusercontent.com/cszn/KAIR/fc1732f4a4514e42ce15e5b3a1e18c828af47a1e/"
_KAIR_LICENSE = "MIT (cszn/KAIR)"
_UIP = (
    "https://raw.githubusercontent.com/LabForComputationalVision/universal_inverse_problem/"
    "943b9ed99e35a4af86c36c413e2ca70ab320e8bc/denoisers/BF_CNN/"
)
_UIP_LICENSE = "none stated (no LICENSE file in universal_inverse_problem; research use)"
_BFD = (
    "https://raw.githubusercontent.com/LabForComputationalVision/bias_free_denoising/"
    "64930f028aec88b0ebc1fc13f79932f5b7aa744d/pretrained/dncnn/"
)
_BFD_LICENSE = "MIT (LabForComputationalVision/bias_free_denoising)"
_DRUNET_ARCH = MappingProxyType(
    {"widths": (64, 128, 256, 512), "blocks": 4, "noise_map": True, "bias": False}
)


def _mohan(rng: str, bias: bool, sha256: str) -> Entry:
    low, high = (float(s) for s in rng.split("-"))
    return Entry(
        url=f"{_BFD}{'bias' if bias else 'bias_free'}/{rng}.pt",
        sha256=sha256,
        filename=f"{'dncnn_withbias' if bias else 'bf_dncnn'}_gray_sigma{rng}.pt",
        kind="dncnn" if bias else "bf-dncnn",
        channels=1,
        blind=True,
        sigmas=(low, high),
        description=(
            f"{'DnCNN with biases' if bias else 'BF-DnCNN (bias-free)'}, gray, 20 layers, "
            f"noise std {rng}/255 (Mohan et al., ICLR 2020)"
        ),
        license=_BFD_LICENSE,
    )


REGISTRY: dict[str, Entry] = {
    "drunet-gray": Entry(
        url=_KAIR + "drunet_gray.pth",
        sha256=None,
        filename="drunet_gray.pth",
        kind="drunet",
        channels=1,
        blind=False,
        sigmas=(0.0, 50.0),
        description="DPIR DRUNet, gray, noise-level map input (Zhang et al., TPAMI 2021)",
        license=_KAIR_LICENSE,
        arch=_DRUNET_ARCH,
    ),
    "drunet-color": Entry(
        url=_KAIR + "drunet_color.pth",
        sha256=None,
        filename="drunet_color.pth",
        kind="drunet",
        channels=3,
        blind=False,
        sigmas=(0.0, 50.0),
        description="DPIR DRUNet, color, noise-level map input (Zhang et al., TPAMI 2021)",
        license=_KAIR_LICENSE,
        arch=_DRUNET_ARCH,
    ),
    "dncnn-15": Entry(
        url=_KAIR + "dncnn_15.pth",
        sha256=None,
        filename="dncnn_15.pth",
        kind="dncnn",
        channels=1,
        blind=True,
        sigmas=(15.0, 15.0),
        description="DnCNN-S, gray, trained at noise std 15/255, batch norm folded (KAIR)",
        license=_KAIR_LICENSE,
    ),
    # committed to KAIR's model_zoo, so pinned to a commit and checked
    "dncnn-25": Entry(
        url=_KAIR_RAW + "model_zoo/dncnn_25.pth",
        sha256="0451a70de9b672ae037270498fbb1c17a1c1c4403785df586ff65df5b858e5b0",
        filename="dncnn_25.pth",
        kind="dncnn",
        channels=1,
        blind=True,
        sigmas=(25.0, 25.0),
        description="DnCNN-S, gray, trained at noise std 25/255, batch norm folded (KAIR)",
        license=_KAIR_LICENSE,
    ),
    "dncnn-50": Entry(
        url=_KAIR + "dncnn_50.pth",
        sha256=None,
        filename="dncnn_50.pth",
        kind="dncnn",
        channels=1,
        blind=True,
        sigmas=(50.0, 50.0),
        description="DnCNN-S, gray, trained at noise std 50/255, batch norm folded (KAIR)",
        license=_KAIR_LICENSE,
    ),
    "dncnn-gray-blind": Entry(
        url=_KAIR + "dncnn_gray_blind.pth",
        sha256=None,
        filename="dncnn_gray_blind.pth",
        kind="dncnn",
        channels=1,
        blind=True,
        sigmas=(0.0, 55.0),
        description="DnCNN-B, gray, 20 layers, noise std 0-55/255, batch norm folded (KAIR)",
        license=_KAIR_LICENSE,
    ),
    "bfcnn-gray": Entry(
        url=_UIP + "BSD400_gray/noise_range_0to100/model.pt",
        sha256="cb99c1acae801b4ecc361e113b510e11000fcb7e365e19be993c3ec3986e7bcf",
        filename="bfcnn_gray_bsd400_sigma0-100.pt",
        kind="bfcnn",
        channels=1,
        blind=True,
        sigmas=(0.0, 100.0),
        description="BF-CNN, gray, BSD400, noise std 0-100/255 (Kadkhodaie & Simoncelli, 2021)",
        license=_UIP_LICENSE,
    ),
    "bfcnn-color": Entry(
        url=_UIP + "BSD300_color/noise_range_0to100/model.pt",
        sha256="24254895bb92d929f6f8365e29fb89b41085685d0b1ee3759a5999c5617c1bab",
        filename="bfcnn_color_bsd300_sigma0-100.pt",
        kind="bfcnn",
        channels=3,
        blind=True,
        sigmas=(0.0, 100.0),
        description="BF-CNN, color, BSD300, noise std 0-100/255 (Kadkhodaie & Simoncelli, 2021)",
        license=_UIP_LICENSE,
    ),
    "bf-dncnn-0-10": _mohan(
        "0-10", False, "620fda70ca2c199cca91454e1b7b169032d4aedd947367ec1de0f2fe0513e017"
    ),
    "bf-dncnn-0-30": _mohan(
        "0-30", False, "bd4f8f15051fa2ceb7fb0aea337ba894b7713886423ad86dd8289bd5997372c0"
    ),
    "bf-dncnn-0-55": _mohan(
        "0-55", False, "f1338cbbeea8c34c56cda1076f1516ac0ba5831118786f6226c748af6cd31efa"
    ),
    "bf-dncnn-0-100": _mohan(
        "0-100", False, "a21e6541a39f3975f421142f5d3845bc858e89881118be647ad9208cb61126e5"
    ),
    "dncnn-bias-0-55": _mohan(
        "0-55", True, "6af6c965e9cdbdb34f04bb399ec454411db33ba8ea445abcb5e16e1008805969"
    ),
    "dncnn-bias-0-100": _mohan(
        "0-100", True, "5d49e828a52a61b746ad2c1d77deac3bdf867afd4d73a15297fa9dca8d5b16e5"
    ),
}


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
        folder = os.environ.get("PNPFAST_CACHE") or "~/.cache/pnpfast"
    path = Path(folder).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the cached weight files, created when missing: ``cache_dir``, else the
    environment variable ``PNPFAST_CACHE``, else ``~/.cache/pnpfast`` (``~`` expanded)."""
    return _folder(cache_dir)


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("PNPFAST_OFFLINE", "").strip().lower() in _TRUE


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
            except urllib.error.HTTPError as err:
                raise _TransferError(f"HTTP {err.code} {err.reason} from {item.url}") from err
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                raise _TransferError(f"cannot reach {item.url} ({reason})") from err
            with response:
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
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    ``"dncnn"`` are built by ``pnpfast.denoisers.loaders.load(kind, weights=path)``;
    ``"drunet"`` by ``DRUNet(channels, **arch).load_weights(state, "kair")``.

    Errors: those of ``fetch``; ValueError when the file does not match the architecture.
    """
    # imported here: loaders is expected to import this module
    from pnpfast.denoisers import loaders

    item = entry(name)
    key = str(name).strip().lower()
    path = Path(weights) if weights is not None else None
    if path is None:
        path = fetch(key, cache_dir=cache_dir, offline=offline)
    if item.kind != "drunet":
        return loaders.load(item.kind, weights=path, device=device)
    state = loaders.read_state_dict(path)
    net = DRUNet(item.channels, **item.arch)
    try:
        net.load_weights(state, "kair")
    except ValueError as err:
        raise ValueError(f"weights {path} for {key!r}: {err}") from err
    net.requires_grad_(False)
    return net.eval().to(device)

"""Every denoiser name pnpfast knows, in one table: ``pnpfast.denoisers.load`` takes these.

* ``SHIPPED``: the denoisers shipped inside pnpfast (``pnpfast.denoisers.shipped``), gray and
  color: ``"conditional"`` and ``"blind"`` (``DEFAULTS``, the embedded defaults) and
  ``"gradient-step"`` and ``"proximal"`` (``CONVERGENT``, for the provably convergent methods).
* ``WEIGHT_FILE`` (``"pnpfast"``): a pnpfast weight file of any architecture
  (``pnpfast.denoisers.weight_file``).
* ``FILE_ARCHITECTURES``: the architectures of public weight files of other projects, read by
  ``pnpfast.denoisers.public`` from a local file: ``"bfcnn"``, ``"bf-dncnn"``, ``"dncnn"``.
* ``CLASSICAL``: ``"gaussian"`` and ``"tv"``, no weights.
* ``REGISTRY``: well-known public weight files by name (``"drunet-color"``, ``"bfcnn-gray"``,
  ...), each an ``Entry`` (URL, sha256, cache file name, loader kind, ...), downloaded and
  cached by ``pnpfast.denoisers.registry``.

``NAMES`` is every name but the registry's; ``family(name)`` says which group a name is in.
No name is in two groups (``tests/denoisers/test_registry.py`` checks it).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "CLASSICAL",
    "CONVERGENT",
    "DEFAULTS",
    "FILE_ARCHITECTURES",
    "NAMES",
    "REGISTRY",
    "REGISTRY_KINDS",
    "SHIPPED",
    "WEIGHT_FILE",
    "Entry",
    "family",
]

DEFAULTS: tuple[str, ...] = ("conditional", "blind")
CONVERGENT: tuple[str, ...] = ("gradient-step", "proximal")
SHIPPED: tuple[str, ...] = (*DEFAULTS, *CONVERGENT)
WEIGHT_FILE = "pnpfast"
FILE_ARCHITECTURES: tuple[str, ...] = ("bfcnn", "bf-dncnn", "dncnn")
CLASSICAL: tuple[str, ...] = ("gaussian", "tv")
NAMES: tuple[str, ...] = (*SHIPPED, WEIGHT_FILE, *FILE_ARCHITECTURES, *CLASSICAL)
# how a registry entry is read: a file architecture, or DPIR's DRUNet in KAIR's layout
REGISTRY_KINDS: tuple[str, ...] = (*FILE_ARCHITECTURES, "drunet")


@dataclass(frozen=True)
class Entry:
    """One public weight file.

    ``url``: the official download URL; ``sha256``: hex digest of the file, None when not
    known; ``filename``: the name in the cache folder; ``kind``: the loader, one of ``REGISTRY_KINDS``
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
        if self.kind not in REGISTRY_KINDS:
            raise ValueError(f"kind must be one of {', '.join(REGISTRY_KINDS)}, not {self.kind!r}")
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


_FAMILIES = (
    ("shipped", SHIPPED),
    ("weight-file", (WEIGHT_FILE,)),
    ("file-architecture", FILE_ARCHITECTURES),
    ("classical", CLASSICAL),
)


def family(name: str) -> str:
    """The group of ``name`` (case-insensitive, surrounding spaces ignored): ``"shipped"``,
    ``"weight-file"``, ``"file-architecture"``, ``"classical"`` or ``"registry"``.

    Raises ValueError, listing every name, for a name in none of them.
    """
    key = str(name).strip().lower()
    for group, members in _FAMILIES:
        if key in members:
            return group
    if key in REGISTRY:
        return "registry"
    raise ValueError(
        f"name must be one of {', '.join(NAMES)} or a registry name "
        f"({', '.join(REGISTRY)}); not {name!r}"
    )

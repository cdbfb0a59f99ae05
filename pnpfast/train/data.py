"""Training data: a folder of images, random patches with flips and rotations, Gaussian noise.

Every random draw (which image, where, which of the 8 flips/rotations, the noise level, the
noise) comes from one ``torch.Generator`` whose state is part of the checkpoint, so a resumed
run draws exactly the batches an uninterrupted one would.
"""

import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from pnpfast import _validate
from pnpfast.io import ImageReadError, read_image

__all__ = [
    "IMAGE_SUFFIXES",
    "Batch",
    "ImageFolder",
    "NoiseModel",
    "PatchSampler",
    "luminance",
    "noisy_copies",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")

# MATLAB rgb2gray (ITU-R BT.601 luma), the convention of the gray test sets (BSD68 = rgb2gray(CBSD68))
_LUMA = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# as TrainConfig's bounds: far above any real run, so that a typo is an error, not a hang
MAX_PATCHES_PER_IMAGE = 100_000
MAX_BATCH_SIZE = 65_536


def luminance(x: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] RGB -> [..., 1, H, W] luma with MATLAB's rgb2gray weights."""
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


class ImageFolder:
    """The images of a folder (recursively), read once into memory as [C, H, W] float32.

    ``channels`` 1 turns color images into their luminance (MATLAB rgb2gray); ``channels`` 3
    skips gray images (listed in ``skipped``). Files that cannot be read and images smaller
    than ``min_size`` on a side are skipped and listed too. Raises FileNotFoundError when the
    folder does not exist and ValueError when no usable image is left, naming the folder and
    the first skipped files with their reasons.
    """

    def __init__(
        self, root: str | os.PathLike, channels: int, *, min_size: int = 1, what: str = "folder"
    ) -> None:
        if isinstance(channels, bool) or channels not in (1, 3) or not _is_int(channels):
            raise ValueError(f"channels must be 1 (gray) or 3 (color), got {channels!r}")
        _validate.integer("min_size", min_size, 1)
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a str or os.PathLike, not {type(root).__name__}")
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"{what} {self.root} does not exist")
        if not self.root.is_dir():
            raise ValueError(f"{what} {self.root} is not a directory")
        files = sorted(
            p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        self.images: list[torch.Tensor] = []
        self.paths: list[Path] = []
        self.skipped: list[tuple[Path, str]] = []
        for path in files:
            try:
                x = read_image(path)[0]
            except ImageReadError as err:
                self.skipped.append((path, err.reason))
                continue
            if x.shape[0] == 3 and channels == 1:
                x = luminance(x)
            elif x.shape[0] == 1 and channels == 3:
                self.skipped.append((path, "gray image in a color (channels=3) set"))
                continue
            if min(x.shape[-2:]) < min_size:
                self.skipped.append(
                    (path, f"{x.shape[-1]}x{x.shape[-2]} is smaller than {min_size} pixels")
                )
                continue
            self.images.append(x.contiguous())
            self.paths.append(path)
        if not self.images:
            reasons = "; ".join(f"{p.name}: {r}" for p, r in self.skipped[:5])
            found = f"{len(files)} image files" if files else "no image files"
            suffixes = ", ".join(IMAGE_SUFFIXES)
            raise ValueError(
                f"{what} {self.root} has no usable image ({found}, suffixes {suffixes})"
                + (f"; skipped: {reasons}" if reasons else "")
            )

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class NoiseModel:
    """Additive white Gaussian noise on the [0, 1] scale, sigma uniform in [low, high] per
    patch (blind training) or fixed (``low == high``, non-blind); 0 <= low <= high <= 1."""

    low: float
    high: float

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            setattr(self, name, _validate.number(name, getattr(self, name)))
        if not 0 <= self.low <= self.high <= 1:
            raise ValueError(
                f"noise range must satisfy 0 <= low <= high <= 1 (the [0, 1] scale: 25/255 for "
                f"25), got [{self.low}, {self.high}]"
            )

    def sigmas(self, n: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, generator=generator)
        return self.low + (self.high - self.low) * u


@dataclass
class Batch:
    """One training batch: ``clean`` and ``noisy`` [B, C, P, P], ``sigma`` [B] (the noise std of
    each patch, on the [0, 1] scale)."""

    clean: torch.Tensor
    noisy: torch.Tensor
    sigma: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.clean.to(device), self.noisy.to(device), self.sigma.to(device))


def noisy_copies(
    clean: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``clean + sigma_b n`` with n ~ N(0, I) drawn from ``generator`` (on the CPU)."""
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    return clean + sigma.view(-1, 1, 1, 1).to(clean.dtype) * noise


class PatchSampler:
    """Random ``patch_size`` crops of the images of an ``ImageFolder``.

    An epoch visits every image ``patches_per_image`` times in a random order; each visit cuts
    one patch at a random position and applies one of the 8 flips/rotations (when
    ``augment``). ``next_batch(batch_size)`` returns a ``Batch`` with the noise of ``noise``.
    ``state_dict``/``load_state_dict`` carry the generator, the epoch order and the position.
    """

    def __init__(
        self,
        folder: ImageFolder,
        patch_size: int,
        patches_per_image: int,
        noise: NoiseModel,
        *,
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        if not isinstance(folder, ImageFolder):
            raise TypeError(f"folder must be an ImageFolder, not {type(folder).__name__}")
        if not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a NoiseModel, not {type(noise).__name__}")
        patch_size = _validate.integer("patch_size", patch_size, 1)
        patches_per_image = _validate.integer(
            "patches_per_image", patches_per_image, 1, MAX_PATCHES_PER_IMAGE
        )
        seed = _validate.seed("seed", seed)
        _validate.flag("augment", augment)
        small = [
            p.name
            for p, x in zip(folder.paths, folder.images, strict=True)
            if min(x.shape[-2:]) < patch_size
        ]
        if small:
            raise ValueError(
                f"patch_size {patch_size} is larger than {len(small)} image(s) of "
                f"{folder.root}, e.g. {small[0]}"
            )
        self.folder = folder
        self.patch_size = patch_size
        self.patches_per_image = patches_per_image
        self.noise = noise
        self.augment = augment
        self.generator = torch.Generator().manual_seed(int(seed))
        self.epoch = 0
        self.order = self._new_order()
        self.position = 0

    def _new_order(self) -> torch.Tensor:
        n = len(self.folder)
        visits = torch.arange(n).repeat(self.patches_per_image)
        return visits[torch.randperm(len(visits), generator=self.generator)]

    def _patch(self, index: int) -> torch.Tensor:
        image = self.folder.images[index]
        p = self.patch_size
        h, w = image.shape[-2:]
        top = int(torch.randint(0, h - p + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, w - p + 1, (1,), generator=self.generator))
        patch = image[:, top : top + p, left : left + p]
        if self.augment:
            k = int(torch.randint(0, 8, (1,), generator=self.generator))
            patch = torch.rot90(patch, k % 4, dims=(-2, -1))
            if k >= 4:
                patch = patch.flip(-1)
        return patch

    def next_batch(self, batch_size: int) -> Batch:
        batch_size = _validate.integer("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        patches = []
        for _ in range(batch_size):
            if self.position == len(self.order):
                self.epoch += 1
                self.order = self._new_order()
                self.position = 0
            patches.append(self._patch(int(self.order[self.position])))
            self.position += 1
        clean = torch.stack(patches).contiguous()
        sigma = self.noise.sigmas(batch_size, self.generator)
        return Batch(clean, noisy_copies(clean, sigma, self.generator), sigma)

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "order": self.order.clone(),
            "position": self.position,
        }

    def load_state_dict(self, state: dict) -> None:
        keys = ("generator", "epoch", "order", "position")
        missing = [k for k in keys if not isinstance(state, dict) or k not in state]
        if missing:
            raise ValueError(
                f"state must be a dict from PatchSampler.state_dict; it lacks {', '.join(missing)}"
            )
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.order = state["order"].clone()
        self.position = int(state["position"])

"""Inpainting: keep the measured pixels, lose the others.

    M^T x = m * x,   M c = m * c,   P x = M M^T x = m * x

with m the 0/1 mask (1 = measured pixel), applied to every channel. The coefficients are the
measured pixels left in place on the image grid ([B, C, H, W], zeros at the missing pixels), so
M is the identity restricted to the measured pixels and M^T M = I on that coefficient space.

This is the inpainting operator of Kadkhodaie & Simoncelli, "Solving linear inverse problems
using the prior implicit in a denoiser", NeurIPS 2021 (random missing pixels and a missing
block). A mask [H, W] is shared by the batch; a mask [B, 1, H, W] gives each image its own.
"""

import numpy as np
import torch

from pnpfast import _validate
from pnpfast.operators.orthonormal import OrthonormalOperator


class Inpainting(OrthonormalOperator):
    """Pixel masking, ``measure(x) = lift(x) = project(x) = mask * x``.

    ``mask``: a tensor or numpy array of shape [H, W] (shared by the batch) or [B, 1, H, W] (one
    per image; B = 1 is shared too), bool or a floating/integer array holding only 0 and 1;
    True / 1 marks a measured pixel, and each mask must measure at least one pixel (an all-zero
    mask is refused: A = 0 leaves nothing to restore from); NaN or any value other than 0 and 1
    is refused too (a soft mask is not an inpainting operator). Images are [B, C, H, W] float32/float64; the mask applies to
    every channel and is moved to the image's device and dtype (cached per device and dtype).
    Missing pixels are multiplied by 0, so they must hold finite values (NaN * 0 is NaN).
    """

    def __init__(self, mask: torch.Tensor | np.ndarray):
        if isinstance(mask, np.ndarray):
            mask = torch.from_numpy(np.ascontiguousarray(mask))
        if not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"mask must be a tensor or numpy array of shape [H, W] or [B, 1, H, W], not {type(mask).__name__}"
            )
        if not (mask.dim() == 2 or (mask.dim() == 4 and mask.shape[1] == 1)):
            raise ValueError(
                f"mask must have shape [H, W] or [B, 1, H, W], got shape {tuple(mask.shape)}"
            )
        if mask.numel() == 0:
            raise ValueError(f"mask must not be empty, got shape {tuple(mask.shape)}")
        _validate.not_empty("mask", mask)  # the meta device
        if mask.is_complex():
            raise TypeError(f"mask must be bool, floating or integer, not {mask.dtype}")
        if mask.dtype != torch.bool:
            bad = (mask != 0) & (mask != 1)
            if bool(bad.any()):
                value = mask[bad][0].item()
                raise ValueError(f"mask must hold only 0 and 1 (or be bool), found {value}")
            mask = mask != 0
        # no measured pixel: A = 0, so every solve returns its start (or divides by
        # ||A^T A|| = 0 for its default step) and the sampler has nothing to condition on
        empty = ~mask.flatten(1).any(1) if mask.dim() == 4 else ~mask.any().view(1)
        if bool(empty.any()):
            which = "" if mask.dim() == 2 else f" (masks {empty.nonzero().flatten().tolist()})"
            raise ValueError(
                f"mask measures no pixel{which}: it is all 0 / False, so there is nothing to "
                "restore from; True / 1 marks a measured pixel"
            )
        # a copy, so that later changes to the caller's tensor cannot desynchronise the cache
        mask = mask.detach().clone().contiguous()
        self._shared = mask.dim() == 2
        self._mask = mask
        self._bool = mask.view(1, 1, *mask.shape) if self._shared else mask  # [Bm, 1, H, W]
        self._cache: dict[tuple, torch.Tensor] = {}

    @classmethod
    def random(cls, shape, missing: float, seed: int = 0) -> "Inpainting":
        """Exactly round(missing * H * W) missing pixels per image, chosen uniformly at random.

        ``shape``: (H, W) for one mask shared by the batch, or (B, H, W) for a different mask per
        image. ``missing``: the fraction of missing pixels, in [0, 1), refused when it rounds to
        every pixel. ``seed`` (in [0, 2**63)) seeds a torch.Generator (default 0), so the same
        arguments give the same masks.
        """
        if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) not in (2, 3):
            raise ValueError(f"shape must be (H, W) or (B, H, W), got {shape!r}")
        dims = [_validate.integer(f"shape[{i}]", n, 1) for i, n in enumerate(shape)]
        missing = _validate.number("missing", missing, 0, 1, high_open=True, hint="(a fraction)")
        seed = _validate.seed("seed", seed)
        B = dims[0] if len(dims) == 3 else 1
        H, W = dims[-2:]
        n_missing = round(float(missing) * H * W)
        if n_missing == H * W:
            raise ValueError(
                f"missing={missing} of a {H}x{W} image rounds to all {H * W} pixels missing: "
                "at least one pixel must be measured"
            )
        g = torch.Generator().manual_seed(seed)
        # the first n_missing entries of a uniformly random permutation, one permutation per row
        order = torch.rand(B, H * W, generator=g).argsort(dim=1)
        mask = torch.ones(B, H * W, dtype=torch.bool)
        mask.scatter_(1, order[:, :n_missing], False)
        return cls(mask.view(H, W) if len(dims) == 2 else mask.view(B, 1, H, W))

    @classmethod
    def block(cls, H: int, W: int, top: int, left: int, height: int, width: int) -> "Inpainting":
        """A missing rectangle, rows top .. top + height - 1 and columns left .. left + width - 1
        of an H x W image, shared by the batch; the rectangle must fit inside the image and
        leave at least one pixel measured."""
        H, W = _validate.integer("H", H, 1), _validate.integer("W", W, 1)
        top, left = _validate.integer("top", top, 0), _validate.integer("left", left, 0)
        height, width = _validate.integer("height", height, 1), _validate.integer("width", width, 1)
        if top + height > H or left + width > W:
            raise ValueError(
                f"block of size {height}x{width} at (top={top}, left={left}) does not fit in an image of size {H}x{W}"
            )
        if height == H and width == W:
            raise ValueError(
                f"block of size {height}x{width} covers the whole {H}x{W} image: at least one "
                "pixel must be measured"
            )
        mask = torch.ones(H, W, dtype=torch.bool)
        mask[top : top + height, left : left + width] = False
        return cls(mask)

    @property
    def mask(self) -> torch.Tensor:
        """The bool mask, [H, W] or [B, 1, H, W] as given; True = measured."""
        return self._mask

    @property
    def fraction_measured(self) -> float | torch.Tensor:
        """Fraction of measured pixels: a float for an [H, W] mask, a float64 tensor [B] for a
        [B, 1, H, W] mask."""
        if self._shared:
            return float(self._mask.double().mean())
        return self._mask.double().mean(dim=(1, 2, 3))

    def check_input(self, name: str, x: torch.Tensor) -> None:
        """Raise if x is not an image this mask can be applied to (size or batch mismatch)."""
        _validate.image(name, x, finite=False)
        H, W = self._bool.shape[-2:]
        if x.shape[-2:] != (H, W):
            raise ValueError(
                f"mask has size {H}x{W} but {name} has size {x.shape[-2]}x{x.shape[-1]}"
            )
        if self._bool.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"mask holds {self._bool.shape[0]} masks but {name} has batch size {x.shape[0]}"
            )

    def image_shape(self, y: torch.Tensor, name: str = "y") -> tuple[int, ...]:
        """The measured pixels stay on the image grid: y [B, C, H, W] measures images of its
        own shape (``check_input`` says why y is not one)."""
        self.check_input(name, y)
        return tuple(y.shape)

    def _weights(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = self._bool.to(device=x.device, dtype=x.dtype)
        return self._cache[key]

    def fused_projection(self, like: torch.Tensor) -> dict:
        """P = the mask, [Bm, 1, H, W] in like's dtype and device (see OrthonormalOperator);
        like [B, C, H, W] with Bm dividing B (image b uses mask b // (B / Bm), as
        ``pnpfast.ops.constrained_step`` reads it)."""
        _validate.image("like", like, finite=False)
        H, W = self._bool.shape[-2:]
        Bm = self._bool.shape[0]
        if like.shape[-2:] != (H, W) or like.shape[0] % Bm:
            raise ValueError(
                f"mask holds {Bm} masks of size {H}x{W}, but like has shape {tuple(like.shape)} "
                f"(its size must be {H}x{W} and its batch a multiple of {Bm})"
            )
        return {"mask": self._weights(like)}

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """M^T x = mask * x. x: [B, C, H, W]; returns [B, C, H, W], zeros at missing pixels."""
        self.check_input("x", x)
        return self._weights(x) * x

    def lift(self, c: torch.Tensor) -> torch.Tensor:
        """M c = mask * c. c: [B, C, H, W] coefficients; returns [B, C, H, W]."""
        self.check_input("c", c)
        return self._weights(c) * c

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """M M^T x = mask * x. x: [B, C, H, W]."""
        return self.measure(x)

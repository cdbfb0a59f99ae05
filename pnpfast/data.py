"""Built-in example inputs: images bundled with scikit-image and a motion-blur kernel.

They need no file and no network, so ``pnpfast demo``, the README's example and quick tests can
make a degraded image anywhere pnpfast is installed:

    x = pnpfast.data.astronaut(128)                   # [1, 3, 128, 128] on [0, 1]
    A = pnpfast.operators.Blur(pnpfast.data.motion_kernel())
    y = A(x) + 7.65 / 255 * torch.randn_like(x)
"""

import math

import torch

from pnpfast import _validate

__all__ = ["MOTION_ANGLE", "MOTION_SIZE", "MOTION_SIZE_MAX", "astronaut", "camera", "motion_kernel"]

MOTION_SIZE = 15
MOTION_ANGLE = 30.0
# the largest motion_kernel: 1001 pixels of motion is far beyond any blur a PnP solver restores,
# and a bound keeps a typo (10**6) from allocating a terabyte
MOTION_SIZE_MAX = 1001


def _centre_crop(pixels, size: int | None, name: str) -> torch.Tensor:
    """[H, W] or [H, W, C] uint8 array -> [1, C, size, size] float32 on [0, 1], centre crop."""
    image = torch.from_numpy(pixels.copy())
    if image.ndim == 2:
        image = image.unsqueeze(-1)
    height, width = image.shape[:2]
    if size is not None:
        size = _validate.integer(
            "size",
            size,
            1,
            min(height, width),
            hint=f"(the side of the centre crop of the {height}x{width} {name} image) or None "
            "for the whole image",
        )
        top, left = (height - size) // 2, (width - size) // 2
        image = image[top : top + size, left : left + size]
    return (image.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0).contiguous()


def astronaut(size: int | None = None) -> torch.Tensor:
    """The astronaut image bundled with scikit-image (Eileen Collins, NASA; 512x512 RGB).

    Args:
        size: side of the square centre crop, 1..512; None (default) for the whole image.

    Returns:
        [1, 3, size, size] float32 tensor on [0, 1] (pixel value / 255).
    """
    from skimage import data

    return _centre_crop(data.astronaut(), size, "astronaut")


def camera(size: int | None = None) -> torch.Tensor:
    """The cameraman image bundled with scikit-image (512x512 gray).

    Args:
        size: side of the square centre crop, 1..512; None (default) for the whole image.

    Returns:
        [1, 1, size, size] float32 tensor on [0, 1] (pixel value / 255).
    """
    from skimage import data

    return _centre_crop(data.camera(), size, "camera")


def motion_kernel(size: int = MOTION_SIZE, angle: float = MOTION_ANGLE) -> torch.Tensor:
    """A straight motion-blur kernel: an anti-aliased line segment through the centre.

    The segment has length ``size - 1`` pixels, centre c = (size - 1) / 2 and direction
    u = (cos angle, sin angle) measured counter-clockwise from the +x axis (columns to the
    right, rows upwards). Each pixel p gets the weight max(0, 1 - d(p)), d(p) the Euclidean
    distance from its centre to the segment, and the weights are normalised to sum 1. It is
    deterministic and needs no file; the demo uses the defaults, 15x15 at 30 degrees.

    Args:
        size: odd side of the square kernel, 3..1001 (default 15).
        angle: direction of the motion in degrees, finite (default 30).

    Returns:
        [size, size] float32 tensor, non-negative, summing to 1, symmetric under 180-degree
        rotation.
    """
    size = _validate.integer("size", size, 3, MOTION_SIZE_MAX, hint="(odd)")
    if size % 2 == 0:
        raise ValueError(f"size must be odd (the kernel has a centre pixel), not {size}")
    angle = _validate.number("angle", angle, hint="(in degrees)")
    theta = math.radians(angle)
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - half
    px = coords.view(1, size).expand(size, size)  # column offset, to the right
    py = -coords.view(size, 1).expand(size, size)  # row offset, upwards
    ux, uy = math.cos(theta), math.sin(theta)
    t = (px * ux + py * uy).clamp(-half, half)  # foot of the perpendicular on the segment
    dist = torch.hypot(px - t * ux, py - t * uy)
    k = (1.0 - dist).clamp_min(0.0)
    return (k / k.sum()).to(torch.float32)

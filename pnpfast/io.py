"""Reading and writing images and blur kernels.

Images are [1, C, H, W] float32 tensors on the [0, 1] scale, C = 1 (gray) or 3 (RGB), in the
pixel order stored in the file (EXIF orientation tags are not applied). Kernels are [h, w]
float32 tensors with row index first. Files that cannot be read raise ``ImageReadError`` or
``KernelReadError`` (both ValueError), whose message names the path and the reason.

``read_image``/``write_image`` give and take the pixels alone, 8 bits on writing;
``read_image_file``/``write_image_file`` keep the bit depth (8 or 16) and the alpha channel, so
that a production run writes what it read: ``write_image_file(out, x, alpha=f.alpha,
bit_depth=f.bit_depth)`` of ``f = read_image_file(src)`` gives back ``src``'s integer samples
exactly when ``x`` is ``f.pixels``.
"""

import contextlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pnpfast import _validate
from pnpfast._atomic import atomic_open
from pnpfast._validate import not_empty

__all__ = [
    "ImageFile",
    "ImageReadError",
    "KernelReadError",
    "read_image",
    "read_image_file",
    "read_kernel",
    "side_by_side",
    "write_image",
    "write_image_file",
]

PathLike = str | os.PathLike


class ImageReadError(ValueError):
    """An image file is missing, unreadable or of an unsupported kind; the message names it."""

    def __init__(self, path: PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class KernelReadError(ValueError):
    """A kernel file is missing, unreadable or holds no valid kernel; the message names it."""

    def __init__(self, path: PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read kernel {self.path}: {reason}")


def _path(name: str, path) -> Path:
    """``path`` as a Path; TypeError naming the argument for anything but a str or PathLike."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, not {type(path).__name__}")
    return Path(path)


# ---------------------------------------------------------------------------------------------
# images


def _pixels(img, path: PathLike) -> np.ndarray:
    """A Pillow image as an [H, W, C] float32 array on the [0, 1] scale."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return (np.asarray(img, dtype=np.float32) / 65535.0)[..., None]
    if mode == "I":
        # Pillow's 32-bit integer mode; PNG and TIFF files land here with 16-bit samples
        a = np.asarray(img)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageReadError(path, "32-bit integer samples outside the 16-bit range")
        return (a.astype(np.float32) / 65535.0)[..., None]
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ImageReadError(path, "floating-point samples contain NaN or Inf")
        return np.clip(a, 0.0, 1.0)[..., None]
    if mode in ("1", "L", "LA", "La"):
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    if img.mode not in ("L", "RGB"):
        raise ImageReadError(path, f"unsupported pixel mode {img.mode}")
    a = np.asarray(img, dtype=np.float32) / 255.0
    return a[..., None] if a.ndim == 2 else a


@contextlib.contextmanager
def _image_read_errors(path: PathLike):
    """Whatever reading ``path`` raises, as an ImageReadError that names the file and why."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory") from None
    except UnidentifiedImageError:
        if os.path.getsize(path) == 0:
            raise ImageReadError(path, "the file is empty") from None
        raise ImageReadError(
            path, "not an image file, or a format Pillow cannot identify (or a damaged header)"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            path,
            f"too large for Pillow's guard against decompression bombs ({exc}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS to read it",
        ) from exc
    except (OSError, SyntaxError, ValueError, zlib.error) as exc:
        raise ImageReadError(path, f"corrupt or truncated ({exc})") from exc


def read_image(path: PathLike) -> torch.Tensor:
    """Read an image file (PNG, JPEG, TIFF, BMP, or anything else Pillow opens).

    Gray images give C = 1, colour images C = 3; an alpha channel is dropped (not composited)
    and palette images are expanded. 8-bit samples are divided by 255, 16-bit ones (16-bit gray
    PNG and TIFF) by 65535, floating-point TIFF samples are clipped to [0, 1]. Of a multi-frame
    file only the first frame is read. Pillow reduces 16-bit RGB PNGs to 8 bits per channel.

    Returns:
        [1, C, H, W] float32 tensor in [0, 1].

    Raises:
        ImageReadError: the file is missing, empty, is not an image, is truncated or corrupt.
        TypeError: ``path`` is not a str or os.PathLike.
    """
    from PIL import Image

    _path("path", path)
    with _image_read_errors(path), Image.open(path) as img:
        img.load()
        a = _pixels(img, path)
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    return x.unsqueeze(0)


def write_image(path: PathLike, x: torch.Tensor) -> None:
    """Write an image atomically: to a temporary file in the same folder, then os.replace.

    A crash or an error while encoding never leaves a partial file at ``path``: it either keeps
    its previous content or does not exist. The format follows the extension of ``path``
    (.png, .jpg, .tif, .bmp, ...). Values are clamped to [0, 1] and rounded to 8 bits,
    ``round(255 clamp(x, 0, 1))``.

    Args:
        path: output file; its folder must exist.
        x: [1, C, H, W] or [C, H, W] floating tensor (any device), C = 1 or 3, finite.

    Raises:
        TypeError: ``path`` or ``x`` of the wrong type or dtype.
        ValueError: a bad shape, NaN or Inf, or an extension Pillow cannot write.
        FileNotFoundError, NotADirectoryError, IsADirectoryError: the folder is missing or
            ``path`` is a folder (named in the message).
        OSError: an image the format cannot hold (path and format named), or an error of the
            file system.
    """
    path = _path("path", path)
    _write_pillow(path, _image_argument("x", x, (1, 3)))


def _write_pillow(path: Path, x: torch.Tensor) -> None:
    """[S, H, W] checked samples on [0, 1] written at 8 bits by Pillow, in the format of
    ``path``'s extension, atomically (``write_image``'s errors)."""
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the image format of {path} from its extension; use .png, .jpg, .tif "
            "or .bmp"
        )
    Image.init()
    if fmt not in Image.SAVE:
        raise ValueError(f"cannot write {path}: Pillow reads {fmt} files but cannot write them")

    a = _quantise(x, 8)  # [H, W, S]
    img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
    with atomic_open(path) as f:
        try:
            img.save(f, format=fmt)
        except OSError as exc:
            if exc.errno is not None:  # from the file system (disk full, permissions): as it is
                raise
            # Pillow's encoders raise a bare OSError (no path) for an image the format cannot
            # hold, or for a format whose writer is not installed
            raise OSError(
                f"cannot write {path} as {fmt}: {exc}; PNG holds any gray or RGB image"
            ) from exc


# ---------------------------------------------------------------------------------------------
# images with their bit depth and alpha


@dataclass(frozen=True)
class ImageFile:
    """An image as read from a file, with what ``write_image_file`` needs to write it back.

    Attributes:
        pixels: [1, C, H, W] float32 on [0, 1], C = 1 (gray) or 3 (RGB): the integer samples
            divided by 2**bit_depth - 1.
        alpha: [1, 1, H, W] float32 on [0, 1] (unassociated: the colour samples are not
            premultiplied), or None when the file has no alpha channel.
        bit_depth: 8 or 16, the bits per sample stored in the file.
        format: the file's format as Pillow names it, lower case ("png", "tiff", "jpeg", ...).
    """

    pixels: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    format: str

    def __post_init__(self):
        x = self.pixels
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"pixels must be a [1, C, H, W] tensor, not {type(x).__name__}")
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"pixels must have shape [1, C, H, W] with C = 1 or 3, got {tuple(x.shape)}"
            )
        if self.alpha is not None:
            a = self.alpha
            if not isinstance(a, torch.Tensor):
                raise TypeError(
                    f"alpha must be a [1, 1, H, W] tensor or None, not {type(a).__name__}"
                )
            if tuple(a.shape) != (1, 1, *x.shape[2:]):
                raise ValueError(
                    f"alpha must have shape (1, 1, {x.shape[2]}, {x.shape[3]}) like pixels, "
                    f"got {tuple(a.shape)}"
                )
        if isinstance(self.bit_depth, bool) or self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, not {self.bit_depth!r}")
        if not isinstance(self.format, str):
            raise TypeError(f"format must be a str, not {type(self.format).__name__}")


def _to_file(pixels: np.ndarray, alpha: np.ndarray | None, depth: int, fmt: str) -> ImageFile:
    """[H, W, C] and [H, W] integer samples as an ImageFile (divided by 2**depth - 1)."""
    top = float(2**depth - 1)
    x = torch.from_numpy(np.ascontiguousarray((pixels / top).astype(np.float32).transpose(2, 0, 1)))
    a = None
    if alpha is not None:
        a = torch.from_numpy(np.ascontiguousarray((alpha / top).astype(np.float32)))[None, None]
    return ImageFile(x.unsqueeze(0), a, depth, fmt)


def _split_alpha(a: np.ndarray, path: PathLike):
    """[H, W, S] samples, S = 1..4, as (colour [H, W, C], alpha [H, W] or None)."""
    s = a.shape[-1]
    if s in (1, 3):
        return a, None
    if s in (2, 4):
        return a[..., :-1], a[..., -1]
    raise ImageReadError(
        path, f"{s} samples per pixel; expected gray or RGB, with or without alpha"
    )


def _png16_samples(path: PathLike, img) -> np.ndarray | None:
    """The 16-bit samples [H, W, S] of a 16-bit gray+alpha, RGB or RGBA PNG, or None when ``img``
    is none of those. Pillow decodes these only to 8 bits (the high byte). Its PNG decoder undoes
    the row filters before it unpacks the samples, so the same stream decoded with the
    little-endian raw mode yields the low byte of each big-endian sample: two decodes give all 16
    bits. Gray+alpha has no such raw mode; its 4 bytes per pixel are read whole as 8-bit RGBA."""
    from PIL import Image

    if len(img.tile) != 1:
        return None
    tile = img.tile[0]
    args = tile[3]
    rawmode = args[0] if isinstance(args, tuple) else args
    if tile[0] != "zip" or rawmode not in ("RGB;16B", "RGBA;16B", "LA;16B"):
        return None

    def decode(raw: str) -> np.ndarray:
        with Image.open(path) as im:
            t = im.tile[0]
            new = (raw, *args[1:]) if isinstance(args, tuple) else raw
            im.tile = [t._replace(args=new) if hasattr(t, "_replace") else (*t[:3], new)]
            im.load()
            return np.asarray(im).astype(np.uint16)

    if rawmode == "LA;16B":
        b = decode("RGBA")
        return np.stack([b[..., 0] << 8 | b[..., 1], b[..., 2] << 8 | b[..., 3]], axis=-1)
    img.load()  # its own decode is the high bytes
    return np.asarray(img).astype(np.uint16) << 8 | decode(rawmode.replace(";16B", ";16L"))


def _pillow_samples(path: PathLike, img) -> tuple[np.ndarray, int]:
    """(samples [H, W, S] as stored, bit depth) of an image Pillow decodes in full."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageReadError(path, "32-bit integer samples outside the 16-bit range")
        return a.astype(np.uint16)[..., None], 16
    if mode == "F":
        raise ImageReadError(
            path,
            "floating-point samples; bit depth and alpha are kept for 8- and 16-bit integer "
            "images only (read_image reads this file, clipped to [0, 1])",
        )
    transparent = "transparency" in img.info
    if mode in ("1", "L"):
        # a gray value marked transparent (tRNS) becomes an alpha channel; the image stays gray
        a = (
            np.asarray(img.convert("RGBA"))[..., [0, 3]]
            if transparent
            else np.asarray(img.convert("L"))
        )
    elif mode in ("LA", "La"):
        a = np.asarray(img.convert("LA"))
    elif mode in ("P", "PA", "RGB"):
        a = np.asarray(img.convert("RGBA" if transparent or mode == "PA" else "RGB"))
    elif mode in ("RGBA", "RGBa"):
        a = np.asarray(img.convert("RGBA"))
    else:  # CMYK, YCbCr, LAB, HSV, ...
        a = np.asarray(img.convert("RGB"))
    return (a[..., None] if a.ndim == 2 else a), 8


def _tiff_samples(path: PathLike) -> tuple[np.ndarray, int] | None:
    """(samples [H, W, S], bit depth) of an 8- or 16-bit gray or RGB TIFF's first page, or None
    for what Pillow reads as well: other photometric interpretations (palette, CMYK, YCbCr, ...)
    samples of fewer than 8 bits, and 8-bit or 16-bit gray pages compressed with a codec that
    tifffile lacks without imagecodecs (LZW, JPEG)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            if int(page.photometric) not in (1, 2):  # MINISBLACK, RGB
                return None
            axes, bits, spp = page.axes, page.bitspersample, page.samplesperpixel
            if bits < 8:  # bilevel and 2-, 4-bit gray: Pillow expands them to 8 bits
                return None
            try:
                a = page.asarray()
            except ValueError as exc:
                if "imagecodecs" not in str(exc):
                    raise
                if bits == 8 or (bits == 16 and spp == 1):
                    return None  # Pillow decodes these whole
                raise ImageReadError(
                    path,
                    f"{bits}-bit TIFF with {spp} samples per pixel compressed with "
                    f"{page.compression.name}: decoding it without losing bits needs the "
                    "imagecodecs package (pip install imagecodecs); read_image reads it at 8 bits",
                ) from exc
    except ImageReadError:
        raise
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise ImageReadError(path, f"corrupt or truncated TIFF ({exc})") from exc
    if a.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(
            path,
            f"{a.dtype} samples; bit depth and alpha are kept for 8- and 16-bit integer "
            "images only (read_image reads this file)",
        )
    if axes.startswith("S"):
        a = np.moveaxis(a, 0, -1)  # planar configuration: one plane per sample
    return (a[..., None] if a.ndim == 2 else a), 8 * a.dtype.itemsize


def read_image_file(path: PathLike) -> ImageFile:
    """Read an image file keeping its bit depth and alpha channel.

    PNG: 8- and 16-bit gray, gray+alpha, RGB, RGBA (interlaced or not); palette and 1-, 2-,
    4-bit images come as 8-bit; in 8-bit gray, RGB and palette images the colour marked
    transparent (tRNS) becomes an alpha channel, in 16-bit ones it is ignored. TIFF (first
    page, read with tifffile): 8- and 16-bit gray or RGB with an optional extra sample, read as
    alpha. Other formats (JPEG, BMP, WebP, ...) through Pillow, 8-bit. Samples are divided by
    2**bit_depth - 1, so ``write_image_file`` with the same bit depth writes them back exactly.

    Returns:
        ImageFile(pixels [1, C, H, W] float32, alpha [1, 1, H, W] float32 or None, bit_depth 8
        or 16, format "png" / "tiff" / ...).

    Raises:
        ImageReadError: the file is missing, empty, not an image, truncated or corrupt, or holds
            floating-point or 32-bit samples (``read_image`` reads those).
        TypeError: ``path`` is not a str or os.PathLike.
    """
    from PIL import Image

    _path("path", path)
    with _image_read_errors(path):
        with open(path, "rb") as f:
            magic = f.read(4)
        samples = None
        fmt = "tiff"
        # tifffile first: Pillow neither identifies 16-bit gray+alpha TIFFs nor keeps 16-bit RGB
        if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            samples = _tiff_samples(path)
        if samples is None:
            with Image.open(path) as img:
                fmt = (img.format or "").lower()
                if fmt == "png":
                    a16 = _png16_samples(path, img)
                    if a16 is not None:
                        samples = (a16, 16)
                if samples is None:
                    img.load()
                    samples = _pillow_samples(path, img)
    a, depth = samples
    colour, alpha = _split_alpha(a, path)
    return _to_file(colour, alpha, depth, fmt)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(a: np.ndarray) -> bytes:
    """A 16-bit PNG of [H, W, S] uint16 samples, S = 1 (gray), 2 (gray+alpha), 3 (RGB) or 4
    (RGBA): signature, IHDR, one zlib-compressed IDAT with filter type 0 (none) on every row,
    IEND (PNG specification, ISO/IEC 15948). Pillow cannot write 16-bit colour PNGs."""
    h, w, s = a.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[s]
    rows = np.ascontiguousarray(a, dtype=">u2").view(np.uint8).reshape(h, w * s * 2)
    scanlines = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter byte 0
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def _image_argument(name: str, x, channels: tuple[int, ...]) -> torch.Tensor:
    """[1, C, H, W] or [C, H, W] floating, finite, C in ``channels``: as [C, H, W]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [1, C, H, W], not {type(x).__name__}"
        )
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(
                f"{name} must hold one image ([1, C, H, W]), got shape {tuple(x.shape)}"
            )
        x = x[0]
    if x.dim() != 3 or x.shape[0] not in channels:
        want = " or ".join(str(c) for c in channels)
        raise ValueError(
            f"{name} must have shape [1, C, H, W] or [C, H, W] with C = {want}, got "
            f"{tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point on the [0, 1] scale, not {x.dtype}")
    not_empty(name, x)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def _quantise(x: torch.Tensor, depth: int) -> np.ndarray:
    """round((2**depth - 1) clip(x, 0, 1)) as [H, W, C] unsigned integers (float64 product, so
    that k / 65535 read as float32 comes back to k)."""
    top = 2**depth - 1
    q = (x.detach().to("cpu", torch.float64).clamp(0.0, 1.0) * top).round()
    return q.permute(1, 2, 0).numpy().astype(np.uint16 if depth == 16 else np.uint8)


_TIFF = (".tif", ".tiff")


def write_image_file(
    path: PathLike, pixels: torch.Tensor, *, alpha: torch.Tensor | None = None, bit_depth: int = 8
) -> None:
    """Write an image with its bit depth and alpha channel, atomically (``pnpfast._atomic``: a
    crash leaves the old file or none, never a part).

    Samples are ``round((2**bit_depth - 1) clip(x, 0, 1))``. PNG (.png): 8- or 16-bit gray,
    gray+alpha, RGB, RGBA (16-bit by pnpfast's own encoder, the rest by Pillow). TIFF (.tif,
    .tiff, by tifffile, zlib-compressed): the same, alpha as an unassociated extra sample.
    Other extensions Pillow writes (.jpg, .bmp, ...) take 8 bits and no alpha (``write_image``).

    Args:
        path: output file; its folder must exist.
        pixels: [1, C, H, W] or [C, H, W] floating tensor, C = 1 or 3, finite.
        alpha: None, or [1, 1, H, W] / [1, H, W] floating tensor on [0, 1], finite.
        bit_depth: 8 or 16.

    Raises:
        TypeError: an argument of the wrong type or dtype.
        ValueError: a bad shape, NaN or Inf, ``bit_depth`` not 8 or 16, or 16 bits or alpha for
            a format that holds neither.
        FileNotFoundError, NotADirectoryError, IsADirectoryError, OSError: as ``write_image``.
    """
    p = _path("path", path)
    x = _image_argument("pixels", pixels, (1, 3))
    depth = _validate.integer("bit_depth", bit_depth, 1)
    if depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {depth}")
    a = None
    if alpha is not None:
        a = _image_argument("alpha", alpha, (1,))
        if a.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"alpha must have the height and width of pixels {tuple(x.shape[1:])}, got "
                f"{tuple(a.shape[1:])}"
            )
    ext = p.suffix.lower()
    if ext != ".png" and ext not in _TIFF:
        if depth != 8 or a is not None:
            raise ValueError(
                f"cannot write {p} with {'16 bits' if depth == 16 else 'alpha'}: only .png and "
                ".tif/.tiff hold 16-bit samples and alpha"
            )
        _write_pillow(p, x)
        return
    samples = _quantise(torch.cat([x, a.to(x.dtype)]) if a is not None else x, depth)
    if ext in _TIFF:
        import tifffile

        kwargs = {"extrasamples": ("unassalpha",)} if a is not None else {}
        photometric = "rgb" if x.shape[0] == 3 else "minisblack"
        if samples.shape[-1] == 1:
            samples = samples[..., 0]  # a plain [H, W] page, as other software writes gray
        buffer = io.BytesIO()  # tifffile wants a named file or a buffer, not a bare descriptor
        tifffile.imwrite(buffer, samples, photometric=photometric, compression="zlib", **kwargs)
        with atomic_open(p) as f:
            f.write(buffer.getvalue())
        return
    if depth == 16:
        data = _png16(samples)
        with atomic_open(p) as f:
            f.write(data)
        return
    from PIL import Image

    img = Image.fromarray(samples[..., 0] if samples.shape[-1] == 1 else samples)
    with atomic_open(p) as f:
        img.save(f, format="PNG")


def side_by_side(images: list[torch.Tensor], gap: int = 4) -> torch.Tensor:
    """Concatenate images left to right, separated by white columns ``gap`` pixels wide.

    Gray images are repeated to three channels when the list mixes gray and colour; images of
    different heights are aligned at the top and padded below with white (1.0).

    Args:
        images: non-empty list of [1, C, H_i, W_i] floating tensors, C = 1 or 3, on one device.
        gap: width of the white separators in pixels (default 4).

    Returns:
        [1, C, max H_i, sum W_i + gap (n - 1)] tensor with the dtype of the first image.
    """
    if not isinstance(images, (list, tuple)):
        raise TypeError(
            f"images must be a list of [1, C, H, W] tensors, not {type(images).__name__}"
        )
    if not images:
        raise ValueError("side_by_side needs at least one image")
    gap = _validate.integer("gap", gap, 0)
    for i, im in enumerate(images):
        if not isinstance(im, torch.Tensor):
            raise TypeError(f"images[{i}] must be a [1, C, H, W] tensor, not {type(im).__name__}")
        if im.dim() != 4 or im.shape[0] != 1:
            raise ValueError(f"images[{i}] must be a [1, C, H, W] tensor, got {tuple(im.shape)}")
        if im.shape[1] not in (1, 3):
            raise ValueError(f"images[{i}] must have 1 or 3 channels, got {im.shape[1]}")
        if not im.is_floating_point():
            raise TypeError(
                f"images[{i}] must be floating point on the [0, 1] scale, not {im.dtype}"
            )
        not_empty(f"images[{i}]", im)
    first = images[0]
    channels = max(im.shape[1] for im in images)
    height = max(im.shape[2] for im in images)
    width = sum(im.shape[3] for im in images) + gap * (len(images) - 1)
    out = torch.ones(1, channels, height, width, dtype=first.dtype, device=first.device)
    col = 0
    for im in images:
        h, w = im.shape[2], im.shape[3]
        out[:, :, :h, col : col + w] = im.to(first.dtype).expand(1, channels, h, w)
        col += w + gap
    return out


# ---------------------------------------------------------------------------------------------
# kernels


def _is_numeric(a) -> bool:
    return (
        isinstance(a, np.ndarray)
        and a.dtype != np.bool_
        and (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating))
    )


def _pick(path: PathLike, a: np.ndarray, index: int, what: str) -> np.ndarray:
    """The index-th kernel of a [n, h, w] stack."""
    if index >= a.shape[0]:
        raise KernelReadError(path, f"index {index} is out of range for {what} of {a.shape[0]}")
    return a[index]


def _single(path: PathLike, a: np.ndarray, index: int, what: str) -> np.ndarray:
    if index != 0:
        raise KernelReadError(path, f"{what} holds a single kernel; index {index} does not apply")
    return a


def _kernel_npy(path: PathLike, index: int) -> np.ndarray:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):  # .npy header, or a .npz (zip)
        raise KernelReadError(path, "not a .npy file (it does not start with the .npy header)")
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise KernelReadError(path, "no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise KernelReadError(path, f"not a readable .npy array ({exc})") from exc
    if not isinstance(a, np.ndarray):
        raise KernelReadError(path, "holds several arrays (.npz); save one kernel as .npy")
    if not _is_numeric(a):
        raise KernelReadError(path, f"holds a {a.dtype} array, not real numbers")
    if a.ndim == 2:
        return _single(path, a, index, "the array")
    if a.ndim == 3:
        return _pick(path, a, index, "a stack")
    raise KernelReadError(path, f"expected a [h, w] kernel or an [n, h, w] stack, got {a.shape}")


def _kernel_png(path: PathLike, index: int) -> np.ndarray:
    try:
        x = read_image(path)[0]
    except ImageReadError as exc:
        raise KernelReadError(path, exc.reason) from None
    if x.shape[0] == 3 and not (torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])):
        raise KernelReadError(path, "a kernel image must be grayscale, this one has colour")
    a = x[0].numpy().astype(np.float64)
    a = _single(path, a, index, "an image")
    total = a.sum()
    if total <= 0:
        raise KernelReadError(path, "the image is black (its sum is zero)")
    return a / total


def _kernel_mat_v5(path: PathLike, key: str | None, index: int) -> np.ndarray:
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises many kinds of errors on damaged files
        raise KernelReadError(path, f"not a readable MATLAB file ({exc})") from exc
    names = [n for n in data if not n.startswith("__")]
    if key is not None:
        if key not in names:
            raise KernelReadError(path, f"no variable {key!r}; it holds {names}")
        return _from_matlab_value(path, key, data[key], index)
    for n in names:
        if _is_numeric(data[n]) and data[n].ndim == 2:
            return _single(path, data[n], index, f"variable {n!r}")
    for n in names:
        v = data[n]
        if (_is_numeric(v) and v.ndim == 3) or (isinstance(v, np.ndarray) and v.dtype == object):
            return _from_matlab_value(path, n, v, index)
    raise KernelReadError(path, f"no 2-D numeric array, stack or cell among {names}")


def _from_matlab_value(path: PathLike, name: str, v, index: int) -> np.ndarray:
    """A 2-D kernel from a v5 variable: a matrix, an h x w x n stack or a cell of matrices."""
    if isinstance(v, np.ndarray) and v.dtype == object:
        cells = v.flatten(order="F")  # MATLAB's linear order
        cell = _pick(path, cells, index, f"cell {name!r}")
        if not (_is_numeric(cell) and cell.ndim == 2):
            raise KernelReadError(path, f"{name}{{{index + 1}}} is not a 2-D numeric array")
        return cell
    if _is_numeric(v) and v.ndim == 2:
        return _single(path, v, index, f"variable {name!r}")
    if _is_numeric(v) and v.ndim == 3:
        return _pick(path, np.moveaxis(v, -1, 0), index, f"stack {name!r}")
    raise KernelReadError(path, f"variable {name!r} is not a numeric matrix, stack or cell")


_H5_NUMERIC = {
    b"double",
    b"single",
    b"int8",
    b"uint8",
    b"int16",
    b"uint16",
    b"int32",
    b"uint32",
    b"int64",
    b"uint64",
}


def _kernel_mat_v73(path: PathLike, key: str | None, index: int) -> np.ndarray:
    """MATLAB v7.3 (HDF5). h5py shows every array transposed; it is transposed back here."""
    try:
        import h5py
    except ImportError:
        raise KernelReadError(path, "MATLAB v7.3 files need h5py (pip install h5py)") from None
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise KernelReadError(path, f"not a readable MATLAB v7.3 file ({exc})") from exc
    with f:
        names = [n for n in f if not n.startswith("#")]

        def kind(n: str) -> str:
            obj = f[n]
            if not isinstance(obj, h5py.Dataset) or "MATLAB_empty" in obj.attrs:
                return "other"
            cls = obj.attrs.get("MATLAB_class", b"")
            cls = cls.encode() if isinstance(cls, str) else bytes(cls)
            if cls == b"cell":
                return "cell"
            if cls in _H5_NUMERIC and obj.dtype.kind in "iuf":
                return f"{obj.ndim}d"
            return "other"

        if key is not None:
            if key not in names:
                raise KernelReadError(path, f"no variable {key!r}; it holds {names}")
            chosen = key
        else:
            kinds = {n: kind(n) for n in names}
            chosen = next((n for n in names if kinds[n] == "2d"), None)
            if chosen is None:
                chosen = next((n for n in names if kinds[n] in ("3d", "cell")), None)
            if chosen is None:
                raise KernelReadError(path, f"no 2-D numeric array, stack or cell among {names}")
        k = kind(chosen)
        ds = f[chosen]
        if k == "cell":
            refs = ds[()].reshape(-1)  # C order of the transposed shape = MATLAB's linear order
            ref = _pick(path, refs, index, f"cell {chosen!r}")
            cell = f[ref]
            if not isinstance(cell, h5py.Dataset) or cell.ndim != 2 or cell.dtype.kind not in "iuf":
                raise KernelReadError(path, f"{chosen}{{{index + 1}}} is not a 2-D numeric array")
            return np.asarray(cell[()]).T
        if k == "2d":
            return _single(path, np.asarray(ds[()]).T, index, f"variable {chosen!r}")
        if k == "3d":
            # h5py [n, w, h] is MATLAB [h, w, n]: stack index first after transposing h and w
            return _pick(path, np.asarray(ds[()]).transpose(0, 2, 1), index, f"stack {chosen!r}")
        raise KernelReadError(path, f"variable {chosen!r} is not a numeric matrix, stack or cell")


def read_kernel(path: PathLike, key: str | None = None, index: int = 0) -> torch.Tensor:
    """Read a blur kernel from .npy, .png or .mat.

    - ``.npy``: a 2-D array [h, w], or a stack [n, h, w] from which ``index`` is taken.
    - ``.png`` (or another image format): a grayscale image, normalised to sum 1.
    - ``.mat``: MATLAB v5 (scipy.io.loadmat) or v7.3 (HDF5, h5py), in MATLAB orientation (row
      index first). The variable named ``key``, else the first 2-D numeric variable, else the
      first stack (h x w x n) or cell array; of a stack or cell the kernel ``index`` (from 0,
      in MATLAB's column-major order for cells) is taken.

    Only PNG kernels are normalised; the others are returned as stored. Small negative entries
    are allowed (bicubic kernels have them).

    Args:
        path: the file.
        key: name of the MATLAB variable (.mat only).
        index: which kernel of a stack or cell (default 0); must be 0 for a single kernel.

    Returns:
        [h, w] float32 tensor, finite, with a positive sum.

    Raises:
        KernelReadError: missing or unreadable file, no kernel in it, NaN or Inf, sum <= 0.
        TypeError, ValueError: ``path``, ``key`` or ``index`` of the wrong type, a negative
            ``index``.
    """
    p = _path("path", path)
    if key is not None and not isinstance(key, str):
        raise TypeError(
            f"key must be a str (a MATLAB variable name) or None, not {type(key).__name__}"
        )
    index = _validate.integer("index", index, 0)
    ext = p.suffix.lower()
    if key is not None and ext != ".mat":
        raise KernelReadError(path, "key names a MATLAB variable and applies to .mat files only")
    if not p.exists():
        raise KernelReadError(path, "no such file")
    if p.is_dir():
        raise KernelReadError(path, "is a directory")
    if ext == ".npy":
        a = _kernel_npy(path, index)
    elif ext == ".mat":
        from scipy.io.matlab import matfile_version

        try:
            major, _ = matfile_version(path)
        except Exception as exc:  # scipy raises many kinds of errors on damaged files
            raise KernelReadError(path, f"not a readable MATLAB file ({exc})") from exc
        a = _kernel_mat_v73(path, key, index) if major == 2 else _kernel_mat_v5(path, key, index)
    elif ext in (".png", ".bmp", ".tif", ".tiff", ".pgm"):
        a = _kernel_png(path, index)
    else:
        raise KernelReadError(path, f"unknown kernel format {ext!r}; use .npy, .png or .mat")

    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise KernelReadError(path, f"a kernel must be a non-empty 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise KernelReadError(path, "the kernel contains NaN or Inf")
    total = a.sum()
    if not total > 0:
        raise KernelReadError(path, f"the kernel must have a positive sum, got {total:g}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

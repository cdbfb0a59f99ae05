"""Super-resolution: circular blur, then decimation by an integer factor s.

    (A x)[b, c, i, j] = (k_b (*) x[b, c])[s i, s j]      i < H / s, j < W / s

the convolution circular with the kernel centred at (h // 2, w // 2), as ``Blur``, and the
decimation keeping the top-left pixel of each s x s block. The adjoint fills y into an image
of zeros at those pixels and correlates with k. Images are [B, C, H, W] with H and W divisible
by s; measurements [B, C, H / s, W / s]. A kernel [h, w] is shared by the batch, a kernel
[B, h, w] gives each image its own; s = 1 is ``Blur``.

The prox of 1/2 ||A x - y||^2 has the closed form of Zhao et al. (IEEE TIP 2016) in the Fourier
domain (``pnpfast.ops.sr_prox``): the operator declares it with ``decimated_fourier_multiplier``
and ``pnpfast.L2`` caches what depends on (A, y), so a prox is one fft2, one spectral pass and
one ifft2, and A^T A x (``gram``) one fft2 and one ifft2.

Conventions of the codebases this matches (read from their public code, 2026-12):

* DPIR/KAIR (``utils_sisr.classical_degradation``): ``scipy.ndimage.convolve(mode="wrap")``
  then ``x[0::s, 0::s]``; its prox builds the OTF with ``p2o``, a roll by -(h // 2, w // 2).
  Same decimation and, for odd kernels, the same centring as here.
* deepinv ``Downsampling(filter, factor, padding="circular")``: ``conv2d`` with circular
  padding then ``x[..., ::s, ::s]``; the adjoint zero-fills at the same pixels; its FFT prox
  uses ``filter_fft``, a roll by -(h // 2, w // 2) as here (older deepinv rolled by
  -((h - 1) // 2), which moved even-sized kernels by one pixel against its own ``conv2d``).
* deepinv's ``bicubic_filter(s)`` has 4 s taps at half-integer offsets for every s, so with the
  top-left decimation it samples MATLAB's output grid only for s = 2; for s = 3 and 4 its low-
  resolution grid is shifted by (s - 2) / 2 high-resolution pixels from MATLAB ``imresize``.
  ``SuperResolution.bicubic(s)`` places the taps so that A x is MATLAB's
  ``imresize(x, 1/s, "bicubic")`` (with circular borders) for every integer s: the kept pixel
  s i is at distance (s - 1) / 2 from the centre of MATLAB's output pixel i.
"""

import math

import numpy as np
import torch

from pnpfast import _validate
from pnpfast.operators.base import LinearOperator
from pnpfast.operators.blur import Blur, centred_padded
from pnpfast.ops.sr_prox import alias_mean, real_ifft2, spread


def _cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize's "bicubic")."""
    a = np.abs(t)
    inner = (1.5 * a - 2.5) * a * a + 1
    outer = ((-0.5 * a + 2.5) * a - 4) * a + 2
    return np.where(a <= 1, inner, np.where(a < 2, outer, 0.0))


def bicubic_kernel(factor: int) -> torch.Tensor:
    """MATLAB imresize's antialiased bicubic kernel for downscaling by ``factor`` = s, placed for
    ``SuperResolution``: float64 [2R + 1, 2R + 1], odd, summing to 1.

    MATLAB computes output pixel i (0-based) from input pixels p with weights
    cubic((p - c_i) / s) / s, normalised, c_i = s i + (s - 1) / 2. With j = p - s i the weight
    is cubic((j - (s - 1) / 2) / s), nonzero for |j - (s - 1) / 2| < 2 s; the convolution
    (k * x)[s i] = sum_m k[m] x[s i + R - m] takes tap m = R - j. The 2D kernel is the outer
    product of the normalised 1D weights (imresize resizes rows, then columns)."""
    s = _validate.integer("factor", factor, 1, hint="(the downscaling factor)")
    off = (s - 1) / 2
    j = np.arange(math.floor(off - 2 * s), math.ceil(off + 2 * s) + 1)
    wts = _cubic((j - off) / s)
    keep = wts != 0
    j, wts = j[keep], wts[keep]
    R = int(max(-j.min(), j.max()))
    k1 = np.zeros(2 * R + 1)
    k1[R - j] = wts / wts.sum()
    return torch.from_numpy(np.outer(k1, k1))


def gaussian_kernel(std: float, size: int | None = None) -> torch.Tensor:
    """Isotropic Gaussian exp(-d^2 / (2 std^2)), normalised to sum 1, centred on the middle
    tap: float64 [size, size], size odd (default 2 ceil(3 std) + 1). std in high-resolution
    pixels, > 0."""
    std = _validate.number("std", std, 0, 1e4, low_open=True, hint="(pixels)")
    if size is None:
        size = 2 * math.ceil(3 * std) + 1
    size = _validate.integer("size", size, 1, 10_001)
    if size % 2 == 0:
        raise ValueError(f"size must be odd (a centred kernel), not {size}")
    d = np.arange(size) - size // 2
    g = np.exp(-(d**2) / (2 * std**2))
    return torch.from_numpy(np.outer(g, g) / np.outer(g, g).sum())


class SuperResolution(LinearOperator):
    """y = (k * x) decimated by ``factor``; see the module docstring.

    ``kernel``: [h, w] (whole batch) or [B, h, w] (one per image), float32/float64, finite,
    not all zero, no larger than the image; ``factor``: an int >= 1 dividing H and W.
    ``SuperResolution.bicubic(s)`` and ``SuperResolution.gaussian(s, std)`` build the standard
    kernels by name.
    """

    def __init__(self, kernel: torch.Tensor | np.ndarray, factor: int):
        self.factor = _validate.integer("factor", factor, 1, hint="(the decimation factor)")
        self.blur = Blur(kernel)  # checks the kernel: rank, dtype, NaN/Inf, all zero
        self.kernel = self.blur.kernel  # [Bk, h, w]
        self._spectra: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def bicubic(cls, factor: int) -> "SuperResolution":
        """MATLAB ``imresize(x, 1/factor, "bicubic")`` with circular borders (``bicubic_kernel``),
        as DPIR's and deepinv's bicubic super-resolution."""
        return cls(bicubic_kernel(factor), factor)

    @classmethod
    def gaussian(cls, factor: int, std: float | None = None) -> "SuperResolution":
        """A Gaussian blur of ``std`` high-resolution pixels (default: the factor, as deepinv's
        ``Downsampling(filter="gaussian")``) centred on the kept pixel (``gaussian_kernel``).
        deepinv keeps 2 int(std / 0.3 + 1) + 1 taps where this keeps 2 ceil(3 std) + 1: the
        same values, a tail of 0.2-0.3% of the mass dropped (A x differs by ~6e-4 relative)."""
        s = _validate.integer("factor", factor, 1, hint="(the decimation factor)")
        return cls(gaussian_kernel(float(s) if std is None else std), s)

    @property
    def batch(self) -> int:
        """Number of kernels: 1 when shared by the whole batch."""
        return self.kernel.shape[0]

    def check_input(self, name: str, x: torch.Tensor) -> None:
        """Raise if x is not an image of this operator: size divisible by the factor, no smaller
        than the kernel, batch matching the kernels."""
        _validate.image(name, x, finite=False)
        H, W = x.shape[-2:]
        s = self.factor
        if H % s or W % s:
            raise ValueError(
                f"{name} has size {H}x{W}, which is not divisible by the factor {s} "
                "(H and W must both be: crop the image to a multiple of the factor)"
            )
        self.blur.check_input(name, x)

    def image_shape(self, y: torch.Tensor, name: str = "y") -> tuple[int, ...]:
        """[B, C, s h, s w] for measurements y [B, C, h, w]; raise, naming ``name``, if y is not
        a float32/float64 [B, C, h, w] tensor, or its images are smaller than the kernel or
        their batch does not match the kernels."""
        _validate.image(name, y, finite=False)
        B, C, h, w = y.shape
        s = self.factor
        kh, kw = self.kernel.shape[-2:]
        if h * s < kh or w * s < kw:
            raise ValueError(
                f"kernel of size {kh}x{kw} is larger than the images of {name} "
                f"({h}x{w} upsampled by {s}: {h * s}x{w * s})"
            )
        if self.batch not in (1, B):
            raise ValueError(f"kernel holds {self.batch} kernels but {name} has batch size {B}")
        return (B, C, h * s, w * s)

    def _terms(self, H: int, W: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(K^, mean_s |K^|^2): full fft2 of the centred kernel [Bk, 1, H, W] and its alias
        mean [Bk, 1, H / s, W / s] (cached per size, device and dtype)."""
        key = (int(H), int(W), torch.device(device), dtype)
        if key not in self._spectra:
            padded = centred_padded(self.kernel.to(device=device, dtype=dtype), H, W)
            k_hat = torch.fft.fft2(padded)
            k2_mean = alias_mean(k_hat.real**2 + k_hat.imag**2, self.factor).contiguous()
            self._spectra[key] = (k_hat, k2_mean)
        return self._spectra[key]

    def decimated_fourier_multiplier(
        self, shape: tuple[int, int], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(K^, mean_s |K^|^2, s): A x = S_s(ifft2(K^ fft2(x))), the capability that
        ``LinearOperator.prox_l2`` and ``pnpfast.L2`` read (see ``pnpfast.ops.sr_prox``)."""
        if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2:
            raise ValueError(f"shape must be the image size (H, W), got {shape!r}")
        H, W = shape
        kh, kw = self.kernel.shape[-2:]
        for name, n, k in (("H", H, kh), ("W", W, kw)):
            _validate.integer(name, n, k, hint=f"(the image size: at least the kernel's {kh}x{kw})")
            if n % self.factor:
                raise ValueError(f"{name} = {n} is not divisible by the factor {self.factor}")
        if dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"dtype must be torch.float32 or torch.float64, not {dtype}")
        return (*self._terms(H, W, device, dtype), self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(k * x)[s i, s j]. x: [B, C, H, W]; returns [B, C, H / s, W / s]."""
        self.check_input("x", x)
        s = self.factor
        return self.blur.forward(x)[..., ::s, ::s].contiguous()

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Zero-filled upsampling (y at the top-left pixel of each block), then correlation
        with k. y: [B, C, h, w]; returns [B, C, s h, s w]."""
        B, C, H, W = self.image_shape(y)
        s = self.factor
        up = y.new_zeros(B, C, H, W)
        up[..., ::s, ::s] = y
        return self.blur.adjoint(up)

    def centre_offset(self) -> torch.Tensor:
        """[Bk, 2] float64 (d_y, d_x): where low-resolution pixel i sits on the high-resolution
        grid, s i + d, for a smooth image. (k * x)[n] = sum_m k[m] x[n + R - m] ~ x(n + R - c)
        with R = h // 2 the centre tap and c = sum_m m k[m] / sum_m k[m] the kernel's centroid,
        so d = R - c: (s - 1) / 2 for ``bicubic`` (MATLAB's output grid), 0 for a kernel
        centred on the kept pixel (``gaussian``, DPIR's "classical" kernels). A kernel whose
        weights sum to about 0 has no centroid: d = 0."""
        k = self.kernel.to(torch.float64)
        total = k.sum(dim=(-2, -1))
        ok = total.abs() > 1e-8 * k.abs().sum(dim=(-2, -1))
        safe = torch.where(ok, total, torch.ones_like(total))
        offsets = []
        for dim in (-2, -1):
            n = k.shape[dim]
            m = torch.arange(n, dtype=torch.float64)
            profile = k.sum(dim=-1 if dim == -2 else -2)  # [Bk, n]
            c = (profile * m).sum(-1) / safe
            offsets.append(torch.where(ok, n // 2 - c, torch.zeros_like(c)))
        return torch.stack(offsets, dim=-1)

    def upsample(self, y: torch.Tensor) -> torch.Tensor:
        """Bicubic interpolation of y onto the high-resolution grid of this operator: pixel j
        takes the cubic interpolant of y at low-resolution position (j - d) / s, d from
        ``centre_offset``, so that upsample(A x) ~ x for a smooth x. The borders repeat the
        edge pixels (a natural image is not periodic: wrapping, as the operator does, costs
        about 0.5 dB on 64x64 crops). The cubic is torch's (Keys, a = -0.75, as
        ``interpolate(mode="bicubic")`` and OpenCV's INTER_CUBIC); for d = (s - 1) / 2 this is
        ``interpolate(y, scale_factor=s, mode="bicubic", align_corners=False)``. DPIR's SR
        start: cv2.resize then, for kernels centred on the kept pixel, a (s - 1) / 2 pixel
        shift (``shift_pixel``, a second, linear interpolation clipped at the borders); here
        one bicubic evaluation at the shifted positions.

        y: [B, C, h, w]; returns [B, C, s h, s w]."""
        B, _, H, W = self.image_shape(y)
        s = self.factor
        h, w = y.shape[-2:]
        d = self.centre_offset().to(device=y.device, dtype=y.dtype).expand(B, 2)
        pad = 3 + math.ceil(float(d.abs().max()) / s)  # 2 taps each side, plus the offset
        rows = torch.arange(-pad, h + pad, device=y.device).clamp(0, h - 1)
        cols = torch.arange(-pad, w + pad, device=y.device).clamp(0, w - 1)
        padded = y[..., rows, :][..., cols]  # edge pixels repeated
        hp, wp = h + 2 * pad, w + 2 * pad
        j_y = torch.arange(H, device=y.device, dtype=y.dtype)
        j_x = torch.arange(W, device=y.device, dtype=y.dtype)
        # low-resolution position (j - d) / s + pad, to grid_sample's [-1, 1] with pixel
        # centres at (i + 1/2) 2 / n - 1 (align_corners=False)
        u_y = ((j_y[None] - d[:, :1]) / s + pad + 0.5) * (2 / hp) - 1  # [B, H]
        u_x = ((j_x[None] - d[:, 1:]) / s + pad + 0.5) * (2 / wp) - 1  # [B, W]
        grid = torch.stack(
            (u_x[:, None, :].expand(B, H, W), u_y[:, :, None].expand(B, H, W)), dim=-1
        )
        return torch.nn.functional.grid_sample(
            padded, grid, mode="bicubic", padding_mode="border", align_corners=False
        )

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        """A^T A x = ifft2(conj(K^) spread(mean_s(K^ fft2(x)))): S^T S averages the s^2
        aliases of each frequency. x: [B, C, H, W]."""
        self.check_input("x", x)
        H, W = x.shape[-2:]
        k_hat, _ = self._terms(H, W, x.device, x.dtype)
        q = alias_mean(k_hat * torch.fft.fft2(x), self.factor)
        return real_ifft2(k_hat.conj() * spread(q, self.factor))


def super_resolution_factor(operator: LinearOperator) -> int:
    """s for a ``SuperResolution`` of factor s >= 2, else 0: what selects the solvers'
    super-resolution defaults (the start ``A.upsample(y)``, hqs's DPIR recipe, prox-pnp's
    denoiser level)."""
    if isinstance(operator, SuperResolution) and operator.factor > 1:
        return operator.factor
    return 0

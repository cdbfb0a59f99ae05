"""Compressive sensing: m random orthonormal measurements of each channel of each image.

    A x = M^T x,   M [N, m] with orthonormal columns,   N = H * W,   m = max(1, round(ratio * N))

the "compressive sensing" measurements of Kadkhodaie & Simoncelli, "Solving linear inverse
problems using the prior implicit in a denoiser", NeurIPS 2021 (ratios m / N such as 0.25,
0.10 or 0.04). Every channel of every image is measured by the same M, drawn from ``seed``.

Two constructions of M:

* "fast" (any size): M^T x = S T D x, with D the diagonal of N random signs, T the orthonormal
  2-D DCT-II (computed by FFTs, so on any device and in float32 or float64) and S the selection
  of m of its N outputs, uniformly at random without replacement. So M = D T^T S^T, whose
  columns are orthonormal because D and T are orthogonal. O(N log N) per channel.
* "dense" (small images only): M = Q of the reduced QR decomposition of an N x m Gaussian
  matrix (float64, then cast), a uniformly random orthonormal frame; O(N m) memory and time
  per channel, so refused for N > 65536.

"auto" (the default) takes "dense" for N <= 4096 and "fast" above.
"""

import functools
import math

import torch

from pnpfast import _validate
from pnpfast.operators.orthonormal import SizedOrthonormalOperator, check_coefficients
from pnpfast.operators.spectral_lowpass import _check_shape

DENSE_AUTO_MAX = 4096  # "auto" takes "dense" up to this many pixels
DENSE_MAX = 65536  # "dense" refuses more pixels: M alone would take N * m * 8 bytes


# -- the orthonormal DCT-II by FFT ----------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _dct_tables(n: int, device: torch.device, dtype: torch.dtype):
    """For length n: the even/odd reordering, its inverse, the twiddles exp(-i pi k / (2n)) and
    the orthonormal scales sqrt(1/n), sqrt(2/n), ..."""
    order = torch.cat([torch.arange(0, n, 2), torch.arange(1, n, 2).flip(0)])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n)
    k = torch.arange(n, dtype=torch.float64)
    twiddle = torch.polar(torch.ones(n, dtype=torch.float64), -math.pi * k / (2 * n))
    scale = torch.full((n,), math.sqrt(2 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1 / n)
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    return (
        order.to(device),
        inverse.to(device),
        twiddle.to(device=device, dtype=cdtype),
        scale.to(device=device, dtype=dtype),
    )


def _dct_last(x: torch.Tensor) -> torch.Tensor:
    # Makhoul: with v = (x0, x2, x4, ..., x5, x3, x1), sum_j x_j cos(pi k (2j + 1) / (2n)) is
    # Re(exp(-i pi k / (2n)) FFT(v)_k)
    order, _, twiddle, scale = _dct_tables(x.shape[-1], x.device, x.dtype)
    V = torch.fft.fft(x[..., order])
    return (V * twiddle).real * scale


def _idct_last(X: torch.Tensor) -> torch.Tensor:
    # inverse of _dct_last: with C_k = X_k / scale_k and C_n = 0, exp(-i pi k / (2n)) FFT(v)_k
    # = C_k - i C_{n-k}, because v is real
    n = X.shape[-1]
    _, inverse, twiddle, scale = _dct_tables(n, X.device, X.dtype)
    C = X / scale
    reflected = torch.cat([torch.zeros_like(C[..., :1]), C.flip(-1)[..., : n - 1]], dim=-1)
    V = torch.complex(C, -reflected) * twiddle.conj()
    return torch.fft.ifft(V).real[..., inverse]


def dct2(x: torch.Tensor) -> torch.Tensor:
    """The orthonormal 2-D DCT-II over the last two dimensions (scipy.fft.dctn(x, axes=(-2, -1),
    norm="ortho")): X[k, l] = s_k s_l sum_{i,j} x[i, j] cos(pi k (2i+1) / 2H) cos(pi l (2j+1) / 2W),
    s_0 = sqrt(1/n), s_k = sqrt(2/n). x: [..., H, W] float32/float64, any device."""
    return _dct_last(_dct_last(x).transpose(-1, -2)).transpose(-1, -2)


def idct2(X: torch.Tensor) -> torch.Tensor:
    """The inverse (and transpose) of ``dct2``, over the last two dimensions
    (scipy.fft.idctn(X, axes=(-2, -1), norm="ortho")). X: [..., H, W] float32/float64."""
    return _idct_last(_idct_last(X).transpose(-1, -2)).transpose(-1, -2)


# -- the operator -------------------------------------------------------------------------------


class CompressiveSensing(SizedOrthonormalOperator):
    """m = max(1, round(ratio * H * W)) random orthonormal measurements per channel.

    Args:
        ratio: m / N in (0, 1], e.g. 0.25, 0.10 or 0.04 (m rounded half up, at least 1).
        seed: the seed of the torch.Generator (on the CPU) that draws M; default 0. The same
            seed and size give the same M on every device; different seeds, different M.
        shape: (H, W) of the images, or None (the default) to take it from the first image.
        method: "fast" (signs, 2-D DCT, random selection), "dense" (QR of a Gaussian matrix,
            small images only: N <= 65536) or "auto" (the default: dense for N <= 4096).

    Shapes: x [B, C, H, W] float32/float64; measurements [B, C, m]; the same M for every image
    and channel. ``m`` and ``kind`` (the method used) are known once the size is.
    """

    def __init__(
        self,
        ratio: float,
        seed: int = 0,
        shape: tuple[int, int] | None = None,
        method: str = "auto",
    ):
        ratio = _validate.number("ratio", ratio, 0, 1, low_open=True)
        seed = _validate.seed("seed", seed)
        if not isinstance(method, str):
            raise TypeError(
                f'method must be "fast", "dense" or "auto" (a str), not {type(method).__name__}'
            )
        if method not in ("fast", "dense", "auto"):
            raise ValueError(f'method must be "fast", "dense" or "auto", got {method!r}')
        self.ratio = float(ratio)
        self.seed = int(seed)
        self.method = method
        self._shape: tuple[int, int] | None = None
        self._shape_from = ""
        self._cache: dict[tuple, tuple] = {}
        shape = _check_shape(shape)
        if shape is not None:
            self._set_shape(shape, "shape=")

    def _set_shape(self, shape: tuple[int, int], source: str) -> None:
        H, W = shape
        N = H * W
        kind = self.method if self.method != "auto" else "dense" if N <= DENSE_AUTO_MAX else "fast"
        if kind == "dense" and N > DENSE_MAX:
            raise ValueError(
                f'method="dense" supports images of at most {DENSE_MAX} pixels, but the images '
                f'are {H}x{W} ({N} pixels, from {source}); use method="fast"'
            )
        m = max(1, math.floor(self.ratio * N + 0.5))
        g = torch.Generator().manual_seed(self.seed)
        if kind == "fast":
            signs = torch.randint(0, 2, (H, W), generator=g, dtype=torch.float64) * 2 - 1
            # sorted, so the gathers and scatters walk memory in order; the set is what is random
            selected = torch.randperm(N, generator=g)[:m].sort().values
            self._signs, self._selected, self._matrix = signs, selected, None
        else:
            gauss = torch.randn(N, m, generator=g, dtype=torch.float64)
            self._matrix = torch.linalg.qr(gauss).Q
            self._signs = self._selected = None
        self._kind, self._m = kind, m
        self._shape, self._shape_from = (H, W), source

    @property
    def m(self) -> int:
        """The number of measurements per image and channel."""
        self._require_shape()
        return self._m

    def _count(self) -> int:
        return self._m

    @property
    def kind(self) -> str:
        """The construction in use, "fast" or "dense" ("auto" resolved for the size)."""
        self._require_shape()
        return self._kind

    @property
    def signs(self) -> torch.Tensor | None:
        """ "fast": D, the random signs [H, W] (float64, CPU); None for "dense"."""
        self._require_shape()
        return self._signs

    @property
    def selected(self) -> torch.Tensor | None:
        """ "fast": S, the sorted flat indices [m] of the kept DCT outputs (CPU); None for "dense"."""
        self._require_shape()
        return self._selected

    @property
    def matrix(self) -> torch.Tensor | None:
        """ "dense": M [N, m] (float64, CPU); None for "fast"."""
        self._require_shape()
        return self._matrix

    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple:
        key = (device, dtype)
        if key not in self._cache:
            if self._kind == "fast":
                self._cache[key] = (
                    self._signs.to(device=device, dtype=dtype),
                    self._selected.to(device),
                )
            else:
                M = self._matrix.to(device=device, dtype=dtype)
                self._cache[key] = (M, M.T.contiguous())
        return self._cache[key]

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """M^T x: [B, C, H, W] -> [B, C, m]."""
        _validate.image("x", x, finite=False)
        self._check_size("x", *x.shape[-2:])
        if self._kind == "fast":
            signs, selected = self._tensors(x.device, x.dtype)
            return dct2(x * signs).flatten(2)[..., selected]
        M, _ = self._tensors(x.device, x.dtype)
        return x.flatten(2) @ M

    def lift(self, c: torch.Tensor) -> torch.Tensor:
        """M c: [B, C, m] -> [B, C, H, W]."""
        H, W = self._require_shape()
        check_coefficients("c", c, self._m)
        B, C = c.shape[:2]
        if self._kind == "fast":
            signs, selected = self._tensors(c.device, c.dtype)
            full = torch.zeros(B, C, H * W, device=c.device, dtype=c.dtype)
            full[..., selected] = c
            return idct2(full.view(B, C, H, W)) * signs
        _, Mt = self._tensors(c.device, c.dtype)
        return (c @ Mt).view(B, C, H, W)

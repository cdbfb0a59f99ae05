"""Spectral super-resolution: keep a fraction of the lowest 2-D DFT frequencies of each image.

    P x = irfft2(mask * rfft2(x)),    M^T x = the real coordinates of rfft2(x, norm="ortho") on K

K is a centred box of signed frequencies (ky, kx), |ky| <= ry and |kx| <= rx, with
ky in (-H/2, H/2] and kx in (-W/2, W/2]. The box is conjugate-symmetric (k in K iff -k in K),
so P maps real images to real images. The measurement is the "spectral super-resolution"
(low-pass deblurring) of Kadkhodaie & Simoncelli, "Solving linear inverse problems using the
prior implicit in a denoiser", NeurIPS 2021, which keeps e.g. 10% or 5% of the frequencies.

Choice of the box. It grows from the DC term one step at a time, adding a pair of rows or a
pair of columns, always along the axis whose relative extent (2r + 1) / size is smaller (rows
first on a tie), so that its aspect ratio follows the image's; of the boxes on this path, K is
the one whose size |K| = (2 ry + 1)(2 rx + 1) is closest to fraction * H * W (the smaller on a
tie). For fraction < 1 the box stays strictly inside the Nyquist limits (ry <= (H - 1) // 2,
rx <= (W - 1) // 2): for an even size the Nyquist row or column (ky = -H/2, which is also +H/2,
a frequency whose sine component vanishes on the grid) is left out, so that the box keeps
2 r + 1 rows and columns centred on 0. The largest box below fraction 1 therefore holds
(H - 1)(W - 1) frequencies for even H and W (H W for odd ones), and a larger target gets that
box. fraction = 1 keeps everything, Nyquist included (P = I).

Real orthonormal coordinates. With X = rfft2(x, norm="ortho") (a unitary DFT restricted to
the half spectrum), each self-conjugate frequency of K (k = -k, i.e. DC and, for fraction 1,
the Nyquist ones) gives one coordinate Re X[k]; every other conjugate pair {k, -k} in K gives
two, sqrt(2) Re X[k] and sqrt(2) Im X[k], taken once per pair. By Parseval these |K| numbers
are the coordinates of P x in an orthonormal basis of real images, so M^T M = I.
"""

import math

import torch

from pnpfast import _validate
from pnpfast.operators.orthonormal import SizedOrthonormalOperator, check_coefficients


def _check_shape(shape) -> tuple[int, int] | None:
    if shape is None:
        return None
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be None or a pair (H, W), got {shape!r}")
    H, W = (_validate.integer(f"shape[{i}]", s, 1) for i, s in enumerate(shape))
    return H, W


def box_radii(fraction: float, H: int, W: int) -> tuple[int, int]:
    """The half-widths (ry, rx) of the kept box for ``fraction`` < 1 of an H x W image (see the
    module docstring for the rule)."""
    ry_max, rx_max = (H - 1) // 2, (W - 1) // 2
    target = fraction * H * W
    ry = rx = 0
    best, best_err = (0, 0), abs(1 - target)
    while ry < ry_max or rx < rx_max:
        # compare (2 ry + 1) / H with (2 rx + 1) / W in integers, so ties are exact
        if rx == rx_max or (ry < ry_max and (2 * ry + 1) * W <= (2 * rx + 1) * H):
            ry += 1
        else:
            rx += 1
        size = (2 * ry + 1) * (2 * rx + 1)
        if abs(size - target) < best_err:
            best, best_err = (ry, rx), abs(size - target)
        if size >= target:  # the sizes grow along the path: later boxes are farther off
            break
    return best


class SpectralLowpass(SizedOrthonormalOperator):
    """Keep a ``fraction`` in (0, 1] of the lowest 2-D DFT frequencies (module docstring).

    Args:
        fraction: the share of the H * W frequencies to keep, e.g. 0.10 or 0.05; the kept count
            ``kept`` is the box size closest to fraction * H * W.
        shape: (H, W) of the images, or None (the default) to take it from the first image.

    Shapes: x [B, C, H, W] float32/float64; coefficients [B, C, kept], the same M for every
    image and channel. Coefficient order: the self-conjugate frequencies, then sqrt(2) Re and
    then sqrt(2) Im of one member of each conjugate pair, each group in raster order of the
    half spectrum rfft2(x)[..., H, W // 2 + 1].
    """

    def __init__(self, fraction: float, shape: tuple[int, int] | None = None):
        self.fraction = _validate.number("fraction", fraction, 0, 1, low_open=True)
        self._shape: tuple[int, int] | None = None
        self._shape_from = ""
        self._tables: dict[tuple, tuple] = {}
        self._masks: dict[tuple, torch.Tensor] = {}
        shape = _check_shape(shape)
        if shape is not None:
            self._set_shape(shape, "shape=")

    # -- the kept set, built once the size is known ------------------------------------------

    def _set_shape(self, shape: tuple[int, int], source: str) -> None:
        H, W = shape
        ky = torch.fft.fftfreq(H, 1.0 / H).round().long()  # signed: -H/2 for an even Nyquist
        kx = torch.fft.fftfreq(W, 1.0 / W).round().long()
        if self.fraction == 1:
            self._radii = (H // 2, W // 2)
            mask = torch.ones(H, W, dtype=torch.bool)
        else:
            self._radii = box_radii(self.fraction, H, W)
            ry, rx = self._radii
            mask = (ky.abs() <= ry)[:, None] & (kx.abs() <= rx)[None, :]
        Wh = W // 2 + 1
        half = mask[:, :Wh]
        iy = torch.arange(H)[:, None].expand(H, Wh)
        ix = torch.arange(Wh)[None, :].expand(H, Wh)
        self_conj = ((2 * iy) % H == 0) & ((2 * ix) % W == 0)
        # columns kx = 0 and (even W) kx = W/2 hold both members of their pairs: (ky, kx) and
        # (-ky, kx); the other columns hold one member, the other lies in the dropped half
        edge = (ix == 0) | (2 * ix == W)
        rep = ~self_conj & (~edge | ((iy >= 1) & (2 * iy < H)))
        flat = torch.arange(H * Wh).view(H, Wh)
        self._self_idx = flat[half & self_conj]
        self._pair_idx = flat[half & rep]
        edge_rep = (half & rep & edge)[half & rep]  # which pair representatives are on an edge
        self._edge_pos = edge_rep.nonzero().flatten()  # their positions among the pairs
        pair_iy, pair_ix = iy[half & rep], ix[half & rep]
        self._partner_idx = (((-pair_iy) % H) * Wh + pair_ix)[self._edge_pos]
        self._mask = mask
        self._half_mask = half
        self._kept = int(mask.sum())
        self._shape, self._shape_from = (H, W), source

    @property
    def mask(self) -> torch.Tensor:
        """The kept frequencies K: bool [H, W] on the CPU, in the order of torch.fft.fft2."""
        self._require_shape()
        return self._mask

    @property
    def kept(self) -> int:
        """|K|, the number of kept frequencies and of coefficients per image and channel."""
        self._require_shape()
        return self._kept

    def _count(self) -> int:
        return self._kept

    @property
    def radii(self) -> tuple[int, int]:
        """(ry, rx), the half-widths of the kept box (H // 2, W // 2 for fraction 1)."""
        self._require_shape()
        return self._radii

    def _index_tables(self, device: torch.device) -> tuple:
        key = (device,)
        if key not in self._tables:
            self._tables[key] = tuple(
                t.to(device)
                for t in (self._self_idx, self._pair_idx, self._edge_pos, self._partner_idx)
            )
        return self._tables[key]

    def _half_mask_for(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._masks:
            self._masks[key] = self._half_mask.to(device=device, dtype=dtype)
        return self._masks[key]

    # -- the operator -------------------------------------------------------------------------

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """M^T x: [B, C, H, W] -> [B, C, kept] real coefficients (class docstring for the order)."""
        _validate.image("x", x, finite=False)
        self._check_size("x", *x.shape[-2:])
        self_idx, pair_idx, _, _ = self._index_tables(x.device)
        X = torch.fft.rfft2(x, norm="ortho").flatten(2)
        pairs = X[..., pair_idx]
        return torch.cat(
            [X[..., self_idx].real, math.sqrt(2) * pairs.real, math.sqrt(2) * pairs.imag], dim=-1
        )

    def lift(self, c: torch.Tensor) -> torch.Tensor:
        """M c: [B, C, kept] -> [B, C, H, W], the real image with these coordinates."""
        H, W = self._require_shape()
        check_coefficients("c", c, self.kept)
        self_idx, pair_idx, edge_pos, partner_idx = self._index_tables(c.device)
        n_self, n_pair = len(self_idx), len(pair_idx)
        Wh = W // 2 + 1
        a = c[..., n_self : n_self + n_pair] / math.sqrt(2)
        b = c[..., n_self + n_pair :] / math.sqrt(2)
        cdtype = torch.complex64 if c.dtype == torch.float32 else torch.complex128
        Z = torch.zeros(*c.shape[:2], H * Wh, dtype=cdtype, device=c.device)
        Z[..., self_idx] = c[..., :n_self].to(cdtype)
        Z[..., pair_idx] = torch.complex(a, b)
        # irfft2 reads both members of a pair on the edge columns, so write the conjugate too
        Z[..., partner_idx] = torch.complex(a[..., edge_pos], -b[..., edge_pos])
        return torch.fft.irfft2(Z.view(*c.shape[:2], H, Wh), s=(H, W), norm="ortho")

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """M M^T x = irfft2(mask * rfft2(x)): the low-pass image, [B, C, H, W]."""
        _validate.image("x", x, finite=False)
        H, W = x.shape[-2:]
        self._check_size("x", H, W)
        mask = self._half_mask_for(x.device, x.dtype)
        return torch.fft.irfft2(torch.fft.rfft2(x) * mask, s=(H, W))

"""deepinv interop: accelerated drop-in physics, conversions, and denoisers both ways.

deepinv (https://github.com/deepinv/deepinv) is imported here and only here; ``import pnpfast``
never needs it. Tested against deepinv 0.5.

Accelerated physics
-------------------
``accelerate(physics)`` returns a copy of a deepinv ``BlurFFT``, ``Downsampling``, ``Inpainting``
or ``Denoising`` whose class is swapped for ``FastBlurFFT``, ``FastDownsampling``,
``FastInpainting`` or ``FastDenoising``: subclasses of the originals with deepinv's own
constructors, buffers, noise model, ``update_parameters``, ``clone``, ``__mul__`` and ``to``, so
the object goes wherever the original went (deepinv's optim iterators, ``DPIR``,
``optim_builder``, the ``L2`` data fidelity) and answers the same maths. Only these methods are
overridden, each with a fast path and deepinv's own code (``super()``) as the fallback:

    prox_l2(z, y, gamma) = argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2   (all four)
    A_adjoint(y)         = A^T y    (BlurFFT, Downsampling: a copy of the cached A^T y when y
                                     is the cached y, e.g. the second call of deepinv's
                                     x_init, z_init = A_adjoint(y), A_adjoint(y))
    A_adjoint_A(x)       = A^T A x  (BlurFFT: irfft2(|K^|^2 rfft2(x)), 2 FFTs; Downsampling:
                                     deepinv's A then A_adjoint, kept off the y cache)

A itself stays deepinv's (measured no faster through pnpfast on the CPU: the FFTs dominate for
BlurFFT, and deepinv's spatial convolution beats an FFT for Downsampling's small filters).

Shapes as deepinv's: images z, x [B, C, H, W]; y [B, C, H, W] (blur, mask, identity) or
[B, C, H / s, W / s] (Downsampling by s). ``gamma`` may be a Python float or int, a 0-d tensor,
a [1] tensor or a [B, 1, 1, 1] tensor (the forms deepinv broadcasts), and here also a [B]
tensor (one value per image; deepinv's own prox_l2 fails on it or, for ``Denoising`` with
B == W, broadcasts it along the image width). gamma is never read on the host (no ``.item()``);
1 / gamma is computed in gamma's own dtype, as deepinv does (deepinv's DPIR passes a float32
0-d gamma even for float64 images), so float64 results agree with deepinv's to rounding
(1e-15 relative in the tests). In float32 the accelerated BlurFFT is closer to the float64
answer than deepinv's own float32 code (deepinv's DPIR, identity denoiser, motion blur,
4x3x128x128: 1e-6 against 2.3e-5 relative), so float32 results of the two differ by about
deepinv's own rounding error.

The fast paths, per class:

* ``BlurFFT``: K^ = mask * angle (deepinv's own spectrum buffers), conj(K^) Y^ and A^T y cached
  for the current y; prox_l2 = irfft2(fft_prox(rfft2(z), conj(K^) Y^, |K^|^2, gamma)) with
  ``pnpfast.ops.fft_prox`` (X^ = (Z^ + gamma conj(K^) Y^) / (1 + gamma |K^|^2)): 2 FFTs where
  deepinv's recomputes A^T y and takes 4.
* ``Downsampling`` with ``padding="circular"`` and a filter: ``pnpfast.operators.SuperResolution``
  (filter[:, 0], factor)'s spectra; A^T y (deepinv's) and fft2(A^T y) cached; prox_l2 = Zhao et
  al.'s closed form
  (IEEE TIP 2016) by ``pnpfast.ops.sr_prox``, 2 FFTs where deepinv's takes 4 plus a
  recomputation of its filter spectrum.
* ``Inpainting`` with a 0/1 mask m (shared, per image or per channel):
  prox_l2 = (m y + z / gamma) / (m + 1 / gamma) = lerp(z, y, m / (1 + 1 / gamma)), one pass.
* ``Denoising`` (mask 1): prox_l2 = (y + z / gamma) / (1 + 1 / gamma) = lerp(z, y, 1 /
  (1 + 1 / gamma)), one pass.

Everything else is deepinv's code, unchanged: keyword arguments (``filter=``, ``mask=``,
``use_fft=False``, solver options), ``z`` None or a number, tensors that need gradients, dtypes
other than float32/float64, buffers of another dtype or device than the images, per-channel
blur filters, soft masks, non-circular padding, no filter, a gamma of any other shape, device or
dtype, shapes that do not match the operator. A fallback never changes the answer, only the
speed.

Caching: each accelerated physics keeps (1) what depends on its parameters (the spectrum, the
SuperResolution operator, whether the mask is 0/1), keyed on the identity and the version
counter of the buffers it reads (deepinv's ``update_parameters(filter=, mask=, factor=)``,
``A(x, filter=new)``, ``.to()`` and ``clone()`` also drop it), and (2) what depends on the last
y (A^T y and its spectrum), kept only while y is the same tensor object with the same data
pointer, version counter, shape, strides, dtype and device. A strong reference to y is held, so
no new tensor can take its memory. Every in-place change of y through torch (``y.add_()``,
``y[0] = ...``, ``y.copy_()``, under ``torch.no_grad()`` too, through a view) bumps its version
and is seen. Writes that torch does not count, through ``y.data``, a numpy view
(``y.numpy()[...] = ...``) or an extension kernel writing into y's memory behind torch's back,
are not: call ``physics.clear_cache()`` after them. Tensors made
under ``torch.inference_mode()`` have no version counter, so nothing is cached for them (they are
recomputed on every call). The cache holds one y (an image and a spectrum of memory);
``clear_cache()`` frees it.

deepinv's own ``.to(dtype)`` casts its complex buffers to real (torch's ``Module.to`` does so,
with a warning), which breaks deepinv's ``BlurFFT`` (the phase ``angle``) and ``Downsampling``
(``Fh``) from then on: build a physics with a filter of the dtype you want instead. The
accelerated ``BlurFFT`` reads deepinv's (then broken) spectrum buffers and falls back to deepinv's
code, so it gives deepinv's answer; the accelerated ``Downsampling`` reads the filter, which
``.to`` keeps intact, so it gives the right answer where deepinv's no longer does.

Conversions and denoisers
-------------------------
``to_pnpfast(physics)`` gives the pnpfast ``LinearOperator`` of a deepinv physics (``Blur``,
``SuperResolution``, ``Inpainting``, ``Identity``; ValueError saying why when its parameters
have no pnpfast form), ``from_pnpfast(operator, img_size)`` the accelerated deepinv physics of a
pnpfast operator. ``PnpfastDenoiser`` makes a pnpfast denoiser (any ``D(x, sigma)``) a
``deepinv.models.Denoiser``; ``DeepinvDenoiser`` makes a deepinv denoiser a pnpfast
``Denoiser`` for ``pnpfast.solve``.
"""

import math

import deepinv
import torch
from deepinv.physics import BlurFFT, Denoising, Downsampling, Inpainting

from pnpfast import _validate
from pnpfast.denoisers.base import Denoiser
from pnpfast.operators import Blur, Identity, LinearOperator, SuperResolution
from pnpfast.operators import Inpainting as PnpInpainting
from pnpfast.ops import fft_prox, sr_prox
from pnpfast.ops.sr_prox import real_ifft2

__all__ = [
    "DeepinvDenoiser",
    "FastBlurFFT",
    "FastDenoising",
    "FastDownsampling",
    "FastInpainting",
    "PnpfastDenoiser",
    "accelerate",
    "from_pnpfast",
    "to_pnpfast",
]

_FLOATS = (torch.float32, torch.float64)


# ----------------------------------------------------------------------------------- helpers


def _version(t: torch.Tensor) -> int | None:
    """t's version counter, or None for an inference tensor (which keeps none)."""
    try:
        return t._version
    except RuntimeError:
        return None


def _state(t: torch.Tensor) -> tuple | None:
    """What identifies t and its contents for a cache, or None when it cannot be tracked."""
    v = _version(t)
    if v is None:
        return None
    return (id(t), v, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device)


def _needs_grad(*values) -> bool:
    return torch.is_grad_enabled() and any(
        isinstance(v, torch.Tensor) and v.requires_grad for v in values
    )


def _image(x, dtype: torch.dtype, device: torch.device) -> bool:
    """x is a [B, C, H, W] tensor of this dtype and device."""
    return (
        isinstance(x, torch.Tensor)
        and x.dim() == 4
        and x.dtype == dtype
        and x.device == device
        and x.numel() > 0
    )


def _equal_channels(t: torch.Tensor) -> bool:
    """t [B, C, ...] holds the same values in every channel."""
    return bool(torch.equal(t, t[:, :1].expand_as(t)))


def _mask_sources(self):
    """``_op_sources`` of the physics whose operator is built from the ``mask`` buffer."""
    mask = self._buffers.get("mask")
    return None if mask is None else ((mask,), None)


class _Gamma:
    """deepinv's gamma for a batch of B images z, as tensors of z's dtype.

    ``g`` [B] is gamma; ``c`` [1 or B] is deepinv's 1 / gamma, computed in gamma's own dtype
    (float64 for a Python number) and then cast, as deepinv's ``1 / gamma * z`` does; ``mixed``
    says that gamma is a float32 tensor while z is float64, the one case where 1 / g and c
    differ by more than z's rounding; ``dim`` is gamma's number of dimensions (deepinv casts
    gamma to its buffers' dtype only when that is less than theirs)."""

    __slots__ = ("c", "dim", "g", "mixed")

    def __init__(self, g, c, mixed, dim):
        self.g, self.c, self.mixed, self.dim = g, c, mixed, dim


def _gamma(gamma, z: torch.Tensor) -> _Gamma | None:
    """Read gamma as deepinv broadcasts it (float, int, 0-d, [1], [1 or B, 1, 1, 1]) or as one
    value per image ([B]); None for anything else (the caller falls back to deepinv)."""
    B = z.shape[0]
    if isinstance(gamma, bool):
        return None
    if isinstance(gamma, (int, float)):
        value = float(gamma)
        if not (math.isfinite(value) and value > 0):
            return None
        # deepinv's 1 / gamma is a Python (double) number, rounded to z's dtype when it
        # multiplies z; no float64 tensor is made (some devices have none)
        g = torch.full((B,), value, dtype=z.dtype, device=z.device)
        c = torch.full((1,), 1.0 / value, dtype=z.dtype, device=z.device)
        return _Gamma(g, c, False, 0)
    if not isinstance(gamma, torch.Tensor):
        return None
    if gamma.dtype not in _FLOATS:
        return None
    if tuple(gamma.shape) not in {(), (1,), (B,), (1, 1, 1, 1), (B, 1, 1, 1)}:
        return None
    flat = gamma.reshape(-1)
    if gamma.device != z.device:
        # a 0-d CPU tensor is a scalar to torch on any device, and deepinv's DPIR makes its
        # steps on the CPU unless given a device: copied over, it is not read on the host
        if gamma.dim() != 0 or gamma.device.type != "cpu":
            return None
        flat = flat.to(z.device)
    g = flat.to(z.dtype).expand(B).contiguous()
    c = (1 / flat).to(z.dtype)
    mixed = gamma.dtype == torch.float32 and z.dtype == torch.float64
    return _Gamma(g, c, mixed, gamma.dim())


class _Cache:
    """One accelerated physics' cache; a clone (deepcopy) starts empty."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.op_key = None  # _state of the buffers the operator was built from, and sizes
        self.op_refs = ()  # those buffers, held so that their ids stay theirs
        self.op = None  # the built operator state, or a str saying why there is none
        self.clear_y()

    def clear_y(self) -> None:
        self.y = None
        self.y_key = None
        self.y_op = None
        self.aty = None
        self.kty = None

    def __deepcopy__(self, memo):
        return _Cache()

    def __reduce__(self):
        return (_Cache, ())


class _Fast:
    """What the four accelerated classes share: the cache and its invalidation."""

    #: deepinv's class this one accelerates (set by each subclass)
    _original: type = object

    def _pnpfast_cache(self) -> _Cache:
        cache = self.__dict__.get("_pnpfast_state")
        if cache is None:
            cache = _Cache()
            self.__dict__["_pnpfast_state"] = cache
        return cache

    def clear_cache(self) -> None:
        """Forget everything cached (the operator's spectra and the last y's A^T y). Needed only
        after changing a buffer or y in a way torch does not count (``.data``, numpy)."""
        self._pnpfast_cache().clear()

    def _apply(self, fn, *args, **kwargs):
        # .to(), .cuda(), .double(), ... go through here: the buffers are new tensors
        out = super()._apply(fn, *args, **kwargs)
        self._pnpfast_cache().clear()
        return out

    def update_parameters(self, **kwargs):
        super().update_parameters(**kwargs)
        if any(v is not None for k, v in kwargs.items() if k != "device"):
            self._pnpfast_cache().clear()

    def clone(self):
        new = super().clone()
        new._pnpfast_cache().clear()
        return new

    # -- the operator cache; subclasses define _op_sources() and _build_op()

    def _op_sources(self) -> tuple:
        raise NotImplementedError

    def _build_op(self):
        raise NotImplementedError

    def _op(self):
        """The operator state built from the current buffers, or None (fall back)."""
        sources = self._op_sources()
        if sources is None:
            return None
        tensors, extra = sources
        if any(not isinstance(t, torch.Tensor) for t in tensors) or _needs_grad(*tensors):
            return None
        states = tuple(_state(t) for t in tensors)
        if any(s is None for s in states):
            return None
        key = (states, extra)
        cache = self._pnpfast_cache()
        if cache.op_key != key:
            cache.clear()
            try:
                cache.op = self._build_op()
            except (TypeError, ValueError) as err:  # pnpfast refuses these parameters
                cache.op = f"{type(err).__name__}: {err}"
            cache.op_key, cache.op_refs = key, tensors
        return None if isinstance(cache.op, str) else cache.op

    def _same_shape_args(self, z, y, gamma):
        """(operator, gamma) when the fast prox of an operator whose measurements have the
        image's shape (blur, mask, identity) takes (z, y, gamma); None: deepinv's code."""
        op = self._op()
        if op is None or not op.accepts(z) or not isinstance(y, torch.Tensor):
            return None
        if y.shape != z.shape or y.dtype != z.dtype or _needs_grad(z, y, gamma):
            return None
        gm = _gamma(gamma, z)
        return None if gm is None else (op, gm)

    def _y_entry(self, y: torch.Tensor, op) -> _Cache | None:
        """The cache, holding A^T y and its spectrum for this y (computed by the caller when
        None), or None when y cannot be tracked (an inference tensor: recompute)."""
        key = _state(y)
        if key is None:
            return None
        cache = self._pnpfast_cache()
        if cache.y is not y or cache.y_key != key or cache.y_op is not op:
            cache.clear_y()
            cache.y, cache.y_key, cache.y_op = y, key, op
        return cache


# ----------------------------------------------------------------------------------- BlurFFT


class _Spectrum:
    """K^ [Bf, 1, H, W // 2 + 1] complex and |K^|^2 (real, same shape) of a BlurFFT whose
    channels share one filter, for images of size H x W."""

    def __init__(self, k_hat, k2, channels, H, W):
        self.k_hat, self.k2, self.channels, self.H, self.W = k_hat, k2, channels, H, W
        self.dtype = k2.dtype
        self.device = k2.device

    def accepts(self, x) -> bool:
        return (
            _image(x, self.dtype, self.device)
            and tuple(x.shape[-2:]) == (self.H, self.W)
            and self.channels in (1, x.shape[1])
            and self.k_hat.shape[0] in (1, x.shape[0])
        )

    def apply(self, x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x) * spectrum, s=(self.H, self.W))


class FastBlurFFT(_Fast, BlurFFT):
    """deepinv's ``BlurFFT`` (circular blur by FFT) with pnpfast's cached prox_l2; see the
    module docstring. Constructed as deepinv's (``FastBlurFFT(img_size, filter=...)``) or from
    an existing one by ``accelerate``.

    Fast when the filter's channels are equal (one kernel per image or for the batch, the
    same for every channel: deepinv repeats a one-channel filter to C channels) and the images
    have the dtype and device of the physics' buffers; deepinv's code otherwise.
    """

    _original = BlurFFT

    def _op_sources(self):
        mask, angle = self._buffers.get("mask"), self._buffers.get("angle")
        if mask is None or angle is None or self.img_size is None:
            return None
        return (mask, angle), tuple(self.img_size)

    def _build_op(self):
        mask, angle = self.mask, self.angle
        H, W = self.img_size[-2:]
        Wr = W // 2 + 1
        if mask.dtype not in _FLOATS or mask.dim() != 5 or mask.shape[-1] != 2:
            return "mask is not deepinv's [B, C, H, W // 2 + 1, 2] float32/64 spectrum"
        want = torch.complex64 if mask.dtype == torch.float32 else torch.complex128
        if angle.dtype != want or tuple(angle.shape) != tuple(mask.shape[:-1]):
            return f"angle is {angle.dtype} {tuple(angle.shape)}, not {want} like the mask"
        if tuple(mask.shape[-3:-1]) != (H, Wr) or mask.device != angle.device:
            return "the spectrum does not match img_size"
        k_hat = mask[..., 0] * angle  # deepinv's K^ = |K^| e^{i arg K^}
        if not _equal_channels(k_hat):
            return "the filter differs between channels (pnpfast blurs every channel alike)"
        k2 = mask[:, :1, ..., 0] * mask[:, :1, ..., 0]
        return _Spectrum(k_hat[:, :1].contiguous(), k2.contiguous(), mask.shape[1], H, W)

    def A_adjoint(self, y, filter=None, **kwargs):
        """A^T y = irfft2(conj(K^) rfft2(y)); for the cached y, a copy of the cached A^T y."""
        if filter is None and not kwargs:
            op = self._op()
            if op is not None and op.accepts(y) and not _needs_grad(y):
                entry = self._y_entry(y, op)
                if entry is None:
                    return op.apply(y, op.k_hat.conj())
                if entry.aty is None:
                    entry.aty = op.apply(y, op.k_hat.conj())
                return entry.aty.clone()
        return super().A_adjoint(y, filter=filter, **kwargs)

    def A_adjoint_A(self, x, mask=None, **kwargs):
        """A^T A x = irfft2(|K^|^2 rfft2(x)): 2 FFTs and one pass."""
        if mask is None and not kwargs:
            op = self._op()
            if op is not None and op.accepts(x) and not _needs_grad(x):
                return op.apply(x, op.k2)
        return super().A_adjoint_A(x, mask=mask, **kwargs)

    def prox_l2(self, z, y, gamma, **kwargs):
        """argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2
        = irfft2((Z^ + gamma conj(K^) Y^) / (1 + gamma |K^|^2)), conj(K^) Y^ cached for y."""
        if not kwargs:
            out = self._fast_prox(z, y, gamma)
            if out is not None:
                return out
        return super().prox_l2(z, y, gamma, **kwargs)

    def _fast_prox(self, z, y, gamma):
        args = self._same_shape_args(z, y, gamma)
        if args is None:
            return None
        op, gm = args
        entry = self._y_entry(y, op)
        kty = None if entry is None else entry.kty
        if kty is None:
            kty = (op.k_hat.conj() * torch.fft.rfft2(y)).contiguous()
            if entry is not None:
                entry.kty = kty
        v = z
        if gm.mixed:  # deepinv: b = A^T y + c z with c = 1 / gamma in float32, scaling 1 / g
            v = z * (gm.c * gm.g).view(-1, 1, 1, 1)
        x_hat = fft_prox(torch.fft.rfft2(v), kty, op.k2, gm.g)
        return torch.fft.irfft2(x_hat, s=(op.H, op.W))


# ------------------------------------------------------------------------------ Downsampling


class _Decimation:
    """A ``SuperResolution`` equal to a deepinv ``Downsampling`` with circular padding whose
    filter [Bf, Cf, h, w] has equal channels, and what the images must look like for it."""

    def __init__(self, sr: SuperResolution, filt: torch.Tensor, imsize):
        self.sr, self.factor = sr, sr.factor
        self.Bf, self.Cf, self.kh, self.kw = filt.shape
        self.dtype, self.device = filt.dtype, filt.device
        self.imsize = None if imsize is None else tuple(imsize)

    def accepts_size(self, x: torch.Tensor, H: int, W: int) -> bool:
        s = self.factor
        return (
            _image(x, self.dtype, self.device)
            and H % s == 0
            and W % s == 0
            and self.kh <= H
            and self.kw <= W
            and self.Cf in (1, x.shape[1])
            and self.Bf in (1, x.shape[0])
            and (self.imsize is None or self.imsize[-3:] == (x.shape[1], H, W))
        )

    def accepts(self, x) -> bool:
        return isinstance(x, torch.Tensor) and self.accepts_size(x, *x.shape[-2:])

    def accepts_measurement(self, y) -> bool:
        s = self.factor
        return isinstance(y, torch.Tensor) and self.accepts_size(
            y, y.shape[-2] * s, y.shape[-1] * s
        )


class FastDownsampling(_Fast, Downsampling):
    """deepinv's ``Downsampling`` (filter, then keep the top-left pixel of each s x s block)
    with pnpfast's cached closed-form prox; see the module docstring. Constructed as deepinv's
    (``FastDownsampling(img_size, filter=..., factor=..., padding="circular")``) or by
    ``accelerate``.

    Fast with ``padding="circular"``, a filter tensor whose channels are equal, images of the
    filter's dtype and device with H and W divisible by the factor (and matching ``img_size``
    when one was given); deepinv's code otherwise (``filter=None``, other paddings,
    ``use_fft=False``). A, A^T A and A^T y itself are deepinv's (its spatial convolutions beat
    an FFT for small filters on the CPU); A_adjoint returns a copy of the cached A^T y for the
    cached y.
    """

    _original = Downsampling

    def _op_sources(self):
        filt = self._buffers.get("filter")
        if filt is None or self.padding != "circular":
            return None
        return (filt,), (self.factor, self.padding, self.imsize)

    def _build_op(self):
        filt = self.filter
        if filt.dtype not in _FLOATS or filt.dim() != 4:
            return f"the filter is {filt.dtype} {tuple(filt.shape)}, not a float [B, C, h, w]"
        if not _equal_channels(filt):
            return "the filter differs between channels (pnpfast blurs every channel alike)"
        return _Decimation(SuperResolution(filt[:, 0], int(self.factor)), filt, self.imsize)

    def A_adjoint(self, y, filter=None, factor=None, **kwargs):
        """A^T y: y zero-filled at the kept pixels, correlated with k (deepinv's own code, the
        faster here); for the cached y, a copy of the cached A^T y."""
        if filter is None and factor is None and not kwargs:
            op = self._op()
            if op is not None and op.accepts_measurement(y) and not _needs_grad(y):
                entry = self._y_entry(y, op)
                if entry is None:
                    return Downsampling.A_adjoint(self, y)
                if entry.aty is None:
                    entry.aty = Downsampling.A_adjoint(self, y)
                    return entry.aty.clone()
                s = op.factor
                self.imsize_dynamic = (y.shape[-3], y.shape[-2] * s, y.shape[-1] * s)
                return entry.aty.clone()
        return super().A_adjoint(y, filter=filter, factor=factor, **kwargs)

    def A_adjoint_A(self, x, **kwargs):
        """A^T A x by deepinv's own A and A_adjoint (its spatial convolutions beat the FFT on the
        CPU here), bypassing the y cache so that A x never evicts the cached y."""
        return Downsampling.A_adjoint(self, Downsampling.A(self, x, **kwargs), **kwargs)

    def prox_l2(self, z, y, gamma, use_fft=True, **kwargs):
        """argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2 in closed form (Zhao et al.,
        IEEE TIP 2016) by ``pnpfast.ops.sr_prox``, fft2(A^T y) cached for y."""
        if use_fft is True and not kwargs:
            out = self._fast_prox(z, y, gamma)
            if out is not None:
                return out
        return super().prox_l2(z, y, gamma, use_fft=use_fft, **kwargs)

    def _fast_prox(self, z, y, gamma):
        op = self._op()
        if op is None or not op.accepts(z) or not op.accepts_measurement(y):
            return None
        s = op.factor
        if tuple(y.shape) != (*z.shape[:2], z.shape[2] // s, z.shape[3] // s):
            return None
        if _needs_grad(z, y, gamma):
            return None
        gm = _gamma(gamma, z)
        if gm is None:
            return None
        B, H, W = z.shape[0], z.shape[-2], z.shape[-1]
        self.imsize_dynamic = z.shape[-3:]
        k_hat, k2_mean, _ = op.sr.decimated_fourier_multiplier((H, W), z.device, z.dtype)
        entry = self._y_entry(y, op)
        aty = kty = None
        if entry is not None:
            aty, kty = entry.aty, entry.kty
        if kty is None:
            aty = Downsampling.A_adjoint(self, y) if aty is None else aty
            kty = torch.fft.fft2(aty)
            if entry is not None:
                entry.aty, entry.kty = aty, kty
        g, post = gm.g, None
        if gm.mixed:  # deepinv: gamma ((A^T y + c z) - r) with c = 1 / gamma in float32
            c = gm.c.expand(B)
            g, post = (1 / c).contiguous(), (gm.g * c).view(-1, 1, 1, 1)
        x_hat = sr_prox(torch.fft.fft2(z), kty, k_hat, k2_mean, g, s, overwrite_v=True)
        x = real_ifft2(x_hat)
        return x if post is None else x.mul_(post)


# -------------------------------------------------------------------------------- Inpainting


class _Mask:
    """A 0/1 mask buffer [Bm, Cm, H, W] of float32/64 (deepinv's Inpainting mask)."""

    def __init__(self, mask: torch.Tensor):
        self.mask, self.dtype, self.device = mask, mask.dtype, mask.device

    def accepts(self, z) -> bool:
        m = self.mask
        return (
            _image(z, self.dtype, self.device)
            and m.shape[0] in (1, z.shape[0])
            and m.shape[1] in (1, z.shape[1])
            and tuple(m.shape[-2:]) == tuple(z.shape[-2:])
        )


def _binary(mask) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


class FastInpainting(_Fast, Inpainting):
    """deepinv's ``Inpainting`` (y = m x) with a one-pass prox for a 0/1 mask m:

        prox_l2(z, y, gamma) = (m y + z / gamma) / (m + 1 / gamma) = lerp(z, y, m / (1 + 1 / gamma))

    (``torch.lerp``: one pass where deepinv makes four). Per-channel and per-image 0/1 masks
    are fast too; a soft mask (values other than 0 and 1), images of another dtype or device
    than the mask, and everything the module docstring lists fall back to deepinv's code.
    A, A_adjoint and A^T A are deepinv's (one multiplication each already).
    """

    _original = Inpainting

    _op_sources = _mask_sources

    def _build_op(self):
        mask = self.mask
        if mask.dtype not in _FLOATS or mask.dim() != 4:
            return f"the mask is {mask.dtype} {tuple(mask.shape)}, not a float [B, C, H, W]"
        if not _binary(mask):
            return "the mask is soft (values other than 0 and 1)"
        return _Mask(mask)

    def prox_l2(self, z, y, gamma, **kwargs):
        """argmin_x 1/2 ||m x - y||^2 + 1/(2 gamma) ||x - z||^2 = lerp(z, y, m / (1 + 1/gamma))."""
        args = None if kwargs else self._same_shape_args(z, y, gamma)
        if args is not None:
            return self._lerp_prox(args[0].mask, z, y, args[1])
        return super().prox_l2(z, y, gamma, **kwargs)

    def __mul__(self, other):
        """deepinv's mask product (an Inpainting of mask * other.mask) for any other Inpainting:
        deepinv tests ``isinstance(other, self.__class__)``, which the accelerated class would
        fail for a plain Inpainting and compose the two as a general (CG) physics instead."""
        if isinstance(other, Inpainting) and not isinstance(other, FastInpainting):
            return FastInpainting(
                img_size=self.img_size,
                mask=self.mask * other.mask,
                noise_model=self.noise_model,
                device=self.mask.device if self.mask is not None else None,
            )
        return super().__mul__(other)

    @staticmethod
    def _lerp_prox(mask, z, y, gm: _Gamma) -> torch.Tensor:
        # deepinv: (m y + c1 z) / (m^2 + c2), c1 = 1 / gamma in gamma's dtype; c2 the same, or
        # 1 / (gamma cast to the mask's dtype) when gamma has fewer dimensions than the mask
        B = z.shape[0]
        c1 = gm.c.expand(B)
        v, c2 = z, c1
        if gm.mixed and gm.dim < mask.dim():
            c2 = 1 / gm.g
            v = z * (c1 * gm.g).view(-1, 1, 1, 1)  # so that (y + c2 v) = (y + c1 z)
        w = mask * (1 / (1 + c2)).view(-1, 1, 1, 1)
        return torch.lerp(v, y, w)


# --------------------------------------------------------------------------------- Denoising


class _Unit:
    """Denoising's mask, a 0-d tensor equal to 1."""

    def __init__(self, mask: torch.Tensor):
        self.dtype, self.device = mask.dtype, mask.device

    def accepts(self, z) -> bool:
        return _image(z, self.dtype, self.device)


class FastDenoising(_Fast, Denoising):
    """deepinv's ``Denoising`` (A = I) with a one-pass prox:

        prox_l2(z, y, gamma) = (y + z / gamma) / (1 + 1 / gamma) = lerp(z, y, 1 / (1 + 1 / gamma))

    (``torch.lerp``: one pass where deepinv makes three). Fast for images of the dtype and
    device of the physics' 0-d ``mask`` buffer (float32 unless the physics was moved with
    ``.to()``) while that mask is 1; deepinv's code otherwise.
    """

    _original = Denoising

    _op_sources = _mask_sources

    def _build_op(self):
        mask = self.mask
        if mask.dtype not in _FLOATS or mask.dim() != 0 or not bool(mask == 1):
            return f"the mask is {mask.dtype} {tuple(mask.shape)} and not the scalar 1"
        return _Unit(mask)

    def prox_l2(self, z, y, gamma, **kwargs):
        """argmin_x 1/2 ||x - y||^2 + 1/(2 gamma) ||x - z||^2 = lerp(z, y, 1 / (1 + 1/gamma))."""
        args = None if kwargs else self._same_shape_args(z, y, gamma)
        if args is not None:
            return self._lerp_prox(z, y, gamma, args[1])
        return super().prox_l2(z, y, gamma, **kwargs)

    @staticmethod
    def _lerp_prox(z, y, gamma, gm: _Gamma) -> torch.Tensor:
        # deepinv: (y + c z) / (1 + c), c = 1 / gamma in gamma's dtype; the 0-d mask leaves
        # 1 + c in gamma's dtype when gamma has dimensions (float32 with float64 images)
        B = z.shape[0]
        c = gm.c.expand(B)
        v, s = z, 1 + c
        if gm.mixed and gm.dim >= 1:
            s = (1 + 1 / gamma.reshape(-1)).to(z.dtype).expand(B)
            v = z * (c / (s - 1)).view(-1, 1, 1, 1)  # so that (y + (s - 1) v) = (y + c z)
        return torch.lerp(v, y, (1 / s).view(-1, 1, 1, 1))


# ------------------------------------------------------------------------------ registry


_FAST: dict[type, type] = {
    BlurFFT: FastBlurFFT,
    Downsampling: FastDownsampling,
    Inpainting: FastInpainting,
    Denoising: FastDenoising,
}


def _supported() -> str:
    return ", ".join(f"deepinv.physics.{t.__name__}" for t in _FAST)


def accelerate(physics, *, inplace: bool = False):
    """The accelerated drop-in of a deepinv physics (see the module docstring).

    ``physics``: an instance of exactly ``deepinv.physics.BlurFFT``, ``Downsampling``,
    ``Inpainting`` or ``Denoising`` (subclasses such as ``Upsampling`` or ``Demosaicing`` change
    the maths and are refused), or an already accelerated one. Returns a clone whose class is
    ``FastBlurFFT``, ``FastDownsampling``, ``FastInpainting`` or ``FastDenoising`` (the same
    buffers' values, noise model and parameters; ``isinstance`` of the original class holds);
    ``inplace=True`` swaps the class of ``physics`` itself and returns it.
    """
    if not isinstance(inplace, bool):
        raise TypeError(f"inplace must be a bool, not {type(inplace).__name__}")
    kind = type(physics)
    if kind in _FAST.values():
        return physics if inplace else physics.clone()
    if kind not in _FAST:
        raise TypeError(
            f"accelerate takes a physics of exactly one of the types {_supported()}, not "
            f"{kind.__module__}.{kind.__qualname__} (subclasses are refused: they change the "
            "maths)"
        )
    new = physics if inplace else physics.clone()
    new.__class__ = _FAST[kind]
    new._pnpfast_cache().clear()
    return new


# ------------------------------------------------------------------------------ conversions


def to_pnpfast(physics) -> LinearOperator:
    """The pnpfast operator of a deepinv physics (accelerated or not), with the same A:

    * ``BlurFFT`` with a filter [Bf, C, h, w] whose channels are equal -> ``Blur(filter[:, 0])``
      ([Bf, h, w]: one kernel per image, or shared when Bf = 1);
    * ``Downsampling`` with ``padding="circular"`` -> ``SuperResolution(filter[:, 0], factor)``
      (no filter: the kernel [[1]]);
    * ``Inpainting`` with a 0/1 mask [Bm, C, H, W] whose channels are equal ->
      ``Inpainting(mask[:, :1] != 0)``;
    * ``Denoising`` (mask 1) -> ``Identity()``.

    The noise model is not part of a pnpfast operator and is dropped. ValueError, saying why,
    when the parameters have no pnpfast form (no filter or mask, per-channel filters or masks,
    a soft mask, another padding); TypeError for any other type (subclasses included).
    """
    kind = type(physics)
    original = getattr(kind, "_original", kind) if issubclass(kind, _Fast) else kind
    name = f"deepinv.physics.{original.__name__}"
    if original is BlurFFT:
        filt = physics.filter
        if filt is None:
            raise ValueError(f"physics is a {name} without a filter: set one first")
        if filt.dim() != 4 or not _equal_channels(filt):
            raise ValueError(
                f"physics is a {name} whose filter {tuple(filt.shape)} differs between channels; "
                "pnpfast's Blur blurs every channel with the same kernel"
            )
        return Blur(filt[:, 0])
    if original is Downsampling:
        if physics.padding != "circular":
            raise ValueError(
                f"physics is a {name} with padding={physics.padding!r}; pnpfast's "
                "SuperResolution is circular (padding='circular')"
            )
        filt = physics.filter
        if filt is None:
            return SuperResolution(torch.ones(1, 1), int(physics.factor))
        if filt.dim() != 4 or not _equal_channels(filt):
            raise ValueError(
                f"physics is a {name} whose filter {tuple(filt.shape)} differs between channels; "
                "pnpfast's SuperResolution blurs every channel with the same kernel"
            )
        return SuperResolution(filt[:, 0], int(physics.factor))
    if original is Inpainting:
        mask = physics.mask
        if mask is None:
            raise ValueError(f"physics is a {name} without a mask: set one first")
        if mask.dim() != 4 or not _equal_channels(mask):
            raise ValueError(
                f"physics is a {name} whose mask {tuple(mask.shape)} differs between channels; "
                "pnpfast's Inpainting masks every channel alike"
            )
        if not _binary(mask):
            raise ValueError(
                f"physics is a {name} with a soft mask (values other than 0 and 1); pnpfast's "
                "Inpainting takes a 0/1 mask"
            )
        return PnpInpainting(mask[:, :1] != 0)
    if original is Denoising:
        if not bool(physics.mask == 1):
            raise ValueError(f"physics is a {name} whose mask is not 1")
        return Identity()
    raise TypeError(
        f"physics must be exactly one of {_supported()} (or its accelerated class), not "
        f"{kind.__module__}.{kind.__qualname__}"
    )


def _img_size(img_size) -> tuple[int, int, int]:
    if not isinstance(img_size, (tuple, list, torch.Size)):
        raise TypeError(
            f"img_size must be a tuple (C, H, W) (deepinv's image size), not "
            f"{type(img_size).__name__}"
        )
    if len(img_size) != 3:
        raise ValueError(f"img_size must be deepinv's image size (C, H, W), got {img_size!r}")
    return tuple(_validate.integer(f"img_size[{i}]", n, 1) for i, n in enumerate(img_size))


def from_pnpfast(operator: LinearOperator, img_size, *, dtype: torch.dtype = torch.float32):
    """The accelerated deepinv physics of a pnpfast operator, for images of size
    ``img_size = (C, H, W)`` and dtype ``dtype`` (float32, deepinv's default, or float64; a
    deepinv physics holds its buffers in one dtype, and images of another dtype take deepinv's
    own, slower code):

    * ``Blur`` (kernel [Bk, h, w]) -> ``FastBlurFFT(img_size, filter=kernel[:, None])``;
    * ``SuperResolution`` -> ``FastDownsampling(img_size, filter=kernel[:, None], factor,
      padding="circular")``;
    * ``Inpainting`` (mask [H, W] or [Bm, 1, H, W]) -> ``FastInpainting(img_size, mask)``
      with the mask as 0/1 [Bm, C, H, W];
    * ``Identity`` -> ``FastDenoising()``.

    The buffers are on the device of the kernel or mask (the CPU for Identity; move the physics
    with ``.to(device)``). deepinv's default noise model comes with each (``A`` is noiseless,
    ``forward`` adds deepinv's noise). TypeError for any other operator or dtype; ValueError for
    a bad img_size or one that the operator cannot take.
    """
    C, H, W = _img_size(img_size)
    if dtype not in _FLOATS:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, not {dtype}")
    if isinstance(operator, SuperResolution):
        s = operator.factor
        if H % s or W % s:
            raise ValueError(f"img_size {(C, H, W)} is not divisible by the factor {s}")
        filt = operator.kernel[:, None].to(dtype)
        return FastDownsampling((C, H, W), filter=filt, factor=s, padding="circular")
    if isinstance(operator, Blur):
        kh, kw = operator.kernel.shape[-2:]
        if kh > H or kw > W:
            raise ValueError(f"img_size {(C, H, W)} is smaller than the kernel {kh}x{kw}")
        return FastBlurFFT((C, H, W), filter=operator.kernel[:, None].to(dtype))
    if isinstance(operator, PnpInpainting):
        mask = operator.mask
        mask = mask.view(1, 1, *mask.shape) if mask.dim() == 2 else mask
        if tuple(mask.shape[-2:]) != (H, W):
            raise ValueError(
                f"img_size {(C, H, W)} does not match the mask's size "
                f"{mask.shape[-2]}x{mask.shape[-1]}"
            )
        mask = mask.to(dtype).expand(mask.shape[0], C, H, W).contiguous()
        return FastInpainting((C, H, W), mask=mask, device=mask.device)
    if isinstance(operator, Identity):
        return FastDenoising().to(dtype)
    raise TypeError(
        "operator must be a pnpfast Blur, SuperResolution, Inpainting or "
        f"pnpfast.operators.Identity, not {type(operator).__name__}"
    )


# -------------------------------------------------------------------------------- denoisers


def _sigma_for(sigma, x: torch.Tensor):
    """deepinv's noise level (float, 0-d, [1], [B], [B, 1, 1, 1]) as pnpfast takes it: a Python
    float, or a [B] tensor of x's dtype and device."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, torch.Tensor)):
        raise TypeError(
            f"sigma must be a float or a tensor of one level per image, not {type(sigma).__name__}"
        )
    if not isinstance(sigma, torch.Tensor):
        return float(sigma)
    B = x.shape[0]
    if sigma.numel() not in (1, B) or any(n != 1 for n in sigma.shape[1:]):
        raise ValueError(
            f"sigma has shape {tuple(sigma.shape)}: a pnpfast denoiser takes one noise level per "
            f"image (a float, or a tensor of 1 or {B} values such as deepinv's [B, 1, 1, 1]), "
            "not a noise map"
        )
    if sigma.is_complex() or sigma.dtype == torch.bool:
        raise TypeError(f"sigma must be a real tensor, not {sigma.dtype}")
    return sigma.reshape(-1).to(device=x.device, dtype=x.dtype).expand(B).contiguous()


class PnpfastDenoiser(deepinv.models.Denoiser):
    """A pnpfast denoiser (any ``D(x, sigma)``, sigma a float or a [B] tensor) as a
    ``deepinv.models.Denoiser``, for deepinv's priors (``PnP``, ``RED``), ``DPIR`` and
    ``optim_builder``.

    ``forward(x, sigma)``: x [B, C, H, W]; sigma a float, or a tensor of 1 or B values in any
    of deepinv's shapes (0-d, [1], [B], [B, 1, 1, 1]; deepinv's DPIR passes a float32 0-d
    tensor), cast to x's dtype and device (no host synchronisation). A noise map (a sigma with
    spatial extent) is a ValueError: pnpfast denoisers take one level per image. Extra keyword
    arguments of deepinv's interface are accepted and ignored. A ``torch.nn.Module`` denoiser
    is registered as a submodule, so ``.to()`` moves it.
    """

    def __init__(self, denoiser, device=None):
        if not callable(denoiser):
            raise TypeError(
                f"denoiser must be callable as D(x, sigma), not {type(denoiser).__name__}"
            )
        super().__init__(device="cpu")
        self.denoiser = denoiser
        if device is not None:
            self.to(device)

    def forward(self, x, sigma, *args, **kwargs):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a [B, C, H, W] tensor, not {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"x must have shape [B, C, H, W], got {tuple(x.shape)}")
        return self.denoiser(x, _sigma_for(sigma, x))


class DeepinvDenoiser(Denoiser):
    """A deepinv denoiser (``model(x, sigma)``, e.g. ``deepinv.models.DRUNet``) as a pnpfast
    ``Denoiser``, for ``pnpfast.solve`` and anything taking ``D(x, sigma)``.

    ``forward(x, sigma)``: x [B, C, H, W]; sigma a float or a [B] tensor, checked and passed
    to the model as a [B] tensor of x's dtype and device (deepinv's denoisers take that form).
    ``blind=True`` for a model that ignores sigma (its values are then not checked);
    ``channels``: the channel count the model takes, checked on x (None: any). The model is
    called as is: deepinv's networks are mostly float32, so give them float32 images.
    """

    def __init__(self, model, *, blind: bool = False, channels: int | None = None):
        super().__init__()
        if not callable(model):
            raise TypeError(
                f"model must be callable as model(x, sigma), not {type(model).__name__}"
            )
        self.model = model
        self.blind = _validate.flag("blind", blind)
        if channels is not None:
            channels = _validate.integer("channels", channels, 1)
        self.channels = channels

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        x, s = self.check_input(x, sigma)
        return self.model(x, s)

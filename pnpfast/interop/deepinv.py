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

    prox_l2(z, y, gamma) = argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - z||^2
    A_adjoint(y)         = A^T y           (a copy of the cached A^T y when y is the cached y)
    A_adjoint_A(x)       = A^T A x         (BlurFFT: 2 FFTs; Downsampling: 2 FFTs)
    A(x)                 = A x             (BlurFFT, Downsampling: one FFT pass fewer)

Shapes as deepinv's: images z, x [B, C, H, W]; y [B, C, H, W] (blur, mask, identity) or
[B, C, H / s, W / s] (Downsampling by s). ``gamma`` may be a Python float or int, a 0-d tensor,
a [1] tensor or a [B, 1, 1, 1] tensor (the forms deepinv broadcasts), and here also a [B]
tensor (one value per image; deepinv's own prox_l2 fails on it or, for ``Denoising`` with
B == W, broadcasts it along the image width). gamma is never read on the host (no ``.item()``);
1 / gamma is computed in gamma's own dtype, as deepinv does (deepinv's DPIR passes a float32
0-d gamma even for float64 images), so float64 results agree with deepinv's to about 1e-13.

The fast paths, per class:

* ``BlurFFT``: K^ = mask * angle (deepinv's own spectrum buffers), conj(K^) Y^ and A^T y cached
  for the current y; prox_l2 = irfft2(fft_prox(rfft2(z), conj(K^) Y^, |K^|^2, gamma)) with
  ``pnpfast.ops.fft_prox`` (X^ = (Z^ + gamma conj(K^) Y^) / (1 + gamma |K^|^2)): 2 FFTs where
  deepinv's recomputes A^T y and takes 4.
* ``Downsampling`` with ``padding="circular"`` and a filter: ``pnpfast.operators.SuperResolution``
  (filter[:, 0], factor); A^T y and fft2(A^T y) cached; prox_l2 = Zhao et al.'s closed form
  (IEEE TIP 2016) by ``pnpfast.ops.sr_prox``, 2 FFTs where deepinv's takes 4 plus a
  recomputation of its filter spectrum.
* ``Inpainting`` with a 0/1 mask m (soft and per-channel masks are fine too where 0/1):
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
and is seen. Writes that torch does not count, through ``y.data`` or a numpy view
(``y.numpy()[...] = ...``), are not: call ``physics.clear_cache()`` after them. Tensors made
under ``torch.inference_mode()`` have no version counter, so nothing is cached for them (they are
recomputed on every call). The cache holds one y (an image and a spectrum of memory);
``clear_cache()`` frees it.

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

import torch
from deepinv.physics import BlurFFT

from pnpfast.ops import fft_prox

__all__ = ["FastBlurFFT", "accelerate"]

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
        flat = torch.full((1,), value, dtype=torch.float64, device=z.device)
        dim, mixed = 0, False
    elif isinstance(gamma, torch.Tensor):
        if gamma.dtype not in _FLOATS or gamma.device != z.device:
            return None
        if tuple(gamma.shape) not in {(), (1,), (B,), (1, 1, 1, 1), (B, 1, 1, 1)}:
            return None
        flat = gamma.reshape(-1)
        dim = gamma.dim()
        mixed = gamma.dtype == torch.float32 and z.dtype == torch.float64
    else:
        return None
    g = flat.to(z.dtype).expand(B).contiguous()
    c = (1 / flat).to(z.dtype)
    return _Gamma(g, c, mixed, dim)


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
        if not torch.equal(k_hat, k_hat[:, :1].expand_as(k_hat)):
            return "the filter differs between channels (pnpfast blurs every channel alike)"
        k2 = mask[:, :1, ..., 0] * mask[:, :1, ..., 0]
        return _Spectrum(k_hat[:, :1].contiguous(), k2.contiguous(), mask.shape[1], H, W)

    def A(self, x, filter=None, **kwargs):
        """A x = irfft2(K^ rfft2(x)), deepinv's maths in one spectral pass fewer."""
        if filter is None and not kwargs:
            op = self._op()
            if op is not None and op.accepts(x) and not _needs_grad(x):
                return op.apply(x, op.k_hat)
        return super().A(x, filter=filter, **kwargs)

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
        op = self._op()
        if op is None or not op.accepts(z) or not isinstance(y, torch.Tensor):
            return None
        if y.shape != z.shape or y.dtype != z.dtype or _needs_grad(z, y, gamma):
            return None
        gm = _gamma(gamma, z)
        if gm is None:
            return None
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


# ------------------------------------------------------------------------------ registry


_FAST: dict[type, type] = {BlurFFT: FastBlurFFT}


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

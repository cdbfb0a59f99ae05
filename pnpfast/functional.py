"""Plain-tensor steps for hand-written PnP loops: the functions that DPIR/KAIR, GS-PnP, Prox-PnP
and Kadkhodaie & Simoncelli's sampler call, under their names, with their arguments in their
order and meaning, batched, and computed by the fused ops that ``pnpfast.solve`` runs.

The data term is the one of those codebases: y = (k * x) decimated by sf (circular convolution,
the kernel's tap (h // 2, w // 2) at the origin, then keeping the top-left pixel of each
sf x sf block; sf = 1 is deblurring), A = S K, and

    data_solution(x, ..., alpha, sf) = argmin_z ||A z - y||^2 + alpha ||z - x||^2
                                     = (A^T A + alpha I)^-1 (A^T y + alpha x)

(Zhao, Wang, Basarab, Kouame, "Fast single image super-resolution using a new analytical solution
for l2-l2 problems", IEEE TIP 2016; Zhang et al., "Plug-and-Play Image Restoration with Deep
Denoiser Prior", TPAMI 2021, eq. 13). In pnpfast's prox convention this is
prox_{gamma f}(x) with f = 1/2 ||A z - y||^2 and gamma = 1 / alpha (``pnpfast.L2.prox``).

Correspondence with the public code (read 2026-12; utils_sisr.py of cszn/DPIR and cszn/KAIR,
utils/utils_sr.py of samuro95/GSPnP and samuro95/Prox-PnP, code/algorithm_inv_prob.py of
LabForComputationalVision/universal_inverse_problem):

=============================================  ===============================================
theirs                                         here
=============================================  ===============================================
p2o(psf, shape)                                ``p2o(psf, shape)``
upsample(x, sf), downsample(x, sf) (st = 0)    ``upsample(x, sf)``, ``downsample(x, sf)``
pre_calculate(x, k, sf) (DPIR, KAIR, GS-PnP)   ``pre_calculate(x, k, sf)``
pre_calculate_prox(x, k, sf) (GS-PnP, Prox)    ``pre_calculate_prox`` (the same function)
data_solution(x, FB, FBC, F2B, FBFy, alpha,    ``data_solution(x, FB, FBC, F2B, FBFy, alpha,
sf) (DPIR, KAIR, GS-PnP's calculate_prox)      sf)``
prox_solution(...) (Prox-PnP, same arguments)  ``prox_solution`` (the same function)
prox_solution_L2(x, FB, FBC, F2B, FBFy,        ``prox_solution_L2(..., stepsize, sf)``:
stepsize, sf) (GS-PnP: alpha = 1 / stepsize)   alpha = 1 / stepsize
grad_solution(x, FB, FBC, F2B, FBFy, sf)       ``grad_solution`` = ``data_grad``: A^T A x - A^T y
(Prox-PnP)
grad_solution_L2(x, y, k, sf) (GS-PnP)         ``data_grad(x, *pre_calculate(y, k, sf), sf)``
                                               (equal for odd kernel sizes)
x - tau * grad                                 ``grad_step(x, FB, FBC, F2B, FBFy, tau, sf)``
univ_inv_sol(model, x_c, task, sig_0, sig_L,   ``constrained_sample(model, x_c, task.M_T,
h0, beta, freq)                                task.M, sig_0, sig_L, h0, beta)``
=============================================  ===============================================

Spectra are complex tensors (``torch.fft``). The original code keeps them in the legacy real
layout [..., 2] of ``torch.rfft(t, 2, onesided=False)`` (removed from torch 2) or
``torch.view_as_real(fft2(t))`` (GS-PnP): ``torch.view_as_real(FB)`` gives their layout and
``torch.view_as_complex(FB2)`` turns theirs into ours. F2B = |FB|^2 is returned real (theirs is
complex with a zero imaginary part; a complex F2B is accepted and its real part read).

Batched: their functions take one image (N = 1, a [1, 1, 1, 1] alpha); here x is [B, C, H, W]
with B images at once, the kernel may be one per image, and every per-image parameter (alpha,
stepsize, tau, sig_0, ...) is a Python number, a 0-d tensor, a [1] or [B] tensor, or the
[B, 1, 1, 1] (or [1, 1, 1, 1]) tensor their code builds. The per-iteration functions
(``data_solution``, ``data_grad``, ``grad_step``) read only tensor metadata: no host
synchronisation, so the values of a tensor alpha are not checked (a Python number is).

Speed (this project's 2-core CPU, 1 thread, 8x3x256x256 float32, 9x9 kernel, interleaved runs
of 15-41 calls, medians; the machine was shared, so ranges over five runs): ``data_solution``
took 10-14 ms for sf = 1 (rfft2 half spectra; the full-FFT ``sr_prox`` path took 16.5-31) and
14.6-28 ms for sf = 2, against 28-57 ms and 21-64 ms for DPIR's formula written with torch's
complex FFTs in the same runs: 2.7-4.7x and 1.5-3.6x.
"""

import math
from collections.abc import Callable, Sequence

import torch
from torch.utils.weak import WeakTensorKeyDictionary

from pnpfast import _validate
from pnpfast.operators.blur import centred_padded
from pnpfast.operators.orthonormal import OrthonormalOperator
from pnpfast.ops import fft_grad, fft_prox, sr_prox
from pnpfast.ops.sr_prox import alias_mean, real_ifft2, spread
from pnpfast.solvers.engine import IterationInfo
from pnpfast.solvers.implicit_prior import ImplicitPriorParams, solve_constrained

COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}

#: the roundoff bound of p2o's imaginary-part flush: MATLAB's eps for float64, as theirs
_EPS = 2.22e-16


# -- argument checks -------------------------------------------------------------------------


def _sf(sf) -> int:
    return _validate.integer("sf", sf, 1, hint="(the scale factor; 1 for deblurring)")


def _tensor(name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    _validate.not_empty(name, t)
    return t


def _legacy_layout(name: str, t: torch.Tensor) -> None:
    """TypeError for a spectrum in the [..., 2] real layout of torch.rfft(onesided=False)."""
    if not t.is_complex() and t.dim() == 5 and t.shape[-1] == 2:
        raise TypeError(
            f"{name} is a real tensor of shape {tuple(t.shape)}: the legacy [..., 2] layout of "
            f"torch.rfft(onesided=False); pass torch.view_as_complex({name}) (complex spectra, "
            "as torch.fft.fft2 returns them)"
        )


def _per_image(
    name: str, value, batch: int, like: torch.Tensor, *, reciprocal: bool = False
) -> torch.Tensor:
    """A per-image parameter as a [batch] tensor of like's dtype and device (its reciprocal with
    ``reciprocal``, computed in that dtype). Accepted: a Python number (checked: finite, > 0), a
    tensor of shape [], [1], [batch], [1, 1, 1, 1] or [batch, 1, 1, 1] (form only: no values are
    read, so no host synchronisation)."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be real, not {value.dtype}")
        shape = tuple(value.shape)
        if value.dim() == 4 and shape[1:] == (1, 1, 1):
            value = value.reshape(-1)
        elif value.dim() == 0:
            value = value.reshape(1)
        if value.dim() != 1 or value.shape[0] not in (1, batch):
            raise ValueError(
                f"{name} must be a float or a tensor of shape [], [1], [{batch}] or "
                f"[{batch}, 1, 1, 1] (one value per image), got shape {shape}"
            )
        _validate.not_empty(name, value)
        t = value.to(device=like.device, dtype=like.dtype)
        if reciprocal:
            t = 1 / t
        return t.expand(batch).contiguous()
    t = _validate.per_image(name, value, batch, like, positive=True)
    if reciprocal:
        # checked on the host against the images' dtype (no device read, no tensor made):
        # 1 / 1e-40 is Inf in float32
        if not 1 / float(value) <= torch.finfo(like.dtype).max:
            raise ValueError(f"{name} = {value} is too small: 1 / {name} overflows {like.dtype}")
        t = 1 / t
    return t


def _check_spectra(x, FB, FBC, F2B, FBFy, sf) -> int:
    """The checks of the functions that take pre_calculate's four spectra (metadata only)."""
    _validate.image("x", x, finite=False)
    sf = _sf(sf)
    cdt = COMPLEX_OF[x.dtype]
    for name, t in (("FB", FB), ("FBC", FBC), ("F2B", F2B), ("FBFy", FBFy)):
        _tensor(name, t)
        _legacy_layout(name, t)
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    for name, t in (("FB", FB), ("FBC", FBC), ("FBFy", FBFy)):
        if t.dtype != cdt:
            raise TypeError(
                f"{name} must be {cdt} to match x ({x.dtype}), not {t.dtype} (pre_calculate "
                "makes the spectra in the dtype of its x)"
            )
    if F2B.dtype not in (x.dtype, cdt):
        raise TypeError(f"F2B must be {x.dtype} (or {cdt}) to match x, not {F2B.dtype}")
    B, _, H, W = x.shape
    if H % sf or W % sf:
        raise ValueError(f"x has size {H}x{W}, not divisible by the scale factor sf = {sf}")
    if tuple(FBFy.shape) != tuple(x.shape):
        raise ValueError(
            f"FBFy has shape {tuple(FBFy.shape)} but x has shape {tuple(x.shape)}: FBFy is "
            "conj(FB) * fft2(upsample(y, sf)), one spectrum per image and channel of x"
        )
    if FB.dim() != 4 or FB.shape[0] not in (1, B) or tuple(FB.shape[1:]) != (1, H, W):
        raise ValueError(
            f"FB must have shape [1 or {B}, 1, {H}, {W}] (one kernel for the batch or one per "
            f"image, the same for every channel), got {tuple(FB.shape)}"
        )
    for name, t in (("FBC", FBC), ("F2B", F2B)):
        if t.shape != FB.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)} but FB has {tuple(FB.shape)}")
    return sf


# -- derived spectra, cached per source tensor ------------------------------------------------

# What the fused ops read but pre_calculate's layout does not hold as such: the half spectra
# [..., :W // 2 + 1] of FBFy and F2B, contiguous (sf = 1, the rfft2 path), and the alias mean
# of F2B (sf > 1). Keyed by the source tensor object and its version counter, so an in-place
# change of FBFy or F2B is seen; an entry dies with its source.
_DERIVED = WeakTensorKeyDictionary()


def _derived(source: torch.Tensor, key, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    if torch.is_grad_enabled() and source.requires_grad:
        return make()  # a cached value would hold one call's graph
    try:
        version = source._version
    except RuntimeError:  # inference tensors keep no version counter: nothing to key on
        return make()
    entry = _DERIVED.get(source)
    if entry is None or entry[0] != version:
        entry = (version, {})
        _DERIVED[source] = entry
    if key not in entry[1]:
        entry[1][key] = make()
    return entry[1][key]


def _real_f2b(F2B: torch.Tensor) -> torch.Tensor:
    return F2B.real if F2B.is_complex() else F2B


def _half_terms(FBFy: torch.Tensor, F2B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(conj(K^) Y^, |K^|^2) on the rfft2 half [..., :W // 2 + 1], contiguous: sf = 1 runs the
    deblurring prox on half spectra (rfft2 costs half an fft2)."""
    Wr = FBFy.shape[-1] // 2 + 1
    kty = _derived(
        FBFy, "half", lambda: FBFy[..., :Wr].clone(memory_format=torch.contiguous_format)
    )
    k2 = _derived(
        F2B, "half", lambda: _real_f2b(F2B)[..., :Wr].clone(memory_format=torch.contiguous_format)
    )
    return kty, k2


def _k2_mean(F2B: torch.Tensor, sf: int) -> torch.Tensor:
    return _derived(F2B, ("mean", sf), lambda: alias_mean(_real_f2b(F2B), sf).contiguous())


# -- the functions ---------------------------------------------------------------------------


def p2o(psf: torch.Tensor, shape: Sequence[int], *, flush_imag: bool = True) -> torch.Tensor:
    """Point-spread function to optical transfer function: the full 2-D FFT of the kernel
    zero-padded to ``shape`` and rolled so that its tap (h // 2, w // 2) sits at (0, 0), i.e. the
    spectrum K^ of the circular convolution y = k * x (MATLAB's psf2otf; DPIR/KAIR
    ``utils_sisr.p2o``, GS-PnP/Prox-PnP ``utils_sr.p2o``).

    psf: [..., h, w] float32/float64 (theirs: N x C x h x w), h <= H, w <= W; shape: (H, W).
    Returns complex [..., H, W] (theirs: the [..., H, W, 2] real layout, ``torch.view_as_real``
    of this). ``flush_imag`` (default True, as theirs): imaginary parts smaller in magnitude
    than n_ops * 2.22e-16, n_ops = sum_d d log2 d over psf.shape (their rough FFT operation
    count, all of psf's dimensions), are set to 0 (for a symmetric kernel the OTF is then real).
    """
    psf = _tensor("psf", psf)
    if psf.dim() < 2:
        raise ValueError(f"psf must have shape [..., h, w], got shape {tuple(psf.shape)}")
    if psf.dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(f"psf must be float32 or float64, not {psf.dtype}")
    flush_imag = _validate.flag("flush_imag", flush_imag)
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2:
        raise TypeError(f"shape must be the image size (H, W), a pair of ints, not {shape!r}")
    h, w = psf.shape[-2:]
    H = _validate.integer("shape[0]", shape[0], h, hint=f"(H: at least the psf's height {h})")
    W = _validate.integer("shape[1]", shape[1], w, hint=f"(W: at least the psf's width {w})")
    padded = centred_padded(psf.reshape(-1, h, w), H, W).reshape(*psf.shape[:-2], H, W)
    otf = torch.fft.fft2(padded)
    if flush_imag:
        n_ops = sum(d * math.log2(d) for d in psf.shape)
        imag = otf.imag
        otf = torch.complex(otf.real, torch.where(imag.abs() < n_ops * _EPS, 0.0, imag))
    return otf


def upsample(x: torch.Tensor, sf: int = 3) -> torch.Tensor:
    """Zero-filling upsampler S^T (theirs, st = 0): [B, C, h, w] -> [B, C, sf h, sf w] with
    x[b, c, i, j] at pixel (sf i, sf j), the top-left pixel of each sf x sf block, and zeros
    elsewhere. The adjoint of ``downsample``; sf an int >= 1 (default 3, as theirs)."""
    _validate.image("x", x, finite=False)
    sf = _sf(sf)
    B, C, h, w = x.shape
    z = x.new_zeros(B, C, h * sf, w * sf)
    z[..., ::sf, ::sf] = x
    return z


def downsample(x: torch.Tensor, sf: int = 3) -> torch.Tensor:
    """Decimation S (theirs, st = 0): keep the top-left pixel of each sf x sf block,
    x[..., ::sf, ::sf] ([B, C, ceil(H / sf), ceil(W / sf)], a view of x as theirs); sf an
    int >= 1 (default 3, as theirs)."""
    _validate.image("x", x, finite=False)
    sf = _sf(sf)
    return x[..., ::sf, ::sf]


def pre_calculate(
    x: torch.Tensor, k: torch.Tensor, sf: int, *, flush_imag: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The spectra the data step reuses every iteration (DPIR/KAIR ``pre_calculate``, GS-PnP and
    Prox-PnP ``pre_calculate_prox``):

        FB   = p2o(k, (sf h, sf w))                     [Bk, 1, H, W] complex   (K^)
        FBC  = conj(FB)                                 [Bk, 1, H, W] complex
        F2B  = |FB|^2                                   [Bk, 1, H, W] real
        FBFy = FBC * fft2(upsample(x, sf))              [B, C, H, W] complex    (fft2(A^T y))

    x: the low-resolution measurement y (named x, as theirs), [B, C, h, w] float32/float64,
    finite; k: the kernel, [kh, kw] (shared: GS-PnP), [Bk, kh, kw] or [Bk, 1, kh, kw] (DPIR's
    1 x 1 x kh x kw, Prox-PnP's N x 1 x kh x kw), Bk = 1 or B, finite, no larger than the
    image, cast to x's dtype; sf: the scale factor, an int >= 1 (1 for deblurring);
    flush_imag: p2o's flush of round-off imaginary parts (n_ops from k as [Bk, 1, kh, kw]).
    H = sf h, W = sf w. Spectra are complex64 for float32 x, complex128 for float64.
    """
    _validate.image("x", x)
    sf = _sf(sf)
    k = _tensor("k", k)
    if k.dim() == 4 and k.shape[1] != 1:
        raise ValueError(
            f"k must have shape [kh, kw], [Bk, kh, kw] or [Bk, 1, kh, kw] (one kernel for "
            f"every channel), got shape {tuple(k.shape)}"
        )
    if k.dim() not in (2, 3, 4):
        raise ValueError(
            f"k must have shape [kh, kw], [Bk, kh, kw] or [Bk, 1, kh, kw], got shape "
            f"{tuple(k.shape)}"
        )
    if not k.is_floating_point():
        raise TypeError(f"k must be a floating-point tensor, not {k.dtype}")
    if k.device != x.device:
        raise ValueError(f"k is on {k.device} but x is on {x.device}")
    if not bool(torch.isfinite(k).all()):
        raise ValueError("k contains NaN or Inf")
    B, _, h, w = x.shape
    k4 = k.to(x.dtype).reshape(-1, 1, *k.shape[-2:])
    if k4.shape[0] not in (1, B):
        raise ValueError(f"k holds {k4.shape[0]} kernels but x has batch size {B} (1 or {B})")
    kh, kw = k4.shape[-2:]
    H, W = h * sf, w * sf
    if kh > H or kw > W:
        raise ValueError(
            f"k of size {kh}x{kw} is larger than the image ({h}x{w} upsampled by {sf}: {H}x{W})"
        )
    FB = p2o(k4, (H, W), flush_imag=flush_imag)
    FBC = FB.conj().resolve_conj()
    F2B = FB.real.square() + FB.imag.square()
    FBFy = FBC * torch.fft.fft2(upsample(x, sf))
    return FB, FBC, F2B, FBFy


pre_calculate_prox = pre_calculate  # GS-PnP's and Prox-PnP's name, same arguments


def data_solution(
    x: torch.Tensor,
    FB: torch.Tensor,
    FBC: torch.Tensor,
    F2B: torch.Tensor,
    FBFy: torch.Tensor,
    alpha,
    sf: int,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """The closed-form data step of DPIR/KAIR ``data_solution`` (= Prox-PnP ``prox_solution``,
    = GS-PnP ``prox_solution_L2`` with alpha = 1 / stepsize):

        z = argmin_z ||A z - y||^2 + alpha ||z - x||^2 = (A^T A + alpha I)^-1 (A^T y + alpha x)

    per image, A = downsample(k * ., sf) (see the module docstring). In the Fourier domain
    (Zhao et al., IEEE TIP 2016, Thm. 1), with R^ = FBFy + alpha X^ and mean_s the mean over
    the sf^2 aliases of a frequency, Z^ = (R^ - FBC spread(mean_s(FB R^) /
    (mean_s(F2B) + alpha))) / alpha, exactly their steps. Computed as pnpfast's prox with
    gamma = 1 / alpha: for sf = 1 ``pnpfast.ops.fft_prox`` on rfft2 half spectra (one rfft2, one
    fused pass, one irfft2), for sf > 1 ``pnpfast.ops.sr_prox`` (one fft2, one fused pass, one
    inverse).

    x: [B, C, H, W] float32/float64 (theirs: the current iterate, 1 x C x H x W); FB, FBC, F2B,
    FBFy: ``pre_calculate``'s (FB [1 or B, 1, H, W] complex; FBC must be conj(FB), whose shape
    is checked but values not read; F2B real or complex); alpha: > 0 per image, a float or a
    tensor of shape [], [1], [B], [1, 1, 1, 1] or [B, 1, 1, 1] (DPIR:
    ``rhos[i].float().repeat(1, 1, 1, 1)``, rho_k = lam sigma_n^2 / sigma_k^2); sf: the scale
    factor (an int >= 1 dividing H and W); backend: force "reference", "triton" or "cuda" for the
    fused pass. Returns z [B, C, H, W]. No host synchronisation (a tensor alpha's values are not
    checked). The derived spectra the fused pass reads (half spectra, the alias mean of F2B) are
    cached per FBFy / F2B tensor and recomputed when either is changed in place.
    """
    sf = _check_spectra(x, FB, FBC, F2B, FBFy, sf)
    gamma = _per_image("alpha", alpha, x.shape[0], x, reciprocal=True)
    return _prox(x, FB, F2B, FBFy, gamma, sf, backend)


def _prox(x, FB, F2B, FBFy, gamma, sf, backend) -> torch.Tensor:
    H, W = x.shape[-2:]
    if sf == 1:
        kty, k2 = _half_terms(FBFy, F2B)
        return torch.fft.irfft2(fft_prox(torch.fft.rfft2(x), kty, k2, gamma, backend), s=(H, W))
    x_hat = sr_prox(
        torch.fft.fft2(x), FBFy, FB, _k2_mean(F2B, sf), gamma, sf, backend, overwrite_v=True
    )
    return real_ifft2(x_hat)


prox_solution = data_solution  # Prox-PnP's name of the same step, same arguments


def prox_solution_L2(
    x: torch.Tensor,
    FB: torch.Tensor,
    FBC: torch.Tensor,
    F2B: torch.Tensor,
    FBFy: torch.Tensor,
    stepsize,
    sf: int,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """GS-PnP's ``prox_solution_L2``: the prox of the data term with step ``stepsize``,

        argmin_z 1/2 ||A z - y||^2 + 1/(2 stepsize) ||z - x||^2 = data_solution(..., alpha =
        1 / stepsize, ...)

    stepsize: > 0 per image (GS-PnP's tau, a float there; here also a tensor of shape [], [1],
    [B] or [B, 1, 1, 1]); the other arguments as ``data_solution``'s."""
    sf = _check_spectra(x, FB, FBC, F2B, FBFy, sf)
    gamma = _per_image("stepsize", stepsize, x.shape[0], x)
    return _prox(x, FB, F2B, FBFy, gamma, sf, backend)


def data_grad(
    x: torch.Tensor,
    FB: torch.Tensor,
    FBC: torch.Tensor,
    F2B: torch.Tensor,
    FBFy: torch.Tensor,
    sf: int,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """grad of 1/2 ||A x - y||^2: A^T A x - A^T y (Prox-PnP ``grad_solution(x, FB, FBC, F2B,
    FBFy, sf)``; GS-PnP ``grad_solution_L2(x, y, k, sf)`` is data_grad(x, *pre_calculate(y, k,
    sf), sf) for odd kernel sizes). In the Fourier domain FBC spread(mean_s(FB X^)) - FBFy
    (S^T S averages the sf^2 aliases of a frequency); for sf = 1 one rfft2, the fused
    ``pnpfast.ops.fft_grad`` pass (F2B X^ - FBFy) and one irfft2.

    Arguments as ``data_solution``'s; returns [B, C, H, W]. No host synchronisation."""
    sf = _check_spectra(x, FB, FBC, F2B, FBFy, sf)
    return _affine_grad(x, FB, F2B, FBFy, None, sf, backend)


grad_solution = data_grad  # Prox-PnP's name, same arguments


def _affine_grad(x, FB, F2B, FBFy, tau, sf, backend) -> torch.Tensor:
    """A^T A x - A^T y (tau None), or the gradient step x - tau (A^T A x - A^T y) (tau [B])."""
    if sf == 1:
        H, W = x.shape[-2:]
        kty, k2 = _half_terms(FBFy, F2B)
        # fft_grad computes (s k2 + t) X^ - s kty per image
        if tau is None:
            s = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
            t = torch.zeros_like(s)
        else:
            s, t = -tau, torch.ones_like(tau)
        out = fft_grad(torch.fft.rfft2(x), kty, k2, s, t, backend)
        return torch.fft.irfft2(out, s=(H, W))
    # A^T A x - A^T y: S^T S averages the sf^2 aliases of each frequency
    q = alias_mean(FB * torch.fft.fft2(x), sf)
    grad = real_ifft2(torch.addcmul(FBFy, FB.conj(), spread(q, sf), value=-1).neg_())
    if tau is None:
        return grad
    return torch.addcmul(x, tau.view(-1, 1, 1, 1), grad, value=-1)


def grad_step(
    x: torch.Tensor,
    FB: torch.Tensor,
    FBC: torch.Tensor,
    F2B: torch.Tensor,
    FBFy: torch.Tensor,
    tau,
    sf: int,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """A gradient step on the data term, x - tau (A^T A x - A^T y), per image (the data step of
    PnP-PGD / FISTA and of Prox-PnP's PGD, z = x - lam grad_solution(...)); one rfft2, one fused
    ``pnpfast.ops.fft_grad`` pass and one irfft2 for sf = 1.

    tau: the step, > 0 per image (a float or a tensor of shape [], [1], [B] or [B, 1, 1, 1]);
    the other arguments as ``data_solution``'s. No host synchronisation."""
    sf = _check_spectra(x, FB, FBC, F2B, FBFy, sf)
    tau = _per_image("tau", tau, x.shape[0], x)
    return _affine_grad(x, FB, F2B, FBFy, tau, sf, backend)


# -- the sampler -----------------------------------------------------------------------------


class _Measurements(OrthonormalOperator):
    """M^T and M given as callables on batches, as an orthonormal operator for the sampler."""

    def __init__(self, M_T: Callable, M: Callable) -> None:
        self.M_T, self.M = M_T, M

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        return self.M_T(x)

    def lift(self, c: torch.Tensor) -> torch.Tensor:
        return self.M(c)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        out = self.M(self.M_T(x))
        _same_form("M(M_T(y))", out, x)
        return out


def _same_form(what: str, out, like: torch.Tensor) -> None:
    """Metadata checks of a user callable's output against the tensor it should match."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{what} returned {type(out).__name__}, not a torch.Tensor")
    if out.shape != like.shape:
        raise ValueError(
            f"{what} returned shape {tuple(out.shape)} for an image of shape {tuple(like.shape)}"
        )
    if out.dtype != like.dtype:
        raise TypeError(f"{what} returned {out.dtype} for an image of {like.dtype}")
    if out.device != like.device:
        raise ValueError(f"{what} returned a tensor on {out.device} for an image on {like.device}")


def _flat_param(value):
    """A float stays a float; a tensor of shape [B, 1, 1, 1] becomes [B] (ImplicitPriorParams
    takes floats and length-B tensors)."""
    if isinstance(value, torch.Tensor) and value.dim() == 4 and tuple(value.shape[1:]) == (1,) * 3:
        return value.reshape(-1)
    return value


def constrained_sample(
    model: Callable[[torch.Tensor], torch.Tensor],
    x_c: torch.Tensor,
    M_T: Callable[[torch.Tensor], torch.Tensor],
    M: Callable[[torch.Tensor], torch.Tensor],
    sig_0=1.0,
    sig_L=0.01,
    h0=0.01,
    beta=0.01,
    *,
    seed: int | None = None,
    max_iter: int = 10000,
    callback: Callable[[IterationInfo], None] | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Kadkhodaie & Simoncelli's coarse-to-fine constrained sampler (``univ_inv_sol``;
    "Solving linear inverse problems using the prior implicit in a denoiser", NeurIPS 2021,
    Algorithm 2) for a batch, on pnpfast's sampler (``solvers.implicit_prior.solve_constrained``,
    one fused ``ops.constrained_step`` per iteration):

        y_0 = N((I - M M^T) 0.5 + M x_c, sig_0^2 I)
        t = 1, 2, ...:  h_t = h0 t / (1 + h0 (t - 1)),  f = model(y),
                        d = f - M(M_T(f)) + M(M_T(y)) - M(x_c),  sigma_t = ||d|| / sqrt(N),
                        y <- y - h_t d + sigma_t sqrt((1 - beta h_t)^2 - (1 - h_t)^2) z_t
        until sigma_t <= sig_L; returns y - model(y)

    per image (N = C H W), each image with its own t and its own stop.

    model: the blind denoiser's residual, model(y) = y - D(y) (BF-CNN), [B, C, H, W] in and
    out; x_c: the measurements M^T x, batch first ([B, ...]: whatever M_T returns); M_T, M:
    callables on batches (measure: image -> coefficients; back-project: coefficients ->
    [B, C, H, W] image), M of orthonormal columns (M^T M = I); theirs take one (C, H, W) image:
    ``torch.vmap(task.M_T)`` and ``torch.vmap(task.M)`` batch them. sig_0 > sig_L > 0,
    h0 in (0, 1], beta in (0, 1]: per image, a float or a tensor of shape [B] or [B, 1, 1, 1]
    (defaults theirs). seed: the start's noise and the key of the steps' counter-based noise
    (theirs draws torch.randn each step; None draws the key from torch's generator); beta = 1
    adds no noise after the start. max_iter: a cap on the iterations (theirs loops until
    sigma_t <= sig_L; an image still above it after max_iter is returned as it is). callback:
    called with an ``IterationInfo`` (x = y_t, rel_change = sigma_t) after every iteration, e.g.
    to keep every freq-th y_t as their intermediate list. backend: for the fused step.
    The loop runs under ``torch.no_grad()`` (theirs calls the network so inside the loop).
    Returns the final denoised y - model(y), [B, C, H, W] (theirs returns it with the list).
    Unlike theirs the loop takes at least one step (theirs skips the loop when the start's
    residual is already under sig_L; pnpfast requires sig_L < sig_0).
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(y) -> residual, not {type(model)}")
    for name, fn in (("M_T", M_T), ("M", M)):
        if not callable(fn):
            raise TypeError(f"{name} must be a callable on a batch, not {type(fn).__name__}")
    x_c = _tensor("x_c", x_c)
    if x_c.dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(f"x_c must be float32 or float64, not {x_c.dtype}")
    if x_c.dim() < 1:
        raise ValueError("x_c must be batch first ([B, ...]), got a 0-d tensor")
    B = x_c.shape[0]
    lifted = M(x_c)
    if not isinstance(lifted, torch.Tensor):
        raise TypeError(f"M(x_c) returned {type(lifted).__name__}, not a torch.Tensor")
    if lifted.dim() != 4 or lifted.shape[0] != B:
        raise ValueError(
            f"M(x_c) must be a batch of images [{B}, C, H, W] (x_c has batch size {B}), got "
            f"shape {tuple(lifted.shape)}"
        )
    if lifted.dtype != x_c.dtype or lifted.device != x_c.device:
        raise TypeError(
            f"M(x_c) returned {lifted.dtype} on {lifted.device} for x_c of {x_c.dtype} on "
            f"{x_c.device}: M must keep the dtype and the device"
        )
    measured = M_T(lifted)
    if not isinstance(measured, torch.Tensor) or measured.shape != x_c.shape:
        got = tuple(measured.shape) if isinstance(measured, torch.Tensor) else type(measured)
        raise ValueError(
            f"M_T(M(x_c)) must have x_c's shape {tuple(x_c.shape)}, got {got}: M_T must measure "
            "a batch of images into coefficients like x_c"
        )

    def denoiser(y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        r = model(y)
        _same_form("model", r, y)
        return y - r

    params = ImplicitPriorParams(
        sigma_0=_flat_param(sig_0),
        sigma_L=_flat_param(sig_L),
        h0=_flat_param(h0),
        beta=_flat_param(beta),
        seed=seed,
    )
    try:
        with torch.no_grad():  # as theirs: the loop records no graph through the network
            res = solve_constrained(
                x_c,
                _Measurements(M_T, M),
                denoiser,
                params=params,
                max_iter=max_iter,
                history=False,
                x_true=None,
                callback=callback,
                backend=backend,
            )
    except (TypeError, ValueError) as err:  # the sampler's names for the arguments: theirs
        if type(err) not in (TypeError, ValueError):
            raise
        raise type(err)(_their_names(str(err))) from err
    y = res.x
    r = model(y)
    _same_form("model", r, y)
    return y - r


_OUR_NAMES = (
    ("sigma_0", "sig_0"),
    ("sigma_L", "sig_L"),
    ("y (the measurement)", "x_c (the measurement)"),
)


def _their_names(message: str) -> str:
    for ours, theirs in _OUR_NAMES:
        message = message.replace(ours, theirs)
    return message


__all__ = [
    "constrained_sample",
    "data_grad",
    "data_solution",
    "downsample",
    "grad_solution",
    "grad_step",
    "p2o",
    "pre_calculate",
    "pre_calculate_prox",
    "prox_solution",
    "prox_solution_L2",
    "upsample",
]

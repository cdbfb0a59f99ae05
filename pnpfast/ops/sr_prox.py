"""The closed-form proximal step of super-resolution (circular blur, then decimation by s).

For A = S K (K a circular convolution with spectrum K^, S keeping the top-left pixel of each
s x s block) and f(x) = 1/2 ||A x - y||^2, the proximal map

    prox_{gamma f}(v) = argmin_x 1/2 ||S (k * x) - y||^2 + 1/(2 gamma) ||x - v||^2

solves (K^T S^T S K + I / gamma) x = A^T y + v / gamma. In the Fourier domain S^T S averages
the s^2 aliased copies of each frequency, (S^T S z)^ = spread(mean_s(Z^)), where for a spectrum
Z^ [H, W] and h = H / s, w = W / s

    mean_s(Z^)[u, v] = 1/s^2 sum_{0 <= p, q < s} Z^[u + p h, v + q w]     [h, w]
    spread(Q)[u, v]  = Q[u mod h, v mod w]                                 [H, W]

and the Woodbury identity gives (Zhao, Wang, Basarab, Kouamé, "Fast single image
super-resolution using a new analytical solution for l2-l2 problems", IEEE TIP 2016, Thm. 1;
DPIR's ``data_solution`` with alpha = 1 / gamma):

    R^ = V^ + gamma conj(K^) Y_up^            (gamma * FFT of the right-hand side)
    X^ = R^ - conj(K^) spread( gamma mean_s(K^ R^) / (1 + gamma mean_s(|K^|^2)) )

with Y_up^ = FFT(S^T y) (y zero-filled to the image size, the kept pixel at the top-left of
its block), so conj(K^) Y_up^ = FFT(A^T y). For s = 1 this is the deblurring prox
(V^ + gamma conj(K^) Y^) / (1 + gamma |K^|^2) of ``fft_prox``.

The reference works on full complex spectra (``torch.fft.fft2``): the s^2 aliases of a
frequency sit at strides h and w along both axes, so along the last axis most of them fall in
the half that an rfft2 drops; a fused kernel may read them back through Hermitian symmetry,
X^[-u, -v] = conj(X^[u, v]), but the readable reference keeps the gather a plain reshape.
conj(K^) Y_up^, K^ and mean_s(|K^|^2) depend only on (A, y): ``pnpfast.L2`` computes them once.

The fused op ``sr_prox`` is exactly this spectral step, between the caller's fft2 and ifft2:
one pass that, per low-resolution frequency (u, v), gathers its s^2 aliases of V^, conj(K^) Y_up^
and K^, reduces, divides and scatters X^ back (kernels/sr_prox.py: one Triton program per block
of low-resolution frequencies of one image plane; csrc/sr_prox.cu: one CUDA thread per
low-resolution frequency of one plane, its s^2 aliases in registers). It reads 2 spectra and K^
and writes one spectrum, where the unfused torch sequence makes about eight passes with
temporaries.

Full vs real FFT: the op takes full spectra. With an rfft2 the aliases along the last axis at
v + q w, q >= 1, mostly lie in the dropped half, so a kernel would read them as conjugates of
mirrored frequencies (-u - p h, -v - q w), i.e. a second, scattered gather per alias, and write
the kept half only. The saving would be in the FFTs alone. Measured on this project's 2-core
CPU (1 thread, quiet, issue 19), 8x3x256x256 float32: fft2 of the real image 4.4 ms and rfft2
2.0 ms; the inverse as ``real_ifft2`` (irfft2 of the first W // 2 + 1 columns) serves both
layouts; the whole prox took 14.1 ms, its spectral pass 4.9. At 8x3x255x255 (s = 3) the
odd-size fft2 takes 10.3 ms against 8.9 for rfft2. A real layout would save at most a sixth
of the prox on the CPU, and on a GPU the FFTs of both layouts are memory-bound passes of the
same order, while the full layout keeps the gather a fixed-stride tile that reads each input
once and writes each output once. Kept full.

Shapes: v_hat, kty [B, C, H, W] complex; k_hat [Bk, 1, H, W] complex, Bk in {1, B};
k2_mean [Bk, 1, H / s, W / s] real; gamma [B] real > 0; factor s an int >= 1 dividing H and W.
Complex64 with float32, complex128 with float64.
"""

import math

import torch

from pnpfast import _validate
from pnpfast.dispatch import FusedOp
from pnpfast.ops._alloc import empty_output
from pnpfast.ops._checks import check_spectra, not_contiguous, require

# The factors the Triton and CUDA kernels are compiled for (one specialisation each;
# .ci/aot_triton.py, kSrProxMaxFactor in csrc/sr_prox.h)
FAST_FACTORS = (1, 2, 3, 4)


def alias_mean(z: torch.Tensor, factor: int) -> torch.Tensor:
    """mean_s of the module docstring: [..., H, W] -> [..., H / s, W / s], the mean of the s^2
    entries z[..., u + p H/s, v + q W/s]."""
    s = factor
    h, w = z.shape[-2] // s, z.shape[-1] // s
    # s^2 block additions: on the CPU, torch's mean over the two strided axes of the
    # [..., s, h, s, w] view is 10 to 16 times slower (8x3x256x256 complex64, issue 19)
    total = z[..., :h, :w].clone()
    for p in range(s):
        for q in range(s):
            if p or q:
                total += z[..., p * h : (p + 1) * h, q * w : (q + 1) * w]
    return total / (s * s)


def spread(q: torch.Tensor, factor: int) -> torch.Tensor:
    """spread of the module docstring: [..., h, w] -> [..., s h, s w], periodic tiling."""
    return q.repeat(*([1] * (q.dim() - 2)), factor, factor)


def sr_prox_reference(
    v_hat: torch.Tensor,
    kty: torch.Tensor,
    k_hat: torch.Tensor,
    k2_mean: torch.Tensor,
    gamma: torch.Tensor,
    factor: int,
) -> torch.Tensor:
    """X^ = R^ - conj(K^) spread(gamma mean_s(K^ R^) / (1 + gamma k2_mean)), R^ = V^ + gamma kty.

    The spectral step of the super-resolution prox (module docstring): v_hat = fft2(v), kty =
    fft2(A^T y), both [B, C, H, W] complex; k_hat [Bk, 1, H, W]; k2_mean = mean_s(|K^|^2)
    [Bk, 1, H / s, W / s] real; gamma [B] > 0; returns X^ [B, C, H, W] (x = real(ifft2(X^))).
    Arguments are checked for form only (no data is read: NaN passes through).
    """
    _check_args("sr_prox_reference", v_hat, kty, k_hat, k2_mean, gamma, factor)
    return _sr_prox_unchecked(v_hat, kty, k_hat, k2_mean, gamma, factor)


def _sr_prox_unchecked(
    v_hat, kty, k_hat, k2_mean, gamma, factor, overwrite_v: bool = False
) -> torch.Tensor:
    # the reference after sr_prox has checked the arguments; written as five passes (addcmul,
    # product, block sums, tiling, update), in place where autograd does not record them: on
    # the CPU 4.7 ms where the same formula in broadcast 6-d views took 5.4 (8x3x256x256
    # complex64, s = 2, 1 thread, issue 19); overwrite_v: R^ and then X^ are written into v_hat
    s = factor
    g = gamma.view(-1, 1, 1, 1)
    gc = g.to(v_hat.dtype)
    tensors = (v_hat, kty, k_hat, k2_mean, gamma)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        r_hat = torch.addcmul(v_hat, gc, kty)
        q = alias_mean(k_hat * r_hat, s) * (g / (1 + g * k2_mean))  # [B, C, h, w]
        return r_hat - spread(q, s) * k_hat.conj()
    r_hat = v_hat.addcmul_(gc, kty) if overwrite_v else torch.addcmul(v_hat, gc, kty)
    q = alias_mean(k_hat * r_hat, s).mul_(g / (1 + g * k2_mean))
    return r_hat.sub_(spread(q, s).mul_(k_hat.conj()))


def real_ifft2(x_hat: torch.Tensor) -> torch.Tensor:
    """The real image [..., H, W] whose full spectrum x_hat [..., H, W] is (Hermitian up to
    rounding): irfft2 of its first W // 2 + 1 columns, which never forms the complex result
    (on the CPU 4.1 ms against 4.8 for ``ifft2(x_hat).real.contiguous()`` at 8x3x256x256
    complex64, 1 thread, issue 19)."""
    H, W = x_hat.shape[-2:]
    return torch.fft.irfft2(x_hat[..., : W // 2 + 1], s=(H, W))


def _check_args(op, v_hat, kty, k_hat, k2_mean, gamma, factor) -> None:
    complex_args = {"v_hat": v_hat, "kty": kty, "k_hat": k_hat}
    real_args = {"k2_mean": k2_mean, "gamma": gamma}
    for name, t in {**complex_args, **real_args}.items():  # before the factor, as always
        require(isinstance(t, torch.Tensor), f"{op}: {name} must be a tensor", TypeError)
    require(
        isinstance(factor, int) and not isinstance(factor, bool) and factor >= 1,
        f"{op}: factor must be an int >= 1, not {factor!r}",
        TypeError if not isinstance(factor, int) or isinstance(factor, bool) else ValueError,
    )
    check_spectra(op, complex_args, real_args, "[B, C, H, W]")
    B, _, H, W = v_hat.shape
    require(
        H % factor == 0 and W % factor == 0,
        f"{op}: v_hat has size {H}x{W}, not divisible by the factor {factor}",
    )
    require(
        kty.shape == v_hat.shape,
        f"{op}: kty shape {tuple(kty.shape)} != v_hat shape {tuple(v_hat.shape)}",
    )
    require(
        k_hat.dim() == 4 and k_hat.shape[0] in (1, B) and tuple(k_hat.shape[1:]) == (1, H, W),
        f"{op}: k_hat must be [1 or {B}, 1, {H}, {W}], got shape {tuple(k_hat.shape)}",
    )
    h, w = H // factor, W // factor
    require(
        tuple(k2_mean.shape) == (k_hat.shape[0], 1, h, w),
        f"{op}: k2_mean must be [{k_hat.shape[0]}, 1, {h}, {w}] (one per kernel, the image "
        f"size divided by the factor), got shape {tuple(k2_mean.shape)}",
    )
    require(gamma.shape == (B,), f"{op}: gamma must have shape ({B},), got {tuple(gamma.shape)}")


def _launch(launcher, v_hat, kty, k_hat, k2_mean, gamma, factor) -> torch.Tensor:
    # a fast backend's launcher on interleaved (re, im) float views, into a fresh output
    out = empty_output(v_hat)
    if out.numel() == 0:  # nothing to launch: a grid with no programs
        return out
    views = [torch.view_as_real(t) for t in (v_hat, kty, k_hat)]
    launcher(*views, k2_mean, gamma, factor, torch.view_as_real(out))
    return out


@torch.library.custom_op("pnpfast::sr_prox_triton", mutates_args=())
def _sr_prox_triton(
    v_hat: torch.Tensor,
    kty: torch.Tensor,
    k_hat: torch.Tensor,
    k2_mean: torch.Tensor,
    gamma: torch.Tensor,
    factor: int,
) -> torch.Tensor:
    from pnpfast.kernels.sr_prox import sr_prox_triton

    return _launch(sr_prox_triton, v_hat, kty, k_hat, k2_mean, gamma, factor)


@torch.library.custom_op("pnpfast::sr_prox_cuda", mutates_args=())
def _sr_prox_cuda(
    v_hat: torch.Tensor,
    kty: torch.Tensor,
    k_hat: torch.Tensor,
    k2_mean: torch.Tensor,
    gamma: torch.Tensor,
    factor: int,
) -> torch.Tensor:
    return _launch(torch.ops.pnpfast_C.sr_prox_out, v_hat, kty, k_hat, k2_mean, gamma, factor)


@_sr_prox_triton.register_fake
@_sr_prox_cuda.register_fake
def _sr_prox_fake(v_hat, kty, k_hat, k2_mean, gamma, factor):
    return torch.empty_like(v_hat)


def _fast_path_check(v_hat, kty, k_hat, k2_mean, gamma, factor) -> str | None:
    """Why the Triton or CUDA kernel cannot take these inputs (None when it can)."""
    reason = not_contiguous(v_hat=v_hat, kty=kty, k_hat=k_hat, k2_mean=k2_mean, gamma=gamma)
    if reason:
        return reason
    if factor not in FAST_FACTORS:
        return f"factor {factor} (the fast path is compiled for {FAST_FACTORS})"
    if v_hat.shape[0] * v_hat.shape[1] > 65535:
        return "more than 65535 image planes in one call"
    if math.prod(v_hat.shape[2:]) * 2 >= 2**31:
        return "an image plane with 2**30 or more frequencies"
    return None


_op = FusedOp(
    "sr_prox",
    _sr_prox_unchecked,
    {"triton": (_sr_prox_triton, _fast_path_check), "cuda": (_sr_prox_cuda, _fast_path_check)},
)


def sr_prox(
    v_hat: torch.Tensor,
    kty: torch.Tensor,
    k_hat: torch.Tensor,
    k2_mean: torch.Tensor,
    gamma: torch.Tensor,
    factor: int,
    backend: str | None = None,
    *,
    overwrite_v: bool = False,
) -> torch.Tensor:
    """The spectral step of the super-resolution prox (``sr_prox_reference``'s formula) on the
    fastest backend that accepts it: X^ = R^ - conj(K^) spread(gamma mean_s(K^ R^) /
    (1 + gamma k2_mean)), R^ = V^ + gamma kty.

    See the module docstring for shapes. ``backend`` forces "reference", "triton" or "cuda".
    ``overwrite_v=True`` lets the reference backend write X^ into v_hat and return it (for a
    caller's own temporary, as ``L2.prox``'s fft2(v)): on the CPU the result's allocation
    cost 0.8 of 26 ms at 8x3x255x255 (issue 19); the fast backends return a new tensor.
    """
    _check_args("sr_prox", v_hat, kty, k_hat, k2_mean, gamma, factor)
    overwrite_v = _validate.flag("overwrite_v", overwrite_v)
    return _op(v_hat, kty, k_hat, k2_mean, gamma, factor, backend=backend, overwrite_v=overwrite_v)

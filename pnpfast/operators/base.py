"""The linear-operator contract, the capabilities an operator may declare, and a batched
conjugate-gradient prox for operators without a closed form.

    A.forward(x) (also A(x)), A.adjoint(y),
    A.prox_l2(v, y, gamma) = argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2

x and v are images [B, C, H, W]; y is a measurement, of whatever shape A's output has (an image
for a blur or a mask, [B, C, H/s, W/s] for block averages, [B, C, m] for m coefficients per
channel); ``A.image_shape(y)`` gives the image shape for y, or says why y is no measurement of A.
gamma is a float or a length-B tensor (one value per image).

Capabilities, declared by the operator and read by ``prox_l2`` and ``pnpfast.L2`` without knowing
its class:

* ``fourier_multiplier(shape, device, dtype)``: K^ when A x = irfft2(K^ rfft2(x)) (a circular
  convolution), so that
  prox_l2(v, y, gamma) = irfft2((V^ + gamma conj(K^) Y^) / (1 + gamma |K^|^2));
* ``partial_isometry = True`` when A A^T A = A, i.e. A^T A is an orthogonal projection
  (orthonormal rows, A A^T = I, or a 0/1 mask), so that
  prox_l2(v, y, gamma) = v - gamma / (1 + gamma) A^T (A v - y),
  because (A^T A + I / gamma)^-1 = gamma (I - gamma / (1 + gamma) A^T A) and A^T A A^T = A^T;
* ``decimated_fourier_multiplier(shape, device, dtype)``: (K^, mean_s |K^|^2, s) when
  A x = S_s(ifft2(K^ fft2(x))), a circular convolution followed by keeping the top-left pixel
  of each s x s block (super-resolution), so that prox_l2 is the closed form of Zhao et al.
  (``pnpfast.ops.sr_prox``);
* ``gram(x) = A^T A x``, overridden where it is cheaper than adjoint(forward(x)).

Without either closed form, prox_l2 solves the normal equations by batched conjugate gradients.
"""

from collections.abc import Callable

import torch

from pnpfast import _validate
from pnpfast.ops import fft_prox
from pnpfast.ops.sr_prox import sr_prox_reference

# Conjugate gradients on the prox system A^T A + I / gamma (condition number at most
# 1 + gamma ||A^T A||) reach a relative residual tol in about sqrt(cond) log(2 / tol) steps; a
# count above this bound means a system too ill-conditioned for the precision, where more steps
# do not help (a smaller gamma does), so larger counts are refused rather than run for hours.
CG_MAX_ITER = 10_000


def check_cg_args(max_iter, tol, *, names: tuple[str, str] = ("max_iter", "tol")) -> None:
    """max_iter an int in [1, CG_MAX_ITER], tol a finite float in [0, 1) (relative to the
    right-hand side; 0 runs every iteration); errors name the arguments as ``names`` says."""
    it_name, tol_name = names
    _validate.integer(it_name, max_iter, 1, CG_MAX_ITER, hint="(conjugate-gradient steps)")
    _validate.number(
        tol_name, tol, 0, 1, high_open=True, hint="(a residual relative to the right-hand side)"
    )


class LinearOperator:
    """Base class: subclasses define forward and adjoint, and may declare the capabilities of the
    module docstring; prox_l2 takes the closed form they allow, else batched CG."""

    #: A A^T A = A (orthonormal rows, or a 0/1 mask): prox_l2 has a closed form
    partial_isometry: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        """A^T A x. x: [B, C, H, W]."""
        return self.adjoint(self.forward(x))

    def check_input(self, name: str, x: torch.Tensor) -> None:
        """Raise, naming ``name``, if x is not an image this operator applies to. The default
        accepts any [B, C, H, W] float32/float64 tensor."""
        _validate.image(name, x, finite=False)

    def image_shape(self, y: torch.Tensor, name: str = "y") -> tuple[int, ...]:
        """The shape [B, C, H, W] of the images x whose measurement A x has y's shape; raise,
        naming ``name``, if y cannot be a measurement of this operator (wrong rank, size, batch
        or dtype). The default is for operators from images to images of the same shape."""
        self.check_input(name, y)
        return tuple(y.shape)

    def fourier_multiplier(
        self, shape: tuple[int, int], device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """K^, when A is diagonal in the Fourier domain: A x = irfft2(K^ * rfft2(x)) for every
        image x of size shape = (H, W) (a circular convolution, the same for every channel).
        [Bk, 1, H, W // 2 + 1], complex64 for float32 and complex128 for float64, Bk = 1 (shared
        by the batch) or B (one per image). None (the default) when A is not FFT-diagonal."""
        return None

    def decimated_fourier_multiplier(
        self, shape: tuple[int, int], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, int] | None:
        """(K^, mean_s |K^|^2, s) when A is a circular convolution followed by decimation by s
        (keeping the top-left pixel of each s x s block) for images of size shape = (H, W):
        K^ the full fft2 [Bk, 1, H, W] complex, its alias mean [Bk, 1, H / s, W / s] real (see
        ``pnpfast.ops.sr_prox``). None (the default) otherwise."""
        return None

    def prox_l2(
        self,
        v: torch.Tensor,
        y: torch.Tensor,
        gamma,
        *,
        backend: str | None = None,
        max_iter: int = 100,
        tol: float = 1e-6,
    ) -> torch.Tensor:
        """argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2, gamma > 0 per image.

        In closed form for an FFT-diagonal operator (rfft2, one fused ``fft_prox`` pass whose
        backend ``backend`` may force, irfft2) and for a partial isometry; by batched conjugate
        gradients (``max_iter``, ``tol``) otherwise. v: [B, C, H, W]; y: a measurement of v's
        images. Bind y once with ``pnpfast.L2`` to reuse what depends only on y.
        """
        g = self._check_prox_args(v, y, gamma)
        check_cg_args(max_iter, tol)
        k_hat = checked_fourier_multiplier(self, v.shape, v.device, v.dtype)
        if k_hat is not None:
            return _fft_prox(v, *spectral_terms(k_hat, y), g, backend)
        sr = self.decimated_fourier_multiplier(tuple(v.shape[-2:]), v.device, v.dtype)
        if sr is not None:
            return sr_prox_spatial(v, torch.fft.fft2(self.adjoint(y)), *sr, g)
        return self.prox_l2_normal(v, self.adjoint(y), g, max_iter=max_iter, tol=tol)

    def prox_l2_cg(
        self, v: torch.Tensor, y: torch.Tensor, gamma, *, max_iter: int = 100, tol: float = 1e-6
    ) -> torch.Tensor:
        """The same prox by batched conjugate gradients on the normal equations
        (A^T A + I / gamma) x = A^T y + v / gamma, whatever the operator declares: the general
        path, to check the closed forms against."""
        g = self._check_prox_args(v, y, gamma).view(-1, 1, 1, 1)
        check_cg_args(max_iter, tol)
        rhs = self.adjoint(y) + v / g
        return batched_cg(lambda x: self.gram(x) + x / g, rhs, v, max_iter=max_iter, tol=tol)

    def prox_l2_normal(
        self,
        v: torch.Tensor,
        aty: torch.Tensor,
        gamma: torch.Tensor,
        *,
        backend: str | None = None,
        max_iter: int = 100,
        tol: float = 1e-6,
    ) -> torch.Tensor:
        """prox_l2 given A^T y (the right-hand side of the normal equations) instead of y, for
        a caller that has it cached (``pnpfast.L2``). v, aty: [B, C, H, W] of one dtype and
        device; gamma: a [B] tensor > 0 of that dtype. Only the form of the arguments is checked
        (no data is read: it runs inside solver iterations, so NaN passes through). Closed forms
        as in ``prox_l2`` (conj(K^) Y^ = rfft2(A^T y)), else CG."""
        _validate.image("v", v, finite=False)
        if not isinstance(aty, torch.Tensor):
            raise TypeError(f"aty must be a torch.Tensor (A^T y), not {type(aty).__name__}")
        if not isinstance(gamma, torch.Tensor):
            raise TypeError(
                f"gamma must be a tensor of shape ({v.shape[0]},) here, not "
                f"{type(gamma).__name__} (prox_l2 takes floats)"
            )
        _validate.same_device_dtype(v=v, aty=aty, gamma=gamma)
        if aty.shape != v.shape:
            raise ValueError(f"aty has shape {tuple(aty.shape)} but v has {tuple(v.shape)}")
        if gamma.shape != (v.shape[0],):
            raise ValueError(
                f"gamma must have shape ({v.shape[0]},) (one per image), got {tuple(gamma.shape)}"
            )
        check_cg_args(max_iter, tol)
        g = gamma.view(-1, 1, 1, 1)
        if self.partial_isometry:
            return v - g / (1 + g) * (self.gram(v) - aty)
        k_hat = checked_fourier_multiplier(self, v.shape, v.device, v.dtype)
        if k_hat is not None:
            k2 = (k_hat.real**2 + k_hat.imag**2).contiguous()
            return _fft_prox(v, torch.fft.rfft2(aty).contiguous(), k2, gamma, backend)
        sr = self.decimated_fourier_multiplier(tuple(v.shape[-2:]), v.device, v.dtype)
        if sr is not None:
            return sr_prox_spatial(v, torch.fft.fft2(aty), *sr, gamma)
        rhs = aty + v / g
        return batched_cg(lambda x: self.gram(x) + x / g, rhs, v, max_iter=max_iter, tol=tol)

    def _check_prox_args(self, v: torch.Tensor, y: torch.Tensor, gamma) -> torch.Tensor:
        """Validate prox_l2's arguments; gamma as a [B] tensor."""
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor (a measurement), not {type(y).__name__}")
        shape = self.image_shape(y)
        if not bool(torch.isfinite(y).all()):
            raise ValueError("y contains NaN or Inf")
        _validate.image("v", v)
        _validate.same_device_dtype(y=y, v=v)
        if tuple(v.shape) != shape:
            raise ValueError(
                f"v has shape {tuple(v.shape)} but the images measured by y (shape "
                f"{tuple(y.shape)}) have shape {shape} for this {type(self).__name__}"
            )
        return _validate.per_image("gamma", gamma, v.shape[0], v, positive=True)


def _fft_prox(v, kty, k2, gamma, backend) -> torch.Tensor:
    H, W = v.shape[-2:]
    return torch.fft.irfft2(fft_prox(torch.fft.rfft2(v), kty, k2, gamma, backend=backend), s=(H, W))


def sr_prox_spatial(
    v: torch.Tensor,
    kty: torch.Tensor,
    k_hat: torch.Tensor,
    k2_mean: torch.Tensor,
    factor: int,
    gamma: torch.Tensor,
) -> torch.Tensor:
    """The super-resolution prox on images: real(ifft2(sr_prox_reference(fft2(v), ...))).
    v: [B, C, H, W]; kty = fft2(A^T y); k_hat, k2_mean, factor from
    ``decimated_fourier_multiplier``; gamma [B] > 0."""
    x_hat = sr_prox_reference(torch.fft.fft2(v), kty, k_hat, k2_mean, gamma, factor)
    return torch.fft.ifft2(x_hat).real.contiguous()


def checked_fourier_multiplier(
    operator: LinearOperator, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """``operator.fourier_multiplier`` for images of shape [B, C, H, W] with this device and
    dtype, its form checked (an error names the operator); None when it declares none."""
    B, _, H, W = shape
    k_hat = operator.fourier_multiplier((H, W), device, dtype)
    if k_hat is None:
        return None
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    Wr = W // 2 + 1
    ok = isinstance(k_hat, torch.Tensor) and k_hat.dim() == 4 and k_hat.dtype == cdtype
    ok = ok and k_hat.shape[0] in (1, B) and tuple(k_hat.shape[1:]) == (1, H, Wr)
    ok = ok and k_hat.device == device
    if not ok:
        got = (
            f"shape {tuple(k_hat.shape)}, {k_hat.dtype} on {k_hat.device}"
            if isinstance(k_hat, torch.Tensor)
            else type(k_hat).__name__
        )
        raise ValueError(
            f"{type(operator).__name__}.fourier_multiplier must return a {cdtype} tensor of shape "
            f"[1 or {B}, 1, {H}, {Wr}] on {device} for images of shape {tuple(shape)}, got {got}"
        )
    return k_hat


def spectral_terms(k_hat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(conj(K^) Y^, |K^|^2) for the closed-form FFT prox and gradient: [B, C, H, Wr] complex and
    [Bk, 1, H, Wr] real, both contiguous. y: [B, C, H, W]."""
    kty = (k_hat.conj() * torch.fft.rfft2(y)).contiguous()
    k2 = (k_hat.real**2 + k_hat.imag**2).contiguous()
    return kty, k2


def batched_cg(
    apply: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    x0: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
) -> torch.Tensor:
    """Conjugate gradients for a symmetric positive-definite ``apply``, each image on its own.

    Solves apply(x) = rhs from x0 with per-image step sizes; an image whose residual is under
    ``tol`` times its right-hand side stops moving. Shapes: rhs, x0 [B, ...] (B >= 1, one
    floating dtype and device); apply maps [B, ...] to [B, ...]. ``max_iter`` in
    [1, CG_MAX_ITER], ``tol`` in [0, 1). The arguments' forms are checked (no data is read:
    NaN in rhs or x0 gives NaN).
    """
    if not callable(apply):
        raise TypeError(f"apply must be a callable (x -> A x), not {type(apply).__name__}")
    for name, t in (("rhs", rhs), ("x0", x0)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor [B, ...], not {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, not {t.dtype}")
        if t.dim() == 0:
            raise ValueError(f"{name} must have a batch dimension [B, ...], got a 0-d tensor")
        _validate.not_empty(name, t)
    _validate.same_device_dtype(rhs=rhs, x0=x0)
    if x0.shape != rhs.shape:
        raise ValueError(f"x0 has shape {tuple(x0.shape)} but rhs has {tuple(rhs.shape)}")
    check_cg_args(max_iter, tol)

    def dot(a, b):
        return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.dim() - 1)))

    x = x0.clone()
    ax = apply(x)
    if not isinstance(ax, torch.Tensor) or ax.dtype != x.dtype:
        got = ax.dtype if isinstance(ax, torch.Tensor) else type(ax).__name__
        raise TypeError(f"apply must return a {x.dtype} tensor (the dtype of x0), got {got}")
    if ax.shape != x.shape:
        raise ValueError(
            f"apply must return a tensor of x0's shape {tuple(x.shape)}, got {tuple(ax.shape)}"
        )
    r = rhs - ax
    p = r.clone()
    rr = dot(r, r)
    stop = (tol * tol) * dot(rhs, rhs)
    for _ in range(max_iter):
        active = rr > stop
        ap = apply(p)
        alpha = torch.where(active, rr / dot(p, ap).clamp_min(torch.finfo(x.dtype).tiny), 0)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        beta = torch.where(active, rr_new / rr.clamp_min(torch.finfo(x.dtype).tiny), 0)
        p = r + beta * p
        rr = rr_new
    return x


def require_linear_operator(operator) -> None:
    """TypeError unless ``operator`` is a pnpfast LinearOperator; a deepinv physics is pointed
    at its conversion (deepinv itself is not imported: its type's module says where it is from)."""
    if isinstance(operator, LinearOperator):
        return
    kind = type(operator)
    message = f"operator must be a pnpfast LinearOperator, not {kind.__name__}"
    if (kind.__module__ or "").split(".")[0] == "deepinv":
        message += (
            " (a deepinv physics: convert it with pnpfast.interop.deepinv.to_pnpfast(physics), "
            "or keep deepinv's solvers and pass pnpfast.interop.deepinv.accelerate(physics))"
        )
    raise TypeError(message)

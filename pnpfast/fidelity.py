"""The data-fidelity term f(x) = 1/2 ||A x - y||^2, bound to one measurement y.

Everything that depends only on (A, y) is computed once here. For an operator that declares
itself diagonal in the Fourier domain (``LinearOperator.fourier_multiplier`` returns K^, e.g.
``Blur``), the spectra conj(K^) Y^ and |K^|^2 are cached, so that

    prox(v, gamma) = argmin_x f(x) + 1/(2 gamma) ||x - v||^2   is rfft2, fft_prox, irfft2,
    grad_step(x, tau) = x - tau A^T (A x - y)                  is rfft2, fft_grad, irfft2;

any FFT-diagonal operator gets this path without L2 knowing its class. For blur + decimation
(``decimated_fourier_multiplier``, e.g. ``SuperResolution``) K^, mean_s |K^|^2 and fft2(A^T y)
are cached and the prox is fft2, the spectral step of ``pnpfast.ops.sr_prox``, ifft2 (Zhao et
al., TIP 2016); its gradient is the operator's ``gram``. Otherwise A^T y is cached
and the prox is the operator's: the closed form of a partial isometry (``partial_isometry``:
orthonormal rows or a mask), v - gamma / (1 + gamma) (A^T A v - A^T y), else batched conjugate
gradients on the normal equations (an operator that overrides ``prox_l2`` is called as is);
gradients come from ``gram`` (A^T A) and the cached A^T y.

Shapes: x, v [B, C, H, W], the images (``image_shape``); y the measurement, of the operator's
output shape ([B, C, H, W] for a blur or a mask, [B, C, H/s, W/s] for block averages,
[B, C, m] for m coefficients per channel); gamma, tau floats or length-B tensors.
"""

import torch

from pnpfast import _validate
from pnpfast.operators.base import (
    LinearOperator,
    check_cg_args,
    checked_fourier_multiplier,
    require_linear_operator,
    spectral_terms,
)
from pnpfast.operators.super_resolution import super_resolution_factor
from pnpfast.ops import fft_grad, fft_prox, sr_prox
from pnpfast.ops.sr_prox import real_ifft2
from pnpfast.profiling import nvtx_range

# lipschitz's power iteration: a count above this is a typo, not a need (50 is the default)
POWER_MAX_ITER = 10_000


class L2:
    """f(x) = 1/2 ||A x - y||^2 with everything that depends only on (A, y) cached.

    ``cg_max_iter``, ``cg_tol``: the conjugate-gradient prox of an operator without a closed
    form (defaults 100 and 1e-6, relative to the right-hand side): cg_max_iter an int in
    [1, 10000] (``pnpfast.operators.base.CG_MAX_ITER``: beyond it CG on the prox system is not
    converging for lack of precision, and a smaller gamma helps where more steps do not),
    cg_tol a float in [0, 1). Both are checked for every operator, even those that never
    need CG.
    """

    def __init__(
        self,
        operator: LinearOperator,
        y: torch.Tensor,
        *,
        cg_max_iter: int = 100,
        cg_tol: float = 1e-6,
    ):
        require_linear_operator(operator)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor (a measurement), not {type(y).__name__}")
        check_cg_args(cg_max_iter, cg_tol, names=("cg_max_iter", "cg_tol"))
        try:  # the operator says whether y is one of its measurements, and of which images
            self.image_shape: tuple[int, ...] = tuple(operator.image_shape(y, "y"))
        except (TypeError, ValueError) as err:
            raise type(err)(
                f"y is not a measurement of this {type(operator).__name__}: {err}"
            ) from err
        if not bool(torch.isfinite(y).all()):
            raise ValueError("y contains NaN or Inf")
        self.operator = operator
        self.y = y
        self.cg_max_iter = int(cg_max_iter)
        self.cg_tol = float(cg_tol)
        self._aty: torch.Tensor | None = None
        k_hat = checked_fourier_multiplier(operator, self.image_shape, y.device, y.dtype)
        self._spectral = k_hat is not None
        if self._spectral:
            if tuple(y.shape) != self.image_shape:
                raise ValueError(
                    f"{type(operator).__name__} declares a Fourier multiplier, so its "
                    f"measurements must have the images' shape {self.image_shape}, but y has "
                    f"shape {tuple(y.shape)}"
                )
            self.kty, self.k2 = spectral_terms(k_hat, y)  # [B, C, H, Wr], [Bk, 1, H, Wr]
            if not bool(
                torch.isfinite(self.k2).all() & torch.isfinite(torch.view_as_real(self.kty)).all()
            ):
                raise ValueError(
                    f"operator {type(operator).__name__}: its Fourier multiplier squared "
                    f"(|K^|^2) or conj(K^) Y^ overflows {y.dtype}: the kernel's entries are too "
                    "large for this dtype; scale the kernel down (a blur kernel sums to 1)"
                )
        self._sr = None
        if not self._spectral:
            shape = self.image_shape[-2:]
            self._sr = operator.decimated_fourier_multiplier(shape, y.device, y.dtype)
        if self._sr is not None:
            self.sr_kty = torch.fft.fft2(self.aty)  # [B, C, H, W] complex: fft2(A^T y)
            if not bool(torch.isfinite(torch.view_as_real(self.sr_kty)).all()):
                raise ValueError(
                    f"operator {type(operator).__name__}: fft2(A^T y) overflows {y.dtype}: the "
                    "kernel's entries are too large for this dtype; scale the kernel down"
                )
        self._own_prox = type(operator).prox_l2 is not LinearOperator.prox_l2

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    @property
    def aty(self) -> torch.Tensor:
        """A^T y: [B, C, H, W], computed once."""
        if self._aty is None:
            self._aty = self.operator.adjoint(self.y)
        return self._aty

    @property
    def start(self) -> torch.Tensor:
        """The solvers' default x0 [B, C, H, W]: ``A.upsample(y)`` for a super-resolution
        operator of factor s >= 2 (the bicubic interpolation of y on the operator's grid, the
        start of DPIR's and GS-PnP's SR scripts: A^T y is y zero-filled, mostly black), else
        A^T y."""
        if super_resolution_factor(self.operator):
            return self.operator.upsample(self.y)
        return self.aty

    def _check(self, name: str, v: torch.Tensor, check: bool, finite: bool = True) -> None:
        if not check:
            return
        _validate.image(name, v, finite=finite)
        _validate.same_device_dtype(y=self.y, **{name: v})
        if tuple(v.shape) != self.image_shape:
            raise ValueError(
                f"{name} has shape {tuple(v.shape)} but the images measured by y (shape "
                f"{tuple(self.y.shape)}) have shape {self.image_shape}"
            )

    def _coeff(self, name: str, value, check: bool, **bounds) -> torch.Tensor:
        if not check and isinstance(value, torch.Tensor) and value.shape == (self.batch,):
            return value  # a solver's own per-image parameter, validated when it was made
        return _validate.per_image(name, value, self.batch, self.y, **bounds)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """1/2 ||A x - y||^2 per image: [B]. x: [B, C, H, W] of y's dtype and device and the
        shape of the measured images; only its form is checked (no data is read, as solvers
        call this inside their iterations), so NaN in x gives NaN."""
        self._check("x", x, True, finite=False)
        r = self.operator.forward(x) - self.y
        return 0.5 * r.flatten(1).pow(2).sum(1)

    def prox(
        self, v: torch.Tensor, gamma, *, backend: str | None = None, check: bool = True
    ) -> torch.Tensor:
        """argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2; gamma > 0 per image."""
        self._check("v", v, check)
        g = self._coeff("gamma", gamma, check, positive=True)
        with nvtx_range("pnpfast/data_prox"):
            if self._spectral:
                H, W = v.shape[-2:]
                x_hat = fft_prox(torch.fft.rfft2(v), self.kty, self.k2, g, backend=backend)
                return torch.fft.irfft2(x_hat, s=(H, W))
            if self._sr is not None:
                k_hat, k2_mean, factor = self._sr
                x_hat = sr_prox(
                    torch.fft.fft2(v),
                    self.sr_kty,
                    k_hat,
                    k2_mean,
                    g,
                    factor,
                    backend=backend,
                    overwrite_v=True,  # fft2(v) is this call's own temporary
                )
                return real_ifft2(x_hat)
            if self._own_prox:
                return self.operator.prox_l2(v, self.y, g)
            return self.operator.prox_l2_normal(
                v, self.aty, g, backend=backend, max_iter=self.cg_max_iter, tol=self.cg_tol
            )

    def _affine_grad(
        self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, backend: str | None
    ) -> torch.Tensor:
        H, W = x.shape[-2:]
        out_hat = fft_grad(torch.fft.rfft2(x), self.kty, self.k2, s, t, backend=backend)
        return torch.fft.irfft2(out_hat, s=(H, W))

    def grad(
        self, x: torch.Tensor, *, backend: str | None = None, check: bool = True
    ) -> torch.Tensor:
        """A^T (A x - y) = A^T A x - A^T y."""
        self._check("x", x, check)
        with nvtx_range("pnpfast/data_grad"):
            if not self._spectral:
                return self.operator.gram(x) - self.aty
            one = torch.ones(self.batch, device=x.device, dtype=x.dtype)
            return self._affine_grad(x, one, torch.zeros_like(one), backend)

    def grad_step(
        self, x: torch.Tensor, tau, *, backend: str | None = None, check: bool = True
    ) -> torch.Tensor:
        """x - tau A^T (A x - y); tau > 0 per image."""
        self._check("x", x, check)
        t = self._coeff("tau", tau, check, positive=True)
        with nvtx_range("pnpfast/data_grad"):
            if not self._spectral:
                return x - t.view(-1, 1, 1, 1) * (self.operator.gram(x) - self.aty)
            return self._affine_grad(x, -t, torch.ones_like(t), backend)

    def lipschitz(self, iters: int = 50) -> torch.Tensor:
        """L = ||A^T A||_2 per image, the Lipschitz constant of grad f: [B].

        Exact for an FFT-diagonal operator (max |K^|^2), for blur + decimation
        (max mean_s |K^|^2: each block of A^T A is (1/s^2) conj(k) k^T) and for a partial isometry (1: A^T A
        is a projection; an upper bound when A = 0); power iteration on A^T A otherwise,
        ``iters`` steps (an int in [1, POWER_MAX_ITER = 10000]).
        """
        iters = _validate.integer("iters", iters, 1, POWER_MAX_ITER)
        if self._spectral:
            return self.k2.flatten(1).amax(1).expand(self.batch).contiguous()
        if self._sr is not None:  # A^T A is block diagonal, each block of rank one
            return self._sr[1].flatten(1).amax(1).expand(self.batch).contiguous()
        if self.operator.partial_isometry:
            return torch.ones(self.batch, device=self.y.device, dtype=self.y.dtype)
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(self.image_shape, generator=g, dtype=self.y.dtype).to(self.y.device)
        for _ in range(iters):
            x = x / x.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny).view(-1, 1, 1, 1)
            x = self.operator.gram(x)
        return x.flatten(1).norm(dim=1)

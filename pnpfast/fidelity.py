"""The data-fidelity term f(x) = 1/2 ||A x - y||^2, bound to one measurement y.

For an operator that is diagonal in the Fourier domain (``Blur``) the spectra conj(K^) Y^ and
|K^|^2 are computed once here, so that

    prox(v, gamma) = argmin_x f(x) + 1/(2 gamma) ||x - v||^2   is rfft2, fft_prox, irfft2,
    grad_step(x, tau) = x - tau A^T (A x - y)                  is rfft2, fft_grad, irfft2.

Other operators fall back to their own ``prox_l2`` and to forward/adjoint for gradients.
Shapes: y, v, x [B, C, H, W]; gamma, tau floats or length-B tensors.
"""

import torch

from pnpfast import _validate
from pnpfast.operators.base import LinearOperator
from pnpfast.operators.blur import Blur
from pnpfast.ops import fft_grad, fft_prox
from pnpfast.profiling import nvtx_range


class L2:
    """f(x) = 1/2 ||A x - y||^2 with everything that depends only on (A, y) cached."""

    def __init__(self, operator: LinearOperator, y: torch.Tensor):
        if not isinstance(operator, LinearOperator):
            raise TypeError(
                f"operator must be a pnpfast LinearOperator, not {type(operator).__name__}"
            )
        _validate.image("y", y)
        self.operator = operator
        self.y = y
        self._spectral = isinstance(operator, Blur)
        if self._spectral:
            operator.check_input("y", y)
            H, W = y.shape[-2:]
            k_hat = operator.spectrum(H, W, y.device, y.dtype)
            self.kty = (k_hat.conj() * torch.fft.rfft2(y)).contiguous()  # [B, C, H, Wr]
            self.k2 = (k_hat.real**2 + k_hat.imag**2).contiguous()  # [Bk, 1, H, Wr]

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    def _check(self, name: str, v: torch.Tensor, check: bool) -> None:
        if not check:
            return
        _validate.image(name, v)
        _validate.same_device_dtype(y=self.y, **{name: v})
        if v.shape != self.y.shape:
            raise ValueError(
                f"{name} has shape {tuple(v.shape)} but y has shape {tuple(self.y.shape)}"
            )

    def _coeff(self, name: str, value, check: bool, **bounds) -> torch.Tensor:
        if not check and isinstance(value, torch.Tensor) and value.shape == (self.batch,):
            return value  # a solver's own per-image parameter, validated when it was made
        return _validate.per_image(name, value, self.batch, self.y, **bounds)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """1/2 ||A x - y||^2 per image: [B]."""
        r = self.operator.forward(x) - self.y
        return 0.5 * r.flatten(1).pow(2).sum(1)

    def prox(
        self, v: torch.Tensor, gamma, *, backend: str | None = None, check: bool = True
    ) -> torch.Tensor:
        """argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2; gamma > 0 per image."""
        self._check("v", v, check)
        g = self._coeff("gamma", gamma, check, positive=True)
        with nvtx_range("pnpfast/data_prox"):
            if not self._spectral:
                return self.operator.prox_l2(v, self.y, g)
            H, W = v.shape[-2:]
            x_hat = fft_prox(torch.fft.rfft2(v), self.kty, self.k2, g, backend=backend)
            return torch.fft.irfft2(x_hat, s=(H, W))

    def _affine_grad(
        self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, backend: str | None
    ) -> torch.Tensor:
        H, W = x.shape[-2:]
        out_hat = fft_grad(torch.fft.rfft2(x), self.kty, self.k2, s, t, backend=backend)
        return torch.fft.irfft2(out_hat, s=(H, W))

    def grad(
        self, x: torch.Tensor, *, backend: str | None = None, check: bool = True
    ) -> torch.Tensor:
        """A^T (A x - y)."""
        self._check("x", x, check)
        with nvtx_range("pnpfast/data_grad"):
            if not self._spectral:
                return self.operator.adjoint(self.operator.forward(x) - self.y)
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
                return x - t.view(-1, 1, 1, 1) * self.operator.adjoint(
                    self.operator.forward(x) - self.y
                )
            return self._affine_grad(x, -t, torch.ones_like(t), backend)

    def lipschitz(self, iters: int = 50) -> torch.Tensor:
        """L = ||A^T A||_2 per image, the Lipschitz constant of grad f: [B].

        Exact for Blur (max |K^|^2); power iteration on A^T A otherwise.
        """
        if self._spectral:
            return self.k2.flatten(1).amax(1).expand(self.batch).contiguous()
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(self.y.shape, generator=g, dtype=self.y.dtype).to(self.y.device)
        for _ in range(iters):
            x = x / x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            x = self.operator.adjoint(self.operator.forward(x))
        return x.flatten(1).norm(dim=1)

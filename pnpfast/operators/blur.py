"""Circular convolution (non-blind deblurring), diagonal in the Fourier domain.

    (A x)[b, c] = k_b (*) x[b, c]      circular, the kernel centred at (h // 2, w // 2)

so A matches ``scipy.ndimage.convolve(x, k, mode="wrap")`` for odd kernel sizes, the degradation
of DPIR and GS-PnP. The same kernel blurs every channel; a kernel [h, w] is shared by the batch,
a kernel [B, h, w] gives each image its own.

A is diagonal in the Fourier domain, K^ = rfft2 of the centred kernel, and declares it
(``fourier_multiplier``), so its prox_l2 is the closed form of ``LinearOperator.prox_l2``:
X^ = (V^ + gamma conj(K^) Y^) / (1 + gamma |K^|^2), three FFTs a call (two with ``pnpfast.L2``).
"""

import numpy as np
import torch

from pnpfast import _validate
from pnpfast.operators.base import LinearOperator


def centred_padded(kernel: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """[Bk, h, w] kernels -> [Bk, 1, H, W], zero-padded and rolled so that tap (h // 2, w // 2)
    sits at pixel (0, 0): the circular convolution's centre (Blur's and SuperResolution's)."""
    h, w = kernel.shape[-2:]
    padded = kernel.new_zeros(kernel.shape[0], 1, H, W)
    padded[:, 0, :h, :w] = kernel
    return torch.roll(padded, shifts=(-(h // 2), -(w // 2)), dims=(-2, -1))


class Blur(LinearOperator):
    """Circular blur by FFT. ``kernel``: [h, w] (whole batch) or [B, h, w] (one per image)."""

    def __init__(self, kernel: torch.Tensor | np.ndarray):
        if isinstance(kernel, np.ndarray):
            kernel = torch.from_numpy(np.ascontiguousarray(kernel))
        if not isinstance(kernel, torch.Tensor):
            raise TypeError(
                f"kernel must be a tensor or numpy array of shape [h, w] or [B, h, w], not {type(kernel).__name__}"
            )
        if kernel.dim() not in (2, 3):
            raise ValueError(
                f"kernel must have shape [h, w] or [B, h, w], got shape {tuple(kernel.shape)}"
            )
        if not kernel.is_floating_point():
            raise TypeError(f"kernel must be floating point, not {kernel.dtype}")
        _validate.not_empty("kernel", kernel)
        if not bool(torch.isfinite(kernel).all()):
            raise ValueError("kernel contains NaN or Inf")
        kernel = kernel if kernel.dim() == 3 else kernel.unsqueeze(0)  # [Bk, h, w]
        zero = (kernel == 0).flatten(1).all(1)
        if bool(zero.any()):
            # A = 0 for those images: nothing to invert, and the default step 1 / ||A^T A|| of
            # the gradient methods would be infinite
            raise ValueError(
                f"kernel is all zero (kernels {zero.nonzero().flatten().tolist()}): a blur "
                "must have a nonzero kernel"
            )
        self.kernel = kernel
        self._spectra: dict[tuple, torch.Tensor] = {}

    @property
    def batch(self) -> int:
        """Number of kernels: 1 when shared by the whole batch."""
        return self.kernel.shape[0]

    def check_input(self, name: str, x: torch.Tensor) -> None:
        """Raise if x cannot be blurred by this operator (not an image, size or batch mismatch)."""
        _validate.image(name, x, finite=False)
        h, w = self.kernel.shape[-2:]
        if x.shape[-2] < h or x.shape[-1] < w:
            raise ValueError(
                f"kernel of size {h}x{w} is larger than {name} of size {x.shape[-2]}x{x.shape[-1]}"
            )
        if self.batch not in (1, x.shape[0]):
            raise ValueError(
                f"kernel holds {self.batch} kernels but {name} has batch size {x.shape[0]}"
            )

    def spectrum(self, H: int, W: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """K^ = rfft2 of the centred, zero-padded kernel: [Bk, 1, H, W // 2 + 1] complex (cached).

        H, W: the image size, ints at least the kernel's size; dtype float32 or float64 (the
        spectrum is complex64 or complex128)."""
        h, w = self.kernel.shape[-2:]
        for name, n, k in (("H", H, h), ("W", W, w)):
            _validate.integer(
                name, n, k, hint=f"(the image size: at least the kernel's size {h}x{w})"
            )
        if dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"dtype must be torch.float32 or torch.float64, not {dtype}")
        key = (int(H), int(W), torch.device(device), dtype)
        if key not in self._spectra:
            padded = centred_padded(self.kernel.to(device=device, dtype=dtype), H, W)
            self._spectra[key] = torch.fft.rfft2(padded)
        return self._spectra[key]

    def fourier_multiplier(
        self, shape: tuple[int, int], device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        """K^ (``spectrum``): A x = irfft2(K^ rfft2(x)), so ``prox_l2`` and ``pnpfast.L2`` take
        the closed-form FFT prox."""
        if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2:
            raise ValueError(f"shape must be the image size (H, W), got {shape!r}")
        return self.spectrum(*shape, device, dtype)

    def _apply(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        self.check_input("y" if adjoint else "x", x)
        H, W = x.shape[-2:]
        k_hat = self.spectrum(H, W, x.device, x.dtype)
        if adjoint:
            k_hat = k_hat.conj()
        return torch.fft.irfft2(torch.fft.rfft2(x) * k_hat, s=(H, W))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """k * x, circular. x: [B, C, H, W]."""
        return self._apply(x, adjoint=False)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Correlation with k (the transpose of forward). y: [B, C, H, W]."""
        return self._apply(y, adjoint=True)

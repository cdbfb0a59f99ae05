"""Circular Gaussian smoothing in the Fourier domain, the simplest linear denoiser."""

import math

import torch

from pnpfast._validate import number
from pnpfast.denoisers.base import Denoiser, check_image, sigma_per_image

__all__ = ["GaussianSmoothing"]


class GaussianSmoothing(Denoiser):
    """Circular Gaussian smoothing: ``D(x, sigma) = irfft2(rfft2(x) * T_b)``, batched.

    The multiplier of image b is the Fourier transform of a continuous Gaussian of standard
    deviation s_b pixels, sampled at the DFT frequencies (cycles per pixel):

        T_b(fy, fx) = exp(-2 pi^2 s_b^2 (fy^2 + fx^2)),
        fy = torch.fft.fftfreq(H),  fx = torch.fft.rfftfreq(W),

    with s_b = ``std`` when given, else s_b = sigma_b * 255 / 25 (one pixel at sigma = 25/255,
    the identity at sigma = 0). T_b is real and even in (fy, fx), so D is linear, symmetric
    (self-adjoint) and positive semi-definite, with the periodic boundary of the DFT; every
    channel is smoothed alike. ``transfer`` returns exactly the multiplier that ``forward``
    applies, for closed forms in solver tests.

    Shapes: x [B, C, H, W], sigma a float or [B]; output like x. float16 and bfloat16 images
    (which the FFT does not take on every device) are smoothed in float32 and returned in
    their own dtype.
    """

    def __init__(self, std: float | None = None) -> None:
        super().__init__()
        self.std = None if std is None else number("std (pixels)", std, 0.0)

    def extra_repr(self) -> str:
        return f"std={self.std}" if self.std is not None else "std=sigma*255/25"

    def transfer(
        self, H: int, W: int, sigma: float | torch.Tensor, like: torch.Tensor
    ) -> torch.Tensor:
        """The real multiplier T of shape [B, 1, H, W // 2 + 1] in ``like``'s dtype and device.

        B is the length of ``sigma`` when it is a tensor of length > 1, else the batch size of
        ``like`` when ``like`` is a [B, C, H, W] image, else 1. Multiplying ``rfft2(x)`` by T
        and taking ``irfft2(., s=(H, W))`` is what ``forward`` does.
        """
        if isinstance(sigma, torch.Tensor) and sigma.dim() == 1 and sigma.shape[0] > 1:
            batch = sigma.shape[0]
        else:
            batch = like.shape[0] if like.dim() == 4 else 1
        return self._multiplier(H, W, sigma_per_image(sigma, like.new_empty((batch, 0))), like)

    def _multiplier(
        self, H: int, W: int, sigma_b: torch.Tensor, like: torch.Tensor
    ) -> torch.Tensor:
        s = sigma_b * (255.0 / 25.0) if self.std is None else torch.full_like(sigma_b, self.std)
        fy = torch.fft.fftfreq(H, device=like.device, dtype=like.dtype)
        fx = torch.fft.rfftfreq(W, device=like.device, dtype=like.dtype)
        f2 = fy.square().view(H, 1) + fx.square().view(1, -1)  # [H, W//2+1]
        T = torch.exp((-2.0 * math.pi**2) * s.square().view(-1, 1, 1, 1) * f2)
        # a std so large that s^2 overflows gives inf * 0 = NaN at the zero frequency, where T = 1
        return T.masked_fill(f2 == 0, 1.0)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x = check_image(x)
        z = x if x.dtype in (torch.float32, torch.float64) else x.float()
        H, W = z.shape[-2:]
        T = self._multiplier(H, W, sigma_per_image(sigma, z), z)
        return torch.fft.irfft2(torch.fft.rfft2(z) * T, s=(H, W)).to(x.dtype)

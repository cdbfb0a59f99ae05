"""Image quality metrics, one value per image of a batch.

Both metrics take images ``x`` and references ``ref`` of shape [B, C, H, W] (float16,
bfloat16, float32 or float64, any device, any memory layout) on the scale given by ``peak`` (1.0
for the [0, 1] scale of pnpfast) and return a float64 tensor of shape [B] on the device of
``x``. The arithmetic runs in float64 so that a float32 image gives the same score as its
float64 copy to about 1e-6 dB. NaN or Inf in ``x`` or ``ref`` is a ValueError naming the
images (a score of such an image means nothing); checking reads the data once.
"""

import torch
import torch.nn.functional as F

from pnpfast import _validate

__all__ = ["psnr", "ssim"]

SSIM_WINDOW = 11
SSIM_STD = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _pair(x: torch.Tensor, ref: torch.Tensor, peak: float) -> tuple[torch.Tensor, torch.Tensor]:
    _validate.image("x", x, finite=False, dtypes=_DTYPES)
    _validate.image("ref", ref, finite=False, dtypes=_DTYPES)
    if x.shape != ref.shape:
        raise ValueError(
            f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}"
        )
    if ref.device != x.device:
        raise ValueError(f"ref is on {ref.device} but x is on {x.device}")
    _validate.number("peak", peak, 0, low_open=True)
    finite = torch.stack([t.isfinite().flatten(1).all(1) for t in (x, ref)])  # [2, B]
    if not bool(finite.all()):
        for name, ok in zip(("x", "ref"), finite.cpu(), strict=True):
            if not bool(ok.all()):
                images = (~ok).nonzero().squeeze(1).tolist()
                raise ValueError(f"{name} contains NaN or Inf in images {images}")
    return x.to(torch.float64), ref.to(torch.float64)


def psnr(x: torch.Tensor, ref: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image.

        PSNR_b = 10 log10(peak^2 / MSE_b),   MSE_b = mean over (C, H, W) of (x_b - ref_b)^2

    Args:
        x: [B, C, H, W] estimate.
        ref: [B, C, H, W] reference (ground truth), same shape and device.
        peak: largest possible pixel value (default 1.0, the [0, 1] scale).

    Returns:
        [B] float64 tensor; +inf for an image equal to its reference.
    """
    x, ref = _pair(x, ref, peak)
    mse = (x - ref).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(peak**2 / mse)


def _gaussian_window(size: int, std: float, device: torch.device) -> torch.Tensor:
    """1-D Gaussian weights exp(-t^2 / (2 std^2)), t = -(size // 2) .. size // 2, summing to 1."""
    t = torch.arange(size, dtype=torch.float64, device=device) - (size // 2)
    g = torch.exp(-(t**2) / (2.0 * std**2))
    return g / g.sum()


def ssim(x: torch.Tensor, ref: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Structural similarity index (Wang, Bovik, Sheikh and Simoncelli, IEEE TIP 2004), per image.

    Local statistics are weighted by an 11x11 Gaussian window w of standard deviation 1.5
    (separable, normalised to sum 1), evaluated only where the window lies wholly inside the
    image (no padding), with population (not sample) moments:

        mu_x = w * x,  s_xx = w * x^2 - mu_x^2,  s_xy = w * (x ref) - mu_x mu_ref,  ...
        S = (2 mu_x mu_ref + C1)(2 s_xy + C2) / ((mu_x^2 + mu_ref^2 + C1)(s_xx + s_rr + C2))
        C1 = (0.01 peak)^2,  C2 = (0.03 peak)^2

    S is averaged over the (H - 10) x (W - 10) valid positions of each channel, then over the
    channels. This is the definition of ``skimage.metrics.structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=peak``.
    Colour images are scored channel by channel (no conversion to luminance).

    Args:
        x: [B, C, H, W] estimate, H and W at least 11 (the window must fit in the image).
        ref: [B, C, H, W] reference, same shape and device.
        peak: the dynamic range of the pixel values (default 1.0).

    Returns:
        [B] float64 tensor, 1 for an image equal to its reference.
    """
    x, ref = _pair(x, ref, peak)
    B, C, H, W = x.shape
    if H < SSIM_WINDOW or W < SSIM_WINDOW:
        raise ValueError(
            f"ssim: x and ref must be at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its Gaussian "
            f"window is {SSIM_WINDOW}x{SSIM_WINDOW}, without padding), got {H}x{W}; psnr takes "
            f"any size"
        )
    g = _gaussian_window(SSIM_WINDOW, SSIM_STD, x.device)
    g_rows = g.view(1, 1, SSIM_WINDOW, 1)
    g_cols = g.view(1, 1, 1, SSIM_WINDOW)

    # the five moment maps of every channel stacked: [5 B C, 1, H, W]
    a = x.reshape(B * C, 1, H, W)
    r = ref.reshape(B * C, 1, H, W)
    stack = torch.cat([a, r, a * a, r * r, a * r], dim=0)
    moments = F.conv2d(F.conv2d(stack, g_rows), g_cols)  # [5 B C, 1, H - 10, W - 10]
    mu_a, mu_r, m_aa, m_rr, m_ar = moments.chunk(5, dim=0)

    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    s_aa = m_aa - mu_a * mu_a
    s_rr = m_rr - mu_r * mu_r
    s_ar = m_ar - mu_a * mu_r
    num = (2.0 * mu_a * mu_r + c1) * (2.0 * s_ar + c2)
    den = (mu_a * mu_a + mu_r * mu_r + c1) * (s_aa + s_rr + c2)
    per_channel = (num / den).flatten(1).mean(dim=1)  # [B C]
    return per_channel.view(B, C).mean(dim=1)

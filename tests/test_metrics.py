"""pnpfast.metrics against independent oracles: a numpy float64 PSNR and scikit-image's SSIM."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from pnpfast.metrics import psnr, ssim

SHAPES = {
    "gray-17x23": (1, 1, 17, 23),
    "rgb-2x32x48": (2, 3, 32, 48),
    "rgb-3x40x29": (3, 3, 40, 29),
    "gray-2x11x11": (2, 1, 11, 11),
}


def _pair(shape, seed, noise=0.1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(shape, generator=g, dtype=torch.float64)
    # a smooth component so SSIM is far from 0 and 1
    ref = 0.5 * ref + 0.5 * torch.linspace(0, 1, shape[-1], dtype=torch.float64)
    x = ref + noise * torch.randn(shape, generator=g, dtype=torch.float64)
    return x.to(dtype), ref.to(dtype)


def _psnr_numpy(x: np.ndarray, ref: np.ndarray, peak: float) -> np.ndarray:
    out = []
    for xb, rb in zip(x.astype(np.float64), ref.astype(np.float64), strict=True):
        mse = np.mean((xb - rb) ** 2)
        out.append(10.0 * np.log10(peak * peak / mse))
    return np.array(out)


def _ssim_skimage(x: np.ndarray, ref: np.ndarray, peak: float) -> np.ndarray:
    out = []
    for xb, rb in zip(x.astype(np.float64), ref.astype(np.float64), strict=True):
        out.append(
            structural_similarity(
                xb,
                rb,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=peak,
                channel_axis=0,
            )
        )
    return np.array(out)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_psnr_matches_numpy(shape, dtype):
    x, ref = _pair(shape, seed=1, dtype=dtype)
    got = psnr(x, ref)
    assert got.shape == (shape[0],)
    assert got.dtype == torch.float64
    want = _psnr_numpy(x.numpy(), ref.numpy(), 1.0)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)


def test_psnr_peak_and_per_image_values():
    x, ref = _pair((2, 3, 16, 16), seed=2)
    x[1] = ref[1] + 0.3 * (x[1] - ref[1])  # second image closer: higher PSNR
    got = psnr(255 * x, 255 * ref, peak=255.0)
    np.testing.assert_allclose(got.numpy(), _psnr_numpy(x.numpy(), ref.numpy(), 1.0), atol=1e-9)
    assert got[1] > got[0]


def test_psnr_exact_value_and_identity():
    ref = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x = torch.full_like(ref, 0.1)  # MSE = 0.01 -> 20 dB
    assert psnr(x, ref).item() == pytest.approx(20.0, abs=1e-12)
    assert torch.isinf(psnr(ref, ref)).all()


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("noise", [0.02, 0.2])
def test_ssim_matches_skimage(shape, noise):
    x, ref = _pair(shape, seed=3, noise=noise)
    got = ssim(x, ref)
    assert got.shape == (shape[0],)
    want = _ssim_skimage(x.numpy(), ref.numpy(), 1.0)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)


def test_ssim_float32_input_matches_skimage_to_1e4():
    x, ref = _pair((2, 3, 33, 27), seed=4, dtype=torch.float32)
    want = _ssim_skimage(x.numpy(), ref.numpy(), 1.0)
    np.testing.assert_allclose(ssim(x, ref).numpy(), want, rtol=0, atol=1e-4)


def test_ssim_peak_255_matches_skimage():
    x, ref = _pair((1, 3, 24, 24), seed=5, noise=0.05)
    x, ref = 255 * x, 255 * ref
    want = _ssim_skimage(x.numpy(), ref.numpy(), 255.0)
    np.testing.assert_allclose(ssim(x, ref, peak=255.0).numpy(), want, rtol=0, atol=1e-6)


def test_ssim_identity_is_one_and_batch_independent():
    x, ref = _pair((3, 3, 20, 20), seed=6)
    assert torch.allclose(ssim(ref, ref), torch.ones(3, dtype=torch.float64), atol=1e-12)
    whole = ssim(x, ref)
    for b in range(3):
        assert whole[b].item() == pytest.approx(
            ssim(x[b : b + 1], ref[b : b + 1]).item(), abs=1e-12
        )


def test_ssim_averages_channels():
    x, ref = _pair((1, 3, 16, 16), seed=7)
    per_channel = [ssim(x[:, c : c + 1], ref[:, c : c + 1]).item() for c in range(3)]
    assert ssim(x, ref).item() == pytest.approx(sum(per_channel) / 3, abs=1e-12)


def test_errors():
    a = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, torch.rand(1, 1, 16, 15))
    with pytest.raises(ValueError, match="4 dimensions"):
        ssim(a[0], a[0])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 10, 30), torch.rand(1, 1, 10, 30))
    with pytest.raises(ValueError, match="peak"):
        psnr(a, a, peak=0.0)

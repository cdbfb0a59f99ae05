"""GaussianSmoothing: its transfer function, linearity, symmetry and per-image sigma."""

import math

import pytest
import torch

from pnpfast.denoisers import GaussianSmoothing

SIGMAS = torch.tensor([0.0, 10 / 255, 40 / 255], dtype=torch.float64)


def random_images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(("H", "W"), [(17, 23), (16, 24), (9, 32)], ids=["odd", "even", "wide"])
def test_transfer_is_the_fft_of_the_applied_filter(H, W):
    D = GaussianSmoothing()
    delta = torch.zeros(3, 1, H, W, dtype=torch.float64)
    delta[..., 0, 0] = 1.0
    response = D(delta, SIGMAS)  # impulse response of each image's filter
    T = D.transfer(H, W, SIGMAS, delta)
    assert T.shape == (3, 1, H, W // 2 + 1)
    assert T.dtype == torch.float64
    spectrum = torch.fft.rfft2(response)
    torch.testing.assert_close(spectrum.real, T, rtol=0, atol=1e-12)
    torch.testing.assert_close(spectrum.imag, torch.zeros_like(T), rtol=0, atol=1e-12)


def test_impulse_response_is_a_sampled_gaussian_of_std_sigma_255_over_25_pixels():
    # sigma = 50/255 -> 2 pixels; on 64x64 the aliasing of the Gaussian is below 1e-9
    H = W = 64
    delta = torch.zeros(1, 1, H, W, dtype=torch.float64)
    delta[..., 0, 0] = 1.0
    h = GaussianSmoothing()(delta, 50 / 255)[0, 0]
    d = torch.arange(H, dtype=torch.float64)
    d = torch.minimum(d, H - d)  # circular distance to pixel 0
    s = 2.0
    g = torch.exp(-(d.view(-1, 1) ** 2 + d.view(1, -1) ** 2) / (2 * s * s)) / (2 * math.pi * s * s)
    torch.testing.assert_close(h, g, rtol=0, atol=1e-9)


def test_fixed_std_ignores_sigma_and_zero_sigma_is_the_identity():
    x = random_images(2, 3, 12, 13)
    fixed = GaussianSmoothing(std=1.5)
    torch.testing.assert_close(fixed(x, 0.0), fixed(x, 0.3))
    torch.testing.assert_close(GaussianSmoothing()(x, 0.0), x)


def test_linear_and_symmetric():
    D = GaussianSmoothing()
    x, y = random_images(3, 2, 15, 20, seed=1), random_images(3, 2, 15, 20, seed=2)
    torch.testing.assert_close(
        D(2.0 * x - 0.5 * y, SIGMAS), 2.0 * D(x, SIGMAS) - 0.5 * D(y, SIGMAS)
    )
    lhs = (D(x, SIGMAS) * y).flatten(1).sum(1)
    rhs = (x * D(y, SIGMAS)).flatten(1).sum(1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=0)


def test_batch_with_per_image_sigma_equals_per_image_calls():
    D = GaussianSmoothing()
    x = random_images(3, 2, 17, 23)
    batched = D(x, SIGMAS)
    for b in range(3):
        torch.testing.assert_close(batched[b : b + 1], D(x[b : b + 1], float(SIGMAS[b])))


def test_float32_keeps_dtype_and_transfer_batch_rules():
    D = GaussianSmoothing()
    x = torch.rand(2, 1, 8, 10)
    assert D(x, 0.1).dtype == torch.float32
    assert D.transfer(8, 10, 0.1, x).shape == (2, 1, 8, 6)
    assert D.transfer(8, 10, 0.1, torch.empty(0)).shape == (1, 1, 8, 6)
    assert D.transfer(8, 10, torch.tensor([0.1, 0.2, 0.3]), x.new_empty(0)).shape == (3, 1, 8, 6)


def test_rejects_bad_std():
    with pytest.raises(ValueError, match="std"):
        GaussianSmoothing(std=-1.0)

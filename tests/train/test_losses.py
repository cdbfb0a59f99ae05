"""The registered training losses against their formulas, computed here in float64."""

import pytest
import torch

from pnpfast.train import LOSSES, Batch, MSELoss, NoiseWeightedMSELoss
from pnpfast.train.losses import make_loss


class Shrink(torch.nn.Module):
    """A stand-in denoiser whose error differs per patch: D(y, sigma) = y / (1 + sigma)."""

    def forward(self, noisy, sigma):
        return noisy / (1 + sigma.view(-1, 1, 1, 1))


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.rand(5, 3, 7, 9, generator=gen)
    sigma = torch.tensor([0.0, 2 / 255, 15 / 255, 25 / 255, 100 / 255])
    noisy = clean + sigma.view(-1, 1, 1, 1) * torch.randn(clean.shape, generator=gen)
    return Batch(clean, noisy, sigma)


def test_noise_weighted_mse_is_the_formula():
    batch = _batch()
    s_ref, s_0 = 25 / 255, 2 / 255
    value, metrics = NoiseWeightedMSELoss(s_ref, s_0)(Shrink(), batch)
    expected, plain = 0.0, 0.0
    for b in range(5):
        s = float(batch.sigma[b])
        err = batch.noisy[b].double() / (1 + s) - batch.clean[b].double()
        mse = float((err**2).mean())
        expected += (s_ref**2 + s_0**2) / (s**2 + s_0**2) * mse / 5
        plain += mse / 5
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert float(metrics["mse"]) == pytest.approx(plain, rel=1e-5)
    # The plain MSE is what the weighted loss reduces to when every patch has sigma_ref.
    flat = Batch(batch.clean, batch.noisy, torch.full((5,), s_ref))
    weighted, _ = NoiseWeightedMSELoss(s_ref, s_0)(Shrink(), flat)
    mse, _ = MSELoss()(Shrink(), flat)
    assert float(weighted) == pytest.approx(float(mse), rel=1e-6)


def test_noise_weighted_mse_gives_low_noise_patches_more_weight():
    """The gradient of a low-sigma patch's error outweighs that of a high-sigma patch with the
    same error, where the plain MSE treats them alike."""
    clean = torch.zeros(2, 1, 4, 4)
    sigma = torch.tensor([5 / 255, 50 / 255])

    class Offset(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.shift = torch.nn.Parameter(torch.zeros(2))

        def forward(self, noisy, sigma):
            return noisy + self.shift.view(-1, 1, 1, 1)

    model = Offset()
    value, _ = make_loss("mse-sigma")(model, Batch(clean, clean + 0.1, sigma))
    value.backward()
    low, high = model.shift.grad.tolist()
    assert low / high == pytest.approx(
        ((50 / 255) ** 2 + (2 / 255) ** 2) / ((5 / 255) ** 2 + (2 / 255) ** 2)
    )


def test_noise_weighted_mse_is_registered_and_checks_its_options():
    assert LOSSES["mse-sigma"] is NoiseWeightedMSELoss
    assert make_loss("mse-sigma", {"sigma_ref": 0.1}).sigma_ref == 0.1
    with pytest.raises(ValueError, match="sigma_floor"):
        NoiseWeightedMSELoss(sigma_floor=0.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        make_loss("nope")

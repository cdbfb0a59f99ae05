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


def _gs_model(seed=0):
    from pnpfast.denoisers import DRUNet, GradientStep

    torch.manual_seed(seed)
    return GradientStep(DRUNet(1, (4, 8), 1, activation="softplus", residual=True))


def _small_batch(seed=0, B=2, size=12):
    from pnpfast.train.data import Batch

    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(B, 1, size, size, generator=g)
    sigma = torch.rand(B, generator=g) * 0.2
    noisy = clean + sigma.view(-1, 1, 1, 1) * torch.randn(clean.shape, generator=g)
    return Batch(clean, noisy, sigma)


def assert_penalty_lowers_the_norm(pen, model, batch):
    """The penalty alone (the loss less its MSE), minimised, lowers the estimated norm."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = pen(model, batch)[1]["spectral_norm"].item()
    for _ in range(15):
        v, m = pen(model, batch)
        opt.zero_grad()
        (v - m["mse"]).backward()
        opt.step()
    assert pen(model, batch)[1]["spectral_norm"].item() < start


def test_spectral_penalty_is_mse_plus_the_clamped_norm_and_trains_the_norm():
    from pnpfast.diagnostics import residual_lipschitz
    from pnpfast.train.losses import SpectralPenaltyLoss

    model, batch = _gs_model(), _small_batch()
    loss = make_loss("spectral-penalty", {"weight": 0.5, "eps": 0.1, "iters": 30})
    assert isinstance(loss, SpectralPenaltyLoss)
    value, metrics = loss(model, batch)
    mse = torch.mean((model(batch.noisy, batch.sigma) - batch.clean) ** 2)
    est = residual_lipschitz(
        model, batch.noisy, batch.sigma, iters=30, tol=0.0, symmetric=True, seed=1, compact=False
    ).norm
    expected = mse + 0.5 * est.clamp_min(0.9).mean()
    torch.testing.assert_close(value.detach(), expected.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(metrics["spectral_norm"], est.mean(), rtol=1e-4, atol=1e-6)
    value.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert_penalty_lowers_the_norm(SpectralPenaltyLoss(weight=1.0, eps=0.0, iters=10), model, batch)
    with pytest.raises(ValueError, match=r"eps must be a finite number in \[0, 1\), not 1\.0"):
        SpectralPenaltyLoss(eps=1.0)


def test_spectral_penalty_with_lanczos_is_the_lanczos_estimate_and_trains_the_norm():
    from pnpfast.diagnostics import residual_lipschitz
    from pnpfast.train.losses import SpectralPenaltyLoss

    model, batch = _gs_model(), _small_batch()
    loss = make_loss("spectral-penalty", {"weight": 0.5, "iters": 12, "method": "lanczos"})
    value, metrics = loss(model, batch)
    mse = torch.mean((model(batch.noisy, batch.sigma) - batch.clean) ** 2)
    est = residual_lipschitz(
        model, batch.noisy, batch.sigma, method="lanczos", steps=12, seed=1
    ).norm
    expected = mse + 0.5 * est.clamp_min(0.9).mean()
    torch.testing.assert_close(value.detach(), expected.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(metrics["spectral_norm_max"], est.max(), rtol=1e-4, atol=1e-6)
    pen = SpectralPenaltyLoss(weight=1.0, eps=0.0, iters=8, method="lanczos")
    assert_penalty_lowers_the_norm(pen, model, batch)
    with pytest.raises(ValueError, match="lanczos needs symmetric=True"):
        SpectralPenaltyLoss(method="lanczos", symmetric=False)
    with pytest.raises(ValueError, match="method must be 'power' or 'lanczos'"):
        SpectralPenaltyLoss(method="svd")


def test_pnp_reg_loss_alternates_levels_and_trains_both_networks():
    from pnpfast.train.losses import RegulariserGradientLoss

    model = _gs_model().network  # any denoiser D(x, sigma)
    G_cfg = {"arch": "drunet", "channels": 1, "widths": [4, 8], "blocks": 1, "noise_map": False}
    loss = make_loss("pnp-reg", {"network": G_cfg, "lam": 2.0})
    assert isinstance(loss, RegulariserGradientLoss) and set(loss.networks()) == {"G"}
    batch = _small_batch()
    # even call: the true level, delta = 1
    value, metrics = loss(model, batch)
    d = model(batch.noisy, batch.sigma)
    g = loss.G(d, torch.zeros(2))
    l_grad = torch.mean((batch.sigma.view(-1, 1, 1, 1) ** 2 * g - (batch.noisy - d)) ** 2)
    l_d = torch.mean((d - batch.clean) ** 2)
    torch.testing.assert_close(value.detach(), (2 * l_grad + l_d).detach())
    value.backward()
    assert all(p.grad is not None for p in loss.G.parameters())
    assert all(p.grad is not None for p in model.parameters())
    # odd call: another level, no denoising term, and (detach) no gradient to D
    model.zero_grad()
    value, metrics = loss(model, batch)
    torch.testing.assert_close(value.detach(), 2 * metrics["grad_loss"])
    assert int(loss.calls) == 2
    value.backward()
    assert all(p.grad is None for p in model.parameters())
    # detach=False: L_grad reaches D too
    joint = RegulariserGradientLoss(G_cfg, detach=False)
    joint.calls += 1
    joint(model, batch)[0].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(ValueError, match=r"lam must be a finite number > 0, not 0"):
        RegulariserGradientLoss(G_cfg, lam=0)

"""Denoisers across pnpfast and deepinv (issue 20): ``PnpfastDenoiser`` (a pnpfast denoiser as a
``deepinv.models.Denoiser``) and ``DeepinvDenoiser`` (a deepinv denoiser as a pnpfast one).

The oracles are the wrapped denoisers called directly with the noise level in the form they
take: each level of deepinv's forms (float, 0-d, [1], [B], [B, 1, 1, 1], float32 with float64
images) must reach the pnpfast denoiser as the per-image levels it means, and a pnpfast solve or
a deepinv PnP prior with a wrapper must give what the same run gives with the bare denoiser.
Per-image levels differ between images so that a level applied to the wrong image shows.
deepinv is an optional extra: every test skips, saying why, when it cannot be imported.
"""

import pytest
import torch

import pnpfast
from pnpfast.denoisers import GaussianSmoothing

F32, F64 = torch.float32, torch.float64


def rand(*shape, seed: int, dtype=F64) -> torch.Tensor:
    return torch.rand(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def small_drunet(dinv):
    """deepinv's DRUNet, small and with seeded random weights (no download)."""
    torch.manual_seed(0)
    return dinv.models.DRUNet(3, 3, nc=(8, 8, 8, 8), nb=1, pretrained=None).eval()


class Recorder(torch.nn.Module):
    """D(x, sigma) = GaussianSmoothing(x, sigma), recording the sigma it was given."""

    def __init__(self):
        super().__init__()
        self.inner = GaussianSmoothing()
        self.seen = []

    def forward(self, x, sigma):
        self.seen.append(sigma)
        return self.inner(x, sigma)


def test_pnpfast_denoiser_sigma_forms(dinv, fast):
    B = 3
    x = rand(B, 3, 16, 20, seed=0)
    levels = torch.tensor([0.02, 0.1, 0.3], dtype=F64)
    inner = GaussianSmoothing()
    rec = Recorder()
    den = fast.PnpfastDenoiser(rec)
    assert isinstance(den, dinv.models.Denoiser)
    forms = [
        ("float", 0.1, 0.1),
        ("int", 0, 0.0),
        ("0-d f32", torch.tensor(0.1, dtype=F32), torch.tensor(0.1, dtype=F32).to(F64).expand(B)),
        ("[1]", torch.tensor([0.1], dtype=F64), levels[1:2].expand(B)),
        ("[B]", levels, levels),
        ("[B,1,1,1] f32", levels.to(F32).view(B, 1, 1, 1), levels.to(F32).to(F64)),
    ]
    for name, sigma, want_sigma in forms:
        got = den(x, sigma)
        seen = rec.seen[-1]
        if isinstance(want_sigma, float):
            assert isinstance(seen, float) and seen == want_sigma, name
        else:
            assert isinstance(seen, torch.Tensor) and seen.shape == (B,), name
            assert seen.dtype == F64, f"{name}: sigma reached the denoiser as {seen.dtype}"
            torch.testing.assert_close(seen, want_sigma, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(got, inner(x, want_sigma), rtol=0, atol=0, msg=name)


def test_pnpfast_denoiser_refuses_noise_maps_and_moves(dinv, fast):
    den = fast.PnpfastDenoiser(GaussianSmoothing())
    x = rand(2, 3, 8, 8, seed=1)
    with pytest.raises(ValueError, match=r"sigma has shape \(2, 1, 8, 8\).*noise map"):
        den(x, rand(2, 1, 8, 8, seed=2))
    with pytest.raises(ValueError, match="sigma has shape"):
        den(x, torch.ones(3))
    with pytest.raises(TypeError, match="sigma must be"):
        den(x, [0.1, 0.2])
    with pytest.raises(TypeError, match="sigma must be"):
        den(x, True)
    with pytest.raises(TypeError, match="denoiser must be callable"):
        fast.PnpfastDenoiser("drunet")
    lin = torch.nn.Conv2d(3, 3, 1)
    wrapped = fast.PnpfastDenoiser(lambda v, s: lin(v))
    assert wrapped(x.float(), 0.1).shape == x.shape
    moved = fast.PnpfastDenoiser(torch.nn.Conv2d(3, 3, 1)).to(F64)
    assert moved.denoiser.weight.dtype == F64, ".to() must move the wrapped module"


def test_pnpfast_denoiser_in_a_deepinv_pnp_prior(dinv, fast):
    """deepinv's PnP prior calls the denoiser with its sigma_denoiser (DPIR's: a float32 0-d
    tensor); the prox is the pnpfast denoiser at that level."""
    x = rand(2, 3, 16, 16, seed=3)
    prior = dinv.optim.prior.PnP(denoiser=fast.PnpfastDenoiser(GaussianSmoothing()))
    level = torch.tensor(0.05, dtype=F32)
    want = GaussianSmoothing()(x, torch.full((2,), 0.05, dtype=F32).to(F64))
    torch.testing.assert_close(prior.prox(x, sigma_denoiser=level), want, rtol=0, atol=0)


def test_pnpfast_denoiser_in_deepinv_dpir_with_accelerated_physics(dinv, fast):
    """deepinv's own DPIR with a wrapped pnpfast denoiser runs on the accelerated physics and
    gives what it gives on the original one (float64: the same maths)."""
    k = rand(1, 1, 5, 5, seed=4) + 0.1
    physics = dinv.physics.BlurFFT((3, 24, 24), filter=k / k.sum())
    x = rand(2, 3, 24, 24, seed=5)
    y = physics.A(x) + 0.01 * rand(2, 3, 24, 24, seed=6)
    model = dinv.optim.DPIR(sigma=0.03, denoiser=fast.PnpfastDenoiser(GaussianSmoothing()))
    want = model(y, physics)
    got = model(y, fast.accelerate(physics))
    # float64, the same maths; DPIR's first steps (gamma ~ 180) amplify FFT rounding to ~1e-11
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_deepinv_denoiser_matches_the_model(dinv, fast, dtype):
    model = small_drunet(dinv).to(dtype)
    den = fast.DeepinvDenoiser(model)
    assert isinstance(den, pnpfast.denoisers.Denoiser)
    x = rand(2, 3, 16, 24, seed=7, dtype=dtype)
    levels = torch.tensor([0.03, 0.2], dtype=dtype)
    with torch.no_grad():
        # a float level reaches the model as one level per image in x's dtype (deepinv itself
        # turns a float into a float32 tensor: the same level, rounded)
        full = torch.full((2,), 0.1, dtype=dtype)
        torch.testing.assert_close(den(x, 0.1), model(x, full), rtol=0, atol=0)
        torch.testing.assert_close(den(x, 0.1), model(x, 0.1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(den(x, levels), model(x, levels), rtol=0, atol=0)
        for b in range(2):  # each image at its own level
            torch.testing.assert_close(
                den(x, levels)[b : b + 1],
                model(x[b : b + 1], float(levels[b])),
                rtol=1e-5,
                atol=1e-6,
            )


def test_deepinv_denoiser_checks_its_arguments(dinv, fast):
    model = small_drunet(dinv)
    den = fast.DeepinvDenoiser(model, channels=3)
    x = rand(2, 3, 16, 16, seed=8, dtype=F32)
    with pytest.raises(ValueError, match="sigma"):
        den(x, -0.1)
    with pytest.raises(ValueError, match="sigma"):
        den(x, torch.ones(3))
    with pytest.raises(ValueError, match="x has 1 channels"):
        den(x[:, :1], 0.1)
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, H, W\]"):
        den(x[0], 0.1)
    with pytest.raises(TypeError, match="model must be callable"):
        fast.DeepinvDenoiser(3)
    with pytest.raises(TypeError, match="blind"):
        fast.DeepinvDenoiser(model, blind="yes")
    blind = fast.DeepinvDenoiser(
        dinv.models.DnCNN(3, 3, depth=2, nf=4, pretrained=None), blind=True
    )
    assert blind.blind  # a blind model's sigma tensor is checked for its form, never read
    assert blind(x, torch.tensor([-1.0, float("nan")])).shape == x.shape


def test_deepinv_denoiser_in_pnpfast_solve(dinv, fast):
    """pnpfast.solve with the wrapped deepinv model gives the run with the bare model as a
    plain callable (the path solve already takes), on a deepinv physics converted by
    to_pnpfast."""
    model = small_drunet(dinv)
    k = rand(1, 1, 5, 5, seed=9, dtype=F32) + 0.1
    physics = dinv.physics.BlurFFT((3, 24, 24), filter=k / k.sum())
    x = rand(2, 3, 24, 24, seed=10, dtype=F32)
    y = physics.A(x) + 0.02 * rand(2, 3, 24, 24, seed=11, dtype=F32)
    op = fast.to_pnpfast(physics)
    with torch.no_grad():
        got = pnpfast.solve(y, op, fast.DeepinvDenoiser(model), "hqs", sigma=0.02, max_iter=3)
        want = pnpfast.solve(y, op, lambda v, s: model(v, s), "hqs", sigma=0.02, max_iter=3)
    torch.testing.assert_close(got.x, want.x, rtol=0, atol=0)

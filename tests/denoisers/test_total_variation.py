"""TotalVariation against an independent oracle (scikit-image's Chambolle solver) and by the
optimality of its output."""

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_tv_chambolle

from pnpfast.denoisers import TotalVariation
from pnpfast.denoisers.tv import divergence, gradient, tv_objective

LAM = 0.08


def noisy_shapes(channels: int, seed: int = 0, H: int = 40, W: int = 47) -> torch.Tensor:
    """A piecewise-constant image (a disk and a bar, one gain per channel) plus noise, float64."""
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    disk = (((yy - 17) ** 2 + (xx - 22) ** 2) < 150).double()
    clean = 0.2 + 0.5 * disk + 0.2 * (xx > 35).double()
    gains = torch.tensor([1.0, 0.8, 0.6], dtype=torch.float64)[:channels].view(1, -1, 1, 1)
    noise = torch.randn(1, channels, H, W, generator=torch.Generator().manual_seed(seed))
    return clean * gains + 0.1 * noise.double()


def skimage_tv(x: torch.Tensor, weight: float, **kwargs) -> torch.Tensor:
    """skimage's solution for one [1, C, H, W] image.

    denoise_tv_chambolle minimises 1/(2 weight) ||u - x||^2 + TV(u) (Chambolle's iteration,
    u = x - div p), i.e. 1/2 ||u - x||^2 + weight TV(u): weight = lam. Its TV is isotropic with
    forward differences that are zero across the last row/column (Neumann), like ours; with
    channel_axis each channel is solved on its own, as in TotalVariation.
    """
    arr = x[0].permute(1, 2, 0).numpy()
    out = denoise_tv_chambolle(arr, weight=weight, channel_axis=-1, **kwargs)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None]


def test_divergence_is_the_negative_adjoint_of_gradient():
    g = torch.Generator().manual_seed(3)
    u = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)
    py, px = (torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64) for _ in range(2))
    gy, gx = gradient(u)
    torch.testing.assert_close((gy * py + gx * px).sum(), -(u * divergence(py, px)).sum())


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "color"])
def test_objective_no_larger_than_skimage(channels):
    x = noisy_shapes(channels)
    lam = torch.tensor([LAM], dtype=torch.float64)
    # skimage with its default stopping rule (eps=2e-4, at most 200 iterations)
    oracle_default = tv_objective(skimage_tv(x, LAM), x, lam).item()
    ours_default = tv_objective(TotalVariation(1.0)(x, LAM), x, lam).item()
    assert ours_default <= oracle_default + 1e-9
    # skimage run close to convergence against 500 of our accelerated iterations
    u_oracle = skimage_tv(x, LAM, eps=1e-12, max_num_iter=20000)
    u_ours = TotalVariation(1.0, iterations=500)(x, LAM)
    oracle = tv_objective(u_oracle, x, lam).item()
    ours = tv_objective(u_ours, x, lam).item()
    assert ours <= oracle * (1 + 2e-5)
    # the objective is 1-strongly convex, so near-equal objectives mean near-equal solutions
    assert (u_ours - u_oracle).abs().max().item() < 1e-3


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "color"])
def test_random_perturbations_increase_the_objective(channels):
    x = noisy_shapes(channels, seed=1)
    lam = torch.tensor([LAM], dtype=torch.float64)
    u = TotalVariation(1.0, iterations=300)(x, LAM)
    best = tv_objective(u, x, lam)
    g = torch.Generator().manual_seed(2)
    for scale in (1e-2, 1e-3):
        for _ in range(20):
            delta = scale * torch.randn(u.shape, generator=g, dtype=u.dtype)
            assert tv_objective(u + delta, x, lam) > best


def test_batch_with_per_image_sigma_equals_per_image_calls():
    x = torch.cat([noisy_shapes(2, seed=s, H=17, W=23) for s in range(3)])
    sigmas = torch.tensor([0.0, 10 / 255, 40 / 255], dtype=torch.float64)
    D = TotalVariation(strength=1.5, iterations=30)
    batched = D(x, sigmas)
    for b in range(3):
        torch.testing.assert_close(batched[b : b + 1], D(x[b : b + 1], float(sigmas[b])))
    torch.testing.assert_close(batched[0], x[0])  # sigma 0: the identity


def test_strength_scales_sigma_and_constants_are_fixed_points():
    x = noisy_shapes(1, H=16, W=19)
    torch.testing.assert_close(TotalVariation(2.0, 40)(x, 0.05), TotalVariation(1.0, 40)(x, 0.1))
    torch.testing.assert_close(TotalVariation(0.0, 40)(x, 0.1), x)
    c = torch.full((2, 3, 8, 9), 0.3)
    torch.testing.assert_close(TotalVariation()(c, 0.2), c)


def test_float32_keeps_dtype():
    x = noisy_shapes(3, H=12, W=13).float()
    assert TotalVariation(iterations=5)(x, 0.1).dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs", [{"strength": -1.0}, {"strength": float("nan")}, {"iterations": -1}]
)
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TotalVariation(**kwargs)

"""GradientStep: D = x - grad g against autograd and finite differences of g, a symmetric
Jacobian (measured by the asymmetry estimator), and training through it (double backward)."""

import pytest
import torch
from pnpfast_test_utils import assert_close

from pnpfast.denoisers import DRUNet, GradientStep
from pnpfast.denoisers.architectures import build
from pnpfast.diagnostics import jacobian_asymmetry, spectral_norm

F64 = torch.float64


def gs_denoiser(channels=1, seed=0):
    torch.manual_seed(seed)
    net = DRUNet(channels=channels, widths=(8, 16), blocks=1, activation="elu", residual=True)
    return GradientStep(net).double().eval()


def test_denoiser_is_a_gradient_step_on_its_potential():
    D = gs_denoiser()
    x = torch.rand(3, 1, 12, 14, dtype=F64)
    sigma = torch.tensor([0.05, 0.1, 0.2], dtype=F64)
    xr = x.clone().requires_grad_()
    g = 0.5 * (xr - D.network(xr, sigma)).flatten(1).pow(2).sum(1)
    (grad,) = torch.autograd.grad(g.sum(), xr)
    assert_close(D(x, sigma), x - grad, rtol=1e-12, atol=1e-13, what="D = x - grad g")
    pot, grad2 = D.potential_and_gradient(x, sigma)
    assert_close(pot, g.detach(), rtol=1e-13, atol=0, what="potential")
    assert_close(D.potential(x, sigma), g.detach(), rtol=1e-13, atol=0, what="potential")
    assert_close(grad2, grad, rtol=1e-12, atol=1e-13, what="gradient")
    # and the gradient against central differences of g along a random direction
    v = torch.randn_like(x)
    eps = 1e-6
    fd = (D.potential(x + eps * v, sigma) - D.potential(x - eps * v, sigma)) / (2 * eps)
    assert_close(fd, (grad * v).flatten(1).sum(1), rtol=1e-6, atol=1e-9, what="finite differences")


def test_jacobian_is_symmetric_unlike_the_network():
    D = gs_denoiser(channels=3)
    x = torch.rand(2, 3, 8, 8, dtype=F64)
    assert (jacobian_asymmetry(D, x, 0.1) < 1e-10).all()
    assert (jacobian_asymmetry(D.network, x, 0.1) > 1e-3).all()
    # so the symmetric power iteration (one product per step) is valid and agrees; the
    # reference backend: 1200 power steps under the Triton interpreter take a minute here, and
    # the fused step's backends are compared in tests/ops/test_power_step.py
    a = spectral_norm(D, x, 0.1, iters=400, tol=1e-10, backend="reference")
    b = spectral_norm(D, x, 0.1, iters=800, tol=1e-10, symmetric=True, backend="reference")
    assert_close(a.norm, b.norm, rtol=1e-4, atol=0, what="modes")


def test_runs_under_no_grad_and_trains_with_double_backward():
    D = gs_denoiser()
    x = torch.rand(2, 1, 8, 8, dtype=F64)
    with torch.no_grad():
        out = D(x, 0.1)
    assert not out.requires_grad and torch.isfinite(out).all()
    D.train()
    loss = (D(x + 0.1 * torch.randn_like(x), 0.1) - x).pow(2).mean()
    loss.backward()
    grads = [p.grad for p in D.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_config_round_trip_and_errors():
    D = gs_denoiser()
    E = build(D.config()).double()
    E.load_state_dict(D.state_dict())
    x = torch.rand(1, 1, 8, 8, dtype=F64)
    assert torch.equal(D(x, 0.1), E(x, 0.1))
    with pytest.raises(TypeError, match=r"network must be a torch\.nn\.Module"):
        GradientStep("drunet")
    with pytest.raises(ValueError, match="x has 3 channels"):
        D(torch.rand(1, 3, 8, 8, dtype=F64), 0.1)

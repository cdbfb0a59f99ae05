"""Bad input at the operator and solver boundary (issue 17): each case asserts the exact exception
type and that the message names the argument; valid edge cases (1x1 images, odd sizes) are checked
against an independent oracle. Tiny sizes: seconds on the CPU."""

import numpy as np
import pytest
import torch

import pnpfast
from pnpfast.operators import Blur, Inpainting, LinearOperator

K3 = torch.ones(3, 3) / 9


def identity(x, sigma):
    return x


class ZeroOperator(LinearOperator):
    """A = 0: a degenerate operator with ||A^T A|| = 0 and no declared closed form."""

    def forward(self, x):
        return torch.zeros_like(x)

    def adjoint(self, y):
        return torch.zeros_like(y)


BLUR_CASES = [
    ("all-zero kernel", torch.zeros(3, 3), ValueError, r"kernel is all zero"),
    (
        "one zero kernel of a batch",
        torch.stack([K3, torch.zeros(3, 3)]),
        ValueError,
        r"kernel.*\[1\]",
    ),
    ("NaN kernel", torch.full((3, 3), float("nan")), ValueError, r"kernel contains NaN"),
    ("Inf kernel", torch.full((3, 3), float("inf")), ValueError, r"kernel contains NaN or Inf"),
    ("empty kernel", torch.ones(0, 3), ValueError, r"kernel has a dimension of size 0"),
    ("meta kernel", torch.ones(3, 3, device="meta"), ValueError, r"kernel is on the meta device"),
    ("int kernel", torch.ones(3, 3, dtype=torch.int64), TypeError, r"kernel must be floating"),
    ("1-d kernel", torch.ones(3), ValueError, r"kernel must have shape"),
]


@pytest.mark.parametrize("case, kernel, exc, match", BLUR_CASES, ids=[c[0] for c in BLUR_CASES])
def test_blur_refuses_bad_kernel(case, kernel, exc, match):
    with pytest.raises(exc, match=match):
        Blur(kernel)


X_CASES = [
    ("batch of size 0", torch.rand(0, 1, 8, 8), ValueError, r"x has a batch of size 0"),
    ("zero channels", torch.rand(1, 0, 8, 8), ValueError, r"x has a dimension of size 0"),
    ("meta device", torch.rand(1, 1, 8, 8, device="meta"), ValueError, r"x is on the meta device"),
    (
        "kernel larger than x",
        torch.rand(1, 1, 2, 8),
        ValueError,
        r"kernel of size 3x3 .* x of size",
    ),
    ("3-d x", torch.rand(1, 8, 8), ValueError, r"x must have shape \[B, C, H, W\]"),
    ("float16 x", torch.rand(1, 1, 8, 8).half(), TypeError, r"x must have dtype"),
]


@pytest.mark.parametrize("case, x, exc, match", X_CASES, ids=[c[0] for c in X_CASES])
def test_blur_forward_refuses_bad_x(case, x, exc, match):
    with pytest.raises(exc, match=match):
        Blur(K3)(x)


Y_CASES = [
    ("batch of size 0", torch.rand(0, 1, 8, 8), r"y has a batch of size 0"),
    ("meta device", torch.rand(1, 1, 8, 8, device="meta"), r"y is on the meta device"),
    ("kernel larger than y", torch.rand(1, 1, 8, 2), r"kernel of size 3x3 is larger than y"),
]


@pytest.mark.parametrize("method", ["hqs", "pgd"])
@pytest.mark.parametrize("case, y, match", Y_CASES, ids=[c[0] for c in Y_CASES])
def test_solve_refuses_bad_y(case, y, match, method):
    with pytest.raises(ValueError, match=match):
        pnpfast.solve(y, Blur(K3), identity, method, sigma=0.01, max_iter=2)


def test_inpainting_refuses_meta_mask():
    with pytest.raises(ValueError, match=r"mask is on the meta device"):
        Inpainting(torch.ones(8, 8, device="meta"))


@pytest.mark.parametrize(
    "sigma, match",
    [
        (torch.full((1,), 0.1, device="meta"), r"sigma is on the meta device"),
        (torch.ones(0), r"sigma must be a float or a tensor of length 1"),
    ],
)
def test_solve_refuses_meta_or_empty_sigma(sigma, match):
    with pytest.raises(ValueError, match=match):
        pnpfast.solve(torch.rand(1, 1, 8, 8), Blur(K3), identity, "hqs", sigma=sigma)


@pytest.mark.parametrize("case, y, match", Y_CASES[:2], ids=[c[0] for c in Y_CASES[:2]])
def test_sampler_refuses_empty_or_meta_y(case, y, match):
    with pytest.raises(ValueError, match=match):
        pnpfast.solve(y, Inpainting(torch.ones(8, 8)), identity, "implicit-prior", max_iter=2)


def test_solve_refuses_meta_x0():
    y = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"x0 is on the meta device"):
        pnpfast.solve(
            y, Blur(K3), identity, "hqs", sigma=0.01, x0=torch.empty_like(y, device="meta")
        )


@pytest.mark.parametrize("method", ["pgd", "fista", "pnp-reg", "prox-pnp-pgd"])
def test_degenerate_operator_named_not_the_step(method):
    y = torch.rand(1, 1, 6, 6)
    with pytest.raises(ValueError, match=r"operator ZeroOperator has \|\|A\^T A\|\| = \[0\.0\]"):
        if method == "prox-pnp-pgd":  # reaches the step only with a gradient-step denoiser
            denoiser = pnpfast.denoisers.GradientStep(_TinyNet())
        else:
            denoiser = identity
        pnpfast.solve(y, ZeroOperator(), denoiser, method, sigma=0.01, max_iter=2)


class _TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, sigma):
        return torch.tanh(self.conv(x))


WRONG_DENOISERS = [
    (
        "shape",
        lambda x, s: x[..., :4, :4],
        ValueError,
        r"the denoiser returned shape \(1, 1, 4, 4\)",
    ),
    ("dtype", lambda x, s: x.double(), TypeError, r"the denoiser returned dtype torch.float64"),
    ("not a tensor", lambda x, s: x.numpy(), TypeError, r"the denoiser returned ndarray"),
    ("batch", lambda x, s: torch.cat([x, x]), ValueError, r"the denoiser returned shape \(2,"),
]


@pytest.mark.parametrize("method", ["hqs", "admm", "pgd", "fista", "red-sd", "red-apg", "pnp-reg"])
@pytest.mark.parametrize(
    "case, denoiser, exc, match", WRONG_DENOISERS, ids=[c[0] for c in WRONG_DENOISERS]
)
def test_denoiser_with_wrong_output_is_named(case, denoiser, exc, match, method):
    y = torch.rand(1, 1, 8, 8)
    with pytest.raises(exc, match=match):
        pnpfast.solve(y, Blur(K3), denoiser, method, sigma=0.01, max_iter=2)


PARAM_CASES = [
    ("gs-pnp", "gamma", float("inf"), ValueError, r"gamma must be a finite number > 0, not inf"),
    ("gs-pnp", "gamma", float("nan"), ValueError, r"gamma must be"),
    (
        "gs-pnp",
        "eta",
        float("inf"),
        ValueError,
        r"eta must be a finite number in \(0, 1\), not inf",
    ),
    (
        "gs-pnp",
        "max_backtracks",
        10**6,
        ValueError,
        r"max_backtracks must be an int in \[0, 1000\], not 1000000",
    ),
    (
        "gs-pnp",
        "max_backtracks",
        True,
        TypeError,
        r"max_backtracks must be an int in \[0, 1000\], not bool",
    ),
    ("gs-pnp", "lam", float("inf"), ValueError, r"lam must be finite"),
    ("gs-pnp", "tau", float("nan"), ValueError, r"tau must be finite"),
    ("prox-pnp-pgd", "lam", float("inf"), ValueError, r"lam must be finite"),
    (
        "prox-pnp-drs",
        "alpha",
        float("nan"),
        ValueError,
        r"alpha must be a finite number in \(0, 1\], not nan",
    ),
    (
        "red-admm",
        "inner_iter",
        10**6,
        ValueError,
        r"inner_iter must be an int in \[1, 100\], not 1000000",
    ),
    ("red-admm", "inner_iter", 0, ValueError, r"inner_iter must be an int in \[1, 100\], not 0"),
    ("red-admm", "beta", float("inf"), ValueError, r"beta must be finite"),
    ("fista", "restart", 1.0, TypeError, r"restart must be True or False"),
    ("red-apg", "restart", float("nan"), TypeError, r"restart must be True or False"),
    ("pgd", "tau", float("inf"), ValueError, r"tau must be finite"),
    ("hqs", "lam", float("nan"), ValueError, r"lam must be finite"),
    ("admm", "gamma", float("inf"), ValueError, r"gamma must be finite"),
    ("red-dpg", "Lf", float("inf"), ValueError, r"Lf must be finite"),
    ("pnp-reg", "lam", float("nan"), ValueError, r"lam must be finite"),
]


@pytest.mark.parametrize(
    "method, name, value, exc, match",
    PARAM_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in PARAM_CASES],
)
def test_solver_parameter_refused_by_name(method, name, value, exc, match):
    y = torch.rand(1, 1, 8, 8)
    needs_potential = method in ("gs-pnp", "prox-pnp-pgd", "prox-pnp-drs")
    denoiser = pnpfast.denoisers.GradientStep(_TinyNet()) if needs_potential else identity
    with pytest.raises(exc, match=match):
        pnpfast.solve(y, Blur(K3), denoiser, method, sigma=0.01, max_iter=2, **{name: value})


@pytest.mark.parametrize("name, value", [("sigma", float("inf")), ("sigma", float("nan"))])
def test_solve_sigma_must_be_finite(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be finite"):
        pnpfast.solve(torch.rand(1, 1, 8, 8), Blur(K3), identity, "hqs", **{name: value})


def _wrap_convolve(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Circular convolution by direct summation, kernel centred at (h // 2, w // 2): the oracle."""
    h, w = k.shape
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            out += k[i, j] * np.roll(x, shift=(i - h // 2, j - w // 2), axis=(0, 1))
    return out


@pytest.mark.parametrize("size, ksize", [((1, 1), (1, 1)), ((5, 7), (3, 3)), ((3, 4), (3, 1))])
def test_blur_edge_sizes_match_direct_sum(size, ksize):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, *size, generator=g, dtype=torch.float64)
    k = torch.rand(*ksize, generator=g, dtype=torch.float64)
    got = Blur(k)(x)[0, 0].numpy()
    want = _wrap_convolve(x[0, 0].numpy(), k.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [(1, 1), (1, 3), (5, 1)])
def test_tiny_images_admm_matches_scalar_recursion(size):
    # a kernel [[c]] and the identity denoiser: each ADMM step is, pixel by pixel, the scalar
    # prox z <- (z + gamma c y) / (1 + gamma c^2) (u stays 0), from z_0 = A^T y = c y
    c, gamma, n = 0.5, 2.0, 5
    g = torch.Generator().manual_seed(1)
    y = torch.rand(1, 1, *size, generator=g, dtype=torch.float64)
    kernel = torch.tensor([[c]], dtype=torch.float64)
    res = pnpfast.solve(
        y, Blur(kernel), identity, "admm", sigma=0.01, gamma=gamma, max_iter=n, tol=0.0
    )
    z = c * y.numpy()
    for _ in range(n):
        z = (z + gamma * c * y.numpy()) / (1 + gamma * c**2)
    assert res.x.shape == y.shape
    np.testing.assert_allclose(res.x.numpy(), z, rtol=1e-12, atol=1e-14)


class _ShrinkingNet(torch.nn.Module):
    """A network whose output loses a border: the wrong shape for a gradient-step denoiser."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3)

    def forward(self, x, sigma):
        return torch.tanh(self.conv(x))


@pytest.mark.parametrize("method", ["gs-pnp", "prox-pnp-pgd", "prox-pnp-drs"])
def test_gradient_step_network_with_wrong_shape_is_named(method):
    denoiser = pnpfast.denoisers.GradientStep(_ShrinkingNet())
    with pytest.raises(ValueError, match=r"the network of GradientStep \(_ShrinkingNet\) returned"):
        pnpfast.solve(torch.rand(1, 1, 8, 8), Blur(K3), denoiser, method, sigma=0.01, max_iter=2)

"""RED solvers: closed-form fixed points with a linear symmetric denoiser, per-image parameters,
acceleration, backends, and bad input.

With the circular Gaussian smoothing f(x) = W x (W diagonal in the Fourier domain with the real
multiplier T = GaussianSmoothing.transfer) and a circular blur (multiplier K), every RED fixed
point solves (A^T A / sigma_n^2 + lam (I - W)) x = A^T y / sigma_n^2, so per frequency

    X = conj(K) Y / (|K|^2 + lam sigma_n^2 (1 - T))

and for red-gd (data term 1/2 ||A x - y||^2) the same with lam sigma_n^2 replaced by lam.
"""

import pytest
import torch
from pnpfast_test_utils import fast_backends

import pnpfast
from pnpfast.denoisers import GaussianSmoothing
from pnpfast.operators import Blur

RED = ["red-sd", "red-fp", "red-admm", "red-pg", "red-apg", "red-dpg", "red-gd"]
H = W = 32
SIGMA = torch.tensor([0.05, 0.1], dtype=torch.float64)
SIGMA_D = torch.tensor([10 / 255, 20 / 255], dtype=torch.float64)  # 0.4 and 0.8 pixels


def problem(B=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(B, 5, 5, generator=g, dtype=dtype)
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    x = torch.rand(B, 1, H, W, generator=g, dtype=dtype)
    A = Blur(k)
    y = A(x) + 0.05 * torch.randn(B, 1, H, W, generator=g, dtype=dtype)
    return A, k, x, y


def kernel_spectrum(k):
    """rfft2 of each centred, zero-padded kernel: [B, 1, H, W // 2 + 1]."""
    h, w = k.shape[-2:]
    padded = torch.zeros(k.shape[0], 1, H, W, dtype=k.dtype)
    padded[:, 0, :h, :w] = k
    return torch.fft.rfft2(torch.roll(padded, shifts=(-(h // 2), -(w // 2)), dims=(-2, -1)))


def red_solution(k, y, weight, T):
    """X = conj(K) Y / (|K|^2 + weight (1 - T)), weight [B] = lam sigma_n^2 (lam for red-gd)."""
    K = kernel_spectrum(k)
    X = K.conj() * torch.fft.rfft2(y) / (K.abs() ** 2 + weight.view(-1, 1, 1, 1) * (1 - T))
    return torch.fft.irfft2(X, s=(H, W))


def relative_errors(a, b):
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).tolist()


# lam sigma_n^2 per image: the balance of the two terms, independent of the noise level
WEIGHT = torch.tensor([1.0, 3.0], dtype=torch.float64)


@pytest.mark.parametrize("method", RED)
def test_red_reaches_its_closed_form_per_image(method):
    """A batch of 2 with its own kernel, noise level, lam and sigma_d per image."""
    A, k, _, y = problem()
    D = GaussianSmoothing()
    lam = WEIGHT if method == "red-gd" else WEIGHT / SIGMA**2
    res = pnpfast.solve(
        y, A, D, method, sigma=SIGMA, lam=lam, sigma_d=SIGMA_D, max_iter=3000, tol=1e-12
    )
    T = D.transfer(H, W, SIGMA_D, y)
    expected = red_solution(k, y, WEIGHT, T)
    assert res.converged.all(), res.iterations
    assert max(relative_errors(res.x, expected)) < 1e-4


def test_red_gd_is_red_sd_without_the_noise_weight():
    """red-gd with lam solves what red-sd solves with lam / sigma_n^2."""
    A, k, _, y = problem(B=1)
    D = GaussianSmoothing(std=1.0)
    res = pnpfast.solve(y, A, D, "red-gd", sigma=0.3, lam=2.0, max_iter=3000, tol=1e-12)
    T = D.transfer(H, W, 0.0, y)
    expected = red_solution(k, y, torch.tensor([2.0], dtype=torch.float64), T)
    assert max(relative_errors(res.x, expected)) < 1e-4


def test_red_apg_reaches_the_fixed_point_in_fewer_iterations_than_fp_and_pg():
    """A heavily weighted prior (lam sigma_n^2 = 100): the slow regime that momentum speeds up."""
    A, k, _, y = problem(B=1)
    D = GaussianSmoothing(std=1.0)
    sigma = 0.05
    lam = 100 / sigma**2
    expected = red_solution(
        k, y, torch.tensor([100.0], dtype=torch.float64), D.transfer(H, W, 0.0, y)
    )

    def iterations_to(method, target=1e-4, max_iter=400):
        errors = []
        pnpfast.solve(
            y,
            A,
            D,
            method,
            sigma=sigma,
            lam=lam,
            max_iter=max_iter,
            tol=0.0,
            callback=lambda info: errors.append(relative_errors(info.x, expected)[0]),
        )
        return next((i + 1 for i, e in enumerate(errors) if e < target), max_iter + 1)

    apg, fp, pg = (iterations_to(m) for m in ("red-apg", "red-fp", "red-pg"))
    assert apg < fp and apg < pg, (apg, fp, pg)
    assert apg <= 400


@pytest.mark.parametrize("method", RED)
def test_batch_equals_each_image_alone(method):
    """Per-image lam, sigma, sigma_d and kernel, and per-image stopping."""
    A, _, _, y = problem()
    D = GaussianSmoothing()
    lam = WEIGHT if method == "red-gd" else WEIGHT / SIGMA**2
    kwargs = {"max_iter": 60, "tol": 1e-5}
    batch = pnpfast.solve(y, A, D, method, sigma=SIGMA, lam=lam, sigma_d=SIGMA_D, **kwargs)
    for b in range(2):
        alone = pnpfast.solve(
            y[b : b + 1],
            Blur(A.kernel[b]),
            D,
            method,
            sigma=float(SIGMA[b]),
            lam=float(lam[b]),
            sigma_d=float(SIGMA_D[b]),
            **kwargs,
        )
        torch.testing.assert_close(batch.x[b : b + 1], alone.x, rtol=1e-9, atol=1e-10)
        assert int(batch.iterations[b]) == int(alone.iterations[0])


@pytest.mark.parametrize("method", RED)
def test_fast_backend_run_matches_reference_run(method):
    """Every fast backend that can run here (Triton under the interpreter on a CPU) against the
    reference; on a GPU this also covers the default choice, which is one of them."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backends = fast_backends(device)
    if not backends:
        pytest.skip("no fast backend here")
    A, _, _, y = problem(B=2, dtype=torch.float32)
    y = y.to(device)
    D = GaussianSmoothing(std=1.0)
    kwargs = {"sigma": 0.05, "max_iter": 10, "tol": 0.0}
    ref = pnpfast.solve(y, A, D, method, backend="reference", **kwargs)
    for backend in backends:
        fast = pnpfast.solve(y, A, D, method, backend=backend, **kwargs)
        torch.testing.assert_close(fast.x, ref.x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", RED)
def test_a_noiseless_measurement_is_floored_not_divided_by_zero(method):
    A, _, _, y = problem(B=1)
    res = pnpfast.solve(y, A, GaussianSmoothing(std=1.0), method, sigma=0.0, max_iter=5)
    assert torch.isfinite(res.x).all()


def test_the_dynamic_schedule_of_reehorst_and_schniter():
    """red-dpg's prox weights follow L_k = 1 / (1/Lf + (1/L0 - 1/Lf) / sqrt(k + 1))."""
    A, _, _, y = problem(B=1)
    seen = []
    data_prox = pnpfast.L2.prox

    def spy(self, v, gamma, **kwargs):
        seen.append(float(gamma[0]))
        return data_prox(self, v, gamma, **kwargs)

    sigma, lam, L0, Lf = 0.1, 50.0, 0.3, 3.0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pnpfast.L2, "prox", spy)
        pnpfast.solve(
            y,
            A,
            GaussianSmoothing(std=1.0),
            "red-dpg",
            sigma=sigma,
            lam=lam,
            L0=L0,
            Lf=Lf,
            max_iter=5,
            tol=0.0,
        )
    L = [1 / (1 / Lf + (1 / L0 - 1 / Lf) / (k + 1) ** 0.5) for k in range(5)]
    assert seen == pytest.approx([1 / (lam * Lk * sigma**2) for Lk in L], rel=1e-12)


@pytest.mark.parametrize(
    "method, kwargs, error, match",
    [
        ("red-sd", {"lam": 0.0}, ValueError, "lam must be > 0"),
        ("red-fp", {"lam": torch.tensor([1.0, -1.0])}, ValueError, "lam must be > 0"),
        ("red-sd", {"mu": 1.0}, ValueError, "mu must be in"),
        ("red-gd", {"lam": 1.0, "mu": 0.7}, ValueError, "mu must be in"),
        ("red-sd", {"mu": -1e-6}, ValueError, "mu must be > 0"),
        ("red-pg", {"L": 0.0}, ValueError, "L must be > 0"),
        ("red-dpg", {"L0": -0.2}, ValueError, "L0 must be > 0"),
        ("red-dpg", {"Lf": 0.0}, ValueError, "Lf must be > 0"),
        ("red-admm", {"beta": 0.0}, ValueError, "beta must be > 0"),
        (
            "red-admm",
            {"inner_iter": 0},
            ValueError,
            r"inner_iter must be an int in \[1, 100\], not 0",
        ),
        (
            "red-admm",
            {"inner_iter": 1.5},
            TypeError,
            r"inner_iter must be an int in \[1, 100\], not float",
        ),
        ("red-apg", {"sigma_d": -0.1}, ValueError, "sigma_d must be >= 0"),
        ("red-pg", {"L0": 0.2}, TypeError, "does not take L0"),
        ("red-dpg", {"L": 1.0}, TypeError, "does not take L"),
        ("red-fp", {"mu": 0.1}, TypeError, "does not take mu"),
        (
            "red-apg",
            {"lam": torch.tensor([1.0, 2.0, 3.0])},
            ValueError,
            "lam must be a float or a tensor of length 2",
        ),
    ],
    ids=[
        "lam_zero",
        "lam_negative_image",
        "mu_range_sd",
        "mu_range_gd",
        "mu_negative",
        "L",
        "L0",
        "Lf",
        "beta",
        "inner_iter_zero",
        "inner_iter_float",
        "sigma_d",
        "pg_L0",
        "dpg_L",
        "fp_mu",
        "lam_len",
    ],
)
def test_bad_red_input_names_the_argument(method, kwargs, error, match):
    A, _, _, y = problem()
    with pytest.raises(error, match=match):
        pnpfast.solve(y, A, GaussianSmoothing(), method, sigma=0.05, **kwargs)

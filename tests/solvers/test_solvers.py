"""Solvers: closed-form fixed points with a linear symmetric denoiser, batch = per image,
per-image stopping, backends, torch.compile, NVTX phases, and bad input."""

import contextlib
import itertools

import pytest
import torch
from pnpfast_test_utils import fast_backends

import pnpfast
from pnpfast.denoisers import GaussianSmoothing, TotalVariation
from pnpfast.operators import Blur


def problem(B=2, C=2, H=24, W=21, dtype=torch.float64, per_image_kernel=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand((B, 5, 5) if per_image_kernel else (5, 5), generator=g, dtype=dtype)
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    x = torch.rand(B, C, H, W, generator=g, dtype=dtype)
    A = Blur(k)
    y = A(x) + 0.02 * torch.randn(B, C, H, W, generator=g, dtype=dtype)
    return A, x, y


def spectra(A, y):
    data = pnpfast.L2(A, y)
    return data.kty, data.k2


def fourier_solution(numerator, denominator, H, W):
    return torch.fft.irfft2(numerator / denominator, s=(H, W))


def relative_error(a, b):
    return float((a - b).flatten(1).norm(dim=1).max() / b.flatten(1).norm(dim=1).min())


SIGMA_D = torch.tensor([10 / 255, 20 / 255], dtype=torch.float64)


@pytest.mark.parametrize(
    "method, step_name, step",
    [("pgd", "tau", [0.8, 1.2]), ("fista", "tau", [0.8, 1.2]), ("admm", "gamma", [0.5, 2.0])],
)
def test_forward_backward_fixed_point(method, step_name, step):
    """PGD and FISTA: x = W (x - tau A^T (A x - y))  <=>  X = tau W KtY / (1 - W + tau W K2);
    ADMM's fixed point is the same with tau = gamma."""
    A, _, y = problem()
    D = GaussianSmoothing()
    t = torch.tensor(step, dtype=torch.float64)
    res = pnpfast.solve(
        y, A, D, method, sigma=0.02, sigma_d=SIGMA_D, max_iter=3000, tol=1e-14, **{step_name: t}
    )
    kty, k2 = spectra(A, y)
    Wt = D.transfer(*y.shape[-2:], SIGMA_D, y)
    t = t.view(-1, 1, 1, 1)
    expected = fourier_solution(t * Wt * kty, 1 - Wt + t * Wt * k2, *y.shape[-2:])
    assert relative_error(res.x, expected) < 1e-8


def test_hqs_fixed_point_with_a_constant_schedule():
    """z = W prox_{gamma f}(z)  <=>  Z = gamma W KtY / (1 + gamma K2 - W), gamma = s^2/(lam sigma^2)."""
    A, _, y = problem()
    D = GaussianSmoothing()
    sigma = torch.tensor([0.02, 0.05], dtype=torch.float64)
    lam = 0.3
    res = pnpfast.solve(
        y,
        A,
        D,
        "hqs",
        sigma=sigma,
        lam=lam,
        sigma_start=SIGMA_D,
        sigma_end=SIGMA_D,
        max_iter=3000,
        tol=1e-14,
    )
    kty, k2 = spectra(A, y)
    Wt = D.transfer(*y.shape[-2:], SIGMA_D, y)
    g = (SIGMA_D**2 / (lam * sigma**2)).view(-1, 1, 1, 1)
    expected = fourier_solution(g * Wt * kty, 1 + g * k2 - Wt, *y.shape[-2:])
    assert relative_error(res.x, expected) < 1e-8


def test_hqs_follows_the_dpir_schedule():
    """sigma_k log-spaced from 49/255 to the noise level; alpha_k = lam sigma^2 / sigma_k^2."""
    A, _, y = problem(B=2)
    seen = []

    def recorder(x, s):
        seen.append(s.clone())
        return x

    sigma = torch.tensor([2.55 / 255, 7.65 / 255], dtype=torch.float64)
    pnpfast.solve(y, A, recorder, "hqs", sigma=sigma)
    assert len(seen) == 8
    for b in range(2):
        expected = torch.logspace(
            torch.log10(torch.tensor(49.0)), torch.log10(sigma[b] * 255), 8, dtype=torch.float64
        )
        torch.testing.assert_close(torch.stack([s[b] for s in seen]) * 255, expected)


@pytest.mark.parametrize("method", ["hqs", "admm", "drs", "pgd", "fista"])
def test_batch_equals_each_image_alone(method):
    """A nonlinear denoiser (TV), per-image kernels and noise levels, per-image stopping."""
    B = 3
    A, x, y = problem(B=B, C=1, H=20, W=17)
    D = TotalVariation(iterations=30)
    sigma = torch.tensor([0.01, 0.03, 0.05], dtype=torch.float64)
    kwargs = {"max_iter": 40, "tol": 1e-3} if method != "hqs" else {}
    batch = pnpfast.solve(y, A, D, method, sigma=sigma, x_true=x, **kwargs)
    for b in range(B):
        alone = pnpfast.solve(
            y[b : b + 1],
            Blur(A.kernel[b]),
            D,
            method,
            sigma=float(sigma[b]),
            x_true=x[b : b + 1],
            **kwargs,
        )
        torch.testing.assert_close(batch.x[b : b + 1], alone.x, rtol=1e-9, atol=1e-10)
        assert int(batch.iterations[b]) == int(alone.iterations[0])
        assert bool(batch.converged[b]) == bool(alone.converged[0])


def test_converged_images_are_frozen_while_the_rest_go_on():
    A, _, y = problem(B=2)
    D = GaussianSmoothing()
    snapshots = []
    # image 0 converges fast (strong smoothing), image 1 slowly
    res = pnpfast.solve(
        y,
        A,
        D,
        "pgd",
        sigma=0.02,
        sigma_d=torch.tensor([40 / 255, 2 / 255]),
        max_iter=200,
        tol=1e-6,
        history=True,
        callback=lambda info: snapshots.append(info.x.clone()),
    )
    first, second = res.iterations.tolist()
    assert first < second, (first, second)
    assert bool(res.converged[0])
    assert res.history["rel_change"].shape[1] == 2
    # once converged, image 0 stays exactly where it stopped while image 1 keeps moving
    for snap in snapshots[first:]:
        assert torch.equal(snap[0], res.x[0])
    assert not torch.equal(snapshots[first][1], res.x[1])


@pytest.mark.parametrize(
    "method, fused",
    [
        ("pgd", False),
        ("fista", True),
        ("admm", True),
        ("drs", True),
        ("red-sd", False),
        ("red-fp", False),
        ("red-admm", True),
        ("red-pg", True),
        ("red-apg", True),
        ("red-dpg", True),
        ("red-gd", False),
    ],
)
def test_relative_change_from_the_fused_sums_is_the_engine_rule(monkeypatch, method, fused):
    """Methods whose pnp_update pass yields ||x_k - x_{k-1}||^2 and ||x_{k-1}||^2 hand the
    relative change to the engine, which then runs no pass of its own; the numbers are the
    engine's rule ||x_k - x_{k-1}|| / ||x_{k-1}|| either way (for red-admm the larger of that
    and its primal residual ||x_k - v_k|| / ||x_{k-1}||)."""
    A, _, y = problem(B=2, C=1)
    calls = []
    own = pnpfast.solvers.engine._rel_change
    monkeypatch.setattr(
        pnpfast.solvers.engine, "_rel_change", lambda new, old: calls.append(1) or own(new, old)
    )
    snapshots = [A.adjoint(y)]  # the default start x0 = A^T y
    primal = []
    res = pnpfast.solve(
        y,
        A,
        GaussianSmoothing(),
        method,
        sigma=0.05,
        max_iter=6,
        tol=0.0,
        history=True,
        callback=lambda info: (
            snapshots.append(info.x.clone()),
            primal.append((info.x - getattr(info.state, "v", info.x)).flatten(1).norm(dim=1)),
        ),
    )
    expected = torch.stack([own(new, old) for old, new in itertools.pairwise(snapshots)])
    if method == "red-admm":
        ref = torch.stack([old.flatten(1).norm(dim=1) for old in snapshots[:-1]])
        expected = torch.maximum(expected, torch.stack(primal) / ref)
    torch.testing.assert_close(res.history["rel_change"], expected, rtol=1e-10, atol=1e-14)
    assert (len(calls) == 0) == fused, len(calls)


def test_history_records_psnr_when_the_truth_is_given():
    A, x, y = problem(B=2)
    res = pnpfast.solve(y, A, GaussianSmoothing(), "hqs", sigma=0.02, x_true=x)
    assert res.history["psnr"].shape == (8, 2)
    final = -10 * torch.log10((res.x - x).pow(2).flatten(1).mean(1))
    torch.testing.assert_close(res.history["psnr"][-1], final)


def test_callback_sees_every_iteration():
    A, _, y = problem(B=1)
    calls = []
    pnpfast.solve(
        y,
        A,
        GaussianSmoothing(),
        "hqs",
        sigma=0.02,
        callback=lambda info: calls.append(info.iteration),
    )
    assert calls == list(range(8))


@pytest.mark.parametrize("method", ["hqs", "pgd"])
def test_fast_backend_run_matches_reference_run(monkeypatch, method):
    backends = fast_backends("cuda" if torch.cuda.is_available() else "cpu")
    if not backends:
        pytest.skip("no fast backend here")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    A, _, y = problem(B=2, C=3, H=32, W=30, dtype=torch.float32)
    y = y.to(device)
    D = TotalVariation(iterations=20)
    kwargs = {"max_iter": 10, "tol": 0.0}
    monkeypatch.setenv("PNPFAST_BACKEND", "reference")
    ref = pnpfast.solve(y, A, D, method, sigma=0.02, **kwargs)
    monkeypatch.delenv("PNPFAST_BACKEND")
    for backend in backends:
        fast = pnpfast.solve(y, A, D, method, sigma=0.02, backend=backend, **kwargs)
        torch.testing.assert_close(fast.x, ref.x, rtol=1e-4, atol=1e-5)


def test_every_phase_is_named_for_nsight(monkeypatch):
    names = []

    class FakeNVTX:
        @staticmethod
        def annotate(name, domain):
            assert domain == "pnpfast"
            names.append(name)
            return contextlib.nullcontext()

    monkeypatch.setattr(pnpfast.profiling, "_nvtx", FakeNVTX)
    A, _, y = problem(B=1)
    pnpfast.solve(y, A, GaussianSmoothing(), "hqs", sigma=0.02, max_iter=2)
    pnpfast.solve(y, A, GaussianSmoothing(), "pgd", sigma=0.02, max_iter=2)
    for phase in (
        "pnpfast/iteration",
        "pnpfast/data_prox",
        "pnpfast/data_grad",
        "pnpfast/denoise",
        "pnpfast/bookkeeping",
    ):
        assert phase in names, phase


@pytest.mark.slow
def test_an_iteration_runs_under_torch_compile():
    A, _, y = problem(B=2, C=3, H=32, W=32, dtype=torch.float32)
    data = pnpfast.L2(A, y)
    D = GaussianSmoothing()
    gamma = torch.tensor([0.5, 1.5])
    sigma = torch.tensor([0.05, 0.1])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backends = ["reference", *fast_backends(device)]

    for backend in backends:

        def hqs_iteration(z, backend=backend):
            return D(data.prox(z, gamma, backend=backend, check=False), sigma)

        compiled = torch.compile(hqs_iteration)
        torch.testing.assert_close(compiled(y), hqs_iteration(y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "red"}, ValueError, "method must be one of"),
        ({"method": "pgd", "gamma": 1.0}, TypeError, "does not take gamma"),
        ({"method": "pgd", "tau": 2.5}, ValueError, "tau must be in"),
        ({"sigma": -0.1}, ValueError, "sigma must be >= 0"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"x0": torch.zeros(1, 2, 24, 21, dtype=torch.float64)}, ValueError, "x0 has shape"),
        ({"x_true": torch.zeros(2, 2, 24, 21)}, TypeError, "x_true has dtype"),
        (
            {"sigma": torch.tensor([0.1, 0.1, 0.1])},
            ValueError,
            "sigma must be a float or a tensor of length 2",
        ),
    ],
    ids=[
        "method",
        "param",
        "tau_range",
        "sigma_negative",
        "max_iter",
        "tol",
        "x0_shape",
        "x_true_dtype",
        "sigma_len",
    ],
)
def test_bad_solver_input_names_the_argument(kwargs, error, match):
    A, _, y = problem()
    args = {"method": "hqs", "sigma": 0.02, **kwargs}
    method = args.pop("method")
    with pytest.raises(error, match=match):
        pnpfast.solve(y, A, GaussianSmoothing(), method, **args)


def test_nan_measurement_is_rejected():
    A, _, y = problem()
    y[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        pnpfast.solve(y, A, GaussianSmoothing(), "hqs", sigma=0.02)

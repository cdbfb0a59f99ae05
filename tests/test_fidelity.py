"""pnpfast.L2 reads the operator's declared capabilities, not its class: an FFT-diagonal operator
defined only here gets the fused spectral path, a partial isometry the closed-form prox, anything
else conjugate gradients; every path against a dense solve on a tiny image."""

import math

import pytest
import torch
from pnpfast_test_utils import assert_close

import pnpfast
import pnpfast.fidelity
from pnpfast.operators import LinearOperator

F64 = torch.float64


class CircularDifference(LinearOperator):
    """(A x)[..., i, j] = a_b x[..., i, j] - x[..., i, j - 1] (circular in j), a_b per image;
    diagonal in the Fourier domain with multiplier a_b - exp(-2 pi i l / W) (l the column
    frequency). Unknown to pnpfast: it only declares ``fourier_multiplier``."""

    def __init__(self, a: torch.Tensor):
        self.a = a  # [Bk]

    def forward(self, x):
        return self.a.view(-1, 1, 1, 1) * x - torch.roll(x, 1, dims=-1)

    def adjoint(self, y):
        return self.a.view(-1, 1, 1, 1) * y - torch.roll(y, -1, dims=-1)

    def fourier_multiplier(self, shape, device, dtype):
        H, W = shape
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        phase = -2 * math.pi * torch.arange(W // 2 + 1, dtype=F64) / W
        k = self.a.to(F64).view(-1, 1, 1, 1) - torch.polar(torch.ones_like(phase), phase)
        return k.expand(-1, 1, H, -1).to(device=device, dtype=cdtype)


class PlainDifference(CircularDifference):
    """The same operator without the declaration: L2 must take its general path."""

    def fourier_multiplier(self, shape, device, dtype):
        return None


class Subsample(LinearOperator):
    """Keep every other column: A A^T = I, declared as a partial isometry; y [B, C, H, W / 2]."""

    partial_isometry = True

    def forward(self, x):
        return x[..., ::2]

    def adjoint(self, y):
        out = y.new_zeros(*y.shape[:-1], 2 * y.shape[-1])
        out[..., ::2] = y
        return out

    def image_shape(self, y, name="y"):
        self.check_input(name, y)
        return (*y.shape[:-1], 2 * y.shape[-1])


def dense(A: LinearOperator, shape) -> torch.Tensor:
    """A as [B, M, N] matrices, by applying it to every basis image (N = C H W)."""
    B, n = shape[0], math.prod(shape[1:])
    cols = [A(torch.eye(n, dtype=F64)[j].view(1, *shape[1:]).expand(shape)) for j in range(n)]
    return torch.stack([c.reshape(B, -1) for c in cols], -1)


def dense_prox(A, v, y, gamma) -> torch.Tensor:
    """argmin 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2 by a dense solve per image."""
    M = dense(A, v.shape)
    out = []
    for b in range(v.shape[0]):
        lhs = M[b].T @ M[b] + torch.eye(M.shape[-1], dtype=F64) / gamma[b]
        out.append(torch.linalg.solve(lhs, M[b].T @ y[b].flatten() + v[b].flatten() / gamma[b]))
    return torch.stack(out).view(v.shape)


def counting(monkeypatch, name: str) -> list:
    """Count the calls L2 makes to the fused op ``name`` (pnpfast.fidelity's import of it)."""
    calls = []
    own = getattr(pnpfast.fidelity, name)

    def wrapped(*args, **kwargs):
        calls.append(1)
        return own(*args, **kwargs)

    monkeypatch.setattr(pnpfast.fidelity, name, wrapped)
    return calls


def tiny(shape=(2, 1, 4, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    v, y = torch.randn(shape, generator=g, dtype=F64), torch.randn(shape, generator=g, dtype=F64)
    return v, y, torch.tensor([0.4, 3.0], dtype=F64)[: shape[0]]


@pytest.mark.parametrize("per_image", [False, True], ids=["shared", "per_image"])
def test_an_fft_diagonal_operator_defined_elsewhere_gets_the_fused_prox(monkeypatch, per_image):
    A = CircularDifference(torch.tensor([1.5, 0.7] if per_image else [1.5], dtype=F64))
    v, y, gamma = tiny()
    calls = counting(monkeypatch, "fft_prox")
    got = pnpfast.L2(A, y).prox(v, gamma)
    assert len(calls) == 1
    assert_close(got, dense_prox(A, v, y, gamma), rtol=1e-10, atol=1e-11, what="prox")
    # the operator's own prox_l2 takes the same closed form, checked against CG
    cg = A.prox_l2_cg(v, y, gamma, max_iter=200, tol=1e-14)
    assert_close(A.prox_l2(v, y, gamma), cg, rtol=1e-9, atol=1e-10, what="prox_l2 vs CG")
    given_aty = A.prox_l2_normal(v, A.adjoint(y), gamma)
    assert_close(given_aty, cg, rtol=1e-9, atol=1e-10, what="prox_l2_normal vs CG")


def test_an_fft_diagonal_operator_gets_the_fused_gradient_and_exact_lipschitz(monkeypatch):
    A = CircularDifference(torch.tensor([1.5, 0.7], dtype=F64))
    x, y, tau = tiny(seed=1)
    calls = counting(monkeypatch, "fft_grad")
    data = pnpfast.L2(A, y)
    want = x - tau.view(-1, 1, 1, 1) * A.adjoint(A(x) - y)
    assert_close(data.grad_step(x, tau), want, rtol=1e-11, atol=1e-12, what="grad_step")
    assert_close(data.grad(x), A.adjoint(A(x) - y), rtol=1e-11, atol=1e-12, what="grad")
    assert len(calls) == 2
    M = dense(A, x.shape)
    expected = torch.stack([torch.linalg.eigvalsh(m.T @ m).max() for m in M])
    assert_close(data.lipschitz(), expected, rtol=1e-10, atol=0, what="lipschitz")


def test_without_the_declaration_the_same_operator_takes_the_general_path(monkeypatch):
    A = PlainDifference(torch.tensor([1.5, 0.7], dtype=F64))
    v, y, gamma = tiny(seed=2)
    prox_calls, grad_calls = counting(monkeypatch, "fft_prox"), counting(monkeypatch, "fft_grad")
    data = pnpfast.L2(A, y, cg_max_iter=200, cg_tol=1e-14)
    assert_close(data.prox(v, gamma), dense_prox(A, v, y, gamma), rtol=1e-9, atol=1e-10)
    assert_close(data.grad(v), A.adjoint(A(v) - y), rtol=1e-12, atol=1e-12)
    M = dense(A, v.shape)
    expected = torch.stack([torch.linalg.eigvalsh(m.T @ m).max() for m in M])
    assert_close(data.lipschitz(iters=300), expected, rtol=1e-6, atol=0, what="power iteration")
    assert not prox_calls and not grad_calls


def test_a_partial_isometry_gets_the_closed_form_prox(monkeypatch):
    A = Subsample()
    v, _, gamma = tiny(seed=3)
    y = torch.randn(2, 1, 4, 3, dtype=F64)
    cg = []
    monkeypatch.setattr(
        pnpfast.operators.base, "batched_cg", lambda *a, **k: cg.append(1) or pytest.fail("CG")
    )
    data = pnpfast.L2(A, y)
    assert data.image_shape == (2, 1, 4, 6)
    assert_close(data.prox(v, gamma), dense_prox(A, v, y, gamma), rtol=1e-12, atol=1e-12)
    assert_close(A.prox_l2(v, y, gamma), dense_prox(A, v, y, gamma), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(data.lipschitz(), torch.ones(2, dtype=F64))
    assert not cg


def test_an_operator_that_writes_its_own_prox_is_called():
    class Scaled(PlainDifference):
        calls = 0

        def prox_l2(self, v, y, gamma, **kw):
            type(self).calls += 1
            return super().prox_l2(v, y, gamma, **kw)

    A = Scaled(torch.tensor([1.5], dtype=F64))
    v, y, gamma = tiny(seed=4)
    got = pnpfast.L2(A, y).prox(v, gamma)
    assert Scaled.calls == 1
    assert_close(got, dense_prox(A, v, y, gamma), rtol=1e-6, atol=1e-7)


def test_a_malformed_multiplier_is_an_error_naming_the_operator():
    class Wrong(CircularDifference):
        def fourier_multiplier(self, shape, device, dtype):
            return super().fourier_multiplier(shape, device, dtype)[..., :-1]

    _, y, _ = tiny()
    with pytest.raises(ValueError, match=r"Wrong.fourier_multiplier must return .* \[1 or 2, 1"):
        pnpfast.L2(Wrong(torch.tensor([1.0], dtype=F64)), y)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda y: [[1.0]], TypeError, "y must be a torch.Tensor"),
        (lambda y: y[0], ValueError, r"y must have shape \[B, C, H, W\]"),
        (lambda y: y.masked_fill(y > 1, float("nan")), ValueError, "y contains NaN"),
        (lambda y: y.to(torch.int64), TypeError, "y must have dtype"),
    ],
    ids=["list", "rank", "nan", "int"],
)
def test_bad_measurements(make, error, match):
    _, y, _ = tiny()
    with pytest.raises(error, match=match):
        pnpfast.L2(CircularDifference(torch.tensor([1.0], dtype=F64)), make(y))


def test_images_of_the_wrong_shape_name_the_measured_shape():
    data = pnpfast.L2(Subsample(), torch.randn(2, 1, 4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"v has shape \(2, 1, 4, 3\).*have shape \(2, 1, 4, 6\)"):
        data.prox(torch.randn(2, 1, 4, 3, dtype=F64), 1.0)
    with pytest.raises(ValueError, match=r"x has shape \(1, 1, 4, 6\)"):
        data.grad_step(torch.randn(1, 1, 4, 6, dtype=F64), 1.0)

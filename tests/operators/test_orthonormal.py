"""The OrthonormalOperator base class: its closed-form prox and the shared contract checker."""

import pytest
import torch
from pnpfast_test_utils import check_orthonormal_operator

from pnpfast.operators import OrthonormalOperator


class DenseOrthonormal(OrthonormalOperator):
    """M^T x with M a dense [N, m] matrix of orthonormal columns (QR of a Gaussian matrix)."""

    def __init__(self, shape, m, scale=1.0, seed=0):
        g = torch.Generator().manual_seed(seed)
        n = shape[0] * shape[1] * shape[2]
        self.M, _ = torch.linalg.qr(torch.randn(n, m, generator=g, dtype=torch.float64))
        self.shape, self.scale = shape, scale

    def measure(self, x):
        return x.flatten(1) @ self.M

    def lift(self, c):
        return self.scale * (c @ self.M.T).view(c.shape[0], *self.shape)


def test_dense_orthonormal_meets_the_contract():
    x = torch.randn(3, 2, 3, 5, dtype=torch.float64)
    check_orthonormal_operator(DenseOrthonormal((2, 3, 5), 7), x)


def test_the_checker_catches_a_lift_that_is_not_the_adjoint():
    x = torch.randn(2, 1, 4, 3, dtype=torch.float64)
    with pytest.raises(AssertionError):
        check_orthonormal_operator(DenseOrthonormal((1, 4, 3), 5, scale=1.01), x)


def test_prox_l2_against_a_dense_solve():
    """argmin 1/2 ||M^T x - y||^2 + 1/(2 gamma) ||x - v||^2 by a dense linear solve."""
    A = DenseOrthonormal((1, 3, 4), 5)
    v = torch.randn(2, 1, 3, 4, dtype=torch.float64)
    y = torch.randn(2, 5, dtype=torch.float64)
    gamma = torch.tensor([0.5, 4.0], dtype=torch.float64)
    got = A.prox_l2(v, y, gamma)
    for b in range(2):
        lhs = A.M @ A.M.T + torch.eye(12, dtype=torch.float64) / gamma[b]
        want = torch.linalg.solve(lhs, A.M @ y[b] + v[b].flatten() / gamma[b])
        assert torch.allclose(got[b].flatten(), want, atol=1e-12)


def test_prox_l2_rejects_a_bad_gamma():
    A = DenseOrthonormal((1, 3, 4), 5)
    v = torch.randn(2, 1, 3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="gamma"):
        A.prox_l2(v, A.measure(v), -1.0)

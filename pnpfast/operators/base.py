"""The linear-operator contract and a batched conjugate-gradient prox for operators without a
closed form.

    A.forward(x) (also A(x)), A.adjoint(y),
    A.prox_l2(v, y, gamma) = argmin_x 1/2 ||A x - y||^2 + 1/(2 gamma) ||x - v||^2

gamma is a float or a length-B tensor (one value per image).
"""

import torch

from pnpfast import _validate


class LinearOperator:
    """Base class: subclasses define forward and adjoint; prox_l2 defaults to batched CG."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def prox_l2(
        self, v: torch.Tensor, y: torch.Tensor, gamma, *, max_iter: int = 100, tol: float = 1e-6
    ) -> torch.Tensor:
        """Solve (A^T A + I / gamma) x = A^T y + v / gamma by batched conjugate gradients."""
        _validate.image("v", v)
        _validate.image("y", y)
        _validate.same_device_dtype(v=v, y=y)
        _validate.same_batch(v=v, y=y)
        g = _validate.per_image("gamma", gamma, v.shape[0], v, positive=True).view(-1, 1, 1, 1)
        rhs = self.adjoint(y) + v / g
        return batched_cg(
            lambda x: self.adjoint(self.forward(x)) + x / g, rhs, v, max_iter=max_iter, tol=tol
        )


def batched_cg(
    apply, rhs: torch.Tensor, x0: torch.Tensor, *, max_iter: int, tol: float
) -> torch.Tensor:
    """Conjugate gradients for a symmetric positive-definite ``apply``, each image on its own.

    Per-image step sizes; an image whose residual is under ``tol`` times its right-hand side
    stops moving. Shapes: rhs, x0 [B, ...].
    """

    def dot(a, b):
        return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.dim() - 1)))

    x = x0.clone()
    r = rhs - apply(x)
    p = r.clone()
    rr = dot(r, r)
    stop = (tol * tol) * dot(rhs, rhs)
    for _ in range(max_iter):
        active = rr > stop
        ap = apply(p)
        alpha = torch.where(active, rr / dot(p, ap).clamp_min(torch.finfo(x.dtype).tiny), 0)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        beta = torch.where(active, rr_new / rr.clamp_min(torch.finfo(x.dtype).tiny), 0)
        p = r + beta * p
        rr = rr_new
    return x

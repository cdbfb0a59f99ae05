"""The identity operator: denoising, y = x + noise (deepinv's ``Denoising`` physics).

A = I on images [B, C, H, W]: forward and adjoint return a copy of their argument. It is a
partial isometry (A A^T A = A), so ``prox_l2(v, y, gamma) = argmin_x 1/2 ||x - y||^2 +
1/(2 gamma) ||x - v||^2 = (v + gamma y) / (1 + gamma)`` has its closed form (``LinearOperator``'s
partial-isometry prox), and a PnP solver with it is a denoising loop.
"""

import torch

from pnpfast.operators.base import LinearOperator


class Identity(LinearOperator):
    """A = I on images [B, C, H, W] (denoising); measurements have the image's shape."""

    partial_isometry = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input("x", x)
        return x.clone()

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_input("y", y)
        return y.clone()

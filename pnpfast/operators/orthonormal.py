"""Measurements by a matrix of orthonormal columns, the operators of the implicit-prior sampler.

    A x = M^T x,   A^T c = M c,   M^T M = I,   P = M M^T (the orthogonal projection onto the
    measured subspace; I - P projects onto its complement)

Kadkhodaie & Simoncelli, "Solving linear inverse problems using the prior implicit in a
denoiser", NeurIPS 2021: their constrained sampler needs exactly M^T (``measure``), M (``lift``)
and M M^T (``project``). Because P is a projection, the data prox has a closed form,

    prox_l2(v, y, gamma) = argmin_x 1/2 ||M^T x - y||^2 + 1/(2 gamma) ||x - v||^2
                         = v + gamma / (1 + gamma) (M y - P v),

since (P + I / gamma)^-1 = gamma (I - P) + gamma / (1 + gamma) P and P M y = M y.
"""

import torch

from pnpfast import _validate
from pnpfast.operators.base import LinearOperator


class OrthonormalOperator(LinearOperator):
    """Base class: subclasses define ``measure`` (M^T x) and ``lift`` (M c); ``project`` may be
    overridden by a cheaper P x. ``forward`` is ``measure``, ``adjoint`` is ``lift``, ``gram``
    is ``project``, and ``prox_l2`` takes the closed form of the module docstring (A = M^T is a
    partial isometry, see ``LinearOperator``)."""

    partial_isometry = True

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """M^T x: the orthonormal coefficients of x in the measured subspace."""
        raise NotImplementedError

    def lift(self, c: torch.Tensor) -> torch.Tensor:
        """M c: the image of the coefficients c (an element of the measured subspace)."""
        raise NotImplementedError

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """M M^T x: the orthogonal projection of x onto the measured subspace."""
        return self.lift(self.measure(x))

    def fused_projection(self, like: torch.Tensor) -> dict:
        """How pnpfast.ops.constrained_step applies P to images like ``like`` [B, C, H, W]:
        {"mask": [Bm, 1, H, W] in like's dtype} for a pixel mask, {"factor": s} for s x s
        block means, or {} (the default) when P x must come from ``project``."""
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.measure(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.lift(y)

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        """A^T A x = P x (``project``)."""
        return self.project(x)

    def image_shape(self, y: torch.Tensor, name: str = "y") -> tuple[int, ...]:
        """The shape of the images measured by y: that of M y (subclasses check y without
        lifting it)."""
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor (coefficients), not {type(y).__name__}")
        return tuple(self.lift(y).shape)


class SizedOrthonormalOperator(OrthonormalOperator):
    """An orthonormal operator built for one image size (H, W): given to the constructor as
    ``shape=`` or taken from the first image it sees; an image of another size is an error.
    Subclasses define ``_set_shape((H, W), source)``, which builds what the size needs and sets
    ``self._shape`` and ``self._shape_from``, and call ``_check_size`` on every image."""

    _shape: tuple[int, int] | None = None
    _shape_from: str | None = None

    def _set_shape(self, shape: tuple[int, int], source: str) -> None:
        raise NotImplementedError

    def _check_size(self, name: str, H: int, W: int) -> None:
        if self._shape is None:
            self._set_shape((H, W), f"the first image ({name})")
        elif self._shape != (H, W):
            h, w = self._shape
            raise ValueError(
                f"{name} has size {H}x{W} but this {type(self).__name__} is built for {h}x{w} "
                f"(from {self._shape_from}); make another operator for another size"
            )

    def _require_shape(self, why: str = "") -> tuple[int, int]:
        if self._shape is None:
            raise ValueError(
                f"the image size is not known yet{why}: pass shape=(H, W) to "
                f"{type(self).__name__} or measure/project an image first"
            )
        return self._shape

    def _count(self) -> int:
        """The number of coefficients per image and channel (the size must be known)."""
        raise NotImplementedError

    def image_shape(self, y: torch.Tensor, name: str = "y") -> tuple[int, ...]:
        """[B, C, H, W] for coefficients y [B, C, count]; a ValueError naming ``name`` when y
        has another shape or when the image size (H, W) is not known yet."""
        H, W = self._require_shape(f" ({name} holds coefficients, not an image)")
        check_coefficients(name, y, self._count())
        return (y.shape[0], y.shape[1], H, W)

    @property
    def shape(self) -> tuple[int, int] | None:
        """(H, W) the operator is built for, None until given or seen."""
        return self._shape


def check_coefficients(name: str, c, count: int) -> None:
    """Raise, naming ``name``, unless c is a float32/float64 tensor [B, C, count] that holds
    data (B, C >= 1, not on the meta device)."""
    if not isinstance(c, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [B, C, {count}], not {type(c).__name__}"
        )
    if c.dim() != 3 or c.shape[-1] != count:
        raise ValueError(f"{name} must have shape [B, C, {count}], got shape {tuple(c.shape)}")
    if c.dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, not {str(c.dtype).removeprefix('torch.')}"
        )
    _validate.not_empty(name, c)

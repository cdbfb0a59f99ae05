"""Super-resolution by s x s block averages, normalised to orthonormal columns.

    (M^T x)[b, c, i, j] = 1/s * sum_{0 <= p, q < s} x[b, c, s i + p, s j + q]   (= s * block mean)
    (M c)[b, c, s i + p, s j + q] = c[b, c, i, j] / s
    (P x)[b, c, s i + p, s j + q] = mean of x over the block (i, j)

Column (i, j) of M is 1/s on the s^2 pixels of block (i, j) and 0 elsewhere, so the columns are
orthonormal (M^T M = I) and P = M M^T replaces every block by its mean. The ordinary
low-resolution image (block means) is M^T x / s; ``low_res`` and ``from_low_res`` convert
between the two.

The super-resolution operator of Kadkhodaie & Simoncelli, "Solving linear inverse problems
using the prior implicit in a denoiser", NeurIPS 2021.
"""

import torch
import torch.nn.functional as F

from pnpfast import _validate
from pnpfast.operators.orthonormal import OrthonormalOperator


class BlockAverage(OrthonormalOperator):
    """Averages over s x s blocks, ``factor`` = s an int >= 1 (e.g. 2, 4, 8).

    Images x are [B, C, H, W] float32/float64 with H and W divisible by s; coefficients are
    [B, C, H / s, W / s]. ``measure`` gives s times the block means, ``low_res`` the block means
    themselves.
    """

    def __init__(self, factor: int):
        self.factor = _validate.integer("factor", factor, 1)

    def check_input(self, name: str, x: torch.Tensor) -> None:
        """Raise if x is not an image whose size is divisible by the factor."""
        _validate.image(name, x, finite=False)
        H, W = x.shape[-2:]
        s = self.factor
        if H % s or W % s:
            raise ValueError(
                f"{name} has size {H}x{W}, which is not divisible by the factor {s} (H and W must both be)"
            )

    def image_shape(self, y: torch.Tensor, name: str = "y") -> tuple[int, ...]:
        """[B, C, s h, s w] for coefficients y [B, C, h, w] (a ValueError naming ``name`` if y is
        not a [B, C, h, w] float32/float64 tensor)."""
        _validate.image(name, y, finite=False)
        B, C, h, w = y.shape
        return (B, C, h * self.factor, w * self.factor)

    def low_res(self, x: torch.Tensor) -> torch.Tensor:
        """The usual low-resolution image, the mean of each s x s block = M^T x / s.
        x: [B, C, H, W]; returns [B, C, H / s, W / s]."""
        self.check_input("x", x)
        return F.avg_pool2d(x, self.factor)

    def from_low_res(self, lr: torch.Tensor) -> torch.Tensor:
        """The coefficients M^T x of an image x whose block means are the low-resolution image
        lr: s * lr. lr: [B, C, h, w]; returns [B, C, h, w]. Use it to build the measurement y
        from an ordinary low-resolution image."""
        _validate.image("lr", lr, finite=False)
        return self.factor * lr

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """M^T x = (sum over each s x s block) / s. x: [B, C, H, W]; returns [B, C, H/s, W/s]."""
        return self.factor * self.low_res(x)

    def lift(self, c: torch.Tensor) -> torch.Tensor:
        """M c = nearest-neighbour upsampling of c by s, divided by s.
        c: [B, C, h, w]; returns [B, C, s h, s w]."""
        _validate.image("c", c, finite=False)
        return self._upsample(c / self.factor)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """M M^T x: each s x s block replaced by its mean. x: [B, C, H, W]."""
        return self._upsample(self.low_res(x))

    def fused_projection(self, like: torch.Tensor) -> dict:
        """P = s x s block means (see OrthonormalOperator)."""
        self.check_input("like", like)
        return {"factor": self.factor}

    def _upsample(self, t: torch.Tensor) -> torch.Tensor:
        """Nearest-neighbour upsampling by s: [B, C, h, w] -> [B, C, s h, s w]."""
        s = self.factor
        B, C, h, w = t.shape
        return t[:, :, :, None, :, None].expand(B, C, h, s, w, s).reshape(B, C, h * s, w * s)

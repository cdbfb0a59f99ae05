"""Forward models: forward, adjoint, prox_l2 (and, for the sampler, an orthonormal view)."""

from pnpfast.operators.base import LinearOperator, batched_cg
from pnpfast.operators.block_average import BlockAverage
from pnpfast.operators.blur import Blur
from pnpfast.operators.inpainting import Inpainting
from pnpfast.operators.orthonormal import OrthonormalOperator

__all__ = [
    "BlockAverage",
    "Blur",
    "Inpainting",
    "LinearOperator",
    "OrthonormalOperator",
    "batched_cg",
]

"""Forward models: forward, adjoint, prox_l2 (and, for the sampler, an orthonormal view);
``from_spec("sr:bicubic:x2")`` builds one from a name and a few numbers."""

from pnpfast.operators.base import LinearOperator, batched_cg
from pnpfast.operators.block_average import BlockAverage
from pnpfast.operators.blur import Blur
from pnpfast.operators.compressive_sensing import CompressiveSensing
from pnpfast.operators.identity import Identity
from pnpfast.operators.inpainting import Inpainting
from pnpfast.operators.orthonormal import OrthonormalOperator
from pnpfast.operators.spec import OperatorSpec, from_spec
from pnpfast.operators.spectral_lowpass import SpectralLowpass
from pnpfast.operators.super_resolution import SuperResolution

__all__ = [
    "BlockAverage",
    "Blur",
    "CompressiveSensing",
    "Identity",
    "Inpainting",
    "LinearOperator",
    "OperatorSpec",
    "OrthonormalOperator",
    "SpectralLowpass",
    "SuperResolution",
    "batched_cg",
    "from_spec",
]

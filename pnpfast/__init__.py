"""pnpfast: fast, fused Plug-and-Play image restoration.

    import pnpfast
    A = pnpfast.operators.Blur(kernel)
    result = pnpfast.solve(y, A, pnpfast.denoisers.load("bfcnn", weights=path), method="hqs", sigma=0.03)

Importing pnpfast never imports triton and never touches CUDA.
"""

from pnpfast import denoisers, metrics, operators, ops
from pnpfast.dispatch import BackendError, backends
from pnpfast.fidelity import L2
from pnpfast.solvers import Result, SampleResult, sample, solve

__version__ = "0.1.0"
__all__ = [
    "L2",
    "BackendError",
    "Result",
    "SampleResult",
    "backends",
    "denoisers",
    "metrics",
    "operators",
    "ops",
    "sample",
    "solve",
]

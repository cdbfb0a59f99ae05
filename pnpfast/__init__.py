"""pnpfast: fast, fused Plug-and-Play image restoration.

    import pnpfast
    x = pnpfast.data.astronaut(128)
    A = pnpfast.operators.Blur(pnpfast.data.motion_kernel())
    result = pnpfast.solve(A(x), A, pnpfast.denoisers.load(), method="hqs", sigma=0.01)

Every public module is an attribute: the solver API (``denoisers``, ``operators``, ``ops``,
``solvers``, ``metrics``, ``fidelity``, ``dispatch``, ``profiling``) is imported with the
package; ``cli``, ``data``, ``diagnostics``, ``functional`` (plain-tensor steps for hand-written
loops), ``interop`` (other PnP libraries), ``io``, ``kernels``, ``runner`` (production runs)
and ``train`` on first use (module ``__getattr__``, PEP 562), and so is ``pnpfast.restore``
(``pnpfast.runner.run.restore``). Importing pnpfast, or touching any of these namespaces,
never imports triton and never touches CUDA: triton is imported by the modules inside
``pnpfast.kernels`` only, when the triton backend runs.
"""

import importlib as _importlib

from pnpfast import denoisers, dispatch, fidelity, metrics, operators, ops, profiling, solvers
from pnpfast.dispatch import BackendError, backends
from pnpfast.fidelity import L2
from pnpfast.solvers import Result, SampleResult, sample, solve

__version__ = "0.1.0"

# public modules imported on first attribute access
_LAZY_SUBMODULES = (
    "cli",
    "data",
    "diagnostics",
    "functional",
    "interop",
    "io",
    "kernels",
    "runner",
    "train",
)

__all__ = [
    "L2",
    "BackendError",
    "Result",
    "SampleResult",
    "backends",
    "cli",
    "data",
    "denoisers",
    "diagnostics",
    "dispatch",
    "fidelity",
    "functional",
    "interop",
    "io",
    "kernels",
    "metrics",
    "operators",
    "ops",
    "profiling",
    "restore",
    "runner",
    "sample",
    "solve",
    "solvers",
    "train",
]


def __getattr__(name: str):
    if name == "restore":  # the production runner's entry point, imported on first use
        return _importlib.import_module(f"{__name__}.runner.run").restore
    if name in _LAZY_SUBMODULES:
        # import_module binds the submodule as an attribute, so this runs once per name
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBMODULES, "restore"})

"""One dispatcher for every fused op: pick cuda, then triton, then reference, per call.

A backend runs a call when it is available (its code can be imported) and its check accepts
the inputs (device, dtype, contiguity, sizes). A backend asked for by name (``backend=`` or
PNPFAST_BACKEND) raises BackendError when it cannot run; the automatic choice falls back and
logs the reason once per (op, backend, reason).

Checks are pure and fail closed: an op that registers no check for a backend never runs there.
"""

import functools
import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pnpfast import _env

log = logging.getLogger("pnpfast")

Check = Callable[..., str | None]


class BackendError(RuntimeError):
    """A backend that was asked for by name cannot run this call."""


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    reason: str  # why not, or what it is when available


@functools.cache
def _cuda_extension_error() -> str | None:
    try:
        importlib.import_module("pnpfast._C")
    except ImportError as exc:
        return f"the CUDA extension pnpfast._C is not built ({exc})"
    return None


def _triton_error() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    return None


def backend_status(name: str) -> BackendStatus:
    if name == "reference":
        return BackendStatus(name, True, "pure PyTorch, any device and dtype")
    if name == "triton":
        err = _triton_error()
        if err:
            return BackendStatus(name, False, err)
        where = "CUDA tensors" + (
            ", CPU tensors through the interpreter" if _env.triton_interpreter() else ""
        )
        return BackendStatus(name, True, where)
    if name == "cuda":
        err = _cuda_extension_error()
        if err:
            return BackendStatus(name, False, err)
        return BackendStatus(name, True, "pnpfast._C, CUDA tensors")
    raise ValueError(f"backend must be one of {', '.join(_env.BACKEND_NAMES)}, not {name!r}")


def backends() -> dict[str, BackendStatus]:
    """What each backend can do on this machine, and why not where it cannot.

    Imports nothing heavy: triton is looked up, not imported; pnpfast._C is imported if built.
    """
    return {name: backend_status(name) for name in _env.BACKEND_NAMES}


def _device_check(name: str, tensors: list[torch.Tensor], explicit: bool) -> str | None:
    devices = {t.device.type for t in tensors}
    if name == "cuda":
        return None if devices == {"cuda"} else "the cuda backend needs CUDA tensors"
    if name == "triton":
        if devices == {"cuda"}:
            return None
        if devices == {"cpu"} and _env.triton_interpreter():
            # The interpreter is a test harness (about 1 ms per program): only on request.
            return None if explicit else "CPU tensors use triton only when asked for by name"
        return "the triton backend needs CUDA tensors (or TRITON_INTERPRET=1 on the CPU)"
    return None


class FusedOp:
    """A fused op with a reference and optional fast paths, dispatched per call.

    ``impls`` maps a backend name to ``(function, check)``; the reference needs no check.
    Every function takes the same positional tensors; ``check`` returns None when it accepts
    them and a reason otherwise.
    """

    def __init__(self, name: str, reference: Callable, impls: dict[str, tuple[Callable, Check]]):
        self.name = name
        self.reference = reference
        self.impls = impls
        self._logged: set[tuple[str, str]] = set()

    def _reason(self, backend: str, args: tuple, explicit: bool) -> str | None:
        if backend == "reference":
            return None
        status = backend_status(backend)
        if not status.available:
            return status.reason
        if backend not in self.impls:
            return f"{self.name} has no {backend} implementation"
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        reason = _device_check(backend, tensors, explicit)
        if reason:
            return reason
        return self.impls[backend][1](*args)

    def select(self, args: tuple, backend: str | None = None) -> str:
        """The name of the backend that runs this call."""
        explicit = backend if backend is not None else _env.forced_backend()
        if explicit is not None:
            if explicit not in _env.BACKEND_NAMES:
                raise ValueError(
                    f"backend must be one of {', '.join(_env.BACKEND_NAMES)}, not {explicit!r}"
                )
            reason = self._reason(explicit, args, explicit=True)
            if reason:
                raise BackendError(
                    f"{self.name}: backend {explicit!r} cannot run this call: {reason}"
                )
            return explicit
        for name in _env.BACKEND_NAMES:
            reason = self._reason(name, args, explicit=False)
            if reason is None:
                return name
            self._log_once(name, reason)
        return "reference"

    def _log_once(self, backend: str, reason: str) -> None:
        key = (backend, reason)
        if key not in self._logged:
            self._logged.add(key)
            log.info("pnpfast: %s skips the %s backend: %s", self.name, backend, reason)

    def __call__(self, *args, backend: str | None = None):
        chosen = self.select(args, backend)
        if chosen == "reference":
            return self.reference(*args)
        return self.impls[chosen][0](*args)

"""One dispatcher for every fused op: pick cuda, then triton, then reference, per call.

A backend runs a call when it is available (its code can be imported) and its check accepts
the inputs (device, dtype, contiguity, sizes). A backend asked for by name (``backend=`` or
PNPFAST_BACKEND) raises BackendError when it cannot run; the automatic choice falls back and
logs the reason once per (op, backend, reason).

Checks are pure and fail closed: an op that registers no check for a backend never runs there.

A call costs a few microseconds on top of its backend: whether triton and pnpfast._C can be
imported is looked up once per process (``clear_caches`` forgets it), PNPFAST_BACKEND is read
per call (a dictionary look-up, so tests may set it at any time), and the device of each tensor
argument is read once per call.
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


@functools.cache
def _triton_error() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    return None


# Why a backend's code cannot run in this process (None when it can); each looked up once.
_UNAVAILABLE: dict[str, Callable[[], str | None]] = {
    "cuda": _cuda_extension_error,
    "triton": _triton_error,
    "reference": lambda: None,
}


def clear_caches() -> None:
    """Forget what was looked up once per process: whether triton and pnpfast._C import, and
    TRITON_INTERPRET (for tests that change them; nothing else needs this)."""
    _cuda_extension_error.cache_clear()
    _triton_error.cache_clear()
    _env.triton_interpreter.cache_clear()


def backend_status(name: str) -> BackendStatus:
    """Whether backend ``name`` can run here, and why not; TypeError/ValueError for a name
    that is not one of ``BACKEND_NAMES``."""
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a str, one of {', '.join(_env.BACKEND_NAMES)}, not "
            f"{type(name).__name__}"
        )
    if name not in _UNAVAILABLE:
        raise ValueError(f"backend must be one of {', '.join(_env.BACKEND_NAMES)}, not {name!r}")
    err = _UNAVAILABLE[name]()
    if err:
        return BackendStatus(name, False, err)
    if name == "reference":
        return BackendStatus(name, True, "pure PyTorch, any device and dtype")
    if name == "triton":
        where = "CUDA tensors" + (
            ", CPU tensors through the interpreter" if _env.triton_interpreter() else ""
        )
        return BackendStatus(name, True, where)
    return BackendStatus(name, True, "pnpfast._C, CUDA tensors")


def backends() -> dict[str, BackendStatus]:
    """What each backend can do on this machine, and why not where it cannot.

    Imports nothing heavy: triton is looked up, not imported; pnpfast._C is imported if built.
    """
    return {name: backend_status(name) for name in _env.BACKEND_NAMES}


def _devices(args: tuple) -> tuple[bool, bool]:
    """(all on CUDA, all on the CPU) for the tensor arguments of a call (False, False without
    tensors). is_cuda / is_cpu are plain flags; reading .device builds a torch.device each."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if not tensors:
        return False, False
    return all(t.is_cuda for t in tensors), all(t.is_cpu for t in tensors)


def _device_check(name: str, devices: tuple[bool, bool], explicit: bool) -> str | None:
    all_cuda, all_cpu = devices
    if name == "cuda":
        return None if all_cuda else "the cuda backend needs CUDA tensors"
    if name == "triton":
        if all_cuda:
            return None
        if all_cpu and _env.triton_interpreter():
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

    def _reason(
        self, backend: str, args: tuple, devices: tuple[bool, bool], explicit: bool
    ) -> str | None:
        if backend == "reference":
            return None
        unavailable = _UNAVAILABLE[backend]()
        if unavailable:
            return unavailable
        if backend not in self.impls:
            return f"{self.name} has no {backend} implementation"
        reason = _device_check(backend, devices, explicit)
        if reason:
            return reason
        return self.impls[backend][1](*args)

    def select(self, args: tuple, backend: str | None = None) -> str:
        """The name of the backend that runs this call."""
        explicit = backend if backend is not None else _env.forced_backend()
        devices = _devices(args)
        if explicit is not None:
            if not isinstance(explicit, str):
                raise TypeError(
                    f"backend must be a str, one of {', '.join(_env.BACKEND_NAMES)}, not "
                    f"{type(explicit).__name__}"
                )
            if explicit not in _UNAVAILABLE:
                raise ValueError(
                    f"backend must be one of {', '.join(_env.BACKEND_NAMES)}, not {explicit!r}"
                )
            reason = self._reason(explicit, args, devices, explicit=True)
            if reason:
                raise BackendError(
                    f"{self.name}: backend {explicit!r} cannot run this call: {reason}"
                )
            return explicit
        for name in _env.BACKEND_NAMES:
            reason = self._reason(name, args, devices, explicit=False)
            if reason is None:
                return name
            self._log_once(name, reason)
        return "reference"

    def _log_once(self, backend: str, reason: str) -> None:
        key = (backend, reason)
        if key not in self._logged:
            self._logged.add(key)
            log.info("pnpfast: %s skips the %s backend: %s", self.name, backend, reason)

    def __call__(self, *args, backend: str | None = None, **reference_options):
        """Run the call on the selected backend; ``reference_options`` are keyword options that
        only the reference takes (sr_prox's overwrite_v), dropped on a fast path."""
        chosen = self.select(args, backend)
        if chosen == "reference":
            return self.reference(*args, **reference_options)
        return self.impls[chosen][0](*args)

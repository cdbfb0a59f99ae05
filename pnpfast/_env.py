"""Every environment variable pnpfast reads, in one place (the README lists them in one table).

PNPFAST_BACKEND     reference | triton | cuda: force one backend for every fused op.
TRITON_INTERPRET    1 (or true, yes, on): Triton runs on the CPU through its interpreter (tests
                    on a CPU machine); 0, false, no, off or empty: it does not. Read as Triton
                    reads it; any other value is a ValueError naming the variable.
PNPFAST_BUILD_CUDA  auto | 0 | 1: read by setup.py only, when the CUDA extension is built.
PNPFAST_CACHE       the folder of downloaded public weights (default ~/.cache/pnpfast).
PNPFAST_OFFLINE     1, true, yes or on: never download; 0, false, no, off or empty: download
                    when needed (case and surrounding spaces ignored; another value is a
                    ValueError naming the variable).
PNPFAST_TRACEBACK   1 (or true, yes, on): the command line prints the whole traceback of an
                    unexpected error instead of its one-line summary (for bug reports).
"""

import functools
import os

BACKEND_NAMES = ("cuda", "triton", "reference")
# the values Triton's getenv_bool takes (case-insensitive, no surrounding spaces)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def forced_backend() -> str | None:
    """The backend named by PNPFAST_BACKEND, or None when unset or empty.

    Read on every call (one dictionary look-up when unset), so a change takes effect at once.
    """
    value = os.environ.get("PNPFAST_BACKEND")
    if not value:
        return None
    value = value.strip().lower()
    if not value:
        return None
    if value not in BACKEND_NAMES:
        raise ValueError(
            f"PNPFAST_BACKEND must be one of {', '.join(BACKEND_NAMES)}, not {value!r}"
        )
    return value


@functools.cache
def triton_interpreter() -> bool:
    """True when TRITON_INTERPRET asks for the Triton CPU interpreter.

    Read once per process: Triton reads it when its kernels are first defined, so a later
    change would not reach Triton anyway (``pnpfast.dispatch.clear_caches`` forgets it).
    """
    value = os.environ.get("TRITON_INTERPRET", "0")
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    # Triton would read such a value as false; refusing it keeps pnpfast and Triton agreeing
    # and the caller's intent visible
    raise ValueError(
        f"TRITON_INTERPRET must be 1, true, yes or on (run Triton on the CPU) or 0, false, no, "
        f"off or empty, not {value!r}"
    )


def offline() -> bool:
    """Whether PNPFAST_OFFLINE asks never to download (read on every call)."""
    return _switch("PNPFAST_OFFLINE", "never download")


def cache_folder() -> str:
    """PNPFAST_CACHE, or ``~/.cache/pnpfast`` when it is unset or empty (``~`` not expanded)."""
    return os.environ.get("PNPFAST_CACHE") or "~/.cache/pnpfast"


def cli_traceback() -> bool:
    """Whether PNPFAST_TRACEBACK asks the command line for full tracebacks (read on every call)."""
    return _switch("PNPFAST_TRACEBACK", "print tracebacks")


def torchrun_rank() -> tuple[int, int]:
    """(rank, world_size) from torchrun's RANK and WORLD_SIZE (default 0 and 1)."""
    rank, world_size = _integer("RANK", 0, default=0), _integer("WORLD_SIZE", 1, default=1)
    if rank >= world_size:
        raise ValueError(
            f"the environment variable RANK must be below WORLD_SIZE ({world_size}), not {rank}"
        )
    return rank, world_size


def torchrun_device(device: str) -> str:
    """``cuda`` under torchrun is this process's GPU: ``cuda:LOCAL_RANK`` (one device per rank);
    any other device, or no LOCAL_RANK, is kept."""
    if device != "cuda":
        return device
    local_rank = _integer("LOCAL_RANK", 0)
    return device if local_rank is None else f"cuda:{local_rank}"


def _integer(name: str, low: int, default: int | None = None) -> int | None:
    """The integer >= ``low`` in the variable ``name``; ``default`` when unset or empty
    (surrounding spaces ignored); any other value is a ValueError naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise ValueError(
            f"the environment variable {name} must be an integer >= {low}, not {text!r}"
        )
    return value


def _switch(name: str, meaning: str) -> bool:
    """An on/off variable: 1, true, yes or on; 0, false, no, off, empty or unset (case and
    surrounding spaces ignored); any other value is a ValueError naming the variable."""
    value = os.environ.get(name, "")
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ValueError(
        f"{name} must be 1, true, yes or on ({meaning}) or 0, false, no, off or empty, "
        f"not {value!r}"
    )

"""Every environment variable pnpfast reads, in one place (the README lists them in one table).

PNPFAST_BACKEND     reference | triton | cuda: force one backend for every fused op.
TRITON_INTERPRET    1: Triton runs on the CPU through its interpreter (tests on a CPU machine).
PNPFAST_BUILD_CUDA  auto | 0 | 1: read by setup.py only, when the CUDA extension is built.
"""

import functools
import os

BACKEND_NAMES = ("cuda", "triton", "reference")


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
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in {"", "0"}

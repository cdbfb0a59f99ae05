"""Every environment variable pnpfast reads, in one place (the README lists them in one table).

PNPFAST_BACKEND     reference | triton | cuda: force one backend for every fused op.
TRITON_INTERPRET    1: Triton runs on the CPU through its interpreter (tests on a CPU machine).
PNPFAST_BUILD_CUDA  auto | 0 | 1: read by setup.py only, when the CUDA extension is built.
"""

import os

BACKEND_NAMES = ("cuda", "triton", "reference")


def forced_backend() -> str | None:
    """The backend named by PNPFAST_BACKEND, or None when unset or empty."""
    value = os.environ.get("PNPFAST_BACKEND", "").strip().lower()
    if not value:
        return None
    if value not in BACKEND_NAMES:
        raise ValueError(
            f"PNPFAST_BACKEND must be one of {', '.join(BACKEND_NAMES)}, not {value!r}"
        )
    return value


def triton_interpreter() -> bool:
    """True when TRITON_INTERPRET asks for the Triton CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in {"", "0"}

"""Read a file written by ``torch.save`` safely, with errors that name the file and say what is
wrong with it: missing, a directory, empty, a text file, a truncated or damaged archive, or
tensors holding NaN or Inf. Used by both readers of weight files, ``weight_file`` (pnpfast's
own format) and ``public`` (other projects' state dicts).
"""

import argparse
import os
import zipfile
from collections.abc import Mapping

import torch

__all__ = ["check_finite", "load_torch_file"]

_ZIP_MAGIC = b"PK\x03\x04"

# the bias_free_denoising files pickle their training arguments; allowed once per process
torch.serialization.add_safe_globals([argparse.Namespace])


def _what_is_wrong(path: str) -> tuple[str, bool]:
    """A guess, from the bytes, at why ``torch.load`` could not read ``path``, and whether the
    guess says it all (else torch's own message is worth appending)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return (
                f"a truncated torch file ({size} bytes; the zip directory at its end is missing)",
                True,
            )
        return f"a damaged torch file ({size} bytes; its zip archive does not read back)", False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return "a text file, not a file written by torch.save", True
    return "not a file written by torch.save (nor a readable legacy torch file)", False


def load_torch_file(path: str | os.PathLike) -> object:
    """``torch.load(path, map_location="cpu", weights_only=True)`` (no code runs; an
    ``argparse.Namespace`` is allowed, as training checkpoints hold one).

    Errors name the file: FileNotFoundError when it does not exist; ValueError for a directory,
    an empty file, a text file, a truncated or damaged archive, or anything else ``torch.load``
    refuses (its message is appended).
    """
    path = os.fspath(path)
    if not path:
        raise FileNotFoundError("weights file not found: the path is empty ('')")
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"weights must be a file, {path} is a directory")
    if os.path.getsize(path) == 0:
        raise ValueError(f"weights {path} is an empty file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises anything (KeyError, OSError, ...) on bad bytes
        reason, explained = _what_is_wrong(path)
        detail = str(err).splitlines()[0] if str(err) else ""
        why = "" if explained else f" ({type(err).__name__}: {detail})"
        raise ValueError(f"weights {path} could not be read: it is {reason}{why}") from err


def check_finite(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """ValueError naming ``path`` and the tensors when a floating tensor of ``state`` holds NaN
    or Inf (such weights make every output NaN)."""
    bad = [
        f"{key} ({int((~torch.isfinite(value)).sum())} of {value.numel()})"
        for key, value in state.items()
        if (value.is_floating_point() or value.is_complex()) and not bool(value.isfinite().all())
    ]
    if bad:
        shown = ", ".join(bad[:8]) + (f", ... ({len(bad) - 8} more)" if len(bad) > 8 else "")
        raise ValueError(
            f"weights {os.fspath(path)} hold NaN or Inf values in {len(bad)} tensor(s): {shown}"
        )

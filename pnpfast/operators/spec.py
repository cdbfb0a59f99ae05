"""Operators from a name and a few numbers: what the command line and the production runner take.

    from_spec("sr:bicubic:x2")                      # SuperResolution.bicubic(2)
    from_spec("sr:gaussian:x3:std=1.6")             # SuperResolution.gaussian(3, 1.6)
    from_spec("sr:k.npy:x4")                        # SuperResolution(read_kernel("k.npy"), 4)
    from_spec("blur:levin.mat:key=kernels:index=2") # Blur(read_kernel(..., key=, index=))
    from_spec({"name": "super-resolution", "factor": 2, "kernel": "gaussian", "std": 2.0})

Text form: ``NAME[:FIELD]...``, each FIELD ``KEY=VALUE``, ``xN`` (the factor) or a bare kernel
(``bicubic``, ``gaussian`` or a kernel file; ``kernel=FILE`` for a file named like ``x2.5``,
the mapping form for a path holding ``:``). Mapping form (a JSON manifest row): the same fields
as keys, values of their own types (factor and index ints, std a number). Fields:

    name    "sr" (alias "super-resolution"): y = (k * x) decimated by factor (SuperResolution)
            "blur" (alias "deblur"): y = k * x, circular (Blur)
    kernel  sr: "bicubic" (MATLAB imresize's, the default), "gaussian", or a kernel file;
            blur: a kernel file. Files are read by ``pnpfast.io.read_kernel`` (.npy, .png, .mat).
    factor  sr only: an int >= 1 (required)
    std     sr with kernel "gaussian" only: the width in high-resolution pixels (default: factor)
    key     kernel files (.mat) only: the MATLAB variable
    index   kernel files only: which kernel of a stack or cell array, from 0 (default 0)

``OperatorSpec`` is the parsed, checked form; ``str(spec)`` is its canonical text, which parses
back to an equal spec (a run can record it and compare it with another run's). Nothing is read
until ``build()`` (or ``kernel_tensor()``). Errors name the field and list what it accepts:
TypeError for a value of the wrong type in a mapping, ValueError for a wrong value (any problem
in the text form, whose values are all text), ``pnpfast.io.KernelReadError`` (a ValueError) for
a kernel file that cannot be read.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch

from pnpfast import _validate
from pnpfast.operators.base import LinearOperator
from pnpfast.operators.blur import Blur
from pnpfast.operators.super_resolution import SuperResolution, bicubic_kernel, gaussian_kernel

NAMES = {"sr": "sr", "super-resolution": "sr", "blur": "blur", "deblur": "blur"}
NAMED_KERNELS = ("bicubic", "gaussian")
_ACCEPTED_NAMES = "'sr' (or 'super-resolution'), 'blur' (or 'deblur')"
_FACTOR = re.compile(r"x\d+(?:\.\d*)?")  # x2; x2.5 too, to refuse it as a factor


@dataclass(frozen=True)
class OperatorSpec:
    """A forward model by name and numbers; see the module docstring for the fields.

    ``OperatorSpec(name, kernel=None, factor=None, std=None, key=None, index=0)`` checks every
    field and fills the defaults (sr: kernel "bicubic"); ``OperatorSpec.parse(text)`` reads the
    text form; ``build()`` returns the operator."""

    name: str
    kernel: str | None = None
    factor: int | None = None
    std: float | None = None
    key: str | None = None
    index: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, one of {_ACCEPTED_NAMES}, not {_kind(self.name)}")
        name = NAMES.get(self.name.strip().lower())
        if name is None:
            raise ValueError(f"name must be one of {_ACCEPTED_NAMES}, not {self.name!r}")
        object.__setattr__(self, "name", name)
        kernel = self.kernel
        if isinstance(kernel, os.PathLike):
            kernel = os.fspath(kernel)
        if kernel is None and name == "sr":
            kernel = "bicubic"
        if not isinstance(kernel, str) or not kernel:
            accepted = "'bicubic', 'gaussian' or a kernel file" if name == "sr" else "a kernel file"
            if kernel is None:
                raise ValueError(f"kernel is required for {name}: {accepted} (.npy, .png, .mat)")
            if isinstance(kernel, str):
                raise ValueError(f"kernel must be {accepted}, not an empty string")
            raise TypeError(f"kernel must be {accepted}, as a str or path, not {_kind(kernel)}")
        if kernel.strip().lower() in NAMED_KERNELS:
            kernel = kernel.strip().lower()
        elif name == "sr" and not os.path.splitext(kernel)[1]:  # a misspelt name, not a file
            raise ValueError(
                f"kernel must be 'bicubic', 'gaussian' or a kernel file (.npy, .png, .mat), "
                f"not {kernel!r}"
            )
        object.__setattr__(self, "kernel", kernel)
        named = kernel in NAMED_KERNELS
        if named and name == "blur":
            raise ValueError(
                f"kernel {kernel!r} is a super-resolution kernel; blur takes a kernel file "
                "(.npy, .png, .mat)"
            )

        if name == "sr":
            if self.factor is None:
                raise ValueError("factor is required for sr: an int >= 1 (text form: x2, x3, ...)")
            object.__setattr__(self, "factor", _validate.integer("factor", self.factor, 1))
        elif self.factor not in (None, 1) or isinstance(self.factor, bool):
            raise ValueError(f"factor applies to sr only, not to {name} (got {self.factor!r})")
        else:
            object.__setattr__(self, "factor", None)

        if self.std is not None:
            if kernel != "gaussian":
                raise ValueError(f"std applies to kernel 'gaussian' only, not to {kernel!r}")
            std = _validate.number("std", self.std, 0, 1e4, low_open=True, hint="(pixels)")
            object.__setattr__(self, "std", std)

        if self.key is not None and not isinstance(self.key, str):
            raise TypeError(f"key must be a str (a MATLAB variable name), not {_kind(self.key)}")
        index = _validate.integer("index", self.index, 0)
        object.__setattr__(self, "index", index)
        if named and (self.key is not None or index):
            raise ValueError(
                f"key and index apply to kernel files only, not to the named kernel {kernel!r}"
            )

    @classmethod
    def parse(cls, text: str) -> "OperatorSpec":
        """The spec written ``NAME[:FIELD]...`` (see the module docstring): ``"sr:bicubic:x2"``,
        ``"sr:gaussian:x3:std=1.6"``, ``"blur:k.mat:key=kernels:index=1"``. Raises ValueError
        naming the field for anything it cannot read."""
        if not isinstance(text, str):
            raise TypeError(f"spec must be a str such as 'sr:bicubic:x2', not {_kind(text)}")
        name, *parts = text.split(":")
        if not name.strip():
            raise ValueError(
                f"spec {text!r} has no operator name: write NAME[:FIELD]..., NAME one of "
                f"{_ACCEPTED_NAMES}, e.g. 'sr:bicubic:x2'"
            )
        given: dict[str, str] = {}
        for part in parts:
            key, sep, value = part.partition("=")
            if sep:
                key = key.strip()
            elif _FACTOR.fullmatch(part.strip()):
                key, value = "factor", part.strip()[1:]
            else:
                key, value = "kernel", part
            if key not in _FIELDS or key == "name":
                raise ValueError(
                    f"spec {text!r}: unknown field {key!r}; fields: {', '.join(_FIELDS[1:])} "
                    "(KEY=VALUE, xN for the factor, or a bare kernel)"
                )
            if key in given:
                raise ValueError(f"spec {text!r} gives {key} twice")
            given[key] = value
        values: dict[str, object] = dict(given)
        for key, convert in (("factor", _text_int), ("index", _text_int), ("std", float)):
            if key in given:
                try:
                    values[key] = convert(given[key])
                except ValueError:
                    what = "a number" if key == "std" else "an integer"
                    raise ValueError(
                        f"{key} must be {what}, not {given[key]!r} (in spec {text!r})"
                    ) from None
        return cls(name, **values)

    def __str__(self) -> str:
        """The canonical text form; ``OperatorSpec.parse(str(spec)) == spec``."""
        plain = (
            ":" not in self.kernel and "=" not in self.kernel and not _FACTOR.fullmatch(self.kernel)
        )
        parts = [self.name, self.kernel if plain else f"kernel={self.kernel}"]
        if self.factor is not None:
            parts.append(f"x{self.factor}")
        if self.std is not None:
            parts.append(f"std={self.std!r}")
        if self.key is not None:
            parts.append(f"key={self.key}")
        if self.index:
            parts.append(f"index={self.index}")
        return ":".join(parts)

    def kernel_tensor(self) -> torch.Tensor:
        """The kernel [h, w]: float64 for the named kernels, as ``read_kernel`` returns it for
        files (float32). A runner may stack the kernels of several specs into one per-image
        operator."""
        if self.kernel == "bicubic":
            return bicubic_kernel(self.factor)
        if self.kernel == "gaussian":
            return gaussian_kernel(float(self.factor) if self.std is None else self.std)
        from pnpfast.io import read_kernel  # pnpfast.io is imported lazily by pnpfast

        return read_kernel(self.kernel, key=self.key, index=self.index)

    def build(self) -> LinearOperator:
        """The operator: ``SuperResolution(kernel, factor)`` or ``Blur(kernel)``."""
        kernel = self.kernel_tensor()
        return SuperResolution(kernel, self.factor) if self.name == "sr" else Blur(kernel)


_FIELDS = tuple(f.name for f in fields(OperatorSpec))


def _kind(value) -> str:
    return type(value).__name__


def _text_int(text: str) -> int:
    if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        raise ValueError(text)
    return int(text)


def from_spec(spec: str | Mapping[str, object] | OperatorSpec) -> LinearOperator:
    """Build an operator from its name and a few numbers (see the module docstring).

    ``spec``: the text form (``"sr:bicubic:x2"``), a mapping of the fields (``{"name": "sr",
    "factor": 2}``) or an ``OperatorSpec``. Returns ``SuperResolution`` or ``Blur``; kernel files
    are read here. Raises TypeError or ValueError naming the field and what it accepts, and
    ``pnpfast.io.KernelReadError`` for an unreadable kernel file."""
    if isinstance(spec, OperatorSpec):
        return spec.build()
    if isinstance(spec, str):
        return OperatorSpec.parse(spec).build()
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in _FIELDS]
        if unknown:
            raise ValueError(f"spec has unknown fields {unknown}; fields: {', '.join(_FIELDS)}")
        if "name" not in spec:
            raise ValueError(f"spec has no 'name': one of {_ACCEPTED_NAMES}")
        return OperatorSpec(**spec).build()
    raise TypeError(
        "spec must be a str such as 'sr:bicubic:x2', a mapping such as {'name': 'sr', "
        f"'factor': 2}} or an OperatorSpec, not {_kind(spec)}"
    )

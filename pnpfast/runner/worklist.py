"""The work list of a production run: which images, where their outputs go, with which settings.

    items = collect(["photos/", "more/*.png", "@extra.txt"], "restored", extension="png")
    items = collect([], "restored", manifest="jobs.csv")      # the manifest is the list
    mine = shard(items, rank, world_size)                      # under torchrun

Inputs (``collect``), each a str or os.PathLike:

* a file: restored to ``output_dir/<name>`` (its folders are not mirrored);
* a folder: its image files, recursively (``recursive=False``: only its own), mirrored under
  ``output_dir`` (``photos/a/b.png`` -> ``restored/a/b.png``); hidden files and folders (name
  starting with ".") are skipped, symbolic links to folders are not followed;
* a glob pattern (``*``, ``?``, ``[...]``; ``**`` for any depth): mirrored from the pattern's
  longest folder without wildcards (``data/**/*.png`` -> the tree under ``data``); a matched
  folder counts as a folder input;
* ``@list.txt``: a UTF-8 list file, one file, folder or pattern per line, relative paths
  relative to the list file's folder; blank lines and lines starting with ``#`` are skipped.
  A listed file under the list file's folder is mirrored from that folder, one elsewhere by
  its name. (Write ``./@name.png`` for an image whose name starts with "@".)

Image files are recognised by their extension, case-insensitively: ``IMAGE_EXTENSIONS``.

A manifest (CSV with a header row, or JSONL: one JSON object per line) gives per-image
settings; its ``path`` (or ``image``) column names the image, relative to the manifest's folder.
Without inputs, the manifest's rows are the work list (mirrored from the manifest's folder);
with inputs, each row must name one of the collected images, and images without a row get
the run's settings (``Settings()``, all unset). Columns (empty CSV cells, and JSON nulls, are
unset):

    path / image    the image file (required)
    kernel          blur kernel file (.npy, .png, .mat; read by pnpfast.io.read_kernel)
    noise           noise standard deviation on the 0..255 scale (like ``--noise``): 7.65
    mask            inpainting mask file (an image; 1 = observed)
    factor          super-resolution factor, an int >= 1
    operator        the forward model by name: ``sr:bicubic:x2``, ``blur:k.mat:key=K:index=2``
                    (pnpfast.operators.OperatorSpec; JSONL also takes its mapping form);
                    not together with kernel or factor
    method          a pnpfast.solve method ("hqs", "drs", ..., "implicit-prior")
    params.NAME     a parameter of the method (``params.lam``: 0.2); JSONL also takes an
                    object ``"params": {"lam": 0.2}``. Numbers, true/false or text.

Kernel, mask and operator kernel files are relative to the manifest and must exist.
Example CSV::

    path,kernel,noise,params.lam
    a.png,kernels/k1.npy,7.65,0.2
    sub/b.png,kernels/k2.npy,2.55,

Errors: TypeError for an argument of the wrong type, FileNotFoundError for a missing input,
list file, manifest, image, kernel or mask, ValueError for anything else (an empty folder or
pattern, two inputs with one output, an output that would overwrite an input or be collected
as an input by a rerun, a bad manifest line naming its number and column).
"""

import csv
import dataclasses
import glob
import io
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pnpfast import _validate
from pnpfast.operators.spec import _FIELDS as _SPEC_FIELDS
from pnpfast.operators.spec import NAMED_KERNELS, OperatorSpec

__all__ = ["IMAGE_EXTENSIONS", "Settings", "WorkItem", "collect", "shard"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_EXTENSIONS_TEXT = ", ".join(IMAGE_EXTENSIONS)
_MANIFEST_KINDS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_PATH_COLUMNS = ("path", "image")
_PARAM_PREFIX = "params."
_COLUMNS = ("kernel", "noise", "mask", "factor", "operator", "method")
_MAGIC = re.compile(r"[*?[]")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

PathLike = str | os.PathLike


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _kind(value) -> str:
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# the records


@dataclass(frozen=True)
class Settings:
    """Per-image settings from a manifest row; a field left None falls back to the run's value.

    Fields: ``kernel`` (Path of a kernel file), ``noise`` (standard deviation on the 0..255
    scale, in (0, 255]; ``sigma`` gives it on the [0, 1] scale), ``mask`` (Path of a mask
    image), ``factor`` (int >= 1), ``operator`` (an ``OperatorSpec``; not with kernel or
    factor), ``method`` (a pnpfast.solve method name), ``params`` (the method's parameters as
    sorted ``(name, value)`` pairs, value a bool, int, finite float or str; a mapping is
    accepted and sorted; ``params_dict()`` gives it back as a dict). Every field is checked:
    TypeError for a wrong type, ValueError for a wrong value, each naming the field.

        Settings(noise=7.65, kernel=Path("k.npy"), params={"lam": 0.2})
    """

    kernel: Path | None = None
    noise: float | None = None
    mask: Path | None = None
    factor: int | None = None
    operator: OperatorSpec | None = None
    method: str | None = None
    params: tuple[tuple[str, object], ...] = field(default=())

    def __post_init__(self):
        for name in ("kernel", "mask"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, os.PathLike)):
                    raise TypeError(f"{name} must be a file path (str or Path), not {_kind(value)}")
                if not os.fspath(value):
                    raise ValueError(f"{name} must be a file path, not an empty string")
                object.__setattr__(self, name, Path(value))
        if self.noise is not None:
            noise = _validate.number(
                "noise", self.noise, 0, 255, low_open=True, hint="(the 0..255 scale, like --noise)"
            )
            object.__setattr__(self, "noise", noise)
        if self.factor is not None:
            object.__setattr__(self, "factor", _validate.integer("factor", self.factor, 1))
        if self.operator is not None:
            if not isinstance(self.operator, OperatorSpec):
                raise TypeError(
                    "operator must be a pnpfast.operators.OperatorSpec (OperatorSpec.parse"
                    f"('sr:bicubic:x2')), not {_kind(self.operator)}"
                )
            given = [n for n in ("kernel", "factor") if getattr(self, n) is not None]
            if given:
                raise ValueError(
                    f"operator and {' and '.join(given)} are both given: write the kernel and "
                    f"the factor inside operator (e.g. 'sr:k.npy:x2'), or leave operator unset"
                )
        if self.method is not None:
            object.__setattr__(self, "method", _method_name(self.method))
        object.__setattr__(self, "params", _params(self.params, self.method))

    @property
    def sigma(self) -> float | None:
        """``noise / 255``: the noise level on the [0, 1] scale of the images, or None."""
        return None if self.noise is None else self.noise / 255.0

    def params_dict(self) -> dict[str, object]:
        return dict(self.params)

    def as_dict(self) -> dict[str, object]:
        """The fields that are set, as JSON values (paths as text, the operator as its
        canonical text): what a run ledger records and compares."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            if isinstance(value, Path):
                value = value.as_posix()
            elif isinstance(value, OperatorSpec):
                value = str(value)
            elif f.name == "params":
                value = dict(value)
            out[f.name] = value
        return out


def _method_names() -> tuple[str, ...]:
    from pnpfast.solvers import METHODS, SAMPLER

    return (*METHODS, SAMPLER)


def _method_name(method) -> str:
    names = _method_names()
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, one of {', '.join(names)}, not {_kind(method)}")
    if method not in names:
        raise ValueError(f"method must be one of {', '.join(names)}, not {method!r}")
    return method


def _method_params(method: str) -> tuple[str, ...]:
    from pnpfast.solvers import METHODS, SAMPLER, ImplicitPriorParams

    params = ImplicitPriorParams if method == SAMPLER else METHODS[method].Params
    return tuple(f.name for f in dataclasses.fields(params))


def _params(params, method: str | None) -> tuple[tuple[str, object], ...]:
    if isinstance(params, Mapping):
        pairs = list(params.items())
    elif isinstance(params, (tuple, list)) and all(
        isinstance(p, tuple) and len(p) == 2 for p in params
    ):
        pairs = list(params)
    else:
        raise TypeError(
            f"params must be a mapping of parameter names to values, not {_kind(params)}"
        )
    accepted = _method_params(method) if method is not None else None
    seen = set()
    for name, value in pairs:
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            raise ValueError(f"params: {name!r} is not a parameter name (a Python identifier)")
        if name in seen:
            raise ValueError(f"params: {name} is given twice")
        seen.add(name)
        if accepted is not None and name not in accepted:
            raise ValueError(
                f"params: method {method!r} has no parameter {name!r}; its parameters are "
                f"{', '.join(accepted)}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"params: {name} must be finite, not {value}")
        if not isinstance(value, (bool, int, float, str)):
            raise TypeError(
                f"params: {name} must be a number, true/false or text, not {_kind(value)}"
            )
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class WorkItem:
    """One image of the work list.

    ``source``: the image file (absolute). ``relative``: its path relative to its input root
    (the part mirrored under the output folder; relative, no ".."). ``output``: where its
    restoration goes (absolute, under the output folder, with the chosen extension).
    ``settings``: its per-image settings (``Settings()`` when the manifest has no row for it).
    ``key``: ``relative`` as posix text, the image's name in a run ledger.
    """

    source: Path
    relative: Path
    output: Path
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self):
        for name in ("source", "relative", "output"):
            value = getattr(self, name)
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{name} must be a path (str or Path), not {_kind(value)}")
            object.__setattr__(self, name, Path(value))
        if self.relative.is_absolute() or ".." in self.relative.parts or not self.relative.parts:
            raise ValueError(
                f"relative must be a non-empty relative path without '..', not "
                f"{os.fspath(self.relative)!r}"
            )
        if not isinstance(self.settings, Settings):
            raise TypeError(
                f"settings must be a pnpfast.runner.worklist.Settings, not {_kind(self.settings)}"
            )

    @property
    def key(self) -> str:
        return self.relative.as_posix()


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass
class _Found:
    """A collected image before its output is known."""

    source: str  # absolute
    real: str  # symbolic links resolved: the identity used to drop duplicates
    relative: Path
    origin: str  # the input it came from, for messages
    settings: Settings = field(default_factory=Settings)


@dataclass
class _Root:
    """A folder or pattern input, for the check that a rerun would not collect the outputs."""

    real: str
    recursive: bool
    pattern: tuple[str, ...] | None  # a glob's parts after its root
    origin: str


def _walk(folder: str, recursive: bool) -> Iterable[tuple[str, bool, tuple[str, ...]]]:
    """(path, is_symlink, parts relative to folder) of each visible image file, iteratively."""
    stack = [(folder, ())]
    while stack:
        here, parts = stack.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append((entry.path, (*parts, entry.name)))
                elif _is_image(entry.name) and entry.is_file():
                    yield entry.path, entry.is_symlink(), (*parts, entry.name)


def _real_under(real_root: str, path: str, is_link: bool, parts: tuple[str, ...]) -> str:
    return os.path.realpath(path) if is_link else os.path.join(real_root, *parts)


def _from_folder(folder: str, origin: str, recursive: bool, prefix: tuple[str, ...] = ()):
    real_root = os.path.realpath(folder)
    found = []
    for path, is_link, parts in _walk(folder, recursive):
        real = _real_under(real_root, path, is_link, parts)
        found.append(_Found(os.path.abspath(path), real, Path(*prefix, *parts), origin))
    return found


def _glob_root(pattern: str) -> tuple[str, tuple[str, ...]]:
    """The longest leading folder of ``pattern`` without wildcards, and the parts after it."""
    drive, rest = os.path.splitdrive(pattern)
    absolute = rest.startswith(("/", os.sep))
    parts = [p for p in re.split(r"[/\\]" if os.sep == "\\" else r"/", rest) if p]
    k = 0
    while k < len(parts) - 1 and not _MAGIC.search(parts[k]):
        k += 1
    root = os.path.join(drive + (os.sep if absolute else ""), *parts[:k]) if k or absolute else "."
    return root or ".", tuple(parts[k:])


def _from_glob(pattern: str, origin: str, recursive: bool, roots: list[_Root], base: str | None):
    """The images a pattern matches, mirrored from its root; ``base``: the folder a relative
    pattern of a list file is relative to (taken literally, never as a pattern)."""
    root, rest = _glob_root(pattern)
    if base is not None and not os.path.isabs(pattern):
        root = os.path.normpath(os.path.join(base, root))
        pattern = os.path.join(glob.escape(base), pattern)
    roots.append(_Root(os.path.realpath(root), recursive, rest, origin))
    found = []
    for match in glob.glob(pattern, recursive=True):
        rel = os.path.relpath(match, root)
        prefix = () if rel == "." else tuple(Path(rel).parts)
        if os.path.isdir(match):
            found += _from_folder(match, origin, recursive, prefix)
        elif _is_image(match) and os.path.isfile(match):
            found.append(
                _Found(os.path.abspath(match), os.path.realpath(match), Path(*prefix), origin)
            )
    if not found:
        raise ValueError(
            f"pattern {origin} matches no image files ({_EXTENSIONS_TEXT}; hidden files are "
            "skipped)"
        )
    return found


def _from_file(path: str, origin: str, relative: Path) -> _Found:
    if not _is_image(path):
        raise ValueError(
            f"input {origin} is not an image file by its extension; accepted: {_EXTENSIONS_TEXT}"
        )
    return _Found(os.path.abspath(path), os.path.realpath(path), relative, origin)


def _listed_relative(path: str, base: str) -> Path:
    """A listed file's mirrored path: relative to ``base`` when under it, else its name."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    if rel.startswith(os.pardir) or os.path.isabs(rel):
        return Path(os.path.basename(path))
    return Path(rel)


def _expand(
    text: str,
    origin: str,
    recursive: bool,
    roots: list[_Root],
    base: str | None,
) -> list[_Found]:
    """One input (or one line of a list file, ``base`` its folder)."""
    path = text if base is None or os.path.isabs(text) else os.path.join(base, text)
    if os.path.isdir(path):
        roots.append(_Root(os.path.realpath(path), recursive, None, origin))
        found = _from_folder(path, origin, recursive)
        if not found:
            deep = " (subfolders were not searched: recursive=False)" if not recursive else ""
            raise ValueError(
                f"folder {origin} holds no image files ({_EXTENSIONS_TEXT}; hidden files are "
                f"skipped){deep}"
            )
        return found
    if os.path.isfile(path):
        relative = Path(os.path.basename(path)) if base is None else _listed_relative(path, base)
        return [_from_file(path, origin, relative)]
    if _MAGIC.search(text):
        return _from_glob(text, origin, recursive, roots, base)
    if os.path.exists(path):
        raise ValueError(f"input {origin} is neither a file nor a folder")
    raise FileNotFoundError(f"input {origin}: no such file or folder")


def _from_list(text: str, name: str, recursive: bool, roots: list[_Root]) -> list[_Found]:
    list_path = text[1:]
    if not list_path:
        raise ValueError(f"{name} is '@' without a list file name: write @FILE")
    try:
        with open(list_path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such list file {list_path}") from None
    except IsADirectoryError:
        raise ValueError(f"{name}: the list file {list_path} is a folder") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: the list file {list_path} is not UTF-8 text ({exc})") from exc
    base = os.path.dirname(list_path) or "."
    found = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        origin = f"{entry} (line {number} of {list_path})"
        if entry.startswith("@"):
            raise ValueError(f"{origin}: a list file cannot name another list file")
        found += _expand(entry, origin, recursive, roots, base)
    if not found:
        raise ValueError(f"{name}: the list file {list_path} names no inputs")
    return found


# ---------------------------------------------------------------------------------------------
# the manifest


def _rows(manifest: str) -> Iterable[tuple[int, dict[str, object]]]:
    """(line number, row) of a CSV or JSONL manifest; CSV values are text, empty cells dropped."""
    kind = _MANIFEST_KINDS.get(os.path.splitext(manifest)[1].lower())
    if kind is None:
        raise ValueError(
            f"manifest {manifest}: unknown kind by its extension; use .csv or .jsonl (.ndjson)"
        )
    try:
        with open(manifest, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"manifest {manifest}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"manifest {manifest} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"manifest {manifest} is not UTF-8 text ({exc})") from exc
    if kind == "jsonl":
        for line, entry in enumerate(text.splitlines(), 1):
            if not entry.strip():
                continue
            try:
                row = json.loads(entry)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"manifest {manifest}, line {line}: not valid JSON ({exc})"
                ) from None
            if not isinstance(row, dict):
                raise ValueError(
                    f"manifest {manifest}, line {line}: each line must be a JSON object, not "
                    f"{_kind(row)}"
                )
            yield line, {k: v for k, v in row.items() if v is not None}
        return
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"manifest {manifest} is empty: it needs a header row")
        header = [h.strip() for h in header]
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:
            raise ValueError(f"manifest {manifest}: column {duplicated[0]!r} appears twice")
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            line = reader.line_num
            if len(cells) > len(header):
                raise ValueError(
                    f"manifest {manifest}, line {line}: {len(cells)} cells but the header has "
                    f"{len(header)} columns"
                )
            cells = cells + [""] * (len(header) - len(cells))
            yield line, {h: c.strip() for h, c in zip(header, cells, strict=True) if c.strip()}
    except csv.Error as exc:
        raise ValueError(f"manifest {manifest}: not a readable CSV file ({exc})") from exc


def _text_number(text: str, integer: bool = False):
    if isinstance(text, str):
        try:
            return int(text) if integer else float(text)
        except ValueError:
            pass
    return text


def _text_param(text):
    if not isinstance(text, str):
        return text
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _manifest_file(value, column: str, base: str, seen: dict[str, bool]) -> Path:
    """``base / value``, which must be a file; ``seen`` caches the check (rows share kernels)."""
    if not isinstance(value, str):
        raise TypeError(f"{column} must be a file path (text), not {_kind(value)}")
    path = Path(base, value)
    if value not in seen:
        seen[value] = path.is_file()
    if not seen[value]:
        raise FileNotFoundError(f"{column}: no such file {value} (relative to the manifest)")
    return path


def _manifest_operator(value, base: str) -> OperatorSpec:
    if isinstance(value, str):
        spec = OperatorSpec.parse(value)
    elif isinstance(value, Mapping):
        unknown = [k for k in value if k not in _SPEC_FIELDS]
        if unknown:
            raise ValueError(f"unknown fields {unknown}; fields: {', '.join(_SPEC_FIELDS)}")
        if "name" not in value:
            raise ValueError("no 'name' field: 'sr' or 'blur'")
        spec = OperatorSpec(**value)
    else:
        raise TypeError(f"must be text such as 'sr:bicubic:x2' or an object, not {_kind(value)}")
    if spec.kernel not in NAMED_KERNELS:
        path = Path(base, spec.kernel)
        if not path.is_file():
            raise FileNotFoundError(
                f"operator: no such kernel file {spec.kernel} (relative to the manifest)"
            )
        spec = dataclasses.replace(spec, kernel=str(path))
    return spec


def _row_settings(
    row: dict[str, object], csv_text: bool, base: str, seen: dict[str, bool]
) -> Settings:
    """The Settings of one manifest row (its path column already removed)."""
    values: dict[str, object] = {}
    params: dict[str, object] = {}
    for column, value in row.items():
        if column.startswith(_PARAM_PREFIX):
            params[column[len(_PARAM_PREFIX) :]] = _text_param(value) if csv_text else value
        elif column == "params" and not csv_text:
            if not isinstance(value, dict):
                raise TypeError(f"params must be a JSON object of parameters, not {_kind(value)}")
            for name, v in value.items():
                if name in params:
                    raise ValueError(f"params: {name} is given twice")
                params[name] = v
        elif column in ("kernel", "mask"):
            values[column] = _manifest_file(value, column, base, seen)
        elif column == "operator":
            try:
                values[column] = _manifest_operator(value, base)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"operator: {exc}") from None
        elif column in ("noise", "factor"):
            if csv_text:
                value = _text_number(value, column == "factor")
            if csv_text and isinstance(value, str):
                what = "an int >= 1" if column == "factor" else "a number in (0, 255]"
                raise ValueError(f"{column} must be {what}, not {value!r}")
            values[column] = value
        elif column == "method":
            values[column] = value
        else:
            accepted = ", ".join((*_PATH_COLUMNS, *_COLUMNS, "params.NAME"))
            raise ValueError(f"unknown column {column!r}; columns: {accepted}")
    return Settings(**values, params=params)


def _from_manifest(manifest: str) -> list[tuple[str, _Found]]:
    """(the row's place for messages, the image with its settings) of each manifest row."""
    base = os.path.dirname(manifest) or "."
    csv_text = manifest.lower().endswith(".csv")
    out = []
    seen: dict[str, str] = {}
    files: dict[str, bool] = {}
    for line, row in _rows(manifest):
        where = f"manifest {manifest}, line {line}"
        names = [c for c in _PATH_COLUMNS if c in row]
        if not names:
            raise ValueError(f"{where}: no image: give its file in the 'path' (or 'image') column")
        if len(names) == 2:
            raise ValueError(f"{where}: give the image in 'path' or in 'image', not both")
        image = row.pop(names[0])
        if not isinstance(image, str):
            raise TypeError(f"{where}, column {names[0]}: must be a file path, not {_kind(image)}")
        path = os.path.join(base, image)
        if not os.path.isfile(path):
            kind = "is a folder" if os.path.isdir(path) else "no such file"
            error = ValueError if os.path.isdir(path) else FileNotFoundError
            raise error(f"{where}, column {names[0]}: {image}: {kind}")
        try:
            settings = _row_settings(row, csv_text, base, files)
            found = _from_file(path, image, _listed_relative(path, base))
        except (TypeError, ValueError, FileNotFoundError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        found.settings = settings
        if found.real in seen:
            raise ValueError(f"{where} names {image} again (first at {seen[found.real]})")
        seen[found.real] = where
        out.append((where, found))
    if not out:
        raise ValueError(f"manifest {manifest} has no rows")
    return out


# ---------------------------------------------------------------------------------------------
# collect and shard


def _path_text(name: str, value) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, not {_kind(value)}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a text path, not {_kind(text)}")
    if not text:
        raise ValueError(f"{name} is an empty path")
    return text


def _extension(extension) -> str | None:
    if extension is None:
        return None
    if not isinstance(extension, str):
        raise TypeError(f"extension must be a str such as 'png', or None, not {_kind(extension)}")
    ext = "." + extension.lower().lstrip(".")
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"extension must be one of {_EXTENSIONS_TEXT}, not {extension!r}")
    return ext


def _inside(path: str, folder: str) -> tuple[str, ...] | None:
    """path's parts under folder (both real and absolute), or None when it is not under it."""
    rel = os.path.relpath(path, folder)
    if rel == ".":
        return ()
    if rel.startswith(os.pardir) or os.path.isabs(rel):
        return None
    return tuple(Path(rel).parts)


def _glob_match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether glob (recursive=True) would return ``parts`` for ``pattern`` (both split)."""
    import fnmatch

    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(
            _glob_match(rest, parts[i:])
            for i in range(len(parts) + 1)
            if not any(p.startswith(".") for p in parts[:i])
        )
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _glob_match(rest, parts[1:])


def _rerun_check(roots: list[_Root], out_real: str, out_abs: str, items: list[WorkItem]) -> None:
    """Refuse an output folder from which a rerun of the same inputs would collect outputs."""
    for root in roots:
        parts = _inside(out_real, root.real)
        if parts is None or any(p.startswith(".") for p in parts):
            continue
        if root.pattern is None:
            if root.recursive or not parts:
                raise ValueError(
                    f"output_dir {out_abs} is inside the input folder {root.origin}: a rerun "
                    "would collect the outputs as inputs; choose an output folder outside it"
                )
            continue
        for item in items:
            path = (*parts, *item.output.relative_to(out_abs).parts)
            # a matched folder is walked: a match of any folder above the output counts too
            depth = range(1, len(path)) if root.recursive else [len(path) - 1]
            if _glob_match(root.pattern, path) or any(
                _glob_match(root.pattern, path[:k]) for k in depth
            ):
                raise ValueError(
                    f"the output {item.output} matches the input pattern {root.origin}: a rerun "
                    "would collect it as an input; choose an output folder outside "
                    f"{root.real}"
                )


def collect(
    inputs: PathLike | Sequence[PathLike],
    output_dir: PathLike,
    *,
    manifest: PathLike | None = None,
    extension: str | None = None,
    recursive: bool = True,
) -> list[WorkItem]:
    """The work list: every input image once, its output path and its settings, sorted.

    See the module docstring for the kinds of inputs and the manifest's columns.

    Args:
        inputs: a str or os.PathLike, or a list or tuple of them: files, folders, glob
            patterns, ``@list.txt``; may be empty when ``manifest`` is given (its rows are the
            list).
        output_dir: the output folder (it need not exist); outputs mirror each input's tree
            under it: ``output_dir / relative``.
        manifest: a CSV or JSONL file of per-image settings (see the module docstring).
        extension: the outputs' extension ("png", ".tif", ...); None keeps each input's.
        recursive: search folders recursively (default True).

    Returns:
        WorkItems sorted by their relative path (part by part), the same on every call for the
        same files. An image reached twice (a folder and a file in it, a symbolic link) is
        kept once, as the first input that reached it.

    Raises:
        TypeError: an argument of the wrong type.
        FileNotFoundError: an input, list file, manifest or manifest file that does not exist.
        ValueError: a folder or pattern without images, an input that is not an image, two
            inputs with the same output (both named), an output that is an input or that a
            rerun would collect as an input (``output_dir`` inside an input folder), a bad
            manifest line (its number and column named), a manifest image not among the inputs.

    Example:
        >>> items = collect(["photos"], "restored", extension="png")  # doctest: +SKIP
        >>> items[0].key, items[0].output                               # doctest: +SKIP
        ('a/b.jpg', PosixPath('/home/me/restored/a/b.png'))
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    elif not isinstance(inputs, (list, tuple)):
        raise TypeError(
            f"inputs must be a path or a list of paths (files, folders, patterns, @lists), not "
            f"{_kind(inputs)}"
        )
    texts = [_path_text(f"inputs[{i}]", v) for i, v in enumerate(inputs)]
    out_dir = _path_text("output_dir", output_dir)
    manifest_text = None if manifest is None else _path_text("manifest", manifest)
    ext = _extension(extension)
    recursive = _validate.flag("recursive", recursive)
    if not texts and manifest_text is None:
        raise ValueError(
            "inputs is empty: give image files, folders, glob patterns or @list files, or a "
            "manifest"
        )
    if os.path.isfile(out_dir):
        raise ValueError(f"output_dir {out_dir} is a file, not a folder")

    roots: list[_Root] = []
    found: list[_Found] = []
    for i, text in enumerate(texts):
        if text.startswith("@"):
            found += _from_list(text, f"inputs[{i}] ({text})", recursive, roots)
        else:
            found += _expand(text, text, recursive, roots, None)

    by_real: dict[str, _Found] = {}
    for f in found:
        by_real.setdefault(f.real, f)
    if manifest_text is not None:
        rows = _from_manifest(manifest_text)
        if not texts:
            by_real = {f.real: f for _, f in rows}
        else:
            for where, row in rows:
                if row.real not in by_real:
                    raise ValueError(
                        f"{where}: {row.origin} is not among the inputs; add it to the inputs "
                        "or remove its row"
                    )
                by_real[row.real].settings = row.settings

    out_abs = os.path.abspath(out_dir)
    items = []
    for f in by_real.values():
        relative = f.relative if ext is None else f.relative.with_suffix(ext)
        items.append(WorkItem(Path(f.source), f.relative, Path(out_abs, relative), f.settings))
    items.sort(key=lambda item: item.relative.parts)

    by_output: dict[Path, WorkItem] = {}
    for item in items:
        other = by_output.get(item.output)
        if other is not None:
            raise ValueError(
                f"{other.source} and {item.source} would both be written to {item.output}; "
                "rename one, give them in folders, or change extension"
            )
        by_output[item.output] = item

    out_real = os.path.realpath(out_abs)
    _rerun_check(roots, out_real, out_abs, items)
    reals = {f.real for f in by_real.values()}
    for item in items:
        target = os.path.join(out_real, os.path.relpath(item.output, out_abs))
        if target in reals:
            raise ValueError(
                f"the output {item.output} would overwrite the input {target}; choose another "
                "output_dir or extension"
            )
    return items


def shard(items: Sequence[WorkItem], rank: int, world_size: int) -> list[WorkItem]:
    """The items of process ``rank`` of ``world_size``: round robin over the items sorted by key,
    ``sorted_items[rank::world_size]`` (BasicSR's ``range(rank, n, world_size)``).

    Every item belongs to exactly one rank, whatever the order of ``items``; shard the whole
    collected list (before dropping the finished images) so that a rerun with the same world
    size gives each rank the same images. Shards differ in length by at most one.

    Args:
        items: a list or tuple of WorkItem with distinct keys.
        rank: an int in [0, world_size - 1] (torch.distributed's rank).
        world_size: an int >= 1.

    Raises:
        TypeError: items not a list or tuple of WorkItem, rank or world_size not ints.
        ValueError: rank out of range, world_size < 1, two items with one key.

    Example:
        >>> [i.key for i in shard(items, 1, 3)]  # doctest: +SKIP
        ['b.png', 'e.png']                         # of a.png ... f.png
    """
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"items must be a list or tuple of WorkItem, not {_kind(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, WorkItem):
            raise TypeError(f"items[{i}] must be a WorkItem, not {_kind(item)}")
    world_size = _validate.integer("world_size", world_size, 1)
    rank = _validate.integer("rank", rank, 0, world_size - 1, hint=f"(world_size is {world_size})")
    ordered = sorted(items, key=lambda item: item.relative.parts)
    for a, b in itertools.pairwise(ordered):
        if a.key == b.key:
            raise ValueError(f"items holds two items with the key {a.key!r}")
    return ordered[rank::world_size]

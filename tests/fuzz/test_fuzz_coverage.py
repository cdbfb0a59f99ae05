"""The fuzz suite covers every public entry point: the tables of tests/fuzz/test_fuzz_*.py hold a
row for each public function and class of pnpfast, each solve method, each command of the CLI, and
every category of tests/fuzz_cases.py appears. A new public name without a row fails here."""

import argparse
import importlib
import importlib.util
import pathlib
import re

from fuzz_cases import CATEGORIES, Bad, Good
from pnpfast_test_utils import deepinv_or_skip

import pnpfast
import pnpfast.cli

HERE = pathlib.Path(__file__).parent

MODULES = (
    "operators",
    "denoisers",
    "ops",
    "solvers",
    "metrics",
    "fidelity",
    "diagnostics",
    "io",
    "data",
    "train",
    "dispatch",
    "profiling",
    "functional",
    "runner.worklist",
    "runner.ledger",
    "runner.tiles",
    "runner.run",
    "runner.gpu_denoiser",
    "runner.distributed",
)
# modules that import an optional library: covered where it imports (see the test below)
OPTIONAL_MODULES = ("interop.deepinv",)

# Public names that take no user input to fuzz, with why.
NOT_ENTRY_POINTS = {
    # abstract bases: users subclass them; their subclasses' inputs are fuzzed
    "pnpfast.operators.LinearOperator",
    "pnpfast.operators.OrthonormalOperator",
    "pnpfast.denoisers.Denoiser",
    "pnpfast.solvers.Method",
    # records returned to the user, and exception types
    "pnpfast.solvers.IterationInfo",
    "pnpfast.solvers.Result",
    "pnpfast.solvers.SampleResult",
    "pnpfast.diagnostics.LanczosEdges",
    "pnpfast.diagnostics.SpectralNorm",
    "pnpfast.io.ImageReadError",
    "pnpfast.io.KernelReadError",
    "pnpfast.runner.ledger.SettingsMismatchError",
    "pnpfast.train.Batch",
    "pnpfast.train.ConfigError",
    "pnpfast.train.TrainResult",
    "pnpfast.runner.run.RunReport",
    "pnpfast.dispatch.BackendError",
    "pnpfast.dispatch.BackendStatus",
    "pnpfast.dispatch.FusedOp",  # the library's own op table, built at import
    # no arguments
    "pnpfast.runner.distributed.active",
    "pnpfast.runner.distributed.finalize",
    "pnpfast.dispatch.backends",
    "pnpfast.dispatch.clear_caches",
    "pnpfast.ops.poisoned_outputs",
}

# The per-method parameter records are built by pnpfast.solve from its keyword arguments; their
# checks are reached through the pnpfast.solve rows (each method's parameters are fuzzed there).
PARAMS_THROUGH_SOLVE = "Params"


def public_entry_points(modules=MODULES) -> set[str]:
    names = set()
    for m in modules:
        module = importlib.import_module(f"pnpfast.{m}")
        listed = getattr(module, "__all__", None)
        for n in listed if listed is not None else dir(module):
            obj = getattr(module, n)
            if n.startswith("_") or not callable(obj):
                continue
            home = getattr(obj, "__module__", "") or ""
            # without __all__, only what the module defines (not what it imports)
            if listed is None and home != module.__name__:
                continue
            if home.startswith("pnpfast") and not n.endswith(PARAMS_THROUGH_SOLVE):
                names.add(f"pnpfast.{m}.{n}")
    return names - NOT_ENTRY_POINTS


def cli_commands() -> set[str]:
    parser = pnpfast.cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {f"pnpfast {name}" for name in sub.choices}


def all_rows() -> list[Bad | Good]:
    rows = []
    for path in sorted(HERE.glob("test_fuzz_*.py")):
        if path.name == pathlib.Path(__file__).name:
            continue
        spec = importlib.util.spec_from_file_location(f"_fuzz_table_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rows.extend(module.CASES)
    return rows


def _aliases(entry: str) -> set[str]:
    """pnpfast.solve is pnpfast.solvers.solve, pnpfast.L2 is pnpfast.fidelity.L2, ...; a row's
    entry may also be a method (pnpfast.operators.Blur.forward), which covers its class."""
    parts = entry.split(".")
    names = {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
    top = {"pnpfast.solve": "solvers.solve", "pnpfast.sample": "solvers.sample"}
    top["pnpfast.L2"] = "fidelity.L2"
    for alias, home in top.items():
        if entry == alias or entry.startswith(alias + "."):
            names.add("pnpfast." + home)
    return names


def test_every_public_entry_point_has_rows():
    covered = set().union(*(_aliases(r.entry) for r in all_rows()))
    missing = sorted(public_entry_points() - covered)
    assert not missing, f"public entry points without a fuzz row: {missing}"


def test_every_interop_entry_point_has_rows():
    """pnpfast.interop.deepinv imports deepinv, an extra: covered where deepinv imports (CI
    installs it with make deepinv)."""
    deepinv_or_skip()
    covered = set().union(*(_aliases(r.entry) for r in all_rows()))
    missing = sorted(public_entry_points(OPTIONAL_MODULES) - covered)
    assert not missing, f"public entry points without a fuzz row: {missing}"


def test_every_cli_command_has_rows():
    entries = {r.entry for r in all_rows()}
    missing = sorted(cli_commands() - entries)
    assert not missing, f"CLI commands without a fuzz row: {missing}"


def test_every_solve_method_has_rows():
    rows = [r for r in all_rows() if r.entry == "pnpfast.solve"]
    tokens = set().union(*(re.split(r"[\s:,/()=\[\]]+", r.id) for r in rows))
    missing = [m for m in pnpfast.solvers.METHODS if m not in tokens]
    assert not missing, f"solve methods without a fuzz row: {missing}"


def test_every_category_appears():
    seen = {r.category for r in all_rows()}
    missing = [c for c in CATEGORIES if c not in seen]
    assert not missing, f"categories without a row: {missing}"


def test_row_ids_are_unique():
    ids = [(r.entry, r.category, r.id) for r in all_rows()]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicated, f"rows with the same entry, category and id: {duplicated}"

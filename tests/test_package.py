"""The package as users get it: its namespaces, its import cost, and the check of the wheel.

The namespace tests also run against the installed wheel (.ci/check_wheel.sh); the
``wheel_check`` tests need the checkout (.ci/wheel_contents.py and the sources).
"""

import importlib.util
import re
import subprocess
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import pytest

import pnpfast

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(pnpfast.__file__).resolve().parent


def _public_modules_on_disk() -> set[str]:
    """Top-level public modules of the imported pnpfast, read from its folder."""
    names = set()
    for path in PACKAGE_DIR.iterdir():
        if path.name.startswith("_"):
            continue
        if path.suffix == ".py" or (path / "__init__.py").is_file():
            names.add(path.stem)
    if not (PACKAGE_DIR / "kernels").exists():  # the checkout: kernels/ is beside pnpfast/
        names.add("kernels")
    return names


def test_every_public_module_is_an_attribute_and_listed():
    on_disk = _public_modules_on_disk()
    assert {"train", "io", "diagnostics", "kernels", "data"} <= on_disk  # the scan finds them
    listed = set(dir(pnpfast))
    assert on_disk <= listed, f"not in dir(pnpfast): {sorted(on_disk - listed)}"
    assert on_disk <= set(pnpfast.__all__), (
        f"not in __all__: {sorted(on_disk - set(pnpfast.__all__))}"
    )
    for name in sorted(on_disk):
        module = getattr(pnpfast, name)
        assert isinstance(module, types.ModuleType) and module.__name__ == f"pnpfast.{name}"


def test_readme_namespaces_resolve():
    readme = (ROOT / "README.md").read_text()
    names = set(re.findall(r"\bpnpfast\.([A-Za-z]\w*)", readme))  # pnpfast._C is optional
    assert {"solve", "denoisers", "diagnostics", "train"} <= names
    missing = sorted(name for name in names if not hasattr(pnpfast, name))
    assert not missing, f"the README documents pnpfast.{missing} but they do not resolve"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        pnpfast.nope  # noqa: B018


_IMPORT_PROBE = """
import sys
import torch
import pnpfast
assert "triton" not in sys.modules, "import pnpfast imported triton"
lazy = ("cli", "data", "diagnostics", "io", "train")
assert not [n for n in lazy if f"pnpfast.{n}" in sys.modules], "imported eagerly"
for name in dir(pnpfast):
    getattr(pnpfast, name)
imported = sorted(m for m in sys.modules if m == "triton" or m.startswith("triton."))
assert not imported, f"touching the namespaces imported {imported[:3]}"
assert not torch.cuda.is_initialized(), "CUDA was initialised"
print("ok")
"""


def test_import_and_namespaces_import_no_triton_nor_cuda():
    # a fresh interpreter: this one has imported triton for other tests already
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# .ci/wheel_contents.py, the check that fails CI when the wheel lacks a module


@pytest.fixture(scope="module")
def contents():
    spec = importlib.util.spec_from_file_location("wheel_contents", ROOT / ".ci/wheel_contents.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_wheel(path: Path, names) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in [*names, "pnpfast-0.1.0.dist-info/RECORD"]:
            archive.writestr(name, "")
    return path


def _write_sdist(path: Path, names) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name in [*names, "setup.py", "pnpfast.egg-info/SOURCES.txt"]:
            archive.addfile(tarfile.TarInfo(f"pnpfast-0.1.0/{name}"))
    return path


def test_wheel_check_knows_the_modules(contents):
    expected = contents.source_files(ROOT)
    # written by hand: what a find-packages slip or a package_data slip would lose
    for name in [
        "pnpfast/__init__.py",
        "pnpfast/train/loop.py",
        "pnpfast/ops/fft_prox.py",
        "kernels/fft_prox.py",
        "pnpfast/weights/conditional-color.pt",
    ]:
        assert name in expected
    assert not [name for name in expected if "__pycache__" in name]
    assert contents.installed_path("kernels/fft_prox.py") == "pnpfast/kernels/fft_prox.py"
    assert contents.installed_path("pnpfast/io.py") == "pnpfast/io.py"


def test_wheel_check_fails_when_a_module_is_missing(contents, tmp_path):
    installed = sorted(contents.installed_path(n) for n in contents.source_files(ROOT))
    whole = _write_wheel(tmp_path / "whole.whl", installed)
    assert contents.check_wheel(ROOT, contents.wheel_listing(whole)) == []
    assert contents.main([str(ROOT), str(whole)]) == 0

    for left_out in ["pnpfast/train/loop.py", "pnpfast/kernels/pnp_update.py"]:
        partial = [name for name in installed if name != left_out]
        wheel = _write_wheel(tmp_path / "partial.whl", partial)
        assert contents.check_wheel(ROOT, contents.wheel_listing(wheel)) == [f"missing: {left_out}"]
        assert contents.main([str(ROOT), str(wheel)]) == 1

    stale = _write_wheel(tmp_path / "stale.whl", [*installed, "pnpfast/ops/removed_op.py"])
    problems = contents.check_wheel(ROOT, contents.wheel_listing(stale))
    assert problems == ["unexpected: pnpfast/ops/removed_op.py"]


def test_wheel_check_of_the_sdist(contents, tmp_path):
    sources = sorted(contents.source_files(ROOT))
    whole = _write_sdist(tmp_path / "whole.tar.gz", sources)
    assert contents.check_sdist(ROOT, contents.sdist_listing(whole)) == []

    partial = [name for name in sources if name != "pnpfast/weights/blind-gray.pt"]
    sdist = _write_sdist(tmp_path / "partial.tar.gz", partial)
    problems = contents.check_sdist(ROOT, contents.sdist_listing(sdist))
    assert problems == ["missing: pnpfast/weights/blind-gray.pt"]
    wheel = _write_wheel(tmp_path / "whole.whl", [contents.installed_path(n) for n in sources])
    assert contents.main([str(ROOT), str(wheel), str(sdist)]) == 1


def test_environment_variables_read_in_one_module_and_listed_in_the_readme():
    """Conventions 15: every variable pnpfast reads is read in pnpfast/_env.py and has a row of
    the README's table."""
    sources = {p: p.read_text() for p in PACKAGE_DIR.rglob("*.py")}
    readers = sorted(
        str(p.relative_to(PACKAGE_DIR))
        for p, text in sources.items()
        if p.name != "_env.py" and re.search(r"os\.environ|os\.getenv", text)
    )
    assert not readers, f"environment read outside pnpfast/_env.py: {readers}"
    # every variable name quoted in _env.py's code (os.environ.get("X"), _switch("X", ...))
    names = set(re.findall(r"\(\s*\"((?:PNPFAST|TRITON)_\w+)\"", sources[PACKAGE_DIR / "_env.py"]))
    assert {"PNPFAST_BACKEND", "PNPFAST_OFFLINE", "PNPFAST_TRACEBACK", "TRITON_INTERPRET"} <= names
    readme = (ROOT / "README.md").read_text()  # check_wheel.sh copies it beside tests/
    missing = sorted(n for n in names if f"| `{n}` |" not in readme)
    assert not missing, f"environment variables missing from the README table: {missing}"

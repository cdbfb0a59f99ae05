"""Check that a built wheel and sdist of pnpfast hold every module of the checkout and the weights.

    python .ci/wheel_contents.py ROOT WHEEL [SDIST]

Expected: every .py file under ROOT/pnpfast/ and ROOT/kernels/ (installed as pnpfast/kernels/,
setup.py's package_dir) and every ROOT/pnpfast/weights/*.pt. A file of these kinds that the
archive lacks is missing; one that it holds and the checkout does not (a module deleted since, or
left over in a build folder) is unexpected. Exits 1 naming each, 0 when both archives match.
tests/test_package.py proves that the check fails when a module is left out.
"""

import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

# checkout folder -> the folder it is installed as
INSTALLED_AS = {"pnpfast": "pnpfast", "kernels": "pnpfast/kernels"}
WEIGHTS = "pnpfast/weights"


def source_files(root: Path) -> set[str]:
    """The checkout's files that must ship: posix paths relative to ``root``."""
    found = set()
    for folder in INSTALLED_AS:
        for path in (root / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found.add(path.relative_to(root).as_posix())
    found.update(path.relative_to(root).as_posix() for path in (root / WEIGHTS).glob("*.pt"))
    return found


def installed_path(source: str) -> str:
    """Where a checkout file lands in the wheel: kernels/x.py -> pnpfast/kernels/x.py."""
    top, _, rest = source.partition("/")
    return f"{INSTALLED_AS[top]}/{rest}" if top in INSTALLED_AS else source


def wheel_listing(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def sdist_listing(sdist: Path) -> list[str]:
    """Member names without the leading ``pnpfast-<version>/`` folder."""
    with tarfile.open(sdist) as archive:
        names = [m.name for m in archive.getmembers() if m.isfile()]
    return [name.partition("/")[2] for name in names]


def _shipped_kind(name: str, folders: Iterable[str]) -> bool:
    path = PurePosixPath(name)
    if path.suffix == ".pt":
        return str(path.parent) == WEIGHTS
    return path.suffix == ".py" and path.parts[0] in folders and "__pycache__" not in path.parts


def compare(expected: set[str], listing: Iterable[str], folders: Iterable[str]) -> list[str]:
    """Problems, one line each: expected files missing from ``listing``, and modules or weights
    under ``folders`` that ``listing`` holds but ``expected`` does not."""
    present = set(listing)
    folders = set(folders)
    problems = [f"missing: {name}" for name in sorted(expected - present)]
    extra = {name for name in present - expected if _shipped_kind(name, folders)}
    problems += [f"unexpected: {name}" for name in sorted(extra)]
    return problems


def check_wheel(root: Path, listing: Iterable[str]) -> list[str]:
    expected = {installed_path(name) for name in source_files(root)}
    return compare(expected, listing, ["pnpfast"])


def check_sdist(root: Path, listing: Iterable[str]) -> list[str]:
    return compare(source_files(root), listing, INSTALLED_AS)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root, wheel = Path(argv[0]), Path(argv[1])
    reports = [(wheel, check_wheel(root, wheel_listing(wheel)))]
    if len(argv) == 3:
        reports.append((Path(argv[2]), check_sdist(root, sdist_listing(Path(argv[2])))))
    failed = False
    for archive, problems in reports:
        if problems:
            failed = True
            print(f"{archive.name} does not match the checkout:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
        else:
            print(f"{archive.name}: all {len(source_files(root))} modules and weights present")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

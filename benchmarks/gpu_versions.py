"""The first step of gpu_check.sh: this machine's Python, torch, triton, CUDA and GPU next to what
pnpfast supports, and what the check will test. Exit status 2 (gpu_check.sh then refuses to go
on, unless --ignore-versions) when a version is outside the supported range; warnings otherwise.

The ranges are read from the repository, never written here a second time:

    pyproject.toml                   requires-python, torch (dependencies), triton (the
                                     ``triton`` extra): the supported ranges
    constraints.txt                  the torch and triton that CI tests on the CPU
    .ci/cuda-venv-requirements.txt   the CUDA torch that CI builds, links and opchecks the
                                     extension against (without a GPU)
    .ci/aot_triton.py (CCS)          the GPU architectures every Triton kernel is compiled for

    python benchmarks/gpu_versions.py [--steps a,b,...] [--arch-list "9.0"]
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

try:  # pip vendors packaging where it is not installed on its own
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - depends on the machine
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import InvalidVersion, Version


@dataclass
class Supported:
    """What the repository says: specifier strings per package, and the tested pins."""

    ranges: dict[str, str] = field(default_factory=dict)  # {"python": ">=3.10", "torch": ...}
    tested_cpu: dict[str, str] = field(default_factory=dict)  # constraints.txt pins
    tested_extension: dict[str, str] = field(default_factory=dict)  # cuda-venv pins
    ccs: tuple[int, ...] = ()  # .ci/aot_triton.py's CCS


def _toml_list(text: str, key: str) -> list[str]:
    """The strings of ``key = [...]`` in a TOML text (enough for pyproject.toml's dependency
    lists; tomllib is used where the Python has it)."""
    m = re.search(rf"^{re.escape(key)}\s*=\s*\[(.*?)\]", text, re.S | re.M)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    if not path.is_file():
        return pins
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def read_supported(root: Path = ROOT) -> Supported:
    text = (root / "pyproject.toml").read_text()
    try:
        import tomllib

        project = tomllib.loads(text)["project"]
        python = project.get("requires-python", "")
        deps = list(project.get("dependencies", []))
        deps += project.get("optional-dependencies", {}).get("triton", [])
    except ImportError:  # Python 3.10
        m = re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M)
        python = m.group(1) if m else ""
        deps = _toml_list(text, "dependencies") + _toml_list(text, "triton")
    ranges = {"python": python}
    for dep in deps:
        req = Requirement(dep)
        if req.name.lower() in ("torch", "triton"):
            ranges[req.name.lower()] = str(req.specifier)
    ccs: tuple[int, ...] = ()
    aot = root / ".ci" / "aot_triton.py"
    if aot.is_file():
        for node in ast.parse(aot.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "CCS" for t in node.targets
            ):
                ccs = tuple(ast.literal_eval(node.value))
    return Supported(
        ranges=ranges,
        tested_cpu=_pins(root / "constraints.txt"),
        tested_extension=_pins(root / ".ci" / "cuda-venv-requirements.txt"),
        ccs=ccs,
    )


@dataclass
class Installed:
    python: str
    torch: str | None = None
    torch_cuda: str | None = None  # torch.version.cuda
    triton: str | None = None
    nvcc: str | None = None  # release, e.g. "12.8"
    gpu: str | None = None
    capability: tuple[int, int] | None = None
    driver: str | None = None


def probe() -> Installed:
    """This machine's versions (imports torch and triton; asks CUDA about device 0)."""
    inst = Installed(python=".".join(map(str, sys.version_info[:3])))
    try:
        import torch

        inst.torch = torch.__version__
        inst.torch_cuda = torch.version.cuda
        if torch.cuda.is_available():
            inst.gpu = torch.cuda.get_device_name(0)
            inst.capability = torch.cuda.get_device_capability(0)
    except ImportError:
        pass
    try:
        import importlib.metadata

        inst.triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        pass
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30)
        m = re.search(r"release (\d+\.\d+)", out.stdout)
        inst.nvcc = m.group(1) if m else None
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        inst.driver = out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return inst


def _in_range(version: str, spec: str) -> bool | None:
    """Whether ``version``'s release (a local tag such as +cu128 and a pre-release mark
    ignored: 2.11.0a0+git is 2.11.0) satisfies ``spec``; None when it cannot be parsed."""
    try:
        return Version(Version(version).base_version) in SpecifierSet(spec)
    except InvalidVersion:
        return None


def _same_release(a: str | None, b: str | None) -> bool:
    try:
        return a is not None and b is not None and Version(a).release == Version(b).release
    except InvalidVersion:
        return False


def verdict(inst: Installed, sup: Supported, arch_list: str = "9.0") -> tuple[list[str], int]:
    """(lines to print, exit status): 2 when Python, torch or triton is outside the supported
    range (or torch is missing), else 0; WARNING lines for what will not be tested as CI
    tests it."""
    lines, refuse = [], False

    def check(name: str, version: str | None, required: bool) -> None:
        nonlocal refuse
        spec = sup.ranges.get(name, "")
        shown = version or "not installed"
        if version is None:
            if required:
                refuse = True
                lines.append(f"REFUSED: {name} is not installed (pnpfast needs {name}{spec})")
            else:
                lines.append(
                    f"WARNING: {name} is not installed: the {name} backend and its tests "
                    f"will be skipped (supported: {name}{spec})"
                )
            return
        ok = _in_range(version, spec) if spec else True
        if ok is False:
            refuse = True
            lines.append(f"REFUSED: {name} {shown} is outside the supported range {spec}")
        elif ok is None:
            lines.append(f"WARNING: {name} {shown}: cannot compare with {spec}")
        else:
            lines.append(f"ok: {name} {shown} (supported {spec or 'any'})")

    check("python", inst.python, True)
    check("torch", inst.torch, True)
    check("triton", inst.triton, False)
    for name in ("torch", "triton"):
        version = getattr(inst, name)
        pins = [p for p in (sup.tested_cpu.get(name), sup.tested_extension.get(name)) if p]
        if version and pins and not any(_same_release(version, p) for p in pins):
            lines.append(
                f"WARNING: {name} {version} is not a version CI tests ({' and '.join(pins)}): "
                "a failure here may come from the version"
            )
    if inst.torch and inst.torch_cuda is None:
        lines.append("WARNING: torch is a CPU build: nothing will run on a GPU")
    if inst.torch_cuda and inst.nvcc and inst.torch_cuda.split(".")[0] != inst.nvcc.split(".")[0]:
        lines.append(
            f"WARNING: nvcc {inst.nvcc} and torch's CUDA {inst.torch_cuda} differ in the major "
            "version: building pnpfast._C will fail"
        )
    if inst.torch_cuda and inst.nvcc is None:
        lines.append("WARNING: no nvcc: the build step cannot compile pnpfast._C")
    if inst.capability is None:
        lines.append("WARNING: no CUDA device: the GPU tests skip and the benchmarks run nothing")
    else:
        cc = 10 * inst.capability[0] + inst.capability[1]
        if sup.ccs and cc not in sup.ccs:
            lines.append(
                f"WARNING: sm_{cc} is not an architecture CI compiles the Triton kernels for "
                f"(sm_{', sm_'.join(map(str, sup.ccs))})"
            )
        archs = {a.strip().removesuffix("+PTX") for a in re.split(r"[;, ]+", arch_list) if a}
        if f"{inst.capability[0]}.{inst.capability[1]}" not in archs:
            lines.append(
                f"WARNING: TORCH_CUDA_ARCH_LIST {arch_list!r} has no {inst.capability[0]}."
                f"{inst.capability[1]}: pnpfast._C will have no code for this GPU"
            )
    return lines, 2 if refuse else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="", help="comma-separated steps gpu_check.sh will run")
    p.add_argument("--arch-list", default="9.0", help="TORCH_CUDA_ARCH_LIST of the build")
    args = p.parse_args(argv)
    sup, inst = read_supported(), probe()
    print("this machine:")
    print(
        f"  python {inst.python}; torch {inst.torch} (CUDA {inst.torch_cuda}); triton {inst.triton}"
    )
    print(
        f"  nvcc {inst.nvcc}; driver {inst.driver}; GPU {inst.gpu} (capability {inst.capability})"
    )
    print("pnpfast supports (pyproject.toml):")
    print("  " + "; ".join(f"{k} {v or 'any'}" for k, v in sup.ranges.items()))
    print("CI tests:")
    print(
        "  on the CPU (constraints.txt): "
        + ", ".join(f"{k} {v}" for k, v in sup.tested_cpu.items())
    )
    print(
        "  the extension build, link, import, opcheck (.ci/cuda-venv-requirements.txt): "
        + ", ".join(f"{k} {v}" for k, v in sup.tested_extension.items() if k in ("torch", "triton"))
    )
    print(f"  Triton kernels compiled ahead of time for sm_{', sm_'.join(map(str, sup.ccs))}")
    if args.steps:
        print("this check will run: " + ", ".join(s for s in args.steps.split(",") if s))
    print(f"  (the extension built for TORCH_CUDA_ARCH_LIST={args.arch_list})")
    lines, status = verdict(inst, sup, args.arch_list)
    print("\n".join(lines))
    if status:
        print("gpu_versions: outside the supported range: gpu_check.sh stops here")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Build script: the Python package, kernels/ as pnpfast.kernels, and the optional CUDA extension.

PNPFAST_BUILD_CUDA=auto (default) builds pnpfast._C from csrc/ when the torch in the build
environment is a CUDA build and nvcc is found; =0 never builds it; =1 builds it or fails loudly.
Target architectures come from TORCH_CUDA_ARCH_LIST (default "8.0;9.0+PTX": machine code for
A100 and H100/H200, and sm_90 PTX that the driver compiles for newer GPUs on first load), never
from the GPU of the build machine. Build it with `pip install --no-build-isolation -e .` so torch is importable.
"""

import glob
import os
import shutil

from setuptools import find_packages, setup

# Every package under pnpfast/ (a folder with an __init__.py), found rather than listed, so a new
# subpackage cannot be left out of the wheel; kernels/ is installed as pnpfast.kernels.
# .ci/check_wheel.sh compares the built wheel and sdist with the checkout.
PACKAGES = [
    *find_packages(include=["pnpfast", "pnpfast.*"]),
    "pnpfast.kernels",
    *(f"pnpfast.kernels.{name}" for name in find_packages("kernels")),
    "pnpfast.weights",  # a data folder (no __init__.py): its *.pt files are package data
]
PACKAGE_DIR = {"pnpfast": "pnpfast", "pnpfast.kernels": "kernels"}
DEFAULT_ARCHS = "8.0;9.0+PTX"


def _skip_or_fail(mode: str, reason: str) -> tuple[list, dict]:
    if mode == "1":
        raise SystemExit(
            f"pnpfast: PNPFAST_BUILD_CUDA=1 but the CUDA extension cannot be built: {reason}"
        )
    print(f"pnpfast: not building the CUDA extension pnpfast._C ({reason})")
    return [], {}


def cuda_extension() -> tuple[list, dict]:
    mode = os.environ.get("PNPFAST_BUILD_CUDA", "auto").strip().lower()
    if mode not in {"auto", "0", "1"}:
        raise SystemExit(f"pnpfast: PNPFAST_BUILD_CUDA must be auto, 0 or 1, not {mode!r}")
    if mode == "0":
        return _skip_or_fail(mode, "PNPFAST_BUILD_CUDA=0")
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        return _skip_or_fail(
            mode, "torch is not importable in the build environment; use --no-build-isolation"
        )
    if torch.version.cuda is None:
        return _skip_or_fail(mode, f"torch {torch.__version__} is a CPU build")
    nvcc = os.path.join(CUDA_HOME, "bin", "nvcc") if CUDA_HOME else shutil.which("nvcc")
    if not nvcc or not os.path.exists(nvcc):
        return _skip_or_fail(mode, "nvcc not found; set CUDA_HOME")
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)
    sources = [*sorted(glob.glob("csrc/*.cu")), "csrc/bindings.cpp"]
    ext = CUDAExtension(
        name="pnpfast._C",
        sources=sources,
        depends=sorted(glob.glob("csrc/*.h")),
        # no -std: torch adds the standard its headers need (C++20 in torch 2.13, 2.14), and a later
        # -std=c++17 here would override it (.ci/check_extension.sh builds against it)
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-lineinfo"]},
    )
    return [ext], {"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)}


ext_modules, cmdclass = cuda_extension()
setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"pnpfast.weights": ["*.pt"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)

#!/usr/bin/env bash
# Compile check of pnpfast's CUDA extension sources, for machines with nvcc but no GPU.
#
#   .ci/check_cuda.sh
#
# 1. Every csrc/*.cu is compiled for sm_80 and sm_90 with nvcc (C++20, the standard torch builds
#    the extension with); any warning fails, and so does a register spill or any use of local
#    memory reported by ptxas, on both (the kernels are memory-bound streams that must keep
#    everything in registers).
# 2. Per kernel and arch, the resources ptxas reports (registers, spill bytes, stack frame, static
#    shared memory, constant bank 0, barriers) are printed as a table and written to
#    benchmarks/results/cuda_resources.jsonl (.ci/cuda_resources.py: fixed columns, the nvcc
#    version, the last commit that changed csrc/). The file is rewritten, not appended to: a rerun
#    on unchanged sources leaves it as it was. Set CUDA_RESOURCES=<path> to write elsewhere.
# 3. csrc/bindings.cpp is syntax-checked (g++ -fsyntax-only, which also instantiates the
#    launches for both dtypes and the op registration templates) against the installed torch's
#    headers, the Python headers and the CUDA headers; any warning in it fails as well.
#
# Without nvcc the check is skipped (exit 0). Nothing is linked or run: .ci/check_extension.sh
# links and imports the extension, the GPU tests run it.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v nvcc >/dev/null 2>&1; then
  echo "check_cuda: nvcc not found, CUDA source check skipped"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
CXX="${CXX:-g++}"
tmpdir="$(mktemp -d)"
trap 'rm -rf "$tmpdir"' EXIT

shopt -s nullglob
cu_files=(csrc/*.cu)
if [[ ${#cu_files[@]} -eq 0 ]]; then
  echo "check_cuda: no csrc/*.cu files found" >&2
  exit 1
fi

# Every file for every arch, even after a failure, so that the table shows every spill at once.
failed=0
logs=()
for src in "${cu_files[@]}"; do
  for arch in sm_80 sm_90; do
    log="$tmpdir/$(basename "$src" .cu).$arch.log"
    # -Werror all-warnings turns ptxas' spill and local-memory warnings into errors too
    if nvcc -c -arch="$arch" -std=c++20 -Werror all-warnings \
      -Xptxas -v,-warn-spills,-warn-lmem-usage -o "$tmpdir/x.o" "$src" 2>"$log"; then
      echo "check_cuda: ok  nvcc -arch=$arch  $src"
    else
      grep -v "^ptxas info\|^    [0-9]* bytes stack frame" "$log" >&2 || true
      echo "check_cuda: FAILED  nvcc -arch=$arch  $src" >&2
      failed=1
    fi
    logs+=("$src:$arch:$log")
  done
done
if ! "$PYTHON" .ci/cuda_resources.py \
  "${CUDA_RESOURCES:-benchmarks/results/cuda_resources.jsonl}" "${logs[@]}"; then
  failed=1
fi
if [[ $failed -ne 0 ]]; then
  echo "check_cuda: the CUDA sources do not compile cleanly (above)" >&2
  exit 1
fi

# The CUDA headers nvcc itself uses. /usr/local/bin/nvcc may be a wrapper script, so
# `dirname $(which nvcc)`/../include is only one candidate; each must hold cuda_runtime_api.h.
# `nvcc --dryrun` prints the toolkit root it resolved as "#$ TOP=...".
nvcc_top="$( (nvcc --dryrun -c -x cu /dev/null -o /dev/null 2>&1 || true) |
  sed -n 's/^#\$ TOP=//p')"
nvcc_top="${nvcc_top%%$'\n'*}"
cuda_include=""
for dir in ${CUDA_HOME:+"$CUDA_HOME/include"} ${CUDA_PATH:+"$CUDA_PATH/include"} \
  ${nvcc_top:+"$nvcc_top/include"} "$(dirname "$(command -v nvcc)")/../include" \
  /usr/local/cuda/include; do
  if [[ -f "$dir/cuda_runtime_api.h" ]]; then
    cuda_include="$dir"
    break
  fi
done
if [[ -z "$cuda_include" ]]; then
  echo "check_cuda: cannot find the CUDA include directory (cuda_runtime_api.h); set CUDA_HOME" >&2
  exit 1
fi

if ! torch_paths="$("$PYTHON" -c '
from torch.utils.cpp_extension import include_paths
print("\n".join(include_paths()))
')"; then
  echo "check_cuda: torch is not importable by $PYTHON; cannot check csrc/bindings.cpp" >&2
  exit 1
fi
mapfile -t torch_includes <<<"$torch_paths"
python_include="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"

flags=(-fsyntax-only -std=c++20 -Wall -Wextra -Werror)
for dir in "${torch_includes[@]}" "$python_include" "$cuda_include"; do
  flags+=(-isystem "$dir")
done

# A CPU-only torch wheel ships the c10/cuda headers but not the CMake-generated
# c10/cuda/impl/cuda_cmake_macros.h they include. On Linux that file only sets
# C10_CUDA_BUILD_SHARED_LIBS (used for Windows dllexport) and TORCH_CUDA_VERSION_* (unused by
# the headers bindings.cpp includes), and CUDAMacros.h has a switch to skip it. bindings.cpp
# and every other header are still compiled unchanged.
torch_root="${torch_includes[0]}"
if [[ ! -f "$torch_root/c10/cuda/impl/cuda_cmake_macros.h" ]]; then
  flags+=(-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE)
  note="  (CPU torch: skipping the generated c10/cuda/impl/cuda_cmake_macros.h)"
else
  note=""
fi

"$CXX" "${flags[@]}" csrc/bindings.cpp
echo "check_cuda: ok  $CXX -fsyntax-only  csrc/bindings.cpp$note"

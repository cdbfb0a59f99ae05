#!/usr/bin/env bash
# The CUDA extension built for real on a machine without a GPU: build pnpfast._C against a CUDA
# build of torch, import it, and check its op registry and the fake kernels
# (.ci/check_extension.py).
#
#   .ci/check_extension.sh          (or: make check-extension)
#
# 1. A virtual environment OUTSIDE the checkout holds torch 2.14.1+cu130 (about 5.5 GB, from this
#    machine's disk), triton, numpy and pytest (.ci/cuda-venv-requirements.txt). It lives in
#    $PNPFAST_CUDA_VENV (default ~/.cache/pnpfast-ci/cuda-venv) and is reused while the sha256
#    of the requirements file and the Python version match the key stored in it; otherwise it
#    is created afresh. The checkout's CPU environment is never touched.
# 2. The checkout's files (tracked and untracked, not ignored) are synced to
#    $PNPFAST_CUDA_VENV/src, copying only files whose content changed, and installed from there
#    (not editable) with PNPFAST_BUILD_CUDA=1: the build folder stays there too, so ninja
#    recompiles only what changed since the last run. Nothing is written into the checkout.
# 3. From a folder outside the checkout, .ci/check_extension.py imports pnpfast._C (no GPU
#    needed), checks every op the Python layer calls against the registered schemas and runs
#    torch.library.opcheck on the custom ops (see its docstring for which sub-tests).
#
# Environment: PNPFAST_CUDA_VENV (above); PYTHON, the interpreter that creates the venv
# (default python3; must be 3.11 for pip to take torch 2.14.1 from this disk); MAX_JOBS, parallel
# compile jobs (default: the number of cores); TORCH_CUDA_ARCH_LIST (default: setup.py's DEFAULT_ARCHS);
# CUDA_HOME (default: the toolkit root that nvcc resolves).
# Without nvcc the check is skipped (exit 0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
started=$SECONDS
stamp() { echo "[$((SECONDS - started)) s]"; }

if ! command -v nvcc >/dev/null 2>&1; then
  echo "check_extension: nvcc not found, extension check skipped"
  exit 0
fi

# torch finds the toolkit through CUDA_HOME, else through `which nvcc`; /usr/local/bin/nvcc may be
# a wrapper whose ../include has no cuda_runtime.h, so default to the root nvcc itself resolves
# (`nvcc --dryrun` prints it as "#$ TOP=...").
if [[ -z "${CUDA_HOME:-}" ]]; then
  top="$( (nvcc --dryrun -c -x cu /dev/null -o /dev/null 2>&1 || true) | sed -n 's/^#\$ TOP=//p')"
  CUDA_HOME=$(realpath "${top%%$'\n'*}")
  export CUDA_HOME
fi
echo "check_extension: CUDA_HOME=$CUDA_HOME"

PY=${PYTHON:-python3}
VENV=${PNPFAST_CUDA_VENV:-$HOME/.cache/pnpfast-ci/cuda-venv}
VENV=$(realpath -m "$VENV")
case "$VENV/" in
  "$ROOT"/*)
    echo "check_extension: PNPFAST_CUDA_VENV=$VENV is inside the checkout; put it outside" >&2
    exit 1
    ;;
esac
REQS=$ROOT/.ci/cuda-venv-requirements.txt
mkdir -p "$(dirname "$VENV")"
# one run at a time per venv: a second CI run on the machine waits instead of racing the first
exec 9>"$VENV.lock"
flock 9
key="$(sha256sum "$REQS" | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version.split()[0])')"

echo "== venv $VENV $(stamp)"
if [[ -f "$VENV/.pnpfast-key" && "$(cat "$VENV/.pnpfast-key")" == "$key" ]]; then
  echo "reusing it (key $key)"
else
  echo "creating it (key $key)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$REQS"
  echo "$key" >"$VENV/.pnpfast-key" # written last: an interrupted creation starts over
fi
VPY=$VENV/bin/python
"$VPY" -c 'import torch, triton; print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), triton {triton.__version__}")'

echo "== sync the checkout to $VENV/src $(stamp)"
mkdir -p "$VENV/src"
git ls-files -z --cached --others --exclude-standard |
  "$VPY" -c '
import filecmp, os, shutil, sys
dest = sys.argv[1]
names = sorted(set(filter(None, sys.stdin.read().split("\0"))))
keep = {n for n in names if os.path.isfile(n)}
copied = 0
for name in sorted(keep):
    target = os.path.join(dest, name)
    if os.path.isfile(target) and filecmp.cmp(name, target, shallow=False):
        continue  # same content: keep its mtime so that ninja does not recompile it
    os.makedirs(os.path.dirname(target) or dest, exist_ok=True)
    shutil.copy2(name, target)
    copied += 1
removed = 0
for top, dirs, files in os.walk(dest):
    rel = os.path.relpath(top, dest)
    if rel == "." :
        dirs[:] = [d for d in dirs if d not in ("build", "pnpfast.egg-info")]
    for f in files:
        name = os.path.normpath(os.path.join(rel, f))
        if name not in keep:
            os.remove(os.path.join(top, f))
            removed += 1
print(f"{len(keep)} files, {copied} copied, {removed} removed")
' "$VENV/src"

echo "== build and install pnpfast with pnpfast._C $(stamp)"
# --no-build-isolation: the build imports the venv's CUDA torch; -c keeps that torch
(cd "$VENV/src" &&
  PNPFAST_BUILD_CUDA=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$VPY" -m pip install --quiet --no-build-isolation -c "$REQS" .)

echo "== check the extension from $VENV (no GPU) $(stamp)"
mkdir -p "$VENV/run"
(cd "$VENV/run" && "$VPY" -P "$ROOT/.ci/check_extension.py")

echo "== extension check passed in $((SECONDS - started)) s"

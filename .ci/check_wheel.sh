#!/usr/bin/env bash
# What users install is what gets tested (CONVENTIONS.md 16): build the sdist from a clean copy of
# the checkout and the wheel from that sdist (no CUDA extension), check that both hold every module
# and the shipped weights (.ci/wheel_contents.py), install the wheel (not editable) with its test
# extras into a fresh virtual environment outside the checkout, and from a folder where the
# checkout's pnpfast/ cannot be imported run `pnpfast demo`, `pnpfast backends`, the shipped
# denoiser and a smoke set of tests. Everything lives in one temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pnpfast-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/sdist" "$WORK/run"
started=$SECONDS

echo "== build: sdist from the checkout's files, wheel from the sdist [$((SECONDS - started)) s]"
# tracked and untracked files that git does not ignore: no build/, *.egg-info or caches whose
# stale contents could hide a module missing from the package list
git ls-files -z --cached --others --exclude-standard |
  "$PY" -c '
import os, shutil, sys
dest = sys.argv[1]
for name in sorted(set(filter(None, sys.stdin.read().split("\0")))):
    if os.path.isfile(name):
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(name, os.path.join(dest, name))
' "$WORK/src"
export PNPFAST_BUILD_CUDA=0
# the build runs in a virtual environment of its own with the setuptools that pyproject.toml asks
# for (a fresh machine's may be older), leaving the caller's environment as it was
"$PY" -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/pip" install --quiet "setuptools>=77" wheel
BPY=$WORK/build-venv/bin/python
(cd "$WORK/src" && "$BPY" -c 'import sys; from setuptools import build_meta as b; b.build_sdist(sys.argv[1])' "$WORK/dist" >/dev/null)
SDIST=$(echo "$WORK"/dist/pnpfast-*.tar.gz)
tar -xzf "$SDIST" -C "$WORK/sdist"
"$BPY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$WORK/dist" "$WORK"/sdist/pnpfast-*/
WHEEL=$(echo "$WORK"/dist/pnpfast-*.whl)
unset PNPFAST_BUILD_CUDA
echo "built $(basename "$SDIST") and $(basename "$WHEEL")"

echo "== contents: every module and the weights, in both [$((SECONDS - started)) s]"
"$PY" .ci/wheel_contents.py "$ROOT" "$WHEEL" "$SDIST"

echo "== install the wheel into a fresh virtual environment [$((SECONDS - started)) s]"
"$PY" -m venv "$WORK/venv"
VENV=$WORK/venv/bin
"$VENV/pip" install --quiet -c "$ROOT/constraints.txt" "$WHEEL[test]"

echo "== run the installed package from $WORK/run [$((SECONDS - started)) s]"
# tests/ with the settings and README it reads, but no pnpfast/ beside it; the conftest above
# tests/ refuses to run when the pnpfast it imports is not the installed one
cp -r "$ROOT/tests" "$ROOT/pyproject.toml" "$ROOT/README.md" "$WORK/run/"
find "$WORK/run/tests" -name __pycache__ -prune -exec rm -rf {} +
cat >"$WORK/run/conftest.py" <<'EOF'
import sys
from pathlib import Path

import pnpfast

_where = Path(pnpfast.__file__).resolve()
assert _where.is_relative_to(Path(sys.prefix).resolve()), f"not the installed pnpfast: {_where}"
EOF
cd "$WORK/run"
"$VENV/python" - <<'EOF'
import sys
from pathlib import Path

import pnpfast

prefix = Path(sys.prefix).resolve()
for module in (pnpfast, pnpfast.train, pnpfast.kernels, pnpfast.cli, pnpfast.io):
    where = Path(module.__file__).resolve()
    assert where.is_relative_to(prefix), f"{module.__name__} comes from {where}, not {prefix}"
assert "triton" not in sys.modules, "import pnpfast imported triton"

import torch

D = pnpfast.denoisers.load()
x = pnpfast.data.astronaut(32)
y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
out = D(y, 0.1)
gain = float(pnpfast.metrics.psnr(out, x) - pnpfast.metrics.psnr(y, x))
assert out.shape == x.shape and gain > 3, f"shipped denoiser gained {gain:.2f} dB only"
print(f"pnpfast {pnpfast.__version__} from {Path(pnpfast.__file__).parent}; load() gains {gain:.1f} dB")
EOF
"$VENV/pnpfast" backends
"$VENV/pnpfast" demo -o "$WORK/run/demo"

echo "== smoke tests against the installed package [$((SECONDS - started)) s]"
# the tests look for ../shared/data beside their repository root, here $WORK: point them at ours
export PNPFAST_SHARED_DATA=${PNPFAST_SHARED_DATA:-$(dirname "$ROOT")/shared/data}
"$VENV/pytest" -q -p no:cacheprovider --rootdir "$WORK/run" \
  tests/test_package.py tests/test_readme.py tests/test_bundled_data.py tests/test_dispatch.py \
  tests/test_cli.py tests/ops/test_fft_prox.py tests/denoisers/test_denoiser_load.py \
  tests/solvers/test_solvers.py tests/fuzz \
  -k "not torch_compile and not wheel_check"

echo "== wheel check passed in $((SECONDS - started)) s"

#!/usr/bin/env bash
# One-shot check of pnpfast on a GPU machine (no network needed).
#
#   bash benchmarks/gpu_check.sh [OUTDIR]        OUTDIR defaults to $OUT, else ./gpu_check_out
#
# Records nvidia-smi and versions, builds the CUDA extension pnpfast._C, prints
# pnpfast.backends(), runs the whole test suite and the op tests with the reference forced,
# runs every benchmarks/bench_*.py on CUDA and the reports (this run, and all results). Each step goes on when an earlier
# one failed; OUTDIR/summary.tsv lists every step with its exit code and duration, and the
# script exits nonzero when any step failed. New benchmark rows go both to OUTDIR/results/
# and to benchmarks/results/ of this checkout.

set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${1:-${OUT:-./gpu_check_out}}
mkdir -p "$OUTDIR/results"
OUTDIR=$(cd "$OUTDIR" && pwd)
SUMMARY="$OUTDIR/summary.tsv"
FAILED=0

cd "$ROOT" || exit 2
unset TRITON_INTERPRET  # kernels must run on the GPU here, not in the interpreter
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export PYTHONDONTWRITEBYTECODE=1

printf 'step\texit_code\tseconds\tlog\n' >"$SUMMARY"

# step NAME LOGFILE COMMAND...: run COMMAND with stdout and stderr to OUTDIR/LOGFILE.
step() {
    local name=$1 log=$2
    shift 2
    local t0 t1 rc
    t0=$(date +%s)
    echo "== $name (log: $log)"
    "$@" >"$OUTDIR/$log" 2>&1
    rc=$?
    t1=$(date +%s)
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((t1 - t0))" "$log" >>"$SUMMARY"
    if [ "$rc" -ne 0 ]; then
        FAILED=1
        echo "   FAILED with exit code $rc; last lines:"
        tail -n 15 "$OUTDIR/$log" | sed 's/^/   | /'
    fi
    return 0
}

versions() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    git status --porcelain 2>/dev/null | sed 's/^/git status: /'
    python3 --version
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cuda available", torch.cuda.is_available())'
    python3 -c 'import triton; print("triton", triton.__version__)'
    nvcc --version || "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version
}

build() {
    CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} PNPFAST_BUILD_CUDA=1 \
        python3 -m pip install --no-index --no-build-isolation --no-deps -v -e .
}

bench() {
    local script=$1 name tmp rc
    name=$(basename "$script" .py)
    name=${name#bench_}
    tmp="$OUTDIR/results/.new-$name.jsonl"
    rm -f "$tmp"
    python3 "$script" --device cuda --out "$tmp"
    rc=$?
    if [ -f "$tmp" ]; then
        cat "$tmp" >>"$OUTDIR/results/$name.jsonl"
        mkdir -p "$ROOT/benchmarks/results"
        cat "$tmp" >>"$ROOT/benchmarks/results/$name.jsonl"
        rm -f "$tmp"
    fi
    return "$rc"
}

step nvidia-smi nvidia-smi.txt nvidia-smi
step versions versions.txt versions
step build build.log build
step backends backends.txt python3 -c 'import pnpfast; print(pnpfast.backends())'
step pytest-all pytest-all.txt \
    python3 -m pytest -q -p no:cacheprovider --junitxml="$OUTDIR/junit-all.xml"
step pytest-ops-reference pytest-ops-reference.txt \
    env PNPFAST_BACKEND=reference \
    python3 -m pytest -q -p no:cacheprovider --junitxml="$OUTDIR/junit-ops-reference.xml" tests/ops

for script in benchmarks/bench_*.py; do
    [ -e "$script" ] || continue
    base=$(basename "$script" .py)
    step "$base" "$base.txt" bench "$script"
done

step report report.md python3 benchmarks/report.py --results "$OUTDIR/results"
step report-all report-all.md python3 benchmarks/report.py

echo
column -t -s "$(printf '\t')" "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
if [ "$FAILED" -ne 0 ]; then
    echo "gpu_check: some steps failed (see $SUMMARY)"
    exit 1
fi
echo "gpu_check: all steps passed; outputs in $OUTDIR"
exit 0

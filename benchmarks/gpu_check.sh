#!/usr/bin/env bash
# Check pnpfast on a GPU machine (no network needed): build, tests on CUDA, every benchmark.
#
#   bash benchmarks/gpu_check.sh [--only PATTERN[,PATTERN...]] [--budget SECONDS] [--no-build]
#                                [--ignore-versions] [--list] [OUTDIR]
#
# Steps (--list prints them): supported, nvidia-smi, versions, build, backends, pytest-ops,
# pytest-solvers, pytest-rest, pytest-ops-reference, one bench_NAME per benchmarks/bench_*.py,
# quality_precision (benchmarks/quality_precision.py: the denoiser in bf16/fp16, channels_last,
# CUDA graphs vs fp32, rows to precision.jsonl), report. --only runs the steps whose names match one of the comma-separated shell patterns,
# and always the first five (the build is cheap with a prebuilt extension, see below;
# --no-build leaves the package as installed). The first, supported
# (benchmarks/gpu_versions.py), prints Python, torch, triton, CUDA and the GPU next to the
# ranges pnpfast supports (pyproject.toml) and the versions CI tests, and the steps this run
# will take; outside the supported range the check stops there (exit 2) unless
# --ignore-versions. Each step goes on when an earlier one failed;
# OUTDIR/summary.tsv lists every step with its exit code and duration, and the script exits
# nonzero when any failed, timed out or was skipped.
#
# --budget SECONDS: no step starts after that many seconds, and a running step is stopped when
# they are up ("timeout" in summary.tsv), so one call of the device tool (10 minutes at most)
# ends with its outputs written: use about 60 s under the call's limit.
#
# On the device machine ($OUT set) OUTDIR defaults to /tmp/gpu_check, and after every step
# $OUT gets gpu_check.tar.gz (all logs, JUnit files, the new benchmark rows and this checkout's
# benchmarks/results with its plots), summary.tsv and the built extension _C*.so. Put that
# .so into .prebuilt/ (ignored by git) and carry ".prebuilt" in the next call: the build step
# then installs the package around it instead of compiling again. Carry ".gpudata" made by
# benchmarks/gpu_pack.sh for the benchmarks that read ../shared/data. Without $OUT, OUTDIR
# defaults to ./gpu_check_out. New benchmark rows go to OUTDIR/results/ and to
# benchmarks/results/ of this checkout.
#
# BENCH_ARGS_<name> (e.g. BENCH_ARGS_convergent="--part throughput") adds arguments to one
# benchmark's command line (BENCH_ARGS_precision: quality_precision's). Defaults here for the
# benchmarks whose own defaults are sized for a 2-core CPU (set one empty to drop it):
# BENCH_ARGS_restore="--images 64 --crop 256 --reps 3" (256x256 images, where the issue's GPU
# target is set; a few minutes), BENCH_ARGS_precision="--images 32 --crop 256".

set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ONLY=""
BUDGET=0
LIST=0
NO_BUILD=0
IGNORE_VERSIONS=0
OUTDIR=""
while [ $# -gt 0 ]; do
    case $1 in
        --only) ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#--only=}; shift ;;
        --budget) BUDGET=$2; shift 2 ;;
        --budget=*) BUDGET=${1#--budget=}; shift ;;
        --list) LIST=1; shift ;;
        --no-build) NO_BUILD=1; shift ;;
        --ignore-versions) IGNORE_VERSIONS=1; shift ;;
        -h|--help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
        *) OUTDIR=$1; shift ;;
    esac
done

cd "$ROOT" || exit 2
BENCHES=()
for script in benchmarks/bench_*.py; do
    [ -e "$script" ] && BENCHES+=("$script")
done
STEPS=(supported nvidia-smi versions build backends pytest-ops pytest-solvers pytest-rest
    pytest-ops-reference)
for script in "${BENCHES[@]}"; do
    STEPS+=("$(basename "$script" .py)")
done
STEPS+=(quality_precision report)
if [ "$LIST" -eq 1 ]; then
    printf '%s\n' "${STEPS[@]}"
    exit 0
fi

if [ -z "$OUTDIR" ]; then
    if [ -n "${OUT:-}" ]; then OUTDIR=/tmp/gpu_check; else OUTDIR=./gpu_check_out; fi
fi
mkdir -p "$OUTDIR/results"
OUTDIR=$(cd "$OUTDIR" && pwd)
SUMMARY="$OUTDIR/summary.tsv"
FAILED=0
T_START=$(date +%s)

unset TRITON_INTERPRET  # kernels must run on the GPU here, not in the interpreter
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
if [ -z "${PNPFAST_SHARED_DATA:-}" ] && [ -d "$ROOT/.gpudata" ]; then
    export PNPFAST_SHARED_DATA="$ROOT/.gpudata"
fi
export BENCH_ARGS_restore=${BENCH_ARGS_restore-"--images 64 --crop 256 --reps 3"}
export BENCH_ARGS_precision=${BENCH_ARGS_precision-"--images 32 --crop 256"}

printf 'step\texit_code\tseconds\tlog\n' >"$SUMMARY"

selected() {
    local name=$1 pat
    [ "$name" = build ] && [ "$NO_BUILD" -eq 1 ] && return 1
    [ -z "$ONLY" ] && return 0
    case $name in supported | nvidia-smi | versions | build | backends) return 0 ;; esac
    IFS=, read -ra pats <<<"$ONLY"
    for pat in "${pats[@]}"; do
        # shellcheck disable=SC2254
        case $name in $pat) return 0 ;; esac
    done
    return 1
}

# collect: on the device machine, copy what this run has so far to $OUT (kept under its
# limits: three files, no folders).
collect() {
    [ -n "${OUT:-}" ] || return 0
    cp "$SUMMARY" "$OUT/summary.tsv"
    tar -czf "$OUT/gpu_check.tar.gz.part" -C "$OUTDIR" . -C "$ROOT" benchmarks/results \
        2>/dev/null && mv "$OUT/gpu_check.tar.gz.part" "$OUT/gpu_check.tar.gz"
    local so
    for so in "$ROOT"/pnpfast/_C*.so; do
        [ -e "$so" ] && cp "$so" "$OUT/"
    done
    return 0
}

# step NAME LOGFILE COMMAND...: run COMMAND with stdout and stderr to OUTDIR/LOGFILE.
step() {
    local name=$1 log=$2
    shift 2
    selected "$name" || return 0
    local t0 t1 rc left=0
    t0=$(date +%s)
    if [ "$BUDGET" -gt 0 ]; then
        left=$((BUDGET - (t0 - T_START)))
        if [ "$left" -le 5 ]; then
            printf '%s\t%s\t%s\t%s\n' "$name" skipped 0 "(budget of ${BUDGET} s spent)" >>"$SUMMARY"
            echo "== $name: skipped (budget spent)"
            FAILED=1
            return 0
        fi
    fi
    echo "== $name (log: $log)"
    if [ "$left" -gt 0 ]; then
        # through bash -c, since the command may be one of the exported functions below
        timeout --kill-after=10 "$left" bash -c '"$@"' _ "$@" >"$OUTDIR/$log" 2>&1
    else
        "$@" >"$OUTDIR/$log" 2>&1
    fi
    rc=$?
    LAST_RC=$rc
    t1=$(date +%s)
    [ "$left" -gt 0 ] && [ "$rc" -eq 124 ] && rc=timeout
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((t1 - t0))" "$log" >>"$SUMMARY"
    if [ "$rc" != 0 ]; then
        FAILED=1
        echo "   FAILED ($rc); last lines:"
        tail -n 15 "$OUTDIR/$log" | sed 's/^/   | /'
    fi
    collect
    return 0
}

versions() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    git status --porcelain 2>/dev/null | sed 's/^/git status: /'
    echo "shared data: ${PNPFAST_SHARED_DATA:-../shared/data}"
    python3 --version
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cuda available", torch.cuda.is_available())'
    python3 -c 'import triton; print("triton", triton.__version__)'
    nvcc --version || "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version
}

# build: install the package in place; compile pnpfast._C (sm_90 only unless
# TORCH_CUDA_ARCH_LIST says otherwise) unless .prebuilt/ holds one for this Python.
build() {
    local suffix prebuilt
    suffix=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
    prebuilt="$ROOT/.prebuilt/_C$suffix"
    if [ -f "$prebuilt" ]; then
        echo "using the prebuilt extension $prebuilt"
        cp "$prebuilt" "$ROOT/pnpfast/_C$suffix"
        PNPFAST_BUILD_CUDA=0 python3 -m pip install --no-index --no-build-isolation --no-deps -e . &&
            python3 -c 'import pnpfast._C' && return 0
        echo "the prebuilt extension does not load; compiling"
        rm -f "$ROOT/pnpfast/_C$suffix"
    fi
    CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} PNPFAST_BUILD_CUDA=1 \
        TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} \
        python3 -m pip install --no-index --no-build-isolation --no-deps -v -e .
}

# bench SCRIPT [NAME]: run SCRIPT --device cuda --out TMP $BENCH_ARGS_NAME and append its rows
# to results/NAME.jsonl (NAME: the script's name without bench_).
bench() {
    local script=$1 name tmp rc args
    name=${2:-$(basename "$script" .py)}
    name=${name#bench_}
    args="BENCH_ARGS_$name"
    tmp="$OUTDIR/results/.new-$name.jsonl"
    rm -f "$tmp"
    # shellcheck disable=SC2086
    python3 "$script" --device cuda --out "$tmp" ${!args:-}
    rc=$?
    if [ -f "$tmp" ]; then
        cat "$tmp" >>"$OUTDIR/results/$name.jsonl"
        mkdir -p "$ROOT/benchmarks/results"
        cat "$tmp" >>"$ROOT/benchmarks/results/$name.jsonl"
        rm -f "$tmp"
    fi
    return "$rc"
}

pytest_step() {
    local name=$1 backend=$2
    shift 2
    step "$name" "$name.txt" env PNPFAST_BACKEND="$backend" python3 -m pytest -q \
        -p no:cacheprovider --junitxml="$OUTDIR/junit-$name.xml" "$@"
}
export ROOT OUTDIR
export -f versions build bench

WILL_RUN=()
for s in "${STEPS[@]}"; do
    selected "$s" && WILL_RUN+=("$s")
done
LAST_RC=0
step supported supported.txt python3 benchmarks/gpu_versions.py \
    --steps "$(IFS=,; echo "${WILL_RUN[*]}")" --arch-list "${TORCH_CUDA_ARCH_LIST:-9.0}"
[ -f "$OUTDIR/supported.txt" ] && sed 's/^/   /' "$OUTDIR/supported.txt"
if [ "$LAST_RC" -eq 2 ] && [ "$IGNORE_VERSIONS" -eq 0 ]; then
    collect
    echo "gpu_check: refused: a version is outside what pnpfast supports (see above);" \
        "--ignore-versions runs the check anyway"
    exit 2
fi
step nvidia-smi nvidia-smi.txt nvidia-smi
step versions versions.txt versions
step build build.log build
step backends backends.txt python3 -c 'import pnpfast; print(pnpfast.backends())'
pytest_step pytest-ops "${PNPFAST_BACKEND:-}" tests/ops
pytest_step pytest-solvers "${PNPFAST_BACKEND:-}" tests/solvers
pytest_step pytest-rest "${PNPFAST_BACKEND:-}" tests --ignore=tests/ops --ignore=tests/solvers
pytest_step pytest-ops-reference reference tests/ops

for script in "${BENCHES[@]}"; do
    base=$(basename "$script" .py)
    step "$base" "$base.txt" bench "$script"
done
step quality_precision quality_precision.txt bench benchmarks/quality_precision.py precision

step report report.md python3 benchmarks/report.py --results "$OUTDIR/results"

echo
column -t -s "$(printf '\t')" "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
collect
if [ "$FAILED" -ne 0 ]; then
    echo "gpu_check: some steps failed, timed out or were skipped (see $SUMMARY)"
    exit 1
fi
echo "gpu_check: all steps passed; outputs in $OUTDIR${OUT:+ and $OUT}"
exit 0

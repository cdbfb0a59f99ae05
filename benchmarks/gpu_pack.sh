#!/usr/bin/env bash
# Copy the part of ../shared/data that the GPU benchmarks read into .gpudata/ of this checkout,
# so that a call of the device tool can carry it (../shared does not travel; the working tree
# and carried paths travel up to 64 MiB in all). gpu_check.sh points PNPFAST_SHARED_DATA at
# .gpudata when it is there.
#
#   bash benchmarks/gpu_pack.sh [ITEM ...]
#
# ITEM: a path under ../shared/data (default: the image sets, kernels and public weights that
# benchmarks/bench_*.py use). Tests that need other files skip on the GPU machine and run in CI.

set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${PNPFAST_SHARED_DATA:-$ROOT/../shared/data}
DEST=$ROOT/.gpudata
LIMIT_MB=${GPU_PACK_LIMIT_MB:-50}

if [ $# -eq 0 ]; then
    set -- manifest.json kernels \
        images/Set3C images/Set5 images/Set12 images/Set14 images/BSD68 images/CBSD68 \
        weights/kadkhodaie_bfcnn weights/kair/dncnn_25.pth weights/saoyan_dncnn/DnCNN-B.pth \
        weights/mohan_bias_free/bf_dncnn_gray_sigma0-55.pt \
        weights/mohan_bias_free/dncnn_withbias_gray_sigma0-55.pt
fi
[ -d "$SRC" ] || { echo "gpu_pack: no shared data at $SRC" >&2; exit 2; }

rm -rf "$DEST"
for item in "$@"; do
    [ -e "$SRC/$item" ] || { echo "gpu_pack: $SRC/$item does not exist" >&2; exit 2; }
    mkdir -p "$DEST/$(dirname "$item")"
    cp -r "$SRC/$item" "$DEST/$item"
done
grep -qxF '/.gpudata/' "$ROOT/.git/info/exclude" 2>/dev/null ||
    grep -qxF '.gpudata/' "$ROOT/.gitignore" ||
    echo "gpu_pack: warning: .gpudata/ is not ignored by git, so it would travel twice" >&2

size_mb=$(du -sm "$DEST" | cut -f1)
echo "gpu_pack: $size_mb MB in $DEST; carry it with carry=[\".gpudata\"]"
if [ "$size_mb" -gt "$LIMIT_MB" ]; then
    echo "gpu_pack: over GPU_PACK_LIMIT_MB=$LIMIT_MB: name fewer items" >&2
    exit 1
fi

#!/usr/bin/env bash
# Quantizes the reference model with lowbit for each scheme (compressed-tensors export + fake-quant export)
# and loads the export with transformers + compressed-tensors (tools/interop/load_with_transformers.py).
# Usage: tools/interop/run_interop.sh BUILD_DIR [MODEL] [SCHEMES...]
set -euo pipefail
BUILD=${1:?build dir}
MODEL=${2:-/work/shared/models/lowbit-ref-100m}
SCHEMES="${*:3}"
SCHEMES=${SCHEMES:-W4A16 W4A16_ASYM W8A8 FP8}
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=$(cd "$HERE/../../../shared" && pwd)
CALIB=$SHARED/data/calib/pile_like_calibration.txt
TEXT=$SHARED/data/eval/ref100m_heldout.txt
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for s in $SCHEMES; do
  "$BUILD/lowbit" quantize "$MODEL" --scheme "$s" --calib "$CALIB" -o "$TMP/$s" --json > "$TMP/$s.quant.json"
  "$BUILD/lowbit" quantize "$MODEL" --scheme "$s" --format fake-quant -o "$TMP/$s.fq" --json > /dev/null
  /work/venv/bin/python "$HERE/load_with_transformers.py" --base "$MODEL" --export "$TMP/$s" \
    --fake-quant "$TMP/$s.fq" --text "$TEXT" --tokens 256 --json 2>/dev/null | tail -1
done

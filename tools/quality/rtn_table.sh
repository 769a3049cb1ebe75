#!/usr/bin/env bash
# RTN quality table for docs/QUALITY.md: quantizes a model with every scheme of the quantization-core issue,
# then measures perplexity (lowbit's definition, docs/PERPLEXITY.md) on the given texts. Developer tool: needs
# the reference model and eval texts (../shared); writes one JSON line per (config, text) to $OUT/results.jsonl.
#
#   tools/quality/rtn_table.sh [BUILD_DIR] [MAX_TOKENS]
#   MODEL=../shared/models/lowbit-ref-100m OUT=/tmp/quality tools/quality/rtn_table.sh build/release 16384
#   TEXT_FILES=../shared/data/eval/ref100m_heldout.txt OUT=/tmp/quality-full tools/quality/rtn_table.sh build/release 0
set -euo pipefail
BUILD=${1:-build/release}
MAX_TOKENS=${2:-16384}
LOWBIT=$BUILD/lowbit
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/models/lowbit-ref-100m}
OUT=${OUT:-/tmp/lowbit-quality}
CALIB=$SHARED/data/calib/pile_like_calibration.txt
# TEXT_FILES (space-separated) overrides the texts; MAX_TOKENS 0 means the whole text.
read -r -a TEXTS <<< "${TEXT_FILES:-$SHARED/data/eval/ref100m_heldout.txt $SHARED/data/eval/wikitext2_test.raw}"
mkdir -p "$OUT"
: > "$OUT/results.jsonl"

# name | quantize flags (empty name "bf16" = the model itself)
CONFIGS=(
  "bf16|"
  "W8A16|--scheme W8A16"
  "W8A8|--scheme W8A8"
  "FP8|--scheme FP8 --calib $CALIB"
  "FP8_DYNAMIC|--scheme FP8_DYNAMIC"
  "W4A16 g128|--scheme W4A16 --group-size 128"
  "W4A16 g64|--scheme W4A16 --group-size 64"
  "W4A16 g32|--scheme W4A16 --group-size 32"
  "W4A16_ASYM g128|--scheme W4A16_ASYM --group-size 128"
  "W4A16_ASYM g64|--scheme W4A16_ASYM --group-size 64"
  "W4A16_ASYM g32|--scheme W4A16_ASYM --group-size 32"
  "int8 per-tensor (weight-only)|--scheme int8_per_tensor_symmetric"
  "int8 per-channel (weight-only)|--scheme int8_per_channel_symmetric"
  "fp8_e4m3 per-tensor (weight-only)|--scheme fp8_e4m3_per_tensor_symmetric"
  "fp8_e4m3 per-channel (weight-only)|--scheme fp8_e4m3_per_channel_symmetric"
  "fp8_e5m2 per-channel (weight-only)|--scheme fp8_e5m2_per_channel_symmetric"
  "W8A8 + FP8 KV cache|--scheme W8A8 --kv-cache fp8 --calib $CALIB"
)

for entry in "${CONFIGS[@]}"; do
  name=${entry%%|*}
  flags=${entry#*|}
  dir=$MODEL
  qjson='{}'
  if [ -n "$flags" ]; then
    dir=$OUT/$(echo "$name" | tr -c 'A-Za-z0-9_' '_')
    # shellcheck disable=SC2086
    if ! qjson=$("$LOWBIT" quantize "$MODEL" $flags -o "$dir" --overwrite --json 2>"$OUT/err.txt"); then
      echo "{\"config\": \"$name\", \"error\": $(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$OUT/err.txt")}" >> "$OUT/results.jsonl"
      echo "$name: quantize failed" >&2
      continue
    fi
  fi
  bytes=$(du -sb --exclude='*.json' --exclude='tokenizer*' "$dir" | cut -f1)
  for text in "${TEXTS[@]}"; do
    if ppl=$("$LOWBIT" ppl "$dir" --data "$text" --ctx 512 --max-tokens "$MAX_TOKENS" --json 2>"$OUT/err.txt"); then
      echo "{\"config\": \"$name\", \"text\": \"$(basename "$text")\", \"weights_bytes\": $bytes, \"quantize\": $qjson, \"ppl\": $ppl}" >> "$OUT/results.jsonl"
      echo "$name $(basename "$text"): $(echo "$ppl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')"
    else
      echo "$name $(basename "$text"): ppl failed: $(cat "$OUT/err.txt")" >&2
    fi
  done
done
echo "results: $OUT/results.jsonl"

#!/usr/bin/env bash
# Calibration-method quality table for docs/QUALITY.md (issue 4): RTN vs GPTQ vs AWQ vs AWQ+GPTQ at W4A16
# (g128 sym and asym, g32) and RTN vs SmoothQuant vs SmoothQuant+GPTQ at W8A8, on the reference model.
# For each config: `lowbit quantize` (its --json: time, peak RSS, pipeline log) and `lowbit compare` against
# the bf16 model on each text (ppl of both, KL divergence, top-1 agreement). Developer tool: needs
# ../shared. One JSON line per (config, text) in $OUT/results.jsonl; format with pipeline_format.py.
#
#   tools/quality/pipeline_table.sh [BUILD_DIR] [MAX_TOKENS]      (MAX_TOKENS 0 = whole texts)
#   OUT=/tmp/pipeline-quality tools/quality/pipeline_table.sh build/release 16384
set -euo pipefail
BUILD=${1:-build/release}
MAX_TOKENS=${2:-16384}
LOWBIT=$BUILD/lowbit
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/models/lowbit-ref-100m}
OUT=${OUT:-/tmp/lowbit-pipeline-quality}
CALIB=${CALIB:-$SHARED/data/calib/pile_like_calibration.txt}
SEED=${SEED:-42}  # calibration sample seed (lowbit's default)
read -r -a TEXTS <<< "${TEXT_FILES:-$SHARED/data/eval/ref100m_heldout.txt $SHARED/data/eval/wikitext2_test.raw}"
mkdir -p "$OUT"
: > "$OUT/results.jsonl"

# name | method | quantize flags. Calibration: the default 128 samples x 512 tokens, seed $SEED. A method label
# may carry a suffix after a space ("gptq true-seq"): the word before it is what --method gets.
CONFIGS=(
  "W4A16 g128|rtn|--scheme W4A16"
  "W4A16 g128|gptq|--scheme W4A16"
  "W4A16 g128|awq|--scheme W4A16"
  "W4A16 g128|awq+gptq|--scheme W4A16"
  "W8A8|rtn|--scheme W8A8"
  "W8A8|smoothquant|--scheme W8A8"
  "W8A8|smoothquant+gptq|--scheme W8A8"
  "W4A16_ASYM g128|rtn|--scheme W4A16_ASYM"
  "W4A16_ASYM g128|gptq|--scheme W4A16_ASYM"
  "W4A16_ASYM g128|awq|--scheme W4A16_ASYM"
  "W4A16_ASYM g128|awq+gptq|--scheme W4A16_ASYM"
  "W4A16 g32|rtn|--scheme W4A16 --group-size 32"
  "W4A16 g32|gptq|--scheme W4A16 --group-size 32"
  "W4A16 g32|awq|--scheme W4A16 --group-size 32"
  "W4A16 g32|awq+gptq|--scheme W4A16 --group-size 32"
  "W4A16 g128|gptq true-seq|--scheme W4A16 --true-sequential"
  "W4A16_ASYM g128|gptq true-seq|--scheme W4A16_ASYM --true-sequential"
  "W4A16 g32|gptq true-seq|--scheme W4A16 --group-size 32 --true-sequential"
  "W8A8|smoothquant+gptq true-seq|--scheme W8A8 --true-sequential"
)
for entry in "${CONFIGS[@]}"; do
  IFS='|' read -r name label flags <<< "$entry"
  if [ -n "${CONFIG_FILTER:-}" ] && ! [[ "$name $label" =~ $CONFIG_FILTER ]]; then continue; fi
  method=${label%% *}
  dir=$OUT/$(echo "${name}_${label}" | tr -c 'A-Za-z0-9_' '_')
  calib=()
  [ "$method" != rtn ] && calib=(--calib "$CALIB" --seed "$SEED")
  # shellcheck disable=SC2086
  if ! "$LOWBIT" quantize "$MODEL" $flags --method "$method" "${calib[@]}" -o "$dir" --overwrite --json \
      > "$dir.quantize.json" 2> "$dir.quantize.log"; then
    echo "{\"config\": \"$name\", \"method\": \"$label\", \"error\": $(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$dir.quantize.log")}" >> "$OUT/results.jsonl"
    continue
  fi
  for text in "${TEXTS[@]}"; do
    cmp=$("$LOWBIT" compare "$MODEL" "$dir" --data "$text" --ctx 512 --max-tokens "$MAX_TOKENS" --json 2>/dev/null)
    python3 - "$name" "$label" "$text" "$dir.quantize.json" "$cmp" >> "$OUT/results.jsonl" <<'PY'
import json, os, sys
name, method, text, qpath, cmp = sys.argv[1:6]
q = json.load(open(qpath))
q.pop("calibration_offsets", None)
if "pipeline" in q:
    q["pipeline"].pop("layers", None)
print(json.dumps({"config": name, "method": method, "text": os.path.basename(text), "compare": json.loads(cmp),
                  "quantize": q}))
PY
  done
  echo "done: $name $label" >&2
done

#!/usr/bin/env bash
# Side-by-side of lowbit and llm-compressor (GPTQ, AWQ, SmoothQuant+GPTQ) on the same calibration samples,
# both evaluated by the same evaluator (lowbit ppl). See tools/peers/README.md.
#
#   tools/peers/compare_gptq_awq.sh [--num-samples 128] [--seq-len 512] [--group-size 128] [--threads 2]
#       [--pairs "gptq:W4A16 awq:W4A16 smoothquant+gptq:W8A8"] [--work /tmp/lowbit-peers] [--no-ppl]
#       [--baseline] [--dtype auto|bfloat16|float32] [--lowbit-args "--awq-search-samples 0"]
#       [--ppl-max-tokens N]   (smoke tests: score only the first N tokens of the held-out text)
#
# For each method:scheme pair: lowbit quantize (its --json saved), llm-compressor on lowbit's calibration
# offsets, lowbit ppl on both outputs; `uptime` is logged before and after every step (the timings mean
# little without the machine's load). Prints a Markdown table at the end (also WORK/table.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOWBIT=${LOWBIT:-$ROOT/build/release/lowbit}
PEERS_PY=${PEERS_PY:-/work/venv-peers/bin/python}
MODEL=${MODEL:-/work/shared/models/lowbit-ref-100m}
CALIB=${CALIB:-/work/shared/data/calib/pile_like_calibration.txt}
EVAL=${EVAL:-/work/shared/data/eval/ref100m_heldout.txt}
CTX=512
NUM_SAMPLES=128
SEQ_LEN=512
GROUP_SIZE=128
THREADS=2
DTYPE=auto
PAIRS="gptq:W4A16 awq:W4A16 smoothquant+gptq:W8A8"
WORK=/tmp/lowbit-peers
RUN_PPL=1
BASELINE=0
LOWBIT_ARGS=""
PPL_MAX_TOKENS=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --num-samples) NUM_SAMPLES=$2; shift 2 ;;
    --seq-len) SEQ_LEN=$2; shift 2 ;;
    --group-size) GROUP_SIZE=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --dtype) DTYPE=$2; shift 2 ;;
    --no-ppl) RUN_PPL=0; shift ;;
    --baseline) BASELINE=1; shift ;;
    --lowbit-args) LOWBIT_ARGS=$2; shift 2 ;;
    --ppl-max-tokens) PPL_MAX_TOKENS=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$WORK"
LOAD_LOG=$WORK/uptime.log
note_load() { echo "$1 $(uptime)" | tee -a "$LOAD_LOG" >&2; }

ppl() {  # ppl CHECKPOINT NAME: lowbit ppl, the same evaluator for both tools
  [[ $RUN_PPL == 1 ]] || return 0
  note_load "before ppl $2"
  "$LOWBIT" ppl "$1" --data "$EVAL" --ctx "$CTX" --max-tokens "$PPL_MAX_TOKENS" --threads "$THREADS" --json > "$WORK/ppl_$2.json" \
    2> "$WORK/ppl_$2.err" || echo "lowbit ppl failed on $1 (see $WORK/ppl_$2.err)" >&2
  note_load "after ppl $2"
}

if [[ $BASELINE == 1 ]]; then ppl "$MODEL" baseline; fi

for pair in $PAIRS; do
  method=${pair%%:*}
  scheme=${pair#*:}
  tag="${method//+/_}_${scheme}"
  group_args=()
  [[ $scheme == W8A8 ]] || group_args=(--group-size "$GROUP_SIZE")

  note_load "before lowbit $tag"
  "$LOWBIT" quantize "$MODEL" --scheme "$scheme" "${group_args[@]}" --method "$method" --calib "$CALIB" \
    --num-samples "$NUM_SAMPLES" --seq-len "$SEQ_LEN" --threads "$THREADS" --overwrite --json $LOWBIT_ARGS \
    -o "$WORK/lowbit_$tag" > "$WORK/quant_lowbit_$tag.json" 2> "$WORK/quant_lowbit_$tag.err"
  note_load "after lowbit $tag"

  note_load "before llmcompressor $tag"
  if ! "$PEERS_PY" "$ROOT/tools/peers/llmcompressor_quantize.py" "$MODEL" --calib "$CALIB" --method "$method" \
    --scheme "$scheme" "${group_args[@]}" --num-samples "$NUM_SAMPLES" --seq-len "$SEQ_LEN" \
    --threads "$THREADS" --dtype "$DTYPE" --lowbit-json "$WORK/quant_lowbit_$tag.json" -o "$WORK/llmc_$tag" \
    --json-out "$WORK/quant_llmc_$tag.json" > "$WORK/quant_llmc_$tag.log" 2> "$WORK/quant_llmc_$tag.err"; then
    echo "llm-compressor failed for $tag (see $WORK/quant_llmc_$tag.err)" >&2
  fi
  note_load "after llmcompressor $tag"

  ppl "$WORK/lowbit_$tag" "lowbit_$tag"
  [[ -d $WORK/llmc_$tag ]] && ppl "$WORK/llmc_$tag" "llmc_$tag"

  if [[ $method == *gptq && -d $WORK/llmc_$tag ]]; then
    "$PEERS_PY" "$ROOT/tools/peers/compare_codes.py" "$WORK/lowbit_$tag" "$WORK/llmc_$tag" --original "$MODEL" \
      --json-out "$WORK/codes_$tag.json" > "$WORK/codes_$tag.txt" || echo "code comparison failed for $tag" >&2
  fi
done

"$PEERS_PY" "$ROOT/tools/peers/format_comparison.py" "$WORK" --pairs "$PAIRS" | tee "$WORK/table.md"

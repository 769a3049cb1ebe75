#!/usr/bin/env bash
# Reproduces the selective-quantization table of docs/QUALITY.md ("Sensitivity-guided mixed precision") on
# the reference model: two sensitivity scans (int8 per-channel and W4A16), then for every row a quantization
# (RTN; GPTQ for the last four), `lowbit compare` against bf16 on the first 16,384 held-out tokens (ctx 512) and a short
# `lowbit bench` run for the peak RSS of inference. Rows are printed as Markdown on stdout and collected in
# $OUT/table.md; every command's JSON output stays in $OUT.
#
#   tools/quality/sensitivity_table.sh [LOWBIT_BINARY]
# Environment: MODEL, CALIB, DATA, OUT, THREADS (default: all cores), ROWS (a regex over row ids to run only
# some rows; the scans always run unless their reports exist).
set -euo pipefail

LOWBIT=${1:-build/release/lowbit}
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/models/lowbit-ref-100m}
CALIB=${CALIB:-$SHARED/data/calib/pile_like_calibration.txt}
DATA=${DATA:-$SHARED/data/eval/ref100m_heldout.txt}
OUT=${OUT:-/tmp/lowbit_sensitivity_table}
THREADS=${THREADS:-0}
ROWS=${ROWS:-.}
INT8=int8_per_channel_symmetric  # int8 weights, one scale per output channel, 16-bit activations
mkdir -p "$OUT"

scan() {  # scan NAME SCHEME
  if [[ ! -f $OUT/$1/sensitivity.json ]]; then
    "$LOWBIT" sensitivity "$MODEL" --scheme "$2" --calib "$CALIB" --threads "$THREADS" -o "$OUT/$1" \
      > "$OUT/$1.log" 2>&1
  fi
  echo "scan $2: $(jq -r '.timing.seconds' "$OUT/$1/sensitivity.json") s" >&2
}
scan report_int8 "$INT8"
scan report_w4a16 W4A16

# row ID LABEL QUANTIZE-ARGS... : quantizes (unless ID is bf16), compares, benches, prints a table row.
row() {
  local id=$1 label=$2
  shift 2
  [[ $id =~ $ROWS ]] || return 0
  local dir=$MODEL size kept="" budget=""
  if [[ $id == bf16 ]]; then
    size=$(jq '.total_bytes_before' "$OUT/w4a16_all.quantize.json")
  else
    dir=$OUT/$id
    "$LOWBIT" quantize "$MODEL" "$@" --threads "$THREADS" -o "$dir" --overwrite --json > "$OUT/$id.quantize.json"
    size=$(jq '.total_bytes_after' "$OUT/$id.quantize.json")
    kept=$(jq -r '(.selection.kept // []) | length' "$OUT/$id.quantize.json")
  fi
  "$LOWBIT" compare "$MODEL" "$dir" --data "$DATA" --ctx 512 --max-tokens 16384 --threads "$THREADS" --json \
    > "$OUT/$id.compare.json"
  "$LOWBIT" bench "$dir" --prompt-len 128 --gen-len 16 --repeat 1 --no-bandwidth --threads "$THREADS" --json \
    > "$OUT/$id.bench.json"
  local ppl kl rss
  ppl=$(jq '.ppl_quant' "$OUT/$id.compare.json")
  kl=$(jq '.kl_mean' "$OUT/$id.compare.json")
  rss=$(jq '.peak_rss_bytes' "$OUT/$id.bench.json")
  printf '| %s | %s | %.2f | %.1f | %.3f | %.5f |\n' "$label" "${kept:-0}" "$(echo "$size / 1000000" | bc -l)" \
    "$(echo "$rss / 1048576" | bc -l)" "$ppl" "$kl" | tee -a "$TABLE"
}

: > "$OUT/table.md"
echo "| model | modules kept | size (MB) | peak RSS (MiB) | held-out ppl | KL mean |" | tee -a "$OUT/table.md"
echo "|---|---:|---:|---:|---:|---:|" | tee -a "$OUT/table.md"
# W4A16 everything first: its size sets the budgets (and bf16's size is its total_bytes_before); its row is
# printed in its place below.
ROWS_SAVED=$ROWS
ROWS=. TABLE=$OUT/w4a16_all.row
: > "$TABLE"
row w4a16_all "W4A16 (g128), everything" --scheme W4A16 > /dev/null
ROWS=$ROWS_SAVED TABLE=$OUT/table.md
row bf16 "bf16"
row int8_all "int8 per-channel, everything" --scheme "$INT8"
for k in 4 8 16; do
  for sel in sensitivity random weight-stats; do
    row "int8_k${k}_$sel" "int8, keep $k ($sel)" --scheme "$INT8" --sensitivity "$OUT/report_int8/sensitivity.json" \
      --keep-sensitive "$k" --selector "$sel"
  done
done
tee -a "$TABLE" < "$OUT/w4a16_all.row"
base=$(jq '.total_bytes_after' "$OUT/w4a16_all.quantize.json")
for pct in 5 10; do
  budget=$(( base + base * pct / 100 ))
  for sel in sensitivity random weight-stats; do
    row "w4_${pct}pct_$sel" "W4A16 +$pct % size, bf16 kept ($sel)" --scheme W4A16 \
      --sensitivity "$OUT/report_w4a16/sensitivity.json" --max-size "$budget" --selector "$sel"
  done
  for sel in sensitivity random weight-stats; do
    row "w4_${pct}pct_w8_$sel" "W4A16 +$pct % size, W8A16 kept ($sel)" --scheme W4A16 \
      --sensitivity "$OUT/report_w4a16/sensitivity.json" --max-size "$budget" --selector "$sel" --keep-scheme W8A16
  done
done
# GPTQ (128 calibration windows, the quantize defaults) with the same selection flags: the selection edits the
# recipe before any method runs.
row w4_gptq_all "W4A16 GPTQ, everything" --scheme W4A16 --method gptq --calib "$CALIB"
budget=$(( base + base * 10 / 100 ))
for sel in sensitivity random weight-stats; do
  row "w4_gptq_10pct_w8_$sel" "W4A16 GPTQ +10 % size, W8A16 kept ($sel)" --scheme W4A16 --method gptq \
    --calib "$CALIB" --sensitivity "$OUT/report_w4a16/sensitivity.json" --max-size "$budget" --selector "$sel" \
    --keep-scheme W8A16
done

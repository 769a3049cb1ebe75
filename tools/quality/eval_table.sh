#!/usr/bin/env bash
# Task-accuracy comparison for docs/EVAL.md and docs/QUALITY.md: runs `lowbit eval` on a list of model
# folders (the first is the base) and writes the raw JSON, the per-example log, the text table and a
# Markdown table to $OUT. Developer tool: needs the data files (../shared) and built lowbit.
#
#   tools/quality/eval_table.sh BUILD_DIR MODEL [MODEL ...]
#   TASK=hellaswag LIMIT=300 OUT=/tmp/eval-hs tools/quality/eval_table.sh build/release \
#       ../shared/models/lowbit-ref-100m /tmp/eval_w8a8 /tmp/eval_w4a16
#   TASK=gsm8k LIMIT=10 EXTRA="--max-new-tokens 128" tools/quality/eval_table.sh build/release MODEL
#
# TASK (hellaswag | gsm8k | mc-jsonl | gen-jsonl), DATA (default: the shared file for hellaswag/gsm8k),
# LIMIT (0 = all), SHOTS (default: the task's), THREADS (default: all), EXTRA (more lowbit eval flags).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0"
  exit 2
fi
BUILD=$1
shift
LOWBIT=$BUILD/lowbit
SHARED=${SHARED:-../shared}
TASK=${TASK:-hellaswag}
case $TASK in
  hellaswag) DEFAULT_DATA=$SHARED/data/eval/hellaswag_val_1k.jsonl ;;
  gsm8k) DEFAULT_DATA=$SHARED/data/eval/gsm8k_test.jsonl ;;
  *) DEFAULT_DATA= ;;
esac
DATA=${DATA:-$DEFAULT_DATA}
[[ -n $DATA ]] || { echo "set DATA for task $TASK" >&2; exit 2; }
LIMIT=${LIMIT:-0}
OUT=${OUT:-/tmp/lowbit-eval-$TASK}
mkdir -p "$OUT"

ARGS=(eval "$@" --task "$TASK" --data "$DATA" --limit "$LIMIT" --log "$OUT/log.jsonl")
[[ -n ${SHOTS:-} ]] && ARGS+=(--shots "$SHOTS")
[[ -n ${THREADS:-} ]] && ARGS+=(--threads "$THREADS")
# shellcheck disable=SC2206
[[ -n ${EXTRA:-} ]] && ARGS+=($EXTRA)

echo "+ $LOWBIT ${ARGS[*]} --json" >&2
"$LOWBIT" "${ARGS[@]}" --json > "$OUT/result.json"

# Markdown: one row per model, every metric as value ± stderr, the delta to the base, agreement, time.
jq -r '
  def f4: ((. * 10000 | round) / 10000 | tostring) as $s
    | ($s | split(".")) as $p
    | if ($p | length) == 1 then $s + ".0000" else $s + ("0000"[0:(4 - ($p[1] | length))]) end;
  def signed: if . >= 0 then "+" + f4 else f4 end;
  def pm: (.value | f4) + " ± " + (if .stderr == null then "n/a" else (.stderr | f4) end);
  (.models[0].metrics | keys_unsorted) as $m
  | "| model | " + ($m | map(. + " | Δ" + .) | join(" | ")) + " | agree | s/example |",
    "|---|" + ($m | map("---|---|") | join("")) + "---|---|",
    (.models[] | "| " + (.model | split("/") | map(select(. != "")) | last) + " | "
       + ([.metrics[] | pm + " | " + (if .delta == null then "-" else (.delta | signed) end)] | join(" | "))
       + " | " + (if .agreement_with_base == null then "-" else (.agreement_with_base | f4) end)
       + " | " + (.seconds_per_example | f4) + " |")
' "$OUT/result.json" | tee "$OUT/table.md"
jq -r '"\(.task): \(.examples) examples, \(.shots)-shot, \(.data)"' "$OUT/result.json" >&2

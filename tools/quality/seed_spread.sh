#!/usr/bin/env bash
# How much of RTN's perplexity gap GPTQ and AWQ close, over several calibration seeds and on the whole
# held-out text (docs/QUALITY.md, "Over calibration seeds"). One calibrated method's result moves with its
# calibration samples and with the rounding of its sums; a single run on the first 16k held-out tokens
# cannot tell a 36 % method from a 43 % one. Developer tool: needs ../shared.
#
#   tools/quality/seed_spread.sh [BUILD_DIR]
#   OUT=/tmp/seeds SEEDS="42 1 2" METHODS="gptq awq" SCHEME="--scheme W4A16" tools/quality/seed_spread.sh build/release
#
# Writes $OUT/results.jsonl (one line per model and text) and prints a Markdown table: ppl on the first
# 16,384 tokens and on the whole text, and the share of RTN's gap (over bf16) each run closes.
set -euo pipefail
BUILD=${1:-build/release}
LOWBIT=$BUILD/lowbit
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/models/lowbit-ref-100m}
CALIB=${CALIB:-$SHARED/data/calib/pile_like_calibration.txt}
TEXT=${TEXT:-$SHARED/data/eval/ref100m_heldout.txt}
OUT=${OUT:-/tmp/lowbit-seed-spread}
SEEDS=${SEEDS:-42 1 2}
METHODS=${METHODS:-gptq awq}
SCHEME=${SCHEME:---scheme W4A16}
mkdir -p "$OUT"
: > "$OUT/results.jsonl"

ppl() {  # model dir, label, seed -> two JSON lines (first 16k tokens, whole text)
  for max in 16384 0; do
    "$LOWBIT" ppl "$1" --data "$TEXT" --ctx 512 --max-tokens "$max" --json 2>/dev/null |
      python3 -c '
import json, sys
d = json.load(sys.stdin)
model, seed, max_tokens = sys.argv[1:4]
row = {"model": model, "seed": seed, "max_tokens": int(max_tokens), "ppl": d["ppl"], "tokens": d["tokens"]}
print(json.dumps(row))' "$2" "$3" "$max" >> "$OUT/results.jsonl"
  done
}

ppl "$MODEL" bf16 -
# shellcheck disable=SC2086
"$LOWBIT" quantize "$MODEL" $SCHEME --method rtn -o "$OUT/rtn" --overwrite --json > "$OUT/rtn.json"
ppl "$OUT/rtn" rtn -
for method in $METHODS; do
  for seed in $SEEDS; do
    dir=$OUT/${method//+/_}_s$seed
    # shellcheck disable=SC2086
    "$LOWBIT" quantize "$MODEL" $SCHEME --method "$method" --calib "$CALIB" --seed "$seed" -o "$dir" \
      --overwrite --json > "$dir.json"
    ppl "$dir" "$method" "$seed"
    echo "done: $method seed $seed" >&2
  done
done

python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
base = {r["max_tokens"]: r["ppl"] for r in rows if r["model"] == "bf16"}
rtn = {r["max_tokens"]: r["ppl"] for r in rows if r["model"] == "rtn"}
def closed(r):
    m = r["max_tokens"]
    return 100 * (rtn[m] - r["ppl"]) / (rtn[m] - base[m])
print(f"bf16: {base[16384]:.3f} (first 16k tokens), {base[0]:.3f} (whole text); "
      f"RTN: {rtn[16384]:.3f}, {rtn[0]:.3f}\n")
print("| method | seed | ppl, first 16k | gap closed | ppl, whole text | gap closed |")
print("|---|---|---|---|---|---|")
summary = {}
for r in rows:
    if r["model"] in ("bf16", "rtn") or r["max_tokens"] != 16384:
        continue
    whole = next(w for w in rows if w["model"] == r["model"] and w["seed"] == r["seed"] and w["max_tokens"] == 0)
    cells = [r["model"], r["seed"], f"{r['ppl']:.3f}", f"{closed(r):.0f} %"]
    cells += [f"{whole['ppl']:.3f}", f"{closed(whole):.0f} %"]
    print("| " + " | ".join(cells) + " |")
    summary.setdefault(r["model"], []).append((closed(r), closed(whole)))
for model, values in summary.items():
    a, b = zip(*values)
    print(f"| {model} | mean | | {statistics.mean(a):.0f} % | | {statistics.mean(b):.0f} % |")
PY

#!/usr/bin/env python3
"""Turns tools/quality/rtn_table.sh's results into the Markdown table of docs/QUALITY.md.

format_table.py RESULTS.jsonl [FULL_HELDOUT.jsonl]: the second file (a run with MAX_TOKENS 0 on the held-out
text only) adds a whole-text held-out column; rows it does not have show "—".
"""
import json
import sys


def load(path):
    rows, order = {}, []
    for line in open(path):
        r = json.loads(line)
        name = r["config"]
        if name not in rows:
            rows[name] = {}
            order.append(name)
        if "error" in r:
            rows[name]["error"] = r["error"].strip().splitlines()[-1]
            continue
        rows[name][r["text"]] = r["ppl"]["ppl"]
        rows[name]["bytes"] = r["weights_bytes"]
        rows[name]["bpw"] = r["quantize"].get("bits_per_weight")
    return rows, order


def delta(p, b):
    return "" if p is None or b is None or p == b else f"{100 * (p / b - 1):+.2f} %"


rows, order = load(sys.argv[1])
full = load(sys.argv[2])[0] if len(sys.argv) > 2 else None
heldout, wiki = "ref100m_heldout.txt", "wikitext2_test.raw"
base = rows.get("bf16", {})
header = ["scheme", "file size (MB)", "bits/weight (quantized linears)"]
if full is not None:
    header += ["held-out, whole text", "Δ"]
header += ["held-out, 16k tokens", "Δ", "WikiText-2, 16k tokens", "Δ"]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for name in order:
    r = rows[name]
    if "error" in r:
        print(f"| {name} | error: {r['error']} |" + " |" * (len(header) - 2))
        continue
    cells = [name, f"{r['bytes'] / 1e6:.1f}", "16 (bf16)" if r.get("bpw") is None else f"{r['bpw']:.3f}"]
    if full is not None:
        p = full.get(name, {}).get(heldout)
        cells += [f"{p:.3f}" if p is not None else "—", delta(p, full.get("bf16", {}).get(heldout))]
    for t in (heldout, wiki):
        p = r.get(t)
        cells += [f"{p:.3f}" if p is not None else "—", delta(p, base.get(t))]
    print("| " + " | ".join(cells) + " |")

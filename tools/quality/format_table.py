#!/usr/bin/env python3
"""Turns tools/quality/rtn_table.sh's results.jsonl into the Markdown table of docs/QUALITY.md."""
import json
import sys

rows = {}
order = []
for line in open(sys.argv[1]):
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
    rows[name]["tokens"] = r["ppl"]["tokens"]

base = rows.get("bf16", {})
texts = ["ref100m_heldout.txt", "wikitext2_test.raw"]
print("| scheme | file size (MB) | bits/weight (quantized linears) | held-out ppl | Δ vs bf16 | WikiText-2 ppl | Δ vs bf16 |")
print("|---|---|---|---|---|---|---|")
for name in order:
    r = rows[name]
    if "error" in r:
        print(f"| {name} | — | — | error: {r['error']} | | | |")
        continue
    cells = [name, f"{r['bytes'] / 1e6:.1f}", "16 (bf16)" if r.get("bpw") is None else f"{r['bpw']:.3f}"]
    for t in texts:
        p = r.get(t)
        cells.append(f"{p:.3f}" if p is not None else "—")
        b = base.get(t)
        cells.append("" if name == "bf16" or p is None or b is None else f"{100 * (p / b - 1):+.2f} %")
    print("| " + " | ".join(cells) + " |")

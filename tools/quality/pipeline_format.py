#!/usr/bin/env python3
"""Turns tools/quality/pipeline_table.sh's results.jsonl into the Markdown tables of docs/QUALITY.md.

pipeline_format.py RESULTS.jsonl: one row per (scheme, method) with held-out and WikiText-2 perplexity, the
share of RTN's perplexity gap to bf16 that the method closes, KL divergence against bf16, quantization time
and peak RSS. HELDOUT_TEXT names the held-out column's file (default ref100m_heldout.txt; heldout_eval.txt
for the in-domain calibration runs of split_heldout.py).
"""
import json
import os
import sys

HELDOUT, WIKI = os.environ.get("HELDOUT_TEXT", "ref100m_heldout.txt"), "wikitext2_test.raw"
rows, order = {}, []
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["config"], r["method"])
    if key not in rows:
        rows[key] = {}
        order.append(key)
    if "error" in r:
        rows[key]["error"] = r["error"].strip().splitlines()[-1]
        continue
    rows[key][r["text"]] = r["compare"]
    rows[key]["quantize"] = r["quantize"]

base = {}
for key in order:
    for t in (HELDOUT, WIKI):
        if t in rows[key]:
            base[t] = rows[key][t]["ppl_base"]
tokens = {t: next((rows[k][t]["tokens"] for k in order if t in rows[k]), 0) for t in (HELDOUT, WIKI)}
print(f"bf16: held-out ppl {base.get(HELDOUT, float('nan')):.3f} ({tokens[HELDOUT]} tokens scored), "
      f"WikiText-2 ppl {base.get(WIKI, float('nan')):.3f} ({tokens[WIKI]} tokens scored)\n")
header = ["scheme", "method", "held-out ppl", "Δ vs bf16", "RTN gap closed", "KL mean", "top-1",
          "WikiText-2 ppl", "Δ vs bf16", "KL mean", "quantize time", "peak RSS"]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for key in order:
    r = rows[key]
    if "error" in r:
        print(f"| {key[0]} | {key[1]} | error: {r['error']} |" + " |" * (len(header) - 3))
        continue
    rtn = rows.get((key[0], "rtn"), {})
    cells = [key[0], key[1]]
    for t in (HELDOUT, WIKI):
        c = r.get(t)
        if c is None:
            cells += ["—", ""] + (["", "", ""] if t == HELDOUT else [""])
            continue
        cells += [f"{c['ppl_quant']:.3f}", f"{100 * (c['ppl_quant'] / c['ppl_base'] - 1):+.2f} %"]
        if t == HELDOUT:
            gap = rtn.get(t, {}).get("ppl_quant")
            # Only where RTN's gap is well above run-to-run noise (> 1 %).
            closed = "" if key[1] == "rtn" or gap is None or gap <= 1.01 * c["ppl_base"] else \
                f"{100 * (gap - c['ppl_quant']) / (gap - c['ppl_base']):.0f} %"
            cells += [closed, f"{c['kl_mean']:.4f}", f"{100 * c['top1_agreement']:.1f} %"]
        else:
            cells += [f"{c['kl_mean']:.4f}"]
    q = r["quantize"]
    cells += [f"{q['seconds']:.0f} s", f"{q['peak_rss_bytes'] / 2**20:.0f} MiB"]
    print("| " + " | ".join(cells) + " |")

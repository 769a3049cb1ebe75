#!/usr/bin/env python3
"""The Markdown table of a compare_gptq_awq.sh run (reads the JSON files it leaves in WORK).

  python tools/peers/format_comparison.py WORK [--pairs "gptq:W4A16 awq:W4A16"]
"""

import argparse
import json
import re
from pathlib import Path


def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def load_pairs(log):
    """The 1-minute load average before and after each step, from WORK/uptime.log."""
    loads = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        m = re.match(r"(before|after) (\S+) (\S+) .*load average: ([0-9.]+)", line)
        if m:
            loads[(m[1], m[2], m[3])] = m[4]
    return loads


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("work", type=Path)
    p.add_argument("--pairs", default="gptq:W4A16 awq:W4A16 smoothquant+gptq:W8A8")
    args = p.parse_args()
    loads = load_pairs(args.work / "uptime.log")

    base = read(args.work / "ppl_baseline.json")
    scored = next((read(f) for f in sorted(args.work.glob("ppl_*.json"))), None)
    if scored:
        print(f"Perplexity: lowbit ppl, ctx {scored['ctx']}, {scored['tokens']} tokens scored "
              f"({scored['windows']} windows) of {scored['data']}.")
    if base:
        print(f"Unquantized model: {base['ppl']:.4f}")
    print()
    print("| method | scheme | lowbit ppl | llm-compressor ppl | lowbit wall s | llm-compressor wall s "
          "(oneshot only) | speedup (llm-c wall / lowbit wall) | lowbit peak RSS MiB | llm-compressor peak RSS MiB | load 1-min "
          "(lowbit / llm-c, before→after) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pair in args.pairs.split():
        method, scheme = pair.split(":")
        tag = f"{method.replace('+', '_')}_{scheme}"
        lq = read(args.work / f"quant_lowbit_{tag}.json") or {}
        mq = read(args.work / f"quant_llmc_{tag}.json") or {}
        lp = (read(args.work / f"ppl_lowbit_{tag}.json") or {}).get("ppl")
        mp = (read(args.work / f"ppl_llmc_{tag}.json") or {}).get("ppl")
        ls, ms, mo = lq.get("seconds"), mq.get("seconds"), mq.get("oneshot_seconds")
        speed = f"{ms / ls:.1f}×" if ls and ms else "—"
        lr = lq.get("peak_rss_bytes")
        mr = mq.get("peak_rss_bytes")
        load = "{}→{} / {}→{}".format(
            loads.get(("before", "lowbit", tag), "?"), loads.get(("after", "lowbit", tag), "?"),
            loads.get(("before", "llmcompressor", tag), "?"), loads.get(("after", "llmcompressor", tag), "?"))
        print(f"| {method} | {scheme} | {fmt(lp, '.4f')} | {fmt(mp, '.4f')} | {fmt(ls, '.1f')} | "
              f"{fmt(ms, '.1f')} ({fmt(mo, '.1f')}) | {speed} | {fmt(lr and lr / 2**20, '.0f')} | "
              f"{fmt(mr and mr / 2**20, '.0f')} | {load} |")
    for pair in args.pairs.split():
        method, scheme = pair.split(":")
        tag = f"{method.replace('+', '_')}_{scheme}"
        codes = read(args.work / f"codes_{tag}.json")
        if codes:
            t = codes["total"]
            print(f"\n{method} {scheme} weights, lowbit vs llm-compressor over {t['modules']} modules: "
                  f"{100 * t['identical_codes']:.1f}% identical codes, {100 * t['off_by_one']:.1f}% one step "
                  f"apart, largest difference {t['max_code_diff']} steps.")
    lq = next((read(f) for f in sorted(args.work.glob("quant_llmc_*.json"))), None)
    if lq:
        print(f"\nllm-compressor {lq['versions']['llmcompressor']}, torch {lq['versions']['torch']}, "
              f"transformers {lq['versions']['transformers']}, compressed-tensors "
              f"{lq['versions']['compressed_tensors']}; llm-compressor dtype {lq['dtype']}, {lq['threads']} "
              f"torch threads, OMP_WAIT_POLICY={lq.get('omp_wait_policy')}. Calibration: "
              f"{lq['calibration'].split(', offsets from')[0]}, lowbit's offsets.")


if __name__ == "__main__":
    main()

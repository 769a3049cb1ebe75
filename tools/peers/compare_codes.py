#!/usr/bin/env python3
"""How close two compressed-tensors checkpoints of the same model are: lowbit's and llm-compressor's.

  python tools/peers/compare_codes.py LOWBIT_DIR LLMC_DIR [--modules REGEX] [--json-out FILE]

For every quantized linear (weight_packed int4 in int32 words, or an int8 `weight`) found in both: the
fraction of identical integer codes, the fraction that differ by exactly one step, the largest difference,
the relative difference of the scales, and the relative difference of the dequantized weights
||W_a - W_b|| / ||W_b||. GPTQ run twice on the same samples should give mostly identical codes; the rest
differ by one step where a value sits near a rounding boundary and the two Hessians (accumulated in a
different order and precision) tip it the other way. Reads the files with safetensors only.
"""

import argparse
import glob
import json
import os
import re
import sys

import numpy as np
from safetensors import safe_open


def open_tensors(folder):
    where = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with safe_open(path, "pt") as f:
            for key in f.keys():
                where[key] = path
    if not where:
        sys.exit(f"{folder}: no .safetensors files")
    return where


def load(where, key):
    with safe_open(where[key], "pt") as f:
        t = f.get_tensor(key)
    return t.float().numpy() if t.is_floating_point() else t.numpy()


def unpack_int4(words, columns):
    """compressed-tensors pack-quantized: 8 unsigned nibbles per int32, lowest bits first, value + 8."""
    w = words.astype(np.int64) & 0xFFFFFFFF
    nibbles = np.stack([(w >> (4 * i)) & 0xF for i in range(8)], axis=-1)
    return nibbles.reshape(words.shape[0], -1)[:, :columns].astype(np.int32) - 8


def unpack_rows_int4(words, rows):
    """Packed zero points: nibbles along the first dimension."""
    return unpack_int4(words.T, rows).T


def module_codes(where, module):
    """Signed integer codes, scales and zero points (or None) of one quantized linear."""
    if module + ".weight_packed" in where:
        shape = load(where, module + ".weight_shape").astype(np.int64)
        codes = unpack_int4(load(where, module + ".weight_packed"), int(shape[1]))
    else:
        codes = load(where, module + ".weight").astype(np.int32)
    scale = load(where, module + ".weight_scale")
    zero = None
    if module + ".weight_zero_point" in where:
        z = load(where, module + ".weight_zero_point")
        zero = unpack_rows_int4(z, codes.shape[0]) if z.dtype == np.int32 and z.shape[0] != codes.shape[0] else z
    return codes, scale, zero


def dequantize(codes, scale, zero):
    groups = scale.shape[1]
    per = codes.shape[1] // groups
    q = codes.astype(np.float64).reshape(codes.shape[0], groups, per)
    if zero is not None:
        q = q - zero.astype(np.float64)[:, :, None]
    return (q * scale.astype(np.float64)[:, :, None]).reshape(codes.shape)


def rtn_codes(weight, scale, zero, bits):
    """Round-to-nearest codes of the original weight on the given grid (what GPTQ starts from)."""
    groups = scale.shape[1]
    w = weight.astype(np.float64).reshape(weight.shape[0], groups, -1) / scale.astype(np.float64)[:, :, None]
    if zero is not None:
        w = w + zero.astype(np.float64)[:, :, None]
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.round(w), lo, hi).astype(np.int32).reshape(weight.shape)


def compare(a, b, module, original):
    ca, sa, za = module_codes(a, module)
    cb, sb, zb = module_codes(b, module)
    if ca.shape != cb.shape:
        return {"module": module, "error": f"shapes differ: {ca.shape} vs {cb.shape}"}
    diff = np.abs(ca - cb)
    wa, wb = dequantize(ca, sa, za), dequantize(cb, sb, zb)
    extra = {}
    if original is not None and module + ".weight" in original:
        w = load(original, module + ".weight").astype(np.float64)
        bits = 4 if module + ".weight_packed" in a else 8
        extra = {
            "lowbit_same_as_rtn": float(np.mean(ca == rtn_codes(w, sa, za, bits))),
            "llmc_same_as_rtn": float(np.mean(cb == rtn_codes(w, sb, zb, bits))),
            "lowbit_weight_rel_err": float(np.linalg.norm(wa - w) / np.linalg.norm(w)),
            "llmc_weight_rel_err": float(np.linalg.norm(wb - w) / np.linalg.norm(w)),
        }
    return extra | {
        "module": module,
        "shape": list(ca.shape),
        "identical_codes": float(np.mean(diff == 0)),
        "off_by_one": float(np.mean(diff == 1)),
        "max_code_diff": int(diff.max()),
        "scale_rel_diff": float(np.linalg.norm(sa - sb) / max(np.linalg.norm(sb), 1e-30)),
        "identical_zero_points": None if za is None or zb is None else float(np.mean(za == zb)),
        "dequant_rel_diff": float(np.linalg.norm(wa - wb) / max(np.linalg.norm(wb), 1e-30)),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lowbit", help="lowbit's checkpoint folder")
    p.add_argument("llmc", help="llm-compressor's checkpoint folder")
    p.add_argument("--modules", default=".*", help="regex over module names (default: all quantized linears)")
    p.add_argument("--original", help="the unquantized model folder: also compare both with RTN codes")
    p.add_argument("--json-out", help="write the per-module results and the totals here")
    args = p.parse_args()

    a, b = open_tensors(args.lowbit), open_tensors(args.llmc)
    suffix = re.compile(r"\.(weight_packed|weight_scale)$")
    modules = sorted({suffix.sub("", k) for k in a if k.endswith(".weight_scale")} & {
        suffix.sub("", k) for k in b if k.endswith(".weight_scale")})
    modules = [m for m in modules if re.search(args.modules, m)]
    if not modules:
        sys.exit("no quantized modules in common")
    original = open_tensors(args.original) if args.original else None
    rows = [compare(a, b, m, original) for m in modules]
    ok = [r for r in rows if "error" not in r]
    n = sum(np.prod(r["shape"]) for r in ok)
    total = {
        "modules": len(ok),
        "identical_codes": float(sum(r["identical_codes"] * np.prod(r["shape"]) for r in ok) / n),
        "off_by_one": float(sum(r["off_by_one"] * np.prod(r["shape"]) for r in ok) / n),
        "max_code_diff": max(r["max_code_diff"] for r in ok),
        "mean_dequant_rel_diff": float(np.mean([r["dequant_rel_diff"] for r in ok])),
    }
    for key in ("lowbit_same_as_rtn", "llmc_same_as_rtn", "lowbit_weight_rel_err", "llmc_weight_rel_err"):
        if ok and key in ok[0]:
            total[key] = float(np.mean([r[key] for r in ok]))
    print(f"{'module':45s} {'identical':>9s} {'off by 1':>9s} {'max':>4s} {'scale rel':>10s} {'W rel':>9s}")
    for r in rows:
        if "error" in r:
            print(f"{r['module']:45s} {r['error']}")
            continue
        print(f"{r['module']:45s} {r['identical_codes']:9.4f} {r['off_by_one']:9.4f} {r['max_code_diff']:4d} "
              f"{r['scale_rel_diff']:10.2e} {r['dequant_rel_diff']:9.2e}")
    print(f"{'all ' + str(total['modules']) + ' modules':45s} {total['identical_codes']:9.4f} "
          f"{total['off_by_one']:9.4f} {total['max_code_diff']:4d} {'':10s} {total['mean_dequant_rel_diff']:9.2e}")
    for key in ("lowbit_same_as_rtn", "llmc_same_as_rtn", "lowbit_weight_rel_err", "llmc_weight_rel_err"):
        if key in total:
            print(f"mean {key}: {total[key]:.4f}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"total": total, "modules": rows}, f, indent=1)


if __name__ == "__main__":
    main()

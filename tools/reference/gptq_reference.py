#!/usr/bin/env python3
"""Independent numpy reference of GPTQ (Frantar et al. 2022, Algorithm 1 with lazy batch updates) with
llm-compressor's semantics, and the golden fixture for tests/quant/gptq_test.cc.

Semantics (see src/quant/gptq.h for the C++ side):
  * H = 2/N sum x x^T (N = samples), dead columns (diag 0 -> 1, weight column zeroed), damping
    frac * mean(diag) on the diagonal, Hinv = upper Cholesky factor of H^-1 (fp64 here, cast to fp32).
  * qparams once, up front, by compressed-tensors' min-max rule on the ORIGINAL weights (llm-compressor 0.14
    passes the observer's qparams into quantize_weight); for actorder "group" on the permuted weights.
  * column loop in fp32: code = rint(clip(w / s (+ zp), qmin, qmax)); q = (code - zp) * s in the scale's
    dtype (bf16 for a bf16 model); err = (w - q) / Hinv[i, i]; block-local rank-1 updates, one GEMM per block.
  * actorder "weight"/"static": process columns by descending diag(H) (stable), qparams of the original group.
    actorder "group": groups formed in permuted order, g_idx[c] = position of c in the permutation // gs.

Usage:
  /work/venv/bin/python tools/reference/gptq_reference.py            # writes tests/fixtures/quant/gptq/
  /work/venv-peers/bin/python tools/reference/gptq_reference.py --cross-check
      compares this reference with llmcompressor.modifiers.gptq.gptq_quantize.quantize_weight (0.14) on the
      fixture layer (actorder none / weight only: 0.14 removed "group"); prints the agreement, writes nothing.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "quant", "gptq")

ROWS, COLS, SAMPLES, TOKENS = 64, 128, 8, 48
DEAD_COLUMN = 5  # an input channel that is always zero


# ---- bf16 rounding (round to nearest even), as torch does for every bf16 op ------------------------------
def to_bf16(x):
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def rnd(x, bf16):
    x = np.asarray(x, dtype=np.float32)
    return to_bf16(x) if bf16 else x


# ---- compressed-tensors min-max qparams ------------------------------------------------------------------
def minmax_qparams(w, bits, symmetric, group, bf16):
    """w: rows x cols (already in the weight dtype); returns scales, zero points (rows x cols/group)."""
    rows, cols = w.shape
    qmin, qmax = np.float32(-(2 ** (bits - 1))), np.float32(2 ** (bits - 1) - 1)
    g = w.reshape(rows, cols // group, group)
    lo = np.minimum(g.min(axis=2), np.float32(0))
    hi = np.maximum(g.max(axis=2), np.float32(0))
    rng = rnd(qmax - qmin, bf16)
    if symmetric:
        half = rnd(rng / np.float32(2), bf16)
        scale = rnd(np.maximum(np.abs(lo), np.abs(hi)) / half, bf16)
        zp = np.zeros_like(scale)
    else:
        scale = rnd(rnd(hi - lo, bf16) / rng, bf16)
        with np.errstate(divide="ignore", invalid="ignore"):
            zp = rnd(qmin - rnd(lo / scale, bf16), bf16)
        zp = np.rint(np.clip(zp, qmin, qmax))
    eps = np.float32(2.0**-7 if bf16 else np.finfo(np.float32).eps)
    scale = np.where(scale == 0, eps, scale).astype(np.float32)
    return scale, zp.astype(np.float32)


# ---- GPTQ ---------------------------------------------------------------------------------------------
def inverse_factor(h, percdamp):
    """Dead columns fixed by the caller; returns the fp64 upper factor U with U^T U = (H + damp I)^-1."""
    n = h.shape[0]
    h = h + percdamp * np.mean(np.diag(h)) * np.eye(n)
    lower = np.linalg.cholesky(h)
    lower_inv = np.linalg.inv(lower)
    hinv = lower_inv.T @ lower_inv
    return np.linalg.cholesky(hinv).T


def gptq(w, h, bits, symmetric, group, actorder, block=128, percdamp=0.01, bf16=False):
    """Returns codes (original column order), scales, zero points, g_idx (or None), loss."""
    w = rnd(np.array(w, dtype=np.float32), bf16)
    rows, cols = w.shape
    group = group if group > 0 else cols  # channel strategy: one group spanning the row
    perm = np.argsort(-np.diag(h), kind="stable") if actorder else np.arange(cols)
    permuted_groups = actorder == "group" and group < cols
    scale, zp = minmax_qparams(w[:, perm] if permuted_groups else w, bits, symmetric, group, bf16)
    cell_of = (np.arange(cols) if permuted_groups else perm) // group  # per processing position

    work = w[:, perm].copy()
    hp = h[np.ix_(perm, perm)].copy()
    dead = np.diag(hp) == 0
    hp[dead, dead] = 1
    work[:, dead] = 0
    hinv = inverse_factor(hp, percdamp).astype(np.float32)

    qmin, qmax = np.float32(-(2 ** (bits - 1))), np.float32(2 ** (bits - 1) - 1)
    codes = np.zeros((rows, cols), dtype=np.int8)
    loss = 0.0
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = work[:, i1:i2].copy()
        q1 = np.zeros_like(w1)
        err1 = np.zeros_like(w1)
        for i in range(i2 - i1):
            col = w1[:, i]
            s = scale[:, cell_of[i1 + i]]
            t = col / s
            if not symmetric:
                z = zp[:, cell_of[i1 + i]]
                t = t + z
            code = np.rint(np.clip(t, qmin, qmax))
            deq = code.astype(np.float32)
            if not symmetric:
                deq = rnd(deq - z, bf16)
            deq = rnd(deq * s, bf16)
            d = hinv[i1 + i, i1 + i]
            err = (col - deq) / d
            q1[:, i] = deq
            err1[:, i] = err
            codes[:, i1 + i] = code.astype(np.int8)
            loss += float(np.sum(err.astype(np.float64) ** 2)) / 2
            w1[:, i:] -= err[:, None] * hinv[i1 + i, i1 + i : i2][None, :]
        work[:, i1:i2] = q1
        work[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    out_codes = np.zeros_like(codes)
    out_codes[:, perm] = codes
    g_idx = None
    if permuted_groups:
        g_idx = np.zeros(cols, dtype=np.int32)
        g_idx[perm] = np.arange(cols) // group
    return out_codes, scale, zp.astype(np.int8), g_idx, loss, work[:, np.argsort(perm)]


def dequantize(codes, scale, zp, g_idx, group, symmetric, bf16):
    rows, cols = codes.shape
    cells = g_idx if g_idx is not None else np.arange(cols) // (group if group > 0 else cols)
    q = codes.astype(np.float32)
    if not symmetric:
        q = rnd(q - zp[:, cells].astype(np.float32), bf16)
    return rnd(q * scale[:, cells], bf16)


# ---- the calibration layer ---------------------------------------------------------------------------
def make_layer(rows=ROWS, cols=COLS, seed=20261123):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    w[:, 7] *= 6  # a large-magnitude input column
    mix = rng.standard_normal((cols, cols)) * 0.3 + np.eye(cols)  # correlated channels
    gains = np.exp(rng.standard_normal(cols) * 0.7)
    gains[[3, 40, 99]] *= 12  # outlier channels
    xs = []
    for _ in range(SAMPLES):
        x = (rng.standard_normal((TOKENS, cols)) @ mix) * gains
        x[:, DEAD_COLUMN] = 0
        xs.append(x.astype(np.float32))
    h = np.zeros((cols, cols))
    for x in xs:
        xd = x.astype(np.float64)
        h += xd.T @ xd
    h *= 2.0 / SAMPLES
    return w, h


CASES = [
    # name, bits, symmetric, group (0 = channel), actorder, block, bf16
    ("w4_sym_g32", 4, True, 32, None, 128, False),
    ("w4_asym_g32", 4, False, 32, None, 128, False),
    ("w4_sym_g32_actgroup", 4, True, 32, "group", 128, False),
    ("w4_asym_g32_actgroup", 4, False, 32, "group", 128, False),
    ("w4_sym_g32_actweight", 4, True, 32, "weight", 128, False),
    ("w8_asym_channel_actweight", 8, False, 0, "weight", 128, False),
    ("w4_asym_g32_actgroup_bf16", 4, False, 32, "group", 128, True),
    ("w4_asym_g32_actweight_bf16", 4, False, 32, "weight", 128, True),
    ("w4_sym_g32_block32", 4, True, 32, None, 32, False),
]


def write_fixture():
    os.makedirs(OUT_DIR, exist_ok=True)
    w, h = make_layer()

    def put(fname, arr):
        data = np.ascontiguousarray(arr).tobytes()
        with open(os.path.join(OUT_DIR, fname), "wb") as f:
            f.write(data)
        return {"file": fname, "sha256": hashlib.sha256(data).hexdigest()}

    doc = {
        "generator": "tools/reference/gptq_reference.py",
        "numpy": np.__version__,
        "rows": ROWS,
        "cols": COLS,
        "samples": SAMPLES,
        "tokens_per_sample": TOKENS,
        "dead_column": DEAD_COLUMN,
        "dampening_frac": 0.01,
        "weight": put("weight_f32.bin", w.astype("<f4")),
        "hessian": put("hessian_f64.bin", h.astype("<f8")),
        "cases": [],
    }
    for name, bits, sym, group, actorder, block, bf16 in CASES:
        codes, scale, zp, g_idx, loss, _ = gptq(w, h, bits, sym, group, actorder, block, 0.01, bf16)
        case = {
            "name": name,
            "num_bits": bits,
            "symmetric": sym,
            "group_size": group if group > 0 else -1,
            "actorder": actorder,
            "block_size": block,
            "weight_dtype": "bfloat16" if bf16 else "float32",
            "loss": loss,
            "codes": put(f"{name}_codes_i8.bin", codes.astype("i1")),
            "scales": put(f"{name}_scales_f32.bin", scale.astype("<f4")),
        }
        if not sym:
            case["zero_points"] = put(f"{name}_zp_i8.bin", zp.astype("i1"))
        if g_idx is not None:
            case["g_idx"] = put(f"{name}_gidx_i32.bin", g_idx.astype("<i4"))
        doc["cases"].append(case)
        print(f"{name}: loss {loss:.6g}")
    with open(os.path.join(OUT_DIR, "gptq_golden.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def cross_check_case(w, h, name, bits, sym, group, actorder, block, bf16):
    import torch
    from compressed_tensors.quantization import QuantizationArgs
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight

    cols = w.shape[1]
    codes, scale, zp, g_idx, loss, ours = gptq(w, h, bits, sym, group, actorder, block, 0.01, bf16)
    strategy = "group" if group > 0 else "channel"
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=sym, strategy=strategy,
                            group_size=group if group > 0 else None, actorder=actorder)
    dtype = torch.bfloat16 if bf16 else torch.float32
    wt = torch.from_numpy(rnd(w, bf16).copy()).to(dtype).clone()  # quantize_weight works in place
    st = torch.from_numpy(scale).to(dtype)
    zt = torch.from_numpy(zp.astype(np.int8)).to(args.zp_dtype) if not sym else torch.zeros_like(st)
    q, losses, fallback = quantize_weight(wt[None], torch.from_numpy(h.copy()).float()[None], st[None], zt[None],
                                          None, args, blocksize=block, percdamp=0.01)
    theirs = q[0].float().numpy()
    cells = np.arange(cols) // (group if group > 0 else cols)
    theirs_codes = np.rint(theirs / scale[:, cells] + (0 if sym else zp[:, cells]))
    same = float(np.mean(theirs_codes == codes))
    max_diff = float(np.max(np.abs(theirs_codes - codes)))
    # The output error through H itself: e^T H e = 2/N ||e X||^2.
    ref = rnd(w, bf16).astype(np.float64)
    err_ours = np.einsum("ri,ij,rj->", ref - ours, h, ref - ours)
    err_theirs = np.einsum("ri,ij,rj->", ref - theirs, h, ref - theirs)
    print(f"{name} [{w.shape[0]}x{cols}]: codes identical {same:.4%}, max |code diff| {max_diff:.0f}, "
          f"loss ours {loss:.6g} llmc {float(losses[0]):.6g}, output error ours {err_ours:.6g} "
          f"llmc {err_theirs:.6g} (rel diff {abs(err_ours - err_theirs) / err_theirs:.2e}), "
          f"fallback {bool(fallback[0])}")


def cross_check():
    w, h = make_layer()
    for name, bits, sym, group, actorder, block, bf16 in CASES:
        if actorder == "group":
            print(f"{name}: skipped (llm-compressor 0.14 has no actorder=group)")
            continue
        cross_check_case(w, h, name, bits, sym, group, actorder, block, bf16)
    # A larger layer: several 128-column blocks, so the inter-block GEMM matters.
    w, h = make_layer(256, 512, seed=7)
    for name, bits, sym, group, actorder, bf16 in [("big_w4_sym_g128", 4, True, 128, None, False),
                                                   ("big_w4_asym_g128_actweight", 4, False, 128, "weight", True),
                                                   ("big_w8_sym_channel_actweight", 8, True, 0, "weight", False)]:
        cross_check_case(w, h, name, bits, sym, group, actorder, 128, bf16)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cross-check", action="store_true")
    args = parser.parse_args()
    if args.cross_check:
        cross_check()
    else:
        write_fixture()
    return 0


if __name__ == "__main__":
    sys.exit(main())

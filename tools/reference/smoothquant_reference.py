#!/usr/bin/env python3
"""Golden values for lowbit's SmoothQuant functions (src/quant/smoothquant.h), written from llm-compressor
0.14's SmoothQuantModifier semantics (modifiers/transform/smoothquant/base.py), independently of the C++.

Writes tests/fixtures/quant/smoothquant/smoothquant_golden.json (committed; the C++ tests never run Python):
one input_layernorm -> q_proj, k_proj, v_proj mapping (GQA shapes) with calibration activations whose
per-channel min / max the hook would record, and for several smoothing strengths the scales and the folded
norm and projection weights. Degenerate channels: one whose activation is constant (range 0), one whose
weight column is zero in every balance layer, one with only positive activations.

  range_j  = max_t x_tj - min_t x_tj
  w_j      = 2 * max over layers, rows |W_ij|
  s_j      = range_j^a / w_j^(1 - a) where w_j > 0, else range_j; then max(s_j, 1e-5)
  folded   norm / s, W * s (float32)

Run: /work/venv/bin/python tools/reference/smoothquant_reference.py [--out tests/fixtures/quant/smoothquant]
     /work/venv-peers/bin/python tools/reference/smoothquant_reference.py --cross-check   (needs
     llmcompressor: compares the scales with SmoothQuantModifier._calculate_smoothing_scales; writes nothing)
"""

import argparse
import json
import os
import tempfile

import torch

COLS, TOKENS = 32, 64
ROWS = dict(q=32, k=8, v=8)
ALPHAS = (0.5, 0.8, 0.0, 1.0)
FOLDED_ALPHAS = (0.5, 0.8)


def f32hex(t):
    return t.detach().float().contiguous().numpy().astype("<f4").tobytes().hex()


def inputs():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(TOKENS, COLS, generator=g)
    x[:, 3] *= 20.0  # outlier channels
    x[:, 17] *= 50.0
    x[:, 7] = 0.75  # constant: range 0
    x[:, 9] = x[:, 9].abs() + 0.5  # positive only
    weights = {n: torch.randn(r, COLS, generator=g) * 0.05 for n, r in ROWS.items()}
    for w in weights.values():
        w[:, 11] = 0.0  # a column that no balance layer uses
    norm = 1.0 + 0.1 * torch.randn(COLS, generator=g)
    return x, weights, norm


def smoothing_scales(act_min, act_max, weights, alpha):
    rng = (act_max - act_min).double()
    w = 2.0 * torch.stack([w.abs().amax(dim=0) for w in weights]).amax(dim=0).double()
    s = torch.where(w > 0, rng.pow(alpha) / w.pow(1 - alpha), rng)
    return torch.clamp(s, min=1e-5).float()


def golden():
    x, weights, norm = inputs()
    act_min, act_max = x.amin(dim=0), x.amax(dim=0)
    out = dict(cols=COLS, rows=ROWS, act_min=f32hex(act_min), act_max=f32hex(act_max), norm=f32hex(norm),
               weights={n: f32hex(w) for n, w in weights.items()}, cases=[])
    for alpha in ALPHAS:
        s = smoothing_scales(act_min, act_max, list(weights.values()), alpha)
        case = dict(alpha=alpha, scales=f32hex(s), norm=f32hex(norm / s))
        if alpha in FOLDED_ALPHAS:  # the folded projections only where they add coverage (file size)
            case["weights"] = {n: f32hex(w * s.view(1, -1)) for n, w in weights.items()}
        out["cases"].append(case)
        print(f"alpha {alpha}: scales in [{float(s.min()):.3e}, {float(s.max()):.3e}]")
    return out


def cross_check():
    import llmcompressor
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    print(f"llmcompressor {llmcompressor.__version__}")
    x, weights, _ = inputs()
    act_range = x.amax(dim=0) - x.amin(dim=0)
    layers = []
    for w in weights.values():
        lin = torch.nn.Linear(COLS, w.shape[0], bias=False)
        lin.weight.data.copy_(w)
        layers.append(lin)
    worst = 0.0
    for alpha in ALPHAS:
        mod = SmoothQuantModifier(smoothing_strength=alpha)
        theirs = torch.maximum(mod._calculate_smoothing_scales(layers, act_range), torch.tensor([1e-5]))
        mine = smoothing_scales(x.amin(dim=0), x.amax(dim=0), list(weights.values()), alpha)
        rel = float(((theirs.detach().double() - mine.double()).abs() / mine.double()).max())
        worst = max(worst, rel)
        print(f"alpha {alpha}: max relative difference {rel:.3e} (theirs fp32 arithmetic, mine fp64)")
    ok = worst < 1e-6
    print("cross-check", "PASSED" if ok else "FAILED")
    return ok


def write(out_dir, name, data):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False) as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    os.replace(f.name, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out",
                        default=os.path.join(os.path.dirname(__file__), "../../tests/fixtures/quant/smoothquant"))
    parser.add_argument("--cross-check", action="store_true", help="compare with llmcompressor (no output)")
    args = parser.parse_args()
    if args.cross_check:
        raise SystemExit(0 if cross_check() else 1)
    write(args.out, "smoothquant_golden.json", golden())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Interoperability check (dev only): load a lowbit compressed-tensors export with transformers +
compressed-tensors (CPU; from_pretrained decompresses the weights) and compare it with lowbit's own
fake-quant export of the same plan and with the unquantized model.

  weights  max |W_ct - W_lowbit| over every quantized Linear: the weights compressed-tensors decompresses
           from our codes/scales/zero points against lowbit's dequantize(quantize(w)) (--format fake-quant).
           0 means the format is read exactly as we wrote it.
  logits   max |logits| differences on a fixed text: the export loaded with dequantize=True vs lowbit's
           fake-quant export (weights only: expected 0), and vs the bf16 model (the quantization error);
           the export loaded as is ("compressed run": CompressedLinear, with the scheme's activation
           quantization using our input_scale) vs the same two.

Usage:
  tools/interop/load_with_transformers.py --base MODEL --export OUT --fake-quant OUT_FQ [--text FILE] [--json]
"""
import argparse
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, CompressedTensorsConfig


def load(path, compressed=False):
    # dequantize=True: decompress the weights into dense Linears (the CPU path; CT keeps applying the
    # scheme's activation quantization in forward).
    kwargs = dict(quantization_config=CompressedTensorsConfig(dequantize=True)) if compressed else {}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, **kwargs)
    model.eval()
    return model


def logits_of(model, ids):
    with torch.no_grad():
        return model(ids).logits.float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--export", required=True)
    ap.add_argument("--fake-quant", required=True)
    ap.add_argument("--text", default=None)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(a.base)
    text = open(a.text).read() if a.text else "Once upon a time, in a small village by the sea, there lived an old " \
        "fisherman who told stories to the children every evening."
    ids = tok(text, return_tensors="pt").input_ids[:, : a.tokens]

    exported = load(a.export, compressed=True)
    # Loaded as is (run compressed): CompressedLinear modules that also apply the scheme's activation
    # quantization with our input_scale, and the KV-cache scales, as vLLM-style inference would.
    # transformers 5.23 cannot load asymmetric pack-quantized checkpoints this way (it expects unpacked zero
    # points, while compressed-tensors' own compressor packs them, as we do): reported as an error string.
    try:
        running = AutoModelForCausalLM.from_pretrained(a.export, dtype=torch.bfloat16)
        running.eval()
    except RuntimeError as e:
        running = None
        run_error = str(e).splitlines()[0]
    fake = load(a.fake_quant)
    base = load(a.base)
    qcfg = json.load(open(f"{a.export}/config.json"))["quantization_config"]

    fq_sd, base_sd = fake.state_dict(), base.state_dict()
    w_diff = 0.0
    checked = 0
    for name, module in exported.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        w = module.weight.detach().float()
        ref = fq_sd[name + ".weight"].float()
        w_diff = max(w_diff, (w - ref).abs().max().item())
        checked += int(not torch.equal(ref, base_sd[name + ".weight"].float()))  # quantized by lowbit

    l_exp = logits_of(exported, ids)
    l_run = logits_of(running, ids) if running is not None else None
    l_fq = logits_of(fake, ids)
    l_base = logits_of(base, ids)
    top1 = (l_exp.argmax(-1) == l_base.argmax(-1)).float().mean().item()
    out = dict(export=a.export, format=qcfg.get("format"), quantized_linears=checked, tokens=ids.shape[1],
               max_weight_diff_vs_lowbit=w_diff,
               max_logit_diff_vs_lowbit_fakequant=(l_exp - l_fq).abs().max().item(),
               max_logit_diff_vs_bf16=(l_exp - l_base).abs().max().item(),
               compressed_run_max_logit_diff_vs_lowbit_fakequant=(l_run - l_fq).abs().max().item()
               if l_run is not None else run_error,
               compressed_run_max_logit_diff_vs_bf16=(l_run - l_base).abs().max().item() if l_run is not None else None,
               mean_logit_diff_vs_bf16=(l_exp - l_base).abs().mean().item(),
               top1_agreement_vs_bf16=top1)
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:40s} {v}")
    return 0 if checked > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""RTN-quantize a Hugging Face model with compressed-tensors' own code and save the compressed checkpoint
(what llm-compressor's QuantizationModifier writes for weight-only presets: min-max qparams, lm_head ignored).
A developer tool to check that `lowbit ppl` / `lowbit compare` read real compressed-tensors exports; the
output is not committed.

Run: /work/venv/bin/python tools/reference/ct_quantize_model.py MODEL OUT --scheme W4A16|W4A16_ASYM|W8A16|W8A8
"""
import argparse
import os
import shutil

import torch
from compressed_tensors.compressors.model_compressors.model_compressor import ModelCompressor
from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config, preset_name_to_scheme
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from ct_checkpoint_fixture import set_weight_qparams


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--scheme", default="W4A16")
    args = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16).eval()
    scheme = preset_name_to_scheme(args.scheme, ["Linear"])
    apply_quantization_config(model, QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"]))
    with torch.no_grad():
        set_weight_qparams(model)
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    model.config.save_pretrained(args.out)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight" or
             not model.config.tie_word_embeddings}
    save_file(state, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    compressor.update_config(args.out)
    for f in os.listdir(args.model):
        if f.startswith("tokenizer") or f in ("special_tokens_map.json", "generation_config.json"):
            shutil.copy(os.path.join(args.model, f), args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()

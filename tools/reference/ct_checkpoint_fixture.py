#!/usr/bin/env python3
"""Golden compressed-tensors checkpoints for lowbit's reader (tests/formats/ct_golden_test.cc).

A tiny random fp32 Llama is quantized with compressed-tensors' own code (apply_quantization_config, min-max
qparams from calculate_qparams, ModelCompressor.compress_model, update_config) and saved as a Hugging Face
folder under tests/fixtures/formats/<name>/, one per scheme:

  w4a16_asym_g16   int4 asymmetric group 16 weights, pack-quantized (packed zero points)
  w8a8_int         int8 per-channel weights + dynamic per-token int8 inputs, int-quantized
  fp8_static_kv    fp8 e4m3 per-tensor weights + static per-tensor fp8 inputs (input_scale from a calibration
                   pass) + fp8 KV cache with static k_scale / v_scale, float-quantized

Next to each folder, <name>.expected.json holds token ids and the logits transformers computes for them with
the quantization applied (compressed-tensors' quantized forward: fake-quantized weights, input activations and
keys / values), before compression.

Run: /work/venv/bin/python tools/reference/ct_checkpoint_fixture.py [--out tests/fixtures/formats]
"""
import argparse
import json
import os
import shutil

import torch
from compressed_tensors.compressors.model_compressors.model_compressor import ModelCompressor
from compressed_tensors.quantization import (QuantizationArgs, QuantizationConfig, QuantizationScheme,
                                             apply_quantization_config)
from compressed_tensors.quantization.utils import calculate_qparams
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

TOKENS = [1, 17, 5, 42, 9, 33, 2, 60, 11, 7, 25, 3]


def tiny_model(seed):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.3)
            else:
                p.normal_(1.0, 0.1)
    return model


def minmax(w, args):
    """Per scale cell min / max as llm-compressor's min-max observer hands them to calculate_qparams."""
    s = args.strategy
    if s == "tensor":
        return w.amin().reshape(1), w.amax().reshape(1)
    if s == "channel":
        return w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
    if s == "group":
        g = w.unflatten(-1, (w.shape[1] // args.group_size, args.group_size))
        return g.amin(dim=-1), g.amax(dim=-1)
    raise ValueError(s)


def set_weight_qparams(model):
    for name, m in model.named_modules():
        scheme = getattr(m, "quantization_scheme", None)
        if scheme is None or scheme.weights is None or not isinstance(m, torch.nn.Linear):
            continue
        lo, hi = minmax(m.weight.data, scheme.weights)
        scale, zp = calculate_qparams(lo, hi, scheme.weights)
        m.weight_scale.data.copy_(scale.reshape(m.weight_scale.shape))
        if hasattr(m, "weight_zero_point"):
            m.weight_zero_point.data.copy_(zp.reshape(m.weight_zero_point.shape))


def calibrate_static(model, input_args, kv_args):
    """Static input scales (absmax / 448 of each module's input) and k / v scales (absmax of the post-RoPE
    keys / values per layer), from one float pass with quantization disabled."""
    for m in model.modules():
        m.quantization_enabled = False
    absmax = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and getattr(m, "quantization_scheme", None) is not None:
            def hook(mod, inp, name=name):
                absmax[name] = max(absmax.get(name, 0.0), inp[0].abs().max().item())
            hooks.append(m.register_forward_pre_hook(hook))
    kv = {}
    from compressed_tensors.modeling.kvcache import register_key_hook, register_value_hook
    for name, m in model.named_modules():
        if name.endswith("self_attn") and kv_args is not None:
            def khook(mod, key, name=name):
                kv[name + ".k"] = max(kv.get(name + ".k", 0.0), key.abs().max().item())
            def vhook(mod, value, name=name):
                kv[name + ".v"] = max(kv.get(name + ".v", 0.0), value.abs().max().item())
            hooks.append(register_key_hook(m, khook))
            hooks.append(register_value_hook(m, vhook))
    with torch.no_grad():
        model(torch.tensor([TOKENS[::-1]]))
    for h in hooks:
        h.remove()
    for m in model.modules():
        m.quantization_enabled = True
    q_max = 448.0
    for name, m in model.named_modules():
        if name in absmax and input_args is not None and not input_args.dynamic:
            m.input_scale.data.fill_(absmax[name] / q_max)
        if name + ".k" in kv:
            m.k_scale.data.fill_(kv[name + ".k"] / q_max)
            m.v_scale.data.fill_(kv[name + ".v"] / q_max)


def build(out_dir, name, scheme_kwargs, kv_args=None, seed=0):
    model = tiny_model(seed)
    scheme = QuantizationScheme(targets=["Linear"], **scheme_kwargs)
    qconfig = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"], kv_cache_scheme=kv_args)
    apply_quantization_config(model, qconfig)
    set_weight_qparams(model)
    calibrate_static(model, scheme.input_activations, kv_args)
    with torch.no_grad():
        logits = model(torch.tensor([TOKENS])).logits[0]

    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    folder = os.path.join(out_dir, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    model.config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    compressor.update_config(folder)
    with open(os.path.join(out_dir, name + ".expected.json"), "w") as f:
        json.dump({"tokens": TOKENS, "logits": [[float(v) for v in row] for row in logits],
                   "compressed_tensors_scheme": scheme.model_dump(mode="json"),
                   "tensors": sorted(state.keys())}, f)
    print(name, {k: (str(v.dtype), list(v.shape)) for k, v in state.items() if "layers.0.self_attn.q_proj" in k
                 or "layers.0.self_attn.k_scale" in k})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tests/fixtures/formats"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    build(out, "w4a16_asym_g16", dict(weights=QuantizationArgs(num_bits=4, type="int", symmetric=False,
                                                                 strategy="group", group_size=16)))
    build(out, "w8a8_int", dict(weights=QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="channel"),
                                input_activations=QuantizationArgs(num_bits=8, type="int", symmetric=True,
                                                                   strategy="token", dynamic=True)), seed=1)
    fp8 = dict(num_bits=8, type="float", symmetric=True, strategy="tensor")
    build(out, "fp8_static_kv", dict(weights=QuantizationArgs(**fp8), input_activations=QuantizationArgs(**fp8)),
          kv_args=QuantizationArgs(**fp8), seed=2)


if __name__ == "__main__":
    main()

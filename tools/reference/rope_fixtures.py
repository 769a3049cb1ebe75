#!/usr/bin/env python3
"""Golden RoPE tables for the C++ config/rope tests, from transformers' LlamaRotaryEmbedding.

For a few config.json variants (default, linear scaling, llama3 scaling via transformers-5 `rope_parameters`
and via transformers-4 `rope_scaling`, Qwen2/Mistral theta), writes the config dict as given, the
inv_freq buffer transformers builds from it (float32) and cos/sin at a few positions (float32, the values
transformers multiplies q and k with). The C++ test parses each config with ModelConfig::from_json and
compares.

Usage: rope_fixtures.py [--out tests/fixtures/rope/rope.json]
"""
import argparse
import json
import os

import torch
import transformers
from transformers import AutoConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

BASE = {"hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 1, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 131072}

CASES = {
    "default": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=10000.0),
    "linear": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=10000.0,
                   rope_scaling={"type": "linear", "factor": 4.0}),
    "llama3_v5": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama",
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192}),
    "llama3_v4": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=500000.0,
                      head_dim=64,
                      rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "qwen2": dict(BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2", rope_theta=1000000.0),
}
POSITIONS = [0, 1, 7, 511, 4095, 100000]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tests/fixtures/rope/rope.json"))
    args = parser.parse_args()
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "positions": POSITIONS,
           "cases": {}}
    for name, cfg in CASES.items():
        config = AutoConfig.for_model(cfg["model_type"], **{k: v for k, v in cfg.items() if k != "model_type"})
        rope = LlamaRotaryEmbedding(config)
        inv = rope.inv_freq.float()
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        x = torch.zeros(1, len(POSITIONS), head_dim)
        cos, sin = rope(x, torch.tensor([POSITIONS]))
        half = head_dim // 2
        out["cases"][name] = {
            "config": cfg,
            "head_dim": head_dim,
            "attention_scaling": float(rope.attention_scaling),
            "inv_freq": [float(v) for v in inv],
            "cos": [[float(v) for v in row[:half]] for row in cos[0]],
            "sin": [[float(v) for v in row[:half]] for row in sin[0]],
        }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

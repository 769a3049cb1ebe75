#!/usr/bin/env python3
"""Golden logits for the C++ forward pass, from Hugging Face transformers (fp32, CPU, eager attention).

For each model, a few fixed prompts are tokenized with the model folder's tokenizer.json (BOS prepended)
and run through LlamaForCausalLM loaded in float32 (lowbit-ref-100m's bf16 weights are upcast exactly).
Written to tests/fixtures/logits/<tag>.json plus float32 little-endian .bin files next to it; the format
is described in /work/notes/fixtures.md and in the JSON's "format" field.

Usage:
  make_logits_fixtures.py --model /work/shared/models/lowbit-ref-100m --tag ref100m --all-logits short
  make_logits_fixtures.py --model models/stories260K --tag stories260K --all-logits '*' --prompts stories
"""
import argparse
import hashlib
import json
import os

import numpy as np
import tokenizers
import torch
import transformers

PROMPTS = {
    # name -> text; "bos" is the 1-token prompt (just BOS).
    "general": [
        ("bos", ""),
        ("short", "The capital of France is Paris, and the capital of Germany is"),
        ("long", "In the early years of the twentieth century, the small town grew quickly as the new railway "
                     "brought workers, merchants and families from the surrounding farms. The first school opened "
                     "in 1905, and by 1910 the town had a library, two churches and a weekly newspaper that"),
    ],
    "stories": [
        ("bos", ""),
        ("short", "Once upon a time, there was a little girl named Lily. She"),
        ("long", "Once upon a time, there was a little dog named Max. Max liked to play in the park with his "
                     "red ball. One day, the ball rolled into the pond. Max was sad because he could not swim. "
                     "A kind duck saw Max and said, \"Do not be sad, I will"),
    ],
}


def write_f32(path, array):
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


@torch.inference_mode()
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tag", required=True, help="file prefix, e.g. ref100m")
    parser.add_argument("--prompts", default="general", choices=sorted(PROMPTS))
    parser.add_argument("--all-logits", default="short",
                        help="prompt name whose logits are stored for every position ('*' = all prompts)")
    parser.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "../../tests/fixtures/logits"))
    parser.add_argument("--source", default=None, help="how tests find the model, e.g. shared:models/lowbit-ref-100m")
    args = parser.parse_args()

    torch.set_num_threads(2)
    config = json.load(open(os.path.join(args.model, "config.json")))
    tok = tokenizers.Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    os.makedirs(args.out_dir, exist_ok=True)

    prompts = []
    for name, text in PROMPTS[args.prompts]:
        ids = [config["bos_token_id"]] + (tok.encode(text, add_special_tokens=False).ids if text else [])
        logits = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()  # [n, vocab]
        logits32 = logits.astype(np.float32)
        top2 = np.sort(logits, axis=-1)[:, -2:]
        entry = {
            "name": name,
            "text": text,
            "ids": ids,
            "argmax": logits.argmax(-1).tolist(),
            "max_logit": logits.max(-1).tolist(),
            # gap between the best and second-best logit: where it is tiny, argmax may legitimately differ
            "top2_gap": (top2[:, 1] - top2[:, 0]).tolist(),
            "logsumexp": torch.logsumexp(torch.from_numpy(logits), dim=-1).tolist(),
        }
        last_file = f"{args.tag}_{name}_last.bin"
        entry["last_logits"] = {"file": last_file, "shape": [logits.shape[1]],
                                "sha256": write_f32(os.path.join(args.out_dir, last_file), logits32[-1])}
        if args.all_logits == "*" or args.all_logits == name:
            all_file = f"{args.tag}_{name}_all.bin"
            entry["all_logits"] = {"file": all_file, "shape": list(logits.shape),
                                   "sha256": write_f32(os.path.join(args.out_dir, all_file), logits32)}
        prompts.append(entry)
        print(f"{args.tag}/{name}: {len(ids)} tokens, argmax of last position {entry['argmax'][-1]}")

    index = {
        "format": "ids include BOS; logits are float32 little-endian, row-major [positions, vocab] "
                  "(last_logits: [vocab], the final position); argmax/max_logit/top2_gap/logsumexp: one "
                  "value per position, computed in float64 from the fp32 model output",
        "model": os.path.basename(os.path.normpath(args.model)),
        "source": args.source or args.model,
        "vocab_size": config["vocab_size"],
        "dtype": "float32",
        "attn_implementation": "eager",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "generator": "tools/reference/make_logits_fixtures.py",
        "prompts": prompts,
    }
    with open(os.path.join(args.out_dir, f"{args.tag}.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

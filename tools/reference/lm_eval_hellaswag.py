#!/usr/bin/env python3
"""Reference HellaSwag log-likelihoods with lm-evaluation-harness semantics, computed with transformers.

For the first N examples of a HellaSwag JSONL file (and the first few later ones with WikiHow "[...]"
markup, which the first N may lack) this writes, per example, the context tokens, each
choice's continuation tokens and its log-likelihood, as lm-eval's HF backend computes them:
  * process_docs: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
    choices = preprocess(ending); the continuation is " " + choice (target_delimiter);
  * _encode_pair: trailing whitespace of the context moves to the continuation; the continuation tokens
    are the tail of encode(context + continuation) beyond len(encode(context));
  * one forward pass per choice over (context + continuation)[:-1], summing the log-softmax of the
    continuation tokens (no shared prefix: this checks lowbit's KV-cache truncation too).
Encoding uses the `tokenizers` library on tokenizer.json with special tokens (BOS first), which is what
current lm-eval does for Llama tokenizers (add_bos_token delegated to the tokenizer); transformers 5's
LlamaTokenizer differs from tokenizer.json on leading spaces (see src/tokenizer/tokenizer.h). The model runs
in float32 (the bf16 weights upcast).

Usage: /work/venv/bin/python tools/reference/lm_eval_hellaswag.py \
         --model ../shared/models/lowbit-ref-100m --data ../shared/data/eval/hellaswag_val_1k.jsonl \
         -n 20 --bracketed 5 -o tests/fixtures/eval/hellaswag_ref100m.json
"""
import argparse
import json
import re

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation).ids
    ctx = tok.encode(context).ids
    return ctx, whole[len(ctx):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--bracketed", type=int, default=5,
                    help="also the first B later examples with WikiHow [bracket] markup (preprocess coverage)")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()

    tok = Tokenizer.from_file(f"{args.model}/tokenizer.json")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    examples = []
    bracketed = 0
    with open(args.data) as f:
        for line_no, line in enumerate(f, start=1):
            doc = json.loads(line)
            if line_no > args.n:
                if bracketed == args.bracketed:
                    break
                if not re.search(r"\[\w+\]", doc["ctx"] + " ".join(doc["endings"])):
                    continue
                bracketed += 1
            query = preprocess(doc["activity_label"] + ": " + doc["ctx_a"] + " " + doc["ctx_b"].capitalize())
            choices = [preprocess(e) for e in doc["endings"]]
            ctx_tokens, conts, lls = None, [], []
            for choice in choices:
                ctx, cont = encode_pair(tok, query, " " + choice)
                ctx_tokens = ctx
                ids = torch.tensor([(ctx + cont)[:-1]])
                with torch.no_grad():
                    logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
                rows = logp[len(ctx) - 1:]
                lls.append(float(sum(rows[i, t] for i, t in enumerate(cont))))
                conts.append(cont)
            norm = [ll / len(c) for ll, c in zip(lls, choices)]
            examples.append({
                "line": line_no,
                "label": int(doc["label"]),
                "context": query,
                "choices": choices,
                "context_tokens": ctx_tokens,
                "continuation_tokens": conts,
                "loglikelihoods": lls,
                "pred": max(range(len(lls)), key=lambda i: lls[i]),
                "pred_norm": max(range(len(norm)), key=lambda i: norm[i]),
            })
    out = {"generator": "tools/reference/lm_eval_hellaswag.py", "model": "lowbit-ref-100m (float32)",
           "data": "hellaswag_val_1k.jsonl", "examples": examples}
    # One example per line: small diffs when the fixture is regenerated.
    with open(args.output, "w") as f:
        f.write(json.dumps({k: v for k, v in out.items() if k != "examples"})[:-1] + ', "examples": [\n')
        f.write(",\n".join(json.dumps(e) for e in examples))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()

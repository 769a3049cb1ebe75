#!/usr/bin/env python3
"""Reference perplexity, computed with Hugging Face transformers in fp32 exactly as lowbit defines it.

Definition (the one `lowbit eval ppl` implements):
  * the text file is read as-is (UTF-8, line endings kept) and tokenized as one string, with BOS prepended;
  * the ids are cut into non-overlapping windows of `ctx` tokens, the final partial window is dropped;
  * each window is run on its own (no state carried over) and scored on its ctx-1 next-token predictions;
  * ppl = exp(total NLL / scored tokens), scored tokens = windows * (ctx - 1).

Tokenization uses the model folder's tokenizer.json through the `tokenizers` library (the file lowbit's
own tokenizer reads). Besides the totals, the per-window NLL sums are stored so a C++ test can check the
first few windows without running the whole text.

Usage:
  ppl_reference.py --model DIR --text FILE --ctx 512 --name NAME --out tests/fixtures/ppl/X.json
(repeat --text/--name pairs; results for all of them go into one JSON file)
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import tokenizers
import torch
import transformers


def tokenize(model_dir, text):
    tok = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    config = json.load(open(os.path.join(model_dir, "config.json")))
    bos = config["bos_token_id"]
    return [bos] + tok.encode(text, add_special_tokens=False).ids


@torch.inference_mode()
def window_nlls(model, ids, ctx, batch):
    n_windows = len(ids) // ctx
    windows = torch.tensor(ids[: n_windows * ctx], dtype=torch.long).view(n_windows, ctx)
    sums = []
    start_time = time.time()
    for start in range(0, n_windows, batch):
        chunk = windows[start : start + batch]
        logits = model(input_ids=chunk).logits.float()  # [b, ctx, vocab]
        logprobs = torch.log_softmax(logits[:, :-1, :], dim=-1)
        target = chunk[:, 1:].unsqueeze(-1)
        nll = -logprobs.gather(-1, target).squeeze(-1)  # [b, ctx-1]
        sums.extend(nll.double().sum(dim=1).tolist())
        done = start + chunk.shape[0]
        rate = (time.time() - start_time) / done
        print(f"  {done}/{n_windows} windows, {rate:.2f} s/window", file=sys.stderr, flush=True)
    return sums


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--text", action="append", required=True)
    parser.add_argument("--name", action="append", required=True)
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-windows", type=int, default=0, help="debug: score only the first N windows")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if len(args.text) != len(args.name):
        parser.error("give one --name per --text")

    torch.set_num_threads(args.threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()

    results = {}
    for name, path in zip(args.name, args.text):
        raw = open(path, "rb").read()
        text = raw.decode("utf-8")  # as-is: CRLF and all
        ids = tokenize(args.model, text)
        if args.max_windows:
            ids = ids[: args.max_windows * args.ctx]
        print(f"{name}: {len(raw)} bytes, {len(ids)} tokens", file=sys.stderr, flush=True)
        sums = window_nlls(model, ids, args.ctx, args.batch)
        scored = len(sums) * (args.ctx - 1)
        total = math.fsum(sums)
        results[name] = {
            "text": os.path.basename(path),
            "text_bytes": len(raw),
            "text_sha256": hashlib.sha256(raw).hexdigest(),
            "text_tokens": len(ids),
            "ids_sha256": hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest(),
            "first_ids": ids[:32],
            "ctx": args.ctx,
            "windows": len(sums),
            "scored_tokens": scored,
            "nll": total,
            "mean_nll": total / scored,
            "ppl": math.exp(total / scored),
            "window_nll": sums,
        }
        print(f"{name}: ppl {results[name]['ppl']:.4f} over {scored} tokens", file=sys.stderr, flush=True)

    out = {
        "model": os.path.basename(os.path.normpath(args.model)),
        "definition": "BOS + whole-text ids; non-overlapping windows of ctx, final partial dropped; "
                      "ctx-1 predictions per window; ppl = exp(nll / scored_tokens); nll in nats",
        "dtype": "float32",
        "attn_implementation": "eager",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "generator": "tools/reference/ppl_reference.py",
        "results": results,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()

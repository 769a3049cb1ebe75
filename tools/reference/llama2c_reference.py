#!/usr/bin/env python3
"""Independent reference for the llama2.c import.

1. A numpy port of llama2.c run.c, read straight from the v0 .bin: its tokenizer `encode` (dummy-prefix
   space, UTF-8 code points with byte fallback, then greedy merging of the best-scoring adjacent pair) and
   its `forward` (RMSNorm eps 1e-5, RoPE on interleaved pairs (x[2i], x[2i+1]), GQA, SwiGLU), computed in
   float64. Nothing here knows about Hugging Face layouts or the wq/wk row permutation.
2. transformers' LlamaForCausalLM (fp32, eager) on the converted folder (lowbit's `convert llama2c` output,
   by default models/stories260K), on the same token ids. The logits must agree to <= 1e-4: this is what
   proves the permutation (a wrong one changes the logits at every position > 0 by far more).
3. The folder's tokenizer.json (through the `tokenizers` library) against run.c's encode on the prompts
   and on a text file.

Writes tests/fixtures/logits/llama2c_stories260K.json (+ .bin), in the format of make_logits_fixtures.py,
with logits from the numpy llama2.c forward.

Usage: llama2c_reference.py [--bin shared/models/stories260K/stories260K.bin] [--tokenizer-bin tok512.bin]
                            [--hf models/stories260K] [--text data/demo/tinystories_sample.txt]
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))
sys.path.insert(0, HERE)
from make_logits_fixtures import PROMPTS, write_f32  # noqa: E402


def read_checkpoint(path):
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack_from("<7i", raw, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv_heads * hs
    floats = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        out = floats[pos:pos + n].reshape(shape)
        pos += n
        return out

    w = {"dim": dim, "hidden": hidden, "n_layers": n_layers, "n_heads": n_heads, "n_kv_heads": n_kv_heads,
         "vocab": vocab, "seq_len": seq_len}
    w["emb"] = take(vocab, dim)
    w["rms_att"] = take(n_layers, dim)
    w["wq"] = take(n_layers, dim, dim)  # [layer, out, in]: run.c's matmul is out[i] = sum_j w[i, j] x[j]
    w["wk"] = take(n_layers, kv_dim, dim)
    w["wv"] = take(n_layers, kv_dim, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["rms_ffn"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["rms_final"] = take(dim)
    take(seq_len, hs // 2)  # freq_cis_real
    take(seq_len, hs // 2)  # freq_cis_imag
    w["wcls"] = w["emb"] if shared else take(vocab, dim)
    assert pos == floats.size, f"{path}: {floats.size - pos} floats left over"
    return w


def rmsnorm(x, weight):
    return weight * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5))


def rope_interleaved(x, positions, hs):
    """x: [T, n, hs]; rotates pairs (2i, 2i+1) by pos * 10000^(-2i/hs), as run.c does."""
    i = np.arange(0, hs, 2)
    freq = 1.0 / np.power(10000.0, i / hs)
    angle = positions[:, None] * freq[None, :]  # [T, hs/2]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def forward(w, ids):
    """run.c's forward for every position of `ids` (causal attention); returns logits [T, vocab]."""
    T, dim, nh, nkv = len(ids), w["dim"], w["n_heads"], w["n_kv_heads"]
    hs = dim // nh
    positions = np.arange(T, dtype=np.float64)
    x = w["emb"][ids]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(w["n_layers"]):
        xb = rmsnorm(x, w["rms_att"][l])
        q = rope_interleaved((xb @ w["wq"][l].T).reshape(T, nh, hs), positions, hs)
        k = rope_interleaved((xb @ w["wk"][l].T).reshape(T, nkv, hs), positions, hs)
        v = (xb @ w["wv"][l].T).reshape(T, nkv, hs)
        att_out = np.empty((T, nh, hs))
        for h in range(nh):
            kv = h // (nh // nkv)
            scores = q[:, h, :] @ k[:, kv, :].T / np.sqrt(hs) + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            att_out[:, h, :] = scores @ v[:, kv, :]
        x = x + att_out.reshape(T, dim) @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l])
        gate, up = xb @ w["w1"][l].T, xb @ w["w3"][l].T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


def read_tokenizer(path):
    raw = open(path, "rb").read()
    pos, pieces, scores = 4, [], []
    while pos < len(raw):
        score, length = struct.unpack_from("<fi", raw, pos)
        pieces.append(raw[pos + 8:pos + 8 + length])
        scores.append(score)
        pos += 8 + length
    return pieces, scores


def encode(pieces, scores, text, bos=True):
    """run.c's encode(): BOS, dummy-prefix space, code points (byte fallback id = byte + 3), then merging
    of the adjacent pair whose concatenation has the highest score until none is in the vocabulary."""
    lookup = {p: i for i, p in enumerate(pieces)}
    ids = []
    if text:
        ids.append(lookup[b" "])
    for ch in text:
        b = ch.encode("utf-8")
        if b in lookup:
            ids.append(lookup[b])
        else:
            ids.extend(byte + 3 for byte in b)
    # No vocabulary piece contains "\n", so merges never cross a newline: merge line by line (fast).
    newline = 3 + ord("\n")
    assert not any(b"\n" in p for p in pieces[259:]), "a piece contains a newline"
    out, segment = ([1] if bos else []), []
    for t in ids + [None]:
        if t is None or t == newline:
            while True:
                best, best_i = -1e30, -1
                for i in range(len(segment) - 1):
                    j = lookup.get(pieces[segment[i]] + pieces[segment[i + 1]])
                    if j is not None and scores[j] > best:
                        best, best_i = scores[j], i
                if best_i < 0:
                    break
                segment[best_i:best_i + 2] = [lookup[pieces[segment[best_i]] + pieces[segment[best_i + 1]]]]
            out.extend(segment)
            segment = []
            if t is not None:
                out.append(t)
        else:
            segment.append(t)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(ROOT, "../shared/models/stories260K/stories260K.bin"))
    parser.add_argument("--tokenizer-bin", default=os.path.join(ROOT, "models/stories260K/tok512.bin"))
    parser.add_argument("--hf", default=os.path.join(ROOT, "models/stories260K"))
    parser.add_argument("--text", default=os.path.join(ROOT, "data/demo/tinystories_sample.txt"))
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "tests/fixtures/logits"))
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    w = read_checkpoint(args.bin)
    pieces, scores = read_tokenizer(args.tokenizer_bin)
    print(f"checkpoint: dim {w['dim']}, hidden {w['hidden']}, layers {w['n_layers']}, heads {w['n_heads']}/"
          f"{w['n_kv_heads']}, vocab {w['vocab']}, seq_len {w['seq_len']}; tokenizer: {len(pieces)} pieces")

    import tokenizers
    import torch
    import transformers
    torch.set_num_threads(2)
    hf_tok = tokenizers.Tokenizer.from_file(os.path.join(args.hf, "tokenizer.json"))
    model = transformers.AutoModelForCausalLM.from_pretrained(args.hf, dtype=torch.float32,
                                                              attn_implementation="eager")
    model.eval()

    ok = True
    prompts = []
    for name, text in PROMPTS["stories"]:
        ids = encode(pieces, scores, text)
        hf_ids = hf_tok.encode(text, add_special_tokens=True).ids if text else [1]
        if hf_ids != ids:
            print(f"  {name}: tokenizer.json ids differ from run.c encode:\n    {hf_ids}\n    {ids}")
            ok = False
        ref = forward(w, np.array(ids))
        with torch.inference_mode():
            hf = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
        diff = float(np.abs(hf - ref).max())
        print(f"  {name}: {len(ids)} tokens, max |transformers - llama2.c| = {diff:.3g}, "
              f"argmax equal at {int((hf.argmax(-1) == ref.argmax(-1)).sum())}/{len(ids)} positions")
        ok &= diff <= args.tolerance
        top2 = np.sort(ref, axis=-1)[:, -2:]
        entry = {"name": name, "text": text, "ids": ids, "argmax": ref.argmax(-1).tolist(),
                 "max_logit": ref.max(-1).tolist(), "top2_gap": (top2[:, 1] - top2[:, 0]).tolist(),
                 "logsumexp": torch.logsumexp(torch.from_numpy(ref), dim=-1).tolist(),
                 "max_abs_diff_transformers": diff}
        for kind, arr in (("last", ref[-1]), ("all", ref)):
            fname = f"llama2c_stories260K_{name}_{kind}.bin"
            entry[f"{kind}_logits"] = {"file": fname, "shape": list(arr.shape),
                                       "sha256": write_f32(os.path.join(args.out_dir, fname), arr)}
        prompts.append(entry)

    # Negative control: the same model with llama2.c's unpermuted wq/wk must NOT match (shows the check has
    # teeth: the permutation is what makes the logits agree).
    with torch.inference_mode():
        for l, layer in enumerate(model.model.layers):
            layer.self_attn.q_proj.weight.copy_(torch.from_numpy(w["wq"][l]))
            layer.self_attn.k_proj.weight.copy_(torch.from_numpy(w["wk"][l]))
        ids = prompts[-1]["ids"]
        wrong = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
    control = float(np.abs(wrong - forward(w, np.array(ids))).max())
    print(f"  negative control (no permutation), {prompts[-1]['name']}: max |diff| = {control:.3g}")
    ok &= control > 100 * args.tolerance

    text_check = {}
    if args.text and os.path.exists(args.text):
        text = open(args.text, "rb").read().decode("utf-8")
        ids = encode(pieces, scores, text)
        hf_ids = hf_tok.encode(text, add_special_tokens=True).ids
        same = ids == hf_ids
        first_diff = next((i for i, (a, b) in enumerate(zip(ids, hf_ids)) if a != b), None)
        print(f"  {os.path.basename(args.text)}: run.c encode {len(ids)} ids, tokenizer.json {len(hf_ids)} ids, "
              f"identical: {same}" + ("" if same else f" (first difference at {first_diff})"))
        text_check = {"text": os.path.basename(args.text), "runc_tokens": len(ids), "hf_tokens": len(hf_ids),
                      "identical": same,
                      "ids_sha256": hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest()}
        ok &= same

    index = {
        "format": "as tests/fixtures/logits/stories260K.json; logits computed by the numpy port of llama2.c "
                  "run.c in float64 (stored as float32) directly from the .bin",
        "model": "stories260K", "source": "shared:models/stories260K/stories260K.bin",
        "vocab_size": w["vocab"], "dtype": "float64 -> float32",
        "generator": "tools/reference/llama2c_reference.py",
        "tokenizer_check": text_check,
        "unpermuted_max_abs_diff": control,
        "prompts": prompts,
    }
    with open(os.path.join(args.out_dir, "llama2c_stories260K.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden token ids for lowbit's tokenizer tests, produced by Hugging Face `tokenizers`.

Usage (from the repository root):
    /work/venv/bin/python tools/reference/tokenizer_fixtures.py [--shared /work/shared]

Reads tests/fixtures/tokenizer/corpus.jsonl (one JSON string per line) and a ~50 KB slice of
data/eval/wikitext2_test.raw, encodes every text with each tokenizer and writes
tests/fixtures/tokenizer/<name>.json:
    {"tokenizer": <folder under shared>, "variant": <how tokenizer.json was modified or null>,
     "cases": [{"text", "ids" (add_special_tokens=False), "ids_special" (=True),
                "decoded" (decode(ids_special, skip_special_tokens=True)),
                "decoded_keep_special" (skip_special_tokens=False; absent when equal to "decoded")}]}
The WikiText case stores "text": null, "text_file" and "text_bytes" (a prefix of that file) instead.

The ids come from the `tokenizers` library reading tokenizer.json, which is what lowbit reproduces.
For the special tokens added by add_special_tokens=True the script also checks that transformers'
AutoTokenizer (which reads tokenizer_config.json) adds the same ones, so that lowbit's encode(text,
true) equals transformers' tokenizer(text)["input_ids"] on that point. Note: transformers 5's
LlamaTokenizer rebuilds its pre-tokenizer and differs from tokenizer.json (and from sentencepiece) on
leading / repeated spaces; lowbit follows tokenizer.json.

Variants ("metaspace_*") replace the Llama-2 normalizer with an equivalent Metaspace pre-tokenizer,
the other encoding of SentencePiece-style tokenizers found in tokenizer.json files; "added_flags"
adds tokens with the normalized / lstrip / rstrip / single_word flags. The test applies the same
modification in C++ before comparing.
"""
import argparse
import json
import os
import sys

from tokenizers import Tokenizer
from transformers import AutoTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "tokenizer")
WIKITEXT = "data/eval/wikitext2_test.raw"
WIKITEXT_BYTES = 50_000

# name -> (folder under shared/tokenizers, variant)
TOKENIZERS = {
    "llama2": ("llama2", None),
    "mistral": ("mistral", None),
    "qwen3": ("qwen3", None),
    "llama2_metaspace_first": ("llama2", "metaspace_first"),
    "llama2_metaspace_always_split": ("llama2", "metaspace_always_split"),
    "llama2_added_flags": ("llama2", "added_flags"),
    "qwen3_added_flags": ("qwen3", "added_flags"),
}

# Extra added tokens exercising the flags (ids follow the largest existing id).
EXTRA_ADDED_TOKENS = [
    {"content": "hello world", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
     "special": False},
    {"content": "<|tool|>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False,
     "special": True},
    {"content": "foobarbaz", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False,
     "special": False},
]


def apply_variant(tj: dict, variant: str) -> dict:
    """Must match apply_variant() in tests/tokenizer/tokenizer_fixture_test.cc."""
    if variant is None:
        return tj
    tj = dict(tj)
    if variant == "added_flags":
        next_id = 1 + max(max(tj["model"]["vocab"].values()), max(t["id"] for t in tj["added_tokens"]))
        tj["added_tokens"] = tj["added_tokens"] + [dict(t, id=next_id + i) for i, t in enumerate(EXTRA_ADDED_TOKENS)]
        return tj
    tj["normalizer"] = None
    if variant == "metaspace_first":
        tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                               "split": False}
        tj["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                         "split": False}
    elif variant == "metaspace_always_split":
        tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                               "split": True}
    else:
        raise ValueError(variant)
    return tj


def wikitext_slice(shared: str) -> str:
    with open(os.path.join(shared, WIKITEXT), "rb") as f:
        data = f.read(WIKITEXT_BYTES + 4096)
    end = data.index(b"\n", WIKITEXT_BYTES) + 1  # whole lines only, so UTF-8 is never cut
    return data[:end].decode("utf-8")


def special_affixes(encode, text="hello"):
    """(prefix, suffix) ids that add_special_tokens=True adds around the plain encoding."""
    plain = encode(text, False)
    full = encode(text, True)
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return full[:i], full[i + len(plain):]
    raise RuntimeError("special tokens are not a prefix/suffix")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"))
    args = ap.parse_args()

    with open(os.path.join(FIXTURES, "corpus.jsonl"), encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    wikitext = wikitext_slice(args.shared)
    texts.append(wikitext)

    for name, (folder, variant) in TOKENIZERS.items():
        d = os.path.join(args.shared, "tokenizers", folder)
        with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as f:
            tj = apply_variant(json.load(f), variant)
        tok = Tokenizer.from_str(json.dumps(tj))

        def encode(text, special, tok=tok):
            return tok.encode(text, add_special_tokens=special).ids

        if variant is None:
            hf = AutoTokenizer.from_pretrained(d)
            ours = special_affixes(encode)
            theirs = special_affixes(lambda t, s: hf(t, add_special_tokens=s)["input_ids"])
            if ours != theirs:
                print(f"{name}: transformers adds {theirs}, tokenizers adds {ours}", file=sys.stderr)
                return 1

        cases = []
        # The WikiText slice only for the unmodified tokenizers (keeps the fixtures small).
        for text in (texts if variant is None else texts[:-1]):
            ids = encode(text, False)
            ids_special = encode(text, True)
            case = {
                "text": text,
                "ids": ids,
                "ids_special": ids_special,
                "decoded": tok.decode(ids_special, skip_special_tokens=True),
                "decoded_keep_special": tok.decode(ids_special, skip_special_tokens=False),
            }
            if case["decoded_keep_special"] == case["decoded"]:
                del case["decoded_keep_special"]  # keeps the files small; the test reads "decoded"
            if text is wikitext:  # the test reads the text from shared/ (skipping when absent)
                case["text"] = None
                case["text_file"] = WIKITEXT
                case["text_bytes"] = len(text.encode("utf-8"))
            cases.append(case)
        out = os.path.join(FIXTURES, f"{name}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"tokenizer": folder, "variant": variant, "cases": cases}, f, ensure_ascii=False,
                      separators=(",", ":"))
            f.write("\n")
        print(f"wrote {out}: {len(cases)} cases, {sum(len(c['ids']) for c in cases)} ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())

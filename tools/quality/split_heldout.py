#!/usr/bin/env python3
"""Splits the reference model's held-out text into an evaluation part and an in-domain calibration part.

split_heldout.py HELDOUT.txt OUT_DIR: the documents (blank-line separated) are kept in their order; the first
ones, up to half of the bytes, go to OUT_DIR/heldout_eval.txt and the rest to OUT_DIR/heldout_calib.txt. The
two share no document, so calibrating on one and scoring the other measures quantization loss with calibration
data from the model's own distribution (docs/QUALITY.md, "In-domain calibration"). The evaluation part starts
with the same documents as the held-out text, so its first tokens are the ones the other tables score.
Developer tool: the product never needs it.
"""
import os
import sys

text = open(sys.argv[1], encoding="utf-8").read()
docs = [d for d in text.split("\n\n") if d.strip()]
half = len(text.encode("utf-8")) / 2
eval_docs, size = [], 0
for d in docs:
    if size >= half:
        break
    eval_docs.append(d)
    size += len(d.encode("utf-8")) + 2
calib_docs = docs[len(eval_docs):]
os.makedirs(sys.argv[2], exist_ok=True)
for name, part in (("heldout_eval.txt", eval_docs), ("heldout_calib.txt", calib_docs)):
    path = os.path.join(sys.argv[2], name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n\n".join(part) + "\n")
    os.replace(path + ".tmp", path)
    print(f"{path}: {len(part)} documents, {os.path.getsize(path)} bytes")

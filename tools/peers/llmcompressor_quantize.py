#!/usr/bin/env python3
"""Quantize a model with llm-compressor on exactly the calibration samples lowbit used.

Developer tool for the side-by-side comparison with llm-compressor (tools/peers/README.md). Run it with the
peers venv (llmcompressor 0.14.0.1, torch 2.14 CPU, transformers 5.17, compressed-tensors 0.19):

  /work/venv-peers/bin/python tools/peers/llmcompressor_quantize.py MODEL --calib FILE \
      --method gptq --scheme W4A16 --lowbit-json lowbit_quantize.json -o OUT [--json-out RUN.json]

The calibration samples are lowbit's: BOS followed by seq_len-1 tokens of the calibration text (tokenized
whole, without special tokens, with MODEL/tokenizer.json) starting at each of lowbit's offsets. The offsets
come from a `lowbit quantize --json` output (`calibration_offsets`, preferred: the samples are then provably
the same), or are recomputed from --seed with lowbit's rule (std::mt19937_64 + uniform_int_distribution, see
src/calib/calib_data.cc) when --lowbit-json is not given; the recomputation needs a C++ compiler, so it is
done by a tiny program compiled on the fly.

The recipe mirrors lowbit's defaults (src/apps/cli/cmd_quantize.cc):
  gptq              GPTQModifier(block_size=128, dampening_frac=0.01, actorder="static")
  awq               AWQModifier(duo_scaling=True, n_grid=20) + QuantizationModifier (RTN with min-max)
  smoothquant+gptq  SmoothQuantModifier(smoothing_strength=0.5) + GPTQModifier (as above)
all with targets=["Linear"], ignore=["lm_head"], the sequential pipeline, batch size 1, samples in lowbit's
order (no shuffling). The checkpoint is saved compressed (save_compressed=True) with the tokenizer files, so
`lowbit ppl OUT` can evaluate it.

Prints one JSON object (and writes it to --json-out): wall time of the oneshot() call alone, total wall
time of this script, peak RSS, the versions, the recipe and the calibration description.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()

# Before torch (and its OpenMP runtime) loads: with the default active wait policy, torch's worker threads
# spin at every barrier, and on a shared machine with more runnable threads than cores the GPTQ column
# loop ran ~35x slower with 2 threads than with 1 (measured on the 2-core VM under load 7: 41.9 s vs
# 1.1 s; 1.2 s with PASSIVE). Set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

SCHEMES = ("W4A16", "W4A16_ASYM", "W8A8")
METHODS = ("gptq", "awq", "smoothquant+gptq")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="Hugging Face model folder")
    p.add_argument("--calib", type=Path, required=True, help="calibration text (plain text, as lowbit reads it)")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--scheme", choices=SCHEMES, required=True)
    p.add_argument("--group-size", type=int, default=128, help="weight group size of W4A16* (default 128)")
    p.add_argument("--num-samples", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--seed", type=int, default=42, help="only used when offsets are recomputed")
    p.add_argument("--lowbit-json", type=Path, help="`lowbit quantize --json` output: take its offsets")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (replaced if present)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument(
        "--dtype",
        choices=("auto", "bfloat16", "float32"),
        default="auto",
        help="dtype the model is loaded and calibrated in; auto = the checkpoint's (bf16 for lowbit-ref-100m)",
    )
    p.add_argument("--json-out", type=Path, help="also write the result JSON here")
    return p.parse_args()


def read_calibration_text(path):
    # lowbit treats .jsonl/.json files (or text starting with '{') as JSONL and joins the "text" fields with
    # blank lines; plain text is used as-is.
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip(" \t\r\n")
    if path.suffix in (".jsonl", ".json") or stripped.startswith("{"):
        docs = [json.loads(line)["text"] for line in text.split("\n") if line.strip(" \t\r")]
        return "\n\n".join(docs)
    return text


def recompute_offsets(seed, count, high):
    """lowbit's offsets: std::uniform_int_distribution<int64_t>(0, high) over std::mt19937_64(seed).

    The distribution's algorithm is the standard library's (libstdc++), so the only faithful way to
    reproduce it is to run it."""
    source = (
        "#include <cstdio>\n#include <random>\n#include <cstdlib>\n"
        "int main(int, char** v) { std::mt19937_64 r(std::strtoull(v[1], nullptr, 10));\n"
        "  std::uniform_int_distribution<long long> d(0, std::atoll(v[3]));\n"
        "  for (long long i = 0; i < std::atoll(v[2]); ++i) std::printf(\"%lld\\n\", d(r)); }\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "offsets.cc", Path(tmp) / "offsets"
        src.write_text(source)
        subprocess.run(["c++", "-O1", "-o", str(exe), str(src)], check=True)
        out = subprocess.run([str(exe), str(seed), str(count), str(high)], check=True, capture_output=True)
    return [int(x) for x in out.stdout.split()]


def calibration_samples(args):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    stream = tokenizer.encode(read_calibration_text(args.calib), add_special_tokens=False).ids
    config = json.loads((args.model / "config.json").read_text())
    bos = config.get("bos_token_id")
    tok_config_path = args.model / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text()) if tok_config_path.exists() else {}
    add_bos = tok_config.get("add_bos_token", True) and bos is not None
    window = args.seq_len - (1 if add_bos else 0)
    if len(stream) < window:
        sys.exit(f"{args.calib}: {len(stream)} tokens, fewer than one sample; not supported here")

    if args.lowbit_json:
        lowbit = json.loads(args.lowbit_json.read_text())
        offsets = lowbit["calibration_offsets"]
        source = f"offsets from {args.lowbit_json}"
        if len(offsets) != args.num_samples:
            sys.exit(f"{args.lowbit_json} has {len(offsets)} offsets, --num-samples is {args.num_samples}")
        described = re.search(r"samples x (\d+) tokens", lowbit.get("calibration", ""))
        if described and int(described[1]) != args.seq_len:
            sys.exit(f"{args.lowbit_json} used {described[1]}-token samples, --seq-len is {args.seq_len}")
    else:
        offsets = recompute_offsets(args.seed, args.num_samples, len(stream) - window)
        source = f"offsets recomputed with seed {args.seed}"
    samples = []
    for at in offsets:
        ids = ([bos] if add_bos else []) + stream[at : at + window]
        if len(ids) != args.seq_len:
            sys.exit(f"offset {at} gives {len(ids)} tokens, expected {args.seq_len}")
        samples.append(ids)
    describe = f"{len(samples)} samples x {args.seq_len} tokens from {args.calib} ({len(stream)} tokens), {source}"
    return samples, offsets, describe


def make_dataloader(samples):
    rows = [
        {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.ones(len(ids), dtype=torch.long)}
        for ids in samples
    ]
    # A DataLoader is used by oneshot as-is: no tokenization, no shuffling, lowbit's order, batch size 1.
    return torch.utils.data.DataLoader(rows, batch_size=1, shuffle=False)


def quant_config_groups(scheme_name, group_size):
    from compressed_tensors.quantization import preset_name_to_scheme

    scheme = preset_name_to_scheme(scheme_name, ["Linear"])
    if scheme.weights.group_size is not None and group_size != scheme.weights.group_size:
        scheme.weights.group_size = group_size
    return {"group_0": scheme}


def build_recipe(args):
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    groups = quant_config_groups(args.scheme, args.group_size)
    gptq = dict(config_groups=groups, ignore=["lm_head"], block_size=128, dampening_frac=0.01, actorder="static")
    if args.method == "gptq":
        return [GPTQModifier(**gptq)]
    if args.method == "awq":
        return [
            AWQModifier(duo_scaling=True, n_grid=20),
            QuantizationModifier(config_groups=groups, ignore=["lm_head"]),
        ]
    return [SmoothQuantModifier(smoothing_strength=0.5), GPTQModifier(**gptq)]


def allow_awq_without_accelerator():
    """llm-compressor 0.14.0.1's AWQ pins its cached parent inputs before the grid search
    (IntermediatesCache.pin_memory, called from AWQModifier._apply_smoothing) without checking for an
    accelerator; on a machine without one, Tensor.pin_memory() raises ("Found no NVIDIA driver on your
    system" with the CUDA build of torch). Pinning only speeds host-to-device copies, which do not happen
    on CPU, so it is skipped there: the algorithm is unchanged."""
    if torch.accelerator.is_available():
        return False
    from llmcompressor.pipelines.cache import IntermediatesCache

    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
    return True


def versions():
    import compressed_tensors
    import llmcompressor
    import transformers

    return {
        "llmcompressor": llmcompressor.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "compressed_tensors": compressed_tensors.__version__,
        "python": sys.version.split()[0],
    }


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    samples, offsets, describe = calibration_samples(args)
    dtype = {"auto": "auto", "bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    model = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=dtype)
    model_dtype = str(next(model.parameters()).dtype)
    recipe = build_recipe(args)
    pin_memory_skipped = allow_awq_without_accelerator()

    oneshot_start = time.perf_counter()
    oneshot(
        model=model,
        dataset=make_dataloader(samples),
        recipe=recipe,
        num_calibration_samples=len(samples),
        max_seq_length=args.seq_len,
        shuffle_calibration_samples=False,
        pipeline="sequential",
    )
    oneshot_seconds = time.perf_counter() - oneshot_start

    if args.output.exists():
        shutil.rmtree(args.output)
    model.save_pretrained(str(args.output), save_compressed=True)
    for name in TOKENIZER_FILES:
        if (args.model / name).exists():
            shutil.copy2(args.model / name, args.output / name)

    result = {
        "tool": "llm-compressor",
        "model": str(args.model),
        "output": str(args.output),
        "method": args.method,
        "scheme": args.scheme,
        "group_size": args.group_size if args.scheme != "W8A8" else None,
        "dtype": model_dtype,
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "recipe": [repr(m) for m in recipe],
        "calibration": describe,
        "calibration_offsets": offsets,
        "oneshot_seconds": oneshot_seconds,
        "seconds": time.perf_counter() - START,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "versions": versions(),
        "pin_memory_skipped": pin_memory_skipped,
        "load_average": os.getloadavg(),
    }
    text = json.dumps(result)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()

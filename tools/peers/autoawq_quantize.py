#!/usr/bin/env python3
"""Run AutoAWQ on exactly the calibration samples lowbit used.

Developer tool: it answers "how much of RTN's gap does the published AWQ itself close on this model?".
AutoAWQ's scale search and clipping search follow the AWQ authors' code (mit-han-lab/llm-awq); the clipping
search is what llm-compressor's AWQModifier does not have. AutoAWQ is deprecated and pins transformers 4.x,
so it gets its own venv, which borrows torch from the peers venv:

  (set-up: tools/peers/requirements-autoawq.txt)
  /work/venv-autoawq/bin/python tools/peers/autoawq_quantize.py MODEL --calib FILE --lowbit-json Q.json -o OUT

The samples are those of tools/peers/llmcompressor_quantize.py (lowbit's offsets from a `lowbit quantize
--json` output). AutoAWQ's `quantize(..., export_compatible=True)` searches and applies the scales and the
clipping to the float weights and stops there; this script then writes

  OUT/scaled      the scaled and clipped float model (quantize it with `lowbit quantize --method rtn`
                  to see AutoAWQ's scales under lowbit's, i.e. compressed-tensors', int4 grid);
  OUT/fake        the same model fake-quantized with AutoAWQ's own `pseudo_quantize_tensor`
                  (symmetric: scale = max|w| / 7; asymmetric: min-max with a zero point);

both as bf16 Hugging Face folders `lowbit ppl` reads. With --rtn-only the AWQ step is skipped, so OUT/fake is
RTN in AutoAWQ's grid (the baseline for the gap AutoAWQ closes in its own grid). Prints one JSON object.
"""

import argparse
import json
import resource
import shutil
import sys
import time
import types
from pathlib import Path

START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent))
import llmcompressor_quantize as peers  # noqa: E402  (sets OMP_WAIT_POLICY before torch loads)
import torch  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="Hugging Face model folder")
    p.add_argument("--calib", type=Path, required=True, help="calibration text (plain text, as lowbit reads it)")
    p.add_argument("--lowbit-json", type=Path, help="`lowbit quantize --json` output: take its offsets")
    p.add_argument("--num-samples", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--seed", type=int, default=42, help="only used when offsets are recomputed")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--zero-point", action="store_true", help="asymmetric (AutoAWQ's default); symmetric without")
    p.add_argument("--no-clip", action="store_true", help="skip AutoAWQ's clipping search")
    p.add_argument("--rtn-only", action="store_true", help="no AWQ: fake-quantize the original weights")
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output", type=Path, required=True)
    return p.parse_args()


def save(model, model_dir, out):
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
    for name in peers.TOKENIZER_FILES:
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, tmp / name)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    from awq import AutoAWQForCausalLM
    from awq.quantize.quantizer import AwqQuantizer

    samples, offsets, describe = peers.calibration_samples(args)
    dtype = getattr(torch, args.dtype)
    awq_model = AutoAWQForCausalLM.from_pretrained(str(args.model), torch_dtype=dtype, device_map="cpu")
    quant_config = {"zero_point": args.zero_point, "q_group_size": args.group_size, "w_bit": 4, "version": "GEMM"}
    quantize_seconds = 0.0
    if not args.rtn_only:
        t0 = time.perf_counter()
        awq_model.quantize(
            None,
            quant_config=quant_config,
            calib_data=samples,
            max_calib_samples=len(samples),
            max_calib_seq_len=args.seq_len,
            export_compatible=True,
            apply_clip=not args.no_clip,
        )
        quantize_seconds = time.perf_counter() - t0
    model = awq_model.model
    args.output.mkdir(parents=True, exist_ok=True)
    if not args.rtn_only:
        save(model, args.model, args.output / "scaled")
        model.to(dtype)

    # AutoAWQ's own fake quantization of every decoder linear (lm_head, tied to the embeddings, stays), in fp32
    # arithmetic; the values are stored in bf16 like every checkpoint compared here.
    grid = types.SimpleNamespace(w_bit=4, group_size=args.group_size, zero_point=args.zero_point)
    quantized = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers." in name:
                module.weight.data = AwqQuantizer.pseudo_quantize_tensor(grid, module.weight.data.float())[0].to(dtype)
                quantized += 1
    save(model, args.model, args.output / "fake")

    import awq
    import transformers

    result = {
        "tool": "autoawq",
        "versions": {"autoawq": awq.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "quant_config": quant_config,
        "apply_clip": not args.no_clip,
        "rtn_only": args.rtn_only,
        "dtype": args.dtype,
        "calibration": describe,
        "calibration_offsets": offsets,
        "linears_fake_quantized": quantized,
        "quantize_seconds": round(quantize_seconds, 2),
        "wall_seconds": round(time.perf_counter() - START, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    (args.output / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "calibration_offsets"}, indent=2))


if __name__ == "__main__":
    main()

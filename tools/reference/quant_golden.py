#!/usr/bin/env python3
"""Golden values for lowbit's quant stage, computed by the compressed-tensors Python package.

Writes small JSON files under tests/fixtures/quant/ (committed; the C++ tests never run Python):

  pack_golden.json     pack_to_int32 of small int8 code matrices, 1..8 bits, odd shapes, both packed dims
  quant_golden.json    qparams, codes, dequantized values and the pack-quantized compressor output for a
                       small matrix under each scheme, in float32 and bfloat16
  presets_golden.json  the `quantization_config` that compressed-tensors writes into config.json for each
                       preset (via ModelCompressor on a tiny Llama-shaped module tree)
  match_golden.json    compressed-tensors' match_name / is_match decisions for names, types and regexes

Run: /work/venv/bin/python tools/reference/quant_golden.py [--out tests/fixtures/quant]
"""

import argparse
import json
import os
import tempfile

import compressed_tensors
import torch
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32, unpack_from_int32
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
from compressed_tensors.quantization.utils import calculate_qparams, compute_dynamic_scales_and_zp


def flat(t):
    return t.reshape(-1).tolist()


def f32hex(t):
    """float32 values, exactly, as the hex of their little-endian bytes (8 hex digits per value)."""
    return t.detach().float().contiguous().numpy().astype("<f4").tobytes().hex()


# ---- packing --------------------------------------------------------------------------------------------


def pack_cases():
    g = torch.Generator().manual_seed(1)
    cases = []
    for bits in range(1, 9):
        for rows, cols in [(3, 7), (2, 32), (5, 45), (4, 64), (1, 1)]:
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            q = torch.randint(lo, hi + 1, (rows, cols), generator=g, dtype=torch.int32).to(torch.int8)
            q[0, 0] = lo  # the extremes are always present
            q[-1, -1] = hi
            for dim in (1, 0):
                packed = pack_to_int32(q, bits, packed_dim=dim)
                try:
                    back = unpack_from_int32(packed, bits, q.shape, packed_dim=dim)
                    assert torch.equal(back, q)
                except RuntimeError:
                    # compressed-tensors 0.20 cannot unpack 4-bit codes packed along dim 0 into a single
                    # word row (its byte view of the transposed [cols, 1] tensor fails); packing is fine.
                    assert bits == 4 and dim == 0 and packed.shape[0] == 1
                cases.append(
                    dict(bits=bits, rows=rows, cols=cols, packed_dim=dim, codes=flat(q),
                         packed_shape=list(packed.shape), packed=flat(packed)))
    return cases


# ---- quantization ---------------------------------------------------------------------------------------


def test_matrix(rows=8, cols=64):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(rows, cols, generator=g)
    w *= torch.logspace(-2, 0.5, rows).unsqueeze(1)  # rows of very different magnitude
    w[3] = 0.0  # an all-zero row: zero range -> eps scale
    w[5] = w[5].abs() + 0.25  # strictly positive row: asymmetric zero point at qmin
    w[6] = -w[6].abs()  # strictly negative row
    w[1, 7] = 9.0  # an outlier
    w[2, 1::2] = w[2, 0::2]  # pairs of equal values
    return w


def observe(x, args):
    """min/max per scale cell, shaped as compressed-tensors' qparams (what llm-compressor's min-max
    observer hands to calculate_qparams)."""
    s = args.strategy
    if s == "tensor":
        return torch.aminmax(x)
    if s == "channel":
        return x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)
    if s == "group":
        xg = x.unflatten(-1, (x.shape[-1] // args.group_size, args.group_size))
        return xg.amin(dim=-1), xg.amax(dim=-1)
    raise ValueError(s)


QUANT_CASES = [
    # name, QuantizationArgs kwargs, role
    ("int8_sym_channel", dict(num_bits=8, strategy="channel"), "weight"),
    ("int8_sym_tensor", dict(num_bits=8, strategy="tensor"), "weight"),
    ("int8_sym_group32", dict(num_bits=8, strategy="group", group_size=32), "weight"),
    ("int8_asym_channel", dict(num_bits=8, strategy="channel", symmetric=False), "weight"),
    ("int4_sym_group32", dict(num_bits=4, strategy="group", group_size=32), "weight"),
    ("int4_asym_group32", dict(num_bits=4, strategy="group", group_size=32, symmetric=False), "weight"),
    ("int4_sym_channel", dict(num_bits=4, strategy="channel"), "weight"),
    ("int4_asym_group16", dict(num_bits=4, strategy="group", group_size=16, symmetric=False), "weight"),
    ("int2_asym_group16", dict(num_bits=2, strategy="group", group_size=16, symmetric=False), "weight"),
    ("int3_asym_channel", dict(num_bits=3, strategy="channel", symmetric=False), "weight"),
    ("int5_sym_group64", dict(num_bits=5, strategy="group", group_size=64), "weight"),
    ("int7_asym_tensor", dict(num_bits=7, strategy="tensor", symmetric=False), "weight"),
    ("fp8_tensor", dict(num_bits=8, type="float", strategy="tensor"), "weight"),
    ("fp8_channel", dict(num_bits=8, type="float", strategy="channel"), "weight"),
    ("fp8_group32", dict(num_bits=8, type="float", strategy="group", group_size=32), "weight"),
    ("int8_sym_token_dynamic", dict(num_bits=8, strategy="token", dynamic=True), "activation"),
    ("int8_asym_token_dynamic", dict(num_bits=8, strategy="token", dynamic=True, symmetric=False),
     "activation"),
    ("fp8_token_dynamic", dict(num_bits=8, type="float", strategy="token", dynamic=True), "activation"),
    ("fp8_tensor_dynamic", dict(num_bits=8, type="float", strategy="tensor", dynamic=True), "activation"),
]


def quant_case(name, kwargs, role, dtype):
    args = QuantizationArgs(**kwargs)
    x = test_matrix().to(dtype)
    if role == "activation":
        # Activations are [batch, tokens, features]; the token strategy reduces the last dim only.
        scale, zp = compute_dynamic_scales_and_zp(x.unsqueeze(0), args, module=None)
        scale, zp = scale.reshape(x.shape[0], -1) if args.strategy == "token" else scale, zp
        if args.strategy == "token":
            zp = zp.reshape(x.shape[0], -1)
    else:
        lo, hi = observe(x, args)
        scale, zp = calculate_qparams(lo, hi, args)
    qdtype = torch.int8 if args.type == "int" else torch.float8_e4m3fn
    q = quantize(x, scale, zp, args, dtype=qdtype)
    deq = dequantize(q, scale, zp, args)
    case = dict(name=name, dtype=str(dtype).removeprefix("torch."), args=args.model_dump(mode="json"),
                rows=x.shape[0], cols=x.shape[1],
                scale_dtype=str(scale.dtype).removeprefix("torch."), scale_shape=list(scale.shape),
                scales=f32hex(scale), zero_points=flat(zp.to(torch.int32)) if args.type == "int" else [],
                codes=flat(q.to(torch.int32)) if args.type == "int" else flat(q.view(torch.uint8).to(torch.int32)),
                dequant=f32hex(deq))
    if args.type == "int" and role == "weight":
        # The pack-quantized compressor on this module's state dict (symmetric: zero point dropped).
        scheme = QuantizationScheme(targets=["Linear"], weights=args)
        out = PackedQuantizationCompressor.compress({"weight": x, "weight_scale": scale, "weight_zero_point": zp},
                                                    scheme)
        case["compressed"] = {
            k: dict(dtype=str(v.dtype).removeprefix("torch."), shape=list(v.shape),
                   values=f32hex(v) if v.is_floating_point() else flat(v))
            for k, v in sorted(out.items())
        }
    return case


def e5m2_cases():
    """lowbit's extension (compressed-tensors has no e5m2): the same formulas with e5m2's range and cast,
    computed with plain torch."""
    cases = []
    for dtype in (torch.float32, torch.bfloat16):
        for strategy in ("tensor", "channel"):
            x = test_matrix().to(dtype)
            if strategy == "tensor":
                amax = x.abs().amax()
            else:
                amax = x.abs().amax(dim=-1, keepdim=True)
            scale = amax / (torch.tensor(2 * 57344.0).to(dtype) / 2)
            eps = torch.finfo(dtype).eps
            scale = torch.where(scale == 0, torch.tensor(eps, dtype=dtype), scale).reshape(-1, 1)
            q = torch.clamp(x / scale, -57344.0, 57344.0).to(torch.float8_e5m2)
            deq = q.to(dtype) * scale
            cases.append(dict(name=f"fp8_e5m2_{strategy}", dtype=str(dtype).removeprefix("torch."),
                              strategy=strategy, rows=x.shape[0], cols=x.shape[1], scales=f32hex(scale),
                              codes=flat(q.view(torch.uint8).to(torch.int32)), dequant=f32hex(deq)))
    return cases


def mse_search(x, args, maxshrink=0.20, patience=5, grid=100.0, norm=2.4):
    """llm-compressor's eager MSE grid search (observers/grid_search.py), transcribed: x is
    [cells, cell_size]; returns the chosen (min, max) per cell."""
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize
    from compressed_tensors.utils import patch_attr

    observed = x.unsqueeze(0)
    min_vals = torch.amin(observed, dim=(0, -1))
    max_vals = torch.amax(observed, dim=(0, -1))
    best_error = torch.full(min_vals.shape, torch.finfo(min_vals.dtype).max, dtype=min_vals.dtype)
    best_min, best_max = min_vals.clone(), max_vals.clone()
    no_improve = 0
    for i in range(int(maxshrink * grid)):
        p = 1 - i / grid
        shrink_min, shrink_max = min_vals * p, max_vals * p
        scales, zps = calculate_qparams(shrink_min, shrink_max, args)
        with patch_attr(args, "strategy", "token"):
            q = fake_quantize(observed, scales.unsqueeze(-1), zps.unsqueeze(-1), args).to(observed.dtype)
        error = (q - observed).abs().pow(norm).sum(dim=(0, -1))
        improved = error < best_error
        if torch.any(improved):
            best_error[improved] = error[improved]
            best_min[improved] = shrink_min[improved]
            best_max[improved] = shrink_max[improved]
            no_improve = 0
        else:
            no_improve += 1
            if no_improve >= patience:
                break
    return best_min, best_max


MSE_CASES = [
    ("int4_sym_channel", dict(num_bits=4, strategy="channel")),
    ("int4_asym_group16", dict(num_bits=4, strategy="group", group_size=16, symmetric=False)),
    ("int8_sym_tensor", dict(num_bits=8, strategy="tensor")),
    ("int3_asym_channel", dict(num_bits=3, strategy="channel", symmetric=False)),
    ("fp8_channel", dict(num_bits=8, type="float", strategy="channel")),
]


def mse_golden():
    cases = []
    for dtype in (torch.float32, torch.bfloat16):
        x = test_matrix().to(dtype)
        for name, kwargs in MSE_CASES:
            args = QuantizationArgs(**kwargs)
            if args.strategy == "tensor":
                cells = x.reshape(1, -1)
            elif args.strategy == "channel":
                cells = x
            else:
                cells = x.reshape(-1, args.group_size)
            lo, hi = mse_search(cells, args)
            scale, zp = calculate_qparams(lo, hi, args)
            cases.append(dict(name=name, dtype=str(dtype).removeprefix("torch."), args=args.model_dump(mode="json"),
                              min=f32hex(lo), max=f32hex(hi), scales=f32hex(scale),
                              zero_points=flat(zp.to(torch.int32)) if args.type == "int" else []))
    return cases


def quant_golden():
    cases = []
    for dtype in (torch.float32, torch.bfloat16):
        for name, kwargs, role in QUANT_CASES:
            cases.append(quant_case(name, kwargs, role, dtype))
    inputs = {str(d).removeprefix("torch."): f32hex(test_matrix().to(d)) for d in (torch.float32, torch.bfloat16)}
    return dict(compressed_tensors_version=compressed_tensors.__version__, torch_version=torch.__version__,
                rows=8, cols=64, inputs=inputs, cases=cases, e5m2_cases=e5m2_cases(), mse_cases=mse_golden())


# ---- presets and config.json ----------------------------------------------------------------------------


class TinyAttn(torch.nn.Module):  # deliberately not called "...Attention": no KV-cache hooks
    def __init__(self, d):
        super().__init__()
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, n, torch.nn.Linear(d, d, bias=False))


class TinyMlp(torch.nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.gate_proj = torch.nn.Linear(d, f, bias=False)
        self.up_proj = torch.nn.Linear(d, f, bias=False)
        self.down_proj = torch.nn.Linear(f, d, bias=False)


class LlamaRMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))


class TinyLayer(torch.nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.self_attn = TinyAttn(d)
        self.mlp = TinyMlp(d, f)
        self.input_layernorm = LlamaRMSNorm(d)
        self.post_attention_layernorm = LlamaRMSNorm(d)


class TinyInner(torch.nn.Module):
    def __init__(self, vocab, d, f, n_layers):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(vocab, d)
        self.layers = torch.nn.ModuleList([TinyLayer(d, f) for _ in range(n_layers)])
        self.norm = LlamaRMSNorm(d)


class TinyLlama(torch.nn.Module):
    """Llama module names and types (model.layers.N.self_attn.q_proj, ..., lm_head) at toy size."""

    def __init__(self, vocab=32, d=128, f=256, n_layers=2):
        super().__init__()
        self.model = TinyInner(vocab, d, f, n_layers)
        self.lm_head = torch.nn.Linear(d, vocab, bias=False)


def calibrate_weights(model):
    """What llm-compressor's QuantizationModifier does for weights (min-max observer), plus a made-up
    static input scale: enough to make the compressor run."""
    for _, m in model.named_modules():
        scheme = getattr(m, "quantization_scheme", None)
        if scheme is None:
            continue
        if scheme.weights is not None and hasattr(m, "weight_scale"):
            lo, hi = observe(m.weight.data, scheme.weights)
            scale, zp = calculate_qparams(lo, hi, scheme.weights)
            m.weight_scale.data = scale.to(m.weight_scale.dtype).reshape(m.weight_scale.shape)
            if hasattr(m, "weight_zero_point"):
                m.weight_zero_point.data = zp.to(m.weight_zero_point.dtype).reshape(m.weight_zero_point.shape)
        if hasattr(m, "input_scale"):
            m.input_scale.data.fill_(0.5)


def export_config(config_groups, ignore, kv_cache_scheme=None):
    """quantization_config exactly as llm-compressor's save path writes it, plus the compressed tensors'
    names, dtypes and shapes for layer 0 and lm_head."""
    from compressed_tensors.compressors.model_compressors.model_compressor import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.quantization.lifecycle.apply import apply_quantization_config

    torch.manual_seed(0)
    model = TinyLlama().to(torch.bfloat16)
    config = QuantizationConfig(config_groups=config_groups, ignore=ignore, kv_cache_scheme=kv_cache_scheme)
    apply_quantization_config(model, config, show_progress=False)
    calibrate_weights(model)
    compressor = ModelCompressor.from_pretrained_model(model)
    if compressor.quantization_config is not None and kv_cache_scheme is not None:
        compressor.quantization_config.kv_cache_scheme = kv_cache_scheme
    compressor.compress_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump({"architectures": ["LlamaForCausalLM"]}, f)
        compressor.update_config(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            qconfig = json.load(f).get("quantization_config")
    tensors = {k: dict(dtype=str(v.dtype).removeprefix("torch."), shape=list(v.shape))
               for k, v in model.state_dict().items()
               if k.startswith("model.layers.0.self_attn.q_proj.") or k.startswith("lm_head.")
               or k.startswith("model.layers.0.mlp.down_proj.")}
    return dict(quantization_config=qconfig, tensors=tensors)


CORE_PRESETS = ["W8A16", "W4A16", "W4A16_ASYM", "W8A8", "INT8", "FP8", "FP8_DYNAMIC", "W4A8", "W4AFP8"]


def presets_golden():
    from compressed_tensors.quantization import QuantizationScheme, preset_name_to_scheme
    from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES

    schemes = {name: preset_name_to_scheme(name, ["Linear"]).model_dump(mode="json") for name in PRESET_SCHEMES}
    exports = {}
    for name in CORE_PRESETS:
        exports[name] = export_config({name: ["Linear"]}, ["lm_head"])
    # Group size override (what --group-size 64 produces) and a mixed-precision plan: W4A16 everywhere,
    # W8A16 for the MLP down projections (a second config group), layer 0's attention left out.
    w4 = preset_name_to_scheme("W4A16", ["Linear"])
    w4.weights.group_size = 64
    exports["W4A16_g64"] = export_config({"group_0": w4}, ["lm_head"])
    exports["mixed"] = export_config(
        {"group_0": preset_name_to_scheme("W4A16", ["Linear"]),
         "group_1": preset_name_to_scheme("W8A16", ["re:.*down_proj$"])},
        ["lm_head", "re:model\\.layers\\.0\\.self_attn\\..*"])
    kv = QuantizationArgs(num_bits=8, type="float", strategy="tensor", dynamic=False, symmetric=True)
    exports["W8A8_fp8kv"] = export_config({"W8A8": ["Linear"]}, ["lm_head"], kv_cache_scheme=kv)
    return dict(compressed_tensors_version=compressed_tensors.__version__, schemes=schemes, exports=exports,
                module_names=[n for n, _ in TinyLlama().named_modules() if n])


# ---- target / ignore matching -------------------------------------------------------------------------


def match_golden():
    """compressed-tensors' own decisions on a Llama-shaped module tree: which modules a (targets, ignore)
    pair selects, and which config group wins when several match (exact name > regex > class name)."""
    from compressed_tensors.quantization import QuantizationConfig, preset_name_to_scheme
    from compressed_tensors.quantization.lifecycle.apply import apply_quantization_config
    from compressed_tensors.utils.match import match_name

    model = TinyLlama()
    modules = [dict(name=n, types=[c.__name__ for c in type(m).__mro__ if issubclass(c, torch.nn.Module)],
                    weight_shape=list(m.weight.shape) if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)) else [])
               for n, m in model.named_modules() if n]
    names = [m["name"] for m in modules]
    patterns = ["lm_head", "re:.*q_proj", "re:q_proj", "re:.*layers\\.1\\.", "re:model.layers.0.mlp.*_proj$",
                "re:.*(gate|up)_proj$", "model.layers.0.self_attn", "re:.*self_attn$", "re:.*norm",
                "re:^lm_head$", "re:.*DOWN_PROJ", "re:(?i).*down_proj"]
    name_matches = {p: [n for n in names if match_name(n, p)] for p in patterns}
    plans = []
    cases = [
        ("linear_ignore_lm_head", [("W4A16", ["Linear"])], ["lm_head"]),
        ("ignore_layer0_regex", [("W4A16", ["Linear"])], ["lm_head", "re:.*layers\\.0\\..*"]),
        ("mixed_regex_over_class", [("W4A16", ["Linear"]), ("W8A16", ["re:.*down_proj$"])], ["lm_head"]),
        ("mixed_class_listed_later", [("W8A16", ["re:.*down_proj$"]), ("W4A16", ["Linear"])], ["lm_head"]),
        ("exact_name_over_regex", [("W4A16", ["re:.*mlp.*"]), ("W8A16", ["model.layers.1.mlp.up_proj"])], []),
        ("regex_alphabetical", [("W4A16", ["re:.*proj"]), ("W8A16", ["re:.*mlp.*"])], ["lm_head"]),
        ("ignore_by_type", [("W8A8", ["Linear"])], ["LlamaRMSNorm", "lm_head", "re:.*o_proj"]),
        ("unmatched_target", [("W4A16", ["Linear", "re:.*does_not_exist"])], ["lm_head", "re:nothing.*"]),
        ("include_lm_head", [("W8A16", ["Linear"])], []),
    ]
    for case_name, groups, ignore in cases:
        config_groups = {f"group_{i}": preset_name_to_scheme(p, t) for i, (p, t) in enumerate(groups)}
        config = QuantizationConfig(config_groups=config_groups, ignore=ignore)
        m = TinyLlama()
        apply_quantization_config(m, config, show_progress=False)
        plan = {}
        for n, mod in m.named_modules():
            scheme = getattr(mod, "quantization_scheme", None)
            if scheme is None:
                continue
            group = next(g for g, s in config.config_groups.items() if s.targets == scheme.targets)
            plan[n] = group
        plans.append(dict(name=case_name, groups=[dict(preset=p, targets=t) for p, t in groups], ignore=ignore,
                          plan=plan))
    return dict(compressed_tensors_version=compressed_tensors.__version__, modules=modules,
                name_matches=name_matches, plans=plans)


def write(out_dir, name, data):
    path = os.path.join(out_dir, name)
    with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False) as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    os.replace(f.name, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tests/fixtures/quant"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write(args.out, "pack_golden.json", dict(compressed_tensors_version=compressed_tensors.__version__,
                                             cases=pack_cases()))
    write(args.out, "quant_golden.json", quant_golden())
    write(args.out, "presets_golden.json", presets_golden())
    write(args.out, "match_golden.json", match_golden())


if __name__ == "__main__":
    main()

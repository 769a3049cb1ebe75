#include "quant/model_quantizer.h"

#include <fmt/format.h>

#include <map>

#include "quant/quantizer.h"
#include "quant/quantizer_ref_detail.h"
#include "quant/scale_grid.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {

namespace {

// dequantize() for codes whose column c uses scale column g_idx[c] (GPTQ actorder=group); the same
// arithmetic as dequantize_int_ref / dequantize_fp8_ref.
void dequantize_with_g_idx(const ModuleQuantization& q, float* out) {
  const QuantArgs& args = q.weights();
  if (static_cast<int64_t>(q.g_idx.size()) != q.cols)
    fail("module {}: g_idx has {} entries for {} columns", q.name, q.g_idx.size(), q.cols);
  for (int64_t c = 0; c < q.cols; ++c) {
    const int32_t g = q.g_idx[static_cast<size_t>(c)];
    if (g < 0 || g >= q.scale_cols)
      fail("module {}: g_idx[{}] = {} is outside the {} scale columns", q.name, c, g, q.scale_cols);
  }
  const ComputeDType dt = q.compute;
  global_pool().parallel_for(static_cast<size_t>(q.rows), 64, [&](size_t r0, size_t r1) {
    for (auto r = static_cast<int64_t>(r0); r < static_cast<int64_t>(r1); ++r) {
      const int64_t base = (q.scale_rows == 1 ? 0 : r) * q.scale_cols;
      for (int64_t c = 0; c < q.cols; ++c) {
        const int64_t cell = base + q.g_idx[static_cast<size_t>(c)];
        const int64_t i = r * q.cols + c;
        float v = 0;
        if (args.type == QuantType::Int) {
          v = static_cast<float>(q.int_codes[static_cast<size_t>(i)]);
          if (!q.zero_points.empty())
            v = detail::rnd(v - static_cast<float>(q.zero_points[static_cast<size_t>(cell)]), dt);
        } else {
          const uint8_t code = q.fp8_codes[static_cast<size_t>(i)];
          v = args.float_format == FloatFormat::E4M3 ? e4m3_to_f32(code) : e5m2_to_f32(code);
        }
        out[i] = detail::rnd(v * q.scales[static_cast<size_t>(cell)], dt);
      }
    }
  });
}

}  // namespace

std::vector<float> ModuleQuantization::dequantize() const {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const QuantArgs& args = weights();
  if (!g_idx.empty()) {
    dequantize_with_g_idx(*this, out.data());
  } else if (args.type == QuantType::Int) {
    dequantize_int(int_codes.data(), rows, cols, args, scales.data(),
                   zero_points.empty() ? nullptr : zero_points.data(), out.data(), compute);
  } else {
    dequantize_fp8(fp8_codes.data(), rows, cols, args, scales.data(), out.data(), compute);
  }
  return out;
}

ComputeDType compute_dtype_for(DType dtype) {
  return dtype == DType::BF16 ? ComputeDType::BF16 : ComputeDType::F32;
}

std::vector<ModuleInfo> model_modules(const Model& model) {
  const ModelConfig& c = model.config();
  std::vector<ModuleInfo> out;
  out.push_back({"model.embed_tokens", {"Embedding", "Module"}, {c.vocab_size, c.hidden_size}});
  const char* norm_type = "LlamaRMSNorm";
  if (c.model_type == "mistral") norm_type = "MistralRMSNorm";
  if (c.model_type == "qwen2") norm_type = "Qwen2RMSNorm";
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const LayerWeights& w = model.layer(l);
    out.push_back({p + "input_layernorm", {norm_type, "Module"}, {}});
    for (const LinearModule* m : {&w.q_proj, &w.k_proj, &w.v_proj, &w.o_proj})
      out.push_back({m->name, {"Linear", "Module"}, m->weight.shape});
    out.push_back({p + "post_attention_layernorm", {norm_type, "Module"}, {}});
    for (const LinearModule* m : {&w.gate_proj, &w.up_proj, &w.down_proj})
      out.push_back({m->name, {"Linear", "Module"}, m->weight.shape});
  }
  out.push_back({"model.norm", {norm_type, "Module"}, {}});
  out.push_back({"lm_head", {"Linear", "Module"}, model.lm_head().weight.shape});
  return out;
}

namespace {

// The weight as fp32, converted in parallel row blocks.
std::vector<float> weight_f32(const TensorView& w, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const size_t elem = dtype_size(w.dtype);
  global_pool().parallel_for(static_cast<size_t>(rows), 64, [&](size_t r0, size_t r1) {
    convert_to_f32(w.dtype, w.data + r0 * static_cast<size_t>(cols) * elem,
                   out.data() + r0 * static_cast<size_t>(cols), (r1 - r0) * static_cast<size_t>(cols));
  });
  return out;
}

}  // namespace

ModuleQuantization quantize_weight_rtn(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                       DType weight_dtype, const QuantScheme& scheme) {
  if (!scheme.weights) fail("module {}: its scheme quantizes no weights (RTN quantizes weights)", name);
  const QuantArgs& args = *scheme.weights;
  ModuleQuantization q;
  q.name = name;
  q.scheme = &scheme;
  q.rows = rows;
  q.cols = cols;
  q.weight_dtype = weight_dtype;
  q.compute = compute_dtype_for(weight_dtype);
  const ScaleGrid grid = make_scale_grid(args, q.rows, q.cols, name);
  q.scale_rows = grid.scale_rows;
  q.scale_cols = grid.scale_cols;
  q.scales.resize(static_cast<size_t>(grid.size()));
  const size_t n = static_cast<size_t>(rows * cols);
  if (args.type == QuantType::Int) {
    q.int_codes.resize(n);
    if (!args.symmetric) q.zero_points.resize(q.scales.size());
    quantize_int(w, q.rows, q.cols, args, q.int_codes.data(), q.scales.data(),
                 args.symmetric ? nullptr : q.zero_points.data(), q.compute);
  } else {
    q.fp8_codes.resize(n);
    quantize_fp8(w, q.rows, q.cols, args, q.fp8_codes.data(), q.scales.data(), q.compute);
  }
  return q;
}

ModuleQuantization quantize_module_rtn(const LinearModule& module, const QuantScheme& scheme) {
  if (!scheme.weights)
    fail("module {}: its scheme quantizes no weights (RTN quantizes weights)", module.name);
  if (module.weight.shape.size() != 2)
    fail("module {}: weight {} is not a matrix", module.name, module.weight.name);
  if (!is_floating(module.weight.dtype))
    fail("module {}: weight {} is {}, not a float tensor (already quantized?)", module.name,
         module.weight.name, dtype_name(module.weight.dtype));
  const int64_t rows = module.weight.shape[0], cols = module.weight.shape[1];
  make_scale_grid(*scheme.weights, rows, cols, module.name);  // shape errors before the fp32 copy
  const std::vector<float> w = weight_f32(module.weight, rows, cols);
  return quantize_weight_rtn(module.name, w.data(), rows, cols, module.weight.dtype, scheme);
}

void quantize_model_rtn(const Model& model, const QuantPlan& plan,
                        const std::function<void(ModuleQuantization&)>& sink,
                        const std::function<void(const RtnProgress&)>& progress) {
  std::map<std::string, const LinearModule*> linears;
  model.for_each_linear([&](const LinearModule& m) { linears[m.name] = &m; }, /*include_tied_lm_head=*/true);
  RtnProgress p;
  p.total = plan.count(ModuleDecision::Quantized);
  for (const PlannedModule& pm : plan.modules) {
    if (pm.decision != ModuleDecision::Quantized) continue;
    auto it = linears.find(pm.name);
    if (it == linears.end())
      fail("the plan quantizes {}, which is not a Linear module of this model", pm.name);
    const QuantScheme* scheme = plan.scheme_for(pm.name);
    if (scheme == nullptr) fail("no scheme for planned module {}", pm.name);
    ModuleQuantization q = quantize_module_rtn(*it->second, *scheme);
    sink(q);
    ++p.done;
    p.module = &pm.name;
    if (progress) progress(p);
  }
}

}  // namespace lowbit

#include "quant/model_quantizer.h"

#include <fmt/format.h>

#include <map>

#include "quant/quantizer.h"
#include "quant/scale_grid.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {

std::vector<float> ModuleQuantization::dequantize() const {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const QuantArgs& args = weights();
  if (args.type == QuantType::Int) {
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

ModuleQuantization quantize_module_rtn(const LinearModule& module, const QuantScheme& scheme) {
  if (!scheme.weights)
    fail("module {}: its scheme quantizes no weights (RTN quantizes weights)", module.name);
  const QuantArgs& args = *scheme.weights;
  if (module.weight.shape.size() != 2)
    fail("module {}: weight {} is not a matrix", module.name, module.weight.name);
  if (!is_floating(module.weight.dtype))
    fail("module {}: weight {} is {}, not a float tensor (already quantized?)", module.name,
         module.weight.name, dtype_name(module.weight.dtype));
  ModuleQuantization q;
  q.name = module.name;
  q.scheme = &scheme;
  q.rows = module.weight.shape[0];
  q.cols = module.weight.shape[1];
  q.weight_dtype = module.weight.dtype;
  q.compute = compute_dtype_for(module.weight.dtype);
  const ScaleGrid grid = make_scale_grid(args, q.rows, q.cols, module.name);
  q.scale_rows = grid.scale_rows;
  q.scale_cols = grid.scale_cols;
  q.scales.resize(static_cast<size_t>(grid.size()));
  const std::vector<float> w = weight_f32(module.weight, q.rows, q.cols);
  if (args.type == QuantType::Int) {
    q.int_codes.resize(w.size());
    if (!args.symmetric) q.zero_points.resize(q.scales.size());
    quantize_int(w.data(), q.rows, q.cols, args, q.int_codes.data(), q.scales.data(),
                 args.symmetric ? nullptr : q.zero_points.data(), q.compute);
  } else {
    q.fp8_codes.resize(w.size());
    quantize_fp8(w.data(), q.rows, q.cols, args, q.fp8_codes.data(), q.scales.data(), q.compute);
  }
  return q;
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
    if (pm.name == "lm_head" && model.lm_head_tied())
      fail(
          "lm_head is tied to the embeddings (tie_word_embeddings): it cannot be quantized on its own; "
          "drop it from the targets");
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

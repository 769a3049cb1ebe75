#include "calib/static_scales.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include "quant/model_quantizer.h"
#include "quant/observer.h"
#include "runtime/linear.h"
#include "runtime/rope.h"
#include "runtime/transformer.h"
#include "util/error.h"

namespace lowbit {
namespace {

bool has_static_inputs(const QuantScheme& s) {
  return s.input_activations && !s.input_activations->is_dynamic();
}

// A dense linear that feeds its inputs (and optionally its outputs, rotated like keys) to observers.
class ObservingLinear final : public runtime::LinearWeight {
 public:
  ObservingLinear(const LinearModule& module, ActivationObserver* inputs, ActivationObserver* outputs,
                  const std::vector<float>* inv_freq, int64_t head_dim)
      : dense_(module), inputs_(inputs), outputs_(outputs), inv_freq_(inv_freq), head_dim_(head_dim) {}
  int64_t out_features() const override { return dense_.out_features(); }
  int64_t in_features() const override { return dense_.in_features(); }
  uint64_t weight_bytes() const override { return dense_.weight_bytes(); }
  void forward(const float* x, int64_t m, float* y) const override {
    if (inputs_ != nullptr) inputs_->observe(x, m);
    dense_.forward(x, m, y);
    if (outputs_ == nullptr) return;
    if (inv_freq_ == nullptr) {
      outputs_->observe(y, m);
      return;
    }
    // Keys enter the cache after RoPE. Calibration runs each sample as one chunk from position 0, so row r
    // is position r.
    std::vector<float> rotated(y, y + m * out_features());
    runtime::RopeAngles angles;
    runtime::rope_angles(*inv_freq_, 0, m, &angles);
    runtime::apply_rope(rotated.data(), m, out_features() / head_dim_, out_features(), angles);
    outputs_->observe(rotated.data(), m);
  }

 private:
  runtime::DenseLinear dense_;
  ActivationObserver* inputs_;
  ActivationObserver* outputs_;
  const std::vector<float>* inv_freq_;
  int64_t head_dim_;
};

StaticQParams qparams_of(const ActivationObserver& observer, const QuantArgs& args, const std::string& what) {
  if (observer.batches() == 0) fail("calibration observed nothing for {}", what);
  StaticQParams q;
  int8_t zp = 0;
  observer.qparams(&q.scale, args.symmetric ? nullptr : &zp);
  q.zero_point = zp;
  return q;
}

}  // namespace

bool needs_calibration(const QuantPlan& plan) {
  bool needed = plan.recipe.kv_cache_scheme.has_value();
  for (const PlannedModule& m : plan.modules) {
    if (m.decision != ModuleDecision::Quantized) continue;
    const QuantScheme* s = plan.scheme_for(m.name);
    if (s == nullptr || !has_static_inputs(*s)) continue;
    if (s->input_activations->strategy != QuantStrategy::Tensor)
      fail(
          "module {}: static {} input activations are not supported (lowbit calibrates per-tensor static "
          "inputs only)",
          m.name, to_string(s->input_activations->strategy));
    needed = true;
  }
  if (plan.recipe.kv_cache_scheme) {
    const QuantArgs& kv = *plan.recipe.kv_cache_scheme;
    if (kv.is_dynamic() || kv.strategy != QuantStrategy::Tensor)
      fail("kv_cache_scheme: only static per-tensor KV cache quantization is supported, got {}",
           describe(kv));
  }
  return needed;
}

Calibration calibrate(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                      const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  if (data.samples.empty()) fail("calibration needs at least one sample");
  const ComputeDType dt = compute_dtype_for(model.embed_tokens().dtype);
  const ModelConfig& c = model.config();
  const std::vector<float> inv_freq = c.rope_inv_freq();

  std::map<std::string, std::unique_ptr<ActivationObserver>> inputs, keys, values;
  const std::optional<QuantArgs>& kv = plan.recipe.kv_cache_scheme;
  runtime::LinearFactory factory = [&](const LinearModule& m) -> std::unique_ptr<runtime::LinearWeight> {
    ActivationObserver* in = nullptr;
    ActivationObserver* out = nullptr;
    const std::vector<float>* rope = nullptr;
    const QuantScheme* s = plan.scheme_for(m.name);
    if (s != nullptr && has_static_inputs(*s)) {
      auto& o = inputs[m.name];
      o = std::make_unique<ActivationObserver>(*s->input_activations, m.weight.shape[1], dt);
      in = o.get();
    }
    const auto ends_with = [&](std::string_view suffix) {
      return m.name.size() > suffix.size() &&
             m.name.compare(m.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (kv && (ends_with(".k_proj") || ends_with(".v_proj"))) {
      const std::string attn = m.name.substr(0, m.name.rfind('.'));
      auto& o = ends_with(".k_proj") ? keys[attn] : values[attn];
      o = std::make_unique<ActivationObserver>(*kv, m.weight.shape[0], dt);
      out = o.get();
      if (ends_with(".k_proj")) rope = &inv_freq;
    }
    if (in == nullptr && out == nullptr) return runtime::make_dense_linear(m);
    return std::make_unique<ObservingLinear>(m, in, out, rope, c.head_dim);
  };
  runtime::Transformer transformer(model, factory);

  Calibration cal;
  const int64_t samples = data.num_samples();
  for (int64_t i = 0; i < samples; ++i) {
    const std::vector<int32_t>& ids = data.samples[static_cast<size_t>(i)];
    runtime::Session session(transformer, static_cast<int64_t>(ids.size()));
    session.forward(ids, runtime::Logits::None, nullptr);
    cal.tokens += static_cast<int64_t>(ids.size());
    if (progress) progress(i + 1, samples);
  }
  cal.samples = samples;
  for (const auto& [name, o] : inputs) {
    const QuantScheme* s = plan.scheme_for(name);
    cal.inputs[name] = qparams_of(*o, *s->input_activations, name + " inputs");
  }
  for (const auto& [name, o] : keys) cal.keys[name] = qparams_of(*o, *kv, name + " keys");
  for (const auto& [name, o] : values) cal.values[name] = qparams_of(*o, *kv, name + " values");
  cal.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return cal;
}

}  // namespace lowbit

#include "calib/decoder_layer.h"

#include <algorithm>
#include <cstring>

#include "runtime/attention.h"
#include "runtime/kernels.h"
#include "runtime/kv_cache.h"
#include "runtime/linear.h"
#include "util/error.h"

namespace lowbit {
namespace {

template <typename T>
T* sized(std::vector<T>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

LinearF32 load_linear(const Model& model, const LinearModule& m) {
  LinearF32 out;
  out.name = m.name;
  out.rows = m.weight.shape[0];
  out.cols = m.weight.shape[1];
  out.stored_dtype = m.weight.dtype;
  out.weight.resize(static_cast<size_t>(out.rows * out.cols));
  kernels::convert_rows_to_f32(runtime::dense_weight(m.weight), 0, out.rows, out.weight.data());
  model.store().release(m.name + ".weight");
  if (m.bias) {
    out.bias = runtime::to_f32(*m.bias);
    model.store().release(m.name + ".bias");
  }
  return out;
}

}  // namespace

LinearF32& DecoderLayerF32::linear(LinearSlot slot) {
  switch (slot) {
    case LinearSlot::Q:
      return q;
    case LinearSlot::K:
      return k;
    case LinearSlot::V:
      return v;
    case LinearSlot::O:
      return o;
    case LinearSlot::Gate:
      return gate;
    case LinearSlot::Up:
      return up;
    case LinearSlot::Down:
      return down;
  }
  fail("unknown linear slot");
}

const LinearF32& DecoderLayerF32::linear(LinearSlot slot) const {
  return const_cast<DecoderLayerF32*>(this)->linear(slot);
}

uint64_t DecoderLayerF32::bytes() const {
  uint64_t n = (input_norm.size() + post_attention_norm.size()) * sizeof(float);
  for (LinearSlot s : kLinearSlots) n += (linear(s).weight.size() + linear(s).bias.size()) * sizeof(float);
  return n;
}

void LinearF32::pack_bf16() {
  if (packed && packed.use_count() == 1)
    packed->assign(weight.data(), rows, cols);
  else
    packed = std::make_shared<kernels::Bf16Weight>(weight.data(), rows, cols);
  packed_fingerprint = fingerprint();
}

uint64_t LinearF32::fingerprint() const {
  uint64_t h = 1469598103934665603ull ^ weight.size();
  const size_t n = weight.size(), step = std::max<size_t>(1, n / 64);
  for (size_t i = 0; i < n; i += step) {
    uint32_t bits = 0;
    std::memcpy(&bits, &weight[i], sizeof(bits));
    h = (h ^ bits) * 1099511628211ull;
  }
  return h;
}

void DecoderLayerF32::refresh_packed() {
  if (precision != CalibPrecision::BF16) return;
  for (LinearSlot s : kLinearSlots) linear(s).pack_bf16();
}

DecoderLayerF32 load_decoder_layer(const Model& model, int64_t index, CalibPrecision precision) {
  const LayerWeights& w = model.layer(index);
  DecoderLayerF32 l;
  l.index = index;
  l.precision = precision;
  l.input_norm = runtime::to_f32(w.input_layernorm);
  l.post_attention_norm = runtime::to_f32(w.post_attention_layernorm);
  l.norm_dtype = w.input_layernorm.dtype;
  l.q = load_linear(model, w.q_proj);
  l.k = load_linear(model, w.k_proj);
  l.v = load_linear(model, w.v_proj);
  l.o = load_linear(model, w.o_proj);
  l.gate = load_linear(model, w.gate_proj);
  l.up = load_linear(model, w.up_proj);
  l.down = load_linear(model, w.down_proj);
  l.refresh_packed();
  return l;
}

InputSite input_site(LinearSlot slot) {
  switch (slot) {
    case LinearSlot::Q:
    case LinearSlot::K:
    case LinearSlot::V:
      return InputSite::Attention;
    case LinearSlot::O:
      return InputSite::O;
    case LinearSlot::Gate:
    case LinearSlot::Up:
      return InputSite::Mlp;
    case LinearSlot::Down:
      return InputSite::Down;
  }
  fail("unknown linear slot");
}

void linear_f32(const LinearF32& w, const float* x, int64_t m, float* y) {
  if (w.packed) {
    if (w.fingerprint() != w.packed_fingerprint)
      fail("{}: its weights changed after they were packed for bf16 (missing refresh_packed)", w.name);
    kernels::linear_bf16(x, m, *w.packed, w.bias.empty() ? nullptr : w.bias.data(), y);
    return;
  }
  const kernels::DenseWeight dense{DType::F32, w.weight.data(), w.rows, w.cols};
  kernels::linear(x, m, dense, w.bias.empty() ? nullptr : w.bias.data(), y);
}

void linear_f32_shared_input(std::initializer_list<std::pair<const LinearF32*, float*>> outputs,
                             const float* x, int64_t m) {
  std::vector<kernels::Bf16Product> products;
  for (const auto& [w, y] : outputs) {
    if (!w->packed || (!products.empty() && w->cols != products.front().weight->cols())) break;
    if (w->fingerprint() != w->packed_fingerprint)
      fail("{}: its weights changed after they were packed for bf16 (missing refresh_packed)", w->name);
    products.push_back({w->packed.get(), w->bias.empty() ? nullptr : w->bias.data(), y});
  }
  if (products.size() == outputs.size()) {
    kernels::linear_bf16_shared_input(x, m, products);
    return;
  }
  for (const auto& [w, y] : outputs) linear_f32(*w, x, m, y);
}

LayerRunner::LayerRunner(const ModelConfig& config) : config_(config), inv_freq_(config.rope_inv_freq()) {}

void LayerRunner::input_norm(const DecoderLayerF32& layer, const float* x, int64_t tokens, float* out) const {
  kernels::rmsnorm(x, layer.input_norm.data(), tokens, config_.hidden_size,
                   static_cast<float>(config_.rms_norm_eps), out);
}

void LayerRunner::post_attention_norm(const DecoderLayerF32& layer, const float* x, int64_t tokens,
                                      float* out) const {
  kernels::rmsnorm(x, layer.post_attention_norm.data(), tokens, config_.hidden_size,
                   static_cast<float>(config_.rms_norm_eps), out);
}

void LayerRunner::attention_heads(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* attn,
                                  const LayerObserver* observer) {
  const ModelConfig& c = config_;
  float* q = sized(q_, tokens * c.q_dim());
  float* k = sized(k_, tokens * c.kv_dim());
  float* v = sized(v_, tokens * c.kv_dim());
  if (observer && observer->on_input) observer->on_input(InputSite::Attention, h, tokens, c.hidden_size);
  linear_f32_shared_input({{&layer.q, q}, {&layer.k, k}, {&layer.v, v}}, h, tokens);
  if (angles_tokens_ < tokens) {
    runtime::rope_angles(inv_freq_, 0, tokens, &angles_);
    angles_tokens_ = tokens;
  }
  runtime::apply_rope(q, tokens, c.num_heads, c.q_dim(), angles_);
  runtime::apply_rope(k, tokens, c.num_kv_heads, c.kv_dim(), angles_);
  if (observer && observer->on_kv) observer->on_kv(k, v, tokens);
  const runtime::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  if (layer.precision == CalibPrecision::BF16) {
    runtime::causal_attention_bf16(q, k, v, tokens, shape, attn);
  } else {
    // A one-layer cache per call: calibration samples are independent sequences.
    runtime::KVCache cache(1, c.num_kv_heads, c.head_dim, tokens);
    cache.store(0, 0, tokens, k, v);
    runtime::causal_attention(q, 0, tokens, cache, 0, shape, attn);
  }
  if (observer && observer->on_input) observer->on_input(InputSite::O, attn, tokens, c.q_dim());
}

void LayerRunner::attention_block(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* out,
                                  const LayerObserver* observer) {
  float* attn = sized(attn_, tokens * config_.q_dim());
  attention_heads(layer, h, tokens, attn, observer);
  linear_f32(layer.o, attn, tokens, out);
}

void LayerRunner::mlp_activation(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* act,
                                 const LayerObserver* observer) {
  const int64_t inter = config_.intermediate_size;
  float* up = sized(up_, tokens * inter);
  if (observer && observer->on_input) observer->on_input(InputSite::Mlp, h, tokens, config_.hidden_size);
  linear_f32_shared_input({{&layer.gate, act}, {&layer.up, up}}, h, tokens);
  kernels::silu_mul(act, up, act, static_cast<size_t>(tokens * inter));
  if (observer && observer->on_input) observer->on_input(InputSite::Down, act, tokens, inter);
}

void LayerRunner::mlp_block(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* out,
                            const LayerObserver* observer, bool run_down) {
  float* act = sized(gate_, tokens * config_.intermediate_size);
  mlp_activation(layer, h, tokens, act, observer);
  if (run_down) linear_f32(layer.down, act, tokens, out);
}

void LayerRunner::observe(const DecoderLayerF32& layer, const float* x, int64_t tokens,
                          const LayerObserver& observer) {
  const int64_t n = tokens * config_.hidden_size;
  float* h = sized(h_, n);
  float* tmp = sized(tmp_, n);
  float* residual = sized(residual_, n);
  input_norm(layer, x, tokens, h);
  attention_block(layer, h, tokens, tmp, &observer);
  std::copy(x, x + n, residual);
  kernels::add_inplace(residual, tmp, static_cast<size_t>(n));
  post_attention_norm(layer, residual, tokens, h);
  mlp_block(layer, h, tokens, tmp, &observer, /*run_down=*/false);
}

void LayerRunner::forward(const DecoderLayerF32& layer, const float* x, int64_t tokens, float* out,
                          const LayerObserver* observer) {
  const int64_t n = tokens * config_.hidden_size;
  float* h = sized(h_, n);
  float* tmp = sized(tmp_, n);
  if (out != x) std::copy(x, x + n, out);
  input_norm(layer, out, tokens, h);
  attention_block(layer, h, tokens, tmp, observer);
  kernels::add_inplace(out, tmp, static_cast<size_t>(n));
  post_attention_norm(layer, out, tokens, h);
  mlp_block(layer, h, tokens, tmp, observer);
  kernels::add_inplace(out, tmp, static_cast<size_t>(n));
}

}  // namespace lowbit

#include "runtime/kv_quant.h"

#include <algorithm>
#include <cmath>

#include "io/dtype.h"
#include "quant/quantizer.h"
#include "util/error.h"

namespace lowbit::runtime {

KVQuantizer::KVQuantizer(QuantArgs args, std::vector<formats::KVScales> scales, int64_t num_layers,
                         int64_t kv_heads, int64_t head_dim)
    : args_(std::move(args)), scales_(std::move(scales)), kv_heads_(kv_heads), head_dim_(head_dim) {
  if (!args_.symmetric) fail("kv_cache_scheme: asymmetric KV cache quantization is not supported");
  if (args_.is_dynamic()) {
    if (args_.strategy != QuantStrategy::Token && args_.strategy != QuantStrategy::Tensor) {
      fail("kv_cache_scheme: dynamic strategy {} is not supported (token or tensor)",
           to_string(args_.strategy));
    }
  } else {
    if (static_cast<int64_t>(scales_.size()) != num_layers) {
      fail("kv_cache_scheme: {} layers of k_scale/v_scale for {} layers", scales_.size(), num_layers);
    }
  }
}

std::shared_ptr<const KVQuantizer> KVQuantizer::from_checkpoint(const formats::QuantizedCheckpoint& quant,
                                                                const ModelConfig& config) {
  if (!quant.kv_cache_scheme) return nullptr;
  return std::make_shared<KVQuantizer>(*quant.kv_cache_scheme, quant.kv_scales, config.num_layers,
                                       config.num_kv_heads, config.head_dim);
}

// One tensor (k or v) of one layer: [count][kv_heads * head_dim].
void KVQuantizer::apply_one(float* x, int64_t count, const std::vector<float>& scale) const {
  const int64_t width = kv_heads_ * head_dim_;
  QuantArgs per_tensor = args_;
  per_tensor.strategy = QuantStrategy::Tensor;
  per_tensor.group_size.reset();
  const bool whole = args_.is_dynamic() ? args_.strategy == QuantStrategy::Tensor : scale.size() == 1;
  if (whole) {
    std::vector<float> in(x, x + count * width);
    if (args_.is_dynamic()) {
      fake_quantize_dynamic(in.data(), count, width, per_tensor, x);
    } else {
      fake_quantize(in.data(), count, width, per_tensor, scale.data(), nullptr, x);
    }
    return;
  }
  // One scale per KV head: gather the head's [count x head_dim] block, quantize, scatter back.
  std::vector<float> block(static_cast<size_t>(count * head_dim_)), out(block.size());
  for (int64_t h = 0; h < kv_heads_; ++h) {
    for (int64_t t = 0; t < count; ++t)
      std::copy_n(x + t * width + h * head_dim_, head_dim_, block.data() + t * head_dim_);
    if (args_.is_dynamic()) {
      fake_quantize_dynamic(block.data(), count, head_dim_, per_tensor, out.data());
    } else {
      fake_quantize(block.data(), count, head_dim_, per_tensor, &scale[static_cast<size_t>(h)], nullptr,
                    out.data());
    }
    for (int64_t t = 0; t < count; ++t)
      std::copy_n(out.data() + t * head_dim_, head_dim_, x + t * width + h * head_dim_);
  }
}

void KVQuantizer::apply(int64_t layer, float* k, float* v, int64_t count) const {
  static const std::vector<float> none;
  const bool dynamic = args_.is_dynamic();
  apply_one(k, count, dynamic ? none : scales_[static_cast<size_t>(layer)].k_scale);
  apply_one(v, count, dynamic ? none : scales_[static_cast<size_t>(layer)].v_scale);
}

bool KVQuantizer::stores_codes() const {
  return !args_.is_dynamic() && args_.num_bits == 8;
}

float KVQuantizer::scale(int64_t layer, int which, int64_t kv_head) const {
  const formats::KVScales& s = scales_[static_cast<size_t>(layer)];
  const std::vector<float>& v = which == 0 ? s.k_scale : s.v_scale;
  return v.size() == 1 ? v[0] : v[static_cast<size_t>(kv_head)];
}

uint8_t KVQuantizer::encode(float value, float scale) const {
  const float q = value / scale;
  if (args_.type == QuantType::Int) {
    const float r = std::clamp(std::nearbyint(q), -128.0f, 127.0f);
    return static_cast<uint8_t>(static_cast<int8_t>(r));
  }
  return args_.float_format == FloatFormat::E5M2 ? f32_to_e5m2(q) : f32_to_e4m3(q);
}

float KVQuantizer::decode(uint8_t code, float scale) const {
  if (args_.type == QuantType::Int) return static_cast<float>(static_cast<int8_t>(code)) * scale;
  return (args_.float_format == FloatFormat::E5M2 ? e5m2_to_f32(code) : e4m3_to_f32(code)) * scale;
}

}  // namespace lowbit::runtime

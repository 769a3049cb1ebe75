// KV cache quantization: keys and values are quantized-dequantized as the scheme says before they enter the
// cache, static quantization does not depend on how tokens are chunked, and a model with kv_cache_scheme
// differs (slightly) from the same model without it.
#include <gtest/gtest.h>

#include <random>

#include "formats/compressed_tensors_reader.h"
#include "formats/ct_checkpoint.h"
#include "quant/quantizer_ref.h"
#include "runtime/kv_quant.h"
#include "runtime/quantized_linear.h"
#include "runtime/transformer.h"

namespace lowbit::runtime {
namespace {

QuantArgs kv_args(QuantType type, QuantStrategy strategy, bool dynamic) {
  QuantArgs a;
  a.num_bits = 8;
  a.type = type;
  a.strategy = strategy;
  a.dynamic = dynamic ? DynamicMode::Dynamic : DynamicMode::Static;
  return a;
}

std::vector<float> random_kv(int64_t count, int64_t width, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(count * width));
  for (float& v : x) v = normal(rng);
  return x;
}

TEST(KVQuantizer, StaticPerTensorMatchesFakeQuantizeReference) {
  const int64_t heads = 2, dim = 8, count = 5;
  for (QuantType type : {QuantType::Float, QuantType::Int}) {
    const QuantArgs a = kv_args(type, QuantStrategy::Tensor, false);
    formats::KVScales s{{0.004f}, {0.02f}};
    KVQuantizer kvq(a, {s, s}, 2, heads, dim);
    std::vector<float> k = random_kv(count, heads * dim, 1), v = random_kv(count, heads * dim, 2);
    std::vector<float> k_ref(k.size()), v_ref(v.size());
    fake_quantize_ref(k.data(), count, heads * dim, a, &s.k_scale[0], nullptr, k_ref.data());
    fake_quantize_ref(v.data(), count, heads * dim, a, &s.v_scale[0], nullptr, v_ref.data());
    kvq.apply(1, k.data(), v.data(), count);
    EXPECT_EQ(k, k_ref);
    EXPECT_EQ(v, v_ref);
  }
}

TEST(KVQuantizer, StaticPerHeadAndDynamicPerHead) {
  const int64_t heads = 2, dim = 4, count = 3, width = heads * dim;
  const QuantArgs head_static = kv_args(QuantType::Float, QuantStrategy::Tensor, false);
  formats::KVScales s{{0.01f, 0.1f}, {0.02f, 0.2f}};
  KVQuantizer per_head(head_static, {s}, 1, heads, dim);
  // dynamic token on a [heads, seq, dim] state: one scale per head over the call's tokens.
  KVQuantizer dynamic(kv_args(QuantType::Int, QuantStrategy::Token, true), {}, 1, heads, dim);
  std::vector<float> k = random_kv(count, width, 3), v = random_kv(count, width, 4);
  std::vector<float> k_static = k, v_static = v, k_dyn = k, v_dyn = v;
  per_head.apply(0, k_static.data(), v_static.data(), count);
  dynamic.apply(0, k_dyn.data(), v_dyn.data(), count);
  QuantArgs tensor_int = kv_args(QuantType::Int, QuantStrategy::Tensor, false);
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<float> block, expected(static_cast<size_t>(count * dim)), expected_dyn(expected.size());
    for (int64_t t = 0; t < count; ++t)
      for (int64_t d = 0; d < dim; ++d) block.push_back(k[t * width + h * dim + d]);
    fake_quantize_ref(block.data(), count, dim, head_static, &s.k_scale[h], nullptr, expected.data());
    float lo = 0, hi = 0, scale = 0;
    const ScaleGrid grid = make_scale_grid(tensor_int, count, dim, "k");
    observe_minmax_ref(block.data(), grid, &lo, &hi);
    calculate_qparams_ref(&lo, &hi, 1, tensor_int, ComputeDType::F32, &scale, nullptr);
    fake_quantize_ref(block.data(), count, dim, tensor_int, &scale, nullptr, expected_dyn.data());
    for (int64_t t = 0; t < count; ++t) {
      for (int64_t d = 0; d < dim; ++d) {
        EXPECT_EQ(k_static[t * width + h * dim + d], expected[t * dim + d]);
        EXPECT_EQ(k_dyn[t * width + h * dim + d], expected_dyn[t * dim + d]);
      }
    }
  }
}

TEST(QuantizedKVCache, OnOffAndChunkIndependence) {
  testing::TempDir tmp("quantized_kv");
  testing::TinySpec ts;
  ts.intermediate = 48;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "float", ts);
  testing::CtSpec spec;
  spec.scheme.weights = kv_args(QuantType::Float, QuantStrategy::Tensor, false);
  spec.format = "float-quantized";
  spec.kv = kv_args(QuantType::Float, QuantStrategy::Tensor, false);
  spec.k_scale = 0.05f;  // +-22 representable: the tiny model's keys and values fit without saturating
  spec.v_scale = 0.05f;
  testing::write_ct_checkpoint(tiny, tmp.path() / "q", spec);
  const formats::OpenedQuantizedModel opened = formats::open_compressed_tensors(tmp.path() / "q");

  Transformer with_kv(*opened.model, make_quantized_linear_factory(opened.quant));
  with_kv.set_kv_quantizer(KVQuantizer::from_checkpoint(*opened.quant, opened.model->config()));
  ASSERT_NE(with_kv.kv_quantizer(), nullptr);
  Transformer without_kv(*opened.model, make_quantized_linear_factory(opened.quant));

  const std::vector<int32_t> tokens = {1, 8, 13, 21, 34, 55, 3, 2};
  std::vector<float> on, off, stepwise, last;
  Session(with_kv).forward(tokens, Logits::All, &on);
  Session(without_kv).forward(tokens, Logits::All, &off);
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < on.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(on[i] - off[i])));
    scale = std::max(scale, static_cast<double>(std::abs(off[i])));
  }
  EXPECT_GT(diff, 1e-5);  // the cache is quantized
  // A sanity bound only (the exact values are checked by the KVQuantizer tests above): this random tiny model
  // has large attention logits that amplify e4m3's 2^-4 relative rounding of the keys (measured 0.81
  // of 5.66).
  EXPECT_LT(diff, 0.25 * scale);
  std::printf("KV fp8 on/off: max logit difference %.4f (largest logit %.3f)\n", diff, scale);

  // Static scales: decoding token by token gives the same last logits as one prefill.
  Session s(with_kv);
  for (int32_t t : tokens) s.forward(std::span<const int32_t>(&t, 1), Logits::Last, &last);
  const int64_t vocab = opened.model->config().vocab_size;
  for (int64_t v = 0; v < vocab; ++v) {
    EXPECT_NEAR(last[static_cast<size_t>(v)],
                on[(tokens.size() - 1) * static_cast<size_t>(vocab) + static_cast<size_t>(v)], 1e-4);
  }
}

}  // namespace
}  // namespace lowbit::runtime

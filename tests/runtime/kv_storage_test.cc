// KV cache stored as codes (static int8 / fp8 kv_cache_scheme): after the fake quantization that the forward
// pass applies, the code cache gives back exactly the fp32 cache's values, in a quarter of the memory, and
// dynamic schemes keep fp32 storage.
#include <gtest/gtest.h>

#include <random>

#include "runtime/kv_cache.h"
#include "runtime/kv_quant.h"

namespace lowbit::runtime {
namespace {

QuantArgs kv_args(QuantType type, FloatFormat format, bool dynamic) {
  QuantArgs a;
  a.num_bits = 8;
  a.type = type;
  a.float_format = format;
  a.strategy = dynamic ? QuantStrategy::Token : QuantStrategy::Tensor;
  a.dynamic = dynamic ? DynamicMode::Dynamic : DynamicMode::Static;
  return a;
}

TEST(KVStorage, CodesGiveBackTheFakeQuantizedValues) {
  const int64_t layers = 2, heads = 3, dim = 8, count = 11;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Scheme {
    QuantType type;
    FloatFormat format;
    bool per_head;
  };
  for (const Scheme& s :
       {Scheme{QuantType::Int, FloatFormat::E4M3, false}, Scheme{QuantType::Float, FloatFormat::E4M3, false},
        Scheme{QuantType::Float, FloatFormat::E5M2, true}}) {
    std::vector<formats::KVScales> scales(static_cast<size_t>(layers));
    for (auto& l : scales) {
      l.k_scale = s.per_head ? std::vector<float>{0.02f, 0.03f, 0.05f} : std::vector<float>{0.021f};
      l.v_scale = s.per_head ? std::vector<float>{0.04f, 0.01f, 0.02f} : std::vector<float>{0.013f};
    }
    const KVQuantizer kvq(kv_args(s.type, s.format, false), scales, layers, heads, dim);
    ASSERT_TRUE(kvq.stores_codes());
    KVCache codes(layers, heads, dim, 4, &kvq);  // grows while storing: contents kept
    KVCache floats(layers, heads, dim, 4);
    ASSERT_TRUE(codes.stores_codes());
    for (int64_t first = 0; first < count; first += 4) {
      const int64_t n = std::min<int64_t>(4, count - first);
      for (int64_t layer = 0; layer < layers; ++layer) {
        std::vector<float> k(static_cast<size_t>(n * heads * dim)), v(k.size());
        for (float& x : k) x = 3.0f * normal(rng);  // some saturate
        for (float& x : v) x = normal(rng);
        kvq.apply(layer, k.data(), v.data(), n);  // what the forward pass does before storing
        codes.reserve(first + n);
        floats.reserve(first + n);
        codes.store(layer, first, n, k.data(), v.data());
        floats.store(layer, first, n, k.data(), v.data());
      }
    }
    for (int64_t layer = 0; layer < layers; ++layer) {
      for (int64_t h = 0; h < heads; ++h) {
        const float* kc = codes.keys(layer, h);
        const float* vc = codes.values(layer, h);  // a second buffer: kc stays valid
        for (int64_t i = 0; i < count * dim; ++i) {
          ASSERT_EQ(kc[i], floats.keys(layer, h)[i]) << "layer " << layer << " head " << h << " at " << i;
          ASSERT_EQ(vc[i], floats.values(layer, h)[i]) << "layer " << layer << " head " << h << " at " << i;
        }
      }
    }
    EXPECT_EQ(codes.bytes() * 4, floats.bytes());
  }
}

TEST(KVStorage, DynamicSchemesStayFp32) {
  const KVQuantizer dynamic(kv_args(QuantType::Int, FloatFormat::E4M3, true), {}, 1, 2, 4);
  EXPECT_FALSE(dynamic.stores_codes());
  KVCache cache(1, 2, 4, 3, &dynamic);
  EXPECT_FALSE(cache.stores_codes());
  EXPECT_EQ(cache.bytes(), size_t{1 * 2 * 2 * 3 * 4} * sizeof(float));
}

}  // namespace
}  // namespace lowbit::runtime

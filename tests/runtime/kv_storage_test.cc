// KV cache stored as codes (static int8 / fp8 kv_cache_scheme): after the fake quantization that the forward
// pass applies, the code cache gives back exactly the fp32 cache's values, in a quarter of the memory, and
// dynamic schemes keep fp32 storage.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "runtime/kv_cache.h"
#include "runtime/kv_quant.h"
#include "util/error.h"

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

// bf16 / fp16 storage holds each value rounded to nearest even (io's converters give the expected bits),
// in half the bytes; rows() points at the stored halves, keys() / values() widen them; growth keeps them.
TEST(KVStorage, SixteenBitStorageRoundsToNearestEven) {
  const int64_t layers = 2, heads = 3, dim = 5, count = 9;
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 10.0f);
  for (DType storage : {DType::BF16, DType::F16}) {
    KVCache halves(layers, heads, dim, 2, nullptr, storage);  // grows while storing
    KVCache floats(layers, heads, dim, count);
    EXPECT_EQ(halves.storage(), storage);
    std::vector<std::vector<float>> ks, vs;
    for (int64_t first = 0; first < count; first += 2) {
      const int64_t n = std::min<int64_t>(2, count - first);
      for (int64_t layer = 0; layer < layers; ++layer) {
        std::vector<float> k(static_cast<size_t>(n * heads * dim)), v(k.size());
        for (float& x : k) x = normal(rng);
        for (float& x : v) x = normal(rng);
        halves.reserve(first + n);
        halves.store(layer, first, n, k.data(), v.data());
        floats.store(layer, first, n, k.data(), v.data());
      }
    }
    auto rounded = [&](float x) {
      return storage == DType::BF16 ? bf16_to_f32(f32_to_bf16(x)) : f16_to_f32(f32_to_f16(x));
    };
    for (int64_t layer = 0; layer < layers; ++layer) {
      for (int64_t h = 0; h < heads; ++h) {
        const KVCache::Rows kr = halves.key_rows(layer, h), vr = halves.value_rows(layer, h);
        ASSERT_EQ(kr.dtype, storage);
        ASSERT_EQ(vr.dtype, storage);
        const float* kw = halves.keys(layer, h);
        const float* vw = halves.values(layer, h);
        for (int64_t i = 0; i < count * dim; ++i) {
          const float k = floats.keys(layer, h)[i], v = floats.values(layer, h)[i];
          ASSERT_EQ(kw[i], rounded(k)) << "layer " << layer << " head " << h << " at " << i;
          ASSERT_EQ(vw[i], rounded(v)) << "layer " << layer << " head " << h << " at " << i;
          uint16_t bits;
          std::memcpy(&bits, static_cast<const uint16_t*>(kr.data) + i, sizeof(bits));
          ASSERT_EQ(bits, storage == DType::BF16 ? f32_to_bf16(k) : f32_to_f16(k));
        }
      }
    }
    EXPECT_EQ(halves.bytes() * 2 * count, floats.bytes() * halves.capacity());
  }
  EXPECT_THROW(KVCache(1, 1, 4, 1, nullptr, DType::F8_E4M3), Error);
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

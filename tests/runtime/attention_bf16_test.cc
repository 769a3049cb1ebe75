// causal_attention_bf16 (AMX and fallback paths) against its scalar reference, and against the fp32
// attention as a sanity check of the semantics (masking, GQA head mapping, scaling).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/attention.h"
#include "runtime/gemm_bf16.h"
#include "runtime/kv_cache.h"

namespace lowbit::runtime {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

class AttentionBf16 : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    previous_ = kernels::set_bf16_gemm_amx(GetParam());
    if (GetParam() && !kernels::bf16_gemm_uses_amx()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  }
  void TearDown() override { kernels::set_bf16_gemm_amx(previous_); }
  bool previous_ = false;
};

TEST_P(AttentionBf16, MatchesReferenceAndFp32Attention) {
  // (tokens, heads, kv heads, head_dim): odd lengths, several query blocks, head_dim not a multiple of 32.
  const int64_t cases[][4] = {
      {1, 4, 2, 64}, {5, 4, 2, 64}, {70, 6, 2, 40}, {130, 3, 3, 16}, {200, 12, 4, 64}};
  uint32_t seed = 1;
  for (const auto& c : cases) {
    const int64_t count = c[0];
    const AttentionShape s{c[1], c[2], c[3]};
    const int64_t q_dim = s.num_heads * s.head_dim, kv_dim = s.num_kv_heads * s.head_dim;
    const std::vector<float> q = random_values(count * q_dim, seed++),
                             k = random_values(count * kv_dim, seed++),
                             v = random_values(count * kv_dim, seed++);
    std::vector<float> out(static_cast<size_t>(count * q_dim), NAN), ref(out.size()), fp32(out.size());
    causal_attention_bf16(q.data(), k.data(), v.data(), count, s, out.data());
    causal_attention_bf16_ref(q.data(), k.data(), v.data(), count, s, ref.data());
    KVCache cache(1, s.num_kv_heads, s.head_dim, count);
    cache.store(0, 0, count, k.data(), v.data());
    causal_attention(q.data(), 0, count, cache, 0, s, fp32.data());
    // Outputs are convex combinations of values ~N(0, 1). Against the reference: fp32 summation plus the
    // rare softmax weight rounded to the neighbouring bf16 value (2^-8 relative; max seen 2.7e-4). Against
    // the fp32 attention: the bf16 operands themselves (max seen 1.2e-2).
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_NEAR(out[i], ref[i], 2e-3) << "tokens " << count << ", element " << i;
      ASSERT_NEAR(out[i], fp32[i], 3e-2) << "tokens " << count << ", element " << i;
    }
    double err = 0, norm = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      err += (out[i] - ref[i]) * double(out[i] - ref[i]);
      norm += double(ref[i]) * ref[i];
    }
    EXPECT_LT(std::sqrt(err / norm), 1e-4) << "tokens " << count;
  }
}

INSTANTIATE_TEST_SUITE_P(AmxAndFallback, AttentionBf16, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Amx" : "Fallback";
                         });

}  // namespace
}  // namespace lowbit::runtime

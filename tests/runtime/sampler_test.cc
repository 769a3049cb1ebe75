// Sampler: greedy, top-k / top-p restriction, empirical frequencies, determinism for a seed.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/sampler.h"
#include "util/error.h"

namespace lowbit::runtime {
namespace {

const std::vector<float> kLogits = {std::log(0.1f), std::log(0.6f), std::log(0.3f)};

std::vector<double> frequencies(const SamplerOptions& o, int draws = 20000) {
  Sampler s(o);
  std::vector<double> f(kLogits.size(), 0.0);
  for (int i = 0; i < draws; ++i) f[static_cast<size_t>(s.sample(kLogits))] += 1.0 / draws;
  return f;
}

TEST(Sampler, GreedyIsArgmax) {
  Sampler s(SamplerOptions{});
  EXPECT_EQ(s.sample(kLogits), 1);
  EXPECT_EQ(argmax(std::vector<float>{3, 5, 5}), 1);  // first of ties
}

TEST(Sampler, TemperatureOneFollowsSoftmax) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.seed = 3;
  const auto f = frequencies(o);
  EXPECT_NEAR(f[0], 0.1, 0.015);
  EXPECT_NEAR(f[1], 0.6, 0.015);
  EXPECT_NEAR(f[2], 0.3, 0.015);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_p = 0.8f;  // 0.6 < 0.8 <= 0.9: tokens 1 and 2, renormalised to 2/3 and 1/3
  const auto f = frequencies(o);
  EXPECT_EQ(f[0], 0.0);
  EXPECT_NEAR(f[1], 2.0 / 3.0, 0.015);
  o.top_p = 0.5f;  // only the top token
  EXPECT_NEAR(frequencies(o)[1], 1.0, 1e-12);
}

TEST(Sampler, TopK) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 2;
  const auto f = frequencies(o);
  EXPECT_EQ(f[0], 0.0);
  EXPECT_NEAR(f[2], 1.0 / 3.0, 0.015);
}

TEST(Sampler, DeterministicForASeed) {
  SamplerOptions o;
  o.temperature = 0.8f;
  o.seed = 123;
  Sampler a(o), b(o);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.sample(kLogits), b.sample(kLogits));
}

TEST(Sampler, RejectsBadOptions) {
  SamplerOptions o;
  o.top_p = 0.0f;
  EXPECT_THROW(Sampler{o}, Error);
  o.top_p = 1.5f;
  EXPECT_THROW(Sampler{o}, Error);
}

}  // namespace
}  // namespace lowbit::runtime

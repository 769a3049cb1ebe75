// Sampler: greedy, top-k / top-p restriction, empirical frequencies, determinism for a seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <utility>
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
  // NaNs never win, except one at index 0, which nothing replaces (the plain loop's rule); ties beyond a
  // vector's width still go to the first.
  const float nan = std::nanf("");
  EXPECT_EQ(argmax(std::vector<float>{3, nan, 5, 2}), 2);
  EXPECT_EQ(argmax(std::vector<float>{nan, 3, 5}), 0);
  std::vector<float> wide(1000, 1.0f);
  wide[700] = 2.0f;
  wide[900] = 2.0f;
  EXPECT_EQ(argmax(wide), 700);
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

// The sampler's definition, as it was first written: every candidate sorted, probabilities and their sums
// in that order.
int32_t sample_by_full_sort(std::span<const float> logits, const SamplerOptions& o, double u) {
  std::vector<std::pair<float, int32_t>> c;
  for (size_t i = 0; i < logits.size(); ++i) c.emplace_back(logits[i], static_cast<int32_t>(i));
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  if (o.top_k > 0 && static_cast<size_t>(o.top_k) < c.size()) c.resize(static_cast<size_t>(o.top_k));
  const double max_logit = c.front().first;
  std::vector<double> prob;
  double total = 0.0;
  for (const auto& e : c) {
    prob.push_back(std::exp((e.first - max_logit) / o.temperature));
    total += prob.back();
  }
  size_t keep = c.size();
  if (o.top_p < 1.0f) {
    double mass = 0.0;
    size_t n = 0;
    while (n < keep) {
      mass += prob[n] / total;
      ++n;
      if (mass >= o.top_p) break;
    }
    keep = n;
    total = 0.0;
    for (size_t i = 0; i < keep; ++i) total += prob[i];
  }
  const double r = u * total;
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += prob[i];
    if (r < acc) return c[i].second;
  }
  return c[keep - 1].second;
}

// The sampler sorts only the prefix its nucleus and draw need; it draws the same tokens as the full sort for
// the same random numbers (the Sampler's own stream, replayed here: SplitMix64 from the seed) on a
// vocabulary-sized input with ties, across temperatures, top-p and top-k.
TEST(Sampler, PartialSortDrawsWhatTheFullSortDraws) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.5f);
  std::vector<float> logits(8192);
  for (float& v : logits) v = std::round(normal(rng) * 64.0f) / 64.0f;  // coarse values: many ties
  struct Case {
    float temperature, top_p;
    int top_k;
  };
  for (const Case c : {Case{0.8f, 0.95f, 0}, Case{1.0f, 1.0f, 0}, Case{0.3f, 0.5f, 0}, Case{2.0f, 0.99f, 0},
                       Case{1.0f, 0.9f, 40}, Case{0.7f, 1.0f, 100}, Case{1.5f, 0.999f, 5000}}) {
    SamplerOptions o;
    o.temperature = c.temperature;
    o.top_p = c.top_p;
    o.top_k = c.top_k;
    o.seed = 99;
    Sampler s(o);
    uint64_t state = o.seed;
    for (int draw = 0; draw < 100; ++draw) {
      uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      z ^= z >> 31;
      const double u = static_cast<double>(z >> 11) * 0x1.0p-53;
      ASSERT_EQ(s.sample(logits), sample_by_full_sort(logits, o, u))
          << "T " << c.temperature << " top_p " << c.top_p << " top_k " << c.top_k << " draw " << draw;
    }
  }
}

TEST(Sampler, RejectsBadOptions) {
  SamplerOptions o;
  o.top_p = 0.0f;
  EXPECT_THROW(Sampler{o}, Error);
  o.top_p = 1.5f;
  EXPECT_THROW(Sampler{o}, Error);
  o.top_p = 0.9f;
  o.temperature = 1.0f;
  Sampler s(o);
  EXPECT_THROW(s.sample({}), Error);  // nothing to sample from
}

}  // namespace
}  // namespace lowbit::runtime

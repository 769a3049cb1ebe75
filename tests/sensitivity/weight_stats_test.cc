// Weight statistics against values computed by hand (and checked with numpy: w.var(axis=1).mean(),
// abs(w).max() / abs(w).mean(), m4 / m2^2 - 3).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sensitivity/weight_stats.h"
#include "util/error.h"

namespace lowbit::sensitivity {
namespace {

TEST(WeightStats, HandComputed) {
  // Row 0: mean 0.5, variance (0.25 + 2.25 + 2.25 + 0.25) / 4 = 1.25; row 1 is constant (variance 0).
  // |w| mean 16 / 8 = 2, max 3. All 8 values: mean 1.75, m2 = 17.5 / 8, m4 = 76.65625 / 8.
  const std::vector<float> w = {1, -1, 2, 0, 3, 3, 3, 3};
  const WeightStats s = weight_stats(w.data(), 2, 4);
  EXPECT_DOUBLE_EQ(s.channel_variance, 0.625);
  EXPECT_DOUBLE_EQ(s.max_mean_ratio, 1.5);
  const double m2 = 17.5 / 8, m4 = 76.65625 / 8;
  EXPECT_NEAR(s.kurtosis, m4 / (m2 * m2) - 3.0, 1e-12);
  EXPECT_NEAR(s.kurtosis, -0.9975510204081632, 1e-12);
}

TEST(WeightStats, OutlierRaisesRatioAndKurtosis) {
  std::vector<float> w(256);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = (i % 2 ? 1.0f : -1.0f) * (0.5f + 0.001f * static_cast<float>(i));
  const WeightStats flat = weight_stats(w.data(), 16, 16);
  w[37] = 20.0f;
  const WeightStats outlier = weight_stats(w.data(), 16, 16);
  EXPECT_GT(outlier.max_mean_ratio, 10.0 * flat.max_mean_ratio / 2.0);
  EXPECT_GT(outlier.kurtosis, flat.kurtosis + 50.0);
  EXPECT_GT(outlier.channel_variance, flat.channel_variance);
}

TEST(WeightStats, ZerosAndEmpty) {
  const std::vector<float> zeros(12, 0.0f);
  const WeightStats s = weight_stats(zeros.data(), 3, 4);
  EXPECT_EQ(s.channel_variance, 0.0);
  EXPECT_EQ(s.max_mean_ratio, 0.0);
  EXPECT_EQ(s.kurtosis, 0.0);
  EXPECT_THROW(weight_stats(zeros.data(), 0, 4), Error);
}

}  // namespace
}  // namespace lowbit::sensitivity

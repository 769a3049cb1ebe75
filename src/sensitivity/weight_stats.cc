#include "sensitivity/weight_stats.h"

#include <cmath>

#include "util/error.h"

namespace lowbit::sensitivity {

WeightStats weight_stats(const float* w, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) fail("weight statistics of an empty {} x {} matrix", rows, cols);
  WeightStats s;
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  double sum = 0.0, sum_abs = 0.0, max_abs = 0.0, variance_sum = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    double row_sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      row_sum += row[c];
      sum_abs += std::fabs(row[c]);
      max_abs = std::max(max_abs, static_cast<double>(std::fabs(row[c])));
    }
    const double row_mean = row_sum / static_cast<double>(cols);
    double row_ss = 0.0;
    for (int64_t c = 0; c < cols; ++c) row_ss += (row[c] - row_mean) * (row[c] - row_mean);
    variance_sum += row_ss / static_cast<double>(cols);
    sum += row_sum;
  }
  s.channel_variance = variance_sum / static_cast<double>(rows);
  const double mean_abs = sum_abs / n;
  s.max_mean_ratio = mean_abs > 0.0 ? max_abs / mean_abs : 0.0;

  const double mean = sum / n;
  double m2 = 0.0, m4 = 0.0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double d = w[i] - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= n;
  m4 /= n;
  s.kurtosis = m2 > 0.0 ? m4 / (m2 * m2) - 3.0 : 0.0;
  return s;
}

}  // namespace lowbit::sensitivity

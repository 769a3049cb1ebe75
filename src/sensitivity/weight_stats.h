// Statistics of one weight matrix that are commonly used as cheap proxies for how badly it quantizes
// (no data needed):
//   channel_variance   the variance of each output channel's (row's) weights, averaged over the channels
//                      (the "outlier magnitude");
//   max_mean_ratio     max |w| / mean |w| over the whole matrix: how far the largest weight sticks out of
//                      the bulk that shares its quantization range;
//   kurtosis           excess kurtosis of all weights, m4 / m2^2 - 3 with central moments (0 for a
//                      Gaussian; heavy tails = outliers).
// Variances are population variances (divided by n). Sums are in double.
#pragma once

#include <cstdint>

namespace lowbit::sensitivity {

struct WeightStats {
  double channel_variance = 0.0;
  double max_mean_ratio = 0.0;
  double kurtosis = 0.0;
};

// w is rows x cols, row-major. Throws for an empty matrix; a matrix of zeros gives zeros.
WeightStats weight_stats(const float* w, int64_t rows, int64_t cols);

}  // namespace lowbit::sensitivity

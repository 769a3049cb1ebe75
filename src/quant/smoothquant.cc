// SmoothQuant scales and the folding helpers; see smoothquant.h for the semantics followed.
#include "quant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lowbit {

namespace {
constexpr double kMinimumSmoothingScale = 1e-5;  // llm-compressor MINIMUM_SMOOTHING_SCALE
}  // namespace

std::vector<float> smoothquant_activation_range(const float* ch_min, const float* ch_max, int64_t cols) {
  std::vector<float> range(static_cast<size_t>(std::max<int64_t>(cols, 0)));
  for (int64_t j = 0; j < cols; ++j) range[static_cast<size_t>(j)] = ch_max[j] - ch_min[j];
  return range;
}

std::vector<float> smoothquant_scales(const float* act_range, int64_t cols,
                                      std::span<const WeightRef> balance, float alpha) {
  if (cols <= 0) fail("smoothquant_scales: {} activation channels", cols);
  if (balance.empty()) fail("smoothquant_scales: no balance layers");
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    fail("smoothquant_scales: smoothing strength {} is not in [0, 1]", alpha);
  for (int64_t j = 0; j < cols; ++j) {
    if (!(act_range[j] >= 0.0f)) {
      fail("smoothquant_scales: activation range of channel {} is {} (no calibration tokens, or NaN)", j,
           act_range[j]);
    }
  }
  // Per input column, the largest |W| over all rows of all balance layers.
  std::vector<double> w_absmax(static_cast<size_t>(cols), 0.0);
  for (size_t b = 0; b < balance.size(); ++b) {
    const WeightRef& w = balance[b];
    if (w.cols != cols) {
      fail("smoothquant_scales: balance layer {} is {}x{}, expected {} input columns", b, w.rows, w.cols,
           cols);
    }
    for (int64_t i = 0; i < w.rows; ++i) {
      const float* row = w.data + i * w.cols;
      for (int64_t j = 0; j < cols; ++j) {
        w_absmax[static_cast<size_t>(j)] =
            std::max(w_absmax[static_cast<size_t>(j)], double{std::fabs(row[j])});
      }
    }
  }
  std::vector<float> s(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const double range = act_range[j];
    const double w_scale = 2.0 * w_absmax[static_cast<size_t>(j)];
    double v =
        w_scale > 0.0 ? std::pow(range, double{alpha}) / std::pow(w_scale, 1.0 - double{alpha}) : range;
    v = std::max(v, kMinimumSmoothingScale);
    s[static_cast<size_t>(j)] = static_cast<float>(v);
  }
  return s;
}

void divide_norm_weight(float* norm_weight, const float* s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) norm_weight[j] /= s[j];
}

void scale_columns(float* w, int64_t rows, int64_t cols, const float* s) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = w + i * cols;
    for (int64_t j = 0; j < cols; ++j) row[j] *= s[j];
  }
}

void divide_rows(float* w, int64_t rows, int64_t cols, float* bias, const float* s) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = w + i * cols;
    const float si = s[i];
    for (int64_t j = 0; j < cols; ++j) row[j] /= si;
    if (bias != nullptr) bias[i] /= si;
  }
}

}  // namespace lowbit

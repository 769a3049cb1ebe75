// Scalar reference quantizers (integer codes and the shared qparams math); see quantizer_ref.h.
#include "quant/quantizer_ref.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "quant/quantizer_ref_detail.h"
#include "util/error.h"

namespace lowbit {

float round_to_bf16(float v) {
  uint32_t u = std::bit_cast<uint32_t>(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return v;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);                // round to nearest, ties to even
  return std::bit_cast<float>(u & 0xffff0000u);
}

namespace detail {

float scale_eps(ComputeDType dt) {
  // torch.finfo(dtype).eps of the scale dtype.
  return dt == ComputeDType::BF16 ? 0.0078125f : 1.1920928955078125e-07f;
}

int8_t float_to_code(float t) {
  // torch casts NaN to int8 as 0; finite values are already clamped to the int8 range.
  if (std::isnan(t)) return 0;
  return static_cast<int8_t>(std::nearbyint(t));  // default rounding mode: half to even
}

std::vector<float> inputs_in(const float* x, int64_t n, ComputeDType dt) {
  std::vector<float> v(x, x + n);
  if (dt == ComputeDType::BF16) {
    for (float& f : v) f = round_to_bf16(f);
  }
  return v;
}

}  // namespace detail

using detail::rnd;

void observe_minmax_ref(const float* x, const ScaleGrid& grid, float* min_vals, float* max_vals) {
  std::fill(min_vals, min_vals + grid.size(), INFINITY);
  std::fill(max_vals, max_vals + grid.size(), -INFINITY);
  std::vector<bool> has_nan(static_cast<size_t>(grid.size()), false);
  for (int64_t r = 0; r < grid.rows; ++r) {
    for (int64_t c = 0; c < grid.cols; ++c) {
      const float v = x[r * grid.cols + c];
      const int64_t i = grid.index(r, c);
      if (std::isnan(v)) has_nan[static_cast<size_t>(i)] = true;
      min_vals[i] = std::min(min_vals[i], v);
      max_vals[i] = std::max(max_vals[i], v);
    }
  }
  for (int64_t i = 0; i < grid.size(); ++i) {
    if (has_nan[static_cast<size_t>(i)]) min_vals[i] = max_vals[i] = NAN;
  }
}

void calculate_qparams_ref(const float* min_vals, const float* max_vals, int64_t n, const QuantArgs& args,
                           ComputeDType dt, float* scales, int8_t* zero_points) {
  if (!args.symmetric && zero_points == nullptr) fail("asymmetric quantization needs zero points");
  const float qmin = args.q_min();
  const float qmax = args.q_max();
  const float range = rnd(qmax - qmin, dt);
  const float half_range = rnd(range / 2, dt);
  for (int64_t i = 0; i < n; ++i) {
    const float lo = std::min(min_vals[i], 0.0f);
    const float hi = std::max(max_vals[i], 0.0f);
    float scale = 0;
    float zp = 0;
    if (args.symmetric) {
      scale = rnd(std::max(std::fabs(lo), std::fabs(hi)) / half_range, dt);
    } else {
      scale = rnd(rnd(hi - lo, dt) / range, dt);
      zp = rnd(qmin - rnd(lo / scale, dt), dt);  // computed before the eps fix, as in compressed-tensors
      zp = std::clamp(zp, qmin, qmax);
    }
    if (scale == 0) scale = detail::scale_eps(dt);
    scales[i] = scale;
    if (zero_points != nullptr) zero_points[i] = detail::float_to_code(std::clamp(zp, -128.0f, 127.0f));
  }
}

void quantize_int_with_qparams_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args,
                                   const float* scales, const int8_t* zero_points, int8_t* codes,
                                   ComputeDType dt) {
  if (args.type != QuantType::Int) fail("quantize_int: args are {}, not int", describe(args));
  const ScaleGrid grid = make_scale_grid(args, rows, cols, "tensor");
  const float qmin = args.q_min();
  const float qmax = args.q_max();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = grid.index(r, c);
      float t = rnd(rnd(w[r * cols + c], dt) / scales[i], dt);
      if (zero_points != nullptr) t = rnd(t + static_cast<float>(zero_points[i]), dt);
      codes[r * cols + c] = detail::float_to_code(std::clamp(t, qmin, qmax));
    }
  }
}

void quantize_int_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, int8_t* codes,
                      float* scales, int8_t* zero_points, ComputeDType dt) {
  const ScaleGrid grid = make_scale_grid(args, rows, cols, "tensor");
  const std::vector<float> x = detail::inputs_in(w, rows * cols, dt);
  std::vector<float> lo(static_cast<size_t>(grid.size())), hi(static_cast<size_t>(grid.size()));
  observe_minmax_ref(x.data(), grid, lo.data(), hi.data());
  std::vector<int8_t> zp_storage;
  if (zero_points == nullptr && !args.symmetric) {
    zp_storage.resize(static_cast<size_t>(grid.size()));
    zero_points = zp_storage.data();
  }
  calculate_qparams_ref(lo.data(), hi.data(), grid.size(), args, dt, scales, zero_points);
  quantize_int_with_qparams_ref(x.data(), rows, cols, args, scales, args.symmetric ? nullptr : zero_points,
                                codes, dt);
}

void dequantize_int_ref(const int8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                        const float* scales, const int8_t* zero_points, float* out, ComputeDType dt) {
  const ScaleGrid grid = make_scale_grid(args, rows, cols, "tensor");
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = grid.index(r, c);
      float q = static_cast<float>(codes[r * cols + c]);
      if (zero_points != nullptr) q = rnd(q - static_cast<float>(zero_points[i]), dt);
      out[r * cols + c] = rnd(q * scales[i], dt);
    }
  }
}

}  // namespace lowbit

// Scalar reference quantizers for 8-bit float codes (e4m3fn, e5m2); see quantizer_ref.h.
#include <algorithm>
#include <vector>

#include "io/dtype.h"
#include "quant/quantizer_ref.h"
#include "quant/quantizer_ref_detail.h"
#include "util/error.h"

namespace lowbit {
namespace {

void check_fp8(const QuantArgs& args) {
  if (args.type != QuantType::Float || args.num_bits != 8) {
    fail("quantize_fp8: args are {}, not 8-bit float", describe(args));
  }
}

uint8_t to_fp8(float v, FloatFormat f) {
  return f == FloatFormat::E4M3 ? f32_to_e4m3(v) : f32_to_e5m2(v);
}
float from_fp8(uint8_t v, FloatFormat f) {
  return f == FloatFormat::E4M3 ? e4m3_to_f32(v) : e5m2_to_f32(v);
}

}  // namespace

using detail::rnd;

void quantize_fp8_with_scales_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args,
                                  const float* scales, uint8_t* codes, ComputeDType dt) {
  check_fp8(args);
  const ScaleGrid grid = make_scale_grid(args, rows, cols, "tensor");
  const float qmin = args.q_min();
  const float qmax = args.q_max();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float t = rnd(rnd(w[r * cols + c], dt) / scales[grid.index(r, c)], dt);
      codes[r * cols + c] = to_fp8(std::clamp(t, qmin, qmax), args.float_format);
    }
  }
}

void quantize_fp8_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, uint8_t* codes,
                      float* scales, ComputeDType dt) {
  check_fp8(args);
  if (!args.symmetric) fail("asymmetric fp8 quantization is not supported ({})", describe(args));
  const ScaleGrid grid = make_scale_grid(args, rows, cols, "tensor");
  const std::vector<float> x = detail::inputs_in(w, rows * cols, dt);
  std::vector<float> lo(static_cast<size_t>(grid.size())), hi(static_cast<size_t>(grid.size()));
  observe_minmax_ref(x.data(), grid, lo.data(), hi.data());
  calculate_qparams_ref(lo.data(), hi.data(), grid.size(), args, dt, scales, nullptr);
  quantize_fp8_with_scales_ref(x.data(), rows, cols, args, scales, codes, dt);
}

void dequantize_fp8_ref(const uint8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                        const float* scales, float* out, ComputeDType dt) {
  check_fp8(args);
  const ScaleGrid grid = make_scale_grid(args, rows, cols, "tensor");
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float q = from_fp8(codes[r * cols + c], args.float_format);  // exact in bf16 and fp32
      out[r * cols + c] = rnd(q * scales[grid.index(r, c)], dt);
    }
  }
}

void fake_quantize_ref(const float* x, int64_t rows, int64_t cols, const QuantArgs& args, const float* scales,
                       const int8_t* zero_points, float* out, ComputeDType dt) {
  const int64_t n = rows * cols;
  if (args.type == QuantType::Int) {
    std::vector<int8_t> q(static_cast<size_t>(n));
    quantize_int_with_qparams_ref(x, rows, cols, args, scales, zero_points, q.data(), dt);
    dequantize_int_ref(q.data(), rows, cols, args, scales, zero_points, out, dt);
  } else {
    std::vector<uint8_t> q(static_cast<size_t>(n));
    quantize_fp8_with_scales_ref(x, rows, cols, args, scales, q.data(), dt);
    dequantize_fp8_ref(q.data(), rows, cols, args, scales, out, dt);
  }
}

}  // namespace lowbit

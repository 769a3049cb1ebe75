// Fast quantizers; the arithmetic mirrors quantizer_ref.cc step by step (see quantizer.h).
#include "quant/quantizer.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <functional>
#include <mutex>
#include <vector>

#include "io/dtype.h"
#include "quant/scale_grid.h"
#include "runtime/kernels_hwy.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {
namespace {

constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: (t + m) - m rounds |t| < 2^22 half to even

// One torch op's result in the compute dtype (bf16: round to nearest even; NaN is not produced here from
// non-NaN inputs and is kept quiet by the same bit trick's caller-side handling).
template <bool kBf16>
inline float rnd(float v) {
  if constexpr (kBf16) {
    uint32_t u = std::bit_cast<uint32_t>(v);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    return (u & 0x7fffffffu) > 0x7f800000u ? v : std::bit_cast<float>(rounded);
  } else {
    return v;
  }
}

// Clamp (NaN passes through, as in torch.clamp) then round half to even; NaN becomes 0 like the int8 cast.
inline float clamp_round(float t, float qmin, float qmax) {
  t = std::min(std::max(t, qmin), qmax);
  t = t == t ? t : 0.0f;
  return (t + kRoundMagic) - kRoundMagic;
}

// Rows are processed in parallel in chunks of at least ~16k elements.
void for_rows(int64_t rows, int64_t cols, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
  if (rows <= grain) {
    fn(0, rows);
    return;
  }
  global_pool().parallel_for(static_cast<size_t>(rows), static_cast<size_t>(grain), [&](size_t b, size_t e) {
    fn(static_cast<int64_t>(b), static_cast<int64_t>(e));
  });
}

template <bool kBf16, bool kZeroPoint>
void quantize_int_segment(const float* x, int64_t n, float s, float z, float qmin, float qmax, int8_t* q) {
  for (int64_t c = 0; c < n; ++c) {
    float t = rnd<kBf16>(rnd<kBf16>(x[c]) / s);
    if constexpr (kZeroPoint) t = rnd<kBf16>(t + z);
    q[c] = static_cast<int8_t>(static_cast<int32_t>(clamp_round(t, qmin, qmax)));
  }
}

template <bool kBf16>
void quantize_int_rows(const float* w, const ScaleGrid& g, float qmin, float qmax, const float* scales,
                       const int8_t* zps, int8_t* codes, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c0 = 0; c0 < g.cols; c0 += g.group) {
      const int64_t i = g.index(r, c0);
      const int64_t n = std::min(g.group, g.cols - c0);
      const float* x = w + r * g.cols + c0;
      int8_t* q = codes + r * g.cols + c0;
      if (zps != nullptr) {
        quantize_int_segment<kBf16, true>(x, n, scales[i], static_cast<float>(zps[i]), qmin, qmax, q);
      } else {
        quantize_int_segment<kBf16, false>(x, n, scales[i], 0.0f, qmin, qmax, q);
      }
    }
  }
}

template <bool kBf16>
void dequantize_int_rows(const int8_t* codes, const ScaleGrid& g, const float* scales, const int8_t* zps,
                         float* out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c0 = 0; c0 < g.cols; c0 += g.group) {
      const int64_t i = g.index(r, c0);
      const float s = scales[i];
      const float z = zps != nullptr ? static_cast<float>(zps[i]) : 0.0f;
      const int64_t n = std::min(g.group, g.cols - c0);
      const int8_t* q = codes + r * g.cols + c0;
      float* o = out + r * g.cols + c0;
      if (zps != nullptr) {
        for (int64_t c = 0; c < n; ++c) o[c] = rnd<kBf16>(rnd<kBf16>(static_cast<float>(q[c]) - z) * s);
      } else {
        for (int64_t c = 0; c < n; ++c) o[c] = rnd<kBf16>(static_cast<float>(q[c]) * s);
      }
    }
  }
}

template <bool kE4m3, bool kBf16>
void quantize_fp8_rows(const float* w, const ScaleGrid& g, float qmax, const float* scales, uint8_t* codes,
                       int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c0 = 0; c0 < g.cols; c0 += g.group) {
      const float s = scales[g.index(r, c0)];
      const int64_t n = std::min(g.group, g.cols - c0);
      const float* x = w + r * g.cols + c0;
      uint8_t* q = codes + r * g.cols + c0;
      for (int64_t c = 0; c < n; ++c) {
        const float t = std::min(std::max(rnd<kBf16>(rnd<kBf16>(x[c]) / s), -qmax), qmax);
        q[c] = kE4m3 ? encode_e4m3_clamped(t) : encode_e5m2_clamped(t);
      }
    }
  }
}

const std::array<float, 256>& fp8_table(FloatFormat f) {
  static const auto make = [](float (*decode)(uint8_t)) {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[static_cast<size_t>(i)] = decode(static_cast<uint8_t>(i));
    return t;
  };
  static const std::array<float, 256> e4m3 = make(e4m3_to_f32);
  static const std::array<float, 256> e5m2 = make(e5m2_to_f32);
  return f == FloatFormat::E4M3 ? e4m3 : e5m2;
}

template <bool kBf16>
void dequantize_fp8_rows(const uint8_t* codes, const ScaleGrid& g, const std::array<float, 256>& table,
                         const float* scales, float* out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c0 = 0; c0 < g.cols; c0 += g.group) {
      const float s = scales[g.index(r, c0)];
      const int64_t n = std::min(g.group, g.cols - c0);
      for (int64_t c = 0; c < n; ++c) {
        out[r * g.cols + c0 + c] = rnd<kBf16>(table[codes[r * g.cols + c0 + c]] * s);
      }
    }
  }
}

// round_e4m3_clamped / round_e5m2_clamped (quantizer.h), inline for the fake quantization loop.
inline float e4m3_value(float v) {
  const uint32_t u = std::bit_cast<uint32_t>(v);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t a = u & 0x7fffffffu;
  const float af = std::bit_cast<float>(a);
  const bool subnormal = af < 0.015625f;  // below 2^-6, e4m3's smallest normal; false for NaN
  const float sub = (((subnormal ? af : 0.0f) * 512.0f + kRoundMagic) - kRoundMagic) * (1.0f / 512.0f);
  const uint32_t normal = (a + 0x7ffffu + ((a >> 20) & 1u)) & 0xfff00000u;  // 3 mantissa bits, to even
  uint32_t r = subnormal ? std::bit_cast<uint32_t>(sub) : normal;
  r = a > 0x7f800000u ? 0x7ff00000u : r;  // e4m3_to_f32(0x7f)
  return std::bit_cast<float>(r | sign);
}

inline float e5m2_value(float v) {
  const uint32_t u = std::bit_cast<uint32_t>(v);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t a = u & 0x7fffffffu;
  const float af = std::bit_cast<float>(a);
  const bool subnormal = af < 6.103515625e-05f;  // 2^-14
  const float sub = (((subnormal ? af : 0.0f) * 65536.0f + kRoundMagic) - kRoundMagic) * (1.0f / 65536.0f);
  const uint32_t normal = (a + 0xfffffu + ((a >> 21) & 1u)) & 0xffe00000u;  // 2 mantissa bits, to even
  uint32_t r = subnormal ? std::bit_cast<uint32_t>(sub) : normal;
  r = a > 0x7f800000u ? 0x7fe00000u : r;  // e5m2_to_f32 of the NaN code
  return std::bit_cast<float>(r | sign);
}

// quantize_fp8_rows then dequantize_fp8_rows for one row, without the codes: the decoded value directly
// (e4m3_value / e5m2_value), in SIMD (kernels::simd::fake_quantize_fp8, the same operations on every
// target). FP8_DYNAMIC rounds every linear's input this way; the scalar loop, vectorized only to the
// baseline x86-64's SSE2, took 3-5 % of a prefill.
void fake_quantize_fp8_row(const float* x, const ScaleGrid& row, float qmax, const float* scales, bool e4m3,
                           bool bf16, float* out) {
  for (int64_t c0 = 0; c0 < row.cols; c0 += row.group) {
    const int64_t n = std::min(row.group, row.cols - c0);
    kernels::simd::fake_quantize_fp8(x + c0, static_cast<size_t>(n), scales[row.index(0, c0)], qmax, e4m3,
                                     bf16, out + c0);
  }
}

// Min/max per scale cell (bf16-rounded inputs in BF16 mode); NaN in a cell makes both NaN, as the reference.
// Rounding to bf16 is monotonic, so the extremes of the rounded inputs are the rounded extremes: one SIMD
// pass over the fp32 values (kernels::simd::min_max) serves both modes.
template <bool kBf16>
void minmax_rows(const float* x, const ScaleGrid& g, float* lo, float* hi, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c0 = 0; c0 < g.cols; c0 += g.group) {
      const int64_t n = std::min(g.group, g.cols - c0);
      float mn = INFINITY, mx = -INFINITY;
      const bool nan = kernels::simd::min_max(x + r * g.cols + c0, static_cast<size_t>(n), &mn, &mx);
      mn = rnd<kBf16>(mn);
      mx = rnd<kBf16>(mx);
      const int64_t i = g.index(r, c0);
      if (nan) {
        lo[i] = hi[i] = NAN;
      } else if (g.scale_rows == 1) {  // tensor: combined across rows by the caller
        lo[i] = std::isnan(lo[i]) ? lo[i] : std::min(lo[i], mn);
        hi[i] = std::isnan(hi[i]) ? hi[i] : std::max(hi[i], mx);
      } else {
        lo[i] = mn;
        hi[i] = mx;
      }
    }
  }
}

// Min/max of every cell, in parallel. Tensor grids reduce per thread chunk, then combine.
void observe(const float* x, const ScaleGrid& g, ComputeDType dt, std::vector<float>& lo,
             std::vector<float>& hi) {
  lo.assign(static_cast<size_t>(g.size()), INFINITY);
  hi.assign(static_cast<size_t>(g.size()), -INFINITY);
  const auto run = [&](float* l, float* h, int64_t r0, int64_t r1) {
    if (dt == ComputeDType::BF16) {
      minmax_rows<true>(x, g, l, h, r0, r1);
    } else {
      minmax_rows<false>(x, g, l, h, r0, r1);
    }
  };
  if (g.scale_rows != 1) {
    for_rows(g.rows, g.cols, [&](int64_t r0, int64_t r1) { run(lo.data(), hi.data(), r0, r1); });
    return;
  }
  std::mutex mutex;
  for_rows(g.rows, g.cols, [&](int64_t r0, int64_t r1) {
    std::vector<float> l(lo.size(), INFINITY), h(hi.size(), -INFINITY);
    run(l.data(), h.data(), r0, r1);
    std::lock_guard<std::mutex> lock(mutex);
    for (size_t i = 0; i < lo.size(); ++i) {
      const bool nan = std::isnan(l[i]) || std::isnan(lo[i]);
      lo[i] = nan ? NAN : std::min(lo[i], l[i]);
      hi[i] = nan ? NAN : std::max(hi[i], h[i]);
    }
  });
}

void check_int(const QuantArgs& args) {
  if (args.type != QuantType::Int) fail("quantize_int: args are {}, not int", describe(args));
}

void check_fp8(const QuantArgs& args) {
  if (args.type != QuantType::Float || args.num_bits != 8) {
    fail("quantize_fp8: args are {}, not 8-bit float", describe(args));
  }
}

}  // namespace

uint8_t encode_e4m3_clamped(float v) {
  const uint32_t u = std::bit_cast<uint32_t>(v);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7fffffffu;
  const float af = std::bit_cast<float>(a);
  const bool subnormal = af < 0.015625f;  // below 2^-6, e4m3's smallest normal; false for NaN
  const float sub = ((subnormal ? af : 0.0f) * 512.0f + kRoundMagic) - kRoundMagic;  // multiples of 2^-9
  const uint32_t normal = ((a + 0x7ffffu + ((a >> 20) & 1u)) >> 20) - (120u << 3);   // rebias 127 -> 7
  uint32_t code = subnormal ? static_cast<uint32_t>(static_cast<int32_t>(sub)) : normal;
  code = a > 0x7f800000u ? 0x7fu : code;
  return static_cast<uint8_t>(code | sign);
}

uint8_t encode_e5m2_clamped(float v) {
  static const uint8_t nan_code = f32_to_e5m2(NAN) & 0x7fu;
  const uint32_t u = std::bit_cast<uint32_t>(v);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7fffffffu;
  const float af = std::bit_cast<float>(a);
  const bool subnormal = af < 6.103515625e-05f;                                        // 2^-14
  const float sub = ((subnormal ? af : 0.0f) * 65536.0f + kRoundMagic) - kRoundMagic;  // multiples of 2^-16
  const uint32_t normal = ((a + 0xfffffu + ((a >> 21) & 1u)) >> 21) - (112u << 2);     // rebias 127 -> 15
  uint32_t code = subnormal ? static_cast<uint32_t>(static_cast<int32_t>(sub)) : normal;
  code = a > 0x7f800000u ? nan_code : code;
  return static_cast<uint8_t>(code | sign);
}

float round_e4m3_clamped(float v) {
  return e4m3_value(v);
}

float round_e5m2_clamped(float v) {
  return e5m2_value(v);
}

void quantize_int_with_qparams(const float* w, int64_t rows, int64_t cols, const QuantArgs& args,
                               const float* scales, const int8_t* zero_points, int8_t* codes,
                               ComputeDType dt) {
  check_int(args);
  const ScaleGrid g = make_scale_grid(args, rows, cols, "tensor");
  const float qmin = args.q_min(), qmax = args.q_max();
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    if (dt == ComputeDType::BF16) {
      quantize_int_rows<true>(w, g, qmin, qmax, scales, zero_points, codes, r0, r1);
    } else {
      quantize_int_rows<false>(w, g, qmin, qmax, scales, zero_points, codes, r0, r1);
    }
  });
}

void quantize_int(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, int8_t* codes,
                  float* scales, int8_t* zero_points, ComputeDType dt) {
  check_int(args);
  const ScaleGrid g = make_scale_grid(args, rows, cols, "tensor");
  std::vector<float> lo, hi;
  observe(w, g, dt, lo, hi);
  std::vector<int8_t> zp_storage;
  if (zero_points == nullptr && !args.symmetric) {
    zp_storage.resize(lo.size());
    zero_points = zp_storage.data();
  }
  calculate_qparams_ref(lo.data(), hi.data(), g.size(), args, dt, scales, zero_points);
  quantize_int_with_qparams(w, rows, cols, args, scales, args.symmetric ? nullptr : zero_points, codes, dt);
}

void dequantize_int(const int8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                    const float* scales, const int8_t* zero_points, float* out, ComputeDType dt) {
  const ScaleGrid g = make_scale_grid(args, rows, cols, "tensor");
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    if (dt == ComputeDType::BF16) {
      dequantize_int_rows<true>(codes, g, scales, zero_points, out, r0, r1);
    } else {
      dequantize_int_rows<false>(codes, g, scales, zero_points, out, r0, r1);
    }
  });
}

namespace {

void quantize_fp8_given(const float* w, const ScaleGrid& g, const QuantArgs& args, const float* scales,
                        uint8_t* codes, ComputeDType dt) {
  const float qmax = args.q_max();
  const bool e4m3 = args.float_format == FloatFormat::E4M3;
  for_rows(g.rows, g.cols, [&](int64_t r0, int64_t r1) {
    if (e4m3 && dt == ComputeDType::BF16) quantize_fp8_rows<true, true>(w, g, qmax, scales, codes, r0, r1);
    if (e4m3 && dt == ComputeDType::F32) quantize_fp8_rows<true, false>(w, g, qmax, scales, codes, r0, r1);
    if (!e4m3 && dt == ComputeDType::BF16) quantize_fp8_rows<false, true>(w, g, qmax, scales, codes, r0, r1);
    if (!e4m3 && dt == ComputeDType::F32) quantize_fp8_rows<false, false>(w, g, qmax, scales, codes, r0, r1);
  });
}

}  // namespace

void quantize_fp8(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, uint8_t* codes,
                  float* scales, ComputeDType dt) {
  check_fp8(args);
  if (!args.symmetric) fail("asymmetric fp8 quantization is not supported ({})", describe(args));
  const ScaleGrid g = make_scale_grid(args, rows, cols, "tensor");
  std::vector<float> lo, hi;
  observe(w, g, dt, lo, hi);
  calculate_qparams_ref(lo.data(), hi.data(), g.size(), args, dt, scales, nullptr);
  quantize_fp8_given(w, g, args, scales, codes, dt);
}

void dequantize_fp8(const uint8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                    const float* scales, float* out, ComputeDType dt) {
  check_fp8(args);
  const ScaleGrid g = make_scale_grid(args, rows, cols, "tensor");
  const auto& table = fp8_table(args.float_format);
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    if (dt == ComputeDType::BF16) {
      dequantize_fp8_rows<true>(codes, g, table, scales, out, r0, r1);
    } else {
      dequantize_fp8_rows<false>(codes, g, table, scales, out, r0, r1);
    }
  });
}

void fake_quantize(const float* x, int64_t rows, int64_t cols, const QuantArgs& args, const float* scales,
                   const int8_t* zero_points, float* out, ComputeDType dt) {
  const ScaleGrid g = make_scale_grid(args, rows, cols, "tensor");
  // Row by row through a small buffer, so that x and out may alias and memory stays flat.
  for_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    std::vector<int8_t> q(args.type == QuantType::Int ? static_cast<size_t>(cols) : 0);
    for (int64_t r = r0; r < r1; ++r) {
      // A one-row view of the grid: the row's scales start at index(r, 0).
      ScaleGrid row = g;
      row.rows = 1;
      row.scale_rows = 1;
      const int64_t first = g.index(r, 0);
      if (args.type == QuantType::Int) {
        const float qmin = args.q_min(), qmax = args.q_max();
        const int8_t* zp = zero_points != nullptr ? zero_points + first : nullptr;
        if (dt == ComputeDType::BF16) {
          quantize_int_rows<true>(x + r * cols, row, qmin, qmax, scales + first, zp, q.data(), 0, 1);
          dequantize_int_rows<true>(q.data(), row, scales + first, zp, out + r * cols, 0, 1);
        } else {
          quantize_int_rows<false>(x + r * cols, row, qmin, qmax, scales + first, zp, q.data(), 0, 1);
          dequantize_int_rows<false>(q.data(), row, scales + first, zp, out + r * cols, 0, 1);
        }
      } else {
        const float qmax = args.q_max();
        const bool e4m3 = args.float_format == FloatFormat::E4M3;
        const float* xr = x + r * cols;
        float* o = out + r * cols;
        fake_quantize_fp8_row(xr, row, qmax, scales + first, e4m3, dt == ComputeDType::BF16, o);
      }
    }
  });
}

void fake_quantize_dynamic(const float* x, int64_t rows, int64_t cols, const QuantArgs& args, float* out,
                           ComputeDType dt) {
  if (args.type == QuantType::Float && !args.symmetric) fail("asymmetric fp8 quantization is not supported");
  const ScaleGrid g = make_scale_grid(args, rows, cols, "activation");
  std::vector<float> lo, hi;
  observe(x, g, dt, lo, hi);
  std::vector<float> scales(lo.size());
  std::vector<int8_t> zps(lo.size());
  calculate_qparams_ref(lo.data(), hi.data(), g.size(), args, dt, scales.data(), zps.data());
  fake_quantize(x, rows, cols, args, scales.data(), args.symmetric ? nullptr : zps.data(), out, dt);
}

}  // namespace lowbit

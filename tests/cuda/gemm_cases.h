// Test data for the CUDA kernel library: random weights quantized by the scalar reference quantizers of
// quant/ (the CPU reference the kernels are measured against), packed into the compressed-tensors layout with
// quant/pack.h, random fp16/bf16 activations, and the double-precision reference product.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cuda/layout.h"
#include "quant/pack.h"
#include "quant/quantizer_ref.h"

namespace lowbit::cuda::testing {

// A weight-only quantized matrix with everything the tests need, from one seed.
struct WeightOnlyCase {
  int bits = 4;
  int64_t n = 0, k = 0;
  int64_t group = 128;  // <= 0: per-channel
  bool symmetric = true;

  std::string name() const {
    return "w" + std::to_string(bits) + (group > 0 ? "g" + std::to_string(group) : std::string("ch")) +
           (symmetric ? "sym" : "asym") + "_n" + std::to_string(n) + "_k" + std::to_string(k);
  }
};

struct QuantizedWeight {
  QuantArgs args;
  int64_t groups = 0;
  std::vector<int8_t> codes;          // [n, k]
  std::vector<float> scales;          // [n, groups]
  std::vector<int8_t> zeros;          // [n, groups], all zero when symmetric
  std::vector<int32_t> packed;        // compressed-tensors weight_packed
  std::vector<int32_t> zeros_packed;  // compressed-tensors weight_zero_point (asym only)
  std::vector<float> dequant;         // [n, k], the reference dequantization (fp32)

  PackedQuantWeight view(const WeightOnlyCase& c) const {
    PackedQuantWeight w;
    w.bits = c.bits;
    w.n = c.n;
    w.k = c.k;
    w.group_size = c.group > 0 ? c.group : -1;
    w.weight_packed = packed.data();
    w.weight_scale = scales.data();
    w.weight_zero_point = c.symmetric ? nullptr : zeros_packed.data();
    return w;
  }
};

inline std::vector<float> random_normal(size_t count, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(count);
  for (float& f : v) f = dist(rng);
  return v;
}

// Quantizes a random N x K matrix with the reference RTN quantizer. Scales are computed in bf16 mode so that
// they are exactly representable in both fp16 and bf16 (as in a real bf16 checkpoint); the reference
// dequantization is then done in fp32.
inline QuantizedWeight make_weight_only(const WeightOnlyCase& c, uint32_t seed) {
  QuantizedWeight q;
  q.args.num_bits = c.bits;
  q.args.type = QuantType::Int;
  q.args.symmetric = c.symmetric;
  q.args.group_size = c.group > 0 ? static_cast<int>(c.group) : -1;
  q.args.strategy = c.group > 0 ? QuantStrategy::Group : QuantStrategy::Channel;
  validate_quant_args(q.args, true, "test weight");
  q.groups = c.group > 0 ? c.k / c.group : 1;

  // Asymmetric weights get a per-row offset so that the zero points are not all zero.
  std::vector<float> w = random_normal(static_cast<size_t>(c.n * c.k), seed, 0.05f);
  if (!c.symmetric)
    for (int64_t r = 0; r < c.n; ++r)
      for (int64_t i = 0; i < c.k; ++i)
        w[static_cast<size_t>(r * c.k + i)] += 0.02f * static_cast<float>(r % 5);

  const auto cells = static_cast<size_t>(c.n * q.groups);
  q.codes.resize(static_cast<size_t>(c.n * c.k));
  q.scales.resize(cells);
  q.zeros.assign(cells, 0);
  quantize_int_ref(w.data(), c.n, c.k, q.args, q.codes.data(), q.scales.data(),
                   c.symmetric ? nullptr : q.zeros.data(), ComputeDType::BF16);
  q.packed = pack_int_rows(q.codes.data(), c.n, c.k, c.bits);
  if (!c.symmetric) q.zeros_packed = pack_int_cols(q.zeros.data(), c.n, q.groups, c.bits);
  q.dequant.resize(static_cast<size_t>(c.n * c.k));
  dequantize_int_ref(q.codes.data(), c.n, c.k, q.args, q.scales.data(),
                     c.symmetric ? nullptr : q.zeros.data(), q.dequant.data(), ComputeDType::F32);
  return q;
}

// Random activations as fp16/bf16 bit patterns, and their exact fp32 values.
struct Activations {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
inline Activations make_activations(int64_t m, int64_t k, ActDType dtype, uint32_t seed) {
  Activations a;
  a.values = random_normal(static_cast<size_t>(m * k), seed);
  a.bits.resize(a.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) {
    a.bits[i] = f32_to_act(a.values[i], dtype);
    a.values[i] = act_to_f32(a.bits[i], dtype);
  }
  return a;
}

// y[m, n] = x[m, k] · w[n, k]ᵀ in double.
inline std::vector<double> reference_product(const std::vector<float>& x, const std::vector<float>& w,
                                             int64_t m, int64_t n, int64_t k) {
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t t = 0; t < k; ++t)
        acc += static_cast<double>(x[static_cast<size_t>(i * k + t)]) * w[static_cast<size_t>(j * k + t)];
      y[static_cast<size_t>(i * n + j)] = acc;
    }
  return y;
}

// ‖y − ref‖ / ‖ref‖ over all elements; +inf when any output is not finite (a poisoned element left behind).
inline double relative_error(const std::vector<uint16_t>& y, ActDType dtype, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double v = act_to_f32(y[i], dtype);
    if (!std::isfinite(v)) return INFINITY;
    num += (v - ref[i]) * (v - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

}  // namespace lowbit::cuda::testing

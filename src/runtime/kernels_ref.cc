// Scalar reference kernels: plain loops, double accumulation where it matters. Slow on purpose; the
// fast kernels in kernels.cc are tested against these.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "runtime/kernels.h"

namespace lowbit::kernels {

void weight_row_to_f32(const DenseWeight& w, int64_t row, float* out) {
  const auto* base =
      static_cast<const std::byte*>(w.data) + static_cast<size_t>(row * w.cols) * dtype_size(w.dtype);
  convert_to_f32(w.dtype, base, out, static_cast<size_t>(w.cols));
}

void linear_ref(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t n = 0; n < w.rows; ++n) {
    weight_row_to_f32(w, n, row.data());
    for (int64_t i = 0; i < m; ++i) {
      double acc = bias ? bias[n] : 0.0;
      const float* xi = x + i * w.cols;
      for (int64_t k = 0; k < w.cols; ++k) acc += static_cast<double>(xi[k]) * row[static_cast<size_t>(k)];
      y[i * w.rows + n] = static_cast<float>(acc);
    }
  }
}

void rmsnorm_ref(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = xr[i] * inv * weight[i];
  }
}

void silu_mul_ref(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void round_bf16_ref(const float* x, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

void softmax_ref(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

void scaled_row_dots_ref(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                         float scale, float* scores) {
  const DenseWeight stored{dtype, rows, n, d};
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      weight_row_to_f32(stored, j, row.data());
      double acc = 0.0;
      for (int64_t k = 0; k < d; ++k) acc += static_cast<double>(q[i * d + k]) * row[static_cast<size_t>(k)];
      scores[i * n + j] = static_cast<float>(scale * acc);
    }
  }
}

void weighted_row_sum_ref(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                          float* out) {
  const DenseWeight stored{dtype, rows, n, d};
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t i = 0; i < m; ++i) {
    std::vector<double> acc(static_cast<size_t>(d), 0.0);
    for (int64_t j = 0; j < n; ++j) {
      weight_row_to_f32(stored, j, row.data());
      for (int64_t k = 0; k < d; ++k)
        acc[static_cast<size_t>(k)] += static_cast<double>(p[i * n + j]) * row[static_cast<size_t>(k)];
    }
    for (int64_t k = 0; k < d; ++k) out[i * d + k] = static_cast<float>(acc[static_cast<size_t>(k)]);
  }
}

}  // namespace lowbit::kernels

// Fast element-wise and vector kernels: thin entry points over the Highway versions in kernels_hwy.cc.
// linear() lives in kernels_linear.cc. Each is tested against its _ref twin in tests/runtime.
#include "runtime/kernels.h"

#include "runtime/kernels_hwy.h"

namespace lowbit::kernels {

void convert_rows_to_f32(const DenseWeight& w, int64_t row_begin, int64_t rows, float* out) {
  const auto* base =
      static_cast<const std::byte*>(w.data) + static_cast<size_t>(row_begin * w.cols) * dtype_size(w.dtype);
  simd::convert_f32(w.dtype, base, out, static_cast<size_t>(rows * w.cols));
}
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out) {
  simd::rmsnorm(x, weight, rows, dim, eps, out);
}
void silu_mul(const float* gate, const float* up, float* out, size_t n) {
  simd::silu_mul(gate, up, out, n);
}
void softmax(float* x, size_t n) {
  simd::softmax(x, n);
}
void scaled_row_dots(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                     float scale, float* scores) {
  simd::row_dots(q, m, rows, dtype, n, d, scale, scores);
}
void weighted_row_sum(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                      float* out) {
  simd::weighted_row_sum(p, m, rows, dtype, n, d, out);
}
float dot(const float* a, const float* b, size_t n) {
  return simd::dot(a, b, n);
}
float sum_four_streams(const float* a, size_t n, bool non_temporal) {
  return simd::sum_four_streams(a, n, non_temporal);
}
double fma_chain_flops(int64_t trips) {
  return simd::fma_chain_flops(trips);
}
void axpy(float a, const float* x, float* y, size_t n) {
  simd::axpy(a, x, y, n);
}
void add_inplace(float* y, const float* x, size_t n) {
  simd::add_inplace(y, x, n);
}

}  // namespace lowbit::kernels

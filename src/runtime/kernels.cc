// Fast element-wise and vector kernels: thin entry points over the Highway versions in kernels_hwy.cc.
// linear() lives in kernels_linear.cc. Each is tested against its _ref twin in tests/runtime.
#include "runtime/kernels.h"

#include <algorithm>

#include "runtime/kernels_hwy.h"
#include "util/thread_pool.h"

namespace lowbit::kernels {
namespace {

// Element-wise kernels split n over the global pool in chunks of this many elements (inline below it, and
// inside pool jobs). A multiple of every vector width, so each element gets the same arithmetic however
// the range is split; large enough (256 KiB of fp32) that waking a worker pays.
constexpr size_t kElementwiseGrain = size_t{1} << 16;

template <typename F>
void elementwise(size_t n, F&& f) {
  if (n <= kElementwiseGrain) return f(0, n);  // decode-sized calls skip the pool entirely
  global_pool().parallel_for(n, kElementwiseGrain, [&](size_t begin, size_t end) { f(begin, end - begin); });
}

}  // namespace

void convert_rows_to_f32(const DenseWeight& w, int64_t row_begin, int64_t rows, float* out) {
  const auto* base =
      static_cast<const std::byte*>(w.data) + static_cast<size_t>(row_begin * w.cols) * dtype_size(w.dtype);
  simd::convert_f32(w.dtype, base, out, static_cast<size_t>(rows * w.cols));
}
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out) {
  const auto grain = static_cast<size_t>(
      std::max<int64_t>(1, static_cast<int64_t>(kElementwiseGrain) / std::max<int64_t>(dim, 1)));
  if (rows <= static_cast<int64_t>(grain)) return simd::rmsnorm(x, weight, rows, dim, eps, out);
  global_pool().parallel_for(static_cast<size_t>(rows), grain, [&](size_t begin, size_t end) {
    const auto r0 = static_cast<int64_t>(begin);
    simd::rmsnorm(x + r0 * dim, weight, static_cast<int64_t>(end) - r0, dim, eps, out + r0 * dim);
  });
}
void silu_mul(const float* gate, const float* up, float* out, size_t n) {
  elementwise(n, [&](size_t i, size_t count) { simd::silu_mul(gate + i, up + i, out + i, count); });
}
void softmax(float* x, size_t n) {
  simd::softmax(x, n);
}
void scaled_row_dots(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                     float scale, float* scores, const void* next_rows) {
  simd::row_dots(q, m, rows, dtype, n, d, scale, scores, next_rows);
}
void weighted_row_sum(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                      float* out, const void* next_rows) {
  simd::weighted_row_sum(p, m, rows, dtype, n, d, out, next_rows);
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
  elementwise(n, [&](size_t i, size_t count) { simd::add_inplace(y + i, x + i, count); });
}
void round_bf16(const float* x, float* out, size_t n) {
  elementwise(n, [&](size_t i, size_t count) { simd::round_bf16(x + i, out + i, count); });
}
void to_bf16(const float* x, uint16_t* out, size_t n) {
  elementwise(n, [&](size_t i, size_t count) { simd::to_bf16(x + i, out + i, count); });
}
void from_bf16(const uint16_t* x, float* out, size_t n) {
  elementwise(n, [&](size_t i, size_t count) { simd::convert_f32(DType::BF16, x + i, out + i, count); });
}

}  // namespace lowbit::kernels

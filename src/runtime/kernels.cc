// Fast kernels. PLACEHOLDER: forwards to the scalar references until the SIMD/BLAS versions land.
#include "runtime/kernels.h"

namespace lowbit::kernels {

void linear(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y) {
  linear_ref(x, m, w, bias, y);
}
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out) {
  rmsnorm_ref(x, weight, rows, dim, eps, out);
}
void silu_mul(const float* gate, const float* up, float* out, size_t n) { silu_mul_ref(gate, up, out, n); }
void softmax(float* x, size_t n) { softmax_ref(x, n); }
float dot(const float* a, const float* b, size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
void axpy(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
void add_inplace(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace lowbit::kernels

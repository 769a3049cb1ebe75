// Single-threaded Highway SIMD building blocks of the fast kernels (kernels_hwy.cc). Each call dispatches
// at runtime to the best instruction set the CPU supports (SSE4 / AVX2 / AVX-512 ...); the library is
// built without -march=native. Threading and the choice between paths live in kernels.cc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/kernels.h"

namespace lowbit::kernels::simd {

// y[i * ldy + n] = sum_k x[i * K + k] * W[n][k] (+ bias[n]) for i in [0, m), n in [n_begin, n_end).
// W must be F32, BF16 or F16; bf16/f16 are widened to fp32 in registers. Several W rows and up to four
// x rows share each weight load, so every weight byte is read from memory once per call.
void gemv_rows(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y, int64_t ldy,
               int64_t n_begin, int64_t n_end);

// out[0 .. count) = fp32 of `count` consecutive elements at src (F32, BF16 or F16).
void convert_f32(DType dtype, const void* src, float* out, size_t count);

// scores[i][j] = scale * dot(q[i], row j) over n rows of d values (F32, BF16 or F16), for i < m (q: [m][d],
// scores: [m][n]); fp32 sums, lanes reduced the same way whatever m is.
void row_dots(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d, float scale,
              float* scores, const void* next_rows);
// out[i][0 .. d) = sum_j p[i][j] * row j over n rows of d values (F32, BF16 or F16), for i < m (p: [m][n],
// out: [m][d]); fp32 sums in row order.
void weighted_row_sum(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                      float* out, const void* next_rows);

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out);
void silu_mul(const float* gate, const float* up, float* out, size_t n);
void softmax(float* x, size_t n);
float dot(const float* a, const float* b, size_t n);
float sum_four_streams(const float* a, size_t n, bool non_temporal);
double fma_chain_flops(int64_t trips);
void axpy(float a, const float* x, float* y, size_t n);
void add_inplace(float* y, const float* x, size_t n);
void round_bf16(const float* x, float* out, size_t n);
void to_bf16(const float* x, uint16_t* out, size_t n);
// *lo, *hi = the smallest and largest of x[0 .. n) (+inf and -inf when n == 0). Returns whether x holds a
// NaN, in which case *lo and *hi are meaningless.
bool min_max(const float* x, size_t n, float* lo, float* hi);
// FP8 fake quantization with one scale, as quant/quantizer.cc rounds FP8_DYNAMIC activations, bit for bit:
// out = r(fp8(clamp(r(r(x) / scale), -qmax, qmax)) * scale), fp8 = the nearest e4m3 (`e4m3`) or e5m2 value
// (ties to even, subnormals included), r = bf16 rounding to nearest even when `bf16` (NaN unchanged), else
// none; NaN stays NaN. x and out may be the same array.
void fake_quantize_fp8(const float* x, size_t n, float scale, float qmax, bool e4m3, bool bf16, float* out);
// x[i] = exp(x[i]) in double, within 1 ulp of std::exp (Highway's Exp) for x <= 706; -inf gives 0, NaN stays
// NaN.
void exp_f64(double* x, size_t n);
// Whether some byte b of p[0 .. n) has (b & mask) == mask (fp8 codes: the NaN / infinity patterns).
bool any_byte_with_bits(const uint8_t* p, size_t n, uint8_t mask);
// For each chunk of 32 bytes of p[0 .. n) (the last one may be shorter): bit q of bits (64 chunks per word)
// is set when some byte b of chunk q has (b & mask) == 0 (E4M3 codes with a zero exponent field); bits of
// other chunks are left as they are.
void chunks_with_masked_zero(const uint8_t* p, size_t n, uint8_t mask, uint64_t* bits);
// The index of the first largest value of x[0 .. n) (n > 0; +0 and -0 count as equal), or -1 when x holds a
// NaN (whose order the caller defines).
int64_t first_max(const float* x, size_t n);

// Name of the instruction set the dispatcher picked on this CPU (for benchmark/doc output).
const char* target_name();

}  // namespace lowbit::kernels::simd

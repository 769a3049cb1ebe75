// Compute kernels of the CPU engine. Every kernel has a scalar `_ref` twin (kernels_ref.cc) written for
// clarity; the fast versions (Highway SIMD with runtime dispatch, OpenBLAS sgemm) are tested against them
// with stated error bounds. Activations are fp32; weights stay in their stored dtype and are converted in
// registers or in small tiles, never as a whole-matrix fp32 copy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/dtype.h"

namespace lowbit::kernels {

// A dense weight matrix: `rows` output features x `cols` input features, row-major, as stored
// (F32, BF16 or F16). Hugging Face nn.Linear weights are exactly this ([out, in]).
struct DenseWeight {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// y[m x N] = x[m x K] * W^T (+ bias[N] when bias != nullptr), fp32 accumulation, using the global thread
// pool. x and y are row-major with leading dimensions K and N.
void linear(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y);
void linear_ref(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y);

// Copies row `row` of w into out[cols] as fp32 (embedding lookup).
void weight_row_to_f32(const DenseWeight& w, int64_t row, float* out);
// Fast (SIMD) version for `rows` consecutive rows starting at row_begin: out[rows x cols] fp32.
void convert_rows_to_f32(const DenseWeight& w, int64_t row_begin, int64_t rows, float* out);

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, for each of `rows` rows of `dim` elements.
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out);
void rmsnorm_ref(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out);

// out[i] = silu(gate[i]) * up[i]  (the Llama MLP activation).
void silu_mul(const float* gate, const float* up, float* out, size_t n);
void silu_mul_ref(const float* gate, const float* up, float* out, size_t n);

// In-place numerically stable softmax over n elements.
void softmax(float* x, size_t n);
void softmax_ref(float* x, size_t n);

// Decode attention's two products over one KV head's cached rows, for the m query heads that share it (GQA):
// n rows of d values, stored F32, BF16 or F16 (runtime/kv_cache.h), read in place, each row widened once for
// all m heads. q: [m][d], scores: [m][n], p: [m][n], out: [m][d].
//   scores[i][j] = scale * dot(q[i], row j);   out[i] = sum_j p[i][j] row j.
// One call per KV head and product: per-row calls cost as much as the arithmetic at head_dim 64.
// next_rows (optional): n rows of the same shape that the caller reads next (the head's values, the next
// head's keys), prefetched along with the rows, so that both come from DRAM at once and the next product
// reads them from the cache.
void scaled_row_dots(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                     float scale, float* scores, const void* next_rows = nullptr);
void scaled_row_dots_ref(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                         float scale, float* scores);
void weighted_row_sum(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                      float* out, const void* next_rows = nullptr);
void weighted_row_sum_ref(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                          float* out);

// Small vector helpers used by attention.
float dot(const float* a, const float* b, size_t n);
void axpy(float a, const float* x, float* y, size_t n);  // y += a * x
void add_inplace(float* y, const float* x, size_t n);    // y += x

// bf16 rounding of n values (round to nearest even, NaN kept NaN: io/dtype.h f32_to_bf16): as fp32
// (out may be x), or as bf16 bits; and bf16 bits widened back to fp32. The calibration passes round every
// activation a bf16 model's linears see; these run on the global pool when n is large.
void round_bf16(const float* x, float* out, size_t n);
void round_bf16_ref(const float* x, float* out, size_t n);
void to_bf16(const float* x, uint16_t* out, size_t n);
void from_bf16(const uint16_t* x, float* out, size_t n);
// Sum of a[0 .. n), its four quarters read side by side as four sequential streams (with software
// prefetch), as the decode products read their weight rows: the read-bandwidth probe of `lowbit bench` and
// kernels_bench. One stream per core draws less from DRAM on the Zen 3 VM (docs/PERFORMANCE.md, session 10).
// non_temporal: prefetch with prefetchnta, as the packed decode products do on AMD CPUs (row_streams.h);
// else prefetcht0, as they do elsewhere and as the bf16/fp32 ones do everywhere.
float sum_four_streams(const float* a, size_t n, bool non_temporal = false);
// Runs `trips` steps of ten independent fused multiply-add chains on the widest vectors the dispatcher picked
// (no memory traffic) and returns the flops done, 2 per lane per multiply-add: timed, the core's fp32 FMA
// peak, the ceiling `lowbit bench` holds prefill against. (On a target without FMA, a multiply and an add.)
double fma_chain_flops(int64_t trips);

}  // namespace lowbit::kernels

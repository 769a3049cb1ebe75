// The two implementations behind kernels::linear, exposed so tests and benchmarks can run each one at any
// m. linear() picks between them by m (see kLinearGemmMinRows in kernels_linear.cc).
#pragma once

#include <cstdint>

#include "runtime/kernels.h"

namespace lowbit::kernels {

// Decode path: Highway matrix-vector kernel, parallel over output features N with the global pool.
// Reads every weight byte once; memory-bound for small m.
void linear_gemv(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y);

// Prefill path: tiles of W rows widened to fp32 in a thread-local buffer, each tile multiplied with
// OpenBLAS cblas_sgemm. Compute-bound for large m.
void linear_tiled_sgemm(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y);

// The smallest m for which linear() takes the sgemm path (measured; see kernels_linear.cc).
int64_t linear_gemm_min_rows();

// Rows per sgemm tile when `threads` pool threads share N rows in tiles of at most max_rows (taken down to a
// multiple of 16, at least 16): each thread's share cut into as few equal tiles as that allows, so every
// thread gets the same work. Used by the bf16 and the packed prefill paths.
int64_t equal_tile_rows(int64_t N, int64_t max_rows, int threads);

}  // namespace lowbit::kernels

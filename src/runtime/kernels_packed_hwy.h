// Single-threaded Highway building blocks of kernels_packed.cc (runtime dispatch, kernels_packed_hwy.cc).
#pragma once

#include <cstdint>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels::simd {

struct PackedGemvArgs {
  const float* x = nullptr;  // [m][K]
  int64_t m = 0;
  const PackedMatrix* w = nullptr;
  // Int4 only: x permuted into the decoder's lane order for codes [0, kfull) (kfull = K rounded down to
  // int4_block_codes()), [m][kfull]; codes from kfull on read x directly.
  const float* xp = nullptr;
  int64_t kfull = 0;
  const float* xsum = nullptr;  // [m][groups]: sums of x per group, when w has zero terms
  const float* bias = nullptr;
  float* y = nullptr;  // [m][N]
};

// y rows [n_begin, n_end) of every x row.
void packed_gemv_rows(const PackedGemvArgs& args, int64_t n_begin, int64_t n_end);

struct Int8GemmArgs {
  const Int8Activations* x = nullptr;
  const PackedMatrix* w = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
};
void int8_gemm_rows(const Int8GemmArgs& args, int64_t n_begin, int64_t n_end);

// kernels::dequantize_rows, vectorized.
void dequantize_rows(const PackedMatrix& w, int64_t row_begin, int64_t rows, float* out);

// Codes per int4 word vector of the dispatched target (8 x lanes): the block of the x permutation.
int64_t int4_block_codes();

}  // namespace lowbit::kernels::simd

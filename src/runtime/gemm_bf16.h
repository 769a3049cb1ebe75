// bf16 matrix products with fp32 accumulation, for the calibration pipeline's forward passes and Hessians.
//
// Numerics: both operands are rounded to bf16 (round to nearest even), each product is exact in fp32 and
// the products are summed in fp32. That is what a bf16 model computes in torch (llm-compressor calibrates
// the model in its stored dtype), and what the AMX tile instruction TDPBF16PS computes. Results differ
// from the scalar references (double sums) only by fp32 summation order, so for K terms
// |y - y_ref| <= (K + 2) * 2^-24 * sum |terms| in any order; the tests check that bound.
//
// Kernels: Intel AMX tiles where the CPU has them (gemm_bf16_amx.h), otherwise the same bf16-rounded values
// through the fp32 engine (kernels::linear / OpenBLAS sgemm): the same numbers up to summation order, at
// fp32 speed. LOWBIT_NO_AMX=1 in the environment forces the fallback (tests run both).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "util/aligned_vector.h"

namespace lowbit::kernels {

// True when the AMX path is in use (CPU support, kernel permission, and LOWBIT_NO_AMX unset).
bool bf16_gemm_uses_amx();
// Turns the AMX path on or off (on only where usable) for weights packed and products run from now on;
// returns the previous setting. For tests and benchmarks that compare both paths.
bool set_bf16_gemm_amx(bool enable);

struct Bf16Product;

// A weight W [rows x cols] (rows = output features) rounded to bf16 and laid out for the kernel in use:
// AMX VNNI panels (see gemm_bf16_amx.h), or row-major bf16 for the fallback.
class Bf16Weight {
 public:
  Bf16Weight() = default;
  Bf16Weight(const float* w, int64_t rows, int64_t cols);
  // Packs new values, reusing this weight's storage (AWQ's grid search repacks its candidates thousands of
  // times; fresh buffers would be page-faulted in every time).
  void assign(const float* w, int64_t rows, int64_t cols);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  bool empty() const { return data_.empty(); }

 private:
  friend void linear_bf16_shared_input(const float* x, int64_t m, std::span<const Bf16Product> products);
  int64_t rows_ = 0, cols_ = 0;
  int64_t depth_ = 0;  // cols padded to a multiple of 32 (AMX layout)
  bool amx_ = false;
  AlignedVector<uint16_t> data_;  // cache-line aligned: AMX tile rows (util/aligned_vector.h)
};

// y[m x rows] = bf16(x)[m x cols] * bf16(W)^T (+ bias[rows] in fp32), on the global thread pool.
void linear_bf16(const float* x, int64_t m, const Bf16Weight& w, const float* bias, float* y);
// One product of linear_bf16_shared_input: y = x * bf16(W)^T (+ bias).
struct Bf16Product {
  const Bf16Weight* weight = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
};
// Several weights with the same number of columns on one input (q, k, v; gate, up): the same results as
// linear_bf16 on each, with x rounded and packed for the kernel once instead of once per weight.
void linear_bf16_shared_input(const float* x, int64_t m, std::span<const Bf16Product> products);
// Scalar reference: the same rounding, sums in double.
void linear_bf16_ref(const float* x, int64_t m, const float* w, int64_t rows, int64_t cols, const float* bias,
                     float* y);

// The Gram matrix of one block of rows: sum[i * cols + j] += sum_r bf16(x[r][i]) * bf16(x[r][j]) for the
// lower triangle j <= i (the upper triangle is not touched), each block product summed in fp32 and added
// into the double accumulator. x is [rows x cols] row-major. On the global thread pool.
void gram_bf16_lower(const float* x, int64_t rows, int64_t cols, double* sum);
void gram_bf16_lower_ref(const float* x, int64_t rows, int64_t cols, double* sum);
// A running Gram matrix in bf16 arithmetic for many small blocks of rows (one calibration sample at a
// time): on AMX each block is multiplied straight into an fp32 accumulator held in the tiles' layout (no
// intermediate copies), which is added into the caller's double lower triangle every `flush_rows` rows,
// so fp32 rounding grows with at most that many terms. Without AMX, add() is gram_bf16_lower.
class Bf16Gram {
 public:
  explicit Bf16Gram(int64_t cols, int64_t flush_rows = 8192);
  // sum (cols x cols, lower triangle) += the block's products, possibly deferred until flush().
  void add(const float* x, int64_t rows, double* sum);
  void flush(double* sum);
  // True when blocks go straight into the AMX tiles' fp32 accumulator; false on the fallback path, whose
  // sgemm runs faster on larger blocks (callers may batch rows for it).
  bool accumulates_in_tiles() const { return amx_; }

 private:
  int64_t cols_, padded_, flush_rows_;
  int64_t pending_rows_ = 0;
  bool amx_ = false;
  AlignedVector<float> acc_;  // padded x padded, lower block triangle valid
};

// The same Gram product on the fp32 values as given (no rounding): OpenBLAS ssyrk / sgemm on tiles of the
// lower triangle, spread over the pool.
void gram_f32_lower(const float* x, int64_t rows, int64_t cols, double* sum);

}  // namespace lowbit::kernels

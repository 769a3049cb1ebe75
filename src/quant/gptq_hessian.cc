// HessianAccumulator: sum x x^T over calibration rows (see quant/gptq.h).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "quant/gptq.h"
#include "runtime/gemm_bf16.h"
#include "util/error.h"

namespace lowbit {

HessianAccumulator::HessianAccumulator(int64_t cols, bool bf16_inputs)
    : cols_(cols), bf16_inputs_(bf16_inputs) {
  if (cols <= 0) fail("HessianAccumulator: invalid number of columns {}", cols);
  sum_.assign(static_cast<size_t>(cols * cols), 0.0);
  if (bf16_inputs_) gram_ = std::make_unique<kernels::Bf16Gram>(cols);
}

void HessianAccumulator::add(const float* x, int64_t rows) {
  if (rows < 0) fail("HessianAccumulator::add: invalid number of rows {}", rows);
  if (rows > 0 && x == nullptr) fail("HessianAccumulator::add: null input with {} rows", rows);
  const int64_t n = cols_;
  // Non-finite values have all exponent bits set; OR-ing that test over the block vectorizes, and the
  // offending element is searched only when there is one.
  const auto* bits = reinterpret_cast<const uint32_t*>(x);
  uint32_t any = 0;
  for (int64_t i = 0; i < rows * n; ++i) any |= static_cast<uint32_t>((bits[i] & 0x7F800000u) == 0x7F800000u);
  if (any != 0) {
    for (int64_t i = 0; i < rows * n; ++i) {
      if (!std::isfinite(x[i])) {
        fail("HessianAccumulator::add: non-finite input {} at row {}, column {} (sample {}, {} x {} rows)",
             x[i], i / n, i % n, samples_, rows, n);
      }
    }
  }
  ++samples_;
  rows_seen_ += rows;
  if (bf16_inputs_)
    gram_->add(x, rows, sum_.data());
  else
    kernels::gram_f32_lower(x, rows, n, sum_.data());
}

std::vector<double> HessianAccumulator::hessian() const {
  if (samples_ == 0) fail("HessianAccumulator: no calibration sample was added ({} columns)", cols_);
  if (gram_) gram_->flush(sum_.data());
  const int64_t n = cols_;
  const double norm = 2.0 / static_cast<double>(samples_);
  std::vector<double> h(static_cast<size_t>(n * n));
  // Mirrored in 64 x 64 blocks: a column-order write over a 2048-wide fp64 matrix misses cache every time.
  constexpr int64_t kBlock = 64;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock)
    for (int64_t j0 = 0; j0 <= i0; j0 += kBlock)
      for (int64_t i = i0; i < std::min(n, i0 + kBlock); ++i)
        for (int64_t j = j0; j < std::min(i + 1, j0 + kBlock); ++j) {
          const double v = sum_[static_cast<size_t>(i * n + j)] * norm;
          h[static_cast<size_t>(i * n + j)] = v;
          h[static_cast<size_t>(j * n + i)] = v;
        }
  return h;
}

}  // namespace lowbit

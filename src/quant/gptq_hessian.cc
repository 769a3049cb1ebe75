// HessianAccumulator: sum x x^T over calibration rows, tiled over the global pool (see quant/gptq.h).
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "quant/gptq.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {
namespace {

// Tile edge of the output blocks: large enough for sgemm to run near peak, small enough that a
// 768-wide Hessian still splits into several tiles for the pool.
constexpr int64_t kTile = 192;

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t cols) : cols_(cols) {
  if (cols <= 0) fail("HessianAccumulator: invalid number of columns {}", cols);
  sum_.assign(static_cast<size_t>(cols * cols), 0.0);
}

void HessianAccumulator::add(const float* x, int64_t rows) {
  if (rows < 0) fail("HessianAccumulator::add: invalid number of rows {}", rows);
  if (rows > 0 && x == nullptr) fail("HessianAccumulator::add: null input with {} rows", rows);
  const int64_t n = cols_;
  for (int64_t i = 0; i < rows * n; ++i) {
    if (!std::isfinite(x[i])) {
      fail("HessianAccumulator::add: non-finite input {} at row {}, column {} (sample {}, {} x {} rows)",
           x[i], i / n, i % n, samples_, rows, n);
    }
  }
  ++samples_;
  rows_seen_ += rows;
  if (rows == 0) return;
  // OpenBLAS runs single-threaded inside pool jobs; lowbit's runtime pins it the same way.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);

  // Lower-triangle tiles (ti >= tj), each computed independently in fp32 and added into the fp64 sum.
  const int64_t tiles = (n + kTile - 1) / kTile;
  std::vector<std::pair<int64_t, int64_t>> work;
  for (int64_t ti = 0; ti < tiles; ++ti) {
    for (int64_t tj = 0; tj <= ti; ++tj) work.emplace_back(ti, tj);
  }
  global_pool().parallel_for(work.size(), 1, [&](size_t begin, size_t end) {
    std::vector<float> tile(static_cast<size_t>(kTile * kTile));
    for (size_t k = begin; k < end; ++k) {
      const int64_t r0 = work[k].first * kTile, c0 = work[k].second * kTile;
      const int64_t nr = std::min(kTile, n - r0), nc = std::min(kTile, n - c0);
      const auto blas_rows = static_cast<blasint>(rows), blas_n = static_cast<blasint>(n);
      if (r0 == c0) {
        // tile = X[:, r0:r0+nr]^T X[:, r0:r0+nr], lower triangle.
        cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, static_cast<blasint>(nr), blas_rows, 1.0f, x + r0,
                    blas_n, 0.0f, tile.data(), static_cast<blasint>(kTile));
      } else {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(nr),
                    static_cast<blasint>(nc), blas_rows, 1.0f, x + r0, blas_n, x + c0, blas_n, 0.0f,
                    tile.data(), static_cast<blasint>(kTile));
      }
      for (int64_t i = 0; i < nr; ++i) {
        double* dst = sum_.data() + (r0 + i) * n + c0;
        const float* src = tile.data() + i * kTile;
        const int64_t width = r0 == c0 ? i + 1 : nc;
        for (int64_t j = 0; j < width; ++j) dst[j] += static_cast<double>(src[j]);
      }
    }
  });
}

std::vector<double> HessianAccumulator::hessian() const {
  if (samples_ == 0) fail("HessianAccumulator: no calibration sample was added ({} columns)", cols_);
  const int64_t n = cols_;
  const double norm = 2.0 / static_cast<double>(samples_);
  std::vector<double> h(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      const double v = sum_[static_cast<size_t>(i * n + j)] * norm;
      h[static_cast<size_t>(i * n + j)] = v;
      h[static_cast<size_t>(j * n + i)] = v;
    }
  }
  return h;
}

}  // namespace lowbit

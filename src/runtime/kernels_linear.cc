// kernels::linear: y = x * W^T (+ bias) for F32/BF16/F16 weights, in two paths chosen by m.
//
// Threading policy (one owner of the cores): lowbit's global pool is the only source of parallelism.
// Both paths split N over the pool, and OpenBLAS is pinned to one thread (openblas_set_num_threads(1)
// before the first tiled sgemm), so each pool thread runs its own single-threaded sgemm on its own tile.
// This never oversubscribes the cores, parallelizes the bf16/f16 -> fp32 tile conversion together with
// the multiply, and keeps set_global_threads() the single knob. Measured on the 2-core dev machine
// (fp32, 768x768, m = 512): within ~10 % of OpenBLAS's own 2-thread sgemm when the cores are otherwise
// quiet, and 5x faster (46 vs 9 GFLOP/s) while other processes load them; see /work/notes/kernels.md.
// Code elsewhere that wants a multi-threaded BLAS call must raise the OpenBLAS thread count itself and
// accept that linear() lowers it again.
#include "runtime/kernels_linear.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "io/dtype.h"
#include "runtime/kernels_hwy.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::kernels {
namespace {

// m at and above which linear() takes the tiled-sgemm path. Measured (kernels_bench LinearPath, and
// per-thread CPU time at N x K = 768x768, 2048x768, 768x2048, 4096x4096, 14336x4096, bf16): the gemv
// path is faster up to m = 48 at every shape, the two are within 5 % at m = 64, and sgemm is 20-40 %
// faster from m = 96 on. See /work/notes/kernels.md.
constexpr int64_t kLinearGemmMinRows = 64;

// Each parallel chunk of the gemv path should stream at least this many weight bytes, so waking a
// worker (tens of microseconds) is paid back.
constexpr size_t kGemvMinChunkBytes = size_t{64} << 10;

// Rows of W per sgemm tile. Every sgemm call re-packs all of x (m x K), so a tile must be tall enough
// to amortize that: with 256 rows the packing is 1/512 of the tile's flops. Measured at m = 512, one
// thread: 64-80-row tiles reach 94-98 GFLOP/s at K = 14336, 256-512-row tiles 115-129. Smaller K gets
// taller tiles (up to ~4 MiB of fp32). The cost is a per-thread buffer of rows x K floats (14 MiB at
// K = 14336).
constexpr int64_t kMinTileRows = 256;
constexpr size_t kTileBytes = size_t{4} << 20;

// Tile height for an N x K weight: as above, in equal tiles per pool thread (equal_tile_rows).
int64_t tile_rows(int64_t N, int64_t K, int threads) {
  const auto by_bytes = static_cast<int64_t>(kTileBytes / (static_cast<size_t>(K) * sizeof(float)));
  return equal_tile_rows(N, std::max(kMinTileRows, by_bytes), threads);
}

bool fast_dtype(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16;
}

void check_linear_args(const float* x, int64_t m, const DenseWeight& w, float* y) {
  if (m < 0 || w.rows < 0 || w.cols < 0)
    fail("linear: negative shape (m={}, weight {}x{})", m, w.rows, w.cols);
  if (m > 0 && w.rows > 0 && (!y || (w.cols > 0 && (!x || !w.data))))
    fail("linear: null pointer for a non-empty {}x{} x {}x{} product", m, w.cols, w.rows, w.cols);
}

void pin_openblas_to_one_thread() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

// Fills out[rows x K] with weight rows [row_begin, row_begin + rows) as fp32.
void widen_rows(const DenseWeight& w, int64_t row_begin, int64_t rows, float* out) {
  const size_t elem = dtype_size(w.dtype);
  const auto* src = static_cast<const std::byte*>(w.data) + static_cast<size_t>(row_begin * w.cols) * elem;
  simd::convert_f32(w.dtype, src, out, static_cast<size_t>(rows * w.cols));
}

std::vector<float>& thread_tile() {
  thread_local std::vector<float> tile;
  return tile;
}

}  // namespace

int64_t equal_tile_rows(int64_t N, int64_t max_rows, int threads) {
  const int64_t most = std::max<int64_t>(16, max_rows / 16 * 16);  // so rounding up to 16 stays within it
  const int64_t per_thread = (N + threads - 1) / std::max(threads, 1);
  const int64_t tiles_per_thread = std::max<int64_t>(1, (per_thread + most - 1) / most);
  const int64_t rows = (per_thread + tiles_per_thread - 1) / tiles_per_thread;
  return std::max<int64_t>(16, (rows + 15) / 16 * 16);
}

int64_t linear_gemm_min_rows() {
  return kLinearGemmMinRows;
}

void linear_gemv(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y) {
  check_linear_args(x, m, w, y);
  if (m == 0 || w.rows == 0) return;
  const int64_t N = w.rows, K = w.cols;
  const size_t row_bytes = std::max<size_t>(1, static_cast<size_t>(K) * dtype_size(w.dtype));
  const size_t grain = std::max<size_t>(4, kGemvMinChunkBytes / row_bytes);
  if (fast_dtype(w.dtype)) {
    global_pool().parallel_for(static_cast<size_t>(N), grain, [&](size_t begin, size_t end) {
      simd::gemv_rows(x, m, w, bias, y, N, static_cast<int64_t>(begin), static_cast<int64_t>(end));
    });
    return;
  }
  // Other stored dtypes (fp8, integers): widen a few rows at a time, then the fp32 kernel on them.
  global_pool().parallel_for(static_cast<size_t>(N), grain, [&](size_t begin, size_t end) {
    constexpr int64_t kRows = 16;
    std::vector<float>& tile = thread_tile();
    tile.resize(static_cast<size_t>(kRows * K));
    for (auto n0 = static_cast<int64_t>(begin); n0 < static_cast<int64_t>(end); n0 += kRows) {
      const int64_t rows = std::min<int64_t>(kRows, static_cast<int64_t>(end) - n0);
      widen_rows(w, n0, rows, tile.data());
      const DenseWeight f32{DType::F32, tile.data(), rows, K};
      simd::gemv_rows(x, m, f32, bias ? bias + n0 : nullptr, y + n0, N, 0, rows);
    }
  });
}

void linear_tiled_sgemm(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y) {
  check_linear_args(x, m, w, y);
  if (m == 0 || w.rows == 0) return;
  const int64_t N = w.rows, K = w.cols;
  if (K == 0) return linear_gemv(x, m, w, bias, y);  // y = bias (or 0); sgemm rejects lda = 0
  pin_openblas_to_one_thread();
  const int threads = global_pool().size();
  // fp32 weights need no buffer, so each thread takes one tall slice: fewest re-packs of x.
  const int64_t tile =
      w.dtype == DType::F32 ? ((N + threads - 1) / threads + 15) / 16 * 16 : tile_rows(N, K, threads);
  const int64_t tiles = (N + tile - 1) / tile;
  global_pool().parallel_for(static_cast<size_t>(tiles), 1, [&](size_t t_begin, size_t t_end) {
    for (auto t = static_cast<int64_t>(t_begin); t < static_cast<int64_t>(t_end); ++t) {
      const int64_t n0 = t * tile;
      const int64_t rows = std::min(tile, N - n0);
      const float* wt = nullptr;
      if (w.dtype == DType::F32) {
        wt = static_cast<const float*>(w.data) + n0 * K;  // already fp32: multiply in place
      } else {
        std::vector<float>& buffer = thread_tile();
        buffer.resize(static_cast<size_t>(tile * K));
        widen_rows(w, n0, rows, buffer.data());
        wt = buffer.data();
      }
      float* yt = y + n0;
      if (bias) {
        for (int64_t i = 0; i < m; ++i)
          std::memcpy(yt + i * N, bias + n0, static_cast<size_t>(rows) * sizeof(float));
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                  static_cast<blasint>(rows), static_cast<blasint>(K), 1.0f, x, static_cast<blasint>(K), wt,
                  static_cast<blasint>(K), bias ? 1.0f : 0.0f, yt, static_cast<blasint>(N));
    }
  });
}

void linear(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y) {
  if (m < kLinearGemmMinRows) return linear_gemv(x, m, w, bias, y);
  linear_tiled_sgemm(x, m, w, bias, y);
}

}  // namespace lowbit::kernels

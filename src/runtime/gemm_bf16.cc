// bf16 GEMM dispatch, operand packing and scalar references (see gemm_bf16.h).
#include "runtime/gemm_bf16.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "io/dtype.h"
#include "runtime/gemm_bf16_amx.h"
#include "runtime/kernels.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::kernels {
namespace {

// Output tile edge of the fp32 Gram path: large enough for sgemm to run near peak, small enough that a
// 768-wide matrix still splits into several tiles for the pool.
constexpr int64_t kGramTile = 192;

// AMX blocking (see linear_bf16 / Bf16Gram::add): bytes of A one work item keeps hot in L2, 32-column
// panel pairs per linear work item, and rows of a Gram strip.
constexpr int64_t kRowBlockBytes = int64_t{512} << 10;
constexpr int64_t kPairsPerItem = 4;
constexpr int64_t kGramStrip = 128;

int64_t round_up(int64_t v, int64_t to) {
  return (v + to - 1) / to * to;
}

float round_bf16(float v) {
  return bf16_to_f32(f32_to_bf16(v));
}

// Scratch for packed operands, kept per calling thread and grown on demand: the calibration passes call
// these products thousands of times with the same shapes, and fresh multi-megabyte buffers would cost a
// page fault per 4 KiB every time. Slot 0 and 1 are independent buffers (A and B of the Gram product).
uint16_t* scratch(int slot, int64_t n) {
  thread_local AlignedVector<uint16_t> buffers[2];
  AlignedVector<uint16_t>& b = buffers[slot];
  if (b.size() < static_cast<size_t>(n)) b.resize(static_cast<size_t>(n));
  return b.data();
}

// x rounded to bf16 as fp32, for the fallback path's fp32 engine. Left uninitialized before the rounding
// fills it (a zeroing pass would cost as much as the rounding), and freed after the product: kept per
// thread, the largest operand (a Gram batch, 16 MiB at 2048 x 2048) would stay in the peak memory.
std::unique_ptr<float[]> rounded_copy(const float* x, int64_t n) {
  std::unique_ptr<float[]> out(new float[static_cast<size_t>(n)]);
  kernels::round_bf16(x, out.get(), static_cast<size_t>(n));
  return out;
}

// A operand: x [m x k] as bf16 rows of `depth`, rows zero padded to a multiple of 32, into `out`.
void pack_a(const float* x, int64_t m, int64_t k, int64_t depth, uint16_t* out) {
  const int64_t padded = round_up(m, 32);
  std::fill(out + m * depth, out + padded * depth, uint16_t{0});
  global_pool().parallel_for(static_cast<size_t>(m), 32, [&](size_t b, size_t e) {
    const auto r0 = static_cast<int64_t>(b);
    amx::pack_rows(x + r0 * k, k, static_cast<int64_t>(e) - r0, k, depth, out + r0 * depth);
  });
}

// The Gram product's AMX operands from x [rows x cols]: B = panels of X (k-pairs = pairs of consecutive
// rows), A = X^T, transposed from the panels; in the calling thread's scratch.
void pack_gram_operands(const float* x, int64_t rows, int64_t cols, uint16_t** a, uint16_t** b) {
  const int64_t depth = round_up(rows, 32), padded = round_up(cols, 32);
  uint16_t* b_data = *b = scratch(0, padded * depth);
  uint16_t* a_data = *a = scratch(1, padded * depth);
  global_pool().parallel_for(static_cast<size_t>(padded / 16), 1, [&](size_t q0, size_t q1) {
    amx::pack_row_pairs(x, cols, rows, cols, depth, static_cast<int64_t>(q0), static_cast<int64_t>(q1),
                        b_data);
  });
  global_pool().parallel_for(static_cast<size_t>(padded), 16, [&](size_t r0, size_t r1) {
    amx::panels_to_rows(b_data, depth, static_cast<int64_t>(r0), static_cast<int64_t>(r1), a_data);
  });
}

// Strips of the lower triangle, big and small interleaved so the pool's contiguous chunks get similar work.
std::vector<int64_t> strip_order(int64_t strips) {
  std::vector<int64_t> order;
  for (int64_t lo = 0, hi = strips - 1; lo <= hi; ++lo, --hi) {
    order.push_back(hi);
    if (lo != hi) order.push_back(lo);
  }
  return order;
}

bool amx_from_environment() {
  return !amx::amx_disabled_by_environment() && amx::amx_bf16_usable();
}

std::atomic<bool>& amx_flag() {
  static std::atomic<bool> flag{amx_from_environment()};
  return flag;
}

bool amx_enabled() {
  return amx_flag().load(std::memory_order_relaxed);
}

void check_shape(const char* what, int64_t a, int64_t b, int64_t c) {
  if (a < 0 || b < 0 || c < 0) fail("{}: negative shape ({}, {}, {})", what, a, b, c);
}

}  // namespace

bool bf16_gemm_uses_amx() {
  return amx_enabled();
}

bool set_bf16_gemm_amx(bool enable) {
  return amx_flag().exchange(enable && amx::amx_bf16_usable());
}

Bf16Weight::Bf16Weight(const float* w, int64_t rows, int64_t cols) {
  assign(w, rows, cols);
}

void Bf16Weight::assign(const float* w, int64_t rows, int64_t cols) {
  check_shape("Bf16Weight", rows, cols, 0);
  rows_ = rows;
  cols_ = cols;
  amx_ = amx_enabled();
  if (amx_) {
    // Rows of W as bf16 (the k-pairs of each output feature are consecutive), then transposed as 32-bit
    // pairs into panels of 16 output features: panel[kp][j] = W32[n0 + j][kp]. (The rows are a temporary,
    // not thread scratch: kept, a 70B model's largest weight would hold 470 MB for the rest of the run.)
    depth_ = round_up(cols, 32);
    const int64_t panels = round_up(rows, 32) / 16;
    AlignedVector<uint16_t> w16(static_cast<size_t>(round_up(rows, 32) * depth_));
    pack_a(w, rows, cols, depth_, w16.data());
    data_.resize(static_cast<size_t>(panels * depth_ * 16));
    global_pool().parallel_for(static_cast<size_t>(panels), 1, [&](size_t b, size_t e) {
      amx::rows_to_panels(w16.data(), rows, depth_, static_cast<int64_t>(b), static_cast<int64_t>(e),
                          data_.data());
    });
  } else {
    depth_ = cols;
    data_.resize(static_cast<size_t>(rows * cols));
    to_bf16(w, data_.data(), static_cast<size_t>(rows * cols));
  }
}

void linear_bf16(const float* x, int64_t m, const Bf16Weight& w, const float* bias, float* y) {
  const Bf16Product product{&w, bias, y};
  linear_bf16_shared_input(x, m, std::span(&product, 1));
}

void linear_bf16_shared_input(const float* x, int64_t m, std::span<const Bf16Product> products) {
  if (products.empty()) return;
  const Bf16Weight& first = *products.front().weight;
  for (const Bf16Product& p : products) {
    check_shape("linear_bf16", m, p.weight->rows_, p.weight->cols_);
    if (p.weight->cols_ != first.cols_ || p.weight->amx_ != first.amx_)
      fail("linear_bf16_shared_input: weights of {} and {} columns (or packed for different kernels)",
           first.cols_, p.weight->cols_);
  }
  if (m == 0) return;
  const int64_t k = first.cols_;
  if (!first.amx_) {
    // The same bf16 values through the fp32 engine (bf16 weights are widened exactly).
    const std::unique_ptr<float[]> xr = rounded_copy(x, m * k);
    for (const Bf16Product& p : products)
      if (p.weight->rows_ > 0)
        linear(xr.get(), m, DenseWeight{DType::BF16, p.weight->data_.data(), p.weight->rows_, k}, p.bias,
               p.y);
    return;
  }
  const int64_t depth = first.depth_;
  uint16_t* a = scratch(0, round_up(m, 32) * depth);
  pack_a(x, m, k, depth, a);
  // Work items, over all products: blocks of rows (their A block stays in L2 while the item walks its
  // columns) x chunks of kPairsPerItem 32-column panel pairs (each pair is reused from L1 by every 32 rows
  // of the block).
  const int64_t row_block = std::clamp<int64_t>((kRowBlockBytes / (depth * 2)) / 32 * 32, 32, 512);
  const int64_t row_blocks = (m + row_block - 1) / row_block;
  struct Item {
    const Bf16Product* product;
    int64_t r0, n0;
  };
  std::vector<Item> items;
  for (const Bf16Product& p : products) {
    for (int64_t rb = 0; rb < row_blocks; ++rb)
      for (int64_t n0 = 0; n0 < p.weight->rows_; n0 += kPairsPerItem * 32)
        items.push_back({&p, rb * row_block, n0});
  }
  const uint16_t* a_data = a;
  global_pool().parallel_for(items.size(), 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const Item& item = items[i];
      const Bf16Weight& w = *item.product->weight;
      const int64_t n = w.rows_, r0 = item.r0, n0 = item.n0;
      const int64_t rows = std::min(row_block, m - r0), cols = std::min(n - n0, kPairsPerItem * 32);
      float* y = item.product->y;
      amx::gemm_tiles(a_data + r0 * depth, depth, w.data_.data() + n0 * depth, depth, depth, y + r0 * n + n0,
                      n, rows, cols);
      if (const float* bias = item.product->bias)
        for (int64_t r = r0; r < r0 + rows; ++r)
          for (int64_t c = n0; c < n0 + cols; ++c) y[r * n + c] += bias[c];
    }
  });
}

void linear_bf16_ref(const float* x, int64_t m, const float* w, int64_t rows, int64_t cols, const float* bias,
                     float* y) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < rows; ++o) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c)
        s += static_cast<double>(round_bf16(x[i * cols + c])) * round_bf16(w[o * cols + c]);
      y[i * rows + o] = static_cast<float>(s) + (bias != nullptr ? bias[o] : 0.0f);
    }
}

void gram_bf16_lower(const float* x, int64_t rows, int64_t cols, double* sum) {
  check_shape("gram_bf16_lower", rows, cols, 0);
  if (rows == 0 || cols == 0) return;
  if (!amx_enabled()) {
    gram_f32_lower(rounded_copy(x, rows * cols).get(), rows, cols, sum);
    return;
  }
  // One product accumulated in fp32 tiles and flushed once.
  Bf16Gram gram(cols, rows);
  gram.add(x, rows, sum);
  gram.flush(sum);
}

Bf16Gram::Bf16Gram(int64_t cols, int64_t flush_rows)
    : cols_(cols), padded_(round_up(cols, 32)), flush_rows_(flush_rows), amx_(amx_enabled()) {
  check_shape("Bf16Gram", cols, flush_rows, 0);
  if (amx_) acc_.assign(static_cast<size_t>(padded_ * padded_), 0.0f);
}

void Bf16Gram::add(const float* x, int64_t rows, double* sum) {
  check_shape("Bf16Gram::add", rows, 0, 0);
  if (rows == 0) return;
  if (!amx_) {
    gram_bf16_lower(x, rows, cols_, sum);
    return;
  }
  const int64_t cols = cols_, padded = padded_, depth = round_up(rows, 32);
  uint16_t *a_data = nullptr, *b_data = nullptr;
  pack_gram_operands(x, rows, cols, &a_data, &b_data);
  // Strips of the lower block triangle, accumulated in place (whole 32 x 32 blocks: padding is zero).
  const int64_t strip_rows = std::min(kGramStrip, padded);
  const std::vector<int64_t> order = strip_order((padded + strip_rows - 1) / strip_rows);
  float* acc = acc_.data();
  global_pool().parallel_for(order.size(), 1, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const int64_t r0 = order[t] * strip_rows;
      const int64_t nr = std::min(strip_rows, padded - r0), nc = std::min(padded, r0 + strip_rows);
      amx::gemm_tiles(a_data + r0 * depth, depth, b_data, depth, depth, acc + r0 * padded, padded, nr, nc,
                      /*accumulate=*/true);
    }
  });
  pending_rows_ += rows;
  if (pending_rows_ >= flush_rows_) flush(sum);
}

void Bf16Gram::flush(double* sum) {
  if (!amx_ || pending_rows_ == 0) return;
  const int64_t cols = cols_, padded = padded_;
  float* acc = acc_.data();
  global_pool().parallel_for(static_cast<size_t>(cols), 16, [&](size_t b, size_t e) {
    for (auto i = static_cast<int64_t>(b); i < static_cast<int64_t>(e); ++i) {
      double* dst = sum + i * cols;
      float* src = acc + i * padded;
      for (int64_t j = 0; j <= i; ++j) dst[j] += static_cast<double>(src[j]);
      std::fill(src, src + padded, 0.0f);
    }
  });
  pending_rows_ = 0;
}

void gram_f32_lower(const float* x, int64_t rows, int64_t cols, double* sum) {
  check_shape("gram_f32_lower", rows, cols, 0);
  if (rows == 0 || cols == 0) return;
  // OpenBLAS runs single-threaded inside pool jobs (see kernels_linear.cc).
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  const int64_t n = cols, tiles = (n + kGramTile - 1) / kGramTile;
  std::vector<std::pair<int64_t, int64_t>> work;
  for (int64_t ti = 0; ti < tiles; ++ti)
    for (int64_t tj = 0; tj <= ti; ++tj) work.emplace_back(ti, tj);
  global_pool().parallel_for(work.size(), 1, [&](size_t begin, size_t end) {
    std::vector<float> tile(static_cast<size_t>(kGramTile * kGramTile));
    for (size_t t = begin; t < end; ++t) {
      const int64_t r0 = work[t].first * kGramTile, c0 = work[t].second * kGramTile;
      const int64_t nr = std::min(kGramTile, n - r0), nc = std::min(kGramTile, n - c0);
      const auto blas_rows = static_cast<blasint>(rows), blas_n = static_cast<blasint>(n);
      if (r0 == c0) {
        // tile = X[:, r0:r0+nr]^T X[:, r0:r0+nr], lower triangle.
        cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, static_cast<blasint>(nr), blas_rows, 1.0f, x + r0,
                    blas_n, 0.0f, tile.data(), static_cast<blasint>(kGramTile));
      } else {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(nr),
                    static_cast<blasint>(nc), blas_rows, 1.0f, x + r0, blas_n, x + c0, blas_n, 0.0f,
                    tile.data(), static_cast<blasint>(kGramTile));
      }
      for (int64_t i = 0; i < nr; ++i) {
        double* dst = sum + (r0 + i) * n + c0;
        const float* src = tile.data() + i * kGramTile;
        const int64_t width = r0 == c0 ? i + 1 : nc;
        for (int64_t j = 0; j < width; ++j) dst[j] += static_cast<double>(src[j]);
      }
    }
  });
}

void gram_bf16_lower_ref(const float* x, int64_t rows, int64_t cols, double* sum) {
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r)
        s += static_cast<double>(round_bf16(x[r * cols + i])) * round_bf16(x[r * cols + j]);
      sum[i * cols + j] += s;
    }
}

}  // namespace lowbit::kernels

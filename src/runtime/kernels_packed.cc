// Packed-weight products: threading, the prefill path and the scalar references (kernels_packed.h). The
// threading policy is kernels_linear.cc's: the global pool splits output rows, OpenBLAS runs one thread per
// pool thread.
#include "runtime/kernels_packed.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "io/dtype.h"
#include "runtime/kernels_hwy.h"
#include "runtime/kernels_linear.h"
#include "runtime/kernels_packed_amx.h"
#include "runtime/kernels_packed_fp8.h"
#include "runtime/kernels_packed_hwy.h"
#include "runtime/kernels_packed_int16.h"
#include "runtime/kernels_packed_vnni.h"
#include "runtime/kernels_packed_w8a8_avx2.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::kernels {
namespace {

// m from which packed_linear dequantizes tiles for sgemm. The packed gemv decodes every weight once per pass
// of (at most 4, int4: 2) x rows, so its cost grows with m faster than the bf16 one's. Measured with
// packed_bench 1T/PackedPath (2048x768, one thread, CPU time): int4 gemv 1070 us vs sgemm 1326 us at m = 16,
// 2024 vs 1709 at m = 32; int8 1283 vs 1511 at m = 32, 2287 vs 1980 at m = 64.
// fp8 (Zen 3, the same benchmark): the E4M3 table decoder (bf16 scales) 1073-1087 us vs sgemm 942-983 at
// m = 8, 540-547 vs 815-847 at m = 4; the fp32 decoder (fp32 scales) 759 vs 903 at m = 8, 1527 vs 1172 at
// m = 16. 8 suits the table decoder, the one fp8 checkpoints of bf16 models use.
constexpr int64_t kInt4GemmMinRows = 24;
constexpr int64_t kBytesGemmMinRows = 48;
constexpr int64_t kFp8GemmMinRows = 8;
// W8A8 on AVX-512 VNNI CPUs: the most x rows int8_linear gives the int16 gemv kernels instead of VNNI.
constexpr int64_t kVnniGemvMaxRows = 4;
// W8A8 on AMX-INT8 CPUs: the fewest x rows int8_linear gives the AMX kernel, all those the int16 kernels do
// not take. Even a block of 32 x rows holding 5 beat VNNI: batched decode at 5 / 8 / 12 sequences 1.05-1.10x
// / 1.14-1.15x / 1.21-1.25x (Intel Xeon VM, session 21).
constexpr int64_t kAmxMinRows = kVnniGemvMaxRows + 1;

// Parallel chunks of the gemv path stream at least this many code bytes (as kernels_linear.cc).
constexpr size_t kGemvMinChunkBytes = size_t{32} << 10;

// Tile of rows dequantized per sgemm call: tall enough to amortize sgemm's packing of x, small enough to
// stay in L2-ish buffers (at most 2 MiB of fp32 per thread).
constexpr size_t kTileBytes = size_t{2} << 20;

// Rows per tile for an N x K weight on `threads` pool threads: equal tiles of at most kTileBytes per
// thread (equal_tile_rows). Cutting the rows into kTileBytes tiles from the first row left the reference
// model's gate/up projections (2048 x 768) with tiles of 672, 672, 672 and 32 rows, i.e. 1344 rows for one
// thread and 704 for the other, and down_proj (768 x 2048) with 2 tiles against 1.
int64_t packed_tile_rows(int64_t N, int64_t K, int threads) {
  const auto fit =
      static_cast<int64_t>(kTileBytes / (static_cast<size_t>(std::max<int64_t>(K, 1)) * sizeof(float)));
  return equal_tile_rows(N, fit, threads);
}

// fp8 values as the kernels see them: e4m3 / 256 (kernels_packed_hwy.cc folds 2^8 into the scales), e5m2.
struct Fp8Tables {
  std::array<float, 256> e4m3, e5m2;
  Fp8Tables() {
    for (int b = 0; b < 256; ++b) {
      e4m3[static_cast<size_t>(b)] = e4m3_to_f32(static_cast<uint8_t>(b)) / 256.0f;
      e5m2[static_cast<size_t>(b)] = e5m2_to_f32(static_cast<uint8_t>(b));
    }
  }
};
const Fp8Tables& fp8_tables() {
  static const Fp8Tables tables;
  return tables;
}

void check_args(const float* x, int64_t m, const PackedMatrix& w, float* y) {
  if (m < 0 || w.rows < 0 || w.cols < 0)
    fail("packed linear: negative shape (m={}, {}x{})", m, w.rows, w.cols);
  if (w.group_size <= 0 && w.cols > 0)
    fail("packed linear: group size {} for {} columns", w.group_size, w.cols);
  if (m > 0 && w.rows > 0 && (!y || (w.cols > 0 && (!x || !w.data || !w.scales))))
    fail("packed linear: null pointer for a non-empty {}x{} x {}x{} product", m, w.cols, w.rows, w.cols);
}

std::vector<float>& thread_buffer() {
  thread_local std::vector<float> buffer;
  return buffer;
}

// About kGemvMinChunkBytes of w's rows, in whole blocks of 4 rows.
size_t min_chunk_rows(const PackedMatrix& w) {
  const size_t rows = kGemvMinChunkBytes / std::max<size_t>(1, static_cast<size_t>(w.row_bytes));
  return std::max<size_t>(4, rows / 4 * 4);
}

// Output rows per parallel chunk of the row-streaming kernels for `rows` rows laid out as w's: one
// contiguous share per pool thread, but at least min_chunk_rows, in whole blocks of 4 rows (the kernels'
// step; chunks are whole grains, ThreadPool::parallel_for). Chunks of kGemvMinChunkBytes
// handed out in shrinking shares of what was left made each thread restart its four row streams several
// times, the last ones only a few rows long: at the reference model's shapes on 2 threads that was 15-20 %
// slower (packed_bench Packed/int4_g128/N:2048/K:768/m:1/real_time, int8 activation codes: 36.6 vs 30.5 us;
// N:768: 17.5 vs 14.8 us).
size_t gemv_grain(const PackedMatrix& w, int64_t rows) {
  const auto threads = static_cast<size_t>(global_pool().size());
  const size_t share = (static_cast<size_t>(rows) + threads - 1) / threads;
  return std::max(min_chunk_rows(w), (share + 3) / 4 * 4);
}

// The calling thread's activation codes (fill it before int16_product; a thread_local named inside a pool
// lambda would be the worker's own).
ActivationCodes& int16_buffer() {
  thread_local ActivationCodes buffer;
  return buffer;
}

void int16_product(const ActivationCodes& xq, const PackedMatrix& w, const float* bias, float* y) {
  global_pool().parallel_for(
      static_cast<size_t>(w.rows), gemv_grain(w, w.rows), [&](size_t begin, size_t end) {
        int16_gemv_rows(xq, w, bias, y, static_cast<int64_t>(begin), static_cast<int64_t>(end));
      });
}

}  // namespace

bool has_nonfinite_codes(const PackedMatrix& w) {
  if (w.codes != Codes::E4M3 && w.codes != Codes::E5M2) return false;
  // E4M3 ("fn"): 0x7F / 0xFF are NaN. E5M2: exponent field all ones (infinities and NaNs). In SIMD: this
  // scans every code at load (a byte loop took half of a short FP8 bench run, load included).
  const uint8_t mask = w.codes == Codes::E4M3 ? 0x7F : 0x7C;
  for (int64_t n = 0; n < w.rows; ++n) {
    const auto* row = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
    if (simd::any_byte_with_bits(row, static_cast<size_t>(w.cols), mask)) return true;
  }
  return false;
}

float packed_code(const PackedMatrix& w, int64_t n, int64_t k) {
  const auto* row = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
  switch (w.codes) {
    case Codes::Int4: {
      uint32_t word;
      std::memcpy(&word, row + (k / 8) * 4, sizeof(word));
      return static_cast<float>((word >> (4 * (k % 8))) & 0xFu);
    }
    case Codes::UInt8:
      return static_cast<float>(row[k]);
    case Codes::Int8:
      return static_cast<float>(static_cast<int8_t>(row[k]));
    case Codes::E4M3:
      return fp8_tables().e4m3[row[k]];
    case Codes::E5M2:
      return fp8_tables().e5m2[row[k]];
  }
  return 0.0f;
}

float packed_weight(const PackedMatrix& w, int64_t n, int64_t k) {
  const int64_t cell = n * w.groups() + k / w.group_size;
  const float v = packed_code(w, n, k) * w.scales[cell] - w.zero_term(cell);
  return w.round_to_bf16 ? bf16_to_f32(f32_to_bf16(v)) : v;
}

int64_t packed_gemm_min_rows(Codes codes) {
  if (codes == Codes::E4M3 || codes == Codes::E5M2) return kFp8GemmMinRows;
  return codes == Codes::Int4 ? kInt4GemmMinRows : kBytesGemmMinRows;
}

void packed_linear_ref(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y) {
  check_args(x, m, w, y);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t n = 0; n < w.rows; ++n) {
      float s = bias ? bias[n] : 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) s += packed_weight(w, n, k) * x[i * w.cols + k];
      y[i * w.rows + n] = s;
    }
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t row_begin, int64_t rows, float* out) {
  const int64_t K = w.cols, gs = w.group_size, G = w.groups();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = row_begin + r;
    const auto* row = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
    float* o = out + r * K;
    for (int64_t g = 0; g < G; ++g) {
      const float s = w.scales[n * G + g];
      const float z = w.zero_term(n * G + g);
      const int64_t k0 = g * gs, k1 = std::min(K, k0 + gs);
      // One simple loop per code format, so the compiler can vectorize each.
      switch (w.codes) {
        case Codes::Int4:
          for (int64_t k = k0; k < k1; ++k)
            o[k] = static_cast<float>((row[k / 2] >> (4 * (k % 2))) & 0xF) * s - z;  // little-endian words
          break;
        case Codes::UInt8:
          for (int64_t k = k0; k < k1; ++k) o[k] = static_cast<float>(row[k]) * s - z;
          break;
        case Codes::Int8:
          for (int64_t k = k0; k < k1; ++k) o[k] = static_cast<float>(static_cast<int8_t>(row[k])) * s - z;
          break;
        case Codes::E4M3:
        case Codes::E5M2:
          for (int64_t k = k0; k < k1; ++k) o[k] = packed_weight(w, n, k);
          break;
      }
    }
  }
}

namespace {
std::atomic<bool>& int16_gemv_enabled() {
  static std::atomic<bool> enabled{std::getenv("LOWBIT_GEMV_FP32") == nullptr};
  return enabled;
}
}  // namespace

void set_int16_gemv_enabled(bool enabled) {
  int16_gemv_enabled().store(enabled);
}

bool packed_gemv_uses_int16(const PackedMatrix& w) {
  return int16_gemv_enabled().load(std::memory_order_relaxed) && have_avx2_fma() && int16_gemv_supports(w);
}

bool packed_gemv_uses_fp8_table(const PackedMatrix& w) {
  return int16_gemv_enabled().load(std::memory_order_relaxed) && fp8_gemv_supports(w);
}

void packed_gemv(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y,
                 GemvPath path) {
  check_args(x, m, w, y);
  if (m == 0 || w.rows == 0) return;
  if (w.nonfinite_codes) return packed_linear_ref(x, m, w, bias, y);
  if (path == GemvPath::Auto && w.cols > 0 && packed_gemv_uses_int16(w)) {
    ActivationCodes& xq = int16_buffer();
    quantize_activation_codes(x, m, w, xq);
    return int16_product(xq, w, bias, y);
  }
  const int64_t K = w.cols, G = w.groups();
  if (path == GemvPath::Auto && K > 0 && packed_gemv_uses_fp8_table(w)) {
    global_pool().parallel_for(
        static_cast<size_t>(w.rows), gemv_grain(w, w.rows), [&](size_t begin, size_t end) {
          fp8_gemv_rows(x, m, w, bias, y, static_cast<int64_t>(begin), static_cast<int64_t>(end));
        });
    return;
  }
  simd::PackedGemvArgs args;
  args.x = x;
  args.m = m;
  args.w = &w;
  args.bias = bias;
  args.y = y;
  // Per-call preparation, O(m * K): the int4 lane order of x and the group sums for the zero terms.
  thread_local std::vector<float> xp, xsum;
  if (w.codes == Codes::Int4) {
    const int64_t block = simd::int4_block_codes();
    const int64_t lanes = block / 8;
    args.kfull = K / block * block;
    xp.resize(static_cast<size_t>(m * args.kfull));
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * K;
      float* pi = xp.data() + i * args.kfull;
      for (int64_t c0 = 0; c0 < args.kfull; c0 += block)
        for (int64_t j = 0; j < 8; ++j)
          for (int64_t l = 0; l < lanes; ++l) pi[c0 + j * lanes + l] = xi[c0 + 8 * l + j];
    }
    args.xp = xp.data();
  }
  if (w.has_zero_terms() || w.codes == Codes::Int4) {  // the int4 kernel needs the group sums too
    xsum.assign(static_cast<size_t>(m * G), 0.0f);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t k = 0; k < K; ++k) xsum[static_cast<size_t>(i * G + k / w.group_size)] += x[i * K + k];
    args.xsum = xsum.data();
  }
  global_pool().parallel_for(
      static_cast<size_t>(w.rows), gemv_grain(w, w.rows), [&](size_t begin, size_t end) {
        simd::packed_gemv_rows(args, static_cast<int64_t>(begin), static_cast<int64_t>(end));
      });
}

void packed_tiled_sgemm(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y) {
  check_args(x, m, w, y);
  if (m == 0 || w.rows == 0) return;
  if (w.nonfinite_codes) return packed_linear_ref(x, m, w, bias, y);
  const int64_t N = w.rows, K = w.cols;
  if (K == 0) return packed_gemv(x, m, w, bias, y);
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  const int64_t tile = packed_tile_rows(N, K, global_pool().size());
  const int64_t tiles = (N + tile - 1) / tile;
  global_pool().parallel_for(static_cast<size_t>(tiles), 1, [&](size_t t_begin, size_t t_end) {
    std::vector<float>& buffer = thread_buffer();
    buffer.resize(static_cast<size_t>(tile * K));
    for (auto t = static_cast<int64_t>(t_begin); t < static_cast<int64_t>(t_end); ++t) {
      const int64_t n0 = t * tile;
      const int64_t rows = std::min(tile, N - n0);
      simd::dequantize_rows(w, n0, rows, buffer.data());
      float* yt = y + n0;
      if (bias) {
        for (int64_t i = 0; i < m; ++i)
          std::memcpy(yt + i * N, bias + n0, static_cast<size_t>(rows) * sizeof(float));
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                  static_cast<blasint>(rows), static_cast<blasint>(K), 1.0f, x, static_cast<blasint>(K),
                  buffer.data(), static_cast<blasint>(K), bias ? 1.0f : 0.0f, yt, static_cast<blasint>(N));
    }
  });
}

void packed_linear(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y) {
  if (m < packed_gemm_min_rows(w.codes)) return packed_gemv(x, m, w, bias, y);
  packed_tiled_sgemm(x, m, w, bias, y);
}

void packed_linear_shared_input(const float* x, int64_t m, std::span<const PackedProduct> products) {
  if (products.empty()) return;
  const PackedMatrix& first = *products.front().w;
  bool fused = m > 0 && m < packed_gemm_min_rows(first.codes) && first.cols > 0;
  int64_t total = 0;
  for (const PackedProduct& p : products) {
    check_args(x, m, *p.w, p.y);
    fused = fused && p.w->codes == first.codes && p.w->cols == first.cols &&
            p.w->group_size == first.group_size && packed_gemv_uses_int16(*p.w);
    total += p.w->rows;
  }
  if (!fused) {
    for (const PackedProduct& p : products) packed_linear(x, m, *p.w, p.bias, p.y);
    return;
  }
  ActivationCodes& xq = int16_buffer();
  quantize_activation_codes(x, m, first, xq);
  // The rows of all products as one range; a chunk may span the end of one matrix and the start of the next.
  global_pool().parallel_for(
      static_cast<size_t>(total), gemv_grain(first, total), [&](size_t begin, size_t end) {
        int64_t offset = 0;
        for (const PackedProduct& p : products) {
          const int64_t lo = std::max<int64_t>(static_cast<int64_t>(begin) - offset, 0);
          const int64_t hi = std::min<int64_t>(static_cast<int64_t>(end) - offset, p.w->rows);
          if (lo < hi) int16_gemv_rows(xq, *p.w, p.bias, p.y, lo, hi);
          offset += p.w->rows;
        }
      });
}

// ---- W8A8 ---------------------------------------------------------------------------------------------

namespace {
void check_int8(const Int8Activations& x, const PackedMatrix& w, float* y) {
  if (w.codes != Codes::Int8 && w.codes != Codes::UInt8)
    fail("int8_linear: weights must be int8 codes (got another code format)");
  // UInt8's zero terms are its storage offset (128 s), which the kernel applies through the code sums.
  if (w.group_size != w.cols || (w.codes == Codes::Int8 && w.has_zero_terms()))
    fail("int8_linear: weights must be symmetric with one scale per output row");
  if (x.cols != w.cols) fail("int8_linear: activations have {} columns, weights {}", x.cols, w.cols);
  if (static_cast<int64_t>(x.codes.size()) != x.rows * x.cols ||
      static_cast<int64_t>(x.scales.size()) != x.rows || static_cast<int64_t>(x.sums.size()) != x.rows)
    fail("int8_linear: activation buffers do not match {} x {}", x.rows, x.cols);
  if (x.rows > 0 && w.rows > 0 && !y) fail("int8_linear: null output");
}
}  // namespace

void finish_int8_activations(Int8Activations& x) {
  x.sums.assign(static_cast<size_t>(x.rows), 0);
  x.biased.resize(x.codes.size());
  for (int64_t i = 0; i < x.rows; ++i) {
    int32_t sum = 0;
    for (int64_t k = 0; k < x.cols; ++k) {
      const int16_t q = x.codes[static_cast<size_t>(i * x.cols + k)];
      sum += q;
      x.biased[static_cast<size_t>(i * x.cols + k)] = static_cast<uint8_t>(q + 128);
    }
    x.sums[static_cast<size_t>(i)] = sum;
  }
}

int32_t quantize_int8_row_ref(const float* x, int64_t K, float tensor_scale, float* scale, int16_t* codes,
                              uint8_t* biased) {
  float s = tensor_scale;
  if (s <= 0.0f) {
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::abs(x[k]));
    s = amax / 127.5f;
    if (s == 0.0f) s = std::ldexp(1.0f, -23);
  }
  *scale = s;
  int32_t sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    const float c = std::clamp(x[k] / s, -128.0f, 127.0f);
    // Round half to even: adding and removing 1.5 * 2^23 leaves the integer part (|c| <= 128).
    const auto code = static_cast<int16_t>((c + 12582912.0f) - 12582912.0f);
    codes[k] = code;
    biased[k] = static_cast<uint8_t>(code + 128);
    sum += code;
  }
  return sum;
}

int32_t quantize_int8_row(const float* x, int64_t K, float tensor_scale, float* scale, int16_t* codes,
                          uint8_t* biased) {
  int32_t sum = 0;
  if (have_avx2_fma() && avx2_quantize_int8_row(x, K, tensor_scale, scale, codes, biased, &sum)) return sum;
  return quantize_int8_row_ref(x, K, tensor_scale, scale, codes, biased);
}

// The int16 kernels of W4A16 / W8A16 take W8A8's int8 codes as they are: integer sums per 64-column chunk,
// fp32 across chunks, so the result equals int8_linear_ref to fp32 rounding rather than bit for bit. On AVX2
// they run 2-3x the Highway kernel at m = 1 (Zen 3). On AVX-512 VNNI CPUs they serve up to kVnniGemvMaxRows
// x rows, where they stream the codes faster than the VNNI kernel (four row streams with prefetch against
// four adjacent rows; Intel Xeon VM, session 21: W8A8 decode 1.5x at batch 1, 1.15x at batch 4, 0.85x at
// batch 16). UInt8 codes need their storage offset in the zero terms, as PackedLinear builds them.
bool int8_linear_uses_int16(int64_t rows, const PackedMatrix& w) {
  const bool offset_known = w.codes != Codes::UInt8 || w.has_zero_terms();
  const int64_t max_rows = have_avx512_vnni() ? kVnniGemvMaxRows : kBytesGemmMinRows - 1;
  return rows <= max_rows && offset_known && packed_gemv_uses_int16(w);
}

void int8_linear(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                 bool allow_fast) {
  check_int8(x, w, y);
  if (x.rows == 0 || w.rows == 0) return;
  // Decode sizes: the int16 kernels of W4A16 / W8A16 take the int8 codes as they are.
  if (allow_fast && int8_linear_uses_int16(x.rows, w)) {
    ActivationCodes& xq = int16_buffer();
    int16_activations_from_codes(x.codes.data(), x.scales.data(), x.rows, w, xq);
    return int16_product(xq, w, bias, y);
  }
  // Prefill sizes: chunks of about kGemvMinChunkBytes, claimed as the threads get to them.
  const size_t grain = min_chunk_rows(w);
  if (allow_fast && x.rows >= kAmxMinRows && amx_int8_supports(x, w)) {
    // Whole 32-row blocks per chunk, so that no block is split between threads (a block packs its rows).
    const size_t blocks = (static_cast<size_t>(w.rows) + 31) / 32, block_grain = (grain + 31) / 32;
    global_pool().parallel_for(blocks, block_grain, [&](size_t begin, size_t end) {
      amx_int8_rows(x, w, bias, y, static_cast<int64_t>(begin) * 32,
                    std::min<int64_t>(static_cast<int64_t>(end) * 32, w.rows));
    });
    return;
  }
  if (allow_fast && have_avx512_vnni() && w.row_code_sums &&
      x.biased.size() == static_cast<size_t>(x.rows * x.cols)) {
    global_pool().parallel_for(static_cast<size_t>(w.rows), grain, [&](size_t begin, size_t end) {
      vnni_int8_rows(x, w, bias, y, static_cast<int64_t>(begin), static_cast<int64_t>(end));
    });
    return;
  }
  if (allow_fast && avx2_int8_gemm_available()) {
    global_pool().parallel_for(static_cast<size_t>(w.rows), grain, [&](size_t begin, size_t end) {
      avx2_int8_rows(x, w, bias, y, static_cast<int64_t>(begin), static_cast<int64_t>(end));
    });
    return;
  }
  simd::Int8GemmArgs args{&x, &w, bias, y};
  global_pool().parallel_for(static_cast<size_t>(w.rows), grain, [&](size_t begin, size_t end) {
    simd::int8_gemm_rows(args, static_cast<int64_t>(begin), static_cast<int64_t>(end));
  });
}

void int8_rescale(const Int8Activations& x, const PackedMatrix& w, const float* bias, const int32_t* dots,
                  int64_t stride, int64_t i0, int64_t rows, int64_t n, int64_t count, float* y) {
  for (int64_t i = 0; i < rows; ++i) {
    const float sx = x.scales[static_cast<size_t>(i0 + i)];
    float* out = y + (i0 + i) * w.rows + n;
    for (int64_t r = 0; r < count; ++r) {
      float v = static_cast<float>(dots[i * stride + r]) * sx * w.scales[n + r];
      if (bias) v += bias[n + r];
      out[r] = v;
    }
  }
}

void int8_linear_ref(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y) {
  check_int8(x, w, y);
  const int64_t offset = w.codes == Codes::UInt8 ? 128 : 0;
  for (int64_t i = 0; i < x.rows; ++i) {
    for (int64_t n = 0; n < w.rows; ++n) {
      int64_t dot = 0;
      for (int64_t k = 0; k < x.cols; ++k)
        dot += (static_cast<int64_t>(packed_code(w, n, k)) - offset) *
               x.codes[static_cast<size_t>(i * x.cols + k)];
      const auto d = static_cast<int32_t>(dot);  // |dot| <= 128 * 128 * K < 2^31 for K < 131,072
      int8_rescale(x, w, bias, &d, 1, i, 1, n, 1, y);
    }
  }
}

}  // namespace lowbit::kernels

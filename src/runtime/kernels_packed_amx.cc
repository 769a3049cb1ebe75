// The W8A8 product on Intel AMX-INT8 tiles (see kernels_packed_amx.h).
#include "runtime/kernels_packed_amx.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "runtime/gemm_bf16_amx.h"
#include "util/aligned_vector.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define LOWBIT_HAVE_AMX_INT8 1
#include <immintrin.h>
// Only the functions marked with this attribute use AMX and AVX-512; the rest of the build stays baseline.
#define LOWBIT_AMX_INT8_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw")))
#endif

namespace lowbit::kernels {
namespace {

// The largest K the kernel takes: with UInt8 codes a raw sum reaches 255 * 255 * K < 2^31.
constexpr int64_t kMaxCols = 32768;

std::atomic<bool>& amx_int8_switch() {
  static std::atomic<bool> enabled{amx::amx_int8_usable() && !amx::amx_disabled_by_environment()};
  return enabled;
}

}  // namespace

bool set_int8_amx_enabled(bool enable) {
  return amx_int8_switch().exchange(enable && amx::amx_int8_usable());
}

bool amx_int8_supports(const Int8Activations& x, const PackedMatrix& w) {
  return amx_int8_switch().load(std::memory_order_relaxed) &&
         (w.codes == Codes::Int8 || w.codes == Codes::UInt8) && w.row_code_sums != nullptr &&
         w.row_bytes == w.cols && w.cols % 64 == 0 && w.cols <= kMaxCols &&
         x.biased.size() == static_cast<size_t>(x.rows * x.cols);
}

#ifdef LOWBIT_HAVE_AMX_INT8
namespace {

constexpr int kBlock = 32;  // x rows and weight rows per step: four 16 x 16 accumulator tiles

// c[32 x 32] = raw sums of 32 x rows (a0: the first 16, a1: the next 16, lda bytes apart) times the two
// panels b0, b1, over K columns.
template <bool kUnsigned>
LOWBIT_AMX_INT8_TARGET void multiply_block(const uint8_t* a0, const uint8_t* a1, int64_t lda,
                                           const uint8_t* b0, const uint8_t* b1, int64_t K, int32_t* c) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t k = 0; k < K; k += 64) {
    _tile_loadd(4, a0 + k, lda);
    _tile_loadd(5, a1 + k, lda);
    _tile_loadd(6, b0 + k * 16, 64);  // tile row q = k / 4 + r of the panel, 64 bytes each
    _tile_loadd(7, b1 + k * 16, 64);
    if constexpr (kUnsigned) {
      _tile_dpbuud(0, 4, 6);
      _tile_dpbuud(1, 4, 7);
      _tile_dpbuud(2, 5, 6);
      _tile_dpbuud(3, 5, 7);
    } else {
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
  }
  _tile_stored(0, c, 128);
  _tile_stored(1, c + 16, 128);
  _tile_stored(2, c + 16 * 32, 128);
  _tile_stored(3, c + 16 * 32 + 16, 128);
}

// y[i0 + i][n0 + r] for i < rows, r < count from the raw sums c[i * 32 + r]. The raw sums carry the storage
// offsets: sum (qx + 128) q = dot + 128 sum q for Int8 codes q, and with UInt8 codes u = q + 128 also
// 128 sum qx + 128 * 128 K. What is left is int8_rescale's arithmetic, float(dot) * sx * sw (+ bias), each
// operation rounded on its own: the _round_ intrinsics are not contracted into fused multiply-adds, which
// keeps the result that function's bit for bit.
template <bool kUnsigned>
LOWBIT_AMX_INT8_TARGET void finish_block(const Int8Activations& x, const PackedMatrix& w, const float* bias,
                                         const int32_t* c, int64_t i0, int64_t rows, int64_t n0,
                                         int64_t count, float* y) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  // (The maskz_ forms with all lanes set: GCC 12's unmasked forms trip -Wmaybe-uninitialized.)
  constexpr __mmask16 kAll = 0xFFFF;
  const int64_t N = w.rows;
  for (int h = 0; h < 2 && 16 * h < count; ++h) {
    const int64_t n = n0 + 16 * h, left = count - 16 * h;
    const __mmask16 m =
        left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512i code_sums = _mm512_maskz_loadu_epi32(m, w.row_code_sums + n);
    const __m512i weight_offset = _mm512_maskz_slli_epi32(kAll, code_sums, 7);  // 128 sum q
    const __m512 sw = _mm512_maskz_loadu_ps(m, w.scales + n);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + n) : _mm512_setzero_ps();
    for (int64_t i = 0; i < rows; ++i) {
      __m512i d = _mm512_sub_epi32(_mm512_loadu_si512(c + i * 32 + 16 * h), weight_offset);
      if constexpr (kUnsigned) {
        const int32_t x_offset =
            128 * (x.sums[static_cast<size_t>(i0 + i)] + 128 * static_cast<int32_t>(x.cols));
        d = _mm512_sub_epi32(d, _mm512_set1_epi32(x_offset));
      }
      const __m512 sx = _mm512_set1_ps(x.scales[static_cast<size_t>(i0 + i)]);
      __m512 v = _mm512_maskz_mul_round_ps(kAll, _mm512_maskz_cvtepi32_ps(kAll, d), sx, kRound);
      v = _mm512_maskz_mul_round_ps(kAll, v, sw, kRound);
      if (bias) v = _mm512_maskz_add_round_ps(kAll, v, b, kRound);
      _mm512_mask_storeu_ps(y + (i0 + i) * N + n, m, v);
    }
  }
}

// Loop order: the panel pair (32 x K codes) is built once and meets every block of x rows. (Blocking the
// depth to keep a pass in L1, 512 columns, was 16 % faster at 2048 x 768 and 25 % slower at 768 x 2048,
// m = 512, one thread: not kept.)
template <bool kUnsigned>
void amx_rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y, int64_t n_begin,
              int64_t n_end) {
  const int64_t K = w.cols, m = x.rows;
  const auto* codes = static_cast<const uint8_t*>(w.data);
  thread_local AlignedVector<uint16_t> panels;  // two panels of 16 x K codes, as bf16-sized pairs
  thread_local AlignedVector<uint8_t> edge;
  panels.resize(static_cast<size_t>(kBlock * K / 2));
  // The x rows of the last partial block, zero padded to 32 (tile loads read whole blocks).
  const int64_t whole = m / kBlock * kBlock;
  if (whole < m) {
    edge.assign(static_cast<size_t>(kBlock * K), 0);
    std::memcpy(edge.data(), x.biased.data() + whole * K, static_cast<size_t>((m - whole) * K));
  }
  alignas(64) int32_t c[kBlock * kBlock];
  amx::configure_tiles();
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kBlock) {
    const int64_t count = std::min<int64_t>(kBlock, n_end - n0);
    // The B operand of weight rows [n0, n0 + count) as two 16-row panels: tile row q of a panel holds codes
    // 4q .. 4q + 3 of each of its rows, one row per 32-bit lane. Four int8 codes fill 32 bits as two bf16
    // do, so this is the bf16 kernels' B layout at a depth of K / 2 "bf16": their packing serves as is.
    amx::rows_to_panels(reinterpret_cast<const uint16_t*>(codes + n0 * K), count, K / 2, 0, 2, panels.data());
    for (int64_t i0 = 0; i0 < m; i0 += kBlock) {
      const uint8_t* a = i0 < whole ? x.biased.data() + i0 * K : edge.data();
      const auto* b0 = reinterpret_cast<const uint8_t*>(panels.data());
      multiply_block<kUnsigned>(a, a + 16 * K, K, b0, b0 + 16 * K, K, c);
      finish_block<kUnsigned>(x, w, bias, c, i0, std::min<int64_t>(kBlock, m - i0), n0, count, y);
    }
  }
  amx::release_tiles();
}

}  // namespace

void amx_int8_rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                   int64_t n_begin, int64_t n_end) {
  if (w.codes == Codes::UInt8) return amx_rows<true>(x, w, bias, y, n_begin, n_end);
  amx_rows<false>(x, w, bias, y, n_begin, n_end);
}
#else
void amx_int8_rows(const Int8Activations&, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
#endif

}  // namespace lowbit::kernels

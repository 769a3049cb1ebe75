// W8A8 on AVX2 for many x rows (prefill): int8 weight codes times int8 activation codes, widened to int16 and
// multiplied with vpmaddwd into exact int32 sums. Highway 1.0.3 has no 16-bit multiply-add that keeps pairs
// as one op, so, as kernels_packed_vnni.cc, this file uses intrinsics in functions compiled for AVX2 only;
// they run only after avx2_int8_gemm_available() said so.
//
// Why a kernel of its own: Highway's generic int16 kernel (kernels_packed_hwy.cc) holds a 2 x 2 block on
// AVX2 and streams all of x for every pair of weight rows; at m = 512 it ran at 56-91 GFLOP/s per thread on
// Zen 3, below OpenBLAS's fp32 sgemm (62-88), so a W8A8 prefill was slower than bf16's. Here one step
// multiplies one weight row by M = 8 x rows over 16 columns: one widening load, 8 vpmaddwd (x straight from
// memory) and 8 vpaddd into 8 accumulators. On Zen 3 vpmaddwd and vpaddd share three vector pipes, so a
// step takes at least 16 / 3 cycles for 128 multiply-adds (24 per cycle; fp32 FMAs give 16): a loop of only
// those ops measures 71 G multiply-adds per second per core, the assembly loop below 72 with its loads from
// L1. (1 x 8 is the block with the fewest ops per multiply-add: one widening per 8 vpmaddwd.)
//
// Blocking: weight rows in tiles of 32, x rows in blocks of 8, columns in passes of 1024, so that a block of
// x (16 KiB of int16 codes) stays in L1 while the tile's 32 rows pass over it. (Passes of 512 split the
// reference model's 768 columns in two and ran 10-20 % slower there.) The sums are exact integers,
// so the partial sums of the passes add up to the same result in any order.
#include "runtime/kernels_packed_w8a8_avx2.h"

#include <algorithm>
#include <cmath>

#include "runtime/kernels_packed_hwy.h"
#include "runtime/kernels_packed_int16.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOWBIT_W8A8_AVX2 1
#endif

namespace lowbit::kernels {

bool avx2_int8_gemm_available() {
  return have_avx2_fma() && simd::int4_block_codes() == 64;
}

#ifdef LOWBIT_W8A8_AVX2
namespace {

constexpr int kXRows = 8;          // M: x rows per block
constexpr int64_t kTileRows = 32;  // weight rows per tile
constexpr int64_t kDepth = 1024;   // columns per pass: a block of x is 16 KiB of int16 codes

// Sum of the eight int32 lanes.
__attribute__((target("avx2"))) inline int32_t LaneSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// `steps` steps of 16 columns of the full block of 8 x rows: acc[i] += madd(widen(c), x row i) for each i.
// In assembly because GCC 12 compiles the intrinsics loop with a register copy of every accumulator per step
// (`vpaddd acc, p, p; vmovdqa p, acc`): 25 instead of 17 vector ops, and in an L1-resident loop on Zen 3
// 57 instead of 72 G multiply-adds per second. Rows 0-3 are addressed from qx, rows 4-7 from qx + 4 rows.
template <bool kUnsigned>
__attribute__((target("avx2"))) inline void FullBlockSteps(const int16_t* qx, int64_t ldx, int64_t steps,
                                                           const uint8_t* c, __m256i* acc) {
  static_assert(kXRows == 8);
  const int64_t row = ldx * 2;  // bytes
  const int64_t row3 = 3 * row;
  const int16_t* x0 = qx;
  const int16_t* x4 = qx + 4 * ldx;
  __m256i a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6],
          a7 = acc[7];
  // clang-format off
#define LOWBIT_MADD_ADD(addr, a) \
  "vpmaddwd " addr ", %%ymm15, %%ymm14\n\t" \
  "vpaddd %%ymm14, %[" a "], %[" a "]\n\t"
#define LOWBIT_FULL_BLOCK_STEPS(widen)                                                               \
  asm("1:\n\t"                                                                                       \
      widen " (%[c]), %%ymm15\n\t"                                                                   \
      LOWBIT_MADD_ADD("(%[x0])", "a0")                                                               \
      LOWBIT_MADD_ADD("(%[x0],%[row],1)", "a1")                                                      \
      LOWBIT_MADD_ADD("(%[x0],%[row],2)", "a2")                                                      \
      LOWBIT_MADD_ADD("(%[x0],%[row3],1)", "a3")                                                     \
      LOWBIT_MADD_ADD("(%[x4])", "a4")                                                               \
      LOWBIT_MADD_ADD("(%[x4],%[row],1)", "a5")                                                      \
      LOWBIT_MADD_ADD("(%[x4],%[row],2)", "a6")                                                      \
      LOWBIT_MADD_ADD("(%[x4],%[row3],1)", "a7")                                                     \
      "add $16, %[c]\n\t"                                                                            \
      "add $32, %[x0]\n\t"                                                                           \
      "add $32, %[x4]\n\t"                                                                           \
      "dec %[steps]\n\t"                                                                             \
      "jnz 1b"                                                                                       \
      : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),  \
        [a6] "+x"(a6), [a7] "+x"(a7), [c] "+r"(c), [x0] "+r"(x0), [x4] "+r"(x4), [steps] "+r"(steps) \
      : [row] "r"(row), [row3] "r"(row3)                                                             \
      : "xmm14", "xmm15", "cc", "memory")
  // clang-format on
  if constexpr (kUnsigned) {
    LOWBIT_FULL_BLOCK_STEPS("vpmovzxbw");
  } else {
    LOWBIT_FULL_BLOCK_STEPS("vpmovsxbw");
  }
#undef LOWBIT_FULL_BLOCK_STEPS
#undef LOWBIT_MADD_ADD
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3, acc[4] = a4, acc[5] = a5, acc[6] = a6, acc[7] = a7;
}

// sums[i * stride] += sum_k c[k] * qx[i * ldx + k] over `depth` columns for one weight row c (the stored
// bytes: signed for Int8, unsigned for UInt8, whose offset the caller removes) and M x rows.
template <bool kUnsigned, int M>
__attribute__((target("avx2"))) void DotBlock(const int16_t* qx, int64_t ldx, int64_t depth, const uint8_t* c,
                                              int32_t* sums, int64_t stride) {
  __m256i acc[M];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_si256();
  const int64_t full = depth / 16 * 16;
  if constexpr (M == kXRows) {
    if (full > 0) {
      FullBlockSteps<kUnsigned>(qx, ldx, full / 16, c, acc);
    }
  } else {
#pragma GCC unroll 1
    for (int64_t k = 0; k < full; k += 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + k));
      const __m256i wv = kUnsigned ? _mm256_cvtepu8_epi16(bytes) : _mm256_cvtepi8_epi16(bytes);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx + i * ldx + k));
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(wv, xv));
      }
    }
  }
  for (int i = 0; i < M; ++i) {
    int32_t s = LaneSum(acc[i]);
    for (int64_t k = full; k < depth; ++k)
      s += (kUnsigned ? static_cast<int32_t>(c[k]) : static_cast<int32_t>(static_cast<int8_t>(c[k]))) *
           qx[i * ldx + k];
    sums[i * stride] += s;
  }
}

template <bool kUnsigned, int M>
void TileBlock(const int16_t* qx, int64_t K, const uint8_t* codes, int64_t row_bytes, int64_t count,
               int32_t* sums) {
  for (int64_t k0 = 0; k0 < K; k0 += kDepth) {
    const int64_t depth = std::min(kDepth, K - k0);
    for (int64_t r = 0; r < count; ++r)
      DotBlock<kUnsigned, M>(qx + k0, K, depth, codes + r * row_bytes + k0, sums + r, kTileRows);
  }
}

template <bool kUnsigned>
void Rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y, int64_t n_begin,
          int64_t n_end) {
  const int64_t K = w.cols;
  const auto* codes = static_cast<const uint8_t*>(w.data);
  int32_t sums[kXRows * kTileRows];
  for (int64_t t0 = n_begin; t0 < n_end; t0 += kTileRows) {
    const int64_t count = std::min(kTileRows, n_end - t0);
    const uint8_t* tile = codes + t0 * w.row_bytes;
    for (int64_t i0 = 0; i0 < x.rows; i0 += kXRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kXRows, x.rows - i0));
      const int16_t* qx = x.codes.data() + i0 * K;
      std::fill(std::begin(sums), std::end(sums), 0);
      switch (rows) {
#define LOWBIT_W8A8_ROWS(m)                                         \
  case m:                                                           \
    TileBlock<kUnsigned, m>(qx, K, tile, w.row_bytes, count, sums); \
    break;
        LOWBIT_W8A8_ROWS(1)
        LOWBIT_W8A8_ROWS(2)
        LOWBIT_W8A8_ROWS(3)
        LOWBIT_W8A8_ROWS(4)
        LOWBIT_W8A8_ROWS(5)
        LOWBIT_W8A8_ROWS(6)
        LOWBIT_W8A8_ROWS(7)
        default:
          TileBlock<kUnsigned, kXRows>(qx, K, tile, w.row_bytes, count, sums);
          break;
#undef LOWBIT_W8A8_ROWS
      }
      if constexpr (kUnsigned) {  // the storage offset: c = q + 128
        for (int i = 0; i < rows; ++i)
          for (int64_t r = 0; r < count; ++r)
            sums[i * kTileRows + r] -= 128 * x.sums[static_cast<size_t>(i0 + i)];
      }
      int8_rescale(x, w, bias, sums, kTileRows, i0, rows, t0, count, y);
    }
  }
}

}  // namespace

__attribute__((target("avx2"))) bool avx2_quantize_int8_row(const float* x, int64_t K, float tensor_scale,
                                                            float* scale, int16_t* codes, uint8_t* biased,
                                                            int32_t* sum) {
  const int64_t full = K / 16 * 16;
  float s = tensor_scale;
  {
    // Non-finite values make the scalar definition's codes undefined: leave such rows to it. Otherwise the
    // largest magnitude is exact in any order.
    const __m256 sign = _mm256_set1_ps(-0.0f), infinity = _mm256_set1_ps(INFINITY);
    __m256 amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int64_t k = 0; k < full; k += 8) {
      const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, infinity, _CMP_NLT_UQ));
      amax = _mm256_max_ps(amax, a);
    }
    if (_mm256_movemask_ps(bad) != 0) return false;
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, amax);
    float top = 0.0f;
    for (float v : lanes) top = std::max(top, v);
    for (int64_t k = full; k < K; ++k) {
      if (!std::isfinite(x[k])) return false;
      top = std::max(top, std::fabs(x[k]));
    }
    if (s <= 0.0f) {
      s = top / 127.5f;
      if (s == 0.0f) s = std::ldexp(1.0f, -23);
    }
  }
  *scale = s;
  // vcvtps2dq rounds half to even (the default MXCSR mode), as the scalar magic-number addition does.
  const __m256 divisor = _mm256_set1_ps(s), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i total = _mm256_setzero_si256();
  for (int64_t k = 0; k < full; k += 16) {
    const __m256 c0 = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(_mm256_loadu_ps(x + k), divisor), lo), hi);
    const __m256 c1 =
        _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(_mm256_loadu_ps(x + k + 8), divisor), lo), hi);
    // packs interleaves the 128-bit halves (0-3, 8-11, 4-7, 12-15): restore column order.
    const __m256i q =
        _mm256_permute4x64_epi64(_mm256_packs_epi32(_mm256_cvtps_epi32(c0), _mm256_cvtps_epi32(c1)), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + k), q);
    const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packs_epi16(q, q), 0xD8);  // 16 codes, then again
    _mm_storeu_si128(reinterpret_cast<__m128i*>(biased + k),
                     _mm256_castsi256_si128(_mm256_xor_si256(bytes, flip)));
    total = _mm256_add_epi32(total, _mm256_madd_epi16(q, ones));
  }
  // The last K % 16 columns by the scalar definition, with the row's scale (> 0: it skips the maximum).
  float same = 0.0f;
  *sum = LaneSum(total) + quantize_int8_row_ref(x + full, K - full, s, &same, codes + full, biased + full);
  return true;
}

void avx2_int8_rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                    int64_t n_begin, int64_t n_end) {
  if (w.codes == Codes::UInt8) return Rows<true>(x, w, bias, y, n_begin, n_end);
  Rows<false>(x, w, bias, y, n_begin, n_end);
}
#else
void avx2_int8_rows(const Int8Activations&, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
bool avx2_quantize_int8_row(const float*, int64_t, float, float*, int16_t*, uint8_t*, int32_t*) {
  return false;
}
#endif

}  // namespace lowbit::kernels

// E4M3 weights rounded to bf16, by per-row table lookup on AVX2 (kernels_packed_fp8.h). Intrinsics in
// functions compiled for AVX2 + FMA only, as kernels_packed_int16.cc; they run after have_avx2_fma().
//
// Rows go in pairs, row a in the low 128-bit lane of every vector and row b in the high one, so that the
// in-lane unpacks give columns in order without a lane-crossing permute (a vpermd per chunk, which issues
// every other cycle on Zen 3, took a fifth of the loop when one row filled a vector). One step decodes 16
// codes (bytes b) of each row of a pair:
//   idx = (b & 7) | (exponent field == 0 ? 8 : 0)        table entry: the mantissa, or the subnormal one
//   lo, hi = vpshufb(table bytes, idx)                   the entry's bf16 bits, low and high bytes
//   hi ^= b & 0x80                                       the code's sign
//   bf16 = (lo, hi) interleaved to 16 bits + (exponent field << 7)
//   f32 = bf16 << 16      four vectors: [a cols 0-3 | b cols 0-3], [a 4-7 | b 4-7], [a 8-11 | b 8-11], ...
// Chunks whose codes all have a nonzero exponent field (PackedMatrix::zero_exponent_chunks) skip the
// subnormal index and two of the three shifts: their table is indexed by the code's low four bits (exponent
// bit 0 and mantissa; vpshufb ignores bits 4-6), and the exponent's upper bits are added to the high byte.
// The products are summed exactly as the fp32 decoder (kernels_packed_hwy.cc ByteDotBlock with kRound)
// sums them: one accumulator per row and group over 8-column vectors in column order, groups added in
// order, lanes reduced as Highway's SumOfLanes, the last K % 8 columns as a scalar sum added at the end. A
// pair's two accumulators hold lanes 0-3 and 4-7 of both rows' sums, so each lane adds the same products in
// the same order. So the outputs equal the fp32 decoder's on its AVX2 target bit for bit (on AVX-512 CPUs
// the fp32 decoder sums in 16 lanes, another order; kernels_packed_fp8.h), and models whose later layers
// quantize activations to fp8 (FP8_DYNAMIC, where one flipped code moves perplexity) give the same
// perplexity on either path.
#include "runtime/kernels_packed_fp8.h"

#include <algorithm>
#include <cmath>

#include "runtime/kernels_hwy.h"
#include "runtime/kernels_packed_hwy.h"    // the fp32 decoder, for the rows the tables cannot serve
#include "runtime/kernels_packed_int16.h"  // have_avx2_fma
#include "runtime/row_streams.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOWBIT_X86_GNU 1
#endif

namespace lowbit::kernels {

bool fp8_gemv_supports(const PackedMatrix& w) {
  return w.codes == Codes::E4M3 && w.round_to_bf16 && !w.has_zero_terms() && have_avx2_fma() &&
         (w.group_size >= w.cols || w.group_size % kFp8Chunk == 0);
}

std::vector<uint64_t> fp8_zero_exponent_chunks(const PackedMatrix& w) {
  const int64_t words = fp8_chunk_words(w.cols);
  std::vector<uint64_t> bits(static_cast<size_t>(w.rows * words), 0);
  if (w.codes != Codes::E4M3) return bits;
  static_assert(kFp8Chunk == 32, "simd::chunks_with_masked_zero takes chunks of 32 codes");
  for (int64_t n = 0; n < w.rows; ++n) {
    const auto* row = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
    simd::chunks_with_masked_zero(row, static_cast<size_t>(w.cols), 0x78, bits.data() + n * words);
  }
  return bits;
}

namespace {

// Whether a table for scale s (w.scales, which carry E4M3's 2^8) gives bf16(c s) exactly: its entries and
// their products with 2^e (e <= 15) stay normal, finite numbers in fp32 and bf16.
bool table_serves(float s) {
  const float a = std::abs(s);
  return std::isfinite(s) && a >= std::ldexp(1.0f, -100) && a <= std::ldexp(1.0f, 100);
}

}  // namespace

#ifdef LOWBIT_X86_GNU
namespace {

#define LOWBIT_AVX2 __attribute__((target("avx2,fma")))
#define LOWBIT_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline))

// A row's table as two byte vectors (the low and high bytes of its 16 bf16 entries, in both 128-bit lanes).
struct Table {
  __m256i lo, hi;
};

// v rounded to nearest even bf16 (finite values: f32_to_bf16), in the low 16 bits of each lane.
LOWBIT_AVX2 inline __m256i ToBf16Bits(__m256 v) {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
}

// Entries 0-7: bf16((1 + m/8) s 2^-15) (normal codes; the 2^-15 = 2^-7 of the exponent bias times the
// 2^-8 folded into s); entries 8-15: bf16((m/8) s 2^-14) (subnormal codes: (m/8) 2^-6 / 2^8). Each is
// the fp32 product rounded to nearest even bf16, as packed_weight rounds c s. With kOddExponent, entries
// 8-15 are entries 0-7 times 2 instead (their bf16 bits + 1 << 7), for codes with exponent bit 0 set.
template <bool kOddExponent>
LOWBIT_AVX2 inline Table MakeTable(float s) {
  const __m256 scale = _mm256_set1_ps(s);
  const __m256 normal = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_setr_ps(1.0f, 1.125f, 1.25f, 1.375f, 1.5f, 1.625f, 1.75f, 1.875f), scale),
      _mm256_set1_ps(std::ldexp(1.0f, -15)));
  const __m256 subnormal = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_setr_ps(0.0f, 0.125f, 0.25f, 0.375f, 0.5f, 0.625f, 0.75f, 0.875f), scale),
      _mm256_set1_ps(std::ldexp(1.0f, -14)));
  const __m256i normal_bits = ToBf16Bits(normal);
  const __m256i upper = kOddExponent ? _mm256_add_epi32(normal_bits, _mm256_set1_epi32(1 << 7))  // 2^e0 = 2
                                     : ToBf16Bits(subnormal);
  // packus interleaves the lanes: [n0-3 u0-3 | n4-7 u4-7] -> [n0-7 | u0-7] as 16 uint16.
  const __m256i entries = _mm256_permute4x64_epi64(_mm256_packus_epi32(normal_bits, upper), 0xD8);
  // Per 128-bit lane (8 entries): low bytes to bytes 0-7, high bytes to 8-15.
  const __m256i split =
      _mm256_shuffle_epi8(entries, _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0,
                                                    2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
  // 64-bit quarters: [lo 0-7, hi 0-7 | lo 8-15, hi 8-15] -> lo = quarters 0, 2; hi = quarters 1, 3.
  const __m256i lo = _mm256_permute4x64_epi64(split, 0x88);  // 0, 2, 0, 2
  const __m256i hi = _mm256_permute4x64_epi64(split, 0xDD);  // 1, 3, 1, 3
  return {lo, hi};
}

// The tables of two rows in one: row a's in the low 128-bit lane, row b's in the high one.
template <bool kOddExponent>
LOWBIT_AVX2 inline Table PairTable(float sa, float sb) {
  const Table a = MakeTable<kOddExponent>(sa), b = MakeTable<kOddExponent>(sb);
  return {_mm256_blend_epi32(a.lo, b.lo, 0xF0), _mm256_blend_epi32(a.hi, b.hi, 0xF0)};
}

// bf16 bits (16-bit lanes, in the lanes' byte order) to four fp32 vectors of four columns per row:
// [a 0-3 | b 0-3], [a 4-7 | b 4-7] from `low` (codes 0-7 of each lane), [a 8-11 | b 8-11], [a 12-15 | b
// 12-15] from `high`.
LOWBIT_AVX2 inline void WidenBf16(__m256i low, __m256i high, __m256 (&f)[4]) {
  const __m256i zero = _mm256_setzero_si256();
  f[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, low));
  f[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, low));
  f[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, high));
  f[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, high));
}

// 16 codes of each row of a pair (b: row a's in the low lane, row b's in the high one), any codes, with
// MakeTable<false>'s tables.
LOWBIT_AVX2 inline void DecodePair(__m256i b, const Table& t, __m256i& nan_max, __m256 (&f)[4]) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i magnitude = _mm256_and_si256(b, _mm256_set1_epi8(0x7F));
  nan_max = _mm256_max_epu8(nan_max, magnitude);  // 0x7F only for a NaN code
  const __m256i exponent = _mm256_and_si256(_mm256_srli_epi16(b, 3), _mm256_set1_epi8(0x0F));
  const __m256i subnormal = _mm256_and_si256(_mm256_cmpeq_epi8(exponent, zero), _mm256_set1_epi8(8));
  const __m256i idx = _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi8(7)), subnormal);
  const __m256i lo = _mm256_shuffle_epi8(t.lo, idx);
  const __m256i hi =
      _mm256_xor_si256(_mm256_shuffle_epi8(t.hi, idx), _mm256_and_si256(b, _mm256_set1_epi8(-128)));
  WidenBf16(_mm256_add_epi16(_mm256_unpacklo_epi8(lo, hi),
                             _mm256_slli_epi16(_mm256_unpacklo_epi8(exponent, zero), 7)),
            _mm256_add_epi16(_mm256_unpackhi_epi8(lo, hi),
                             _mm256_slli_epi16(_mm256_unpackhi_epi8(exponent, zero), 7)),
            f);
}

// DecodePair for codes whose exponent field e is nonzero, with MakeTable<true>'s tables: the code's
// low four bits pick the bf16 bits of (1 + m/8) s 2^(e0 - 15) for e0 = e & 1 (vpshufb reads bits 0-3 of
// its index and bit 7, the sign, which is masked), and (e >> 1) << 8 is added to them as e >> 1 added to
// the high byte (exponent field bits 1-7: no carry within range, see table_serves).
LOWBIT_AVX2 inline void DecodePairNormal(__m256i b, const Table& t, __m256i& nan_max, __m256 (&f)[4]) {
  const __m256i magnitude = _mm256_and_si256(b, _mm256_set1_epi8(0x7F));
  nan_max = _mm256_max_epu8(nan_max, magnitude);
  const __m256i lo = _mm256_shuffle_epi8(t.lo, magnitude);
  const __m256i upper_exponent = _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(7));
  const __m256i hi = _mm256_xor_si256(_mm256_add_epi8(_mm256_shuffle_epi8(t.hi, magnitude), upper_exponent),
                                      _mm256_and_si256(b, _mm256_set1_epi8(-128)));
  WidenBf16(_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi), f);
}

LOWBIT_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct Call {
  const float* x;
  int64_t m;
  const PackedMatrix* w;
  const float* bias;
  float* y;
};

// acc + w8[v] * x[v] for `count` 8-column vectors in order.
LOWBIT_AVX2 inline __m256 FmaVectors(const float* w8, const float* x, int64_t count, __m256 acc) {
  for (int64_t v = 0; v < count; ++v)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(w8 + 8 * v), _mm256_loadu_ps(x + 8 * v), acc);
  return acc;
}

enum class Block { Done, ScaleOutOfRange, NanCode };

// Whether chunk q (codes 32q .. 32q + 31) of any of rows n[0 .. R) holds a code with a zero exponent field;
// true for every chunk when w has no zero_exponent_chunks.
template <int R>
inline bool ZeroExponentChunk(const PackedMatrix& w, const int64_t* n, int64_t q) {
  if (w.zero_exponent_chunks == nullptr) return true;
  const int64_t words = fp8_chunk_words(w.cols);
  uint64_t any = 0;
  for (int r = 0; r < R; ++r) any |= w.zero_exponent_chunks[n[r] * words + q / 64];
  return ((any >> (q % 64)) & 1) != 0;
}

// Rows n[0 .. 2P) against x rows i0 .. i0 + M - 1, in pairs (n[2p], n[2p + 1]), summed as the fp32 decoder
// sums (see the top of the file). Unless Done, out is not valid.
template <int P, int M>
LOWBIT_AVX2 Block DotBlock(const Call& call, const int64_t* n, int64_t i0, float* out) {
  constexpr int R = 2 * P;
  const PackedMatrix& w = *call.w;
  const int64_t K = w.cols, G = w.groups(), gs = std::min(w.group_size, K);
  const uint8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = static_cast<const uint8_t*>(w.data) + n[r] * w.row_bytes;
  __m256 total[R][M];
  float tail[R][M] = {};
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) total[r][i] = _mm256_setzero_ps();
  __m256i nan_max = _mm256_setzero_si256();
  for (int64_t g = 0; g < G; ++g) {
    const int64_t k0 = g * gs, k1 = std::min(K, k0 + gs);
    const int64_t kc = k0 + (k1 - k0) / kFp8Chunk * kFp8Chunk;  // end of the whole chunks
    const int64_t kv = k0 + (k1 - k0) / 8 * 8;                  // end of the whole 8-column vectors
    Table table[P], normal_table[P];
    for (int p = 0; p < P; ++p) {
      const float sa = w.scales[n[2 * p] * G + g], sb = w.scales[n[2 * p + 1] * G + g];
      if (!table_serves(sa) || !table_serves(sb)) return Block::ScaleOutOfRange;
      table[p] = PairTable<false>(sa, sb);
      normal_table[p] = PairTable<true>(sa, sb);
    }
    // acc_lo[p] holds lanes 0-3 of both rows' 8-lane sums (row a low, row b high), acc_hi lanes 4-7.
    __m256 acc_lo[P][M], acc_hi[P][M];
    for (int p = 0; p < P; ++p)
      for (int i = 0; i < M; ++i) acc_lo[p][i] = acc_hi[p][i] = _mm256_setzero_ps();
    // One step: 32 columns of every row, decoded by decode(codes, p, f).
    const auto step = [&](int64_t k, auto decode) LOWBIT_AVX2_INLINE {
      for (int p = 0; p < P; ++p) {
        const uint8_t* a = rows[2 * p] + k;
        const uint8_t* b = rows[2 * p + 1] + k;
        // Each row is read as part of a sequential stream (fp8_gemv_rows); without a prefetch ahead of it
        // the loads stall on DRAM (40 % of this loop's samples in an earlier version).
        _mm_prefetch(reinterpret_cast<const char*>(a + kRowStreamPrefetchBytes), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b + kRowStreamPrefetchBytes), _MM_HINT_T0);
        for (int h = 0; h < kFp8Chunk; h += 16) {
          __m256 f[4];
          decode(_mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b + h),
                                     reinterpret_cast<const __m128i*>(a + h)),
                 p, f);
          for (int i = 0; i < M; ++i) {
            const float* x = call.x + (i0 + i) * K + k + h;
            for (int v = 0; v < 4; ++v) {
              // Columns 4v .. 4v + 3 of the 16, in both lanes; lanes 0-3 of the 8-lane sums for even v.
              const __m256 xv = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(x + 4 * v));
              __m256& acc = v % 2 == 0 ? acc_lo[p][i] : acc_hi[p][i];
              acc = _mm256_fmadd_ps(f[v], xv, acc);
            }
          }
        }
      }
    };
    const auto any_codes = [&](__m256i codes, int p, __m256(&f)[4])
                               LOWBIT_AVX2_INLINE { DecodePair(codes, table[p], nan_max, f); };
    const auto normal_codes = [&](__m256i codes, int p, __m256(&f)[4]) LOWBIT_AVX2_INLINE {
      DecodePairNormal(codes, normal_table[p], nan_max, f);
    };
    // Runs of normal chunks through the short decoder, each chunk with a zero exponent through the full one.
    // (A per-chunk choice inside one loop was slower: the compiler then spilled the accumulators.)
    for (int64_t k = k0; k < kc;) {
      int64_t run_end = k;
      while (run_end < kc && !ZeroExponentChunk<R>(w, n, run_end / kFp8Chunk)) run_end += kFp8Chunk;
      for (; k < run_end; k += kFp8Chunk) step(k, normal_codes);
      if (k < kc) {
        step(k, any_codes);
        k += kFp8Chunk;
      }
    }
    for (int r = 0; r < R; ++r) {
      const int p = r / 2;
      alignas(32) float w8[kFp8Chunk];  // the whole vectors after the last chunk, by the scalar definition
      for (int64_t k = kc; k < kv; ++k) w8[k - kc] = packed_weight(w, n[r], k);
      for (int i = 0; i < M; ++i) {
        const float* x = call.x + (i0 + i) * K;
        // The row's 8-lane sum: lanes 0-3 from acc_lo, 4-7 from acc_hi (row a: low halves, row b: high).
        __m256 acc = r % 2 == 0 ? _mm256_permute2f128_ps(acc_lo[p][i], acc_hi[p][i], 0x20)
                                : _mm256_permute2f128_ps(acc_lo[p][i], acc_hi[p][i], 0x31);
        acc = FmaVectors(w8, x + kc, (kv - kc) / 8, acc);
        total[r][i] = _mm256_add_ps(total[r][i], acc);
        // As the fp32 decoder's `tail += w * x`, which the compiler contracts to a fused multiply-add.
        for (int64_t k = kv; k < k1; ++k) tail[r][i] = std::fma(packed_weight(w, n[r], k), x[k], tail[r][i]);
      }
    }
  }
  if (_mm256_movemask_epi8(_mm256_cmpeq_epi8(nan_max, _mm256_set1_epi8(0x7F))) != 0) return Block::NanCode;
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) out[i * R + r] = HorizontalSum(total[r][i]) + tail[r][i];
  return Block::Done;
}

// Rows n .. n + count - 1 of every x row by the fp32 decoder, then the rows holding a NaN code by the
// scalar definition.
void FallBackRange(const Call& call, int64_t n, int64_t count) {
  const PackedMatrix& w = *call.w;
  const int64_t N = w.rows, K = w.cols;
  simd::PackedGemvArgs args;
  args.x = call.x;
  args.m = call.m;
  args.w = call.w;
  args.bias = call.bias;
  args.y = call.y;
  simd::packed_gemv_rows(args, n, n + count);
  for (int64_t r = n; r < n + count; ++r) {
    const auto* codes = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
    if (std::none_of(codes, codes + K, [](uint8_t b) { return (b & 0x7F) == 0x7F; })) continue;
    for (int64_t i = 0; i < call.m; ++i) {
      float v = call.bias ? call.bias[r] : 0.0f;
      for (int64_t k = 0; k < K; ++k) v += packed_weight(w, r, k) * call.x[i * K + k];
      call.y[i * N + r] = v;
    }
  }
}

// Rows n[0 .. R) for every x row: by table; the bias, the store. When DotBlock declines (for reasons of the
// rows, so the first x rows already tell), the fp32 decoder computes the rows, and rows holding a NaN code
// are then redone by the scalar definition, whose NaN (as torch's) poisons the row: the fp32 decoder reads
// E4M3 NaN codes as +-480. R is even (rows go in pairs).
template <int R>
LOWBIT_AVX2 void Rows(const Call& call, const int64_t* n) {
  static_assert(R % 2 == 0);
  const int64_t N = call.w->rows;
  float out[2 * R];
  for (int64_t i0 = 0; i0 < call.m; i0 += 2) {
    const int count = static_cast<int>(std::min<int64_t>(2, call.m - i0));
    const Block block =
        count == 2 ? DotBlock<R / 2, 2>(call, n, i0, out) : DotBlock<R / 2, 1>(call, n, i0, out);
    if (block != Block::Done) {
      for (int r = 0; r < R; ++r) FallBackRange(call, n[r], 1);
      return;
    }
    for (int i = 0; i < count; ++i) {
      for (int r = 0; r < R; ++r) {
        float v = out[i * R + r];
        if (call.bias) v += call.bias[n[r]];
        call.y[(i0 + i) * N + n[r]] = v;
      }
    }
  }
}

}  // namespace

void fp8_gemv_rows(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y,
                   int64_t n_begin, int64_t n_end) {
  const Call call{x, m, &w, bias, y};
  // Four rows a step, two pairs: their accumulators are four independent chains of fused multiply-adds
  // (each row's sum runs in column order, as the fp32 decoder's, so one pair alone would wait on its
  // chains). They come from four quarters of the range (row_streams.h). A row left over fills both lanes.
  for_rows_in_four_streams(
      n_begin, n_end, [&](const int64_t* n) { Rows<kRowStreams>(call, n); },
      [&](const int64_t* n) {
        const int64_t pair[2] = {*n, *n};
        Rows<2>(call, pair);
      });
}
#else
void fp8_gemv_rows(const float*, int64_t, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
#endif

}  // namespace lowbit::kernels

// E4M3 weights rounded to bf16, by per-row table lookup on AVX2 (kernels_packed_fp8.h). Intrinsics in
// functions compiled for AVX2 + FMA only, as kernels_packed_int16.cc; they run after have_avx2_fma().
//
// One step decodes 32 codes (bytes b) of one row:
//   b' = b with its dwords reordered (vpermd) so that the in-lane unpacks below give columns in order
//   idx = (b' & 7) | (exponent field == 0 ? 8 : 0)     table entry: the mantissa, or the subnormal one
//   lo, hi = vpshufb(table bytes, idx)                   the entry's bf16 bits, low and high bytes
//   hi ^= b' & 0x80                                      the code's sign
//   bf16 = (lo, hi) interleaved to 16 bits + (exponent field << 7)
//   f32 = bf16 << 16                                     four vectors: columns 0-7, 8-15, 16-23, 24-31
// The products are summed exactly as the fp32 decoder (kernels_packed_hwy.cc ByteDotBlock with kRound)
// sums them: one accumulator per row and group over 8-column vectors in column order, groups added in
// order, lanes reduced as Highway's SumOfLanes, the last K % 8 columns as a scalar sum added at the end.
// So the outputs equal the fp32 decoder's bit for bit, and models whose later layers quantize activations
// to fp8 (FP8_DYNAMIC, where one flipped code moves perplexity) give the same perplexity on either path.
#include "runtime/kernels_packed_fp8.h"

#include <algorithm>
#include <cmath>

#include "runtime/kernels_packed_hwy.h"    // the fp32 decoder, for the rows the tables cannot serve
#include "runtime/kernels_packed_int16.h"  // have_avx2_fma
#include "runtime/row_streams.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOWBIT_X86_GNU 1
#endif

namespace lowbit::kernels {

bool fp8_gemv_supports(const PackedMatrix& w) {
  // The fp32 decoder sums in 8-lane vectors only on its AVX2 target (int4 blocks of 8 x 8 codes); with
  // AVX-512 its 16 lanes sum in another order, and the table path would no longer equal it bit for bit.
  return w.codes == Codes::E4M3 && w.round_to_bf16 && !w.has_zero_terms() && have_avx2_fma() &&
         (w.group_size >= w.cols || w.group_size % kFp8Chunk == 0) && simd::int4_block_codes() == 64;
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
// the fp32 product rounded to nearest even bf16, as packed_weight rounds c s.
LOWBIT_AVX2 inline Table MakeTable(float s) {
  const __m256 scale = _mm256_set1_ps(s);
  const __m256 normal = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_setr_ps(1.0f, 1.125f, 1.25f, 1.375f, 1.5f, 1.625f, 1.75f, 1.875f), scale),
      _mm256_set1_ps(std::ldexp(1.0f, -15)));
  const __m256 subnormal = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_setr_ps(0.0f, 0.125f, 0.25f, 0.375f, 0.5f, 0.625f, 0.75f, 0.875f), scale),
      _mm256_set1_ps(std::ldexp(1.0f, -14)));
  // packus interleaves the lanes: [n0-3 d0-3 | n4-7 d4-7] -> [n0-7 | d0-7] as 16 uint16.
  const __m256i entries =
      _mm256_permute4x64_epi64(_mm256_packus_epi32(ToBf16Bits(normal), ToBf16Bits(subnormal)), 0xD8);
  // Per 128-bit lane (8 entries): low bytes to bytes 0-7, high bytes to 8-15.
  const __m256i split =
      _mm256_shuffle_epi8(entries, _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0,
                                                    2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
  // 64-bit quarters: [lo 0-7, hi 0-7 | lo 8-15, hi 8-15] -> lo = quarters 0, 2; hi = quarters 1, 3.
  const __m256i lo = _mm256_permute4x64_epi64(split, 0x88);  // 0, 2, 0, 2
  const __m256i hi = _mm256_permute4x64_epi64(split, 0xDD);  // 1, 3, 1, 3
  return {lo, hi};
}

// The 32 weights of one chunk as four fp32 vectors, columns 0-7, 8-15, 16-23, 24-31.
LOWBIT_AVX2 inline void DecodeChunk(const uint8_t* p, const Table& t, __m256i& nan_max, __m256 (&f)[4]) {
  // Dword d holds columns 4d .. 4d + 3: the low 128-bit lane gets the even dwords and the high lane the
  // odd ones, so that each unpack's low and high lane results are adjacent columns.
  const __m256i b = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                                                _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i magnitude = _mm256_and_si256(b, _mm256_set1_epi8(0x7F));
  nan_max = _mm256_max_epu8(nan_max, magnitude);  // 0x7F only for a NaN code
  const __m256i exponent = _mm256_and_si256(_mm256_srli_epi16(b, 3), _mm256_set1_epi8(0x0F));
  const __m256i subnormal = _mm256_and_si256(_mm256_cmpeq_epi8(exponent, zero), _mm256_set1_epi8(8));
  const __m256i idx = _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi8(7)), subnormal);
  const __m256i lo = _mm256_shuffle_epi8(t.lo, idx);
  const __m256i hi =
      _mm256_xor_si256(_mm256_shuffle_epi8(t.hi, idx), _mm256_and_si256(b, _mm256_set1_epi8(-128)));
  const __m256i a = _mm256_add_epi16(_mm256_unpacklo_epi8(lo, hi),
                                     _mm256_slli_epi16(_mm256_unpacklo_epi8(exponent, zero), 7));
  const __m256i c = _mm256_add_epi16(_mm256_unpackhi_epi8(lo, hi),
                                     _mm256_slli_epi16(_mm256_unpackhi_epi8(exponent, zero), 7));
  f[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, a));
  f[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, a));
  f[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, c));
  f[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, c));
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

// Rows n[0 .. R) against x rows i0 .. i0 + M - 1, summed as the fp32 decoder sums (see the top of the
// file). Unless Done, out is not valid.
template <int R, int M>
LOWBIT_AVX2 Block DotBlock(const Call& call, const int64_t* n, int64_t i0, float* out) {
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
    Table table[R];
    for (int r = 0; r < R; ++r) {
      const float s = w.scales[n[r] * G + g];
      if (!table_serves(s)) return Block::ScaleOutOfRange;
      table[r] = MakeTable(s);
    }
    __m256 acc[R][M];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < M; ++i) acc[r][i] = _mm256_setzero_ps();
    for (int64_t k = k0; k < kc; k += kFp8Chunk) {
      for (int r = 0; r < R; ++r) {
        // Each row is read as part of a sequential stream (fp8_gemv_rows); without a prefetch ahead of it
        // the loads stall on DRAM (40 % of this loop's samples with the previous row order).
        _mm_prefetch(reinterpret_cast<const char*>(rows[r] + k + kRowStreamPrefetchBytes), _MM_HINT_T0);
        __m256 f[4];
        DecodeChunk(rows[r] + k, table[r], nan_max, f);
        for (int i = 0; i < M; ++i) {
          const float* x = call.x + (i0 + i) * K + k;
          for (int v = 0; v < 4; ++v)
            acc[r][i] = _mm256_fmadd_ps(f[v], _mm256_loadu_ps(x + 8 * v), acc[r][i]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      alignas(32) float w8[kFp8Chunk];  // the whole vectors after the last chunk, by the scalar definition
      for (int64_t k = kc; k < kv; ++k) w8[k - kc] = packed_weight(w, n[r], k);
      for (int i = 0; i < M; ++i) {
        const float* x = call.x + (i0 + i) * K;
        acc[r][i] = FmaVectors(w8, x + kc, (kv - kc) / 8, acc[r][i]);
        total[r][i] = _mm256_add_ps(total[r][i], acc[r][i]);
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
// E4M3 NaN codes as +-480.
template <int R>
LOWBIT_AVX2 void Rows(const Call& call, const int64_t* n) {
  const int64_t N = call.w->rows;
  float out[2 * R];
  for (int64_t i0 = 0; i0 < call.m; i0 += 2) {
    const int count = static_cast<int>(std::min<int64_t>(2, call.m - i0));
    const Block block = count == 2 ? DotBlock<R, 2>(call, n, i0, out) : DotBlock<R, 1>(call, n, i0, out);
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
  // Four rows a step: their accumulators are four independent chains of fused multiply-adds (each row's
  // sum runs in column order, as the fp32 decoder's, so one row alone would wait on its chain). They come
  // from four quarters of the range (row_streams.h).
  for_rows_in_four_streams(
      n_begin, n_end, [&](const int64_t* n) { Rows<kRowStreams>(call, n); },
      [&](const int64_t* n) { Rows<1>(call, n); });
}
#else
void fp8_gemv_rows(const float*, int64_t, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
#endif

}  // namespace lowbit::kernels

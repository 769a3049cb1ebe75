// int4 / 8-bit weight codes times int16 activation codes on AVX2 (kernels_packed_int16.h). Highway 1.0.3
// (Debian 12) has no 16-bit multiply-add that keeps pairs, so, as kernels_packed_vnni.cc, this file uses
// intrinsics in functions compiled for AVX2 + FMA only; they run only after have_avx2_fma() said the CPU has
// them (the rest of the library is built for the baseline).
//
// One step decodes a chunk of 64 columns of one weight row into four vectors of 16 int16 codes within
// 128-bit lanes (the lane-crossing vpmovzxbw halved the rate on Zen 3):
//   Int4   32 bytes = 16 int16 lanes, lane t holding columns 4t .. 4t + 3 in its four nibbles (quant/pack.h
//          puts code k at bits 4 (k % 8) of word k / 8); shifts by 0, 4, 8, 12 and masks give the four code
//          vectors, v holding column 4t + v in lane t (3 shifts + 3 ands: 4-7 % faster in packed_bench at
//          4096-wide shapes than splitting bytes into nibbles and unpacking them with zeros);
//   UInt8 / Int8  bytes 0-15 of both 32-column halves in one register and bytes 16-31 in another, unpacked
//          in-lane with zeros (or sign-extended).
// Either way the 128-bit halves of every code vector come from columns [0, 32) and [32, 64): after vpmaddwd
// against x in the same order (int16_chunk_position), int32 lanes 0-3 hold sums over the first block and
// lanes 4-7 over the second. The sums are exact: |c| <= 255 and |xq| <= 32767 keep the eight products of a
// lane below 2^27. Each lane is then scaled by its block's activation scale (and, when a group boundary
// falls inside the chunk, its weight scale) in fp32.
//
// Blocking: one x row (decode) multiplies four weight rows per step with its chunk held in registers
// (DotBlock); several x rows (batched decode) go in blocks of up to 8 against one weight row at a time,
// each chunk decoded once for the block and x read from L1 (DotRowMany). Both do the same floating-point
// operations per (weight row, x row), so a batch gives each sequence the same bits as decoding it alone.
#include "runtime/kernels_packed_int16.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "runtime/row_streams.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOWBIT_X86_GNU 1
#endif

namespace lowbit::kernels {

bool have_avx2_fma() {
#ifdef LOWBIT_X86_GNU
  static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
#else
  return false;
#endif
}

bool int16_gemv_supports(const PackedMatrix& w) {
  if (w.codes != Codes::Int4 && w.codes != Codes::UInt8 && w.codes != Codes::Int8) return false;
  return w.group_size >= w.cols || w.group_size % kInt16Block == 0;
}

int64_t int16_chunk_position(Codes codes, int64_t j) {
  // Which code vector (v) and which of its 16 lanes column j lands in; lanes 0-7 come from the low 128-bit
  // half, 8-15 from the high one.
  if (codes == Codes::Int4) return 16 * (j % 4) + j / 4;  // int16 lane j / 4 holds columns 4t .. 4t + 3
  const int64_t half = j / 32, byte = j % 16;
  const int64_t v_pair = (j % 32) / 16;  // bytes 0-15 of each half: vectors 0, 1; bytes 16-31: 2, 3
  const int64_t v = 2 * v_pair + (byte >= 8 ? 1 : 0);  // unpacklo then unpackhi
  return 16 * v + 8 * half + byte % 8;
}

namespace {

constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23

bool decoder_order(int64_t chunk, int64_t K) {
  return (chunk + 1) * kInt16Chunk <= K;
}

// int16_chunk_position for every column of a chunk, built once per code layout (Int4, or bytes).
using ChunkPositions = std::array<int64_t, kInt16Chunk>;
const ChunkPositions& chunk_positions(Codes codes) {
  static const auto table = [](Codes c) {
    ChunkPositions p{};
    for (int64_t j = 0; j < kInt16Chunk; ++j) p[static_cast<size_t>(j)] = int16_chunk_position(c, j);
    return p;
  };
  static const ChunkPositions int4 = table(Codes::Int4), bytes = table(Codes::Int8);
  return codes == Codes::Int4 ? int4 : bytes;
}

// Sizes `out` for m rows of w's columns.
void shape_activations(Int16Activations& out, int64_t m, const PackedMatrix& w) {
  const int64_t K = w.cols;
  out.rows = m;
  out.cols = K;
  out.blocks = (K + kInt16Block - 1) / kInt16Block;
  out.chunks = (K + kInt16Chunk - 1) / kInt16Chunk;
  out.codes.assign(static_cast<size_t>(m * out.chunks * kInt16Chunk), 0);
  out.scales.assign(static_cast<size_t>(m * out.blocks), 0.0f);
  out.lane_scales.assign(static_cast<size_t>(m * out.chunks * 8), 0.0f);
  out.group_sums.assign(static_cast<size_t>(m * w.groups()), 0.0f);
}

// Places one full block (32 codes in column order) of a chunk (q: the chunk's 64 slots; half: the block's
// place in it) in decoder order, int16_chunk_position, and returns the codes' sum.
int32_t place_block_avx2(Codes layout, const int16_t* codes, int16_t* q, int64_t half);

// Stores block b of row i: its codes (n of them, column order) where the decoder reads them, its scale in
// the block and lane tables, and its sum in its group's (groups hold whole blocks: int16_gemv_supports).
// With avx2, a full block in decoder order is placed by place_block_avx2 (the same stores).
void place_block(Int16Activations& out, const PackedMatrix& w, const ChunkPositions& position, int64_t i,
                 int64_t b, const int16_t* codes, float scale, bool avx2) {
  const int64_t K = w.cols, k0 = b * kInt16Block, n = std::min(kInt16Block, K - k0);
  const int64_t chunk = k0 / kInt16Chunk;
  int16_t* q = out.codes.data() + (i * out.chunks + chunk) * kInt16Chunk;
  const bool permuted = decoder_order(chunk, K);
  int32_t sum = 0;
  if (avx2 && permuted && n == kInt16Block) {
    sum = place_block_avx2(w.codes, codes, q, k0 % kInt16Chunk / kInt16Block);
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t col = k0 % kInt16Chunk + j;
      q[permuted ? position[static_cast<size_t>(col)] : col] = codes[j];
      sum += codes[j];
    }
  }
  out.scales[static_cast<size_t>(i * out.blocks + b)] = scale;
  float* lanes = out.lane_scales.data() + (i * out.chunks + chunk) * 8 + (k0 % kInt16Chunk == 0 ? 0 : 4);
  std::fill(lanes, lanes + 4, scale);
  out.group_sums[static_cast<size_t>(i * w.groups() + k0 / w.group_size)] += static_cast<float>(sum) * scale;
}

// The reference: n (<= 32) values to int16 codes of a block scale max|x| / 32767, returned.
float quantize_int16_block(const float* xb, int64_t n, int16_t* codes) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t j = 0; j < n; ++j) {
    finite = finite && std::isfinite(xb[j]);
    amax = std::max(amax, std::abs(xb[j]));
  }
  // A non-finite input leaves the codes 0 and a NaN scale, which carries it into every output.
  float inverse = finite && amax > 0.0f ? 32767.0f / amax : 0.0f;
  if (!std::isfinite(inverse)) inverse = 0.0f;  // amax below 2^-116: codes 0 (no overflow to infinity)
  for (int64_t j = 0; j < n; ++j) {
    // Round to nearest even by adding and removing 1.5 * 2^23 (exact for |v| < 2^22; std::lrint is a libm
    // call here). |xb[j] * inverse| <= 32767 (+ rounding), so the result fits int16.
    const float v = xb[j] * inverse;
    codes[j] = static_cast<int16_t>((v + kRoundMagic) - kRoundMagic);
  }
  return finite ? amax / 32767.0f : std::nanf("");
}

// quantize_int16_block for a full block of 32 finite values on AVX2; false (nothing written) otherwise.
bool quantize_int16_block_avx2(const float* xb, int16_t* codes, float* scale);

}  // namespace

namespace {
void quantize_activations(const float* x, int64_t m, const PackedMatrix& w, Int16Activations& out,
                          bool avx2) {
  const int64_t K = w.cols;
  shape_activations(out, m, w);
  const ChunkPositions& position = chunk_positions(w.codes);
  int16_t codes[kInt16Block];
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < out.blocks; ++b) {
      const int64_t k0 = b * kInt16Block, n = std::min(kInt16Block, K - k0);
      const float* xb = x + i * K + k0;
      float scale;
      // A block holding a NaN or an infinity goes the scalar way.
      if (!(avx2 && n == kInt16Block && quantize_int16_block_avx2(xb, codes, &scale)))
        scale = quantize_int16_block(xb, n, codes);
      place_block(out, w, position, i, b, codes, scale, avx2);
    }
  }
}
}  // namespace

void quantize_int16_activations(const float* x, int64_t m, const PackedMatrix& w, Int16Activations& out) {
  quantize_activations(x, m, w, out, have_avx2_fma());
}

void quantize_int16_activations_ref(const float* x, int64_t m, const PackedMatrix& w, Int16Activations& out) {
  quantize_activations(x, m, w, out, false);
}

void int16_activations_from_codes(const int16_t* codes, const float* row_scales, int64_t m,
                                  const PackedMatrix& w, Int16Activations& out) {
  const int64_t K = w.cols;
  shape_activations(out, m, w);
  const ChunkPositions& position = chunk_positions(w.codes);
  const bool avx2 = have_avx2_fma();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t b = 0; b < out.blocks; ++b)
      place_block(out, w, position, i, b, codes + i * K + b * kInt16Block, row_scales[i], avx2);
}

std::vector<float> int16_activation_values(const Int16Activations& x, const PackedMatrix& w) {
  const int64_t K = x.cols;
  std::vector<float> out(static_cast<size_t>(x.rows * K));
  for (int64_t i = 0; i < x.rows; ++i) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t chunk = k / kInt16Chunk, j = k % kInt16Chunk;
      const int64_t pos = decoder_order(chunk, K) ? chunk_positions(w.codes)[static_cast<size_t>(j)] : j;
      const int16_t c = x.codes[static_cast<size_t>((i * x.chunks + chunk) * kInt16Chunk + pos)];
      out[static_cast<size_t>(i * K + k)] = c * x.scales[static_cast<size_t>(i * x.blocks + k / kInt16Block)];
    }
  }
  return out;
}

#ifdef LOWBIT_X86_GNU
namespace {

#define LOWBIT_AVX2 __attribute__((target("avx2,fma")))

// One x chunk: four vectors of 16 codes, loaded once for all weight rows of a step.
struct XChunk {
  __m256i v[4];
};

LOWBIT_AVX2 inline XChunk LoadXChunk(const int16_t* xq) {
  const auto* p = reinterpret_cast<const __m256i*>(xq);
  return {{_mm256_loadu_si256(p), _mm256_loadu_si256(p + 1), _mm256_loadu_si256(p + 2),
           _mm256_loadu_si256(p + 3)}};
}

// Bytes of weight codes in one chunk of a row.
template <Codes C>
constexpr int64_t kChunkBytes = C == Codes::Int4 ? kInt16Chunk / 2 : kInt16Chunk;

// Prefetches each row's stream kRowStreamPrefetchBytes ahead (row_streams.h).
template <Codes C, int R>
LOWBIT_AVX2 inline void PrefetchAhead(const uint8_t* const* rows, int64_t chunk) {
  for (int r = 0; r < R; ++r)
    _mm_prefetch(reinterpret_cast<const char*>(rows[r] + chunk * kChunkBytes<C> + kRowStreamPrefetchBytes),
                 _MM_HINT_T0);
}

// The four code vectors of one chunk of one weight row (see the header comment).
template <Codes C>
LOWBIT_AVX2 inline void DecodeChunk(const uint8_t* row, int64_t chunk, __m256i code[4]) {
  if constexpr (C == Codes::Int4) {
    // Each int16 lane holds four codes, one per nibble: shifts and masks within the lane separate them.
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + chunk * kChunkBytes<C>));
    const __m256i nibble = _mm256_set1_epi16(0x000F);
    code[0] = _mm256_and_si256(v, nibble);
    code[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
    code[2] = _mm256_and_si256(_mm256_srli_epi16(v, 8), nibble);
    code[3] = _mm256_srli_epi16(v, 12);
  } else {
    const auto* p = reinterpret_cast<const __m128i*>(row + chunk * kChunkBytes<C>);
    const __m256i first = _mm256_loadu2_m128i(p + 2, p);       // bytes 0-15 of both halves
    const __m256i second = _mm256_loadu2_m128i(p + 3, p + 1);  // bytes 16-31
    if constexpr (C == Codes::Int8) {  // sign-extend: each byte doubled, then shifted down arithmetically
      code[0] = _mm256_srai_epi16(_mm256_unpacklo_epi8(first, first), 8);
      code[1] = _mm256_srai_epi16(_mm256_unpackhi_epi8(first, first), 8);
      code[2] = _mm256_srai_epi16(_mm256_unpacklo_epi8(second, second), 8);
      code[3] = _mm256_srai_epi16(_mm256_unpackhi_epi8(second, second), 8);
    } else {
      const __m256i zero = _mm256_setzero_si256();
      code[0] = _mm256_unpacklo_epi8(first, zero);
      code[1] = _mm256_unpackhi_epi8(first, zero);
      code[2] = _mm256_unpacklo_epi8(second, zero);
      code[3] = _mm256_unpackhi_epi8(second, zero);
    }
  }
}

// The int32 lane sums of decoded codes against one x chunk (four vectors of 16 codes).
LOWBIT_AVX2 inline __m256i CodeSums(const __m256i code[4], __m256i x0, __m256i x1, __m256i x2, __m256i x3) {
  const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(code[0], x0), _mm256_madd_epi16(code[1], x1));
  const __m256i p23 = _mm256_add_epi32(_mm256_madd_epi16(code[2], x2), _mm256_madd_epi16(code[3], x3));
  return _mm256_add_epi32(p01, p23);
}

// The int32 lane sums of one chunk of one weight row against one x chunk held in registers.
template <Codes C>
LOWBIT_AVX2 inline __m256i ChunkSums(const uint8_t* row, int64_t chunk, const XChunk& xv) {
  __m256i code[4];
  DecodeChunk<C>(row, chunk, code);
  return CodeSums(code, xv.v[0], xv.v[1], xv.v[2], xv.v[3]);
}

// quantize_int16_block_avx2: 32 values to codes and scale exactly as the scalar reference, or false (and
// nothing written) when the block holds a NaN or an infinity.
LOWBIT_AVX2 bool QuantizeBlock(const float* xb, int16_t* codes, float* scale) {
  const __m256 sign = _mm256_set1_ps(-0.0f), infinity = _mm256_set1_ps(INFINITY);
  __m256 v[4], amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(xb + 8 * j);
    const __m256 a = _mm256_andnot_ps(sign, v[j]);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, infinity, _CMP_NLT_UQ));  // infinity or NaN
    amax = _mm256_max_ps(amax, a);
  }
  if (_mm256_movemask_ps(bad) != 0) return false;
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float top = _mm_cvtss_f32(m);
  float inv = top > 0.0f ? 32767.0f / top : 0.0f;
  if (!std::isfinite(inv)) inv = 0.0f;  // as the scalar reference
  const __m256 inverse = _mm256_set1_ps(inv);
  // vcvtps2dq rounds to nearest even (the default MXCSR mode), as the scalar magic-number addition does.
  const __m256i q01 = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[0], inverse)),
                                         _mm256_cvtps_epi32(_mm256_mul_ps(v[1], inverse)));
  const __m256i q23 = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[2], inverse)),
                                         _mm256_cvtps_epi32(_mm256_mul_ps(v[3], inverse)));
  // packs interleaves the 128-bit halves (0-3, 8-11, 4-7, 12-15): restore column order.
  auto* out = reinterpret_cast<__m256i*>(codes);
  _mm256_storeu_si256(out, _mm256_permute4x64_epi64(q01, 0xD8));
  _mm256_storeu_si256(out + 1, _mm256_permute4x64_epi64(q23, 0xD8));
  *scale = top / 32767.0f;
  return true;
}

// place_block_avx2: one block's 32 codes into the chunk's decoder order (int16_chunk_position); their sum.
LOWBIT_AVX2 int32_t PlaceBlock(Codes layout, const int16_t* codes, int16_t* q, int64_t half) {
  const auto* src = reinterpret_cast<const __m128i*>(codes);
  __m128i a[4];
  __m128i sum = _mm_setzero_si128();
  for (int k = 0; k < 4; ++k) {
    a[k] = _mm_loadu_si128(src + k);
    sum = _mm_add_epi32(sum, _mm_madd_epi16(a[k], _mm_set1_epi16(1)));
  }
  // Code vector v's 16 lanes are two __m128i: lanes 0-7 for the chunk's first block, 8-15 for its second.
  auto* out = reinterpret_cast<__m128i*>(q + 8 * half);
  if (layout == Codes::Int4) {
    // Block column 4t + v goes to lane t of vector v. Each load holds t and t + 1 (t even): pair them per v
    // in one dword, then a 4 x 4 dword transpose gathers the eight t's of each v.
    const __m128i pair_by_v = _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
    __m128i b[4];
    for (int k = 0; k < 4; ++k) b[k] = _mm_shuffle_epi8(a[k], pair_by_v);
    const __m128i t0 = _mm_unpacklo_epi32(b[0], b[1]), t1 = _mm_unpackhi_epi32(b[0], b[1]);
    const __m128i t2 = _mm_unpacklo_epi32(b[2], b[3]), t3 = _mm_unpackhi_epi32(b[2], b[3]);
    _mm_storeu_si128(out + 0, _mm_unpacklo_epi64(t0, t2));
    _mm_storeu_si128(out + 2, _mm_unpackhi_epi64(t0, t2));
    _mm_storeu_si128(out + 4, _mm_unpacklo_epi64(t1, t3));
    _mm_storeu_si128(out + 6, _mm_unpackhi_epi64(t1, t3));
  } else {
    for (int v = 0; v < 4; ++v) _mm_storeu_si128(out + 2 * v, a[v]);  // block column 8v + l: lane l of v
  }
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
  return _mm_cvtsi128_si32(sum);
}

// ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7)): the order of DotBlock's four-row reduction, so that a
// row's result does not depend on whether it was computed alone or in a block of four.
LOWBIT_AVX2 inline float HorizontalSum(__m256 v) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v, v), v);
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

// Shape constants of one call, computed once (integer divisions cost as much as a chunk's products).
struct Plan {
  const Int16Activations* x;
  const PackedMatrix* w;
  const float* bias;
  float* y;
  int64_t G = 0, full = 0, per_group = 0, tail = 0, x_stride = 0;
  int64_t x_rows_per_block = 1;  // for DotRowMany
};

// out[i * R + r] = the full chunks' part of y for weight rows n[r] and x rows i0 + i, minus the zero terms
// (sum_g zt_g group_sum_g, accumulated next to the group scales).
// kWholeChunks: every chunk lies in one weight group (group size a multiple of 64, or one group per row),
// so lanes accumulate a_b-scaled sums per group and the group's scale multiplies once. Otherwise (group
// size 32, 96, ...) each lane gets its own weight scale per chunk.
template <Codes C, int R, int M, bool kWholeChunks>
LOWBIT_AVX2 void DotBlock(const Plan& plan, int64_t i0, const int64_t* n, float* out) {
  const PackedMatrix& w = *plan.w;
  const Int16Activations& x = *plan.x;
  const int64_t G = plan.G, full = plan.full, chunks = x.chunks;
  const uint8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = static_cast<const uint8_t*>(w.data) + n[r] * w.row_bytes;
  const int16_t* xq = x.codes.data() + i0 * plan.x_stride;
  const float* lane_scales = x.lane_scales.data() + i0 * chunks * 8;
  const float* gsum = x.group_sums.data() + i0 * G;
  __m256 total[R][M];
  float zero[R][M];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) total[r][i] = _mm256_setzero_ps(), zero[r][i] = 0.0f;
  if constexpr (kWholeChunks) {
    for (int64_t g = 0, c = 0; c < full; ++g) {
      const int64_t c_end = std::min(full, c + plan.per_group);
      __m256 group[R][M];
      for (int r = 0; r < R; ++r)
        for (int i = 0; i < M; ++i) group[r][i] = _mm256_setzero_ps();
      for (; c < c_end; ++c) {
        PrefetchAhead<C, R>(rows, c);
        for (int i = 0; i < M; ++i) {
          const __m256 a = _mm256_loadu_ps(lane_scales + (i * chunks + c) * 8);
          const XChunk xc = LoadXChunk(xq + i * plan.x_stride + c * kInt16Chunk);
          for (int r = 0; r < R; ++r) {
            const __m256i p = ChunkSums<C>(rows[r], c, xc);
            group[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), a, group[r][i]);
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_broadcast_ss(&w.scales[n[r] * G + g]);
        for (int i = 0; i < M; ++i) total[r][i] = _mm256_fmadd_ps(group[r][i], s, total[r][i]);
      }
    }
  } else {
    const int64_t gs = w.group_size;
    for (int64_t c = 0; c < full; ++c) {
      PrefetchAhead<C, R>(rows, c);
      const int64_t g0 = c * kInt16Chunk / gs, g1 = (c * kInt16Chunk + kInt16Block) / gs;
      __m256 s[R];
      for (int r = 0; r < R; ++r) {
        const float* sr = w.scales + n[r] * G;
        s[r] = _mm256_set_m128(_mm_broadcast_ss(sr + g1), _mm_broadcast_ss(sr + g0));
      }
      for (int i = 0; i < M; ++i) {
        const __m256 a = _mm256_loadu_ps(lane_scales + (i * chunks + c) * 8);
        const XChunk xc = LoadXChunk(xq + i * plan.x_stride + c * kInt16Chunk);
        for (int r = 0; r < R; ++r) {
          const __m256i p = ChunkSums<C>(rows[r], c, xc);
          total[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(a, s[r]), total[r][i]);
        }
      }
    }
  }
  // The zero terms of every group, the tail's included (Finish adds the tail's products without them): in
  // the group loop they were missed when a row has no full chunk (K < 64).
  if (w.has_zero_terms()) {
    for (int r = 0; r < R; ++r)
      for (int64_t g = 0; g < G; ++g)
        for (int i = 0; i < M; ++i) zero[r][i] += w.zero_term(n[r] * G + g) * gsum[i * G + g];
  }
  for (int i = 0; i < M; ++i) {
    if constexpr (R == 4) {  // the four rows' sums at once: 3 hadd + 1 add instead of 4 reductions
      const __m256 h =
          _mm256_hadd_ps(_mm256_hadd_ps(total[0][i], total[1][i]), _mm256_hadd_ps(total[2][i], total[3][i]));
      const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
      _mm_storeu_ps(out + i * R,
                    _mm_sub_ps(sums, _mm_setr_ps(zero[0][i], zero[1][i], zero[2][i], zero[3][i])));
    } else {
      for (int r = 0; r < R; ++r) out[i * R + r] = HorizontalSum(total[r][i]) - zero[r][i];
    }
  }
}

// The partial last chunk (K % 64 columns, scalar), the bias and the store.
template <int R, int M>
inline void Finish(const Plan& plan, int64_t i0, const int64_t* n, const float* out) {
  const PackedMatrix& w = *plan.w;
  const Int16Activations& x = *plan.x;
  const int64_t K = w.cols, G = plan.G, tail = plan.tail;
  if (tail == K) {  // no partial chunk: the common case, kept free of the loop below
    for (int i = 0; i < M; ++i) {
      float* y = plan.y + (i0 + i) * w.rows;
      for (int r = 0; r < R; ++r) y[n[r]] = out[i * R + r] + (plan.bias ? plan.bias[n[r]] : 0.0f);
    }
    return;
  }
  for (int i = 0; i < M; ++i) {
    const int64_t row = i0 + i;
    for (int r = 0; r < R; ++r) {
      float v = out[i * R + r];
      if (tail < K) {
        const int16_t* q = x.codes.data() + row * plan.x_stride + tail;
        for (int64_t k = tail; k < K; ++k) {
          const float a = x.scales[static_cast<size_t>(row * x.blocks + k / kInt16Block)];
          v += packed_code(w, n[r], k) * w.scales[n[r] * G + k / w.group_size] * (q[k - tail] * a);
        }
      }
      if (plan.bias) v += plan.bias[n[r]];
      plan.y[row * w.rows + n[r]] = v;
    }
  }
}

// sum[i] += the scaled products of chunk c of one weight row with x row i (i < M), for DotRowMany; the
// weight scale multiplies the lane scales when groups split chunks (kWholeChunks false).
template <Codes C, int M, bool kWholeChunks>
LOWBIT_AVX2 inline void ManyProducts(const uint8_t* row, int64_t c, const int16_t* xq, int64_t x_stride,
                                     const float* lane_scales, int64_t lane_stride, __m256 weight_scale,
                                     __m256* sum) {
  PrefetchAhead<C, 1>(&row, c);
  __m256i code[4];
  DecodeChunk<C>(row, c, code);
  for (int i = 0; i < M; ++i) {
    const auto* xc = reinterpret_cast<const __m256i*>(xq + i * x_stride + c * kInt16Chunk);
    const __m256i p = CodeSums(code, _mm256_loadu_si256(xc), _mm256_loadu_si256(xc + 1),
                               _mm256_loadu_si256(xc + 2), _mm256_loadu_si256(xc + 3));
    __m256 a = _mm256_loadu_ps(lane_scales + i * lane_stride);
    if constexpr (!kWholeChunks) a = _mm256_mul_ps(a, weight_scale);
    sum[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), a, sum[i]);
  }
}

// One weight row n against M x rows i0 .. i0 + M: the batched-decode counterpart of DotBlock, with the same
// arithmetic per (row, x row), so a row's result does not depend on the batch. DotBlock's 4 x 2 block kept
// 16 accumulators and 8 x vectors live and spilled in its inner loop (it ran no faster per x row at m = 16
// than at m = 1); here one row's chunk is decoded once into four code vectors, each x row's codes come
// straight from memory (L1) into vpmaddwd, and only the M group sums live in registers; the totals are
// updated in memory once per group.
template <Codes C, int M, bool kWholeChunks>
LOWBIT_AVX2 void DotRowMany(const Plan& plan, int64_t i0, int64_t n, float* out) {
  const PackedMatrix& w = *plan.w;
  const Int16Activations& x = *plan.x;
  const int64_t G = plan.G, full = plan.full, chunks = x.chunks, stride = plan.x_stride;
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
  const float* scale_row = w.scales + n * G;
  const int16_t* xq = x.codes.data() + i0 * stride;
  const float* lane_scales = x.lane_scales.data() + i0 * chunks * 8;
  const float* gsum = x.group_sums.data() + i0 * G;
  // Each x row's total, in memory between groups; the first group sets it (an initializer compiled to a
  // rep stos per call). No full chunk at all (K < 64) leaves it 0.
  alignas(32) float total[M][8];
  __m256 sum[M];
  if constexpr (kWholeChunks) {
    for (int64_t g = 0, c = 0; g == 0 || c < full; ++g) {
      const int64_t c_end = std::min(full, c + plan.per_group);
      for (int i = 0; i < M; ++i) sum[i] = _mm256_setzero_ps();
      for (; c < c_end; ++c)
        ManyProducts<C, M, true>(row, c, xq, stride, lane_scales + c * 8, chunks * 8, _mm256_setzero_ps(),
                                 sum);
      // DotBlock's total starts at 0 and takes fma(group, s, total): the same operations.
      const __m256 s = full > 0 ? _mm256_broadcast_ss(scale_row + g) : _mm256_setzero_ps();
      for (int i = 0; i < M; ++i) {
        const __m256 before = g == 0 ? _mm256_setzero_ps() : _mm256_load_ps(total[i]);
        _mm256_store_ps(total[i], _mm256_fmadd_ps(sum[i], s, before));
      }
    }
  } else {
    const int64_t gs = w.group_size;
    for (int i = 0; i < M; ++i) sum[i] = _mm256_setzero_ps();
    for (int64_t c = 0; c < full; ++c) {
      const int64_t g0 = c * kInt16Chunk / gs, g1 = (c * kInt16Chunk + kInt16Block) / gs;
      const __m256 s = _mm256_set_m128(_mm_broadcast_ss(scale_row + g1), _mm_broadcast_ss(scale_row + g0));
      ManyProducts<C, M, false>(row, c, xq, stride, lane_scales + c * 8, chunks * 8, s, sum);
    }
    for (int i = 0; i < M; ++i) _mm256_store_ps(total[i], sum[i]);
  }
  for (int i = 0; i < M; ++i) {
    float zero = 0.0f;
    if (w.has_zero_terms()) {
      for (int64_t g = 0; g < G; ++g) zero += w.zero_term(n * G + g) * gsum[i * G + g];
    }
    out[i] = HorizontalSum(_mm256_load_ps(total[i])) - zero;
  }
}

// Weight row n against x rows i0 .. i0 + M.
template <Codes C, int M, bool kWholeChunks>
LOWBIT_AVX2 void RowMany(const Plan& plan, int64_t i0, int64_t n) {
  float out[M];
  DotRowMany<C, M, kWholeChunks>(plan, i0, n, out);
  Finish<1, M>(plan, i0, &n, out);
}

// How many x rows DotRowMany takes at once for rows of K columns (8, 4 or 2; 1: DotBlock instead). The
// block's codes, 2 bytes per column, are read again for every weight row and should stay in L1 (16 KiB:
// 8 x rows at the reference model's K = 768, 4 at 2048, 2 at 4096). Byte codes, dearer to decode, gained
// only from 4 x rows on: with 2 at K = 4096 they ran 15-20 % slower than DotBlock (packed_bench, m = 16).
int64_t x_rows_per_block(Codes codes, int64_t K) {
  constexpr int64_t kXBlockBytes = 16384;
  const int64_t fit = kXBlockBytes / (2 * std::max<int64_t>(K, 1));
  if (fit >= 8) return 8;
  if (fit >= 4) return 4;
  return fit >= 2 && codes == Codes::Int4 ? 2 : 1;
}

// Weight rows n[0..R) against every x row in DotBlock's R x M blocks: M = 1 for int4 codes, whose 4 x 2
// block spilled (one x row at a time ran 10-12 % faster at K = 14336, m = 16), 2 for bytes (20 % faster
// than 1 at K = 4096 and 14336).
template <Codes C, int R, bool kWholeChunks>
LOWBIT_AVX2 void Rows(const Plan& plan, const int64_t* n) {
  constexpr int kXRows = C == Codes::Int4 ? 1 : 2;
  float out[2 * R];
  const int64_t m = plan.x->rows;
  int64_t i0 = 0;
  for (; i0 + kXRows <= m; i0 += kXRows) {
    DotBlock<C, R, kXRows, kWholeChunks>(plan, i0, n, out);
    Finish<R, kXRows>(plan, i0, n, out);
  }
  if (i0 < m) {
    DotBlock<C, R, 1, kWholeChunks>(plan, i0, n, out);
    Finish<R, 1>(plan, i0, n, out);
  }
}

// Weight rows [n_begin, n_end) against x rows i0 .. i0 + M, one weight row at a time (DotRowMany).
template <Codes C, int M, bool kWholeChunks>
LOWBIT_AVX2 void RowRangeMany(const Plan& plan, int64_t i0, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) RowMany<C, M, kWholeChunks>(plan, i0, n);
}

// One x row (decode), or rows too long for DotRowMany: four weight rows per step (measured best on Zen 3
// for one x row: 2 and 8 were 25-30 % slower), from four quarters of the range (row_streams.h). More x
// rows (batched decode): blocks of x_rows_per_block x rows, each against the whole range before the next,
// so that the block's codes stay in L1 while the weight rows pass (DotRowMany).
template <Codes C, bool kWholeChunks>
LOWBIT_AVX2 void RowRange(const Plan& plan, int64_t n_begin, int64_t n_end) {
  const int64_t m = plan.x->rows, most = plan.x_rows_per_block;
  if (m == 1 || most < 2) {
    for_rows_in_four_streams(
        n_begin, n_end, [&](const int64_t* n) { Rows<C, kRowStreams, kWholeChunks>(plan, n); },
        [&](const int64_t* n) { Rows<C, 1, kWholeChunks>(plan, n); });
    return;
  }
  int64_t i0 = 0;
  if (most >= 8)
    for (; i0 + 8 <= m; i0 += 8) RowRangeMany<C, 8, kWholeChunks>(plan, i0, n_begin, n_end);
  if (most >= 4)
    for (; i0 + 4 <= m; i0 += 4) RowRangeMany<C, 4, kWholeChunks>(plan, i0, n_begin, n_end);
  for (; i0 + 2 <= m; i0 += 2) RowRangeMany<C, 2, kWholeChunks>(plan, i0, n_begin, n_end);
  if (i0 < m) RowRangeMany<C, 1, kWholeChunks>(plan, i0, n_begin, n_end);
}

template <Codes C>
void RowRangeFor(const Plan& plan, int64_t n_begin, int64_t n_end) {
  const PackedMatrix& w = *plan.w;
  if (w.group_size >= w.cols || w.group_size % kInt16Chunk == 0)
    return RowRange<C, true>(plan, n_begin, n_end);
  RowRange<C, false>(plan, n_begin, n_end);
}

}  // namespace

void int16_gemv_rows(const Int16Activations& x, const PackedMatrix& w, const float* bias, float* y,
                     int64_t n_begin, int64_t n_end) {
  Plan plan{&x, &w, bias, y};
  plan.G = w.groups();
  plan.full = w.cols / kInt16Chunk;
  plan.per_group = w.group_size >= w.cols ? std::max<int64_t>(plan.full, 1) : w.group_size / kInt16Chunk;
  plan.tail = plan.full * kInt16Chunk;
  plan.x_stride = x.chunks * kInt16Chunk;
  plan.x_rows_per_block = x_rows_per_block(w.codes, w.cols);
  switch (w.codes) {
    case Codes::Int4:
      return RowRangeFor<Codes::Int4>(plan, n_begin, n_end);
    case Codes::UInt8:
      return RowRangeFor<Codes::UInt8>(plan, n_begin, n_end);
    case Codes::Int8:
      return RowRangeFor<Codes::Int8>(plan, n_begin, n_end);
    default:
      return;
  }
}

namespace {
bool quantize_int16_block_avx2(const float* xb, int16_t* codes, float* scale) {
  return QuantizeBlock(xb, codes, scale);
}
int32_t place_block_avx2(Codes layout, const int16_t* codes, int16_t* q, int64_t half) {
  return PlaceBlock(layout, codes, q, half);
}
}  // namespace
#else
void int16_gemv_rows(const Int16Activations&, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
namespace {
bool quantize_int16_block_avx2(const float*, int16_t*, float*) {
  return false;
}
int32_t place_block_avx2(Codes, const int16_t*, int16_t*, int64_t) {  // never called without AVX2
  return 0;
}
}  // namespace
#endif

}  // namespace lowbit::kernels

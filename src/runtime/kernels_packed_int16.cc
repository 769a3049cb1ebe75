// int4 / 8-bit weight codes times int16 activation codes on AVX2 (kernels_packed_int16.h). Highway 1.0.3
// (Debian 12) has no 16-bit multiply-add that keeps pairs, so, as kernels_packed_vnni.cc, this file uses
// intrinsics in functions compiled for AVX2 + FMA only; they run only after have_avx2_fma() said the CPU has
// them (the rest of the library is built for the baseline).
//
// One step decodes a chunk of 64 columns of one weight row into four vectors of 16 int16 codes with
// in-lane unpacks only (the lane-crossing vpmovzxbw halved the rate on Zen 3):
//   Int4   32 bytes, byte t holding columns 2t (low nibble) and 2t + 1 (high nibble) (quant/pack.h puts
//          code k at bits 4 (k % 8) of word k / 8); mask and shift give the two nibble vectors, unpacking
//          their low and high 8 bytes per 128-bit half with zeros gives the int16 codes;
//   UInt8 / Int8  bytes 0-15 of both 32-column halves in one register and bytes 16-31 in another, unpacked
//          the same way (zero- or sign-extended).
// Either way the 128-bit halves of every code vector come from columns [0, 32) and [32, 64): after vpmaddwd
// against x in the same order (int16_chunk_position), int32 lanes 0-3 hold sums over the first block and
// lanes 4-7 over the second. The sums are exact: |c| <= 255 and |xq| <= 32767 keep the eight products of a
// lane below 2^27. Each lane is then scaled by its block's activation scale (and, when a group boundary
// falls inside the chunk, its weight scale) in fp32.
#include "runtime/kernels_packed_int16.h"

#include <algorithm>
#include <array>
#include <cmath>

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
  int64_t half, byte, v_pair;
  if (codes == Codes::Int4) {
    const int64_t t = j / 2;  // byte of the 32
    half = t / 16;
    byte = t % 16;
    v_pair = j % 2;  // low nibbles: vectors 0, 1; high nibbles: 2, 3
  } else {
    half = j / 32;
    byte = j % 16;
    v_pair = (j % 32) / 16;  // bytes 0-15 of each half: vectors 0, 1; bytes 16-31: 2, 3
  }
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

// Stores block b of row i: its codes (n of them, column order) where the decoder reads them, its scale in
// the block and lane tables, and its sum in its group's (groups hold whole blocks: int16_gemv_supports).
void place_block(Int16Activations& out, const PackedMatrix& w, const ChunkPositions& position, int64_t i,
                 int64_t b, const int16_t* codes, float scale) {
  const int64_t K = w.cols, k0 = b * kInt16Block, n = std::min(kInt16Block, K - k0);
  const int64_t chunk = k0 / kInt16Chunk;
  int16_t* q = out.codes.data() + (i * out.chunks + chunk) * kInt16Chunk;
  const bool permuted = decoder_order(chunk, K);
  int32_t sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t col = k0 % kInt16Chunk + j;
    q[permuted ? position[static_cast<size_t>(col)] : col] = codes[j];
    sum += codes[j];
  }
  out.scales[static_cast<size_t>(i * out.blocks + b)] = scale;
  float* lanes = out.lane_scales.data() + (i * out.chunks + chunk) * 8 + (k0 % kInt16Chunk == 0 ? 0 : 4);
  std::fill(lanes, lanes + 4, scale);
  out.group_sums[static_cast<size_t>(i * w.groups() + k0 / w.group_size)] += static_cast<float>(sum) * scale;
}

}  // namespace

void quantize_int16_activations(const float* x, int64_t m, const PackedMatrix& w, Int16Activations& out) {
  const int64_t K = w.cols;
  shape_activations(out, m, w);
  const ChunkPositions& position = chunk_positions(w.codes);
  int16_t codes[kInt16Block];
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < out.blocks; ++b) {
      const int64_t k0 = b * kInt16Block, n = std::min(kInt16Block, K - k0);
      const float* xb = x + i * K + k0;
      float amax = 0.0f;
      bool finite = true;
      for (int64_t j = 0; j < n; ++j) {
        finite = finite && std::isfinite(xb[j]);
        amax = std::max(amax, std::abs(xb[j]));
      }
      // A non-finite input leaves the codes 0 and a NaN scale, which carries it into every output.
      const float scale = finite ? amax / 32767.0f : std::nanf("");
      const float inverse = finite && amax > 0.0f ? 32767.0f / amax : 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        // Round to nearest even by adding and removing 1.5 * 2^23 (exact for |v| < 2^22; std::lrint is a
        // libm call here). |xb[j] * inverse| <= 32767 (+ rounding), so the result fits int16.
        const float v = xb[j] * inverse;
        codes[j] = static_cast<int16_t>((v + kRoundMagic) - kRoundMagic);
      }
      place_block(out, w, position, i, b, codes, scale);
    }
  }
}

void int16_activations_from_codes(const int16_t* codes, const float* row_scales, int64_t m,
                                  const PackedMatrix& w, Int16Activations& out) {
  const int64_t K = w.cols;
  shape_activations(out, m, w);
  const ChunkPositions& position = chunk_positions(w.codes);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t b = 0; b < out.blocks; ++b)
      place_block(out, w, position, i, b, codes + i * K + b * kInt16Block, row_scales[i]);
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

// Hints the same chunk of the next R rows (as kernels_hwy.cc's bf16 decoder does): rows of 384-768 bytes
// keep restarting the hardware prefetcher. A prefetch never faults, so running past the last row is fine.
template <Codes C, int R>
LOWBIT_AVX2 inline void PrefetchNextRows(const uint8_t* base, int64_t row_bytes, int64_t chunk) {
  for (int r = 0; r < R; ++r)
    _mm_prefetch(reinterpret_cast<const char*>(base + (R + r) * row_bytes + chunk * kChunkBytes<C>),
                 _MM_HINT_T0);
}

// The int32 lane sums of one chunk of one weight row against one x chunk.
template <Codes C>
LOWBIT_AVX2 inline __m256i ChunkSums(const uint8_t* row, int64_t chunk, const XChunk& xv) {
  __m256i first, second;  // each unpacks into code vectors (v, v + 1)
  if constexpr (C == Codes::Int4) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + chunk * kInt16Chunk / 2));
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    first = _mm256_and_si256(v, nibble);
    second = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  } else {
    const auto* p = reinterpret_cast<const __m128i*>(row + chunk * kInt16Chunk);
    first = _mm256_loadu2_m128i(p + 2, p);       // bytes 0-15 of both halves
    second = _mm256_loadu2_m128i(p + 3, p + 1);  // bytes 16-31
  }
  __m256i c0, c1, c2, c3;
  if constexpr (C == Codes::Int8) {  // sign-extend: each byte doubled, then shifted down arithmetically
    c0 = _mm256_srai_epi16(_mm256_unpacklo_epi8(first, first), 8);
    c1 = _mm256_srai_epi16(_mm256_unpackhi_epi8(first, first), 8);
    c2 = _mm256_srai_epi16(_mm256_unpacklo_epi8(second, second), 8);
    c3 = _mm256_srai_epi16(_mm256_unpackhi_epi8(second, second), 8);
  } else {
    const __m256i zero = _mm256_setzero_si256();
    c0 = _mm256_unpacklo_epi8(first, zero);
    c1 = _mm256_unpackhi_epi8(first, zero);
    c2 = _mm256_unpacklo_epi8(second, zero);
    c3 = _mm256_unpackhi_epi8(second, zero);
  }
  const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(c0, xv.v[0]), _mm256_madd_epi16(c1, xv.v[1]));
  const __m256i p23 = _mm256_add_epi32(_mm256_madd_epi16(c2, xv.v[2]), _mm256_madd_epi16(c3, xv.v[3]));
  return _mm256_add_epi32(p01, p23);
}

LOWBIT_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Shape constants of one call, computed once (integer divisions cost as much as a chunk's products).
struct Plan {
  const Int16Activations* x;
  const PackedMatrix* w;
  const float* bias;
  float* y;
  int64_t G = 0, full = 0, per_group = 0, tail = 0, x_stride = 0;
};

// out[i * R + r] = the full chunks' part of y for weight rows n + r and x rows i0 + i, minus the zero terms
// (sum_g zt_g group_sum_g, accumulated next to the group scales).
// kWholeChunks: every chunk lies in one weight group (group size a multiple of 64, or one group per row),
// so lanes accumulate a_b-scaled sums per group and the group's scale multiplies once. Otherwise (group
// size 32, 96, ...) each lane gets its own weight scale per chunk.
template <Codes C, int R, int M, bool kWholeChunks>
LOWBIT_AVX2 void DotBlock(const Plan& plan, int64_t i0, int64_t n, float* out) {
  const PackedMatrix& w = *plan.w;
  const Int16Activations& x = *plan.x;
  const int64_t G = plan.G, full = plan.full, chunks = x.chunks;
  const auto* base = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
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
        PrefetchNextRows<C, R>(base, w.row_bytes, c);
        for (int i = 0; i < M; ++i) {
          const __m256 a = _mm256_loadu_ps(lane_scales + (i * chunks + c) * 8);
          const XChunk xc = LoadXChunk(xq + i * plan.x_stride + c * kInt16Chunk);
          for (int r = 0; r < R; ++r) {
            const __m256i p = ChunkSums<C>(base + r * w.row_bytes, c, xc);
            group[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), a, group[r][i]);
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_broadcast_ss(&w.scales[(n + r) * G + g]);
        const float zt = w.zero_term((n + r) * G + g);
        for (int i = 0; i < M; ++i) {
          total[r][i] = _mm256_fmadd_ps(group[r][i], s, total[r][i]);
          zero[r][i] += zt * gsum[i * G + g];
        }
      }
    }
  } else {
    const int64_t gs = w.group_size;
    for (int64_t c = 0; c < full; ++c) {
      PrefetchNextRows<C, R>(base, w.row_bytes, c);
      const int64_t g0 = c * kInt16Chunk / gs, g1 = (c * kInt16Chunk + kInt16Block) / gs;
      __m256 s[R];
      for (int r = 0; r < R; ++r) {
        const float* sr = w.scales + (n + r) * G;
        s[r] = _mm256_set_m128(_mm_broadcast_ss(sr + g1), _mm_broadcast_ss(sr + g0));
      }
      for (int i = 0; i < M; ++i) {
        const __m256 a = _mm256_loadu_ps(lane_scales + (i * chunks + c) * 8);
        const XChunk xc = LoadXChunk(xq + i * plan.x_stride + c * kInt16Chunk);
        for (int r = 0; r < R; ++r) {
          const __m256i p = ChunkSums<C>(base + r * w.row_bytes, c, xc);
          total[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(a, s[r]), total[r][i]);
        }
      }
    }
  }
  if (!kWholeChunks && w.has_zero_terms()) {
    for (int r = 0; r < R; ++r)
      for (int64_t g = 0; g < G; ++g)
        for (int i = 0; i < M; ++i) zero[r][i] += w.zero_term((n + r) * G + g) * gsum[i * G + g];
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) out[i * R + r] = HorizontalSum(total[r][i]) - zero[r][i];
}

// The partial last chunk (K % 64 columns, scalar), the bias and the store.
template <int R, int M>
void Finish(const Plan& plan, int64_t i0, int64_t n, const float* out) {
  const PackedMatrix& w = *plan.w;
  const Int16Activations& x = *plan.x;
  const int64_t K = w.cols, G = plan.G, tail = plan.tail;
  for (int i = 0; i < M; ++i) {
    const int64_t row = i0 + i;
    for (int r = 0; r < R; ++r) {
      float v = out[i * R + r];
      if (tail < K) {
        const int16_t* q = x.codes.data() + row * plan.x_stride + tail;
        for (int64_t k = tail; k < K; ++k) {
          const float a = x.scales[static_cast<size_t>(row * x.blocks + k / kInt16Block)];
          v += packed_code(w, n + r, k) * w.scales[(n + r) * G + k / w.group_size] * (q[k - tail] * a);
        }
      }
      if (plan.bias) v += plan.bias[n + r];
      plan.y[row * w.rows + n + r] = v;
    }
  }
}

template <Codes C, int R, bool kWholeChunks>
LOWBIT_AVX2 void Rows(const Plan& plan, int64_t n) {
  float out[2 * R];
  const int64_t m = plan.x->rows;
  int64_t i0 = 0;
  for (; i0 + 2 <= m; i0 += 2) {
    DotBlock<C, R, 2, kWholeChunks>(plan, i0, n, out);
    Finish<R, 2>(plan, i0, n, out);
  }
  if (i0 < m) {
    DotBlock<C, R, 1, kWholeChunks>(plan, i0, n, out);
    Finish<R, 1>(plan, i0, n, out);
  }
}

// Four weight rows per step: measured best on Zen 3 (2 and 8 were 25-30 % slower).
template <Codes C, bool kWholeChunks>
LOWBIT_AVX2 void RowRange(const Plan& plan, int64_t n_begin, int64_t n_end) {
  constexpr int kRows = 4;
  int64_t n = n_begin;
  for (; n + kRows <= n_end; n += kRows) Rows<C, kRows, kWholeChunks>(plan, n);
  for (; n < n_end; ++n) Rows<C, 1, kWholeChunks>(plan, n);
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
#else
void int16_gemv_rows(const Int16Activations&, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
#endif

}  // namespace lowbit::kernels

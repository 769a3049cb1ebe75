// int4 / 8-bit weight codes times integer activation codes on AVX2 (kernels_packed_int16.h). Highway 1.0.3
// (Debian 12) has no 16-bit multiply-add that keeps pairs, so, as kernels_packed_vnni.cc, this file uses
// intrinsics in functions compiled for AVX2 + FMA only; they run only after have_avx2_fma() said the CPU has
// them (the rest of the library is built for the baseline).
//
// With int16 activation codes, one step decodes a chunk of 64 columns of one weight row into four vectors of
// 16 int16 codes within 128-bit lanes (the lane-crossing vpmovzxbw halved the rate on Zen 3):
//   Int4   32 bytes = 16 int16 lanes, lane t holding columns 4t .. 4t + 3 in its four nibbles (quant/pack.h
//          puts code k at bits 4 (k % 8) of word k / 8); shifts by 0, 4, 8, 12 and masks give the four code
//          vectors, v holding column 4t + v in lane t (3 shifts + 3 ands: 4-7 % faster in packed_bench at
//          4096-wide shapes than splitting bytes into nibbles and unpacking them with zeros);
//   UInt8 / Int8  bytes 0-15 of both 32-column halves in one register and bytes 16-31 in another, unpacked
//          in-lane with zeros (or sign-extended).
// Either way the 128-bit halves of every code vector come from columns [0, 32) and [32, 64): after vpmaddwd
// against x in the same order (int16_chunk_position), int32 lanes 0-3 hold sums over the first block and
// lanes 4-7 over the second. The sums are exact: |c| <= 255 and |xq| <= 32767 keep the eight products of a
// lane below 2^27.
// With int8 activation codes (int4 weights only), the chunk's 32 bytes give two vectors of nibbles, byte t
// of the first holding column 2t and of the second column 2t + 1 (one shift, two masks); vpmaddubsw against
// x's even and odd columns, one int16 addition and vpmaddwd by ones leave int32 lane l with the sum over
// columns 8l .. 8l + 7, which lets each lane have its own activation scale.
// Each lane is then scaled by its activation scale (one per 32 columns for int16 codes, per 8 for int8 ones;
// lane_scales) and, when a group boundary falls inside the chunk, its weight scale, in fp32.
//
// Blocking: one x row (decode) multiplies four weight rows per step with its chunk held in registers
// (DotBlock); several x rows (batched decode) go in blocks of up to 8 against one weight row at a time,
// each chunk decoded once for the block and x read from L1 (DotRowMany). Both do the same floating-point
// operations per (weight row, x row), so a batch gives each sequence the same bits as decoding it alone.
#include "runtime/kernels_packed_int16.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <type_traits>

#include "runtime/row_streams.h"
#include "util/error.h"

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

namespace {
// Whether w's weight groups hold whole 32-column blocks (or one group spans each row), so that every block of
// activation codes lies in one group.
bool groups_hold_whole_blocks(const PackedMatrix& w) {
  return w.group_size >= w.cols || w.group_size % kInt16Block == 0;
}
}  // namespace

bool int16_gemv_supports(const PackedMatrix& w) {
  if (w.codes != Codes::Int4 && w.codes != Codes::UInt8 && w.codes != Codes::Int8) return false;
  return groups_hold_whole_blocks(w);
}

int64_t int16_chunk_position(Codes codes, int64_t j, int bits) {
  // int8 codes against int4 weights: byte t of the weight chunk holds columns 2t (low nibble, decoded into
  // the first vector) and 2t + 1 (high nibble, the second); bytes 0-15 of each are the first block.
  if (bits == 8) return 32 * (j % 2) + j / 2;
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

// int16_chunk_position for every column of a chunk, built once per code layout (Int4, or bytes, with int16
// activation codes; Int4 with int8 ones).
using ChunkPositions = std::array<int64_t, kInt16Chunk>;
const ChunkPositions& chunk_positions(Codes codes, int bits) {
  static const auto table = [](Codes c, int b) {
    ChunkPositions p{};
    for (int64_t j = 0; j < kInt16Chunk; ++j) p[static_cast<size_t>(j)] = int16_chunk_position(c, j, b);
    return p;
  };
  static const ChunkPositions int4 = table(Codes::Int4, 16), bytes = table(Codes::Int8, 16),
                              int4_int8 = table(Codes::Int4, 8);
  if (bits == 8) return int4_int8;
  return codes == Codes::Int4 ? int4 : bytes;
}

std::atomic<bool>& int8_activations_switch() {
  static std::atomic<bool> enabled{std::getenv("LOWBIT_GEMV_INT16") == nullptr};
  return enabled;
}

// The code limit of `bits`: codes lie in [-limit, limit].
float code_limit(int bits) {
  return bits == 8 ? 127.0f : 32767.0f;
}

// Sizes `out` for m rows of w's columns and codes of `bits`.
void shape_activations(ActivationCodes& out, int64_t m, const PackedMatrix& w, int bits) {
  const int64_t K = w.cols;
  out.rows = m;
  out.cols = K;
  out.bits = bits;
  out.scale_block = bits == 8 ? kInt8ScaleBlock : kInt16Block;
  out.blocks = (K + out.scale_block - 1) / out.scale_block;
  out.chunks = (K + kInt16Chunk - 1) / kInt16Chunk;
  // Without a partial chunk, quantize_activations writes every slot of codes, scales and lanes: they are
  // sized without a fill (the fill took a fifth as long as the quantizing, decoding the reference model).
  // The group sums are accumulated into.
  const bool padded = K % kInt16Chunk != 0;
  const auto size = [padded](auto& v, int64_t n) {
    if (padded) {
      v.assign(static_cast<size_t>(n), {});
    } else {
      v.resize(static_cast<size_t>(n));
    }
  };
  const int64_t slots = m * out.chunks * kInt16Chunk;
  size(out.codes, bits == 16 ? slots : 0);
  size(out.bytes, bits == 8 ? slots : 0);
  size(out.scales, m * out.blocks);
  size(out.lane_scales, m * out.chunks * 8);
  out.group_sums.assign(static_cast<size_t>(m * w.groups()), 0.0f);
}

// Scale blocks in one 32-column block, at most.
constexpr int64_t kScaleBlocksPerBlock = kInt16Block / kInt8ScaleBlock;

// Places one full block (32 codes in column order) of a chunk (q: the chunk's 64 slots; half: the block's
// place in it) in decoder order, int16_chunk_position, and returns the codes' sum; for 8-bit codes (int4
// layout), place_block8_avx2, which writes the sums of its four scale blocks of 8.
int32_t place_block_avx2(Codes layout, const int16_t* codes, int16_t* q, int64_t half);
void place_block8_avx2(const int16_t* codes, int8_t* q, int64_t half, int32_t* sums);
// Both steps at once for int8 codes, on AVX2: blocks [b, b_end) of one x row (x: the row), all of them full
// blocks of full chunks, quantized and placed as place_block8_avx2 places them (bytes, scales, lanes,
// group_sums: the row's), each scale block's code sum times its scale added to its group's sum in
// place_block's order. Returns the first block it left alone because it holds a NaN or an infinity, or b_end.
int64_t quantize_row8_avx2(const float* x, int64_t b, int64_t b_end, int64_t blocks_per_group, int8_t* bytes,
                           float* scales, float* lanes, float* group_sums);

// What place_block needs of w and out, computed once per call: it runs for every 32 columns of every
// activation row, and the divisions it did by w.group_size, out.scale_block and in w.groups() took more
// time than placing the codes (1.3 % of a W4A16 decode step, on the main thread).
struct BlockPlace {
  ActivationCodes& out;
  const PackedMatrix& w;
  const ChunkPositions& position;
  int64_t groups;            // w.groups()
  int64_t blocks_per_group;  // 32-column blocks per weight group (whole blocks: int16_gemv_supports)
  int64_t subs_per_block;    // scale blocks per 32-column block: 4 (int8 codes) or 1
  bool avx2;

  BlockPlace(ActivationCodes& o, const PackedMatrix& m, const ChunkPositions& p, bool a)
      : out(o),
        w(m),
        position(p),
        groups(m.groups()),
        blocks_per_group(m.group_size >= m.cols ? (m.cols + kInt16Block - 1) / kInt16Block
                                                : m.group_size / kInt16Block),
        subs_per_block(kInt16Block / o.scale_block),
        avx2(a) {
    if (!groups_hold_whole_blocks(m))
      fail("activation codes need weight groups of whole {}-column blocks, not {} columns", kInt16Block,
           m.group_size);
  }
};

// Stores block b (32 columns) of row i: its codes (n of them, column order) where the decoder reads them,
// the scales of its scale blocks (one per out.scale_block columns) in the scale and lane tables (lanes 4h ..
// 4h + 3 of a chunk's sums cover its block h; with int8 codes lane l covers columns 8l .. 8l + 7, one scale
// block), and their sums times their scales in its group's sum (groups hold whole blocks:
// int16_gemv_supports). With avx2, a full block in decoder order is placed by place_block_avx2 /
// place_block8_avx2 (the same stores and sums).
void place_block(const BlockPlace& place, int64_t i, int64_t b, const int16_t* codes, const float* scales) {
  ActivationCodes& out = place.out;
  const PackedMatrix& w = place.w;
  const int64_t K = w.cols, k0 = b * kInt16Block, n = std::min(kInt16Block, K - k0);
  const int64_t sub = out.scale_block;
  const int64_t subs = n == kInt16Block ? place.subs_per_block : (n + sub - 1) / sub;
  const int64_t chunk = k0 / kInt16Chunk, half = k0 % kInt16Chunk / kInt16Block;
  const int64_t at = (i * out.chunks + chunk) * kInt16Chunk;
  const bool permuted = decoder_order(chunk, K);
  int32_t sums[kScaleBlocksPerBlock] = {};
  if (place.avx2 && permuted && n == kInt16Block) {
    if (out.bits == 8) {
      place_block8_avx2(codes, out.bytes.data() + at, half, sums);
    } else {
      sums[0] = place_block_avx2(w.codes, codes, out.codes.data() + at, half);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t col = k0 % kInt16Chunk + j;
      const int64_t slot = at + (permuted ? place.position[static_cast<size_t>(col)] : col);
      if (out.bits == 8) {
        out.bytes[static_cast<size_t>(slot)] = static_cast<int8_t>(codes[j]);
      } else {
        out.codes[static_cast<size_t>(slot)] = codes[j];
      }
      sums[j / sub] += codes[j];
    }
  }
  // Lane l covers columns 8l .. 8l + 7 of the block: scale block l with int8 codes, the only one otherwise.
  float* lanes = out.lane_scales.data() + (i * out.chunks + chunk) * 8 + 4 * half;
  const int64_t lane_step = place.subs_per_block == 1 ? 0 : 1;
  for (int64_t l = 0; l < 4; ++l) lanes[l] = scales[std::min(l * lane_step, subs - 1)];
  float& group_sum = out.group_sums[static_cast<size_t>(i * place.groups + b / place.blocks_per_group)];
  for (int64_t s = 0; s < subs; ++s) {
    out.scales[static_cast<size_t>(i * out.blocks + b * place.subs_per_block + s)] = scales[s];
    group_sum += static_cast<float>(sums[s]) * scales[s];
  }
}

// The reference: n (<= 32) values to codes of a block scale max|x| / limit (limit: 32767 for int16 codes, 127
// for int8), returned.
float quantize_int16_block(const float* xb, int64_t n, float limit, int16_t* codes) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t j = 0; j < n; ++j) {
    finite = finite && std::isfinite(xb[j]);
    amax = std::max(amax, std::abs(xb[j]));
  }
  // A non-finite input leaves the codes 0 and a NaN scale, which carries it into every output.
  float inverse = finite && amax > 0.0f ? limit / amax : 0.0f;
  if (!std::isfinite(inverse)) inverse = 0.0f;  // amax below 2^-116: codes 0 (no overflow to infinity)
  for (int64_t j = 0; j < n; ++j) {
    // Round to nearest even by adding and removing 1.5 * 2^23 (exact for |v| < 2^22; std::lrint is a libm
    // call here). |xb[j] * inverse| <= limit (+ rounding), so the result fits the codes.
    const float v = xb[j] * inverse;
    codes[j] = static_cast<int16_t>((v + kRoundMagic) - kRoundMagic);
  }
  return finite ? amax / limit : std::nanf("");
}

// quantize_int16_block for each scale block (sub = 8 or 32 columns) of a full block of 32 finite values on
// AVX2, their scales in scales[]; false (nothing written) when the block holds a NaN or an infinity.
bool quantize_int16_block_avx2(const float* xb, float limit, int64_t sub, int16_t* codes, float* scales);

}  // namespace

namespace {
void quantize_activations(const float* x, int64_t m, const PackedMatrix& w, ActivationCodes& out, int bits,
                          bool avx2) {
  const int64_t K = w.cols;
  if (bits == 0) bits = activation_code_bits(w);
  if (bits == 8 && w.codes != Codes::Int4) fail("int8 activation codes need int4 weight codes");
  shape_activations(out, m, w, bits);
  const BlockPlace place(out, w, chunk_positions(w.codes, bits), avx2);
  const float limit = code_limit(bits);
  const int64_t sub = out.scale_block, blocks = (K + kInt16Block - 1) / kInt16Block;
  int16_t codes[kInt16Block];
  float scales[kScaleBlocksPerBlock];
  // The blocks of full chunks, with int8 codes on AVX2: quantize_row8_avx2 (one step, same results).
  const int64_t fused_blocks = bits == 8 && avx2 ? K / kInt16Chunk * (kInt16Chunk / kInt16Block) : 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < blocks; ++b) {
      if (b < fused_blocks) {
        b = quantize_row8_avx2(
            x + i * K, b, fused_blocks, place.blocks_per_group,
            out.bytes.data() + i * out.chunks * kInt16Chunk, out.scales.data() + i * out.blocks,
            out.lane_scales.data() + i * out.chunks * 8, out.group_sums.data() + i * place.groups);
        if (b == blocks) break;
      }
      const int64_t k0 = b * kInt16Block, n = std::min(kInt16Block, K - k0);
      const float* xb = x + i * K + k0;
      // A block holding a NaN or an infinity goes the scalar way.
      if (!(avx2 && n == kInt16Block && quantize_int16_block_avx2(xb, limit, sub, codes, scales))) {
        for (int64_t s = 0; s * sub < n; ++s)
          scales[s] = quantize_int16_block(xb + s * sub, std::min(sub, n - s * sub), limit, codes + s * sub);
      }
      place_block(place, i, b, codes, scales);
    }
  }
}
}  // namespace

int activation_code_bits(const PackedMatrix& w) {
  return w.codes == Codes::Int4 && int8_activations_enabled() ? 8 : 16;
}

void set_int8_activations_enabled(bool enabled) {
  int8_activations_switch().store(enabled);
}

bool int8_activations_enabled() {
  return int8_activations_switch().load(std::memory_order_relaxed);
}

void quantize_activation_codes(const float* x, int64_t m, const PackedMatrix& w, ActivationCodes& out,
                               int bits) {
  quantize_activations(x, m, w, out, bits, have_avx2_fma());
}

void quantize_activation_codes_ref(const float* x, int64_t m, const PackedMatrix& w, ActivationCodes& out,
                                   int bits) {
  quantize_activations(x, m, w, out, bits, false);
}

void int16_activations_from_codes(const int16_t* codes, const float* row_scales, int64_t m,
                                  const PackedMatrix& w, ActivationCodes& out) {
  const int64_t K = w.cols;
  shape_activations(out, m, w, 16);
  const BlockPlace place(out, w, chunk_positions(w.codes, 16), have_avx2_fma());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t b = 0; b < out.blocks; ++b)
      place_block(place, i, b, codes + i * K + b * kInt16Block, &row_scales[i]);
}

std::vector<float> activation_code_values(const ActivationCodes& x, const PackedMatrix& w) {
  const int64_t K = x.cols;
  std::vector<float> out(static_cast<size_t>(x.rows * K));
  for (int64_t i = 0; i < x.rows; ++i) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t chunk = k / kInt16Chunk, j = k % kInt16Chunk;
      const int64_t pos =
          decoder_order(chunk, K) ? chunk_positions(w.codes, x.bits)[static_cast<size_t>(j)] : j;
      const auto slot = static_cast<size_t>((i * x.chunks + chunk) * kInt16Chunk + pos);
      const int c = x.bits == 8 ? x.bytes[slot] : x.codes[slot];
      out[static_cast<size_t>(i * K + k)] =
          c * x.scales[static_cast<size_t>(i * x.blocks + k / x.scale_block)];
    }
  }
  return out;
}

#ifdef LOWBIT_X86_GNU
namespace {

#define LOWBIT_AVX2 __attribute__((target("avx2,fma")))

// Activation codes of A bits (16, or 8 against int4 weights), and their storage in x.
template <int A>
using XCode = std::conditional_t<A == 8, int8_t, int16_t>;
template <int A>
const XCode<A>* XCodes(const ActivationCodes& x) {
  if constexpr (A == 8) {
    return x.bytes.data();
  } else {
    return x.codes.data();
  }
}

// One x chunk: four vectors of 16 int16 codes or two of 32 int8 ones, loaded once for all weight rows of a
// step.
template <int A>
struct XChunk {
  static constexpr int kVectors = A == 8 ? 2 : 4;
  __m256i v[kVectors];
};

template <int A>
LOWBIT_AVX2 inline XChunk<A> LoadXChunk(const XCode<A>* xq) {
  const auto* p = reinterpret_cast<const __m256i*>(xq);
  XChunk<A> chunk;
  for (int k = 0; k < XChunk<A>::kVectors; ++k) chunk.v[k] = _mm256_loadu_si256(p + k);
  return chunk;
}

// Bytes of weight codes in one chunk of a row.
template <Codes C>
constexpr int64_t kChunkBytes = C == Codes::Int4 ? kInt16Chunk / 2 : kInt16Chunk;

// Prefetches each row's stream kRowStreamPrefetchBytes ahead (row_streams.h), with the hint as a constant:
// batch-1 decode (DotBlock) took 4-5 % longer with a branch per chunk on the Intel Xeon VM.
template <Codes C, int R, bool kNonTemporal>
LOWBIT_AVX2 inline void PrefetchAhead(const uint8_t* const* rows, int64_t chunk) {
  for (int r = 0; r < R; ++r)
    prefetch_row_stream(rows[r] + chunk * kChunkBytes<C> + kRowStreamPrefetchBytes, kNonTemporal);
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

// One chunk of int4 codes as two vectors of 32 bytes: byte t of `low` holds column 2t, of `high` 2t + 1.
LOWBIT_AVX2 inline void DecodeNibbles(const uint8_t* row, int64_t chunk, __m256i& low, __m256i& high) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + chunk * (kInt16Chunk / 2)));
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  low = _mm256_and_si256(v, nibble);
  high = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
}

// The int32 lane sums of decoded nibbles against int8 x codes in the same order: vpmaddubsw multiplies the
// unsigned nibbles by the signed codes and adds pairs (|sum| <= 2 * 15 * 127, no saturation), the two
// halves add in int16 (<= 7620), and vpmaddwd by ones widens pairs to int32. Lanes 0-3 cover bytes 0-15,
// the chunk's first block.
LOWBIT_AVX2 inline __m256i NibbleSums(__m256i low, __m256i high, __m256i x0, __m256i x1) {
  const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(low, x0), _mm256_maddubs_epi16(high, x1));
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

// The int32 lane sums of decoded codes against one x chunk (four vectors of 16 codes).
LOWBIT_AVX2 inline __m256i CodeSums(const __m256i code[4], __m256i x0, __m256i x1, __m256i x2, __m256i x3) {
  const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(code[0], x0), _mm256_madd_epi16(code[1], x1));
  const __m256i p23 = _mm256_add_epi32(_mm256_madd_epi16(code[2], x2), _mm256_madd_epi16(code[3], x3));
  return _mm256_add_epi32(p01, p23);
}

// The int32 lane sums of one chunk of one weight row against one x chunk held in registers.
template <Codes C, int A>
LOWBIT_AVX2 inline __m256i ChunkSums(const uint8_t* row, int64_t chunk, const XChunk<A>& xv) {
  if constexpr (A == 8) {
    static_assert(C == Codes::Int4, "int8 activation codes go with int4 weights only");
    __m256i low, high;
    DecodeNibbles(row, chunk, low, high);
    return NibbleSums(low, high, xv.v[0], xv.v[1]);
  } else {
    __m256i code[4];
    DecodeChunk<C>(row, chunk, code);
    return CodeSums(code, xv.v[0], xv.v[1], xv.v[2], xv.v[3]);
  }
}

// quantize_int16_block_avx2: 32 values to codes and scale exactly as the scalar reference, or false (and
// nothing written) when the block holds a NaN or an infinity.
LOWBIT_AVX2 inline float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// The scalar reference's inverse of a scale block's largest magnitude.
inline float InverseOf(float top, float limit) {
  float inv = top > 0.0f ? limit / top : 0.0f;
  return std::isfinite(inv) ? inv : 0.0f;
}

// A block's 32 values (v) and their magnitudes (a); false when one of them is a NaN or an infinity.
LOWBIT_AVX2 inline __attribute__((always_inline)) bool LoadFiniteBlock(const float* xb, __m256 v[4],
                                                                       __m256 a[4]) {
  const __m256 sign = _mm256_set1_ps(-0.0f), infinity = _mm256_set1_ps(INFINITY);
  __m256 bad = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(xb + 8 * j);
    a[j] = _mm256_andnot_ps(sign, v[j]);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a[j], infinity, _CMP_NLT_UQ));  // infinity or NaN
  }
  return _mm256_movemask_ps(bad) == 0;
}

LOWBIT_AVX2 bool QuantizeBlock(const float* xb, float limit, int64_t sub, int16_t* codes, float* scales) {
  __m256 v[4], a[4];
  if (!LoadFiniteBlock(xb, v, a)) return false;
  __m256 inverse[4];
  if (sub == kInt16Block) {
    const float top = HorizontalMax(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
    for (int j = 0; j < 4; ++j) inverse[j] = _mm256_set1_ps(InverseOf(top, limit));
    scales[0] = top / limit;
  } else {  // one scale per vector of 8
    for (int j = 0; j < 4; ++j) {
      const float top = HorizontalMax(a[j]);
      inverse[j] = _mm256_set1_ps(InverseOf(top, limit));
      scales[j] = top / limit;
    }
  }
  // vcvtps2dq rounds to nearest even (the default MXCSR mode), as the scalar magic-number addition does.
  const __m256i q01 = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[0], inverse[0])),
                                         _mm256_cvtps_epi32(_mm256_mul_ps(v[1], inverse[1])));
  const __m256i q23 = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[2], inverse[2])),
                                         _mm256_cvtps_epi32(_mm256_mul_ps(v[3], inverse[3])));
  // packs interleaves the 128-bit halves (0-3, 8-11, 4-7, 12-15): restore column order.
  auto* out = reinterpret_cast<__m256i*>(codes);
  _mm256_storeu_si256(out, _mm256_permute4x64_epi64(q01, 0xD8));
  _mm256_storeu_si256(out + 1, _mm256_permute4x64_epi64(q23, 0xD8));
  return true;
}

LOWBIT_AVX2 inline int32_t HorizontalSum32(__m128i sum) {
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
  return _mm_cvtsi128_si32(sum);
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
  return HorizontalSum32(sum);
}

// place_block8_avx2: one block's 32 codes (|c| <= 127) into the chunk's int8 order (even columns in the
// first 32 bytes, odd ones in the second); the sums of its four scale blocks of 8 in sums[].
LOWBIT_AVX2 void PlaceBlock8(const int16_t* codes, int8_t* q, int64_t half, int32_t* sums) {
  const auto* src = reinterpret_cast<const __m128i*>(codes);
  const __m128i a0 = _mm_loadu_si128(src), a1 = _mm_loadu_si128(src + 1);
  const __m128i a2 = _mm_loadu_si128(src + 2), a3 = _mm_loadu_si128(src + 3);
  const __m128i one = _mm_set1_epi16(1);
  sums[0] = HorizontalSum32(_mm_madd_epi16(a0, one));
  sums[1] = HorizontalSum32(_mm_madd_epi16(a1, one));
  sums[2] = HorizontalSum32(_mm_madd_epi16(a2, one));
  sums[3] = HorizontalSum32(_mm_madd_epi16(a3, one));
  // Bytes of columns 0-15 and 16-31, each split into its even then its odd columns.
  const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m128i b0 = _mm_shuffle_epi8(_mm_packs_epi16(a0, a1), even_odd);
  const __m128i b1 = _mm_shuffle_epi8(_mm_packs_epi16(a2, a3), even_odd);
  auto* out = reinterpret_cast<__m128i*>(q + 16 * half);
  _mm_storeu_si128(out, _mm_unpacklo_epi64(b0, b1));      // columns 0, 2, .., 30
  _mm_storeu_si128(out + 2, _mm_unpackhi_epi64(b0, b1));  // columns 1, 3, .., 31
}

// One block of quantize_row8_avx2: QuantizeBlock's codes and scales for scale blocks of 8, placed as
// PlaceBlock8 places them (q: the chunk's bytes, half: the block's place in it), without the int16 codes in
// between; the scales and each scale block's code sum times its scale in lanes 0-3 of scale and products.
// False (nothing written) when the block holds a NaN or an infinity.
LOWBIT_AVX2 inline __attribute__((always_inline)) bool QuantizePlaceBlock8(const float* xb, int8_t* q,
                                                                           int64_t half, __m128& scale,
                                                                           __m128& products) {
  __m256 v[4], a[4];
  if (!LoadFiniteBlock(xb, v, a)) return false;
  // Lane j of top: the largest magnitude of v[j] (a maximum is exact in any order). Per 128-bit half, the
  // unpacks pair vectors 0 and 1 (2 and 3), the shuffles then gather each vector's two partial maxima.
  const __m256 m01 = _mm256_max_ps(_mm256_unpacklo_ps(a[0], a[1]), _mm256_unpackhi_ps(a[0], a[1]));
  const __m256 m23 = _mm256_max_ps(_mm256_unpacklo_ps(a[2], a[3]), _mm256_unpackhi_ps(a[2], a[3]));
  const __m256 m = _mm256_max_ps(_mm256_shuffle_ps(m01, m23, 0x44), _mm256_shuffle_ps(m01, m23, 0xEE));
  const __m128 top = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  // InverseOf in four lanes: limit / top, 0 where top is 0 or the quotient overflows.
  const __m128 limit = _mm_set1_ps(127.0f), quotient = _mm_div_ps(limit, top);
  const __m128 usable =
      _mm_and_ps(_mm_cmpgt_ps(top, _mm_setzero_ps()), _mm_cmplt_ps(quotient, _mm_set1_ps(INFINITY)));
  const __m128 inverse = _mm_and_ps(usable, quotient);
  // Vector j times lane j of inverse; vcvtps2dq rounds to nearest even (the default MXCSR mode), as the
  // scalar magic-number addition does.
  const __m128 lane[4] = {inverse, _mm_movehdup_ps(inverse), _mm_movehl_ps(inverse, inverse),
                          _mm_shuffle_ps(inverse, inverse, 0xFF)};
  __m256i c[4];
  for (int j = 0; j < 4; ++j) c[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], _mm256_broadcastss_ps(lane[j])));
  // Lane j of the sums: vector j's eight codes (exact integers).
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(c[0], c[1]), _mm256_hadd_epi32(c[2], c[3]));
  const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  scale = _mm_div_ps(top, limit);
  products = _mm_mul_ps(_mm_cvtepi32_ps(sums), scale);
  // Bytes per 128-bit half: columns 0-3, 8-11, 16-19, 24-27 (4-7, 12-15, ... in the high half); the
  // shuffle splits each half into its even then its odd columns, and interleaving the halves' pairs of
  // bytes gives columns 0, 2, .., 30 and 1, 3, .., 31 in order.
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
  const __m256i even_odd = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6,
                                            8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m256i split = _mm256_shuffle_epi8(bytes, even_odd);
  const __m128i low = _mm256_castsi256_si128(split), high = _mm256_extracti128_si256(split, 1);
  auto* out = reinterpret_cast<__m128i*>(q + 16 * half);
  _mm_storeu_si128(out, _mm_unpacklo_epi16(low, high));      // columns 0, 2, .., 30
  _mm_storeu_si128(out + 2, _mm_unpackhi_epi16(low, high));  // columns 1, 3, .., 31
  return true;
}

// quantize_row8_avx2. The group's sum stays in a register between its blocks (through memory, with each
// block's four products passed to scalar code, the sums took as long as the quantizing).
LOWBIT_AVX2 int64_t QuantizeRow8(const float* x, int64_t b, int64_t b_end, int64_t blocks_per_group,
                                 int8_t* bytes, float* scales, float* lanes, float* group_sums) {
  constexpr int64_t kBlocksPerChunk = kInt16Chunk / kInt16Block;
  int64_t g = b / blocks_per_group, left_in_group = blocks_per_group - b % blocks_per_group;
  __m128 group_sum = _mm_load_ss(group_sums + g);
  for (; b < b_end; ++b) {
    __m128 scale, p;
    if (!QuantizePlaceBlock8(x + b * kInt16Block, bytes + b / kBlocksPerChunk * kInt16Chunk,
                             b % kBlocksPerChunk, scale, p))
      break;
    // With int8 codes and full chunks, the four scales of block b and its four lanes lie at the same place.
    _mm_storeu_ps(scales + b * kScaleBlocksPerBlock, scale);
    _mm_storeu_ps(lanes + b * kScaleBlocksPerBlock, scale);
    group_sum = _mm_add_ss(group_sum, p);
    group_sum = _mm_add_ss(group_sum, _mm_movehdup_ps(p));
    group_sum = _mm_add_ss(group_sum, _mm_movehl_ps(p, p));
    group_sum = _mm_add_ss(group_sum, _mm_shuffle_ps(p, p, 0xFF));
    if (--left_in_group == 0) {
      _mm_store_ss(group_sums + g, group_sum);
      left_in_group = blocks_per_group;
      ++g;
      group_sum = b + 1 < b_end ? _mm_load_ss(group_sums + g) : _mm_setzero_ps();
    }
  }
  if (left_in_group != blocks_per_group) _mm_store_ss(group_sums + g, group_sum);
  return b;
}

// ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7)): the order of DotBlock's four-row reduction, so that a
// row's result does not depend on whether it was computed alone or in a block of four.
LOWBIT_AVX2 inline float HorizontalSum(__m256 v) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v, v), v);
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

// `total` (8 lanes whose sum is a row's result) minus the zero terms sum_g zt_g group_sum_g of weight row n
// against one x row's group sums, 8 groups per lane-wise fused multiply-add (the last ones masked), so that
// the reduction that follows adds them in. A scalar loop over the groups after the chunk loop was one chain
// of G dependent fused multiply-adds per row: at K = 2048 with groups of 128 it took 17 % of the int4 decode
// kernel's time (perf, packed_bench 768 x 2048, m = 1).
// G: w.groups(), from the Plan (a division, as dear as a chunk's products).
LOWBIT_AVX2 inline __m256 SubtractZeroTerms(const PackedMatrix& w, int64_t G, int64_t n,
                                            const float* group_sums, __m256 total) {
  if (!w.has_zero_terms()) return total;
  // Either the zero terms themselves, or the scales, with zero_offset applied to their sum.
  const float* z = (w.zero_terms ? w.zero_terms : w.scales) + n * G;
  __m256 sum = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= G; g += 8)
    sum = _mm256_fmadd_ps(_mm256_loadu_ps(z + g), _mm256_loadu_ps(group_sums + g), sum);
  if (g < G) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(G - g)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    sum = _mm256_fmadd_ps(_mm256_maskload_ps(z + g, mask), _mm256_maskload_ps(group_sums + g, mask), sum);
  }
  if (w.zero_terms) return _mm256_sub_ps(total, sum);
  return _mm256_fnmadd_ps(sum, _mm256_set1_ps(w.zero_offset), total);
}

// Whether every chunk of 64 columns lies in one weight group (group size a multiple of 64, or one group per
// row): GroupLayout Whole or WholeFolded.
inline bool whole_chunk_groups(const PackedMatrix& w) {
  return w.group_size >= w.cols || w.group_size % kInt16Chunk == 0;
}

// Shape constants of one call, computed once (integer divisions cost as much as a chunk's products).
struct Plan {
  const ActivationCodes* x;
  const PackedMatrix* w;
  const float* bias;
  float* y;
  int64_t G = 0, full = 0, per_group = 0, tail = 0, x_stride = 0;
  int64_t x_rows_per_block = 1;  // for DotRowMany
  bool non_temporal = false;     // how the weight rows are prefetched (row_streams.h)
};

// How a matrix's weight groups meet the 64-column chunks, which decides where its zero terms go:
//   Split        groups of 32, 96, ... columns: each lane of a chunk's sums gets its own weight scale, and
//                SubtractZeroTerms takes the zero terms after the chunk loop;
//   Whole        every chunk lies in one group (a multiple of 64 columns, or one group per row): the group's
//                scale multiplies its sums once; zero terms as for Split;
//   WholeFolded  as Whole, with codes stored with an offset (zero terms zero_offset * s_g) and every group
//                holding a full chunk: each group's sum starts from -zero_offset * group_sum_g (GroupStart),
//                so the group's scale multiplies its zero term in and no step follows the loop. Subtracting
//                each row's zero terms after its loop, eight groups at a time with masked loads, cost the
//                int4 decode kernel 14 % of its time at K = 768 (one thread, 131072 x 768 from DRAM: 15.3
//                against 17.8 GB/s of codes).
enum class GroupLayout { Split, Whole, WholeFolded };

GroupLayout group_layout(const Plan& plan) {
  const PackedMatrix& w = *plan.w;
  if (!whole_chunk_groups(w)) return GroupLayout::Split;
  const bool offset_zero_terms = !w.zero_terms && w.zero_offset != 0.0f;
  const bool every_group_has_a_chunk =
      plan.full > 0 && (plan.full + plan.per_group - 1) / plan.per_group == plan.G;
  return offset_zero_terms && every_group_has_a_chunk ? GroupLayout::WholeFolded : GroupLayout::Whole;
}

// The sum group g of one x row starts from (above).
template <GroupLayout L>
LOWBIT_AVX2 inline __m256 GroupStart(const PackedMatrix& w, const float* group_sums, int64_t g) {
  if constexpr (L == GroupLayout::WholeFolded) {
    return _mm256_zextps128_ps256(_mm_set_ss(-w.zero_offset * group_sums[g]));
  } else {
    return _mm256_setzero_ps();
  }
}

// The zero terms of every group when the chunk loop did not fold them in (the tail's included: Finish adds
// the tail's products without them).
template <GroupLayout L>
LOWBIT_AVX2 inline __m256 ZeroTermsAfterLoop(const PackedMatrix& w, int64_t G, int64_t n,
                                             const float* group_sums, __m256 total) {
  if constexpr (L == GroupLayout::WholeFolded) {
    return total;
  } else {
    return SubtractZeroTerms(w, G, n, group_sums, total);
  }
}

// out[i * R + r] = the full chunks' part of y for weight rows n[r] and x rows i0 + i, minus the zero terms
// (sum_g zt_g group_sum_g). With whole-chunk groups (GroupLayout Whole and WholeFolded) lanes accumulate
// a_b-scaled sums per group and the group's scale multiplies once; with Split groups (32, 96, ... columns)
// each lane gets its own weight scale per chunk.
template <Codes C, int A, int R, int M, GroupLayout L, bool kNonTemporal>
LOWBIT_AVX2 inline __attribute__((always_inline)) void DotBlock(const Plan& plan, int64_t i0,
                                                                const int64_t* n, float* out) {
  const PackedMatrix& w = *plan.w;
  const ActivationCodes& x = *plan.x;
  const int64_t G = plan.G, full = plan.full, chunks = x.chunks;
  const uint8_t* rows[R];
  const float* scale_rows[R];
  for (int r = 0; r < R; ++r) {
    rows[r] = static_cast<const uint8_t*>(w.data) + n[r] * w.row_bytes;
    scale_rows[r] = w.scales + n[r] * G;
  }
  const XCode<A>* xq = XCodes<A>(x) + i0 * plan.x_stride;
  const float* lane_scales = x.lane_scales.data() + i0 * chunks * 8;
  const float* gsum = x.group_sums.data() + i0 * G;
  __m256 total[R][M];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) total[r][i] = _mm256_setzero_ps();
  if constexpr (L != GroupLayout::Split) {
    for (int64_t g = 0, c = 0; c < full; ++g) {
      const int64_t c_end = std::min(full, c + plan.per_group);
      __m256 group[R][M];
      for (int i = 0; i < M; ++i) {
        const __m256 start = GroupStart<L>(w, gsum + i * G, g);
        for (int r = 0; r < R; ++r) group[r][i] = start;
      }
      for (; c < c_end; ++c) {
        PrefetchAhead<C, R, kNonTemporal>(rows, c);
        for (int i = 0; i < M; ++i) {
          const __m256 a = _mm256_loadu_ps(lane_scales + (i * chunks + c) * 8);
          const XChunk<A> xc = LoadXChunk<A>(xq + i * plan.x_stride + c * kInt16Chunk);
          for (int r = 0; r < R; ++r) {
            const __m256i p = ChunkSums<C, A>(rows[r], c, xc);
            group[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), a, group[r][i]);
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_broadcast_ss(scale_rows[r] + g);
        for (int i = 0; i < M; ++i) total[r][i] = _mm256_fmadd_ps(group[r][i], s, total[r][i]);
      }
    }
  } else {
    const int64_t gs = w.group_size;
    for (int64_t c = 0; c < full; ++c) {
      PrefetchAhead<C, R, kNonTemporal>(rows, c);
      const int64_t g0 = c * kInt16Chunk / gs, g1 = (c * kInt16Chunk + kInt16Block) / gs;
      __m256 s[R];
      for (int r = 0; r < R; ++r) {
        s[r] = _mm256_set_m128(_mm_broadcast_ss(scale_rows[r] + g1), _mm_broadcast_ss(scale_rows[r] + g0));
      }
      for (int i = 0; i < M; ++i) {
        const __m256 a = _mm256_loadu_ps(lane_scales + (i * chunks + c) * 8);
        const XChunk<A> xc = LoadXChunk<A>(xq + i * plan.x_stride + c * kInt16Chunk);
        for (int r = 0; r < R; ++r) {
          const __m256i p = ChunkSums<C, A>(rows[r], c, xc);
          total[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(a, s[r]), total[r][i]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) total[r][i] = ZeroTermsAfterLoop<L>(w, G, n[r], gsum + i * G, total[r][i]);
  for (int i = 0; i < M; ++i) {
    if constexpr (R == 4) {  // the four rows' sums at once: 3 hadd + 1 add instead of 4 reductions
      const __m256 h =
          _mm256_hadd_ps(_mm256_hadd_ps(total[0][i], total[1][i]), _mm256_hadd_ps(total[2][i], total[3][i]));
      const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
      _mm_storeu_ps(out + i * R, sums);
    } else {
      for (int r = 0; r < R; ++r) out[i * R + r] = HorizontalSum(total[r][i]);
    }
  }
}

// The partial last chunk (K % 64 columns, scalar), the bias and the store. The tail's sums are explicit
// fused multiply-adds: left to the compiler, `v += a * b` was contracted in some instantiations and not in
// others, so the last x row of a batch (RowMany, M = 1) differed from the same row decoded alone (DotBlock)
// in the last bits whenever K % 64 != 0.
template <int A, int R, int M>
LOWBIT_AVX2 inline void Finish(const Plan& plan, int64_t i0, const int64_t* n, const float* out) {
  const PackedMatrix& w = *plan.w;
  const ActivationCodes& x = *plan.x;
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
        const XCode<A>* q = XCodes<A>(x) + row * plan.x_stride + tail;
        for (int64_t k = tail; k < K; ++k) {
          const float a = x.scales[static_cast<size_t>(row * x.blocks + k / x.scale_block)];
          v = std::fma(packed_code(w, n[r], k) * w.scales[n[r] * G + k / w.group_size], q[k - tail] * a, v);
        }
      }
      if (plan.bias) v += plan.bias[n[r]];
      plan.y[row * w.rows + n[r]] = v;
    }
  }
}

// sum[i] += the scaled products of chunk c of one weight row with x row i (i < M), for DotRowMany; the
// weight scale multiplies the lane scales when groups split chunks (kWholeChunks false).
template <Codes C, int A, int M, bool kWholeChunks>
LOWBIT_AVX2 inline void ManyProducts(const uint8_t* row, int64_t c, const XCode<A>* xq, int64_t x_stride,
                                     const float* lane_scales, int64_t lane_stride, __m256 weight_scale,
                                     bool non_temporal, __m256* sum) {
  // Branching per chunk is cheap here: the chunk's codes serve M x rows.
  if (non_temporal) {
    PrefetchAhead<C, 1, true>(&row, c);
  } else {
    PrefetchAhead<C, 1, false>(&row, c);
  }
  __m256i code[4];
  if constexpr (A == 8) {
    DecodeNibbles(row, c, code[0], code[1]);
  } else {
    DecodeChunk<C>(row, c, code);
  }
  for (int i = 0; i < M; ++i) {
    const auto* xc = reinterpret_cast<const __m256i*>(xq + i * x_stride + c * kInt16Chunk);
    __m256i p;
    if constexpr (A == 8) {
      p = NibbleSums(code[0], code[1], _mm256_loadu_si256(xc), _mm256_loadu_si256(xc + 1));
    } else {
      p = CodeSums(code, _mm256_loadu_si256(xc), _mm256_loadu_si256(xc + 1), _mm256_loadu_si256(xc + 2),
                   _mm256_loadu_si256(xc + 3));
    }
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
template <Codes C, int A, int M, GroupLayout L>
LOWBIT_AVX2 void DotRowMany(const Plan& plan, int64_t i0, int64_t n, float* out) {
  const PackedMatrix& w = *plan.w;
  const ActivationCodes& x = *plan.x;
  const int64_t G = plan.G, full = plan.full, chunks = x.chunks, stride = plan.x_stride;
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
  const float* scale_row = w.scales + n * G;
  const XCode<A>* xq = XCodes<A>(x) + i0 * stride;
  const float* lane_scales = x.lane_scales.data() + i0 * chunks * 8;
  const float* gsum = x.group_sums.data() + i0 * G;
  // Each x row's total, in memory between groups; the first group sets it (an initializer compiled to a
  // rep stos per call). No full chunk at all (K < 64) leaves it 0.
  alignas(32) float total[M][8];
  __m256 sum[M];
  if constexpr (L != GroupLayout::Split) {
    for (int64_t g = 0, c = 0; g == 0 || c < full; ++g) {
      const int64_t c_end = std::min(full, c + plan.per_group);
      for (int i = 0; i < M; ++i) sum[i] = GroupStart<L>(w, gsum + i * G, g);
      for (; c < c_end; ++c)
        ManyProducts<C, A, M, true>(row, c, xq, stride, lane_scales + c * 8, chunks * 8, _mm256_setzero_ps(),
                                    plan.non_temporal, sum);
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
      ManyProducts<C, A, M, false>(row, c, xq, stride, lane_scales + c * 8, chunks * 8, s, plan.non_temporal,
                                   sum);
    }
    for (int i = 0; i < M; ++i) _mm256_store_ps(total[i], sum[i]);
  }
  for (int i = 0; i < M; ++i) {
    out[i] = HorizontalSum(ZeroTermsAfterLoop<L>(w, G, n, gsum + i * G, _mm256_load_ps(total[i])));
  }
}

// Weight row n against x rows i0 .. i0 + M.
template <Codes C, int A, int M, GroupLayout L>
LOWBIT_AVX2 void RowMany(const Plan& plan, int64_t i0, int64_t n) {
  float out[M];
  DotRowMany<C, A, M, L>(plan, i0, n, out);
  Finish<A, 1, M>(plan, i0, &n, out);
}

// How many x rows DotRowMany takes at once for rows of K columns (8, 4 or 2; 1: DotBlock instead). The
// block's codes (bits / 8 bytes per column) are read again for every weight row and should stay in L1
// (16 KiB: with int16 codes 8 x rows at the reference model's K = 768, 4 at 2048, 2 at 4096). Byte weight
// codes, dearer to decode, gained only from 4 x rows on: with 2 at K = 4096 they ran 15-20 % slower than
// DotBlock (packed_bench, m = 16).
int64_t x_rows_per_block(Codes codes, int bits, int64_t K) {
  constexpr int64_t kXBlockBytes = 16384;
  const int64_t fit = kXBlockBytes / (bits / 8 * std::max<int64_t>(K, 1));
  if (fit >= 8) return 8;
  if (fit >= 4) return 4;
  return fit >= 2 && codes == Codes::Int4 ? 2 : 1;
}

// Weight rows n[0..R) against every x row in DotBlock's R x M blocks: M = 1 for int4 codes, whose 4 x 2
// block spilled (one x row at a time ran 10-12 % faster at K = 14336, m = 16), 2 for bytes (20 % faster
// than 1 at K = 4096 and 14336).
template <Codes C, int A, int R, GroupLayout L, bool kNonTemporal>
LOWBIT_AVX2 inline __attribute__((always_inline)) void Rows(const Plan& plan, const int64_t* n) {
  constexpr int kXRows = C == Codes::Int4 ? 1 : 2;
  float out[2 * R];
  const int64_t m = plan.x->rows;
  int64_t i0 = 0;
  for (; i0 + kXRows <= m; i0 += kXRows) {
    DotBlock<C, A, R, kXRows, L, kNonTemporal>(plan, i0, n, out);
    Finish<A, R, kXRows>(plan, i0, n, out);
  }
  if (i0 < m) {
    DotBlock<C, A, R, 1, L, kNonTemporal>(plan, i0, n, out);
    Finish<A, R, 1>(plan, i0, n, out);
  }
}

// Weight rows [n_begin, n_end) against x rows i0 .. i0 + M, one weight row at a time (DotRowMany).
template <Codes C, int A, int M, GroupLayout L>
LOWBIT_AVX2 void RowRangeMany(const Plan& plan, int64_t i0, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) RowMany<C, A, M, L>(plan, i0, n);
}

// One x row (decode), or rows too long for DotRowMany: four weight rows per step (measured best on Zen 3
// for one x row: 2 and 8 were 25-30 % slower), from four quarters of the range (row_streams.h). More x
// rows (batched decode): blocks of x_rows_per_block x rows, each against the whole range before the next,
// so that the block's codes stay in L1 while the weight rows pass (DotRowMany).
template <Codes C, int A, GroupLayout L>
LOWBIT_AVX2 void RowRange(const Plan& plan, int64_t n_begin, int64_t n_end) {
  const int64_t m = plan.x->rows, most = plan.x_rows_per_block;
  if (m == 1 || most < 2) {
    if (plan.non_temporal) {
      for_rows_in_four_streams(
          n_begin, n_end, [&](const int64_t* n) LOWBIT_AVX2 { Rows<C, A, kRowStreams, L, true>(plan, n); },
          [&](const int64_t* n) LOWBIT_AVX2 { Rows<C, A, 1, L, true>(plan, n); });
    } else {
      for_rows_in_four_streams(
          n_begin, n_end, [&](const int64_t* n) LOWBIT_AVX2 { Rows<C, A, kRowStreams, L, false>(plan, n); },
          [&](const int64_t* n) LOWBIT_AVX2 { Rows<C, A, 1, L, false>(plan, n); });
    }
    return;
  }
  int64_t i0 = 0;
  if (most >= 8)
    for (; i0 + 8 <= m; i0 += 8) RowRangeMany<C, A, 8, L>(plan, i0, n_begin, n_end);
  if (most >= 4)
    for (; i0 + 4 <= m; i0 += 4) RowRangeMany<C, A, 4, L>(plan, i0, n_begin, n_end);
  for (; i0 + 2 <= m; i0 += 2) RowRangeMany<C, A, 2, L>(plan, i0, n_begin, n_end);
  if (i0 < m) RowRangeMany<C, A, 1, L>(plan, i0, n_begin, n_end);
}

template <Codes C, int A>
void RowRangeFor(const Plan& plan, int64_t n_begin, int64_t n_end) {
  switch (group_layout(plan)) {
    case GroupLayout::WholeFolded:
      return RowRange<C, A, GroupLayout::WholeFolded>(plan, n_begin, n_end);
    case GroupLayout::Whole:
      return RowRange<C, A, GroupLayout::Whole>(plan, n_begin, n_end);
    case GroupLayout::Split:
      return RowRange<C, A, GroupLayout::Split>(plan, n_begin, n_end);
  }
}

}  // namespace

void int16_gemv_rows(const ActivationCodes& x, const PackedMatrix& w, const float* bias, float* y,
                     int64_t n_begin, int64_t n_end) {
  Plan plan{&x, &w, bias, y};
  plan.G = w.groups();
  plan.full = w.cols / kInt16Chunk;
  plan.per_group = w.group_size >= w.cols ? std::max<int64_t>(plan.full, 1) : w.group_size / kInt16Chunk;
  plan.tail = plan.full * kInt16Chunk;
  plan.x_stride = x.chunks * kInt16Chunk;
  plan.x_rows_per_block = x_rows_per_block(w.codes, x.bits, w.cols);
  plan.non_temporal = row_stream_prefetch_non_temporal();
  if (x.bits == 8) {  // int4 weights only (quantize_activation_codes)
    if (w.codes == Codes::Int4) RowRangeFor<Codes::Int4, 8>(plan, n_begin, n_end);
    return;
  }
  switch (w.codes) {
    case Codes::Int4:
      return RowRangeFor<Codes::Int4, 16>(plan, n_begin, n_end);
    case Codes::UInt8:
      return RowRangeFor<Codes::UInt8, 16>(plan, n_begin, n_end);
    case Codes::Int8:
      return RowRangeFor<Codes::Int8, 16>(plan, n_begin, n_end);
    default:
      return;
  }
}

namespace {
bool quantize_int16_block_avx2(const float* xb, float limit, int64_t sub, int16_t* codes, float* scales) {
  return QuantizeBlock(xb, limit, sub, codes, scales);
}
int32_t place_block_avx2(Codes layout, const int16_t* codes, int16_t* q, int64_t half) {
  return PlaceBlock(layout, codes, q, half);
}
void place_block8_avx2(const int16_t* codes, int8_t* q, int64_t half, int32_t* sums) {
  PlaceBlock8(codes, q, half, sums);
}
int64_t quantize_row8_avx2(const float* x, int64_t b, int64_t b_end, int64_t blocks_per_group, int8_t* bytes,
                           float* scales, float* lanes, float* group_sums) {
  return QuantizeRow8(x, b, b_end, blocks_per_group, bytes, scales, lanes, group_sums);
}
}  // namespace
#else
void int16_gemv_rows(const ActivationCodes&, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
namespace {
bool quantize_int16_block_avx2(const float*, float, int64_t, int16_t*, float*) {
  return false;
}
int32_t place_block_avx2(Codes, const int16_t*, int16_t*, int64_t) {  // never called without AVX2
  return 0;
}
void place_block8_avx2(const int16_t*, int8_t*, int64_t, int32_t*) {}  // never called without AVX2
int64_t quantize_row8_avx2(const float*, int64_t b, int64_t, int64_t, int8_t*, float*, float*, float*) {
  return b;  // never called without AVX2
}
}  // namespace
#endif

}  // namespace lowbit::kernels

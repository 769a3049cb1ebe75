// AMX-BF16 tile kernels (see gemm_bf16_amx.h for the operand layouts).
//
// Register blocking: four 16 x 16 fp32 accumulator tiles cover a 32 x 32 block of C; per 32-deep step two
// A tiles (16 rows x 32 bf16) and two B tiles (16 k-pairs x 16 columns) are loaded and multiplied with four
// TDPBF16PS. Loop order: panel pairs outside, rows inside, so the 32-column B panel pair (32 x K bf16, at
// most 128 KiB for K = 2048) stays in L1/L2 while the rows of A stream from L2.
#include "runtime/gemm_bf16_amx.h"

#include <cstdlib>
#include <cstring>

#include "util/error.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define LOWBIT_HAVE_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <vector>
// Only the functions marked with this attribute use the AMX instruction set; the rest of the file (and
// the build) stays baseline x86-64.
#define LOWBIT_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
// Operand packing: AVX-512 integer code (every AMX CPU has AVX-512).
#define LOWBIT_AVX512_TARGET __attribute__((target("avx512f,avx512bw")))
#endif

namespace lowbit::kernels::amx {

bool amx_disabled_by_environment() {
  const char* off = std::getenv("LOWBIT_NO_AMX");
  return off != nullptr && *off != '\0' && std::strcmp(off, "0") != 0;
}

#ifdef LOWBIT_HAVE_AMX
namespace {

constexpr int kArchReqXcompPerm = 0x1023;  // arch_prctl: request permission for a dynamic xfeature
constexpr int kXfeatureXtiledata = 18;     // the AMX tile data state

struct alignas(64) TileConfig {
  uint8_t palette = 0;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// fp32 bits -> bf16 bits rounded to nearest even, in the low 16 bits of each 32-bit lane (what
// io/dtype's f32_to_bf16 computes for finite values; activations and weights here are finite).
// (The maskz_ forms with all lanes set: GCC 12's unmasked shift intrinsics trip -Wmaybe-uninitialized.)
constexpr __mmask16 kAll = 0xFFFF;

LOWBIT_AVX512_TARGET inline __m512i round_to_bf16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(kAll, bits, 16), _mm512_set1_epi32(1));
  const __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF));
  return _mm512_maskz_srli_epi32(kAll, _mm512_add_epi32(bits, bias), 16);
}

LOWBIT_AVX512_TARGET inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// Depth (k) of one block of the tile loop for deep products (k > kDepthBlockFrom): 32 x 512 bf16 of the
// panel pair = 32 KiB, inside L1. Measured (kernels_bench CalibGemm, loaded machine): +45 % at k = 2048,
// -20 % when k = 768 is split, so shallower products run in one block. (Both measured on operands 16 bytes
// off cache lines; with aligned ones, session 22, one block at k = 2048 ran the same at 768 x 2048 and
// ~10 % faster at 4096 x 4096: the blocking stays, worth revisiting with the kernel's loads.)
constexpr int64_t kDepthBlock = 512;
constexpr int64_t kDepthBlockFrom = 1024;

// Bits of CPUID leaf 7 (subleaf 0) EDX.
constexpr int kAmxBf16Bit = 22, kAmxTileBit = 24, kAmxInt8Bit = 25;

bool cpu_has_amx(int feature_bit) {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ((edx >> kAmxTileBit) & 1u) && ((edx >> feature_bit) & 1u);
}

// Linux keeps the 8 KiB tile state off until a process asks for it (once per process).
bool tile_state_granted() {
  static const bool granted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
}

}  // namespace

bool amx_bf16_usable() {
  static const bool usable = cpu_has_amx(kAmxBf16Bit) && tile_state_granted();
  return usable;
}

bool amx_int8_usable() {
  static const bool usable = cpu_has_amx(kAmxInt8Bit) && tile_state_granted();
  return usable;
}

// Tiles 0-3: C accumulators (16 x 16 fp32 or int32), 4-5: A (16 rows x 64 bytes), 6-7: B (16 rows x 64
// bytes: k-pairs of bf16 or k-quads of int8, for 16 columns).
LOWBIT_AMX_TARGET void configure_tiles() {
  TileConfig cfg;
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  // GCC 12 does not see the configuration load read cfg and drops the stores above (once this function was
  // no longer inlined into its caller, ldtilecfg faulted on a configuration of zeros): a compiler barrier
  // keeps them.
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

LOWBIT_AMX_TARGET void release_tiles() {
  _tile_release();
}

LOWBIT_AVX512_TARGET void pack_rows(const float* x, int64_t ld, int64_t rows, int64_t cols, int64_t depth,
                                    uint16_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x + r * ld;
    uint16_t* dst = out + r * depth;
    for (int64_t c = 0; c < depth; c += 16) {
      const __mmask16 m = lanes(cols - c);
      const __m512 v = c < cols ? _mm512_maskz_loadu_ps(m, src + c) : _mm512_setzero_ps();
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c),
                          _mm512_maskz_cvtepi32_epi16(kAll, round_to_bf16(v)));
    }
  }
}

LOWBIT_AVX512_TARGET void pack_row_pairs(const float* x, int64_t ld, int64_t rows, int64_t cols,
                                         int64_t depth, int64_t panel_begin, int64_t panel_end,
                                         uint16_t* panels) {
  for (int64_t q = panel_begin; q < panel_end; ++q) {
    const int64_t c0 = q * 16;
    const __mmask16 m = c0 < cols ? lanes(cols - c0) : 0;
    uint32_t* panel = reinterpret_cast<uint32_t*>(panels + q * depth * 16);
    for (int64_t p = 0; p < depth / 2; ++p) {
      const int64_t r = 2 * p;
      const __m512 even = r < rows ? _mm512_maskz_loadu_ps(m, x + r * ld + c0) : _mm512_setzero_ps();
      const __m512 odd = r + 1 < rows ? _mm512_maskz_loadu_ps(m, x + (r + 1) * ld + c0) : _mm512_setzero_ps();
      // Even row's bf16 in the low half of each 32-bit lane, odd row's in the high half.
      const __m512i pair =
          _mm512_or_si512(round_to_bf16(even), _mm512_maskz_slli_epi32(kAll, round_to_bf16(odd), 16));
      _mm512_storeu_si512(panel + p * 16, pair);
    }
  }
}

namespace {

// Transposes 16 rows of 16 32-bit values (r[j][q]) into out[q * 16 + j]: 64 shuffles for 256 values.
LOWBIT_AVX512_TARGET inline void transpose_16x16(const __m512i r[16], uint32_t* out) {
  // (The maskz_ forms with all lanes set: GCC 12's unmasked ones trip -Wmaybe-uninitialized.)
  constexpr __mmask16 kAll = 0xFFFF;
  constexpr __mmask8 kAll64 = 0xFF;
  __m512i t[16], u[16];
  for (int j = 0; j < 16; j += 2) {
    // Per 128-bit lane l: r[j][4l], r[j + 1][4l], r[j][4l + 1], r[j + 1][4l + 1] (and the high half).
    t[j] = _mm512_maskz_unpacklo_epi32(kAll, r[j], r[j + 1]);
    t[j + 1] = _mm512_maskz_unpackhi_epi32(kAll, r[j], r[j + 1]);
  }
  for (int j = 0; j < 16; j += 4) {
    // u[j + c], lane l: rows j .. j + 3 of value 4l + c.
    u[j] = _mm512_maskz_unpacklo_epi64(kAll64, t[j], t[j + 2]);
    u[j + 1] = _mm512_maskz_unpackhi_epi64(kAll64, t[j], t[j + 2]);
    u[j + 2] = _mm512_maskz_unpacklo_epi64(kAll64, t[j + 1], t[j + 3]);
    u[j + 3] = _mm512_maskz_unpackhi_epi64(kAll64, t[j + 1], t[j + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    // Lanes 0 and 2 (values c, 8 + c) and lanes 1 and 3 (4 + c, 12 + c) of each group of four rows.
    const __m512i even_lo = _mm512_maskz_shuffle_i32x4(kAll, u[c], u[4 + c], 0x88);
    const __m512i odd_lo = _mm512_maskz_shuffle_i32x4(kAll, u[c], u[4 + c], 0xDD);
    const __m512i even_hi = _mm512_maskz_shuffle_i32x4(kAll, u[8 + c], u[12 + c], 0x88);
    const __m512i odd_hi = _mm512_maskz_shuffle_i32x4(kAll, u[8 + c], u[12 + c], 0xDD);
    _mm512_storeu_si512(out + c * 16, _mm512_maskz_shuffle_i32x4(kAll, even_lo, even_hi, 0x88));
    _mm512_storeu_si512(out + (8 + c) * 16, _mm512_maskz_shuffle_i32x4(kAll, even_lo, even_hi, 0xDD));
    _mm512_storeu_si512(out + (4 + c) * 16, _mm512_maskz_shuffle_i32x4(kAll, odd_lo, odd_hi, 0x88));
    _mm512_storeu_si512(out + (12 + c) * 16, _mm512_maskz_shuffle_i32x4(kAll, odd_lo, odd_hi, 0xDD));
  }
}

}  // namespace

LOWBIT_AVX512_TARGET void rows_to_panels(const uint16_t* rows, int64_t n, int64_t depth, int64_t panel_begin,
                                         int64_t panel_end, uint16_t* panels) {
  // panel[q][p][j] = row (16 q + j)'s p-th pair, as 32-bit values: 16 x 16 blocks through AVX-512 (a scalar
  // transpose took 7 % of a W8A8 prefill, kernels_packed_amx.cc), any pairs past the last 16 one by one.
  const auto* src = reinterpret_cast<const uint32_t*>(rows);
  auto* dst = reinterpret_cast<uint32_t*>(panels);
  const int64_t pairs = depth / 2, whole = pairs / 16 * 16;
  for (int64_t q = panel_begin; q < panel_end; ++q) {
    uint32_t* panel = dst + q * pairs * 16;
    for (int64_t p = 0; p < whole; p += 16) {
      __m512i r[16];
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t row = q * 16 + j;
        r[j] = row < n ? _mm512_loadu_si512(src + row * pairs + p) : _mm512_setzero_si512();
      }
      transpose_16x16(r, panel + p * 16);
    }
    for (int64_t j = 0; j < 16; ++j) {
      const int64_t row = q * 16 + j;
      for (int64_t p = whole; p < pairs; ++p) panel[p * 16 + j] = row < n ? src[row * pairs + p] : 0;
    }
  }
}

void panels_to_rows(const uint16_t* panels, int64_t depth, int64_t row_begin, int64_t row_end,
                    uint16_t* out) {
  // As 32-bit pairs, the rows of A are the columns of B's panels: A32[i][p] = P32[i / 16][p][i % 16].
  const auto* src = reinterpret_cast<const uint32_t*>(panels);
  auto* dst = reinterpret_cast<uint32_t*>(out);
  const int64_t pairs = depth / 2;
  for (int64_t i = row_begin; i < row_end; ++i) {
    const uint32_t* col = src + (i / 16) * pairs * 16 + (i % 16);
    uint32_t* row = dst + i * pairs;
    for (int64_t p = 0; p < pairs; ++p) row[p] = col[p * 16];
  }
}

LOWBIT_AMX_TARGET void gemm_tiles(const uint16_t* a, int64_t lda, const uint16_t* b_panels,
                                  int64_t panel_depth, int64_t k, float* c, int64_t ldc, int64_t rows,
                                  int64_t cols, bool accumulate) {
  if (accumulate && (rows % 32 != 0 || cols % 32 != 0))
    fail("gemm_tiles: accumulating needs whole 32 x 32 blocks (got {} x {})", rows, cols);
  configure_tiles();
  const int64_t panel_elems = panel_depth * 16;  // bf16 values per 16-column panel (depth/2 rows of 32)
  const size_t a_stride = static_cast<size_t>(lda) * sizeof(uint16_t);
  const size_t c_stride = static_cast<size_t>(ldc) * sizeof(float);
  const int64_t m = rows, n = cols, pairs = (cols + 31) / 32;
  // Deep products run in depth blocks, so that the panel pair's block stays in L1 while every 32 rows of A
  // pass it; the partial sums of the pair's columns wait in `partial` between blocks.
  const int64_t block = k > kDepthBlockFrom ? kDepthBlock : k;
  thread_local std::vector<float> partial;
  if (block < k) partial.resize(std::max(partial.size(), static_cast<size_t>((m + 31) / 32 * 32 * 32)));
  alignas(64) float edge[32 * 32];
  for (int64_t np = 0; np < pairs; ++np) {
    const uint16_t* b0 = b_panels + (2 * np) * panel_elems;
    const uint16_t* b1 = b0 + panel_elems;
    const int64_t n0 = np * 32;
    for (int64_t kb = 0; kb < k; kb += block) {
      const int64_t ke = std::min(k, kb + block);
      for (int64_t m0 = 0; m0 < m; m0 += 32) {
        float* saved = partial.data() + m0 * 32;
        if (kb == 0 && accumulate) {
          float* c0 = c + m0 * ldc + n0;
          _tile_loadd(0, c0, c_stride);
          _tile_loadd(1, c0 + 16, c_stride);
          _tile_loadd(2, c0 + 16 * ldc, c_stride);
          _tile_loadd(3, c0 + 16 * ldc + 16, c_stride);
        } else if (kb == 0) {
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
        } else {
          _tile_loadd(0, saved, 128);
          _tile_loadd(1, saved + 16, 128);
          _tile_loadd(2, saved + 16 * 32, 128);
          _tile_loadd(3, saved + 16 * 32 + 16, 128);
        }
        const uint16_t* a0 = a + m0 * lda;
        const uint16_t* a1 = a0 + 16 * lda;
        for (int64_t k0 = kb; k0 < ke; k0 += 32) {
          _tile_loadd(4, a0 + k0, a_stride);
          _tile_loadd(5, a1 + k0, a_stride);
          _tile_loadd(6, b0 + k0 * 16, 64);
          _tile_loadd(7, b1 + k0 * 16, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        if (ke < k) {
          _tile_stored(0, saved, 128);
          _tile_stored(1, saved + 16, 128);
          _tile_stored(2, saved + 16 * 32, 128);
          _tile_stored(3, saved + 16 * 32 + 16, 128);
        } else if (m0 + 32 <= m && n0 + 32 <= n) {
          float* c0 = c + m0 * ldc + n0;
          _tile_stored(0, c0, c_stride);
          _tile_stored(1, c0 + 16, c_stride);
          _tile_stored(2, c0 + 16 * ldc, c_stride);
          _tile_stored(3, c0 + 16 * ldc + 16, c_stride);
        } else {
          // Edge block: through a buffer, keeping only the valid rows and columns.
          _tile_stored(0, edge, 128);
          _tile_stored(1, edge + 16, 128);
          _tile_stored(2, edge + 16 * 32, 128);
          _tile_stored(3, edge + 16 * 32 + 16, 128);
          const int64_t valid_rows = std::min<int64_t>(32, m - m0),
                        valid_cols = std::min<int64_t>(32, n - n0);
          for (int64_t r = 0; r < valid_rows; ++r)
            std::memcpy(c + (m0 + r) * ldc + n0, edge + r * 32,
                        static_cast<size_t>(valid_cols) * sizeof(float));
        }
      }
    }
  }
  _tile_release();
}

#else
bool amx_bf16_usable() {
  return false;
}
bool amx_int8_usable() {
  return false;
}
void configure_tiles() {
  fail("AMX kernels are not built for this CPU architecture");
}
void release_tiles() {}
void gemm_tiles(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t, int64_t,
                int64_t, bool) {
  fail("AMX kernels are not built for this CPU architecture");
}
#endif
}  // namespace lowbit::kernels::amx

// The W8A8 integer product on AVX-512 VNNI (vpdpbusd), kernels_packed.h int8_linear. Highway 1.0.3 has no
// VNNI op, so this file uses intrinsics in functions compiled for that instruction set only; they run only
// after have_avx512_vnni() said the CPU has it (the rest of the library is built for the baseline).
#include <immintrin.h>

#include <algorithm>

#include "runtime/kernels_packed.h"
#include "runtime/kernels_packed_vnni.h"

namespace lowbit::kernels {

bool have_avx512_vnni() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vnni");
  return have;
#else
  return false;
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
namespace {

// out[i * R + r] = sum_k (qx[i][k] + 128) * q[n + r][k] for M x rows. UInt8 weights are stored as q + 128:
// flipping the top bit gives the signed code.
template <int R, int M, bool kUnsigned>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void VnniBlock(const uint8_t* x, int64_t K,
                                                                      const uint8_t* w, int64_t row_bytes,
                                                                      int32_t* out) {
  __m512i acc[R][M];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t k = 0; k < K; k += 64) {
    const int64_t left = K - k;
    const __mmask64 mask = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
    __m512i wv[R];
    for (int r = 0; r < R; ++r) {
      wv[r] = _mm512_maskz_loadu_epi8(mask, w + r * row_bytes + k);
      if constexpr (kUnsigned) wv[r] = _mm512_xor_si512(wv[r], flip);  // masked lanes meet x = 0
    }
    for (int i = 0; i < M; ++i) {
      const __m512i xv = _mm512_maskz_loadu_epi8(mask, x + i * K + k);
      for (int r = 0; r < R; ++r) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], xv, wv[r]);
    }
  }
  // Horizontal sums through memory: GCC 12's _mm512_reduce_add_epi32 trips -Wuninitialized in its header.
  alignas(64) int32_t lanes[16];
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < M; ++i) {
      _mm512_store_si512(lanes, acc[r][i]);
      int32_t sum = 0;
      for (int32_t v : lanes) sum += v;
      out[i * R + r] = sum;
    }
  }
}

// Weight rows [n_begin, n_end) in tiles of kTileRows: for each block of 4 x rows, every 4-row group of the
// tile. The tile's codes (kTileRows x K bytes) stay in L1/L2 while all x rows pass, and each x block is
// reused by the whole tile: at m = 512 the untiled order streamed all of x from L2 once per 4 weight rows.
template <bool kUnsigned>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void VnniRange(const Int8Activations& x,
                                                                      const PackedMatrix& w,
                                                                      const float* bias, float* y,
                                                                      int64_t n_begin, int64_t n_end) {
  constexpr int kXRows = 4;
  constexpr int64_t kTileRows = 32;
  const int64_t K = w.cols;
  const auto* codes = static_cast<const uint8_t*>(w.data);
  int32_t out[kXRows * 4];
  auto finish = [&](int64_t i0, int rows, int64_t n, int R) {
    for (int i = 0; i < rows; ++i)
      for (int r = 0; r < R; ++r) out[i * R + r] -= 128 * w.row_code_sums[n + r];  // x was biased by 128
    int8_rescale(x, w, bias, out, R, i0, rows, n, R, y);
  };
  for (int64_t t0 = n_begin; t0 < n_end; t0 += kTileRows) {
    const int64_t t1 = std::min(n_end, t0 + kTileRows);
    for (int64_t i0 = 0; i0 < x.rows; i0 += kXRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kXRows, x.rows - i0));
      const uint8_t* xb = x.biased.data() + i0 * K;
      int64_t n = t0;
      for (; n + 4 <= t1; n += 4) {
        const uint8_t* wr = codes + n * w.row_bytes;
        switch (rows) {
          case 1:
            VnniBlock<4, 1, kUnsigned>(xb, K, wr, w.row_bytes, out);
            break;
          case 2:
            VnniBlock<4, 2, kUnsigned>(xb, K, wr, w.row_bytes, out);
            break;
          case 3:
            VnniBlock<4, 3, kUnsigned>(xb, K, wr, w.row_bytes, out);
            break;
          default:
            VnniBlock<4, 4, kUnsigned>(xb, K, wr, w.row_bytes, out);
            break;
        }
        finish(i0, rows, n, 4);
      }
      for (; n < t1; ++n) {
        const uint8_t* wr = codes + n * w.row_bytes;
        for (int i = 0; i < rows; ++i) VnniBlock<1, 1, kUnsigned>(xb + i * K, K, wr, w.row_bytes, out + i);
        finish(i0, rows, n, 1);
      }
    }
  }
}

}  // namespace

void vnni_int8_rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                    int64_t n_begin, int64_t n_end) {
  if (w.codes == Codes::UInt8) return VnniRange<true>(x, w, bias, y, n_begin, n_end);
  VnniRange<false>(x, w, bias, y, n_begin, n_end);
}
#else
void vnni_int8_rows(const Int8Activations&, const PackedMatrix&, const float*, float*, int64_t, int64_t) {}
#endif

}  // namespace lowbit::kernels

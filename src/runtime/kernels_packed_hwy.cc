// Highway SIMD kernels over packed weights (kernels_packed.h), compiled per x86 target by foreach_target and
// picked at runtime with HWY_DYNAMIC_DISPATCH, as kernels_hwy.cc. Single-threaded; kernels_packed.cc splits
// output rows over the pool.
//
// Decoding in registers:
//   Int4   a vector of L int32 words holds 8L codes. Shifting it right by 4j and masking gives, in lane i,
//   the
//          code 8i + j of the block, so the 8 shifts of one load give 8 vectors of codes without any shuffle.
//          The matching x values are strided; the caller permutes x once per call into that order (xp:
//          block b, shift j, lane i <- x[8Lb + 8i + j]), which costs m * K, not N * K. The scale of lane i
//          is that of code 8i's group (a broadcast when the block lies in one group, a gather otherwise).
//   UInt8 / Int8   L bytes widened to int32, converted to float.
//   E4M3   the int8 code sign-extended to int16, shifted left by 7 and bit 14 cleared is the fp16 pattern of
//          value / 2^8 (same exponent field, bias 15 instead of 7; subnormals map to fp16 subnormals), which
//          F16C widens exactly; the 2^8 is folded into the scales at load.
//   E5M2   the code is the high byte of the fp16 pattern of the same value.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels_packed_hwy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
//
#include "hwy/highway.h"

#ifndef LOWBIT_RUNTIME_KERNELS_PACKED_HWY_ONCE
#define LOWBIT_RUNTIME_KERNELS_PACKED_HWY_ONCE
#include <algorithm>
#include <cstring>

#include "runtime/kernels_packed.h"
#include "runtime/kernels_packed_hwy.h"
#endif

HWY_BEFORE_NAMESPACE();
namespace lowbit::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using DI = hn::RebindToSigned<DF>;
using DU = hn::RebindToUnsigned<DF>;

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kMaxXRows = 4;
constexpr int kWeightRows = 4;
#else
constexpr int kMaxXRows = 2;
constexpr int kWeightRows = 2;
#endif

// Per-row scalar epilogue: row n's zero terms times the group sums of x.
HWY_INLINE float ZeroCorrection(const PackedMatrix& w, int64_t n, const float* xsum_row, int64_t groups) {
  if (!w.has_zero_terms()) return 0.0f;
  float s = 0.0f;
  for (int64_t g = 0; g < groups; ++g) s += w.zero_term(n * groups + g) * xsum_row[g];
  return s;
}

// ---- byte codes --------------------------------------------------------------------------------------

template <Codes C>
HWY_INLINE VF DecodeBytes(DF df, const uint8_t* HWY_RESTRICT p) {
  if constexpr (C == Codes::Int8) {
    const hn::Rebind<int8_t, DF> d8;
    return hn::ConvertTo(df, hn::PromoteTo(DI(), hn::LoadU(d8, reinterpret_cast<const int8_t*>(p))));
  } else if constexpr (C == Codes::UInt8) {
    const hn::Rebind<uint8_t, DF> d8;
    return hn::ConvertTo(df, hn::BitCast(DI(), hn::PromoteTo(DU(), hn::LoadU(d8, p))));
  } else if constexpr (C == Codes::E4M3) {
    const hn::Rebind<int8_t, DF> d8;
    const hn::Rebind<int16_t, DF> d16;
    const auto v = hn::PromoteTo(d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(p)));
    const auto bits = hn::And(hn::ShiftLeft<7>(v), hn::Set(d16, static_cast<int16_t>(-16385)));  // ~0x4000
    return hn::PromoteTo(df, hn::BitCast(hn::Rebind<hwy::float16_t, DF>(), bits));
  } else {
    const hn::Rebind<uint8_t, DF> d8;
    const hn::Rebind<uint16_t, DF> d16;
    const auto bits = hn::ShiftLeft<8>(hn::PromoteTo(d16, hn::LoadU(d8, p)));
    return hn::PromoteTo(df, hn::BitCast(hn::Rebind<hwy::float16_t, DF>(), bits));
  }
}

// fp32 -> nearest bf16 (ties to even) -> fp32, for finite values: io/dtype.h f32_to_bf16 in registers.
HWY_INLINE VF RoundToBf16(VF v) {
  const DU du;
  const auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  const auto rounded = hn::Add(bits, hn::Add(hn::Set(du, 0x7FFFu), lsb));
  return hn::BitCast(DF(), hn::And(rounded, hn::Set(du, 0xFFFF0000u)));
}

// out[i * R + r] = sum_k c(k) * scale(r, k) * x[i][k] for R rows of byte codes and M x rows. Codes times x
// accumulate per group; the group's scale multiplies the sum once (one fused multiply-add per group). With
// kRound (fp8 with bf16 scales), each weight c * s is formed and rounded to bf16 before the product instead.
template <Codes C, int R, int M, bool kRound = false>
HWY_INLINE void ByteDotBlock(const float* HWY_RESTRICT x, const PackedMatrix& w, int64_t n, float* out) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t K = w.cols, gs = w.group_size, G = w.groups();
  const auto* base = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
  VF total[R][M];
  float tail[R][M] = {};
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) total[r][i] = hn::Zero(df);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t k0 = g * gs, k1 = std::min(K, k0 + gs);
    const int64_t kv = k0 + (k1 - k0) / L * L;
    VF acc[R][M];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < M; ++i) acc[r][i] = hn::Zero(df);
    VF scale_v[R];
    for (int r = 0; r < R; ++r) scale_v[r] = hn::Set(df, w.scales[(n + r) * G + g]);
    for (int64_t k = k0; k < kv; k += L) {
      VF wv[R];
      for (int r = 0; r < R; ++r) {
        wv[r] = DecodeBytes<C>(df, base + r * w.row_bytes + k);
        if constexpr (kRound) wv[r] = RoundToBf16(hn::Mul(wv[r], scale_v[r]));
      }
      for (int i = 0; i < M; ++i) {
        const VF xv = hn::LoadU(df, x + i * K + k);
        for (int r = 0; r < R; ++r) acc[r][i] = hn::MulAdd(wv[r], xv, acc[r][i]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const VF s = kRound ? hn::Set(df, 1.0f) : scale_v[r];  // rounded weights carry their scale
      for (int i = 0; i < M; ++i) total[r][i] = hn::MulAdd(acc[r][i], s, total[r][i]);
      for (int64_t k = kv; k < k1; ++k) {
        // Zero terms are applied once per row by the caller (ZeroCorrection), so not here.
        const float wk =
            kRound ? packed_weight(w, n + r, k) : packed_code(w, n + r, k) * w.scales[(n + r) * G + g];
        for (int i = 0; i < M; ++i) tail[r][i] += wk * x[i * K + k];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) out[i * R + r] = hn::GetLane(hn::SumOfLanes(df, total[r][i])) + tail[r][i];
}

// ---- int4 words --------------------------------------------------------------------------------------

// Lane scales of one word vector (codes [8 L v, 8 L (v + 1)) of the row): lane i holds codes 8i .. 8i + 7.
HWY_INLINE VF LaneScales(DF df, const float* scale_row, int64_t first_code, int64_t gs) {
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t g0 = first_code / gs, g1 = (first_code + 8 * L - 1) / gs;
  if (g0 == g1) return hn::Set(df, scale_row[g0]);
  const auto lane_code =
      hn::Add(hn::Set(DI(), static_cast<int32_t>(first_code)), hn::ShiftLeft<3>(hn::Iota(DI(), 0)));
  // Group of each lane: divide by gs in float (exact: codes < 2^24, gs a multiple of 16).
  const VF q = hn::Floor(hn::Div(hn::ConvertTo(df, lane_code), hn::Set(df, static_cast<float>(gs))));
  return hn::GatherIndex(df, scale_row, hn::ConvertTo(DI(), q));
}

// The float 1 + c / 16 of code j of every lane: the nibble moved to the top 4 mantissa bits of 1.0f (one
// shift and one and-or, a single vpternlogd on AVX-512), which replaces an int-to-float conversion.
template <int J>
HWY_INLINE VF NibblePlusOne(hn::Vec<DU> words) {
  const DU du;
  const auto one = hn::Set(du, 0x3F800000u);
  const auto field = hn::Set(du, 0xFu << 19);
  const auto moved = J * 4 <= 19 ? hn::ShiftLeft<(19 - J * 4 > 0 ? 19 - J * 4 : 0)>(words)
                                 : hn::ShiftRight<(J * 4 > 19 ? J * 4 - 19 : 0)>(words);
  return hn::BitCast(DF(), hn::OrAnd(one, moved, field));
}

// Sums the 8 code vectors of one word vector (lane i: codes 8i .. 8i + 7 of the block) against xp.
template <int R, int M, int J>
HWY_INLINE void Int4Shift(const hn::Vec<DU> (&words)[R], const float* HWY_RESTRICT xp, int64_t kfull,
                          int64_t L, VF (&acc)[R][M]) {
  VF wv[R];
  for (int r = 0; r < R; ++r) wv[r] = NibblePlusOne<J>(words[r]);
  for (int i = 0; i < M; ++i) {
    const VF xv = hn::LoadU(DF(), xp + i * kfull + J * L);
    for (int r = 0; r < R; ++r) acc[r][i] = hn::MulAdd(wv[r], xv, acc[r][i]);
  }
}

// Int4: sum_k (1 + c/16) x_k per word vector, times 16 s (per lane), minus sum_g 16 s_g xsum_g at the end,
// which leaves sum_k c s x_k.
template <int R, int M>
HWY_INLINE void Int4DotBlock(const float* HWY_RESTRICT x, const float* HWY_RESTRICT xp, int64_t kfull,
                             const float* HWY_RESTRICT xsum, const PackedMatrix& w, int64_t n, float* out) {
  const DF df;
  const DU du;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t K = w.cols, gs = w.group_size, G = w.groups();
  const auto* base = reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.data) + n * w.row_bytes);
  const int64_t row_words = w.row_bytes / 4;
  const VF sixteen = hn::Set(df, 16.0f);
  VF total[R][M];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) total[r][i] = hn::Zero(df);
  for (int64_t c0 = 0; c0 < kfull; c0 += 8 * L) {
    hn::Vec<DU> words[R];
    for (int r = 0; r < R; ++r) words[r] = hn::LoadU(du, base + r * row_words + c0 / 8);
    VF acc[R][M];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < M; ++i) acc[r][i] = hn::Zero(df);
    const float* xb = xp + c0;
    Int4Shift<R, M, 0>(words, xb, kfull, L, acc);
    Int4Shift<R, M, 1>(words, xb, kfull, L, acc);
    Int4Shift<R, M, 2>(words, xb, kfull, L, acc);
    Int4Shift<R, M, 3>(words, xb, kfull, L, acc);
    Int4Shift<R, M, 4>(words, xb, kfull, L, acc);
    Int4Shift<R, M, 5>(words, xb, kfull, L, acc);
    Int4Shift<R, M, 6>(words, xb, kfull, L, acc);
    Int4Shift<R, M, 7>(words, xb, kfull, L, acc);
    for (int r = 0; r < R; ++r) {
      const VF s = hn::Mul(LaneScales(df, w.scales + (n + r) * G, c0, gs), sixteen);
      for (int i = 0; i < M; ++i) total[r][i] = hn::MulAdd(acc[r][i], s, total[r][i]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float* scale_row = w.scales + (n + r) * G;
    for (int i = 0; i < M; ++i) {
      // The "1 +" part covered codes [0, kfull): remove 16 s x summed over them.
      float t = 0.0f;
      if (kfull == K) {
        for (int64_t g = 0; g < G; ++g) t -= 16.0f * scale_row[g] * xsum[i * G + g];
      } else {
        for (int64_t k = 0; k < kfull; ++k) t -= 16.0f * scale_row[k / gs] * x[i * K + k];
      }
      for (int64_t k = kfull; k < K; ++k) t += packed_code(w, n + r, k) * scale_row[k / gs] * x[i * K + k];
      out[i * R + r] = hn::GetLane(hn::SumOfLanes(df, total[r][i])) + t;
    }
  }
}

// ---- dispatch over rows ------------------------------------------------------------------------------

template <int R, int M>
HWY_INLINE void DotBlock(const simd::PackedGemvArgs& a, int64_t n, float* out) {
  const float* x = a.x;
  switch (a.w->codes) {
    case Codes::Int4:
      // Two accumulator sets per (row, x row): more than 2 x rows at once would spill registers.
      if constexpr (M > 2) {
        const int64_t K = a.w->cols, G = a.w->groups();
        Int4DotBlock<R, 2>(x, a.xp, a.kfull, a.xsum, *a.w, n, out);
        return Int4DotBlock<R, M - 2>(x + 2 * K, a.xp + 2 * a.kfull, a.kfull, a.xsum + 2 * G, *a.w, n,
                                      out + 2 * R);
      } else {
        return Int4DotBlock<R, M>(x, a.xp, a.kfull, a.xsum, *a.w, n, out);
      }
    case Codes::UInt8:
      return ByteDotBlock<Codes::UInt8, R, M>(x, *a.w, n, out);
    case Codes::Int8:
      return ByteDotBlock<Codes::Int8, R, M>(x, *a.w, n, out);
    case Codes::E4M3:
      if (a.w->round_to_bf16) return ByteDotBlock<Codes::E4M3, R, M, true>(x, *a.w, n, out);
      return ByteDotBlock<Codes::E4M3, R, M>(x, *a.w, n, out);
    case Codes::E5M2:
      if (a.w->round_to_bf16) return ByteDotBlock<Codes::E5M2, R, M, true>(x, *a.w, n, out);
      return ByteDotBlock<Codes::E5M2, R, M>(x, *a.w, n, out);
  }
}

template <int R>
HWY_INLINE void DotRows(const simd::PackedGemvArgs& a, int64_t n) {
  const PackedMatrix& w = *a.w;
  const int64_t K = w.cols, G = w.groups(), N = w.rows;
  float out[kMaxXRows * R];
  for (int64_t i0 = 0; i0 < a.m; i0 += kMaxXRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxXRows, a.m - i0));
    simd::PackedGemvArgs sub = a;
    sub.x = a.x + i0 * K;
    sub.xp = a.xp ? a.xp + i0 * a.kfull : nullptr;
    sub.xsum = a.xsum ? a.xsum + i0 * G : nullptr;
    switch (rows) {
      case 1:
        DotBlock<R, 1>(sub, n, out);
        break;
      case 2:
        DotBlock<R, 2>(sub, n, out);
        break;
      case 3:
        if constexpr (kMaxXRows >= 3) DotBlock<R, 3>(sub, n, out);
        break;
      default:
        if constexpr (kMaxXRows >= 4) DotBlock<R, 4>(sub, n, out);
        break;
    }
    for (int i = 0; i < rows; ++i) {
      const float* xsum = a.xsum ? a.xsum + (i0 + i) * G : nullptr;
      for (int r = 0; r < R; ++r) {
        float v = out[i * R + r] - ZeroCorrection(w, n + r, xsum, G);
        if (a.bias) v += a.bias[n + r];
        a.y[(i0 + i) * N + n + r] = v;
      }
    }
  }
}

void PackedGemvRows(const simd::PackedGemvArgs& a, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + kWeightRows <= n_end; n += kWeightRows) DotRows<kWeightRows>(a, n);
  for (; n < n_end; ++n) DotRows<1>(a, n);
}

// ---- dequantization of a tile of rows (the prefill path) ---------------------------------------------

// out[k] = c(k) * s - zt for rows [row_begin, row_begin + rows), row-major [rows][K].
template <Codes C>
HWY_INLINE void DequantBytes(const PackedMatrix& w, int64_t n, float* HWY_RESTRICT out) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t K = w.cols, gs = w.group_size, G = w.groups();
  const auto* row = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
  for (int64_t g = 0; g < G; ++g) {
    const int64_t k0 = g * gs, k1 = std::min(K, k0 + gs);
    const float s = w.scales[n * G + g], z = w.zero_term(n * G + g);
    const VF vs = hn::Set(df, s), vz = hn::Set(df, z);
    int64_t k = k0;
    for (; k + L <= k1; k += L) {
      VF v = hn::MulSub(DecodeBytes<C>(df, row + k), vs, vz);
      if (w.round_to_bf16) v = RoundToBf16(v);
      hn::StoreU(v, df, out + k);
    }
    for (; k < k1; ++k) out[k] = packed_weight(w, n, k);
  }
}

// Int4: one word (8 codes in k order) per step, broadcast and shifted by 0, 4, .., 28 in an 8-lane vector
// (or 8 / L parts on narrower targets).
HWY_INLINE void DequantInt4(const PackedMatrix& w, int64_t n, float* HWY_RESTRICT out) {
  const hn::CappedTag<float, 8> d8;
  const hn::RebindToUnsigned<decltype(d8)> du8;
  const hn::RebindToSigned<decltype(d8)> di8;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d8));  // 8, or 4 on 128-bit targets
  const int64_t K = w.cols, gs = w.group_size, G = w.groups();
  const auto* row = reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.data) + n * w.row_bytes);
  const auto mask = hn::Set(du8, 0xFu);
  const auto shifts = hn::ShiftLeft<2>(hn::Iota(du8, 0));
  const int64_t full_words = K / 8;
  for (int64_t wi = 0; wi < full_words; ++wi) {
    const int64_t cell = n * G + (wi * 8) / gs;
    const auto vs = hn::Set(d8, w.scales[cell]);
    const auto vz = hn::Set(d8, w.zero_term(cell));
    const auto word = hn::Set(du8, row[wi]);
    for (int64_t h = 0; h < 8 / L; ++h) {
      const auto part = hn::Add(shifts, hn::Set(du8, static_cast<uint32_t>(4 * L * h)));
      const auto codes = hn::And(hn::operator>>(word, part), mask);
      hn::StoreU(hn::MulSub(hn::ConvertTo(d8, hn::BitCast(di8, codes)), vs, vz), d8, out + wi * 8 + h * L);
    }
  }
  for (int64_t k = full_words * 8; k < K; ++k) out[k] = packed_weight(w, n, k);
}

void DequantRows(const PackedMatrix& w, int64_t row_begin, int64_t rows, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * w.cols;
    const int64_t n = row_begin + r;
    switch (w.codes) {
      case Codes::Int4:
        DequantInt4(w, n, o);
        break;
      case Codes::UInt8:
        DequantBytes<Codes::UInt8>(w, n, o);
        break;
      case Codes::Int8:
        DequantBytes<Codes::Int8>(w, n, o);
        break;
      case Codes::E4M3:
        DequantBytes<Codes::E4M3>(w, n, o);
        break;
      case Codes::E5M2:
        DequantBytes<Codes::E5M2>(w, n, o);
        break;
    }
  }
}

// ---- W8A8: int16 x int16 -> int32 multiply-add ---------------------------------------------------------

using D16 = hn::ScalableTag<int16_t>;
using D32 = hn::RepartitionToWide<D16>;

template <Codes C>
HWY_INLINE hn::Vec<D16> LoadWeights16(D16 d16, const uint8_t* p) {
  if constexpr (C == Codes::Int8) {
    return hn::PromoteTo(d16, hn::LoadU(hn::Rebind<int8_t, D16>(), reinterpret_cast<const int8_t*>(p)));
  } else {
    const hn::Rebind<uint16_t, D16> du16;
    return hn::BitCast(d16, hn::PromoteTo(du16, hn::LoadU(hn::Rebind<uint8_t, D16>(), p)));
  }
}

// out[i * R + r] = sum_k qx[i][k] * c[n + r][k] (integer, exact).
template <Codes C, int R, int M>
HWY_INLINE void IntDotBlock(const int16_t* HWY_RESTRICT qx, int64_t K, const PackedMatrix& w, int64_t n,
                            int32_t* out) {
  const D16 d16;
  const D32 d32;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d16));
  const auto* base = static_cast<const uint8_t*>(w.data) + n * w.row_bytes;
  hn::Vec<D32> acc[R][M];
  hn::Vec<D32> unused = hn::Zero(d32);
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = hn::Zero(d32);
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    hn::Vec<D16> wv[R];
    for (int r = 0; r < R; ++r) wv[r] = LoadWeights16<C>(d16, base + r * w.row_bytes + k);
    for (int i = 0; i < M; ++i) {
      const auto xv = hn::LoadU(d16, qx + i * K + k);
      for (int r = 0; r < R; ++r)
        acc[r][i] = hn::ReorderWidenMulAccumulate(d32, wv[r], xv, acc[r][i], unused);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < M; ++i) {
      int32_t s = hn::GetLane(hn::SumOfLanes(d32, hn::RearrangeToOddPlusEven(acc[r][i], unused)));
      for (int64_t t = k; t < K; ++t) s += static_cast<int32_t>(packed_code(w, n + r, t)) * qx[i * K + t];
      out[i * R + r] = s;
    }
  }
}

template <Codes C, int R>
HWY_INLINE void IntRows(const simd::Int8GemmArgs& a, int64_t n) {
  const PackedMatrix& w = *a.w;
  const int64_t K = w.cols;
  const Int8Activations& x = *a.x;
  int32_t out[kMaxXRows * R];
  for (int64_t i0 = 0; i0 < x.rows; i0 += kMaxXRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxXRows, x.rows - i0));
    const int16_t* qx = x.codes.data() + i0 * K;
    switch (rows) {
      case 1:
        IntDotBlock<C, R, 1>(qx, K, w, n, out);
        break;
      case 2:
        IntDotBlock<C, R, 2>(qx, K, w, n, out);
        break;
      case 3:
        if constexpr (kMaxXRows >= 3) IntDotBlock<C, R, 3>(qx, K, w, n, out);
        break;
      default:
        if constexpr (kMaxXRows >= 4) IntDotBlock<C, R, 4>(qx, K, w, n, out);
        break;
    }
    if constexpr (C == Codes::UInt8) {  // the storage offset: c = q + 128
      for (int i = 0; i < rows; ++i)
        for (int r = 0; r < R; ++r) out[i * R + r] -= 128 * x.sums[static_cast<size_t>(i0 + i)];
    }
    int8_rescale(x, w, a.bias, out, R, i0, rows, n, R, a.y);
  }
}

template <Codes C>
HWY_INLINE void IntRowsRange(const simd::Int8GemmArgs& a, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + kWeightRows <= n_end; n += kWeightRows) IntRows<C, kWeightRows>(a, n);
  for (; n < n_end; ++n) IntRows<C, 1>(a, n);
}

void Int8GemmRows(const simd::Int8GemmArgs& a, int64_t n_begin, int64_t n_end) {
  if (a.w->codes == Codes::UInt8) return IntRowsRange<Codes::UInt8>(a, n_begin, n_end);
  IntRowsRange<Codes::Int8>(a, n_begin, n_end);
}

int64_t Int4BlockCodes() {
  return 8 * static_cast<int64_t>(hn::Lanes(DF()));
}

}  // namespace lowbit::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::kernels {
HWY_EXPORT(PackedGemvRows);
HWY_EXPORT(Int8GemmRows);
HWY_EXPORT(Int4BlockCodes);
HWY_EXPORT(DequantRows);

namespace simd {
void packed_gemv_rows(const PackedGemvArgs& args, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(PackedGemvRows)(args, n_begin, n_end);
}
void int8_gemm_rows(const simd::Int8GemmArgs& args, int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(Int8GemmRows)(args, n_begin, n_end);
}
void dequantize_rows(const PackedMatrix& w, int64_t row_begin, int64_t rows, float* out) {
  HWY_DYNAMIC_DISPATCH(DequantRows)(w, row_begin, rows, out);
}
int64_t int4_block_codes() {
  return HWY_DYNAMIC_DISPATCH(Int4BlockCodes)();
}
}  // namespace simd
}  // namespace lowbit::kernels
#endif  // HWY_ONCE

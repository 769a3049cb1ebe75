// Highway SIMD kernels, compiled once per x86 target by foreach_target and picked at runtime with
// HWY_DYNAMIC_DISPATCH. Everything here is single-threaded; kernels.cc splits work over the pool.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels_hwy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
//
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

#ifndef LOWBIT_RUNTIME_KERNELS_HWY_ONCE
#define LOWBIT_RUNTIME_KERNELS_HWY_ONCE
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/dtype.h"
#include "runtime/kernels_hwy.h"
#include "runtime/row_streams.h"
#endif

HWY_BEFORE_NAMESPACE();
namespace lowbit::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// How a stored weight element becomes fp32: a whole vector at a time, and one element for the tails.
template <DType T>
struct Widen;

template <>
struct Widen<DType::F32> {
  using Elem = float;
  static HWY_INLINE VF Load(DF df, const Elem* p) { return hn::LoadU(df, p); }
  static float One(const Elem* p) { return *p; }
};

template <>
struct Widen<DType::BF16> {
  using Elem = hwy::bfloat16_t;
  static HWY_INLINE VF Load(DF df, const Elem* p) {
    return hn::PromoteTo(df, hn::LoadU(hn::Rebind<Elem, DF>(), p));
  }
  static float One(const Elem* p) { return bf16_to_f32(p->bits); }
};

template <>
struct Widen<DType::F16> {
  using Elem = hwy::float16_t;
  static HWY_INLINE VF Load(DF df, const Elem* p) {
    return hn::PromoteTo(df, hn::LoadU(hn::Rebind<Elem, DF>(), p));
  }
  static float One(const Elem* p) {
    uint16_t bits;
    std::memcpy(&bits, p, sizeof(bits));
    return f16_to_f32(bits);
  }
};

// How many x rows one pass keeps in registers: R * M accumulators + R weight vectors + 1 x vector must
// fit the register file (32 vectors with AVX-512, 16 otherwise) or the inner loop spills.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kMaxXRows = 4;
constexpr int kVectorRegisters = 32;
#else
constexpr int kMaxXRows = 2;
constexpr int kVectorRegisters = 16;
#endif
constexpr int kWeightRows = kRowStreams;  // row_streams.h

// out[i * R + r] = dot(x row i, W row r) over K for the R weight rows `w[r]` and M x rows.
template <DType T, int R, int M>
HWY_INLINE void DotBlock(const float* HWY_RESTRICT x, int64_t K, const typename Widen<T>::Elem* const* w,
                         float* out) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  VF acc[R][M];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = hn::Zero(df);
  int64_t k = 0;
  for (; k + lanes <= K; k += lanes) {
    VF wv[R];
    // Each row is read as part of its own sequential stream (GemvTyped); a prefetch never faults, so running
    // past the last row is harmless.
    for (int r = 0; r < R; ++r)
      hwy::Prefetch(reinterpret_cast<const char*>(w[r] + k) + kRowStreamPrefetchBytes);
    for (int r = 0; r < R; ++r) wv[r] = Widen<T>::Load(df, w[r] + k);
    for (int i = 0; i < M; ++i) {
      const VF xv = hn::LoadU(df, x + i * K + k);
      for (int r = 0; r < R; ++r) acc[r][i] = hn::MulAdd(wv[r], xv, acc[r][i]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < M; ++i) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[r][i]));
      for (int64_t t = k; t < K; ++t) s += Widen<T>::One(w[r] + t) * x[i * K + t];
      out[i * R + r] = s;
    }
  }
}

// Weight rows n[0..R) against all m x rows, kMaxXRows at a time; the weight rows stay in L1 between passes.
template <DType T, int R>
HWY_INLINE void DotRows(const float* x, int64_t m, int64_t K, const typename Widen<T>::Elem* w,
                        const int64_t* n, const float* bias, float* y, int64_t ldy) {
  using Elem = typename Widen<T>::Elem;
  const Elem* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = w + n[r] * K;
  float out[kMaxXRows * R];
  for (int64_t i0 = 0; i0 < m; i0 += kMaxXRows) {
    const int count = static_cast<int>(std::min<int64_t>(kMaxXRows, m - i0));
    const float* xi = x + i0 * K;
    switch (count) {
      case 1:
        DotBlock<T, R, 1>(xi, K, rows, out);
        break;
      case 2:
        DotBlock<T, R, 2>(xi, K, rows, out);
        break;
      case 3:
        if constexpr (kMaxXRows >= 3) DotBlock<T, R, 3>(xi, K, rows, out);
        break;
      default:
        if constexpr (kMaxXRows >= 4) DotBlock<T, R, 4>(xi, K, rows, out);
        break;
    }
    for (int i = 0; i < count; ++i)
      for (int r = 0; r < R; ++r) y[(i0 + i) * ldy + n[r]] = out[i * R + r] + (bias ? bias[n[r]] : 0.0f);
  }
}

// Four weight rows a step, from four quarters of the range (row_streams.h).
template <DType T>
void GemvTyped(const float* x, int64_t m, const void* data, int64_t K, const float* bias, float* y,
               int64_t ldy, int64_t n_begin, int64_t n_end) {
  using Elem = typename Widen<T>::Elem;
  const Elem* w = static_cast<const Elem*>(data);
  for_rows_in_four_streams(
      n_begin, n_end, [&](const int64_t* n) { DotRows<T, kWeightRows>(x, m, K, w, n, bias, y, ldy); },
      [&](const int64_t* n) { DotRows<T, 1>(x, m, K, w, n, bias, y, ldy); });
}

void GemvRows(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y, int64_t ldy,
              int64_t n_begin, int64_t n_end) {
  switch (w.dtype) {
    case DType::F32:
      return GemvTyped<DType::F32>(x, m, w.data, w.cols, bias, y, ldy, n_begin, n_end);
    case DType::BF16:
      return GemvTyped<DType::BF16>(x, m, w.data, w.cols, bias, y, ldy, n_begin, n_end);
    case DType::F16:
      return GemvTyped<DType::F16>(x, m, w.data, w.cols, bias, y, ldy, n_begin, n_end);
    default:
      return;  // kernels.cc only sends the three dtypes above
  }
}

template <DType T>
void ConvertTyped(const void* src, float* HWY_RESTRICT out, size_t count) {
  using Elem = typename Widen<T>::Elem;
  const Elem* s = static_cast<const Elem*>(src);
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= count; i += lanes) hn::StoreU(Widen<T>::Load(df, s + i), df, out + i);
  for (; i < count; ++i) out[i] = Widen<T>::One(s + i);
}

void ConvertF32(DType dtype, const void* src, float* out, size_t count) {
  switch (dtype) {
    case DType::F32:
      return ConvertTyped<DType::F32>(src, out, count);
    case DType::BF16:
      return ConvertTyped<DType::BF16>(src, out, count);
    case DType::F16:
      return ConvertTyped<DType::F16>(src, out, count);
    default:
      return convert_to_f32(dtype, src, out, count);
  }
}

#if HWY_TARGET != HWY_SCALAR
// The four partial sums of a, b, c, d side by side in every 128-bit block: a transpose inside each block
// (two rounds of interleave and add). About a third of the shuffles of four SumOfLanes, whose cost
// dominated dots of 64 columns.
HWY_INLINE VF BlockSums4(DF df, VF a, VF b, VF c, VF d) {
  const VF ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));  // a02 b02 a13 b13
  const VF cd = hn::Add(hn::InterleaveLower(df, c, d), hn::InterleaveUpper(df, c, d));  // c02 d02 c13 d13
  const hn::Repartition<uint64_t, DF> du64;
  const auto ab64 = hn::BitCast(du64, ab), cd64 = hn::BitCast(du64, cd);
  return hn::Add(hn::BitCast(df, hn::InterleaveLower(du64, ab64, cd64)),   // a02 b02 c02 d02
                 hn::BitCast(df, hn::InterleaveUpper(du64, ab64, cd64)));  // + a13 b13 c13 d13
}
#endif

// out[0 .. 4) = the lane sums of a, b, c, d: BlockSums4, then the blocks added in order.
HWY_INLINE void StoreLaneSums4(DF df, VF a, VF b, VF c, VF d, float* out) {
#if HWY_TARGET == HWY_SCALAR
  (void)df;
  out[0] = hn::GetLane(a), out[1] = hn::GetLane(b), out[2] = hn::GetLane(c), out[3] = hn::GetLane(d);
#else
  const VF sums = BlockSums4(df, a, b, c, d);
  HWY_ALIGN float blocks[hn::MaxLanes(DF())];
  hn::Store(sums, df, blocks);
  const size_t lanes = hn::Lanes(df);
  for (size_t q = 0; q < 4; ++q) {
    float s = blocks[q];
    for (size_t b = 4; b < lanes; b += 4) s += blocks[b + q];
    out[q] = s;
  }
#endif
}

// out[0 .. 4) = scale * the lane sums of a, b, c, d: the same operations as StoreLaneSums4 and then the
// product, in vector registers throughout on AVX2 (there the scalar adds and stores of StoreLaneSums4 took
// longer than the dots of 64 columns they reduce).
HWY_INLINE void StoreScaledLaneSums4(DF df, VF a, VF b, VF c, VF d, float scale, float* out) {
#if HWY_TARGET == HWY_AVX2
  const VF sums = BlockSums4(df, a, b, c, d);
  const hn::Half<DF> dh;
  hn::StoreU(hn::Mul(hn::Add(hn::LowerHalf(dh, sums), hn::UpperHalf(dh, sums)), hn::Set(dh, scale)), dh, out);
#else
  float s[4];
  StoreLaneSums4(df, a, b, c, d, s);
  for (int r = 0; r < 4; ++r) out[r] = s[r] * scale;
#endif
}

// Decode attention reads each KV head's rows (a few hundred of 128-256 bytes) once per token, mostly from
// DRAM, since a decode step streams the weights through the caches in between; the hardware prefetcher
// restarts at every head. Each pass prefetches the rows kCacheRowsAhead ahead of the one it reads.
constexpr int64_t kCacheRowsAhead = 16;

// Prefetches the cache lines of `count` elements from p (past the end of the rows is harmless: a prefetch
// never faults).
template <typename Elem>
HWY_INLINE void PrefetchRows(const Elem* p, int64_t count) {
  const auto* bytes = reinterpret_cast<const char*>(p);
  const auto size = static_cast<int64_t>(sizeof(Elem)) * count;
  for (int64_t b = 0; b < size; b += 64) hwy::Prefetch(bytes + b);
}

// bf16 rows two vectors at a time from one 32-bit load, the even elements shifted into place and the odd
// ones masked: 2 operations per 2 vectors where PromoteTo takes 2 per vector (a widening and a shift, both
// on the two vector pipes that the multiply-adds share on Zen 3).
HWY_INLINE void LoadBf16Pair(DF df, const hwy::bfloat16_t* p, VF& even, VF& odd) {
  const hn::RebindToUnsigned<DF> du;
  const auto u = hn::LoadU(du, reinterpret_cast<const uint32_t*>(p));
  even = hn::BitCast(df, hn::ShiftLeft<16>(u));
  odd = hn::BitCast(df, hn::And(u, hn::Set(du, 0xFFFF0000u)));
}

// RowDotsBlock for the R rows starting at row j (R <= 4 is a compile-time count, so that the accumulators
// stay in registers; with a run-time count they went to the stack, and 1T/AttentionRows/grouped/576/3 took
// 13.2 instead of 10.8 us).
template <DType T, int M, int R, int64_t kFixedK = 0>
HWY_INLINE void RowDotsRows(const float* q, int64_t runtime_k, const typename Widen<T>::Elem* rows, int64_t n,
                            int64_t j, float scale, float* scores, const typename Widen<T>::Elem* next) {
  const int64_t K = kFixedK > 0 ? kFixedK : runtime_k;
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  VF acc[4][M];
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = hn::Zero(df);
  PrefetchRows(rows + (j + kCacheRowsAhead) * K, R * K);
  if (next != nullptr) PrefetchRows(next + (j + kCacheRowsAhead) * K, R * K);
  int64_t k = 0;
  for (; k + lanes <= K; k += lanes) {
    VF qv[M];
    for (int i = 0; i < M; ++i) qv[i] = hn::LoadU(df, q + i * K + k);
    for (int r = 0; r < R; ++r) {
      const VF w = Widen<T>::Load(df, rows + (j + r) * K + k);
      for (int i = 0; i < M; ++i) acc[r][i] = hn::MulAdd(w, qv[i], acc[r][i]);
    }
  }
  for (int i = 0; i < M; ++i) {
    if (R == 4 && k == K) {  // the common case: four rows, no tail, stored as one vector
      StoreScaledLaneSums4(df, acc[0][i], acc[1][i], acc[2][i], acc[3][i], scale, scores + i * n + j);
      continue;
    }
    float s[4];
    StoreLaneSums4(df, acc[0][i], acc[1][i], acc[2][i], acc[3][i], s);
    for (int r = 0; r < R; ++r) {
      for (int64_t t = k; t < K; ++t) s[r] += Widen<T>::One(rows + (j + r) * K + t) * q[i * K + t];
      scores[i * n + j + r] = s[r] * scale;
    }
  }
}

// scores[i][j] = scale * dot(q row i, row j) for M query rows (the heads of one KV head) and n rows of K
// values. Four rows at a time, each widened once for all M heads, whose 4 * M accumulators stay in
// registers (M <= 3: 12 + M query vectors + 1 row vector); the lanes are reduced four rows at a time, a
// missing row of the last block counting as zeros, so a head's scores do not depend on M.
template <DType T, int M>
void RowDotsBlock(const float* q, int64_t K, const typename Widen<T>::Elem* rows, int64_t n, float scale,
                  float* scores, const typename Widen<T>::Elem* next) {
  if (next != nullptr) PrefetchRows(next, std::min(n, kCacheRowsAhead) * K);  // the rows below get theirs
  int64_t j = 0;
  // head_dim 64 and 128 as compile-time counts: unrolled, the reduction's accumulators stay in registers
  // (1T/AttentionRows/grouped/576/3 7.8 instead of 8.4 us; the run-time count stored them to the stack).
  if (K == 64) {
    for (; j + 4 <= n; j += 4) RowDotsRows<T, M, 4, 64>(q, K, rows, n, j, scale, scores, next);
  } else if (K == 128) {
    for (; j + 4 <= n; j += 4) RowDotsRows<T, M, 4, 128>(q, K, rows, n, j, scale, scores, next);
  }
  for (; j + 4 <= n; j += 4) RowDotsRows<T, M, 4>(q, K, rows, n, j, scale, scores, next);
  switch (n - j) {
    case 1:
      return RowDotsRows<T, M, 1>(q, K, rows, n, j, scale, scores, next);
    case 2:
      return RowDotsRows<T, M, 2>(q, K, rows, n, j, scale, scores, next);
    case 3:
      return RowDotsRows<T, M, 3>(q, K, rows, n, j, scale, scores, next);
    default:
      return;
  }
}

template <DType T>
void RowDotsTyped(const float* q, int64_t m, const void* data, int64_t n, int64_t d, float scale,
                  float* scores, const void* next_rows) {
  using Elem = typename Widen<T>::Elem;
  const auto* rows = static_cast<const Elem*>(data);
  for (int64_t i = 0; i < m; i += 3) {
    const float* qi = q + i * d;
    float* si = scores + i * n;
    // The next rows with the first pass over these (later passes find these in the cache anyway).
    const auto* next = i == 0 ? static_cast<const Elem*>(next_rows) : nullptr;
    switch (std::min<int64_t>(3, m - i)) {
      case 1:
        RowDotsBlock<T, 1>(qi, d, rows, n, scale, si, next);
        break;
      case 2:
        RowDotsBlock<T, 2>(qi, d, rows, n, scale, si, next);
        break;
      default:
        RowDotsBlock<T, 3>(qi, d, rows, n, scale, si, next);
        break;
    }
  }
}

void RowDots(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d, float scale,
             float* scores, const void* next_rows) {
  switch (dtype) {
    case DType::F32:
      return RowDotsTyped<DType::F32>(q, m, rows, n, d, scale, scores, next_rows);
    case DType::BF16:
      return RowDotsTyped<DType::BF16>(q, m, rows, n, d, scale, scores, next_rows);
    case DType::F16:
      return RowDotsTyped<DType::F16>(q, m, rows, n, d, scale, scores, next_rows);
    default:
      return;  // the KV cache stores only these three
  }
}

// M weight vectors (p rows i, out rows i) over the same rows: columns in blocks of V vectors held in
// registers across all rows, so each row is widened once for all M sums and out is written once. Each
// column's sum runs over the rows in order (the same fused multiply-adds as repeated axpy calls), so the
// result does not depend on M or V.
template <DType T, int M>
void WeightedRowSumBlock(const float* p, int64_t n, const typename Widen<T>::Elem* rows, int64_t d,
                         float* out, const typename Widen<T>::Elem* next) {
  // M * V accumulators + M broadcasts + 1 row vector fit 16 registers. The accumulators are independent
  // FMA chains: 8-12 of them hide the FMA latency, where fewer made this loop latency-bound. With 16-lane
  // vectors a single head takes 4 (64 columns, one pass over a head_dim-64 row instead of none at 8).
  constexpr int V = M == 1 ? (hn::MaxLanes(DF()) >= 16 ? 4 : 8) : M <= 3 ? 4 : 2;
  // bf16 rows in LoadBf16Pair's pairs where the registers allow (M * V accumulators, M broadcasts, the pair,
  // its mask): with M = 3 on AVX2 the compiler spilled an accumulator and the loop ran 25 % slower than
  // with PromoteTo, with M = 1 it ran 20 % faster (1T/AttentionRows/grouped/576/1).
  constexpr bool kPairs = T == DType::BF16 && M * V + M + 3 <= kVectorRegisters;
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t c = 0;
  if (next != nullptr) PrefetchRows(next, std::min(n, kCacheRowsAhead) * d);  // the rows below get theirs
  for (; c + V * lanes <= d; c += V * lanes) {
    VF a[M][V];
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < V; ++v) a[i][v] = hn::Zero(df);
    for (int64_t j = 0; j < n; ++j) {
      if (c == 0) {
        PrefetchRows(rows + (j + kCacheRowsAhead) * d, d);
        if (next != nullptr) PrefetchRows(next + (j + kCacheRowsAhead) * d, d);
      }
      VF pj[M];
      for (int i = 0; i < M; ++i) pj[i] = hn::Set(df, p[i * n + j]);
      if constexpr (kPairs) {  // a[i][v], a[i][v + 1]: the even and the odd columns of 2 vectors
        for (int v = 0; v < V; v += 2) {
          VF even, odd;
          LoadBf16Pair(df, rows + j * d + c + v * lanes, even, odd);
          for (int i = 0; i < M; ++i) {
            a[i][v] = hn::MulAdd(pj[i], even, a[i][v]);
            a[i][v + 1] = hn::MulAdd(pj[i], odd, a[i][v + 1]);
          }
        }
      } else {
        for (int v = 0; v < V; ++v) {
          const VF r = Widen<T>::Load(df, rows + j * d + c + v * lanes);
          for (int i = 0; i < M; ++i) a[i][v] = hn::MulAdd(pj[i], r, a[i][v]);
        }
      }
    }
    for (int i = 0; i < M; ++i) {
      float* o = out + i * d + c;
      if constexpr (kPairs) {
        HWY_ALIGN float even[hn::MaxLanes(DF())], odd[hn::MaxLanes(DF())];
        for (int v = 0; v < V; v += 2) {
          hn::Store(a[i][v], df, even);
          hn::Store(a[i][v + 1], df, odd);
          for (int64_t l = 0; l < lanes; ++l)
            o[v * lanes + 2 * l] = even[l], o[v * lanes + 2 * l + 1] = odd[l];
        }
      } else {
        for (int v = 0; v < V; ++v) hn::StoreU(a[i][v], df, o + v * lanes);
      }
    }
  }
  for (; c + lanes <= d; c += lanes) {
    VF a[M];
    for (int i = 0; i < M; ++i) a[i] = hn::Zero(df);
    for (int64_t j = 0; j < n; ++j) {
      const VF r = Widen<T>::Load(df, rows + j * d + c);
      for (int i = 0; i < M; ++i) a[i] = hn::MulAdd(hn::Set(df, p[i * n + j]), r, a[i]);
    }
    for (int i = 0; i < M; ++i) hn::StoreU(a[i], df, out + i * d + c);
  }
  for (; c < d; ++c) {
    for (int i = 0; i < M; ++i) {
      float a = 0.0f;
      for (int64_t j = 0; j < n; ++j) a += p[i * n + j] * Widen<T>::One(rows + j * d + c);
      out[i * d + c] = a;
    }
  }
}

template <DType T>
void WeightedRowSumTyped(const float* p, int64_t m, const void* data, int64_t n, int64_t d, float* out,
                         const void* next_rows) {
  using Elem = typename Widen<T>::Elem;
  const auto* rows = static_cast<const Elem*>(data);
  for (int64_t i = 0; i < m; i += 4) {
    const float* pi = p + i * n;
    float* oi = out + i * d;
    const auto* next = i == 0 ? static_cast<const Elem*>(next_rows) : nullptr;  // as in RowDotsTyped
    switch (std::min<int64_t>(4, m - i)) {
      case 1:
        WeightedRowSumBlock<T, 1>(pi, n, rows, d, oi, next);
        break;
      case 2:
        WeightedRowSumBlock<T, 2>(pi, n, rows, d, oi, next);
        break;
      case 3:
        WeightedRowSumBlock<T, 3>(pi, n, rows, d, oi, next);
        break;
      default:
        WeightedRowSumBlock<T, 4>(pi, n, rows, d, oi, next);
        break;
    }
  }
}

void WeightedRowSum(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                    float* out, const void* next_rows) {
  switch (dtype) {
    case DType::F32:
      return WeightedRowSumTyped<DType::F32>(p, m, rows, n, d, out, next_rows);
    case DType::BF16:
      return WeightedRowSumTyped<DType::BF16>(p, m, rows, n, d, out, next_rows);
    case DType::F16:
      return WeightedRowSumTyped<DType::F16>(p, m, rows, n, d, out, next_rows);
    default:
      return;  // the KV cache stores only these three
  }
}

// Sum of squares with two accumulators (hides FMA latency); fp32, see the test for the error bound.
void RmsNorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const size_t d = static_cast<size_t>(dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* orow = out + r * dim;
    VF s0 = hn::Zero(df), s1 = hn::Zero(df);
    size_t i = 0;
    for (; i + 2 * lanes <= d; i += 2 * lanes) {
      const VF a = hn::LoadU(df, xr + i), b = hn::LoadU(df, xr + i + lanes);
      s0 = hn::MulAdd(a, a, s0);
      s1 = hn::MulAdd(b, b, s1);
    }
    for (; i + lanes <= d; i += lanes) {
      const VF a = hn::LoadU(df, xr + i);
      s0 = hn::MulAdd(a, a, s0);
    }
    float ss = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
    for (; i < d; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    const VF vinv = hn::Set(df, inv);
    i = 0;
    for (; i + lanes <= d; i += lanes)
      hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(df, xr + i), vinv), hn::LoadU(df, weight + i)), df, orow + i);
    for (; i < d; ++i) orow[i] = xr[i] * inv * weight[i];
  }
}

// e^x for x <= 0 (softmax's shifted scores, silu's exp(-|g|)), within 2 ulp of std::exp down to x = -87;
// 0 below that (an absolute error under e^-87 = 1.65e-38) and for -inf; NaN stays NaN. Cephes'
// expf: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so r is exact) and e^r = 1 + r + r^2 P(r),
// P of degree 5 evaluated in Estrin's form (a shorter dependency chain than Horner's). n is rounded by
// adding 1.5 * 2^23 + 127, which leaves n + 127 in the low mantissa bits, so one shift makes 2^n (n >= -126
// here: no special cases). hn::Exp, whose range checks cover positive x too, made decode's softmax a fifth
// of decode attention.
HWY_INLINE VF ExpNonPositive(DF df, VF x) {
  const hn::RebindToSigned<DF> di;
  const VF shifter = hn::Set(df, 12583039.0f);  // 1.5 * 2^23 + 127
  const VF t = hn::MulAdd(x, hn::Set(df, 1.44269504088896341f), shifter);
  const VF n = hn::Sub(t, shifter);
  VF r = hn::NegMulAdd(n, hn::Set(df, 0.693359375f), x);
  r = hn::NegMulAdd(n, hn::Set(df, -2.12194440e-4f), r);
  const VF r2 = hn::Mul(r, r);
  const VF a = hn::MulAdd(hn::Set(df, 1.6666665459e-1f), r, hn::Set(df, 5.0000001201e-1f));
  const VF b = hn::MulAdd(hn::Set(df, 8.3334519073e-3f), r, hn::Set(df, 4.1665795894e-2f));
  const VF c = hn::MulAdd(hn::Set(df, 1.9875691500e-4f), r, hn::Set(df, 1.3981999507e-3f));
  const VF poly = hn::MulAdd(hn::MulAdd(c, r2, b), r2, a);
  const VF e_r = hn::MulAdd(poly, r2, hn::Add(r, hn::Set(df, 1.0f)));
  const VF two_n = hn::BitCast(df, hn::ShiftLeft<23>(hn::BitCast(di, t)));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(df, -87.0f)), hn::Mul(e_r, two_n));
}

// silu(g) = g * sigmoid(g). sigmoid uses e = exp(-|g|) in [0, 1], ExpNonPositive's domain for every
// input: sigmoid = 1 / (1 + e) for g >= 0 and e / (1 + e) for g < 0, so nothing overflows.
HWY_INLINE VF SiluVec(DF df, VF g) {
  const VF one = hn::Set(df, 1.0f);
  const VF e = ExpNonPositive(df, hn::Neg(hn::Abs(g)));
  const VF num = hn::IfThenElse(hn::Lt(g, hn::Zero(df)), e, one);
  return hn::Mul(g, hn::Div(num, hn::Add(one, e)));
}

void SiluMul(const float* gate, const float* up, float* out, size_t n) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Mul(SiluVec(df, hn::LoadU(df, gate + i)), hn::LoadU(df, up + i)), df, out + i);
  if (i < n) {  // tail through a padded vector so it gets the same arithmetic as the body
    HWY_ALIGN float g[hn::MaxLanes(df)] = {};
    HWY_ALIGN float u[hn::MaxLanes(df)] = {};
    std::copy(gate + i, gate + n, g);
    std::copy(up + i, up + n, u);
    hn::Store(hn::Mul(SiluVec(df, hn::Load(df, g)), hn::Load(df, u)), df, g);
    std::copy(g, g + (n - i), out + i);
  }
}

void Softmax(float* x, size_t n) {
  if (n == 0) return;
  const DF df;
  const size_t lanes = hn::Lanes(df);
  float mx = x[0];
  size_t i = 0;
  if (n >= lanes) {
    VF vmax = hn::LoadU(df, x);
    for (i = lanes; i + lanes <= n; i += lanes) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
    mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);

  const VF vmx = hn::Set(df, mx);
  VF vsum = hn::Zero(df);
  for (i = 0; i + lanes <= n; i += lanes) {
    const VF e = ExpNonPositive(df, hn::Sub(hn::LoadU(df, x + i), vmx));
    hn::StoreU(e, df, x + i);
    vsum = hn::Add(vsum, e);
  }
  if (i <
      n) {  // the tail through a vector padded with -inf (exactly 0): every entry gets the same exponential
    HWY_ALIGN float tail[hn::MaxLanes(df)];
    std::fill(tail, tail + hn::MaxLanes(df), -std::numeric_limits<float>::infinity());
    std::copy(x + i, x + n, tail);
    const VF e = ExpNonPositive(df, hn::Sub(hn::Load(df, tail), vmx));
    hn::Store(e, df, tail);
    std::copy(tail, tail + (n - i), x + i);
    vsum = hn::Add(vsum, e);
  }
  const float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  const float inv = 1.0f / sum;
  const VF vinv = hn::Set(df, inv);
  for (i = 0; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), vinv), df, x + i);
  for (; i < n; ++i) x[i] *= inv;
}

float Dot(const float* a, const float* b, size_t n) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  VF s0 = hn::Zero(df), s1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + lanes), hn::LoadU(df, b + i + lanes), s1);
  }
  for (; i + lanes <= n; i += lanes) s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float SumFourStreams(const float* a, size_t n, bool non_temporal) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  // The streams start 1 KiB past a multiple of the quarter so that they do not all sit at the same offset
  // within their pages (quarters of a power-of-two chunk otherwise would, and then read at half the rate).
  constexpr size_t kPad = 256;
  const size_t q = n > 3 * kPad ? (n - 3 * kPad) / 4 / lanes * lanes : 0, stride = q + kPad;
  VF s0 = hn::Zero(df), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < q; i += lanes) {
    for (size_t part = 0; part < 4; ++part) {
      const float* ahead = a + part * stride + i + kRowStreamPrefetchBytes / sizeof(float);
      prefetch_row_stream(ahead, non_temporal);
    }
    s0 = hn::Add(s0, hn::LoadU(df, a + i));
    s1 = hn::Add(s1, hn::LoadU(df, a + stride + i));
    s2 = hn::Add(s2, hn::LoadU(df, a + 2 * stride + i));
    s3 = hn::Add(s3, hn::LoadU(df, a + 3 * stride + i));
  }
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  // What the streams left: the pads between them and the tail.
  for (size_t part = 0; part < 4; ++part) {
    const size_t end = part < 3 ? std::min((part + 1) * stride, n) : n;
    for (size_t i = part * stride + q; i < end; ++i) s += a[i];
  }
  return s;
}

// fma_chain_flops: ten independent chains c = c * b + a on the widest vectors, `trips` times. Ten cover the
// FMA latency (4-5 cycles) on two pipes, and with the two constants they fit 16 vector registers.
double FmaChains(int64_t trips) {
  const DF df;
  const VF a = hn::Set(df, 0.5f), b = hn::Set(df, 0.999f);
  VF c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a;
  for (int64_t i = 0; i < trips; ++i) {
    c0 = hn::MulAdd(c0, b, a);
    c1 = hn::MulAdd(c1, b, a);
    c2 = hn::MulAdd(c2, b, a);
    c3 = hn::MulAdd(c3, b, a);
    c4 = hn::MulAdd(c4, b, a);
    c5 = hn::MulAdd(c5, b, a);
    c6 = hn::MulAdd(c6, b, a);
    c7 = hn::MulAdd(c7, b, a);
    c8 = hn::MulAdd(c8, b, a);
    c9 = hn::MulAdd(c9, b, a);
  }
  const VF sum = hn::Add(hn::Add(hn::Add(hn::Add(c0, c1), hn::Add(c2, c3)), hn::Add(hn::Add(c4, c5), c6)),
                         hn::Add(hn::Add(c7, c8), c9));
  volatile float sink = hn::GetLane(hn::SumOfLanes(df, sum));  // keeps the chains
  (void)sink;
  return 2.0 * 10.0 * static_cast<double>(hn::Lanes(df)) * static_cast<double>(std::max<int64_t>(trips, 0));
}

void Axpy(float a, const float* x, float* y, size_t n) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const VF va = hn::Set(df, a);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

void AddInplace(float* y, const float* x, size_t n) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Add(hn::LoadU(df, y + i), hn::LoadU(df, x + i)), df, y + i);
  for (; i < n; ++i) y[i] += x[i];
}

// The bf16 bits of each lane of v in the upper half of a 32-bit lane (the lower half zero): round to
// nearest even, NaN kept NaN and made quiet, as io/dtype.h f32_to_bf16.
HWY_INLINE hn::Vec<hn::RebindToUnsigned<DF>> Bf16HighBits(VF v) {
  const hn::RebindToUnsigned<DF> du;
  const auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  const auto rounded = hn::Add(bits, hn::Add(hn::Set(du, 0x7FFFu), lsb));
  const auto quiet_nan = hn::Or(bits, hn::Set(du, 0x00400000u));
  return hn::And(hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), quiet_nan, rounded),
                 hn::Set(du, 0xFFFF0000u));
}

void RoundBf16(const float* x, float* out, size_t n) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::BitCast(df, Bf16HighBits(hn::LoadU(df, x + i))), df, out + i);
  for (; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

void ToBf16(const float* x, uint16_t* out, size_t n) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> d16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  // The bits shifted down are at most 0xFFFF, so the saturating int32 -> uint16 demotion keeps them.
  for (; i + lanes <= n; i += lanes) {
    const auto high = hn::BitCast(di, hn::ShiftRight<16>(Bf16HighBits(hn::LoadU(df, x + i))));
    hn::StoreU(hn::DemoteTo(d16, high), d16, out + i);
  }
  for (; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

bool MinMax(const float* x, size_t n, float* lo, float* hi) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  VF mn0 = hn::Set(df, HUGE_VALF), mn1 = mn0, mx0 = hn::Set(df, -HUGE_VALF), mx1 = mx0;
  VF nan = hn::Zero(df);  // all bits set in a lane that saw a NaN
  size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const VF a = hn::LoadU(df, x + i), b = hn::LoadU(df, x + i + lanes);
    mn0 = hn::Min(mn0, a);
    mx0 = hn::Max(mx0, a);
    mn1 = hn::Min(mn1, b);
    mx1 = hn::Max(mx1, b);
    nan = hn::Or(nan, hn::Or(hn::VecFromMask(df, hn::IsNaN(a)), hn::VecFromMask(df, hn::IsNaN(b))));
  }
  for (; i + lanes <= n; i += lanes) {
    const VF a = hn::LoadU(df, x + i);
    mn0 = hn::Min(mn0, a);
    mx0 = hn::Max(mx0, a);
    nan = hn::Or(nan, hn::VecFromMask(df, hn::IsNaN(a)));
  }
  float mn = hn::GetLane(hn::MinOfLanes(df, hn::Min(mn0, mn1)));
  float mx = hn::GetLane(hn::MaxOfLanes(df, hn::Max(mx0, mx1)));
  bool has_nan = !hn::AllFalse(df, hn::MaskFromVec(nan));
  for (; i < n; ++i) {
    has_nan = has_nan || x[i] != x[i];
    mn = x[i] < mn ? x[i] : mn;
    mx = x[i] > mx ? x[i] : mx;
  }
  *lo = mn;
  *hi = mx;
  return has_nan;
}

// quant/quantizer.cc's bf16 rounding: to nearest even, NaN unchanged (not made quiet, unlike
// Bf16HighBits).
HWY_INLINE VF RoundBf16KeepNaN(VF v) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  const auto rounded = hn::And(hn::Add(bits, hn::Add(hn::Set(du, 0x7FFFu), lsb)), hn::Set(du, 0xFFFF0000u));
  return hn::IfThenElse(hn::IsNaN(v), v, hn::BitCast(df, rounded));
}

// quant/quantizer.cc's e4m3_value / e5m2_value: the nearest fp8 value of a clamped v (ties to even), as a
// float. Normal values keep 3 (2) mantissa bits by an integer round; subnormal ones are rounded on their
// fixed grid by the magic-number addition; NaN becomes the decoded NaN code, with v's sign.
template <bool kE4m3>
HWY_INLINE VF Fp8Value(VF v) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  constexpr float kMinNormal = kE4m3 ? 0.015625f : 6.103515625e-05f;  // 2^-6, 2^-14
  constexpr float kSubnormalSteps = kE4m3 ? 512.0f : 65536.0f;        // 1 / the subnormal spacing
  constexpr uint32_t kHalfUlp = kE4m3 ? 0x7FFFFu : 0xFFFFFu;
  constexpr int kUlpShift = kE4m3 ? 20 : 21;
  constexpr uint32_t kKept = kE4m3 ? 0xFFF00000u : 0xFFE00000u;
  constexpr uint32_t kNaN = kE4m3 ? 0x7FF00000u : 0x7FE00000u;
  const auto u = hn::BitCast(du, v);
  const auto sign = hn::And(u, hn::Set(du, 0x80000000u));
  const auto a = hn::And(u, hn::Set(du, 0x7FFFFFFFu));
  const VF magnitude = hn::BitCast(df, a);
  const auto subnormal = hn::Lt(magnitude, hn::Set(df, kMinNormal));  // false for NaN
  const VF magic = hn::Set(df, 12582912.0f);                          // 1.5 * 2^23
  // The products are exact (powers of two, |v| < 2^-6), so a contraction into fused multiply-adds would
  // change nothing.
  const VF on_grid = hn::Mul(hn::IfThenElseZero(subnormal, magnitude), hn::Set(df, kSubnormalSteps));
  const VF sub = hn::Mul(hn::Sub(hn::Add(on_grid, magic), magic), hn::Set(df, 1.0f / kSubnormalSteps));
  const auto lsb = hn::And(hn::ShiftRight<kUlpShift>(a), hn::Set(du, 1u));
  const auto normal = hn::And(hn::Add(a, hn::Add(hn::Set(du, kHalfUlp), lsb)), hn::Set(du, kKept));
  auto r = hn::IfThenElse(hn::RebindMask(du, subnormal), hn::BitCast(du, sub), normal);
  r = hn::IfThenElse(hn::Gt(a, hn::Set(du, 0x7F800000u)), hn::Set(du, kNaN), r);
  return hn::BitCast(df, hn::Or(r, sign));
}

template <bool kE4m3, bool kBf16>
HWY_INLINE VF FakeQuantizeFp8Vec(VF x, VF scale, VF qmax, VF minus_qmax) {
  const auto r = [](VF v) { return kBf16 ? RoundBf16KeepNaN(v) : v; };
  VF t = r(hn::Div(r(x), scale));
  // std::max then std::min as the scalar code: compares that let NaN through (x86's max/min would not).
  t = hn::IfThenElse(hn::Lt(t, minus_qmax), minus_qmax, t);
  t = hn::IfThenElse(hn::Lt(qmax, t), qmax, t);
  return r(hn::Mul(Fp8Value<kE4m3>(t), scale));
}

template <bool kE4m3, bool kBf16>
void FakeQuantizeFp8Typed(const float* x, size_t n, float scale, float qmax, float* out) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const VF s = hn::Set(df, scale), hi = hn::Set(df, qmax), lo = hn::Set(df, -qmax);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(FakeQuantizeFp8Vec<kE4m3, kBf16>(hn::LoadU(df, x + i), s, hi, lo), df, out + i);
  if (i < n) {  // the tail through a padded vector: the same arithmetic as the body
    HWY_ALIGN float tail[hn::MaxLanes(df)] = {};
    std::copy(x + i, x + n, tail);
    hn::Store(FakeQuantizeFp8Vec<kE4m3, kBf16>(hn::Load(df, tail), s, hi, lo), df, tail);
    std::copy(tail, tail + (n - i), out + i);
  }
}

void FakeQuantizeFp8(const float* x, size_t n, float scale, float qmax, bool e4m3, bool bf16, float* out) {
  if (e4m3 && bf16) return FakeQuantizeFp8Typed<true, true>(x, n, scale, qmax, out);
  if (e4m3) return FakeQuantizeFp8Typed<true, false>(x, n, scale, qmax, out);
  if (bf16) return FakeQuantizeFp8Typed<false, true>(x, n, scale, qmax, out);
  FakeQuantizeFp8Typed<false, false>(x, n, scale, qmax, out);
}

void ExpF64(double* x, size_t n) {
  const hn::ScalableTag<double> dd;
  const size_t lanes = hn::Lanes(dd);
  const auto minus_infinity = hn::Set(dd, -HUGE_VAL);
  // Highway's Exp is defined on [-DBL_MAX, 706]: -inf (a masked logit) gets exp's limit, 0, and NaN stays NaN
  // (Exp alone returned a number for it).
  const auto exp = [&](hn::Vec<decltype(dd)> v) {
    return hn::IfThenElse(hn::IsNaN(v), v, hn::IfThenZeroElse(hn::Eq(v, minus_infinity), hn::Exp(dd, v)));
  };
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(exp(hn::LoadU(dd, x + i)), dd, x + i);
  if (i < n) {  // the tail through a padded vector: the same arithmetic as the body
    HWY_ALIGN double tail[hn::MaxLanes(dd)] = {};
    std::copy(x + i, x + n, tail);
    hn::Store(exp(hn::Load(dd, tail)), dd, tail);
    std::copy(tail, tail + (n - i), x + i);
  }
}

bool AnyByteWithBits(const uint8_t* p, size_t n, uint8_t mask) {
  const hn::ScalableTag<uint8_t> d8;
  const size_t lanes = hn::Lanes(d8);
  const auto m = hn::Set(d8, mask);
  auto hit = hn::Zero(d8);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hit = hn::Or(hit, hn::VecFromMask(d8, hn::Eq(hn::And(hn::LoadU(d8, p + i), m), m)));
  bool any = !hn::AllFalse(d8, hn::MaskFromVec(hit));
  for (; i < n; ++i) any = any || (p[i] & mask) == mask;
  return any;
}

void ChunksWithMaskedZero(const uint8_t* p, size_t n, uint8_t mask, uint64_t* bits) {
  constexpr size_t kChunk = 32;
  const hn::ScalableTag<uint8_t> d8;
  const size_t lanes = hn::Lanes(d8);
  const auto m = hn::Set(d8, mask);
  const auto zero = hn::Zero(d8);
  size_t q = 0;
  if (lanes <= kChunk) {  // vectors tile a chunk (32 bytes): every target up to AVX2
    for (; (q + 1) * kChunk <= n; ++q) {
      auto hit = hn::Zero(d8);
      for (size_t i = q * kChunk; i < (q + 1) * kChunk; i += lanes)
        hit = hn::Or(hit, hn::VecFromMask(d8, hn::Eq(hn::And(hn::LoadU(d8, p + i), m), zero)));
      if (!hn::AllFalse(d8, hn::MaskFromVec(hit))) bits[q / 64] |= uint64_t{1} << (q % 64);
    }
  }
  for (; q * kChunk < n; ++q) {
    bool any = false;
    for (size_t i = q * kChunk; i < std::min(n, (q + 1) * kChunk); ++i) any = any || (p[i] & mask) == 0;
    if (any) bits[q / 64] |= uint64_t{1} << (q % 64);
  }
}

// Two passes: the largest value (with NaNs reported), then its first index. A single pass keeping each
// lane's first index of its maximum needs two blends per vector; the second pass here stops at the first
// match and reads from L1.
int64_t FirstMax(const float* x, size_t n) {
  float lo = 0.0f, top = 0.0f;
  if (MinMax(x, n, &lo, &top)) return -1;
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const VF target = hn::Set(df, top);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const intptr_t hit = hn::FindFirstTrue(df, hn::Eq(hn::LoadU(df, x + i), target));
    if (hit >= 0) return static_cast<int64_t>(i) + hit;
  }
  for (; i < n; ++i)
    if (x[i] == top) return static_cast<int64_t>(i);
  return -1;  // not reached: top is one of x's values
}

const char* TargetName() {
  return hwy::TargetName(HWY_TARGET);
}

}  // namespace lowbit::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lowbit::kernels {
HWY_EXPORT(GemvRows);
HWY_EXPORT(ConvertF32);
HWY_EXPORT(WeightedRowSum);
HWY_EXPORT(RowDots);
HWY_EXPORT(RmsNorm);
HWY_EXPORT(SiluMul);
HWY_EXPORT(Softmax);
HWY_EXPORT(Dot);
HWY_EXPORT(SumFourStreams);
HWY_EXPORT(FmaChains);
HWY_EXPORT(Axpy);
HWY_EXPORT(AddInplace);
HWY_EXPORT(RoundBf16);
HWY_EXPORT(ToBf16);
HWY_EXPORT(MinMax);
HWY_EXPORT(FirstMax);
HWY_EXPORT(FakeQuantizeFp8);
HWY_EXPORT(ExpF64);
HWY_EXPORT(AnyByteWithBits);
HWY_EXPORT(ChunksWithMaskedZero);
HWY_EXPORT(TargetName);

namespace simd {
void gemv_rows(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y, int64_t ldy,
               int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemvRows)(x, m, w, bias, y, ldy, n_begin, n_end);
}
void convert_f32(DType dtype, const void* src, float* out, size_t count) {
  HWY_DYNAMIC_DISPATCH(ConvertF32)(dtype, src, out, count);
}
void weighted_row_sum(const float* p, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d,
                      float* out, const void* next_rows) {
  HWY_DYNAMIC_DISPATCH(WeightedRowSum)(p, m, rows, dtype, n, d, out, next_rows);
}
void row_dots(const float* q, int64_t m, const void* rows, DType dtype, int64_t n, int64_t d, float scale,
              float* scores, const void* next_rows) {
  HWY_DYNAMIC_DISPATCH(RowDots)(q, m, rows, dtype, n, d, scale, scores, next_rows);
}
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* out) {
  HWY_DYNAMIC_DISPATCH(RmsNorm)(x, weight, rows, dim, eps, out);
}
void silu_mul(const float* gate, const float* up, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, out, n);
}
void softmax(float* x, size_t n) {
  HWY_DYNAMIC_DISPATCH(Softmax)(x, n);
}
float dot(const float* a, const float* b, size_t n) {
  return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n);
}
float sum_four_streams(const float* a, size_t n, bool non_temporal) {
  return HWY_DYNAMIC_DISPATCH(SumFourStreams)(a, n, non_temporal);
}
double fma_chain_flops(int64_t trips) {
  return HWY_DYNAMIC_DISPATCH(FmaChains)(trips);
}
void axpy(float a, const float* x, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n);
}
void add_inplace(float* y, const float* x, size_t n) {
  HWY_DYNAMIC_DISPATCH(AddInplace)(y, x, n);
}
void round_bf16(const float* x, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(RoundBf16)(x, out, n);
}
void to_bf16(const float* x, uint16_t* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(ToBf16)(x, out, n);
}
bool min_max(const float* x, size_t n, float* lo, float* hi) {
  return HWY_DYNAMIC_DISPATCH(MinMax)(x, n, lo, hi);
}
int64_t first_max(const float* x, size_t n) {
  return HWY_DYNAMIC_DISPATCH(FirstMax)(x, n);
}
void fake_quantize_fp8(const float* x, size_t n, float scale, float qmax, bool e4m3, bool bf16, float* out) {
  HWY_DYNAMIC_DISPATCH(FakeQuantizeFp8)(x, n, scale, qmax, e4m3, bf16, out);
}
void exp_f64(double* x, size_t n) {
  HWY_DYNAMIC_DISPATCH(ExpF64)(x, n);
}
bool any_byte_with_bits(const uint8_t* p, size_t n, uint8_t mask) {
  return HWY_DYNAMIC_DISPATCH(AnyByteWithBits)(p, n, mask);
}
void chunks_with_masked_zero(const uint8_t* p, size_t n, uint8_t mask, uint64_t* bits) {
  HWY_DYNAMIC_DISPATCH(ChunksWithMaskedZero)(p, n, mask, bits);
}
const char* target_name() {
  return HWY_DYNAMIC_DISPATCH(TargetName)();
}
}  // namespace simd
}  // namespace lowbit::kernels
#endif  // HWY_ONCE

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

#include "io/dtype.h"
#include "runtime/kernels_hwy.h"
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
#else
constexpr int kMaxXRows = 2;
#endif
constexpr int kWeightRows = 4;

// out[i * R + r] = dot(x row i, W row r) over K for R weight rows starting at w and M x rows.
template <DType T, int R, int M>
HWY_INLINE void DotBlock(const float* HWY_RESTRICT x, int64_t K,
                         const typename Widen<T>::Elem* HWY_RESTRICT w, float* out) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  VF acc[R][M];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < M; ++i) acc[r][i] = hn::Zero(df);
  int64_t k = 0;
  for (; k + lanes <= K; k += lanes) {
    VF wv[R];
    // Hint the same columns of the next R rows: with short rows (K = 768 is 1.5 KiB of bf16) the hardware
    // prefetcher keeps restarting, and this lifted decode from ~65 % to ~95 % of measured DRAM bandwidth.
    // A prefetch never faults, so running past the last row is harmless.
    for (int r = 0; r < R; ++r) hwy::Prefetch(w + (R + r) * K + k);
    for (int r = 0; r < R; ++r) wv[r] = Widen<T>::Load(df, w + r * K + k);
    for (int i = 0; i < M; ++i) {
      const VF xv = hn::LoadU(df, x + i * K + k);
      for (int r = 0; r < R; ++r) acc[r][i] = hn::MulAdd(wv[r], xv, acc[r][i]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int i = 0; i < M; ++i) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[r][i]));
      for (int64_t t = k; t < K; ++t) s += Widen<T>::One(w + r * K + t) * x[i * K + t];
      out[i * R + r] = s;
    }
  }
}

// R weight rows against all m x rows, kMaxXRows at a time; the weight rows stay in L1 between passes.
template <DType T, int R>
HWY_INLINE void DotRows(const float* x, int64_t m, int64_t K, const typename Widen<T>::Elem* w, int64_t n,
                        const float* bias, float* y, int64_t ldy) {
  float out[kMaxXRows * R];
  for (int64_t i0 = 0; i0 < m; i0 += kMaxXRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kMaxXRows, m - i0));
    const float* xi = x + i0 * K;
    switch (rows) {
      case 1:
        DotBlock<T, R, 1>(xi, K, w, out);
        break;
      case 2:
        DotBlock<T, R, 2>(xi, K, w, out);
        break;
      case 3:
        if constexpr (kMaxXRows >= 3) DotBlock<T, R, 3>(xi, K, w, out);
        break;
      default:
        if constexpr (kMaxXRows >= 4) DotBlock<T, R, 4>(xi, K, w, out);
        break;
    }
    for (int i = 0; i < rows; ++i)
      for (int r = 0; r < R; ++r) y[(i0 + i) * ldy + n + r] = out[i * R + r] + (bias ? bias[n + r] : 0.0f);
  }
}

template <DType T>
void GemvTyped(const float* x, int64_t m, const void* data, int64_t K, const float* bias, float* y,
               int64_t ldy, int64_t n_begin, int64_t n_end) {
  using Elem = typename Widen<T>::Elem;
  const Elem* w = static_cast<const Elem*>(data);
  int64_t n = n_begin;
  for (; n + kWeightRows <= n_end; n += kWeightRows)
    DotRows<T, kWeightRows>(x, m, K, w + n * K, n, bias, y, ldy);
  for (; n < n_end; ++n) DotRows<T, 1>(x, m, K, w + n * K, n, bias, y, ldy);
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

// Columns in blocks of four vectors held in registers across all rows, so out is written once; each column's
// sum runs over the rows in order (the same fused multiply-adds as repeated axpy calls).
template <DType T>
void WeightedRowSumTyped(const float* p, const void* data, int64_t n, int64_t d, float* out) {
  using Elem = typename Widen<T>::Elem;
  const Elem* rows = static_cast<const Elem*>(data);
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t c = 0;
  for (; c + 4 * lanes <= d; c += 4 * lanes) {
    VF a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
    for (int64_t j = 0; j < n; ++j) {
      const VF pj = hn::Set(df, p[j]);
      const Elem* r = rows + j * d + c;
      a0 = hn::MulAdd(pj, Widen<T>::Load(df, r), a0);
      a1 = hn::MulAdd(pj, Widen<T>::Load(df, r + lanes), a1);
      a2 = hn::MulAdd(pj, Widen<T>::Load(df, r + 2 * lanes), a2);
      a3 = hn::MulAdd(pj, Widen<T>::Load(df, r + 3 * lanes), a3);
    }
    hn::StoreU(a0, df, out + c);
    hn::StoreU(a1, df, out + c + lanes);
    hn::StoreU(a2, df, out + c + 2 * lanes);
    hn::StoreU(a3, df, out + c + 3 * lanes);
  }
  for (; c + lanes <= d; c += lanes) {
    VF a = hn::Zero(df);
    for (int64_t j = 0; j < n; ++j)
      a = hn::MulAdd(hn::Set(df, p[j]), Widen<T>::Load(df, rows + j * d + c), a);
    hn::StoreU(a, df, out + c);
  }
  for (; c < d; ++c) {
    float a = 0.0f;
    for (int64_t j = 0; j < n; ++j) a += p[j] * Widen<T>::One(rows + j * d + c);
    out[c] = a;
  }
}

void WeightedRowSum(const float* p, const void* rows, DType dtype, int64_t n, int64_t d, float* out) {
  switch (dtype) {
    case DType::F32:
      return WeightedRowSumTyped<DType::F32>(p, rows, n, d, out);
    case DType::BF16:
      return WeightedRowSumTyped<DType::BF16>(p, rows, n, d, out);
    case DType::F16:
      return WeightedRowSumTyped<DType::F16>(p, rows, n, d, out);
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

// silu(g) = g * sigmoid(g). sigmoid uses e = exp(-|g|) in (0, 1], inside Exp's valid range for every
// input: sigmoid = 1 / (1 + e) for g >= 0 and e / (1 + e) for g < 0, so nothing overflows.
HWY_INLINE VF SiluVec(DF df, VF g) {
  const VF one = hn::Set(df, 1.0f);
  const VF e = hn::Exp(df, hn::Neg(hn::Abs(g)));
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
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmx));
    hn::StoreU(e, df, x + i);
    vsum = hn::Add(vsum, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
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
HWY_EXPORT(RmsNorm);
HWY_EXPORT(SiluMul);
HWY_EXPORT(Softmax);
HWY_EXPORT(Dot);
HWY_EXPORT(Axpy);
HWY_EXPORT(AddInplace);
HWY_EXPORT(TargetName);

namespace simd {
void gemv_rows(const float* x, int64_t m, const DenseWeight& w, const float* bias, float* y, int64_t ldy,
               int64_t n_begin, int64_t n_end) {
  HWY_DYNAMIC_DISPATCH(GemvRows)(x, m, w, bias, y, ldy, n_begin, n_end);
}
void convert_f32(DType dtype, const void* src, float* out, size_t count) {
  HWY_DYNAMIC_DISPATCH(ConvertF32)(dtype, src, out, count);
}
void weighted_row_sum(const float* p, const void* rows, DType dtype, int64_t n, int64_t d, float* out) {
  HWY_DYNAMIC_DISPATCH(WeightedRowSum)(p, rows, dtype, n, d, out);
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
void axpy(float a, const float* x, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n);
}
void add_inplace(float* y, const float* x, size_t n) {
  HWY_DYNAMIC_DISPATCH(AddInplace)(y, x, n);
}
const char* target_name() {
  return HWY_DYNAMIC_DISPATCH(TargetName)();
}
}  // namespace simd
}  // namespace lowbit::kernels
#endif  // HWY_ONCE

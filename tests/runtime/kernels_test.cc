// Fast kernels vs their scalar references (kernels_ref.cc) on random data with fresh seeds, odd shapes,
// all weight dtypes, with and without bias, and 1/2/3 pool threads. Outputs are poisoned with NaN before
// every call so an element the kernel forgot to write is caught.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "io/dtype.h"
#include "runtime/kernels.h"
#include "runtime/kernels_hwy.h"
#include "runtime/kernels_linear.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Runs body() once for every instruction set that was compiled and that this CPU runs, with the
// dispatcher held to it, and lets the dispatcher choose again afterwards (also after a fatal failure).
template <typename F>
void on_every_target(F&& body) {
  struct Restore {
    ~Restore() { hwy::SetSupportedTargetsForTest(0); }
  } restore;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    body();
    if (testing::Test::HasFatalFailure()) return;
  }
}

// A fresh seed per test, printed on failure so a failing case can be replayed.
uint32_t fresh_seed() {
  return std::random_device{}();
}

std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

// Small nonzero integers: products and sums up to K * 9 are exact in fp32, so every path must match
// exactly. (Zero is left out so the test does not depend on how a converter encodes it.)
std::vector<float> random_ints(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> dist(1, 3);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> v(n);
  for (auto& e : v) e = static_cast<float>(negative(rng) ? -dist(rng) : dist(rng));
  return v;
}

// A weight matrix stored in `dtype`; `values` is overwritten with the exactly representable values.
struct StoredWeight {
  std::vector<uint8_t> bytes;
  DenseWeight view;
};

StoredWeight store_weight(DType dtype, std::vector<float>& values, int64_t rows, int64_t cols) {
  StoredWeight s;
  s.bytes.resize(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::F32:
        std::memcpy(s.bytes.data() + 4 * i, &values[i], 4);
        break;
      case DType::BF16: {
        const uint16_t b = f32_to_bf16(values[i]);
        std::memcpy(s.bytes.data() + 2 * i, &b, 2);
        values[i] = bf16_to_f32(b);
        break;
      }
      case DType::F16: {
        const uint16_t h = f32_to_f16(values[i]);
        std::memcpy(s.bytes.data() + 2 * i, &h, 2);
        values[i] = f16_to_f32(h);
        break;
      }
      case DType::F8_E4M3: {
        s.bytes[i] = f32_to_e4m3(values[i]);
        values[i] = e4m3_to_f32(s.bytes[i]);
        break;
      }
      default:
        ADD_FAILURE() << "unsupported test dtype";
    }
  }
  s.view = DenseWeight{dtype, s.bytes.data(), rows, cols};
  return s;
}

double rel_error(const std::vector<float>& y, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double d = static_cast<double>(y[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

size_t count_nan(const std::vector<float>& v) {
  size_t n = 0;
  for (float e : v) n += std::isnan(e) ? 1 : 0;
  return n;
}

using LinearFn = void (*)(const float*, int64_t, const DenseWeight&, const float*, float*);
struct NamedPath {
  const char* name;
  LinearFn fn;
};
const NamedPath kPaths[] = {
    {"linear", &linear}, {"linear_gemv", &linear_gemv}, {"linear_tiled_sgemm", &linear_tiled_sgemm}};

class ThreadsTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { set_global_threads(GetParam()); }
  void TearDown() override { set_global_threads(0); }
};

// Error bound for fp32 accumulation: for random-sign data each rounding error is at most 2^-24 of a
// partial sum, and partial sums are about as large as the result, so the relative error of a K-term dot
// product grows like sqrt(K) * 2^-24 (about 2e-6 at K = 1000, 4e-6 at K = 4099, the largest K here); the
// fast kernels split the sum into lanes and tiles, which only shortens the chains. 1e-5 leaves a 2.5-5x
// margin, while a wrong row, a missed tail, a missing bias or a stale output gives errors of order 1.
constexpr double kLinearRelBound = 1e-5;

TEST_P(ThreadsTest, LinearMatchesReferenceAllPathsDtypesShapes) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed << " threads " << GetParam());
  std::mt19937 rng(seed);
  const int64_t ms[] = {1, 2, 3, 7, 8, 9, 33, 100};
  // (N, K): K below, at and not a multiple of every vector width (4/8/16 lanes), N odd and not a
  // multiple of the 4-row block or the 128-row sgemm tile.
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {5, 7}, {13, 37}, {67, 768}, {129, 100}, {300, 257}};
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (auto [N, K] : shapes) {
      std::vector<float> wv = random_floats(rng, static_cast<size_t>(N * K), -1, 1);
      const StoredWeight w = store_weight(dtype, wv, N, K);
      const std::vector<float> bias = random_floats(rng, static_cast<size_t>(N), -1, 1);
      for (int64_t m : ms) {
        const std::vector<float> x = random_floats(rng, static_cast<size_t>(m * K), -1, 1);
        for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
          std::vector<float> ref(static_cast<size_t>(m * N));
          linear_ref(x.data(), m, w.view, b, ref.data());
          for (const NamedPath& path : kPaths) {
            SCOPED_TRACE(testing::Message() << path.name << " " << dtype_name(dtype) << " m=" << m
                                            << " N=" << N << " K=" << K << (b ? " bias" : ""));
            std::vector<float> y(ref.size(), kNaN);
            path.fn(x.data(), m, w.view, b, y.data());
            ASSERT_EQ(count_nan(y), 0u);
            ASSERT_LT(rel_error(y, ref), kLinearRelBound);
          }
        }
      }
    }
  }
}

// K large enough that the sgemm path cuts N = 261 into a full 256-row tile and a 5-row remainder even
// with one thread; m on both sides of linear()'s crossover. sqrt(4099) * 2^-24 ~ 4e-6 < 1e-5.
TEST_P(ThreadsTest, LinearLongRowsPartialTiles) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed << " threads " << GetParam());
  std::mt19937 rng(seed);
  const int64_t N = 261, K = 4099;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    std::vector<float> wv = random_floats(rng, static_cast<size_t>(N * K), -1, 1);
    const StoredWeight w = store_weight(dtype, wv, N, K);
    const std::vector<float> bias = random_floats(rng, static_cast<size_t>(N), -1, 1);
    for (int64_t m : {int64_t{3}, linear_gemm_min_rows() - 1, linear_gemm_min_rows()}) {
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(m * K), -1, 1);
      std::vector<float> ref(static_cast<size_t>(m * N));
      linear_ref(x.data(), m, w.view, bias.data(), ref.data());
      for (const NamedPath& path : kPaths) {
        SCOPED_TRACE(testing::Message() << path.name << " " << dtype_name(dtype) << " m=" << m);
        std::vector<float> y(ref.size(), kNaN);
        path.fn(x.data(), m, w.view, bias.data(), y.data());
        ASSERT_EQ(count_nan(y), 0u);
        ASSERT_LT(rel_error(y, ref), kLinearRelBound);
      }
    }
  }
}

// Integer-valued data makes every summation order exact, so here all paths must equal the reference
// bit for bit: catches indexing slips that a tolerance could hide.
TEST_P(ThreadsTest, LinearExactOnIntegerData) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed << " threads " << GetParam());
  std::mt19937 rng(seed);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (int64_t m : {1, 3, 8, 9, 33}) {
      const int64_t N = 131, K = 999;
      std::vector<float> wv = random_ints(rng, static_cast<size_t>(N * K));
      const StoredWeight w = store_weight(dtype, wv, N, K);
      const std::vector<float> x = random_ints(rng, static_cast<size_t>(m * K));
      const std::vector<float> bias = random_ints(rng, static_cast<size_t>(N));
      std::vector<float> ref(static_cast<size_t>(m * N));
      linear_ref(x.data(), m, w.view, bias.data(), ref.data());
      for (const NamedPath& path : kPaths) {
        SCOPED_TRACE(testing::Message() << path.name << " " << dtype_name(dtype) << " m=" << m);
        std::vector<float> y(ref.size(), kNaN);
        path.fn(x.data(), m, w.view, bias.data(), y.data());
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], ref[i]) << "element " << i;
      }
    }
  }
}

// Stored dtypes without a dedicated kernel (fp8 here) are widened in small tiles; same bound.
TEST_P(ThreadsTest, LinearOtherDtypeFallsBackCorrectly) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const int64_t N = 37, K = 75;
  std::vector<float> wv = random_floats(rng, static_cast<size_t>(N * K), -2, 2);
  const StoredWeight w = store_weight(DType::F8_E4M3, wv, N, K);
  for (int64_t m : {1, 9, 33}) {
    const std::vector<float> x = random_floats(rng, static_cast<size_t>(m * K), -1, 1);
    std::vector<float> ref(static_cast<size_t>(m * N));
    linear_ref(x.data(), m, w.view, nullptr, ref.data());
    for (const NamedPath& path : kPaths) {
      SCOPED_TRACE(testing::Message() << path.name << " m=" << m);
      std::vector<float> y(ref.size(), kNaN);
      path.fn(x.data(), m, w.view, nullptr, y.data());
      ASSERT_EQ(count_nan(y), 0u);
      ASSERT_LT(rel_error(y, ref), kLinearRelBound);
    }
  }
}

// The element-wise kernels split large inputs over the pool in chunks of a multiple of the vector width, so
// every element gets the arithmetic of the single-threaded kernel: equal bit for bit at any thread count.
TEST_P(ThreadsTest, ElementwiseKernelsOnThePoolEqualOneThreadBitForBit) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const size_t n = 3 * (size_t{1} << 16) + 77;  // several chunks and a tail
  const std::vector<float> g = random_floats(rng, n, -8, 8), u = random_floats(rng, n, -2, 2);
  std::vector<float> want(n), got(n, kNaN);
  simd::silu_mul(g.data(), u.data(), want.data(), n);
  silu_mul(g.data(), u.data(), got.data(), n);
  EXPECT_EQ(std::memcmp(want.data(), got.data(), n * sizeof(float)), 0) << "silu_mul";
  want = g, got = g;
  simd::add_inplace(want.data(), u.data(), n);
  add_inplace(got.data(), u.data(), n);
  EXPECT_EQ(std::memcmp(want.data(), got.data(), n * sizeof(float)), 0) << "add_inplace";
  simd::round_bf16(g.data(), want.data(), n);
  round_bf16(g.data(), got.data(), n);
  EXPECT_EQ(std::memcmp(want.data(), got.data(), n * sizeof(float)), 0) << "round_bf16";
  const int64_t dim = 768, rows = static_cast<int64_t>(n) / dim;
  simd::rmsnorm(g.data(), u.data(), rows, dim, 1e-5f, want.data());
  rmsnorm(g.data(), u.data(), rows, dim, 1e-5f, got.data());
  EXPECT_EQ(std::memcmp(want.data(), got.data(), static_cast<size_t>(rows * dim) * sizeof(float)), 0)
      << "rmsnorm";
}

INSTANTIATE_TEST_SUITE_P(Threads, ThreadsTest, ::testing::Values(1, 2, 3));

// simd::min_max equals a scalar scan on every target: sizes around the vector widths, the extremes at
// either end, in the vector part or in the tail, infinities, signed zeros, and a NaN anywhere reported.
TEST(MinMax, EqualsScalarScanAndReportsNaN) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const float inf = std::numeric_limits<float>::infinity();
  on_every_target([&] {
    for (size_t n = 0; n <= 67; ++n) {
      for (int variant = 0; variant < 5; ++variant) {
        std::vector<float> x(n);
        for (float& v : x) v = normal(rng);
        if (n > 0 && variant == 1) x[0] = inf, x[n - 1] = -inf;
        if (n > 0 && variant == 2) x[n - 1] = 1e30f, x[n / 2] = -0.0f;
        float want_lo = inf, want_hi = -inf;
        for (float v : x) want_lo = std::min(want_lo, v), want_hi = std::max(want_hi, v);
        float lo = 0.0f, hi = 0.0f;
        // Variants 3 and 4: a NaN in the vector part, or last (often in the scalar tail).
        if (variant >= 3 && n > 0) {
          x[variant == 3 ? n / 3 : n - 1] = kNaN;
          EXPECT_TRUE(simd::min_max(x.data(), n, &lo, &hi)) << "n=" << n << " variant " << variant;
          continue;
        }
        EXPECT_FALSE(simd::min_max(x.data(), n, &lo, &hi)) << "n=" << n;
        EXPECT_EQ(lo, want_lo) << "n=" << n << " variant " << variant;
        EXPECT_EQ(hi, want_hi) << "n=" << n << " variant " << variant;
      }
    }
  });
}

// simd::fake_quantize_fp8 against its definition in scalar code (quant/quantizer.cc's FP8_DYNAMIC rounding,
// with io/dtype.h's converters as the fp8 rounding), on every compiled target: every bf16 bit pattern
// (zeros, subnormals, infinities, NaNs), values half-way between bf16 and between fp8 neighbours, at several
// scales including 0, both formats and both compute dtypes, in place, with vector tails. Bits must be equal;
// NaN outputs must be NaN where the definition gives NaN.
TEST(FakeQuantizeFp8, EqualsScalarDefinitionBitForBit) {
  const auto round_bf16 = [](float v) {  // to nearest even, NaN unchanged
    if (std::isnan(v)) return v;
    const uint32_t u = std::bit_cast<uint32_t>(v);
    return std::bit_cast<float>((u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u);
  };
  std::vector<float> x;
  for (uint32_t b = 0; b < 0x10000; ++b) x.push_back(std::bit_cast<float>(b << 16));
  for (int code = 0; code < 255; ++code) {  // midpoints of e4m3 and e5m2 neighbours, and next to them
    for (bool e4m3 : {true, false}) {
      const auto c = static_cast<uint8_t>(code);
      const float v = e4m3 ? e4m3_to_f32(c) : e5m2_to_f32(c);
      const float next =
          e4m3 ? e4m3_to_f32(static_cast<uint8_t>(c + 1)) : e5m2_to_f32(static_cast<uint8_t>(c + 1));
      if (!std::isfinite(v) || !std::isfinite(next)) continue;
      const float mid = (v + next) / 2;
      for (float m : {mid, std::nextafter(mid, -INFINITY), std::nextafter(mid, INFINITY)}) x.push_back(m);
    }
  }
  // Half-way between bf16 neighbours (ties to even) and next to them.
  for (uint32_t b = 0; b < 0x10000; b += 7)
    for (uint32_t low : {0x7FFFu, 0x8000u, 0x8001u}) x.push_back(std::bit_cast<float>((b << 16) | low));
  x.push_back(1.0f);  // an odd count: every target's vectors leave a tail
  on_every_target([&] {
    for (bool e4m3 : {true, false}) {
      const float qmax = e4m3 ? 448.0f : 57344.0f;
      for (bool bf16 : {false, true}) {
        for (float scale : {1.0f, 0.0123f, 3.5e-3f, 1e-30f, 1e30f, 0.0f}) {
          std::vector<float> got = x;
          simd::fake_quantize_fp8(got.data(), got.size(), scale, qmax, e4m3, bf16, got.data());  // in place
          for (size_t i = 0; i < x.size(); ++i) {
            const auto r = [&](float v) { return bf16 ? round_bf16(v) : v; };
            float t = r(r(x[i]) / scale);
            t = std::min(std::max(t, -qmax), qmax);
            const float fp8 = e4m3 ? e4m3_to_f32(f32_to_e4m3(t)) : e5m2_to_f32(f32_to_e5m2(t));
            const float want = r(fp8 * scale);
            if (std::isnan(want)) {
              ASSERT_TRUE(std::isnan(got[i])) << "x " << x[i] << " scale " << scale;
            } else {
              ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want))
                  << "x " << x[i] << " bits " << std::hex << std::bit_cast<uint32_t>(x[i]) << std::dec
                  << " scale " << scale << (e4m3 ? " e4m3" : " e5m2") << (bf16 ? " bf16" : " f32");
            }
          }
        }
      }
    }
  });
}

// simd::exp_f64 (the sampler's weights) within 1 ulp of std::exp on every target: zero, the sampler's range
// (logit differences over a temperature, <= 0), results down into the subnormals and to 0, -inf (0) and NaN,
// with vector tails.
TEST(ExpF64, WithinOneUlpOfStdExp) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> spread(-60.0, 0.0);
  std::vector<double> x = {0.0,    -0.0, -1e-300, -1.0,      -700.0,       -708.5, -720.0, -745.0,
                           -746.0, -1e6, -1e300,  -HUGE_VAL, std::nan(""), 1.0,    10.0,   700.0};
  for (int i = 0; i < 997; ++i) x.push_back(spread(rng));
  on_every_target([&] {
    std::vector<double> got = x;
    simd::exp_f64(got.data(), got.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = std::exp(x[i]);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got[i])) << "x " << x[i];
        continue;
      }
      const bool near =
          got[i] == want || got[i] == std::nextafter(want, 0.0) || got[i] == std::nextafter(want, HUGE_VAL);
      EXPECT_TRUE(near) << "x " << x[i] << " got " << got[i] << " want " << want;
    }
  });
}

// The fp8 code scans of load time against byte loops, on every target: sizes around the vector and chunk
// widths, the one matching byte first, last, in a vector or in the tail, and none.
TEST(Fp8CodeScans, EqualByteLoops) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  on_every_target([&] {
    for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{31}, size_t{32}, size_t{33}, size_t{64},
                     size_t{100}, size_t{2048}, size_t{4103}}) {
      for (uint8_t mask : {uint8_t{0x7F}, uint8_t{0x7C}, uint8_t{0x78}}) {
        for (int variant = 0; variant < 5; ++variant) {
          // Bytes that never match: (b & mask) is neither mask nor 0 (one mask bit set, one clear).
          const uint8_t low = static_cast<uint8_t>(mask & (0u - mask)),
                        high = static_cast<uint8_t>(mask & 0x40);
          std::vector<uint8_t> p(n);
          for (uint8_t& b : p) b = static_cast<uint8_t>((rng() & ~mask & 0xFFu) | (rng() % 2 ? low : high));
          std::vector<size_t> at;  // where one byte matches: none, first, last, middle, several
          if (n > 0 && variant == 1) at = {0};
          if (n > 0 && variant == 2) at = {n - 1};
          if (n > 0 && variant == 3) at = {n / 2};
          if (n > 0 && variant == 4) at = {n / 3, n - 1 - n / 5};
          std::vector<uint8_t> all = p, none = p;
          for (size_t i : at)
            all[i] = static_cast<uint8_t>(all[i] | mask), none[i] = static_cast<uint8_t>(none[i] & ~mask);
          bool want_all = false;
          for (uint8_t b : all) want_all = want_all || (b & mask) == mask;
          EXPECT_EQ(simd::any_byte_with_bits(all.data(), n, mask), want_all)
              << "n=" << n << " variant " << variant;
          std::vector<uint64_t> want((n / 32 + 64) / 64, 0), got(want.size(), 0);
          for (size_t i = 0; i < n; ++i)
            if ((none[i] & mask) == 0) want[i / 32 / 64] |= uint64_t{1} << (i / 32 % 64);
          simd::chunks_with_masked_zero(none.data(), n, mask, got.data());
          EXPECT_EQ(got, want) << "n=" << n << " variant " << variant;
        }
      }
    }
  });
}

// simd::first_max is the index a scalar "first strictly larger" scan gives, on every target: sizes around the
// vector widths, ties (the first wins, +0 and -0 tie), the maximum first, last or in the tail, infinities;
// any NaN makes it return -1.
TEST(FirstMax, EqualsScalarScanAndReportsNaN) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-4, 4);  // many ties
  const float inf = std::numeric_limits<float>::infinity();
  on_every_target([&] {
    for (size_t n = 1; n <= 67; ++n) {
      for (int variant = 0; variant < 7; ++variant) {
        std::vector<float> x;
        while (x.size() < n) x.push_back(static_cast<float>(small(rng)));
        if (variant == 1) x[n - 1] = 100.0f;
        if (variant == 2) x[0] = inf, x[n - 1] = inf;
        if (variant == 3) std::fill(x.begin(), x.end(), -inf);
        if (variant == 4) {  // all zeros of either sign: the first one wins
          for (size_t i = 0; i < n; ++i) x[i] = i % 3 == 1 ? 0.0f : -0.0f;
        }
        if (variant >= 5) {
          x[variant == 5 ? n / 2 : n - 1] = kNaN;
          EXPECT_EQ(simd::first_max(x.data(), n), -1) << "n=" << n << " variant " << variant;
          continue;
        }
        size_t want = 0;
        for (size_t i = 1; i < n; ++i)
          if (x[i] > x[want]) want = i;
        EXPECT_EQ(simd::first_max(x.data(), n), static_cast<int64_t>(want))
            << "n=" << n << " variant " << variant;
      }
    }
  });
}

// bf16 rounding must be io/dtype.h's f32_to_bf16 exactly, on every compiled target: ties to even, values
// that round up to infinity, signed zeros, subnormals, infinities and NaNs (made quiet, sign kept), at sizes
// with and without vector tails and large enough for the pool.
TEST(RoundBf16, EqualsScalarConversionBitForBit) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const std::vector<uint32_t> special = {0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x3F808000u,
                                         0x3F818000u, 0x3F808001u, 0xBF80FFFFu, 0x7F7FFFFFu, 0xFF7F8000u,
                                         0x7F7F7FFFu, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00001u,
                                         0x7F800001u, 0xFF812345u, 0x7FFFFFFFu};
  on_every_target([&] {
    for (size_t n : {size_t{1}, size_t{7}, size_t{8}, size_t{18}, size_t{1000}, size_t{200003}}) {
      std::vector<uint32_t> bits(n);
      for (auto& b : bits) b = static_cast<uint32_t>(rng());
      for (size_t i = 0; i < std::min(n, special.size()); ++i) bits[i] = special[i];
      std::vector<float> x(n), want(n), got(n, kNaN), back(n, kNaN);
      std::memcpy(x.data(), bits.data(), n * sizeof(float));
      round_bf16_ref(x.data(), want.data(), n);
      round_bf16(x.data(), got.data(), n);
      ASSERT_EQ(std::memcmp(want.data(), got.data(), n * sizeof(float)), 0) << "n=" << n;
      std::vector<uint16_t> codes(n, 0xFFFF);
      to_bf16(x.data(), codes.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(codes[i], f32_to_bf16(x[i])) << "n=" << n << " i=" << i;
      from_bf16(codes.data(), back.data(), n);
      ASSERT_EQ(std::memcmp(want.data(), back.data(), n * sizeof(float)), 0) << "n=" << n;
      round_bf16(x.data(), x.data(), n);  // in place
      ASSERT_EQ(std::memcmp(want.data(), x.data(), n * sizeof(float)), 0) << "n=" << n;
    }
  });
}

// The dispatcher picks one instruction set on this CPU; run the key checks on every other compiled one it
// supports too (AVX2 / SSE4 / scalar have a different register budget and tail handling).
TEST(AllSimdTargets, LinearAndElementwiseMatchReference) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const int64_t N = 37, K = 131;
  on_every_target([&] {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      std::vector<float> wv = random_floats(rng, static_cast<size_t>(N * K), -1, 1);
      const StoredWeight w = store_weight(dtype, wv, N, K);
      const std::vector<float> bias = random_floats(rng, static_cast<size_t>(N), -1, 1);
      for (int64_t m : {1, 3, 5}) {
        const std::vector<float> x = random_floats(rng, static_cast<size_t>(m * K), -1, 1);
        std::vector<float> ref(static_cast<size_t>(m * N)), y(ref.size(), kNaN);
        linear_ref(x.data(), m, w.view, bias.data(), ref.data());
        linear_gemv(x.data(), m, w.view, bias.data(), y.data());
        ASSERT_EQ(count_nan(y), 0u) << dtype_name(dtype) << " m=" << m;
        EXPECT_LT(rel_error(y, ref), kLinearRelBound) << dtype_name(dtype) << " m=" << m;
      }
      std::vector<float> row(static_cast<size_t>(K), kNaN);
      convert_rows_to_f32(w.view, 5, 1, row.data());
      EXPECT_EQ(row, std::vector<float>(wv.begin() + 5 * K, wv.begin() + 6 * K)) << dtype_name(dtype);
    }
    const size_t n = 77;
    const std::vector<float> g = random_floats(rng, n, -30, 30), u = random_floats(rng, n, -2, 2);
    std::vector<float> ref(n), y(n, kNaN);
    silu_mul_ref(g.data(), u.data(), ref.data(), n);
    silu_mul(g.data(), u.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], ref[i], 2e-6 * std::fabs(ref[i]) + 1e-30) << i;
    std::vector<float> sx = g, sref = g;
    softmax_ref(sref.data(), n);
    softmax(sx.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(sx[i], sref[i], 1e-6) << i;
    std::vector<float> nref(n), nout(n, kNaN);
    rmsnorm_ref(g.data(), u.data(), 1, static_cast<int64_t>(n), 1e-5f, nref.data());
    rmsnorm(g.data(), u.data(), 1, static_cast<int64_t>(n), 1e-5f, nout.data());
    EXPECT_LT(rel_error(nout, nref), 1e-5);
  });
}

TEST(Linear, EmptyShapesAndKZero) {
  std::vector<float> y(6, kNaN);
  const float bias[3] = {1, 2, 3};
  const DenseWeight w{DType::BF16, nullptr, 3, 0};
  for (const NamedPath& path : kPaths) {
    std::fill(y.begin(), y.end(), kNaN);
    path.fn(nullptr, 2, w, bias, y.data());  // K = 0: y = bias
    EXPECT_EQ(y, (std::vector<float>{1, 2, 3, 1, 2, 3})) << path.name;
    path.fn(nullptr, 0, w, bias, nullptr);  // m = 0: nothing to do
  }
}

TEST(Linear, RejectsNegativeShapes) {
  const DenseWeight w{DType::F32, nullptr, -1, 4};
  float y = 0;
  EXPECT_THROW(linear(nullptr, 1, w, nullptr, &y), Error);
  EXPECT_THROW(linear(nullptr, -1, DenseWeight{}, nullptr, &y), Error);
}

TEST(ConvertRows, MatchesScalarConversionExactly) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3}) {
    for (int64_t cols : {1, 7, 16, 33, 129}) {
      const int64_t rows = 5;
      std::vector<float> v = random_floats(rng, static_cast<size_t>(rows * cols), -100, 100);
      const StoredWeight w = store_weight(dtype, v, rows, cols);
      std::vector<float> out(static_cast<size_t>(3 * cols), kNaN);
      convert_rows_to_f32(w.view, 1, 3, out.data());
      const std::vector<float> expect(v.begin() + cols, v.begin() + 4 * cols);
      EXPECT_EQ(out, expect) << dtype_name(dtype) << " cols=" << cols;
    }
  }
}

// rmsnorm: sum of squares has only positive terms, so fp32 accumulation errs by at most dim * 2^-24
// relative (about 6e-5 at dim 1001, far less in practice); each output is then a couple of roundings
// from the reference. Bound 1e-5 relative in norm per call.
TEST(RmsNorm, MatchesReference) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (int64_t dim : {1, 7, 16, 17, 64, 768, 1001}) {
    for (int64_t rows : {1, 3}) {
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(rows * dim), -3, 3);
      const std::vector<float> wt = random_floats(rng, static_cast<size_t>(dim), 0.5f, 1.5f);
      std::vector<float> ref(x.size()), y(x.size(), kNaN);
      rmsnorm_ref(x.data(), wt.data(), rows, dim, 1e-5f, ref.data());
      rmsnorm(x.data(), wt.data(), rows, dim, 1e-5f, y.data());
      ASSERT_EQ(count_nan(y), 0u) << "dim=" << dim;
      EXPECT_LT(rel_error(y, ref), 1e-5) << "dim=" << dim << " rows=" << rows;
    }
  }
}

// silu_mul: Highway's Exp is within 1 ulp, plus one division and two multiplications: each element is
// within a few ulp of the reference (bound 2e-6 relative). Inputs span [-120, 120], beyond where exp
// overflows, to check the overflow-free formulation; there both sides are below 1e-30 in magnitude.
TEST(SiluMul, MatchesReferenceElementwise) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (size_t n : {1u, 3u, 8u, 15u, 16u, 17u, 100u, 4099u}) {
    std::vector<float> g = random_floats(rng, n, -120, 120);
    const std::vector<float> g_small = random_floats(rng, n, -6, 6);
    for (size_t i = 0; i < n; i += 2) g[i] = g_small[i];  // half the values where silu is curved
    const std::vector<float> u = random_floats(rng, n, -2, 2);
    std::vector<float> ref(n), y(n, kNaN);
    silu_mul_ref(g.data(), u.data(), ref.data(), n);
    silu_mul(g.data(), u.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i)
      ASSERT_NEAR(y[i], ref[i], 2e-6 * std::fabs(ref[i]) + 1e-30) << "n=" << n << " i=" << i << " g=" << g[i];
  }
}

// softmax: each output is exp (1 ulp) times 1/sum (sum of positive terms, relative error <= n * 2^-24),
// so elements agree to 1e-6 relative to the largest probability for n <= 1000, plus masked (-inf)
// entries must become exactly 0.
TEST(Softmax, MatchesReferenceWithMaskedEntries) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (size_t n : {1u, 2u, 15u, 16u, 17u, 100u, 1000u}) {
    std::vector<float> x = random_floats(rng, n, -20, 20);
    for (size_t i = 1; i < n; i += 3) x[i] = -std::numeric_limits<float>::infinity();
    std::vector<float> ref = x, y = x;
    softmax_ref(ref.data(), n);
    softmax(y.data(), n);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(y[i], ref[i], 1e-6) << "n=" << n << " i=" << i;
      if (std::isinf(x[i])) {
        ASSERT_EQ(y[i], 0.0f);
      }
    }
  }
}

// Softmax's exponential over the whole range it sees (x - max in [-87, 0]; silu uses the same one): rows of
// 16 entries, a 0 and 15 values spread over the range, so that every entry goes through the vector loop on
// every target (at most 16 lanes). Each output e^x / sum against double arithmetic: the exponential's
// 2 ulp plus the roundings of the sum, the reciprocal and the product, within 8 * 2^-24 relative (and
// 2^-149 absolute where the output is subnormal). Below x = -87 an output is 0 or within e^-87 of the
// double one (the row's sum is at least 1); -inf gives exactly 0. Shorter rows check the loop's tail.
TEST(Softmax, ExponentialAccurateOverItsDomain) {
  on_every_target([] {
    constexpr int kRow = 16;
    constexpr int kValues = 150000;
    std::vector<float> row;
    auto check_row = [&](const std::vector<float>& x) {
      double sum = 0;
      for (float v : x) sum += std::exp(static_cast<double>(v));
      row = x;
      softmax(row.data(), row.size());
      for (size_t k = 0; k < x.size(); ++k) {
        const double want = std::exp(static_cast<double>(x[k])) / sum;
        if (x[k] < -87.0f) {
          ASSERT_LE(std::fabs(row[k] - want), 1.65e-38) << "x=" << x[k];  // e^-87 / sum, sum >= 1
          if (std::isinf(x[k])) {
            ASSERT_EQ(row[k], 0.0f);
          }
        } else {
          ASSERT_NEAR(row[k], want, 8 * 0x1p-24 * want + 0x1p-149) << "x=" << x[k];
        }
      }
    };
    std::vector<float> x(kRow, 0.0f);
    for (int t = 0; t < kValues; t += kRow - 1) {
      for (int k = 1; k < kRow; ++k) x[k] = -87.0f * static_cast<float>((t + k * 9973) % kValues) / kValues;
      check_row(x);
    }
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> edges = {0.0f,        -86.99f,     -87.01f, -88.0f, -90.0f, -100.0f,
                                      -103.9f,     -104.0f,     -1e30f,  -inf,   -0.0f,  -1e-30f,
                                      -0.3465736f, -0.3465737f, -43.5f,  -1.0f};
    check_row(edges);
    // Rows whose last entries take the vector loop's padded tail (any length up to 16 lanes).
    for (size_t len : {1u, 2u, 5u, 11u, 13u})
      check_row(std::vector<float>(edges.begin(), edges.begin() + len));
  });
}

// dot: any summation order errs by at most n * 2^-24 * sum|a_i b_i| (the classic gamma_n bound), so
// that is the tolerance; integer data additionally must be exact.
TEST(VectorHelpers, DotAxpyAddMatchDoubleReference) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (size_t n : {0u, 1u, 5u, 16u, 31u, 32u, 33u, 64u, 131u, 1000u}) {
    const std::vector<float> a = random_floats(rng, n, -1, 1), b = random_floats(rng, n, -1, 1);
    double exact = 0, abs_sum = 0;
    for (size_t i = 0; i < n; ++i) {
      exact += static_cast<double>(a[i]) * b[i];
      abs_sum += std::fabs(static_cast<double>(a[i]) * b[i]);
    }
    EXPECT_NEAR(dot(a.data(), b.data(), n), exact, static_cast<double>(n) * 0x1p-24 * abs_sum + 1e-30) << n;
    double sum = 0, sum_abs = 0;
    for (size_t i = 0; i < n; ++i) sum += a[i], sum_abs += std::fabs(a[i]);
    for (bool non_temporal : {false, true}) {  // the prefetch hint changes no value
      EXPECT_NEAR(sum_four_streams(a.data(), n, non_temporal), sum,
                  static_cast<double>(n) * 0x1p-24 * sum_abs + 1e-30)
          << n;
    }
    const std::vector<float> ia = random_ints(rng, n), ib = random_ints(rng, n);
    double iexact = 0;
    for (size_t i = 0; i < n; ++i) iexact += static_cast<double>(ia[i]) * ib[i];
    EXPECT_EQ(dot(ia.data(), ib.data(), n), static_cast<float>(iexact)) << n;

    // axpy and add_inplace are one (possibly fused) operation per element: within 1 ulp of the result.
    std::vector<float> y = b;
    axpy(0.37f, a.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const double e = b[i] + 0.37 * a[i];
      ASSERT_NEAR(y[i], e, 0x1p-23 * (std::fabs(b[i]) + std::fabs(0.37 * a[i])) + 1e-30) << n << " " << i;
    }
    y = b;
    add_inplace(y.data(), a.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], b[i] + a[i]) << n << " " << i;
  }
}

// Values stored as `dtype` (F32, BF16 or F16), round to nearest even.
std::vector<uint8_t> store_as(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

// Decode attention's row products over F32 / BF16 / F16 rows (a KV cache head) for m query heads against
// the double reference: each output is an n- or d-term fp32 sum of exact products of the same widened
// values, so the gamma bound of the dot test applies (terms * 2^-24 * sum |terms|), plus one rounding of
// the scale. Head i's results must not depend on m (the decode path groups heads by KV head only when the
// thread count allows): they equal the m = 1 call bit for bit, and the call with next_rows (a prefetch).
// On every compiled target (the vector width decides which bf16 paths run).
TEST(AttentionRows, ScaledDotsAndWeightedSumMatchReference) {
  const uint32_t seed = fresh_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  on_every_target([&] {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      for (int64_t d : {1, 7, 32, 64, 100, 128}) {
        for (int64_t n : {1, 3, 17, 300}) {
          for (int64_t m : {1, 2, 3, 4, 7}) {
            SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " d=" << d << " n=" << n << " m=" << m);
            const std::vector<float> values = random_floats(rng, static_cast<size_t>(n * d), -2, 2);
            const std::vector<uint8_t> stored = store_as(dtype, values);
            const std::vector<uint8_t> next = store_as(dtype, std::vector<float>(values.size(), 1.0f));
            std::vector<float> widened(values.size());
            convert_to_f32(dtype, stored.data(), widened.data(), widened.size());
            const std::vector<float> q = random_floats(rng, static_cast<size_t>(m * d), -1, 1);
            std::vector<float> p = random_floats(rng, static_cast<size_t>(m * n), 0, 1);
            const float scale = 0.125f;

            std::vector<float> got(static_cast<size_t>(m * n)), want(got.size()),
                alone(static_cast<size_t>(n));
            scaled_row_dots(q.data(), m, stored.data(), dtype, n, d, scale, got.data());
            scaled_row_dots_ref(q.data(), m, stored.data(), dtype, n, d, scale, want.data());
            // next_rows is only prefetched: the same scores with it
            std::vector<float> with_next(got.size());
            scaled_row_dots(q.data(), m, stored.data(), dtype, n, d, scale, with_next.data(), next.data());
            ASSERT_EQ(with_next, got);
            for (int64_t i = 0; i < m; ++i) {
              scaled_row_dots(q.data() + i * d, 1, stored.data(), dtype, n, d, scale, alone.data());
              for (int64_t j = 0; j < n; ++j) {
                double abs_sum = 0;
                for (int64_t k = 0; k < d; ++k) abs_sum += std::fabs(q[i * d + k] * widened[j * d + k]);
                const double bound = scale * (static_cast<double>(d) * 0x1p-24 * abs_sum) +
                                     0x1p-24 * std::fabs(want[i * n + j]);
                ASSERT_NEAR(got[i * n + j], want[i * n + j], bound + 1e-30) << "head " << i << " row " << j;
                ASSERT_EQ(got[i * n + j], alone[j]) << "head " << i << " row " << j;
              }
            }

            // poisoned: every element must be overwritten
            std::vector<float> out(static_cast<size_t>(m * d), -7.0f), out_ref(out.size()),
                out_alone(static_cast<size_t>(d), -7.0f);
            weighted_row_sum(p.data(), m, stored.data(), dtype, n, d, out.data());
            weighted_row_sum_ref(p.data(), m, stored.data(), dtype, n, d, out_ref.data());
            std::vector<float> out_with_next(out.size());
            weighted_row_sum(p.data(), m, stored.data(), dtype, n, d, out_with_next.data(), next.data());
            ASSERT_EQ(out_with_next, out);
            for (int64_t i = 0; i < m; ++i) {
              weighted_row_sum(p.data() + i * n, 1, stored.data(), dtype, n, d, out_alone.data());
              for (int64_t k = 0; k < d; ++k) {
                double abs_sum = 0;
                for (int64_t j = 0; j < n; ++j) abs_sum += std::fabs(p[i * n + j] * widened[j * d + k]);
                ASSERT_NEAR(out[i * d + k], out_ref[i * d + k],
                            static_cast<double>(n) * 0x1p-24 * abs_sum + 1e-30)
                    << "head " << i << " column " << k;
                ASSERT_EQ(out[i * d + k], out_alone[k]) << "head " << i << " column " << k;
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace lowbit::kernels

// The AMX-INT8 W8A8 kernel (runtime/kernels_packed_amx.h) against the scalar integer reference, bit for bit:
// its sums are exact and its rescale is the reference's arithmetic. Skips on CPUs without AMX-INT8.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "runtime/gemm_bf16_amx.h"
#include "runtime/kernels_packed.h"
#include "runtime/kernels_packed_amx.h"
#include "util/thread_pool.h"

namespace lowbit {
namespace {

// Weight codes as int-quantized (Int8: q) or pack-quantized (UInt8: q + 128) storage, one scale per row.
struct Weights {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> code_sums;
  kernels::PackedMatrix matrix;
};

Weights make_weights(int64_t N, int64_t K, bool unsigned_codes, const std::vector<int8_t>& q) {
  Weights w;
  w.codes.resize(static_cast<size_t>(N * K));
  w.code_sums.assign(static_cast<size_t>(N), 0);
  for (int64_t i = 0; i < N * K; ++i) {
    const int8_t v = q[static_cast<size_t>(i)];
    w.codes[static_cast<size_t>(i)] = static_cast<uint8_t>(unsigned_codes ? v + 128 : v);
    w.code_sums[static_cast<size_t>(i / K)] += v;
  }
  for (int64_t n = 0; n < N; ++n) w.scales.push_back(0.001f * static_cast<float>(n % 13 + 1));
  w.scales.resize(w.scales.size() + 16, 0.0f);  // PackedMatrix: at least 16 readable floats past the end
  kernels::PackedMatrix& m = w.matrix;
  m.codes = unsigned_codes ? kernels::Codes::UInt8 : kernels::Codes::Int8;
  m.data = w.codes.data();
  m.rows = N;
  m.cols = K;
  m.row_bytes = K;
  m.group_size = K;
  m.scales = w.scales.data();
  m.zero_offset = unsigned_codes ? 128.0f : 0.0f;
  m.row_code_sums = w.code_sums.data();
  return w;
}

kernels::Int8Activations make_activations(int64_t m, int64_t K, const std::vector<int8_t>& q) {
  kernels::Int8Activations a;
  a.rows = m;
  a.cols = K;
  a.codes.assign(q.begin(), q.end());
  for (int64_t i = 0; i < m; ++i) a.scales.push_back(0.01f * static_cast<float>(i % 7 + 1));
  kernels::finish_int8_activations(a);
  return a;
}

std::vector<int8_t> random_codes(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(-128, 127);
  std::vector<int8_t> q(static_cast<size_t>(n));
  for (int8_t& v : q) v = static_cast<int8_t>(code(rng));
  return q;
}

void expect_reference(const kernels::Int8Activations& a, const kernels::PackedMatrix& w, bool with_bias,
                      const std::string& what) {
  ASSERT_TRUE(kernels::amx_int8_supports(a, w)) << what;
  std::vector<float> bias(static_cast<size_t>(w.rows));
  for (int64_t n = 0; n < w.rows; ++n)
    bias[static_cast<size_t>(n)] = 0.25f * static_cast<float>(n % 5) - 0.6f;
  const float* b = with_bias ? bias.data() : nullptr;
  const size_t outputs = static_cast<size_t>(a.rows * w.rows);
  std::vector<float> ref(outputs, 0.0f);
  std::vector<float> y(outputs, -1.0f);
  kernels::int8_linear_ref(a, w, b, ref.data());
  for (int threads : {1, 2}) {
    set_global_threads(threads);
    std::fill(y.begin(), y.end(), -1.0f);
    kernels::int8_linear(a, w, b, y.data());  // 5 or more x rows: the AMX kernel
    EXPECT_EQ(y, ref) << what << " threads=" << threads;
    // Row ranges not starting at a multiple of 32 (the kernel's own blocks follow the range).
    std::fill(y.begin(), y.end(), -1.0f);
    kernels::amx_int8_rows(a, w, b, y.data(), 0, w.rows / 3);
    kernels::amx_int8_rows(a, w, b, y.data(), w.rows / 3, w.rows);
    EXPECT_EQ(y, ref) << what << " split at " << w.rows / 3;
  }
  set_global_threads(0);
}

bool amx_here() {
  return kernels::amx::amx_int8_usable() && kernels::set_int8_amx_enabled(true);
}

TEST(AmxInt8, EqualsTheReferenceOnEveryEdge) {
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here (or LOWBIT_NO_AMX set)";
  struct Shape {
    int64_t N, K, m;
  };
  // x rows: whole blocks of 32, a partial second tile (40 = 32 + 8), only a first tile (17, 5), a partial
  // first tile after whole blocks (70 = 64 + 6); weight rows: whole panel pairs, one and a half (48), past
  // them (37, 70); depths of one tile row (64) up to the Llama-3.1-8B MLP's 14336.
  for (const Shape& s : {Shape{64, 64, 32}, Shape{70, 768, 40}, Shape{37, 128, 17}, Shape{48, 2048, 70},
                         Shape{33, 14336, 16}, Shape{40, 256, 5}}) {
    for (bool unsigned_codes : {false, true}) {
      const Weights w = make_weights(s.N, s.K, unsigned_codes, random_codes(s.N * s.K, 11));
      const kernels::Int8Activations a = make_activations(s.m, s.K, random_codes(s.m * s.K, 12));
      const std::string what = "N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                               " m=" + std::to_string(s.m) + (unsigned_codes ? " uint8" : " int8");
      expect_reference(a, w.matrix, s.m % 2 == 0, what);
    }
  }
}

// The deepest rows the kernel takes, every code at its extreme: the raw sums of UInt8 codes against the
// biased activations reach 255 * 255 * 32768, just under 2^31; all -128 activations against 127 weights give
// the most negative dot.
TEST(AmxInt8, ExtremeCodesAtTheDeepestRowsDoNotOverflow) {
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here (or LOWBIT_NO_AMX set)";
  constexpr int64_t N = 32, K = 32768, m = 16;
  for (bool unsigned_codes : {false, true}) {
    for (int8_t xq : {int8_t{127}, int8_t{-128}}) {
      const Weights w = make_weights(N, K, unsigned_codes, std::vector<int8_t>(N * K, 127));
      const kernels::Int8Activations a = make_activations(m, K, std::vector<int8_t>(m * K, xq));
      expect_reference(a, w.matrix, false,
                       std::string(unsigned_codes ? "uint8" : "int8") + " x=" + std::to_string(xq));
    }
  }
}

// What the kernel does not take goes to the other kernels: K not a multiple of 64, K past 32768, no code
// sums, the switch off.
TEST(AmxInt8, DeclinesWhatItCannotRun) {
  if (!amx_here()) GTEST_SKIP() << "no AMX-INT8 here (or LOWBIT_NO_AMX set)";
  const Weights w96 = make_weights(4, 96, false, random_codes(4 * 96, 1));
  EXPECT_FALSE(kernels::amx_int8_supports(make_activations(16, 96, random_codes(16 * 96, 2)), w96.matrix));
  constexpr int64_t kDeep = 32768 + 64;
  const Weights deep = make_weights(1, kDeep, false, random_codes(kDeep, 3));
  const kernels::Int8Activations a_deep = make_activations(16, kDeep, random_codes(16 * kDeep, 4));
  EXPECT_FALSE(kernels::amx_int8_supports(a_deep, deep.matrix));
  Weights w = make_weights(4, 128, false, random_codes(4 * 128, 5));
  const kernels::Int8Activations a = make_activations(16, 128, random_codes(16 * 128, 6));
  EXPECT_TRUE(kernels::amx_int8_supports(a, w.matrix));
  EXPECT_TRUE(kernels::set_int8_amx_enabled(false));
  EXPECT_FALSE(kernels::amx_int8_supports(a, w.matrix));
  kernels::set_int8_amx_enabled(true);
  w.matrix.row_code_sums = nullptr;
  EXPECT_FALSE(kernels::amx_int8_supports(a, w.matrix));
}

}  // namespace
}  // namespace lowbit

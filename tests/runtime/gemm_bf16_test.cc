// bf16 GEMM and Gram kernels against their scalar references, on the AMX path (where the CPU has it) and
// on the fallback path, at odd shapes. Bound: fp32 summation of K exact products in any order,
// |y - y_ref| <= (K + 2) * 2^-24 * sum |terms| (gemm_bf16.h).
#include "runtime/gemm_bf16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "io/dtype.h"
#include "util/error.h"

namespace lowbit::kernels {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

float bf(float v) {
  return bf16_to_f32(f32_to_bf16(v));
}

double bound(int64_t k, double abs_sum) {
  return (static_cast<double>(k) + 2.0) * std::ldexp(1.0, -24) * abs_sum;
}

// Runs a test body once with the AMX path (when usable) and once with the fallback.
class Bf16GemmPaths : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    previous_ = set_bf16_gemm_amx(GetParam());
    if (GetParam() && !bf16_gemm_uses_amx()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  }
  void TearDown() override { set_bf16_gemm_amx(previous_); }
  bool previous_ = false;
};

TEST_P(Bf16GemmPaths, LinearMatchesReferenceAtOddShapes) {
  // (m, n, k): edges in every dimension; k > 1024 runs the AMX kernel in depth blocks of 512 (1056 leaves a
  // partial last block).
  const int64_t shapes[][3] = {{1, 1, 1},      {3, 5, 7},      {17, 33, 31},   {32, 32, 32},
                               {33, 65, 70},   {100, 40, 96},  {129, 130, 64}, {300, 96, 768},
                               {33, 50, 1056}, {48, 200, 2048}};
  uint32_t seed = 1;
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    const std::vector<float> x = random_values(m * k, seed++), w = random_values(n * k, seed++, 0.05f);
    const std::vector<float> bias = random_values(n, seed++);
    const Bf16Weight packed(w.data(), n, k);
    std::vector<float> y(static_cast<size_t>(m * n), NAN), ref(static_cast<size_t>(m * n));
    linear_bf16(x.data(), m, packed, bias.data(), y.data());
    linear_bf16_ref(x.data(), m, w.data(), n, k, bias.data(), ref.data());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t o = 0; o < n; ++o) {
        double abs_sum = std::fabs(bias[o]);
        for (int64_t c = 0; c < k; ++c) abs_sum += std::fabs(double(bf(x[i * k + c])) * bf(w[o * k + c]));
        ASSERT_NEAR(y[i * n + o], ref[i * n + o], bound(k, abs_sum) + 1e-30)
            << "m=" << m << " n=" << n << " k=" << k << " at (" << i << ", " << o << ")";
      }
  }
}

TEST_P(Bf16GemmPaths, LinearWithoutBiasAndEmptyShapes) {
  const std::vector<float> x = random_values(5 * 9, 7), w = random_values(4 * 9, 8);
  const Bf16Weight packed(w.data(), 4, 9);
  std::vector<float> y(20, NAN), ref(20);
  linear_bf16(x.data(), 5, packed, nullptr, y.data());
  linear_bf16_ref(x.data(), 5, w.data(), 4, 9, nullptr, ref.data());
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-5f);
  linear_bf16(x.data(), 0, packed, nullptr, nullptr);  // m = 0 writes nothing
}

// Several weights on one packed input give exactly the separate products (same blocks, same sums), and a
// weight repacked in place with new values equals one packed fresh from them.
TEST_P(Bf16GemmPaths, SharedInputAndRepackEqualSeparateProducts) {
  const int64_t m = 70, k = 96;
  const std::vector<float> x = random_values(m * k, 21);
  const int64_t rows[] = {40, 200, 33};
  std::vector<std::vector<float>> ws, biases;
  std::vector<Bf16Weight> packed;
  for (int i = 0; i < 3; ++i) {
    ws.push_back(random_values(rows[i] * k, 30 + i, 0.05f));
    biases.push_back(random_values(rows[i], 40 + i));
    packed.emplace_back(ws.back().data(), rows[i], k);
  }
  std::vector<std::vector<float>> separate(3), shared(3);
  std::vector<Bf16Product> products;
  for (int i = 0; i < 3; ++i) {
    separate[i].assign(static_cast<size_t>(m * rows[i]), NAN);
    shared[i].assign(static_cast<size_t>(m * rows[i]), NAN);
    linear_bf16(x.data(), m, packed[i], i == 1 ? nullptr : biases[i].data(), separate[i].data());
    products.push_back({&packed[i], i == 1 ? nullptr : biases[i].data(), shared[i].data()});
  }
  linear_bf16_shared_input(x.data(), m, products);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(shared[i], separate[i]) << "product " << i;

  const Bf16Weight other(ws[2].data(), rows[2], k);  // packed[1] takes another shape and values
  packed[1].assign(ws[2].data(), rows[2], k);
  std::vector<float> y1(static_cast<size_t>(m * rows[2])), y2(y1.size());
  linear_bf16(x.data(), m, packed[1], nullptr, y1.data());
  linear_bf16(x.data(), m, other, nullptr, y2.data());
  EXPECT_EQ(y1, y2);

  const std::vector<float> narrow = random_values(8 * 64, 50);
  const Bf16Weight mismatched(narrow.data(), 8, 64);
  std::vector<float> y3(static_cast<size_t>(m * 8));
  const Bf16Product bad[] = {products[0], {&mismatched, nullptr, y3.data()}};
  EXPECT_THROW(linear_bf16_shared_input(x.data(), m, bad), Error);
}

TEST_P(Bf16GemmPaths, GramLowerTriangleMatchesReference) {
  // (rows, cols): 200 columns make two strips of 128; 1100 rows run in depth blocks of 512.
  const int64_t shapes[][2] = {{1, 1}, {5, 3}, {31, 33}, {64, 64}, {100, 70}, {512, 200}, {1100, 40}};
  uint32_t seed = 100;
  for (const auto& s : shapes) {
    const int64_t rows = s[0], cols = s[1];
    const std::vector<float> x = random_values(rows * cols, seed++);
    // Start from a non-zero accumulator: the kernel adds; the upper triangle must stay untouched.
    std::vector<double> sum(static_cast<size_t>(cols * cols), 0.5), ref = sum;
    gram_bf16_lower(x.data(), rows, cols, sum.data());
    gram_bf16_lower_ref(x.data(), rows, cols, ref.data());
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const size_t at = static_cast<size_t>(i * cols + j);
        if (j > i) {
          ASSERT_EQ(sum[at], 0.5) << "upper triangle touched at (" << i << ", " << j << ")";
          continue;
        }
        double abs_sum = 0;
        for (int64_t r = 0; r < rows; ++r)
          abs_sum += std::fabs(double(bf(x[r * cols + i])) * bf(x[r * cols + j]));
        ASSERT_NEAR(sum[at], ref[at], bound(rows, abs_sum) + 1e-30)
            << rows << "x" << cols << " at (" << i << ", " << j << ")";
      }
  }
}

TEST_P(Bf16GemmPaths, RunningGramMatchesReferenceAcrossFlushes) {
  // 200 columns (two strips of 128, padded to 224); blocks of uneven rows, a flush every >= 40 rows.
  const int64_t cols = 200, flush_rows = 40;
  const int64_t blocks[] = {17, 0, 64, 5, 33, 1};
  Bf16Gram gram(cols, flush_rows);
  std::vector<double> sum(static_cast<size_t>(cols * cols), 0.0), ref = sum, magnitude = sum;
  uint32_t seed = 300;
  for (int64_t rows : blocks) {
    const std::vector<float> x = random_values(rows * cols, seed++);
    gram.add(x.data(), rows, sum.data());
    gram_bf16_lower_ref(x.data(), rows, cols, ref.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j <= i; ++j)
          magnitude[static_cast<size_t>(i * cols + j)] +=
              std::fabs(double(bf(x[r * cols + i])) * bf(x[r * cols + j]));
  }
  gram.flush(sum.data());
  // fp32 sums run over at most flush_rows - 1 + the largest block rows between flushes.
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      const size_t at = static_cast<size_t>(i * cols + j);
      ASSERT_NEAR(sum[at], ref[at], bound(flush_rows + 64, magnitude[at]) + 1e-30) << i << ", " << j;
    }
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = i + 1; j < cols; ++j) ASSERT_EQ(sum[static_cast<size_t>(i * cols + j)], 0.0);
}

INSTANTIATE_TEST_SUITE_P(AmxAndFallback, Bf16GemmPaths, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Amx" : "Fallback";
                         });

TEST(Bf16Gemm, Fp32GramMatchesDoubleSums) {
  const int64_t rows = 300, cols = 250;
  const std::vector<float> x = random_values(rows * cols, 5);
  std::vector<double> sum(static_cast<size_t>(cols * cols), 0.0);
  gram_f32_lower(x.data(), rows, cols, sum.data());
  for (int64_t i = 0; i < cols; i += 7)
    for (int64_t j = 0; j <= i; j += 5) {
      double s = 0, abs_sum = 0;
      for (int64_t r = 0; r < rows; ++r) {
        s += double(x[r * cols + i]) * x[r * cols + j];
        abs_sum += std::fabs(double(x[r * cols + i]) * x[r * cols + j]);
      }
      ASSERT_NEAR(sum[static_cast<size_t>(i * cols + j)], s, bound(rows, abs_sum) * 2);
    }
}

}  // namespace
}  // namespace lowbit::kernels

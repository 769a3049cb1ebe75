// SmoothQuant scales (hand-computed and against tools/reference/smoothquant_reference.py, which follows
// llm-compressor 0.14) and the folding identities shared with AWQ.
#include "quant/smoothquant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quant/golden.h"
#include "util/error.h"

namespace lowbit {
namespace {

using testing::f32_from_hex;

TEST(SmoothQuant, ScalesHandComputed) {
  // Channels: ordinary, ordinary, zero weight column, zero activation range.
  const std::vector<float> range = {4.0f, 1.0f, 9.0f, 0.0f};
  const std::vector<float> w1 = {1.0f, -2.0f, 0.0f, 0.5f};  // 1 x 4
  const std::vector<float> w2 = {-3.0f, 1.0f, 0.0f, 0.0f,   // 2 x 4
                                 0.5f,  0.5f, 0.0f, -0.25f};
  const std::vector<WeightRef> balance = {{w1.data(), 1, 4}, {w2.data(), 2, 4}};
  // w_j = 2 * max |W_j| = {6, 4, 0, 1}.
  const std::vector<float> s = smoothquant_scales(range.data(), 4, balance, 0.5f);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_FLOAT_EQ(s[0], 2.0f / std::sqrt(6.0f));
  EXPECT_FLOAT_EQ(s[1], 0.5f);
  EXPECT_FLOAT_EQ(s[2], 9.0f);   // no weight: s = range
  EXPECT_FLOAT_EQ(s[3], 1e-5f);  // range 0: clamped to the minimum scale

  // alpha = 1: s = range (weights ignored); alpha = 0: s = 1 / w.
  const std::vector<float> s1 = smoothquant_scales(range.data(), 4, balance, 1.0f);
  EXPECT_FLOAT_EQ(s1[0], 4.0f);
  EXPECT_FLOAT_EQ(s1[1], 1.0f);
  const std::vector<float> s0 = smoothquant_scales(range.data(), 4, balance, 0.0f);
  EXPECT_FLOAT_EQ(s0[0], 1.0f / 6.0f);
  EXPECT_FLOAT_EQ(s0[3], 1.0f);  // 0^0 = 1, as torch.pow

  const std::vector<float> lo = {-1.0f, 2.0f}, hi = {3.0f, 2.5f};
  const std::vector<float> r = smoothquant_activation_range(lo.data(), hi.data(), 2);
  EXPECT_EQ(r, (std::vector<float>{4.0f, 0.5f}));
}

TEST(SmoothQuant, RejectsBadInput) {
  const std::vector<float> range = {1.0f, 2.0f};
  const std::vector<float> w = {1.0f, 2.0f, 3.0f};
  const std::vector<WeightRef> wrong_cols = {{w.data(), 1, 3}};
  EXPECT_THROW(smoothquant_scales(range.data(), 2, wrong_cols, 0.5f), Error);
  EXPECT_THROW(smoothquant_scales(range.data(), 2, {}, 0.5f), Error);
  const std::vector<WeightRef> ok = {{w.data(), 1, 2}};
  EXPECT_THROW(smoothquant_scales(range.data(), 2, ok, 1.5f), Error);
  const std::vector<float> bad = {-INFINITY, 1.0f};  // min = +inf, max = -inf: no tokens seen
  EXPECT_THROW(smoothquant_scales(bad.data(), 2, ok, 0.5f), Error);
}

TEST(SmoothQuant, MatchesReference) {
  const auto g = testing::load_quant_golden("smoothquant/smoothquant_golden.json");
  const int64_t cols = g["cols"].get<int64_t>();
  const std::vector<float> lo = f32_from_hex(g["act_min"]), hi = f32_from_hex(g["act_max"]);
  const std::vector<float> norm = f32_from_hex(g["norm"]);
  const std::vector<std::string> names = {"q", "k", "v"};
  std::vector<std::vector<float>> weights;
  std::vector<WeightRef> balance;
  for (const auto& n : names) weights.push_back(f32_from_hex(g["weights"][n]));
  for (size_t i = 0; i < names.size(); ++i) {
    balance.push_back({weights[i].data(), g["rows"][names[i]].get<int64_t>(), cols});
  }
  const std::vector<float> range = smoothquant_activation_range(lo.data(), hi.data(), cols);
  int folded_cases = 0;
  for (const auto& c : g["cases"]) {
    const float alpha = c["alpha"].get<float>();
    SCOPED_TRACE(::testing::Message() << "alpha " << alpha);
    const std::vector<float> want = f32_from_hex(c["scales"]);
    const std::vector<float> s = smoothquant_scales(range.data(), cols, balance, alpha);
    ASSERT_EQ(s.size(), want.size());
    for (int64_t j = 0; j < cols; ++j) EXPECT_NEAR(s[j], want[j], 1e-6 * want[j]) << "channel " << j;

    // Folding with the reference scales must reproduce the reference's float32 arithmetic exactly.
    std::vector<float> n = norm;
    divide_norm_weight(n.data(), want.data(), cols);
    EXPECT_EQ(n, f32_from_hex(c["norm"]));
    if (!c.contains("weights")) continue;
    ++folded_cases;
    for (size_t i = 0; i < names.size(); ++i) {
      std::vector<float> w = weights[i];
      scale_columns(w.data(), balance[i].rows, cols, want.data());
      EXPECT_EQ(w, f32_from_hex(c["weights"][names[i]])) << names[i];
    }
  }
  EXPECT_EQ(folded_cases, 2);
}

// y = W (g * x / rms(x)) against y' = (W diag(s)) ((g / s) * x / rms(x)).
TEST(SmoothQuant, FoldingIntoNormIsEquivalent) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(0.05f, 20.0f);
  const int64_t cols = 64, rows = 48;
  std::vector<float> g(cols), s(cols), x(cols), w(rows * cols);
  for (auto& v : g) v = 1.0f + 0.2f * normal(rng);
  for (auto& v : s) v = uniform(rng);
  for (auto& v : x) v = normal(rng) * 3.0f;
  for (auto& v : w) v = normal(rng) * 0.05f;
  double ms = 0;
  for (float v : x) ms += double{v} * v;
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(ms / cols + 1e-6));

  const auto forward = [&](const std::vector<float>& gain, const std::vector<float>& weight) {
    std::vector<double> y(rows, 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) y[i] += double{weight[i * cols + j]} * (gain[j] * (x[j] * inv_rms));
    }
    return y;
  };
  const std::vector<double> y = forward(g, w);
  std::vector<float> g2 = g, w2 = w;
  divide_norm_weight(g2.data(), s.data(), cols);
  scale_columns(w2.data(), rows, cols, s.data());
  const std::vector<double> y2 = forward(g2, w2);
  double num = 0, den = 0;
  for (int64_t i = 0; i < rows; ++i) num += (y2[i] - y[i]) * (y2[i] - y[i]), den += y[i] * y[i];
  EXPECT_LT(std::sqrt(num / den), 1e-5);
}

// Linear -> Linear (v_proj -> o_proj style, with bias) and the gated MLP (up_proj -> down_proj).
TEST(SmoothQuant, FoldingLinearIntoLinearIsEquivalent) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(0.05f, 20.0f);
  const int64_t in = 32, mid = 40, out = 24;
  std::vector<float> w1(mid * in), b1(mid), gate(mid * in), w2(out * mid), s(mid), x(in);
  for (auto* v : {&w1, &b1, &gate, &w2, &x}) {
    for (auto& e : *v) e = normal(rng) * 0.3f;
  }
  for (auto& e : s) e = uniform(rng);

  const auto matvec = [](const std::vector<float>& m, const std::vector<double>& v, int64_t r, int64_t c) {
    std::vector<double> y(r, 0.0);
    for (int64_t i = 0; i < r; ++i) {
      for (int64_t j = 0; j < c; ++j) y[i] += double{m[i * c + j]} * v[j];
    }
    return y;
  };
  const std::vector<double> xd(x.begin(), x.end());
  const auto run = [&](const std::vector<float>& a, const std::vector<float>& bias,
                       const std::vector<float>& b, bool gated) {
    std::vector<double> h = matvec(a, xd, mid, in);
    const std::vector<double> gv = matvec(gate, xd, mid, in);
    for (int64_t i = 0; i < mid; ++i) {
      h[i] += bias[i];
      if (gated) h[i] *= gv[i] / (1.0 + std::exp(-gv[i]));  // silu(gate x) * (up x + b)
    }
    std::vector<double> hd(h.begin(), h.end());
    return matvec(b, hd, out, mid);
  };
  for (bool gated : {false, true}) {
    SCOPED_TRACE(gated ? "gated mlp" : "linear -> linear");
    const std::vector<double> y = run(w1, b1, w2, gated);
    std::vector<float> w1s = w1, b1s = b1, w2s = w2;
    divide_rows(w1s.data(), mid, in, b1s.data(), s.data());
    scale_columns(w2s.data(), out, mid, s.data());
    const std::vector<double> y2 = run(w1s, b1s, w2s, gated);
    double num = 0, den = 0;
    for (int64_t i = 0; i < out; ++i) num += (y2[i] - y[i]) * (y2[i] - y[i]), den += y[i] * y[i];
    EXPECT_LT(std::sqrt(num / den), 1e-5);
  }
  // divide_rows without a bias.
  std::vector<float> w = {2.0f, 4.0f, 9.0f, 3.0f};
  const std::vector<float> sr = {2.0f, 3.0f};
  divide_rows(w.data(), 2, 2, nullptr, sr.data());
  EXPECT_EQ(w, (std::vector<float>{1.0f, 2.0f, 3.0f, 1.0f}));
}

}  // namespace
}  // namespace lowbit

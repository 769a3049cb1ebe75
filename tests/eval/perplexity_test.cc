// Perplexity windowing on a tiny random model: window and token counts checkable by hand, and the NLL
// against the naive forward of tests/runtime/tiny_model.h window by window.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/perplexity.h"
#include "model/model.h"
#include "runtime/tiny_model.h"
#include "util/error.h"

namespace lowbit::eval {
namespace {

using lowbit::testing::TempDir;
using lowbit::testing::TinySpec;

class PerplexityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tiny_ = lowbit::testing::write_tiny_model(tmp_.path(), TinySpec{});
    model_ = Model::open(tmp_.path());
    tf_ = std::make_unique<runtime::Transformer>(*model_);
    std::mt19937 rng(5);
    for (int i = 0; i < 100; ++i) tokens_.push_back(static_cast<int32_t>(rng() % 61));
  }

  // Sum of NLL of targets [first, end) of tokens_[begin, end), from the naive forward of that window alone.
  double naive_nll(int64_t begin, int64_t end, int64_t first) {
    const std::vector<int32_t> w(tokens_.begin() + begin, tokens_.begin() + end);
    const auto logits = lowbit::testing::naive_forward(tiny_, model_->config(), w);
    double total = 0;
    for (int64_t t = first; t < end; ++t) {
      const auto& row = logits[static_cast<size_t>(t - begin - 1)];
      double mx = row[0], sum = 0;
      for (double v : row) mx = std::max(mx, v);
      for (double v : row) sum += std::exp(v - mx);
      total += std::log(sum) + mx - row[static_cast<size_t>(tokens_[static_cast<size_t>(t)])];
    }
    return total;
  }

  TempDir tmp_{"ppl"};
  lowbit::testing::TinyModel tiny_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<runtime::Transformer> tf_;
  std::vector<int32_t> tokens_;
};

TEST_F(PerplexityTest, NonOverlappingWindowsDropThePartialOne) {
  PerplexityOptions o;
  o.ctx = 16;
  std::vector<PerplexityProgress> seen;
  const PerplexityResult r =
      perplexity(*tf_, tokens_, o, [&](const PerplexityProgress& p) { seen.push_back(p); });
  EXPECT_EQ(r.windows, 6);      // 100 / 16, the last 4 tokens dropped
  EXPECT_EQ(r.tokens, 6 * 15);  // ctx - 1 predictions per window
  EXPECT_EQ(r.text_tokens, 100);
  double want = 0;
  for (int64_t w = 0; w < 6; ++w) want += naive_nll(w * 16, w * 16 + 16, w * 16 + 1);
  EXPECT_NEAR(r.nll, want / 90.0, 1e-5);
  EXPECT_NEAR(r.ppl, std::exp(want / 90.0), 1e-4 * r.ppl);
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen.back().windows_done, 6);
  EXPECT_EQ(seen.back().windows_total, 6);
  EXPECT_EQ(seen.back().tokens_scored, 90);
  EXPECT_NEAR(seen.back().running_ppl, r.ppl, 1e-9 * r.ppl);
}

TEST_F(PerplexityTest, MaxTokensTruncatesTheText) {
  PerplexityOptions o;
  o.ctx = 16;
  o.max_tokens = 40;
  const PerplexityResult r = perplexity(*tf_, tokens_, o);
  EXPECT_EQ(r.windows, 2);
  EXPECT_EQ(r.tokens, 30);
  EXPECT_EQ(r.text_tokens, 40);
  EXPECT_NEAR(r.nll, (naive_nll(0, 16, 1) + naive_nll(16, 32, 17)) / 30.0, 1e-5);
}

TEST_F(PerplexityTest, StridedWindowsScoreEveryTokenOnce) {
  PerplexityOptions o;
  o.ctx = 16;
  o.stride = 8;
  tokens_.resize(50);
  const PerplexityResult r = perplexity(*tf_, tokens_, o);
  // Windows [0,16) [8,24) [16,32) [24,40) [32,48) [40,50): 15 + 4 * 8 + 2 targets = every token but the
  // first.
  EXPECT_EQ(r.windows, 6);
  EXPECT_EQ(r.tokens, 49);
  double want = naive_nll(0, 16, 1);
  for (int64_t b = 8; b <= 32; b += 8) want += naive_nll(b, b + 16, b + 8);
  want += naive_nll(40, 50, 48);
  EXPECT_NEAR(r.nll, want / 49.0, 1e-5);
}

TEST_F(PerplexityTest, StrideEqualToCtxKeepsTheFinalPartialWindow) {
  PerplexityOptions o;
  o.ctx = 16;
  o.stride = 16;
  const PerplexityResult r = perplexity(*tf_, tokens_, o);
  EXPECT_EQ(r.windows, 7);  // 6 full windows + [96, 100)
  EXPECT_EQ(r.tokens, 6 * 15 + 3);
}

// One token at a time through the decode path: the same windows, the same NLL as the naive forward.
TEST_F(PerplexityTest, DecodeModeScoresTheSameWindows) {
  for (int64_t stride : {0, 8}) {
    PerplexityOptions o;
    o.ctx = 16;
    o.stride = stride;
    o.max_tokens = 48;
    const PerplexityResult prefill = perplexity(*tf_, tokens_, o);
    o.decode = true;
    const PerplexityResult decode = perplexity(*tf_, tokens_, o);
    EXPECT_EQ(decode.windows, prefill.windows);
    EXPECT_EQ(decode.tokens, prefill.tokens);
    const double want = stride == 0
                            ? (naive_nll(0, 16, 1) + naive_nll(16, 32, 17) + naive_nll(32, 48, 33)) / 45.0
                            : prefill.nll;
    EXPECT_NEAR(decode.nll, want, 1e-5) << "stride " << stride;
  }
}

TEST_F(PerplexityTest, Errors) {
  PerplexityOptions o;
  o.ctx = 101;  // more than the text
  EXPECT_THROW(perplexity(*tf_, tokens_, o), Error);
  o.ctx = 1;
  EXPECT_THROW(perplexity(*tf_, tokens_, o), Error);
  o.ctx = 16;
  o.stride = 17;
  EXPECT_THROW(perplexity(*tf_, tokens_, o), Error);
}

TEST(TokenNll, StableForLargeLogits) {
  const std::vector<float> logits = {1000.0f, 1000.0f, 0.0f};
  EXPECT_NEAR(token_nll(logits, 0), std::log(2.0), 1e-9);
  EXPECT_NEAR(token_nll(logits, 2), 1000.0 + std::log(2.0), 1e-6);
}

}  // namespace
}  // namespace lowbit::eval

// lowbit compare's statistics: KL of a model with itself is 0 with full top-1 agreement, KL of a quantized
// model is positive, the two perplexities equal eval::perplexity's over the same windows, and the KL of two
// logit rows matches a direct evaluation of the definition.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/kl_divergence.h"
#include "formats/compressed_tensors_reader.h"
#include "formats/ct_checkpoint.h"
#include "runtime/quantized_linear.h"
#include "util/error.h"

namespace lowbit::eval {
namespace {

TEST(KLDivergence, RowFormula) {
  const std::vector<float> p = {1.0f, 2.0f, 0.5f, -1.0f}, q = {0.5f, 2.5f, 0.0f, 1.0f};
  double zp = 0, zq = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    zp += std::exp(static_cast<double>(p[i]));
    zq += std::exp(static_cast<double>(q[i]));
  }
  double expected = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double pp = std::exp(static_cast<double>(p[i])) / zp, qq = std::exp(static_cast<double>(q[i])) / zq;
    expected += pp * std::log(pp / qq);
  }
  EXPECT_NEAR(kl_divergence(p, q), expected, 1e-12);
  EXPECT_EQ(kl_divergence(p, p), 0.0);
  EXPECT_THROW(kl_divergence(p, std::vector<float>{1.0f}), Error);
}

TEST(CompareModels, SelfIsZeroAndQuantizedIsPositive) {
  testing::TempDir tmp("quantized_kl");
  testing::TinySpec ts;
  ts.intermediate = 48;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "float", ts);
  testing::CtSpec spec;
  QuantArgs w;
  w.num_bits = 4;
  w.strategy = QuantStrategy::Group;
  w.group_size = 16;
  spec.scheme.weights = w;
  spec.format = "pack-quantized";
  testing::write_ct_checkpoint(tiny, tmp.path() / "q", spec);

  const std::unique_ptr<Model> base_model = Model::open(tmp.path() / "float");
  const formats::OpenedQuantizedModel q = formats::open_compressed_tensors(tmp.path() / "q");
  runtime::Transformer base(*base_model);
  runtime::Transformer quant(*q.model, runtime::make_quantized_linear_factory(q.quant));

  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 7 + 3) % 61);
  PerplexityOptions options;
  options.ctx = 16;  // 2 windows, 30 scored predictions

  const KLDivergenceResult self = compare_models(base, base, tokens, options);
  EXPECT_EQ(self.tokens, 30);
  EXPECT_EQ(self.kl_mean, 0.0);
  EXPECT_EQ(self.kl_max, 0.0);
  EXPECT_EQ(self.top1_agreement, 1.0);
  EXPECT_EQ(self.base.ppl, self.quant.ppl);

  const KLDivergenceResult r = compare_models(base, quant, tokens, options);
  EXPECT_GT(r.kl_mean, 0.0);
  EXPECT_LE(r.kl_median, r.kl_p99);
  EXPECT_LE(r.kl_p99, r.kl_max);
  EXPECT_GE(r.top1_agreement, 0.5);
  EXPECT_LE(r.top1_agreement, 1.0);
  const PerplexityResult pb = perplexity(base, tokens, options), pq = perplexity(quant, tokens, options);
  EXPECT_NEAR(r.base.ppl, pb.ppl, 1e-9 * pb.ppl);
  EXPECT_NEAR(r.quant.ppl, pq.ppl, 1e-9 * pq.ppl);
  EXPECT_NE(r.base.ppl, r.quant.ppl);
}

}  // namespace
}  // namespace lowbit::eval

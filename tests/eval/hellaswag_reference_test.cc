// HellaSwag log-likelihoods of lowbit-ref-100m against transformers with lm-eval semantics
// (tests/fixtures/eval/hellaswag_ref100m.json from tools/reference/lm_eval_hellaswag.py): the
// preprocessed text and the context/continuation token split must be identical, and every choice's
// log-likelihood must agree within kTolerance nats (both sides compute in float32 from the bf16
// weights; they differ only in summation order). Skipped without ../shared.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "eval/tasks/datasets.h"
#include "eval/tasks/loglikelihood.h"
#include "eval/tasks/metrics.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/files.h"

namespace lowbit::eval {
namespace {

namespace fs = std::filesystem;

// Absolute tolerance on a choice's summed log-likelihood (nats; ~5-40 tokens per choice). Measured: 5.2e-5.
constexpr double kTolerance = 1e-3;

TEST(HellaSwagReference, MatchesTransformersWithLmEvalSemantics) {
  const fs::path fixture = fs::path(LOWBIT_FIXTURES_DIR) / "eval" / "hellaswag_ref100m.json";
  const fs::path model_dir = fs::path(LOWBIT_SHARED_DIR) / "models" / "lowbit-ref-100m";
  const fs::path data = fs::path(LOWBIT_SHARED_DIR) / "data" / "eval" / "hellaswag_val_1k.jsonl";
  if (!fs::exists(model_dir / "config.json") || !fs::exists(data)) GTEST_SKIP() << "shared assets absent";
  ASSERT_TRUE(fs::exists(fixture)) << fixture;
  const auto ref = nlohmann::json::parse(read_file(fixture)).at("examples");

  std::map<int64_t, JsonlRecord> rows;
  for (JsonlRecord& r : read_jsonl(data)) rows.emplace(r.line, std::move(r));
  auto model = Model::open(model_dir);
  runtime::Transformer tf(*model);
  runtime::Session session(tf);
  const Tokenizer tok = Tokenizer::load(model_dir);

  double worst = 0.0;
  for (const auto& want : ref) {
    const ChoiceExample ex = hellaswag_example(rows.at(want.at("line").get<int64_t>()));
    ASSERT_EQ(ex.context, want.at("context").get<std::string>());
    ASSERT_EQ(ex.choices, want.at("choices").get<std::vector<std::string>>());
    std::vector<int32_t> context;
    std::vector<std::vector<int32_t>> conts;
    for (const std::string& choice : ex.choices) {
      EncodedPair p = encode_pair(tok, ex.context, " " + choice, true);
      context = p.context;
      conts.push_back(p.continuation);
    }
    ASSERT_EQ(context, want.at("context_tokens").get<std::vector<int32_t>>()) << ex.source;
    ASSERT_EQ(conts, want.at("continuation_tokens").get<std::vector<std::vector<int32_t>>>()) << ex.source;
    const auto scores = score_continuations(session, context, conts, 0);
    const auto want_ll = want.at("loglikelihoods").get<std::vector<double>>();
    std::vector<double> lls;
    for (size_t i = 0; i < scores.size(); ++i) {
      EXPECT_NEAR(scores[i].loglikelihood, want_ll[i], kTolerance) << ex.source << " choice " << i;
      worst = std::max(worst, std::abs(scores[i].loglikelihood - want_ll[i]));
      lls.push_back(scores[i].loglikelihood);
    }
    // Decisions agree unless two choices are closer than the tolerance.
    std::vector<double> sorted = want_ll;
    std::sort(sorted.rbegin(), sorted.rend());
    if (sorted[0] - sorted[1] > 2 * kTolerance) {
      EXPECT_EQ(decide(lls, ex.choices).pred, want.at("pred").get<int64_t>()) << ex.source;
    }
  }
  RecordProperty("max_abs_ll_diff", std::to_string(worst));
  std::printf("max |ll - reference| over %zu examples: %.2e nats\n", ref.size(), worst);
}

}  // namespace
}  // namespace lowbit::eval

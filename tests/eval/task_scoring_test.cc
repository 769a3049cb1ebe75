// Log-likelihood scoring, the context/continuation token split, multiple-choice runs and greedy
// generation on a tiny random Llama (tests/runtime/tiny_model.h) with a 61-token tokenizer, checked
// against the naive double-precision forward pass of the same weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "eval/tasks/generate_until.h"
#include "eval/tasks/loglikelihood.h"
#include "eval/tasks/task_runner.h"
#include "eval/tiny_tokenizer.h"
#include "model/model.h"
#include "runtime/tiny_model.h"
#include "runtime/transformer.h"
#include "util/error.h"

namespace lowbit::eval {
namespace {

using testing::TempDir;

// Engine (fp32) vs naive forward (double) on summed log-probabilities of a few tokens.
constexpr double kTol = 1e-3;

struct Fixture {
  TempDir tmp{"evaltask"};
  testing::TinyModel tiny;
  std::unique_ptr<Model> model;
  std::unique_ptr<runtime::Transformer> tf;
  std::unique_ptr<Tokenizer> tok;
  Fixture() {
    tiny = testing::write_tiny_model(tmp.path(), testing::TinySpec{});
    testing::write_tiny_tokenizer(tmp.path());
    model = Model::open(tmp.path());
    tf = std::make_unique<runtime::Transformer>(*model);
    tok = std::make_unique<Tokenizer>(Tokenizer::load(tmp.path()));
  }
  // log-softmax of the naive logits, row by row.
  std::vector<std::vector<double>> log_probs(const std::vector<int32_t>& tokens) const {
    auto rows = testing::naive_forward(tiny, model->config(), tokens);
    for (auto& row : rows) {
      const double mx = *std::max_element(row.begin(), row.end());
      double sum = 0;
      for (double v : row) sum += std::exp(v - mx);
      for (double& v : row) v -= mx + std::log(sum);
    }
    return rows;
  }
  // Reference log-likelihood of `cont` after `ctx`.
  double naive_ll(const std::vector<int32_t>& ctx, const std::vector<int32_t>& cont) const {
    std::vector<int32_t> all = ctx;
    all.insert(all.end(), cont.begin(), cont.end());
    const auto lp = log_probs(all);
    double ll = 0;
    for (size_t i = 0; i < cont.size(); ++i) ll += lp[ctx.size() + i - 1][static_cast<size_t>(cont[i])];
    return ll;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

TEST(EncodePair, TailOfTheWholeEncoding) {
  const Tokenizer& tok = *fixture().tok;
  const int32_t the = *tok.token_to_id("\u2581the"), cat = *tok.token_to_id("\u2581cat"),
                an = *tok.token_to_id("\u2581an");
  EncodedPair p = encode_pair(tok, "the cat", " an", true);
  EXPECT_EQ(p.context, (std::vector<int32_t>{1, the, cat}));
  EXPECT_EQ(p.continuation, (std::vector<int32_t>{an}));
  // Trailing spaces of the context move to the continuation.
  const EncodedPair moved = encode_pair(tok, "the cat ", "an", true);
  EXPECT_EQ(moved.context, p.context);
  EXPECT_EQ(moved.continuation, p.continuation);
  // A token that merges across the boundary belongs to the whole text: "the c" + "at" is "▁the ▁cat", as
  // many tokens as the context's own "▁the ▁c", so nothing is left for the continuation.
  const EncodedPair merged = encode_pair(tok, "the c", "at", true);
  EXPECT_EQ(merged.context, (std::vector<int32_t>{1, the, *tok.token_to_id("\u2581c")}));
  EXPECT_TRUE(merged.continuation.empty());
  // Without BOS.
  EXPECT_EQ(encode_pair(tok, "the cat", " an", false).context, (std::vector<int32_t>{the, cat}));
  // An empty context becomes the BOS token; the continuation is encoded alone without special tokens.
  const EncodedPair empty = encode_pair(tok, "", " an", true);
  EXPECT_EQ(empty.context, (std::vector<int32_t>{1}));
  EXPECT_EQ(empty.continuation, tok.encode(" an", false));
}

TEST(ScoreContinuations, MatchesTheNaiveForward) {
  Fixture& f = fixture();
  const std::vector<int32_t> ctx = {1, 5, 9, 13, 22};
  // A greedy continuation (each token the naive argmax) plus two arbitrary ones.
  std::vector<int32_t> greedy;
  std::vector<int32_t> seq = ctx;
  for (int i = 0; i < 3; ++i) {
    const auto lp = f.log_probs(seq);
    const auto& last = lp.back();
    const auto best = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    greedy.push_back(best);
    seq.push_back(best);
  }
  const std::vector<std::vector<int32_t>> conts = {{7}, {20, 3, 4, 40}, greedy};
  runtime::Session session(*f.tf);
  const auto scores = score_continuations(session, ctx, conts, 0);
  ASSERT_EQ(scores.size(), 3u);
  for (size_t i = 0; i < conts.size(); ++i) {
    EXPECT_NEAR(scores[i].loglikelihood, f.naive_ll(ctx, conts[i]), kTol) << "choice " << i;
    EXPECT_EQ(scores[i].tokens, static_cast<int64_t>(conts[i].size()));
  }
  EXPECT_TRUE(scores[2].is_greedy);
  // Order does not matter: the KV cache is truncated back to the context before every continuation.
  const auto reversed = score_continuations(session, ctx, {conts[2], conts[1], conts[0]}, 0);
  EXPECT_NEAR(reversed[0].loglikelihood, scores[2].loglikelihood, 1e-5);
  EXPECT_NEAR(reversed[2].loglikelihood, scores[0].loglikelihood, 1e-5);
  // Too long for max_length: the oldest context tokens are dropped so that the model sees at most 6
  // tokens (3 of context + the first 3 of the 4-token continuation), as lm-eval's left truncation.
  const auto cut = score_continuations(session, ctx, {conts[1]}, 6);
  EXPECT_NEAR(cut[0].loglikelihood, f.naive_ll({9, 13, 22}, conts[1]), kTol);
  EXPECT_THROW(score_continuations(session, ctx, {{}}, 0), Error);
}

TEST(ScoreContinuations, SingleTokenArgmaxIsCertainlyChosen) {
  Fixture& f = fixture();
  const std::vector<int32_t> ctx = {1, 30, 31, 4};
  const auto lp = f.log_probs(ctx);
  const auto& last = lp.back();
  std::vector<size_t> order(last.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return last[a] > last[b]; });
  ASSERT_GT(last[order[0]] - last[order[1]], 10 * kTol);  // a clear winner, so the choice is certain
  // The winner placed third among four single-token choices.
  const std::vector<std::vector<int32_t>> conts = {{static_cast<int32_t>(order[5])},
                                                   {static_cast<int32_t>(order[1])},
                                                   {static_cast<int32_t>(order[0])},
                                                   {static_cast<int32_t>(order[9])}};
  runtime::Session session(*f.tf);
  const auto scores = score_continuations(session, ctx, conts, 0);
  size_t best = 0;
  for (size_t i = 1; i < scores.size(); ++i)
    if (scores[i].loglikelihood > scores[best].loglikelihood) best = i;
  EXPECT_EQ(best, 2u);
  EXPECT_TRUE(scores[2].is_greedy);
  EXPECT_FALSE(scores[0].is_greedy);
}

TEST(RunTask, MultipleChoiceWithCertainLabels) {
  Fixture& f = fixture();
  // For each context, the label is the choice whose naive log-likelihood is highest (with a margin), so
  // acc must be 1; acc_norm is checked against the naive values divided by the character counts.
  const std::vector<std::string> contexts = {"the cat", "an ant", "in the", "the tin cat"};
  const std::vector<std::string> candidates = {"cat", "ant", "the end", "z", "a tree"};
  TaskData task;
  task.kind = TaskKind::MultipleChoiceJsonl;
  std::vector<int64_t> want_norm;
  for (const auto& c : contexts) {
    ChoiceExample ex{"mem:" + c, c, candidates, 0};
    std::vector<double> lls;
    for (const auto& choice : candidates) {
      const EncodedPair p = encode_pair(*f.tok, c, " " + choice, true);
      lls.push_back(f.naive_ll(p.context, p.continuation));
    }
    std::vector<double> sorted = lls;
    std::sort(sorted.rbegin(), sorted.rend());
    ASSERT_GT(sorted[0] - sorted[1], 10 * kTol) << c;
    ex.label = std::max_element(lls.begin(), lls.end()) - lls.begin();
    int64_t norm = 0;
    for (size_t i = 0; i < lls.size(); ++i)
      if (lls[i] / static_cast<double>(candidates[i].size()) >
          lls[static_cast<size_t>(norm)] / static_cast<double>(candidates[static_cast<size_t>(norm)].size()))
        norm = static_cast<int64_t>(i);
    want_norm.push_back(norm);
    task.choice.push_back(ex);
  }
  TaskOptions o;
  o.kind = task.kind;
  size_t calls = 0;
  const ModelRun run = run_task(task, *f.tf, *f.tok, o, [&](size_t done, const ModelRun&) { calls = done; });
  EXPECT_EQ(calls, contexts.size());
  ASSERT_EQ(run.metrics, (std::vector<std::string>{"acc", "acc_norm"}));
  for (size_t i = 0; i < contexts.size(); ++i) {
    EXPECT_EQ(run.values[0][i], 1.0) << contexts[i];
    EXPECT_EQ(run.logs[i]["pred_norm"].get<int64_t>(), want_norm[i]) << contexts[i];
    EXPECT_EQ(run.values[1][i], want_norm[i] == task.choice[i].label ? 1.0 : 0.0);
  }
}

TEST(RunTask, ChoiceThatAddsNoTokensIsAnError) {
  Fixture& f = fixture();
  TaskData task;
  task.kind = TaskKind::MultipleChoiceJsonl;
  task.choice.push_back({"data.jsonl:4", "the c", {"at"}, 0});
  TaskOptions o;
  o.kind = task.kind;
  o.target_delimiter = "";
  try {
    run_task(task, *f.tf, *f.tok, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.jsonl:4: choice 0 adds no tokens"), std::string::npos)
        << e.what();
  }
}

TEST(GenerateUntil, GreedyTokensFollowTheNaiveArgmax) {
  Fixture& f = fixture();
  const std::vector<int32_t> prompt = {1, 50, 58};
  GenerateUntilOptions g;
  g.max_new_tokens = 6;
  runtime::Session session(*f.tf);
  const GenerateUntilResult r = generate_until(session, *f.tok, prompt, g);
  // The naive greedy path, stopping early only at EOS (none configured here).
  std::vector<int32_t> seq = prompt, generated;
  for (int i = 0; i < 6; ++i) {
    const auto lp = f.log_probs(seq);
    const auto best =
        static_cast<int32_t>(std::max_element(lp.back().begin(), lp.back().end()) - lp.back().begin());
    generated.push_back(best);
    seq.push_back(best);
  }
  EXPECT_EQ(r.tokens, 6);
  EXPECT_EQ(r.stop_reason, "length");
  EXPECT_EQ(r.text, f.tok->decode(generated));
  // A stop string taken from inside that text cuts it there.
  if (r.text.size() >= 3) {
    g.stop = {r.text.substr(2, 1)};
    const GenerateUntilResult stopped = generate_until(session, *f.tok, prompt, g);
    EXPECT_EQ(stopped.stop_reason, "stop");
    EXPECT_EQ(stopped.text, r.text.substr(0, r.text.find(g.stop[0])));
  }
  // EOS ends generation without being part of the text.
  g.stop.clear();
  g.eos_ids = {generated[0]};
  const GenerateUntilResult eos = generate_until(session, *f.tok, prompt, g);
  EXPECT_EQ(eos.stop_reason, "eos");
  EXPECT_EQ(eos.tokens, 0);
  EXPECT_EQ(eos.text, "");
}

}  // namespace
}  // namespace lowbit::eval

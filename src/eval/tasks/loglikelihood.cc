#include "eval/tasks/loglikelihood.h"

#include <algorithm>

#include "eval/perplexity.h"
#include "eval/tasks/text.h"
#include "util/error.h"

namespace lowbit::eval {

EncodedPair encode_pair(const Tokenizer& tokenizer, std::string_view context, std::string_view continuation,
                        bool add_bos) {
  const std::string_view trimmed = python_rstrip(context);
  const std::string moved(context.substr(trimmed.size()));
  const std::string cont = moved + std::string(continuation);
  EncodedPair pair;
  if (trimmed.empty()) {
    const int32_t prefix = tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : tokenizer.eos_id();
    if (prefix < 0) fail("empty context and the tokenizer has neither a BOS nor an EOS token");
    pair.context = {prefix};
    pair.continuation = tokenizer.encode(cont, false);
    return pair;
  }
  const std::vector<int32_t> whole = tokenizer.encode(std::string(trimmed) + cont, add_bos);
  pair.context = tokenizer.encode(trimmed, add_bos);
  if (whole.size() > pair.context.size())
    pair.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(pair.context.size()), whole.end());
  return pair;
}

namespace {

// log p(target) under softmax(logits), and whether target is the (first) argmax.
std::pair<double, bool> score_token(std::span<const float> logits, int32_t target) {
  const auto best = std::max_element(logits.begin(), logits.end()) - logits.begin();
  return {-token_nll(logits, target), best == target};
}

}  // namespace

std::vector<ContinuationScore> score_continuations(runtime::Session& session,
                                                   std::span<const int32_t> context,
                                                   const std::vector<std::vector<int32_t>>& continuations,
                                                   int64_t max_length) {
  if (context.empty()) fail("score_continuations: empty context");
  size_t longest = 0;
  for (const auto& c : continuations) {
    if (c.empty()) fail("score_continuations: a continuation has no tokens");
    longest = std::max(longest, c.size());
  }
  // The model sees context + continuation[:-1]; keep at most max_length of those tokens.
  if (max_length > 0 && static_cast<int64_t>(context.size() + longest) - 1 > max_length) {
    const int64_t keep = std::max<int64_t>(1, max_length + 1 - static_cast<int64_t>(longest));
    context =
        context.last(static_cast<size_t>(std::min<int64_t>(keep, static_cast<int64_t>(context.size()))));
  }
  std::vector<float> last, rows;
  session.reset();
  session.forward(context, runtime::Logits::Last, &last);
  const size_t vocab = last.size();
  const int64_t ctx_len = static_cast<int64_t>(context.size());

  std::vector<ContinuationScore> scores;
  for (const auto& cont : continuations) {
    ContinuationScore s;
    s.tokens = static_cast<int64_t>(cont.size());
    auto [ll, greedy] = score_token(last, cont[0]);
    if (cont.size() > 1) {
      session.truncate(ctx_len);
      session.forward(std::span<const int32_t>(cont).first(cont.size() - 1), runtime::Logits::All, &rows);
      for (size_t i = 1; i < cont.size(); ++i) {
        const auto [l, g] =
            score_token(std::span<const float>(rows).subspan((i - 1) * vocab, vocab), cont[i]);
        ll += l;
        greedy = greedy && g;
      }
    }
    s.loglikelihood = ll;
    s.is_greedy = greedy;
    scores.push_back(s);
  }
  return scores;
}

}  // namespace lowbit::eval

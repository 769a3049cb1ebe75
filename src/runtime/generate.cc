#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace lowbit::runtime {

GenerateResult generate(const Transformer& transformer, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TokenCallback& on_token) {
  if (prompt.empty()) fail("generate: the prompt is empty (it needs at least one token, e.g. BOS)");
  std::vector<int32_t> stop = options.stop_tokens;
  if (stop.empty()) {
    for (int64_t id : transformer.config().eos_token_ids) stop.push_back(static_cast<int32_t>(id));
  }
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };

  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  Session session(transformer, static_cast<int64_t>(prompt.size()) + options.max_new_tokens);
  Sampler sampler(options.sampler);
  std::vector<float> logits;

  auto start = Clock::now();
  session.forward(prompt, Logits::Last, &logits);
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    if (i > 0) session.forward(std::span<const int32_t>(&result.tokens.back(), 1), Logits::Last, &logits);
    const int32_t token = sampler.sample(logits);
    result.tokens.push_back(token);
    if (i == 0) {
      result.prefill_seconds = seconds_since(start);
      start = Clock::now();
    }
    const bool keep_going = !on_token || on_token(token);
    if (!options.ignore_eos && std::find(stop.begin(), stop.end(), token) != stop.end()) {
      result.stopped_at_eos = true;
      break;
    }
    if (!keep_going) break;
  }
  if (!result.tokens.empty()) result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace lowbit::runtime

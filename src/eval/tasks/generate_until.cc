#include "eval/tasks/generate_until.h"

#include <algorithm>

#include "util/error.h"

namespace lowbit::eval {

bool cut_at_stop(std::string& text, const std::vector<std::string>& stop) {
  size_t cut = std::string::npos;
  for (const std::string& s : stop) {
    if (s.empty()) continue;
    cut = std::min(cut, text.find(s));
  }
  if (cut == std::string::npos) return false;
  text.resize(cut);
  return true;
}

GenerateUntilResult generate_until(runtime::Session& session, const Tokenizer& tokenizer,
                                   std::span<const int32_t> prompt, const GenerateUntilOptions& options) {
  if (prompt.empty()) fail("generate_until: empty prompt");
  GenerateUntilResult r;
  r.stop_reason = "length";
  StreamDecoder decoder(tokenizer);
  std::vector<float> logits;
  session.reset();
  session.forward(prompt, runtime::Logits::Last, &logits);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const auto token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (std::find(options.eos_ids.begin(), options.eos_ids.end(), token) != options.eos_ids.end()) {
      r.stop_reason = "eos";
      break;
    }
    ++r.tokens;
    r.text += decoder.push(token);
    if (cut_at_stop(r.text, options.stop)) {
      r.stop_reason = "stop";
      return r;
    }
    if (step + 1 == options.max_new_tokens) break;
    session.forward(std::span<const int32_t>(&token, 1), runtime::Logits::Last, &logits);
  }
  r.text += decoder.finish();
  if (cut_at_stop(r.text, options.stop)) r.stop_reason = "stop";
  return r;
}

}  // namespace lowbit::eval

// Greedy generation until a stop string, as lm-eval's generate_until requests run on a Hugging Face
// model with do_sample=False: argmax decoding (ties to the lowest id), stopped at an EOS token, at
// max_new_tokens, or as soon as the decoded text contains one of the stop strings; the text is cut
// before the earliest stop string.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/transformer.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::eval {

struct GenerateUntilOptions {
  int64_t max_new_tokens = 256;  // lm-eval's max_gen_toks
  std::vector<std::string> stop;
  std::vector<int32_t> eos_ids;  // generation ends at any of these (not part of the text)
};

struct GenerateUntilResult {
  std::string text;  // the decoded continuation, cut before the first stop string
  int64_t tokens = 0;
  std::string stop_reason;  // "stop" (a stop string), "eos", "length"
};

// `session` is reset; `prompt` must be non-empty.
GenerateUntilResult generate_until(runtime::Session& session, const Tokenizer& tokenizer,
                                   std::span<const int32_t> prompt, const GenerateUntilOptions& options);

// Cuts `text` before the earliest occurrence of any stop string; returns whether one was found.
bool cut_at_stop(std::string& text, const std::vector<std::string>& stop);

}  // namespace lowbit::eval

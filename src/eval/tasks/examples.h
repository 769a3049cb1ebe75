// The two shapes of evaluation example, after a data set's own preprocessing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::eval {

// Multiple choice, scored by log-likelihood: each choice is a continuation of `context` (lm-eval's
// doc_to_text), written after the target delimiter (" " by default). `choices` hold the text without
// the delimiter: their length in characters is what acc_norm divides by.
struct ChoiceExample {
  std::string source;  // "FILE:LINE"
  std::string context;
  std::vector<std::string> choices;
  int64_t label = 0;
};

// Generation: the model continues `prompt` greedily; `target` is the reference answer (for few-shot
// examples it is written after the prompt and the target delimiter).
struct GenExample {
  std::string source;
  std::string prompt;
  std::string target;
};

}  // namespace lowbit::eval

// Answer extraction and matching for generation tasks, as lm-eval's gsm8k task (version 3) defines it:
//   strict-match:     the first "#### (-?[0-9.,]+)" in the output (the format of the few-shot answers);
//   flexible-extract: the last match of "(-?[$0-9.,]{2,})|(-?[0-9]+)" anywhere in the output;
//   either gives "[invalid]" when nothing matches. Prediction and reference are then normalised by
//   deleting ",", "$", everything up to the last "#### ", and one trailing "." (in that order), lower-
//   cased, and compared exactly (so "2.50" and "2.5" differ, as in lm-eval).
#pragma once

#include <string>
#include <string_view>

namespace lowbit::eval {

inline constexpr std::string_view kInvalidAnswer = "[invalid]";

std::string gsm8k_strict_answer(std::string_view output);
std::string gsm8k_flexible_answer(std::string_view output);
// lm-eval's exact_match normalisation for gsm8k (regexes_to_ignore, ignore_case).
std::string gsm8k_normalize(std::string_view text);
// exact_match(prediction, reference) after gsm8k_normalize on both.
bool gsm8k_match(std::string_view extracted, std::string_view reference);

}  // namespace lowbit::eval

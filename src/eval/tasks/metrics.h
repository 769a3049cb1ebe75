// Per-example decisions and their aggregation, with lm-evaluation-harness's definitions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lowbit::eval {

// Multiple choice: pred = argmax of the log-likelihoods; pred_norm = argmax of loglikelihood / length of
// the choice text in characters (Unicode code points of the choice without the target delimiter, as
// lm-eval's acc_norm does with len(choice)). Ties go to the first index (numpy.argmax).
struct ChoiceDecision {
  int64_t pred = 0;
  int64_t pred_norm = 0;
};
ChoiceDecision decide(std::span<const double> loglikelihoods, std::span<const std::string> choices);

// Mean of per-example values and lm-eval's standard error of that mean: the sample standard deviation
// (n - 1 in the denominator) over sqrt(n); for 0/1 outcomes this is sqrt(p (1 - p) / (n - 1)).
// NaN when n < 2.
struct MeanStderr {
  double mean = 0.0;
  double stderr_ = 0.0;
  int64_t n = 0;
};
MeanStderr mean_stderr(std::span<const double> values);

}  // namespace lowbit::eval

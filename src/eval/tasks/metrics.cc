#include "eval/tasks/metrics.h"

#include <cmath>
#include <limits>

#include "eval/tasks/text.h"
#include "util/error.h"

namespace lowbit::eval {

ChoiceDecision decide(std::span<const double> loglikelihoods, std::span<const std::string> choices) {
  if (loglikelihoods.empty() || loglikelihoods.size() != choices.size()) {
    fail("decide: {} log-likelihoods for {} choices", loglikelihoods.size(), choices.size());
  }
  ChoiceDecision d;
  double best = -std::numeric_limits<double>::infinity(), best_norm = best;
  for (size_t i = 0; i < choices.size(); ++i) {
    const double norm = loglikelihoods[i] / static_cast<double>(utf8_length(choices[i]));
    if (loglikelihoods[i] > best) best = loglikelihoods[i], d.pred = static_cast<int64_t>(i);
    if (norm > best_norm) best_norm = norm, d.pred_norm = static_cast<int64_t>(i);
  }
  return d;
}

MeanStderr mean_stderr(std::span<const double> values) {
  MeanStderr r;
  r.n = static_cast<int64_t>(values.size());
  if (values.empty()) {
    r.mean = r.stderr_ = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  double sum = 0.0;
  for (double v : values) sum += v;
  r.mean = sum / static_cast<double>(r.n);
  if (r.n < 2) {
    r.stderr_ = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  double ss = 0.0;
  for (double v : values) ss += (v - r.mean) * (v - r.mean);
  r.stderr_ = std::sqrt(ss / static_cast<double>(r.n - 1)) / std::sqrt(static_cast<double>(r.n));
  return r;
}

}  // namespace lowbit::eval

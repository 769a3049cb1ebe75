#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "runtime/kernels_hwy.h"
#include "util/error.h"

namespace lowbit::runtime {

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) fail("argmax of empty logits");
  // In vector code: the scalar loop below took 1 % of a greedy W4A16 decode step on the reference model
  // (32,000 logits), on the thread the other pool threads wait for.
  const int64_t first = kernels::simd::first_max(logits.data(), logits.size());
  if (first >= 0) return static_cast<int32_t>(first);
  // NaNs: none is ever larger, and one first keeps index 0 (as a plain loop over the values does).
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), state_(options.seed) {
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f))
    fail("top_p must be in (0, 1], got {}", options.top_p);
  if (options.top_k < 0) fail("top_k must be >= 0, got {}", options.top_k);
  if (std::isnan(options.temperature)) fail("temperature is NaN");
}

double Sampler::uniform() {
  // SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, fully specified generator.
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

namespace {
// Higher logits first, the lower token id first on ties: a total order, so every prefix is well defined.
bool by_logit(const Sampler::Candidate& a, const Sampler::Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
}
}  // namespace

void Sampler::sort_prefix(size_t m) {
  m = std::min(m, candidates_.size());
  if (m <= sorted_) return;
  // [0, sorted_) holds the top sorted_ in order, above everything after it, and [sorted_, head_) lies above
  // what follows it: the next ones are selected from [sorted_, head_) while m fits there, then ordered.
  const auto first = candidates_.begin() + static_cast<std::ptrdiff_t>(sorted_);
  const auto last = candidates_.begin() + static_cast<std::ptrdiff_t>(m);
  const auto pool = m <= head_ ? candidates_.begin() + static_cast<std::ptrdiff_t>(head_) : candidates_.end();
  if (last != pool) std::nth_element(first, last, pool, by_logit);
  std::sort(first, last, by_logit);
  sorted_ = m;
}

// The definition: sort the candidates by logit, keep the top k, then the shortest prefix whose probability
// reaches top_p, and draw from it in that order. Sorting the whole vocabulary for every token took about
// 4.6 ms of a 32000-token model's step (lowbit generate decoded at 125-131 tokens/s with the defaults,
// 426 greedy), so the candidates are sorted only as far as the nucleus and the draw reach: a prefix that
// grows eightfold when it falls short. The weights and their prefix sums are the same numbers, in the same
// order, as with a full sort; only the total over all candidates (for top_p) is summed in token order.
int32_t Sampler::sample(std::span<const float> logits) {
  if (options_.temperature <= 0.0f) return argmax(logits);
  if (logits.empty()) fail("cannot sample from empty logits");

  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) candidates_[i] = {logits[i], static_cast<int32_t>(i), 0.0};
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < candidates_.size()) {
    const auto kth = candidates_.begin() + options_.top_k;
    std::nth_element(candidates_.begin(), kth, candidates_.end(), by_logit);
    candidates_.resize(static_cast<size_t>(options_.top_k));
  }
  const size_t keep = candidates_.size();
  // Unnormalized probabilities, relative to the top logit.
  const double max_logit = std::max_element(candidates_.begin(), candidates_.end(), by_logit)->logit;
  // The exponentials in SIMD (std::exp per candidate took a tenth of a sampled decode step, on the thread the
  // pool waits for); within 1 ulp of std::exp, summed in token order as before.
  exps_.resize(keep);
  for (size_t i = 0; i < keep; ++i) exps_[i] = (candidates_[i].logit - max_logit) / options_.temperature;
  kernels::simd::exp_f64(exps_.data(), keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    candidates_[i].weight = exps_[i];
    total += exps_[i];
  }
  sorted_ = 0;
  head_ = keep;
  constexpr size_t kFirstPrefix = 64;
  auto grow = [&](size_t m) { return m < head_ ? std::min(m * 8, head_) : m * 8; };

  // Nucleus: the smallest prefix whose mass reaches top_p (at least one token).
  size_t nucleus = keep;
  if (options_.top_p < 1.0f) {
    // Candidates whose weights are all below (1 - top_p) * total / keep hold less than 1 - top_p of the mass
    // together, so the nucleus ends before them: move the others ahead (a logit bound, so they are the top
    // ones) and sort among those first. Half the bound leaves a margin for rounding; should the nucleus not
    // end there, the prefix grows into the rest.
    const double bound = 0.5 * (1.0 - options_.top_p) * total / static_cast<double>(keep);
    const auto heavy = [&](const Candidate& c) { return c.weight >= bound; };
    head_ = static_cast<size_t>(std::partition(candidates_.begin(), candidates_.end(), heavy) -
                                candidates_.begin());
    double mass = 0.0;
    size_t n = 0;
    bool reached = false;
    for (size_t m = std::min(kFirstPrefix, head_); !reached && n < keep; m = grow(m)) {
      sort_prefix(m);
      for (; n < sorted_ && !reached; ++n) {
        mass += candidates_[n].weight / total;
        reached = mass >= options_.top_p;
      }
    }
    nucleus = n;
    total = 0.0;
    for (size_t i = 0; i < nucleus; ++i) total += candidates_[i].weight;
  }
  const double r = uniform() * total;
  double acc = 0.0;
  size_t i = 0;
  for (size_t m = std::min(kFirstPrefix, head_); i < nucleus; m = grow(m)) {
    sort_prefix(std::min(m, nucleus));
    for (const size_t end = std::min(sorted_, nucleus); i < end; ++i) {
      acc += candidates_[i].weight;
      if (r < acc) return candidates_[i].token;
    }
  }
  return candidates_[nucleus - 1].token;
}

}  // namespace lowbit::runtime

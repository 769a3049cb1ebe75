// Next-token choice from logits: greedy (temperature 0), or sampling from softmax(logits / temperature)
// restricted to the top-k and then to the smallest set whose probability reaches top_p (nucleus).
// Deterministic for a seed: the random stream is our own (SplitMix64), not std:: distributions whose
// results vary between standard libraries.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lowbit::runtime {

struct SamplerOptions {
  float temperature = 0.0f;  // <= 0: greedy (argmax)
  float top_p = 1.0f;        // in (0, 1]
  int top_k = 0;             // 0: no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  struct Candidate {
    float logit;
    int32_t token;
    double weight;  // exp((logit - the top logit) / temperature)
  };

  explicit Sampler(const SamplerOptions& options);
  int32_t sample(std::span<const float> logits);
  const SamplerOptions& options() const { return options_; }

 private:
  double uniform();  // [0, 1)
  // Sorts the candidates' first m (at most all) by logit, extending the sorted prefix of this call.
  void sort_prefix(size_t m);

  SamplerOptions options_;
  uint64_t state_;
  std::vector<Candidate> candidates_;  // this call's, sorted up to sorted_
  std::vector<double> exps_;           // their weights' exponents, then the weights (kernels::simd::exp_f64)
  size_t sorted_ = 0;
  size_t head_ = 0;  // [sorted_, head_) lies above the rest (sort_prefix)
};

// Index of the largest logit (the first one on ties, as torch.argmax).
int32_t argmax(std::span<const float> logits);

}  // namespace lowbit::runtime

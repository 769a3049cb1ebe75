// How far a quantized model's predictions are from its base model's, in the statistics llama.cpp's
// `perplexity --kl-divergence` reports: per scored token, KL(base || quant) = sum_v p_base(v) (log p_base(v)
// - log p_quant(v)) over the next-token distributions, summarised as mean, median, p99 and max; the rate at
// which both models' most likely next tokens agree ("same top p"); and both perplexities.
//
// The windows are perplexity()'s (eval/perplexity.h, non-overlapping windows of ctx tokens, each scored on
// its ctx - 1 predictions), so the two perplexities equal what `lowbit ppl` reports for each model.
// (llama.cpp scores only the second half of each window; lowbit scores every prediction, like its ppl.)
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "eval/perplexity.h"
#include "runtime/transformer.h"

namespace lowbit::eval {

struct KLDivergenceResult {
  PerplexityResult base, quant;  // tokens / windows / nll / ppl of each model over the same windows
  double kl_mean = 0.0;          // nats
  double kl_median = 0.0;
  double kl_p99 = 0.0;  // 99th percentile (nearest rank)
  double kl_max = 0.0;
  double top1_agreement = 0.0;  // fraction of scored positions whose argmax tokens agree
  int64_t tokens = 0;           // scored positions
  double seconds = 0.0;
};

// KL(p || q) of two logit rows, stable (max subtracted, sums in double). Never negative.
double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits);

// Both models must share the vocabulary size; options.stride must be 0.
KLDivergenceResult compare_models(const runtime::Transformer& base, const runtime::Transformer& quant,
                                  std::span<const int32_t> tokens, const PerplexityOptions& options,
                                  const PerplexityCallback& progress = {});

}  // namespace lowbit::eval

// Perplexity of a model on a text, the way the GPTQ and AWQ papers measure it (and transformers-based
// scripts reproduce it):
//   1. the whole text is tokenized once (Tokenizer::encode with special tokens, so BOS is prepended when
//      the tokenizer adds one);
//   2. the token stream is cut into consecutive windows of `ctx` tokens; a final partial window is dropped;
//   3. each window runs on its own (no context carried over) and is scored on its ctx - 1 next-token
//      predictions;
//   4. ppl = exp(total NLL / number of scored tokens).
//
// With `stride` set (0 < stride < ctx) the sliding-window variant of Hugging Face's perplexity guide is used
// instead: windows of up to ctx tokens start every `stride` tokens, each window scores only the tokens that
// no earlier window scored (the first window scores all of its ctx - 1 predictions), the final window may be
// shorter (it ends at the last token), and the loop stops at the window that reaches the end. Every token
// but the first is scored exactly once, with up to ctx - stride tokens of context from the previous window.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "runtime/transformer.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::eval {

struct PerplexityOptions {
  int64_t ctx = 2048;      // window length in tokens (>= 2)
  int64_t stride = 0;      // 0: non-overlapping windows (the papers' method); else the sliding variant
  int64_t max_tokens = 0;  // > 0: only the first max_tokens tokens of the text are used
  // Run each window one token at a time, as generation does, instead of as one prefill: the same model and
  // the same scores up to rounding, but through the decode kernels (matrix-vector products; for packed
  // int4 / 8-bit weights on AVX2, int16 activation codes), which the prefill path never calls.
  bool decode = false;
};

struct PerplexityResult {
  double ppl = 0.0;
  double nll = 0.0;     // mean negative log-likelihood per scored token (nats)
  int64_t tokens = 0;   // scored tokens
  int64_t windows = 0;  // windows run
  double seconds = 0.0;
  int64_t text_tokens = 0;  // tokens of the text (after max_tokens)
};

struct PerplexityProgress {
  int64_t windows_done = 0;
  int64_t windows_total = 0;
  int64_t tokens_scored = 0;
  double running_ppl = 0.0;
};
using PerplexityCallback = std::function<void(const PerplexityProgress&)>;

// On already tokenized text.
PerplexityResult perplexity(const runtime::Transformer& model, std::span<const int32_t> tokens,
                            const PerplexityOptions& options, const PerplexityCallback& progress = {});

// Tokenizes `text` as a whole (with special tokens) and scores it.
PerplexityResult perplexity(const runtime::Transformer& model, const Tokenizer& tokenizer,
                            std::string_view text, const PerplexityOptions& options,
                            const PerplexityCallback& progress = {});

// Negative log-likelihood (nats) of `target` under softmax(logits), computed stably (max subtracted, sum in
// double).
double token_nll(std::span<const float> logits, int32_t target);

}  // namespace lowbit::eval

// Log-likelihood of continuations given a context, as lm-evaluation-harness computes it:
//   * trailing whitespace of the context moves to the start of the continuation;
//   * context+continuation is encoded as one text and the continuation's tokens are the tail beyond the
//     context's own encoding (so a token that would merge across the boundary is scored as the
//     whole text's tokenizer split it); an empty context is replaced by the BOS (or EOS) token;
//   * the score is the sum over continuation tokens of log p(token | everything before it), and
//     is_greedy says whether every continuation token was the argmax.
// All choices of one example share the context's forward pass: the context runs once, and the KV cache
// is truncated back to it before each continuation (Session::truncate).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/transformer.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::eval {

struct EncodedPair {
  std::vector<int32_t> context;
  std::vector<int32_t> continuation;
};

// `add_bos`: encode with the tokenizer's special tokens (BOS for Llama), as current lm-eval does by
// delegating to the tokenizer; false reproduces the older add_bos_token=False default.
EncodedPair encode_pair(const Tokenizer& tokenizer, std::string_view context, std::string_view continuation,
                        bool add_bos);

struct ContinuationScore {
  double loglikelihood = 0.0;  // natural log
  bool is_greedy = false;
  int64_t tokens = 0;
};

// Scores each continuation after `context` (which must be non-empty; every continuation too). When
// context + the longest continuation exceed `max_length` tokens, the oldest context tokens are dropped
// (lm-eval truncates each request on the left the same way).
std::vector<ContinuationScore> score_continuations(runtime::Session& session,
                                                   std::span<const int32_t> context,
                                                   const std::vector<std::vector<int32_t>>& continuations,
                                                   int64_t max_length);

}  // namespace lowbit::eval

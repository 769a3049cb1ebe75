// Text generation loop: prefill the prompt in one batched forward, then decode one token at a time,
// handing each new token to a callback as soon as it is chosen (the CLI streams it through a
// StreamDecoder).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/transformer.h"

namespace lowbit::runtime {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplerOptions sampler;
  // Generation stops after emitting one of these (the token is passed to the callback and included in
  // the result). Empty: the model config's eos_token_ids.
  std::vector<int32_t> stop_tokens;
  bool ignore_eos = false;  // run to max_new_tokens regardless of stop tokens
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated tokens only
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0.0;  // prompt forward (includes choosing the first token)
  double decode_seconds = 0.0;   // the remaining tokens
  bool stopped_at_eos = false;
};

// Called with each generated token; return false to stop early.
using TokenCallback = std::function<bool(int32_t token)>;

// Starts from an empty session; the prompt must hold at least one token (e.g. BOS).
GenerateResult generate(const Transformer& transformer, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TokenCallback& on_token = {});

}  // namespace lowbit::runtime

// The fp32 forward pass of a Llama-shaped decoder (Llama, Mistral, Qwen2), numerically following
// transformers' LlamaForCausalLM: embeddings -> per layer [RMSNorm, q/k/v (+bias), RoPE, causal GQA
// attention, o_proj, residual, RMSNorm, SwiGLU MLP, residual] -> final RMSNorm -> lm_head.
//
// Transformer holds the weights (shared, read-only, safe to use from several Sessions); a Session holds
// one sequence's KV cache and scratch buffers. Session::forward runs T new tokens at once (prefill: every
// linear is a matrix product with m = T) or one at a time (decode), appending to the KV cache.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_quant.h"
#include "runtime/linear.h"
#include "runtime/rope.h"

namespace lowbit::runtime {

class Transformer {
 public:
  // `model` must outlive the Transformer (weights are used in place).
  explicit Transformer(const Model& model, const LinearFactory& make_linear = make_dense_linear);

  const ModelConfig& config() const { return model_.config(); }
  const Model& model() const { return model_; }

  struct Layer {
    std::vector<float> input_norm, post_attention_norm;
    std::unique_ptr<LinearWeight> q, k, v, o, gate, up, down;
  };
  const Layer& layer(int64_t i) const { return layers_[static_cast<size_t>(i)]; }
  // out[i][hidden] = the embedding of tokens[i] as fp32 (ids already checked against the vocabulary).
  void embed(const int32_t* tokens, int64_t count, float* out) const;
  const std::vector<float>& final_norm() const { return final_norm_; }
  const LinearWeight& lm_head() const { return *lm_head_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  // KV cache quantization (a checkpoint's kv_cache_scheme); null keeps keys and values in fp32.
  void set_kv_quantizer(std::shared_ptr<const KVQuantizer> kv_quant) { kv_quant_ = std::move(kv_quant); }
  const KVQuantizer* kv_quantizer() const { return kv_quant_.get(); }
  // How Sessions store keys and values when the checkpoint does not quantize them: F32 (the default; exact
  // for evaluation), or BF16 / F16 as a 16-bit torch model holds them (half the memory and traffic).
  void set_kv_storage(DType storage);
  DType kv_storage() const { return kv_storage_; }

 private:
  const Model& model_;
  kernels::DenseWeight embed_;
  bool embed_by_reading_ = false;  // rows come from TensorStore::read, not the mapping (see embed())
  std::vector<float> final_norm_;
  std::unique_ptr<LinearWeight> lm_head_;
  std::vector<Layer> layers_;
  std::vector<float> inv_freq_;
  std::shared_ptr<const KVQuantizer> kv_quant_;
  DType kv_storage_ = DType::F32;
};

// Which positions forward() returns logits for.
enum class Logits { None, Last, All };

class Session {
 public:
  // `capacity` pre-sizes the KV cache (tokens); it grows on demand either way.
  explicit Session(const Transformer& transformer, int64_t capacity = 0);

  // Tokens processed so far (= the position of the next token).
  int64_t position() const { return position_; }
  // Forgets the sequence (keeps the allocated memory).
  void reset() { position_ = 0; }
  // Forgets the tokens after the first `position` (0 <= position <= position()): the next forward()
  // continues from there, reusing the cached keys and values of the prefix (scoring several
  // continuations of one context).
  void truncate(int64_t position);

  // Runs `tokens` at positions [position(), position() + size) and appends them to the KV cache. Logits
  // go to `logits` ([size][vocab] for All, [vocab] for Last, untouched for None). Long inputs are run in
  // chunks of at most max_chunk() tokens, which bounds scratch memory and gives the same result.
  void forward(std::span<const int32_t> tokens, Logits which, std::vector<float>* logits);

  static constexpr int64_t max_chunk() { return 512; }

 private:
  friend void decode_batch(const Transformer& transformer, std::span<Session* const> sessions,
                           std::span<const int32_t> tokens, std::vector<float>* logits);

  void forward_chunk(const int32_t* tokens, int64_t count, Logits which, float* logits);

  const Transformer& tf_;
  KVCache cache_;
  int64_t position_ = 0;
  RopeAngles angles_;
  // Scratch, [count][width] each.
  std::vector<float> x_, h_, q_, k_, v_, attn_, gate_, up_;
};

// Batched decode: one new token for each session, in lockstep, so every linear layer runs once with
// m = sessions.size() rows (the weights are read once for the whole batch); RoPE, the KV cache and attention
// stay per session (sessions may be at different positions). Every session must belong to `transformer`.
// logits: [B][vocab]. Gives the same result as each session's forward() of its token.
void decode_batch(const Transformer& transformer, std::span<Session* const> sessions,
                  std::span<const int32_t> tokens, std::vector<float>* logits);

}  // namespace lowbit::runtime

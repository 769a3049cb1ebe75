// KV cache quantization for checkpoints with a `kv_cache_scheme`: keys (after RoPE) and values are quantized
// and dequantized as they enter the cache, as compressed-tensors' QuantizedKVCache.forward does
// (forward_quantize(module, key_states, "k", args) before the cache update), so attention reads what an fp8 /
// int8 KV cache would hold.
//   static tensor    k_scale / v_scale of the layer (one value), or one per KV head (attn_head strategy);
//   dynamic tensor   one scale over the keys of this forward call;
//   dynamic token    compressed-tensors reduces a [batch, heads, seq, head_dim] state over all but dims 0
//                    and 1, i.e. one scale per KV head over the tokens of this forward call.
// A "forward call" is one Session chunk (at most Session::max_chunk() tokens; equal to the HF call whenever
// the evaluated window fits in one chunk). KV schemes are symmetric (compressed-tensors requires it).
//
// Static schemes (int8 or fp8 with the checkpoint's k_scale / v_scale) are also *stored* quantized:
// KVCache keeps one byte per value (encode) instead of an fp32 float, 1/4 of the memory, and decode gives
// back exactly the fake-quantized value (code * scale, the same fp32 product fake quantization computes).
// Dynamic schemes have a scale per forward call, so their cache stays fp32 (fake-quantized values).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "formats/compressed_tensors_reader.h"
#include "model/config.h"

namespace lowbit::runtime {

class KVQuantizer {
 public:
  // `scales`: per layer (required when args are static; empty when dynamic).
  KVQuantizer(QuantArgs args, std::vector<formats::KVScales> scales, int64_t num_layers, int64_t kv_heads,
              int64_t head_dim);
  // Null when the checkpoint has no kv_cache_scheme.
  static std::shared_ptr<const KVQuantizer> from_checkpoint(const formats::QuantizedCheckpoint& quant,
                                                            const ModelConfig& config);

  // k and v: [count][kv_heads * head_dim] of `layer`, quantized-dequantized in place.
  void apply(int64_t layer, float* k, float* v, int64_t count) const;
  const QuantArgs& args() const { return args_; }

  // Whether KVCache can store codes (static scales, 8-bit int or fp8).
  bool stores_codes() const;
  // The static scale of tensor `which` (0 keys, 1 values) of `layer` for `kv_head`.
  float scale(int64_t layer, int which, int64_t kv_head) const;
  // The code of a value already fake-quantized with `scale` (so value / scale is a code up to rounding),
  // and back. Int codes are int8 bytes, fp8 codes their bit patterns.
  uint8_t encode(float value, float scale) const;
  float decode(uint8_t code, float scale) const;

 private:
  void apply_one(float* x, int64_t count, const std::vector<float>& scale) const;

  QuantArgs args_;
  std::vector<formats::KVScales> scales_;
  int64_t kv_heads_, head_dim_;
};

}  // namespace lowbit::runtime

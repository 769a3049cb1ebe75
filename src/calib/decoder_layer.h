// One decoder layer held as fp32 copies of its weights, and the forward pass over it that the calibration
// pipeline runs: the layer-sequential pipeline keeps exactly one of these in memory at a time, modifies it
// in place (smoothing scales folded into norms and weights, quantized weights written back) and runs the
// calibration samples through it. Numerics follow runtime/transformer.cc (same kernels: rmsnorm, RoPE,
// causal GQA attention, SwiGLU); each sample is its own sequence starting at position 0.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/dtype.h"
#include "model/model.h"
#include "runtime/gemm_bf16.h"
#include "runtime/rope.h"

namespace lowbit {

// The seven projections of a Llama-shaped layer, in forward order.
enum class LinearSlot { Q, K, V, O, Gate, Up, Down };
inline constexpr LinearSlot kLinearSlots[] = {LinearSlot::Q,   LinearSlot::K,    LinearSlot::V,
                                              LinearSlot::O,   LinearSlot::Gate, LinearSlot::Up,
                                              LinearSlot::Down};

// How the calibration passes multiply. F32: the fp32 weights and activations as they are. BF16: both operands
// rounded to bf16 with fp32 sums (runtime/gemm_bf16.h), which is what a bf16 model computes in torch (and so
// in llm-compressor), and runs on the CPU's AMX tiles where it has them (3-4x the fp32 GEMM on this
// project's machines). Everything between the products (norms, RoPE, attention, SwiGLU, residuals) stays
// fp32 either way.
enum class CalibPrecision { F32, BF16 };

struct LinearF32 {
  std::string name;  // module name, "model.layers.3.mlp.up_proj"
  int64_t rows = 0, cols = 0;
  DType stored_dtype = DType::F32;
  std::vector<float> weight;  // rows x cols
  std::vector<float> bias;    // empty when the module has none

  // BF16 precision: `weight` rounded and packed for the bf16 kernel. Code that changes `weight` must call
  // pack_bf16() again (DecoderLayerF32::refresh_packed); linear_f32 refuses to run on a stale pack.
  std::shared_ptr<kernels::Bf16Weight> packed;  // repacked in place unless a copy of the layer shares it
  uint64_t packed_fingerprint = 0;
  void pack_bf16();
  // A cheap fingerprint of `weight` (its size and 64 evenly spread values) to catch a stale pack.
  uint64_t fingerprint() const;
};

struct DecoderLayerF32 {
  int64_t index = 0;
  std::vector<float> input_norm, post_attention_norm;
  DType norm_dtype = DType::F32;
  LinearF32 q, k, v, o, gate, up, down;
  CalibPrecision precision = CalibPrecision::F32;

  LinearF32& linear(LinearSlot slot);
  const LinearF32& linear(LinearSlot slot) const;
  // Bytes of the fp32 copies (what the pipeline holds resident).
  uint64_t bytes() const;
  // After weights changed: re-packs every linear for BF16 precision (nothing to do for F32).
  void refresh_packed();
};

// Copies layer `index` of the model to fp32 (and packs it for `precision`). The model's mapped pages of
// that layer are released afterwards (TensorStore::release), so a model larger than RAM streams through one
// layer at a time.
DecoderLayerF32 load_decoder_layer(const Model& model, int64_t index,
                                   CalibPrecision precision = CalibPrecision::F32);

// Where a linear's input is observed: q/k/v read one input (reported once, as Q), so do gate/up (as Gate).
enum class InputSite { Attention, O, Mlp, Down };
InputSite input_site(LinearSlot slot);

struct LayerObserver {
  // The input rows of the linears of `site` (called once per sample and site).
  std::function<void(InputSite site, const float* x, int64_t rows, int64_t cols)> on_input;
  // Keys after RoPE and values as they enter the KV cache ([rows x kv_dim] each).
  std::function<void(const float* k, const float* v, int64_t rows)> on_kv;
};

// Scratch buffers for running one sample of up to `max_tokens` through a layer.
class LayerRunner {
 public:
  explicit LayerRunner(const ModelConfig& config);

  // out = layer(x) for one sample of `tokens` rows ([tokens x hidden]); x and out may alias.
  void forward(const DecoderLayerF32& layer, const float* x, int64_t tokens, float* out,
               const LayerObserver* observer = nullptr);
  // Runs the layer only as far as the observer needs (every linear's input), skipping down_proj's
  // product and the residual adds of the output: the observation pass discards the output.
  void observe(const DecoderLayerF32& layer, const float* x, int64_t tokens, const LayerObserver& observer);
  // q, k and v projections, RoPE and causal attention on already normalized input h: attn [tokens x q_dim],
  // the input of o_proj.
  void attention_heads(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* attn,
                       const LayerObserver* observer = nullptr);
  // The attention block on already normalized input h: out = o_proj(attention(q, k, v)) [tokens x hidden].
  void attention_block(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* out,
                       const LayerObserver* observer = nullptr);
  // gate and up projections and SwiGLU on already normalized input h: act = silu(gate(h)) * up(h)
  // [tokens x intermediate], the input of down_proj.
  void mlp_activation(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* act,
                      const LayerObserver* observer = nullptr);
  // The MLP block on already normalized input h: out = down(silu(gate(h)) * up(h)).
  void mlp_block(const DecoderLayerF32& layer, const float* h, int64_t tokens, float* out,
                 const LayerObserver* observer = nullptr, bool run_down = true);
  // rmsnorm with the layer's input / post-attention norm weight.
  void input_norm(const DecoderLayerF32& layer, const float* x, int64_t tokens, float* out) const;
  void post_attention_norm(const DecoderLayerF32& layer, const float* x, int64_t tokens, float* out) const;

 private:
  const ModelConfig& config_;
  std::vector<float> inv_freq_;
  runtime::RopeAngles angles_;
  int64_t angles_tokens_ = -1;
  std::vector<float> h_, q_, k_, v_, attn_, gate_, up_, tmp_, residual_;
};

// y[m x rows] = x[m x cols] * W^T + b, on the global thread pool: with the bf16 kernel when `w` is packed
// (throws when `weight` changed since it was packed), else in fp32.
void linear_f32(const LinearF32& w, const float* x, int64_t m, float* y);
// The same for several linears reading one input (q, k, v; gate, up), ys[i] = linear_f32(*ws[i], x):
// when all are packed, x is rounded and packed for the bf16 kernel once.
void linear_f32_shared_input(std::initializer_list<std::pair<const LinearF32*, float*>> outputs,
                             const float* x, int64_t m);

}  // namespace lowbit

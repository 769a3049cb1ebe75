// SmoothQuant (Xiao et al. 2022, arXiv 2211.10438) as pure functions, and the weight folding helpers that
// SmoothQuant and AWQ (quant/awq.h) share. The calibration pipeline (src/calib) collects the statistics and
// owns the model; nothing here needs the model.
//
// Semantics follow llm-compressor 0.14 (modifiers/transform/smoothquant/base.py, SmoothQuantModifier):
//
//   activation statistic   the per-channel dynamic range of the smooth layer's OUTPUT (= the balance
//                          layers' input) over all calibration tokens: range_j = max_t x_tj - min_t x_tj
//                          (not max |x_j| as in the paper; for activations symmetric around 0 it is
//                          2 max |x_j|). Use smoothquant_activation_range() on the running min / max.
//   weight statistic       w_j = 2 * max over balance layers of max_i |W_ij| (the factor 2 is
//                          llm-compressor's: the weight range, matching the activation range)
//   scale                  s_j = range_j^alpha / w_j^(1 - alpha)   where w_j > 0
//                          s_j = range_j                            where w_j == 0 (an all-zero column)
//                          then s_j = max(s_j, 1e-5)                (MINIMUM_SMOOTHING_SCALE: a channel
//                          that never fires would otherwise get s = 0 and a division by zero)
//   folding                smooth layer (RMSNorm weight, or a Linear's rows and bias) divided by s,
//                          every balance layer's columns multiplied by s. X W^T = (X / s)(W s)^T.
//   alpha                  `smoothing_strength`, default 0.5 (lowbit: --smoothing-strength).
//
// With alpha = 0.5 and symmetric activations the scale equals the paper's max|X_j|^a / max|W_j|^(1-a)
// exactly; for other alphas llm-compressor's ranges differ from the paper's maxima by the global factor
// 2^(2 alpha - 1), which does not change the quantized model's accuracy in a meaningful way (per-token /
// per-channel dynamic qparams absorb it). We follow llm-compressor.
//
// Default mappings (llm-compressor DEFAULT_SMOOTHQUANT_MAPPINGS, used for Llama, Mistral, Qwen2/3 dense):
//   input_layernorm          -> q_proj, k_proj, v_proj
//   post_attention_layernorm -> gate_proj, up_proj
// (no v_proj -> o_proj or up_proj -> down_proj: those are AWQ mappings, see quant/awq.h). Mixtral and
// Qwen MoE use only the first mapping.
//
// Deviation: llm-compressor evaluates the scale in the model's dtype (bf16 for a bf16 checkpoint); we use
// double precision and return float. The folded model is equivalent either way; the scales differ from a
// bf16 run by bf16 rounding (< 0.4 %). llm-compressor's alternative `algorithm="log_equalization"` is not
// implemented.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lowbit {

// A row-major [out_features, in_features] fp32 weight (not owned).
struct WeightRef {
  const float* data;
  int64_t rows, cols;
};

// range_j = ch_max[j] - ch_min[j] (the statistic llm-compressor's hooks keep: running per-channel min and
// max of the smooth layer's output).
std::vector<float> smoothquant_activation_range(const float* ch_min, const float* ch_max, int64_t cols);

// The smoothing scales s (cols entries) for one mapping; see the header comment. `act_range` is the
// per-channel activation range (max - min); every balance layer must have `cols` columns. alpha in [0, 1].
// Throws lowbit::Error on shape mismatches, no balance layers, alpha outside [0, 1], or a negative / NaN
// range.
std::vector<float> smoothquant_scales(const float* act_range, int64_t cols,
                                      std::span<const WeightRef> balance, float alpha = 0.5f);

// ---- folding helpers (the model stays mathematically equivalent before quantization) ---------------------

// RMSNorm / LayerNorm weight: norm_weight[j] /= s[j].
void divide_norm_weight(float* norm_weight, const float* s, int64_t n);

// W[:, j] *= s[j] for a row-major rows x cols weight (a balance layer).
void scale_columns(float* w, int64_t rows, int64_t cols, const float* s);

// W[i, :] /= s[i] and bias[i] /= s[i] (bias may be null): a Linear smooth layer (v_proj, up_proj) whose
// output channels feed the balance layer's input channels; s has `rows` entries.
void divide_rows(float* w, int64_t rows, int64_t cols, float* bias, const float* s);

}  // namespace lowbit

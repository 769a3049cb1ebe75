// AWQ (Lin et al. 2023, arXiv 2306.00978) as pure functions: the activation-aware scale formula, its grid
// search over a caller-supplied loss, the scaled fake quantization the search evaluates, the output error
// of single-Linear parents through their Hessian, and AutoAWQ's weight clipping search. src/calib owns the
// model, runs the parent blocks and applies the result with the folding helpers of quant/smoothquant.h.
//
// ---- What llm-compressor 0.14 does (modifiers/transform/awq/base.py), followed here ----------------------
//
// Mappings (default_mappings, Llama family), smooth layer -> balance layers, parent = lowest common
// ancestor of the balance layers (its output is what the loss compares):
//   input_layernorm          -> q_proj, k_proj, v_proj     parent self_attn
//   v_proj                   -> o_proj                     parent o_proj (a single Linear); SKIPPED when
//                                                          v_proj.out_features != o_proj.in_features,
//                                                          i.e. for every GQA model (lowbit-ref-100m too)
//   post_attention_layernorm -> gate_proj, up_proj         parent mlp
//   up_proj                  -> down_proj                  parent down_proj (a single Linear)
//
// x_mean    per input channel, mean over all calibration tokens of |x| where x is the input of the first
//           balance layer (the smooth layer's output), accumulated in fp32. The caller supplies it.
// w_mean    awq_weight_mean(): every balance layer's |W| is normalized per quantization group (chunk of
//           group_size consecutive inputs of one row; a whole row for channel quantization) by its
//           max + 1e-6, then summed over the rows of all balance layers (fp64) and divided by the total
//           number of rows. A per-input-channel vector.
// scales    awq_scales(), for one grid point (ratio r, duo):
//             duo:      s = max(x_mean^r / (w_mean^(1-r) + 1e-4), 1e-4)
//             not duo:  s = max(x_mean^r, 1e-4)
//           then s = s / sqrt(max(s) * min(s)), and inf / NaN entries set to 1 (a NaN anywhere poisons
//           max / min and so every entry, exactly as torch does).
// grid      duo_scaling = true (llm-compressor's default): (0, no duo) first, the identity scales, then
//           r = i / (n_grid - 2) with duo for i = 0 .. n_grid - 2, i.e. n_grid points, r = 1 included.
//           duo_scaling = false: r = i / (n_grid - 1), i = 0 .. n_grid - 1.
//           "both": m = n_grid / 2; for i < m: (i / (m - 1), no duo), (i / (m - 1), duo).
//           n_grid defaults to 20. (AutoAWQ uses r = i / n_grid for i < n_grid, so r < 1; we follow
//           llm-compressor.) duo_scaling with tensor-strategy weights is rejected by llm-compressor; the
//           caller should do the same. Balance layers that the scheme does not target are left out of
//           w_mean and of the candidate quantization; a mapping with none targeted is skipped.
// candidate each balance layer W becomes Q(W * s) / s: W * s is rounded to the weight dtype, quantized
//           with a memoryless min-max observer (plain RTN qparams per tensor / channel / group; during the
//           search llm-compressor swaps whatever observer the scheme names for memoryless_minmax) and
//           divided by s: awq_fake_quantize_scaled().
// loss      mean squared error between the parent's outputs with the original and the candidate weights
//           over all calibration tokens: sum of squares / (tokens * out_features). The best grid point is
//           the first with the strictly smallest loss; NaN and inf losses never win; if no loss is finite
//           the search fails. For a single-Linear parent the loss equals
//           linear_output_error(W, Q(Ws)/s, H) / (tokens * rows) with H = sum_t x_t x_t^T.
// apply     balance layers W <- W * s (scale_columns), smooth layer <- / s (divide_norm_weight, or
//           divide_rows with its bias for v_proj / up_proj); the quantization modifier then quantizes the
//           scaled weights. llm-compressor 0.14 does NOT clip weights.
//
// Deviations: scales are computed in double and returned as float (llm-compressor: fp32 x_mean, fp64
// w_mean, so duo scales are fp64 and non-duo scales fp32; W * s then uses those); awq_weight_mean in
// ComputeDType::BF16 reproduces the bf16 normalization of a bf16 model, F32 that of an fp32 model. The
// loss of a bf16 model is computed by llm-compressor on bf16 outputs; linear_output_error on fp32 products of
// the weight differences (relative error ~1e-6).
// tools/reference/awq_reference.py --cross-check runs llm-compressor's own _compute_best_scale on the
// golden single-Linear case and gets the same choice and scales (to 1e-7).
//
// ---- Clipping (AutoAWQ auto_clip, not in llm-compressor; issue 4 asks for it) ---------------------------
//
// awq_clip_search(): per output row and input group (the whole row for channel quantization), try the
// thresholds t_i = max|w_group| * (1 - i / n_grid) for i < int(max_shrink * n_grid) (20 and 0.5: ten
// steps, 1.0 down to 0.55); candidate i clamps the group to [-t_i, t_i], fake-quantizes it with the scheme's
// RTN quantizer, and its error is the squared error of the group's partial output over the calibration
// tokens, (q - w)^T H_gg (q - w) with H_gg the group's diagonal block of H (H_gg (q - w) in fp32, the dot
// product in double: the ten candidates are ranked by it, and the reference model's AWQ export is
// byte-identical to the one from fp64 products). The first smallest error wins
// (i = 0, no clipping, is the baseline, so clipping never increases a group's error) and w is clamped in
// place. Differences from AutoAWQ: the error uses every calibration token exactly through H instead of
// 512 sampled tokens (AutoAWQ's error is the mean over tokens; the sum ranks the same); the quantizer is
// the scheme's compressed-tensors RTN (what lowbit exports) instead of AutoAWQ's own asymmetric formula;
// thresholds are computed in double and rounded once to the compute dtype; AutoAWQ starts from an error
// of 1e9 rather than the unclipped error (identical unless that error exceeds 1e9). As in AutoAWQ, run it
// after the AWQ scales are applied, with the Hessian of the scaled inputs (divide_hessian), and skip q_proj /
// k_proj (AutoAWQ avoids clipping them: attention logits are too sensitive).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "quant/quant_args.h"
#include "quant/quantizer_ref.h"
#include "quant/smoothquant.h"

namespace lowbit {

// llm-compressor's duo_scaling: false, true (default) or "both".
enum class AwqDuoScaling { Off, On, Both };

struct AwqGridPoint {
  double ratio = 0;
  bool duo = false;
};

// The grid points in search order (see the header comment). Throws when n_grid is too small for the mode
// (Off: >= 2, On: >= 3, Both: >= 4).
std::vector<AwqGridPoint> awq_grid(int n_grid, AwqDuoScaling duo);

// w_mean (cols entries) over the balance layers, all of which must have the same number of columns.
// group_size > 0 and < cols: group quantization (must divide cols); -1, 0 or cols: channel quantization.
// dt = BF16 rounds |W|, max + 1e-6 and the quotient to bf16 as a bf16 model does.
std::vector<float> awq_weight_mean(std::span<const WeightRef> balance, int64_t group_size,
                                   ComputeDType dt = ComputeDType::F32);

// The scales for one grid point. w_mean may be null when !duo_scaling. ratio in [0, 1].
std::vector<float> awq_scales(const float* x_mean, const float* w_mean, int64_t cols, double ratio,
                              bool duo_scaling);

struct AwqSearchResult {
  float best_ratio = 0;
  bool best_duo = false;
  std::vector<float> scales;  // of the best grid point
  double best_loss = 0;
  double initial_loss = 0;         // loss of the first grid point (identity scales in the On / Off modes)
  std::vector<AwqGridPoint> grid;  // every grid point evaluated, in order
  std::vector<double> losses;      // loss of each grid point
};

// Grid search: for every point of awq_grid(n_grid, duo) calls loss(scales) and keeps the first minimum.
// Throws lowbit::Error when no loss is finite. w_mean may be null when duo is Off.
AwqSearchResult awq_search(const float* x_mean, const float* w_mean, int64_t cols, int n_grid,
                           AwqDuoScaling duo,
                           const std::function<double(const std::vector<float>& scales)>& loss);
// duo_scaling true = AwqDuoScaling::On, false = Off.
AwqSearchResult awq_search(const float* x_mean, const float* w_mean, int64_t cols, int n_grid,
                           bool duo_scaling,
                           const std::function<double(const std::vector<float>& scales)>& loss);

// out = Q(W diag(s)) diag(s)^-1 for a row-major rows x cols weight, Q = RTN with min-max qparams of `args`
// (tensor / channel / group strategy, int or fp8). W * s and Q / s are computed in double and stored as
// torch stores them (F32: float; BF16: through float to bf16, as torch converts an fp64 product into a bf16
// weight); the golden test checks both modes bit for bit against torch + compressed-tensors (up to the
// sign of zero). With s = 1 this is exactly plain RTN fake quantization. out may alias w.
void awq_fake_quantize_scaled(const float* w, int64_t rows, int64_t cols, const float* s,
                              const QuantArgs& args, ComputeDType dt, float* out);

// sum over rows of (w_new - w_ref)_r H (w_new - w_ref)_r^T = ||(W_new - W_ref) X^T||_F^2 for H = X^T X
// (cols x cols, row-major, fp64, symmetric), cheaper than running tokens once tokens > cols: it forms the
// lower half of D^T D (D = W_new - W_ref, exact in fp32 for bf16 weights) by tiles in fp32 GEMMs, rows *
// cols^2 / 2 multiply-adds, and sums H_ij (D^T D)_ij in fp64, in parallel on the global pool. Relative error
// about 1e-6 (fp32 products summed over `rows`); the result does not depend on the number of threads.
double linear_output_error(const float* w_ref, const float* w_new, int64_t rows, int64_t cols,
                           const double* hessian);

// H_ij /= (s_i s_j): the Hessian of the inputs X / s after an AWQ scale was folded into the weight.
void divide_hessian(double* hessian, int64_t cols, const float* s);

// AutoAWQ's clipping search (see the header comment); w (rows x cols) is clamped in place. args must be
// channel or group strategy. Returns the mean over (row, group) cells with a nonzero unclipped error of
// the relative error reduction 1 - best / unclipped. When `thresholds` is given it receives the chosen
// threshold per (row, group), rows x groups (the group's max |w| where no clipping won).
double awq_clip_search(float* w, int64_t rows, int64_t cols, const QuantArgs& args, ComputeDType dt,
                       const double* hessian, int n_grid = 20, float max_shrink = 0.5f,
                       std::vector<float>* thresholds = nullptr);

}  // namespace lowbit

// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers", Algorithm 1) as a pure function of one Linear weight and its input Hessian, with
// llm-compressor 0.14's semantics (modifiers/gptq/gptq_quantize.py, helpers.py):
//
//   Hessian    H = 2/N * sum_x x x^T over the calibration input rows x of the module. N is the number of
//              calibration samples (HessianAccumulator::add calls), as llm-compressor counts batch items,
//              not tokens. The scale of H does not change GPTQ's result: damping is relative to mean(diag).
//   qparams    computed ONCE, before the column loop, by the weight observer (memoryless min-max, or the
//              MSE search when args.observer says so) on the original weights, exactly like RTN. This is
//              what llm-compressor 0.14 does (module.weight_observer.get_qparams() is passed into
//              quantize_weight); the IST-DASLab/AutoGPTQ variant that recomputes a group's qparams from the
//              error-updated weights when the loop reaches it is not what llm-compressor does and is not
//              implemented.
//   dead cols  diag(H) == 0: H[c][c] = 1 and column c of the weight is zeroed (after the qparams were
//              observed, so they still see its original values); its codes are then the code of 0.
//   damping    lambda = dampening_frac * mean(diag(H)) (after the dead-column fix) added to the diagonal;
//              Hinv = upper Cholesky factor U of H^-1 (U^T U = H^-1), computed in fp64 from one dpotrf and
//              one dtrtri of the reversed matrix (gptq_factor.cc; half the work of llm-compressor's
//              cholesky / cholesky_inverse / cholesky, same factor up to rounding). When a factorization
//              fails the damping is multiplied by 10 and retried (GptqOptions::damping_retries times;
//              llm-compressor does not retry, use 0 for that), then GPTQ falls back to round-to-nearest: Hinv
//              = I, which gives exactly the RTN codes for the same qparams and column grouping
//              (GptqStats::fell_back_to_rtn, ::warning).
//   loop       columns in blocks of block_size; inside a block column i is quantized with its cell's
//              qparams, err = (w - q) / Hinv[i][i], and the rest of the block is updated with
//              err * Hinv[i][i+1:]; after the block the remaining columns get one GEMM update
//              W[:, i2:] -= Err * Hinv[i1:i2, i2:] (lazy batch updates, paper section 3.4). The loop runs in
//              fp32 like llm-compressor (GPTQ_PRECISION), with Hinv rounded to fp32.
//   actorder   Weight ("static"): columns are processed in descending diag(H) order (stable sort: ties keep
//              their index order), each column keeps the qparams of its original group c / group_size, so
//              the format is unchanged and no g_idx is exported.
//              Group ("dynamic"; llm-compressor 0.14 / compressed-tensors 0.19 reject it, older releases
//              and vLLM's act-order kernels use it): columns are permuted first and the groups are formed in
//              the permuted order: scales[:, j] belong to the permuted columns perm[j*gs .. (j+1)*gs),
//              observed on those columns. The weight (and the codes) are returned in the original column
//              order with g_idx[c] = position_of_c_in_perm / gs, i.e. older llm-compressor's
//              `g_idx = arange(cols) // gs` followed by `g_idx[argsort(perm)]`.
//              Dequantization: column c uses scales[:, g_idx[c]] (compressed-tensors' weight_g_idx).
//              With a tensor or channel strategy there are no groups and Group behaves like Weight.
//              GptqOptions::actorder overrides args.actorder; when both are set they must agree.
//
// Quantize / dequantize arithmetic (compressed-tensors fake_quantize inside GPTQ): the working weights are
// fp32 (bf16 weights are first upcast exactly), so code = round_half_even(clamp(w / s + zp, qmin, qmax)) is
// computed in fp32 even for a bf16 model; the value propagated as "q" is (code - zp) * s in the scale's
// dtype, i.e. rounded to bf16 for ComputeDType::BF16 (the scales a bf16 model stores are bf16 values). That
// value is exactly ModuleQuantization::dequantize(), so the exported codes reproduce GPTQ's weights bit for
// bit. (llm-compressor itself stores the bf16 fake-quantized weight and compressed-tensors re-quantizes it
// in bf16 arithmetic, which for int8 can in principle move a code by one; lowbit exports GPTQ's codes.)
//
// Checked against: tools/reference/gptq_reference.py (independent numpy; golden fixture, codes exact) and,
// through it, llm-compressor 0.14's own quantize_weight (identical codes for actorder none / weight, fp32
// and bf16; see the script's --cross-check).
//
// Float (fp8 e4m3 / e5m2, symmetric) weights are supported the same way: the column is rounded to the fp8
// grid (clamp(w / s), round to nearest even fp8) and dequantized as fp8 * s.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "quant/model_quantizer.h"
#include "quant/quant_args.h"
#include "quant/scheme.h"
#include "runtime/gemm_bf16.h"

namespace lowbit {

struct GptqOptions {
  int64_t block_size = 128;
  double dampening_frac = 0.01;      // of the mean Hessian diagonal
  std::optional<ActOrder> actorder;  // nullopt: the scheme's weights.actorder (none when unset)
  int damping_retries = 3;           // Cholesky failures retried with 10x the damping before RTN
};

// Accumulates H = 2/N * sum x x^T over calibration input rows. add() multiplies the sample's rows in fp32
// (the lower triangle, on the global pool: runtime/gemm_bf16.h) and adds the products into an fp64
// accumulator, so rounding grows with the tokens of one sample only, never with the number of samples.
// With bf16_inputs the rows are first rounded to bf16, as the linears of a bf16 calibration pass see them
// (llm-compressor's Hessians are products of the bf16 activations too); that product runs on AMX tiles
// where the CPU has them, accumulating in fp32 over up to 8192 rows before each fp64 flush
// (kernels::Bf16Gram); prefers_batches() says whether batching rows before add() pays.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols, bool bf16_inputs = false);

  // One calibration sample: rows x cols fp32 inputs, row-major ([tokens, in_features]). rows may be 0
  // (the sample still counts). Non-finite inputs are rejected.
  void add(const float* x, int64_t rows);

  int64_t cols() const { return cols_; }
  int64_t samples() const { return samples_; }
  int64_t rows_seen() const { return rows_seen_; }
  // Whether add() prefers large blocks of rows (the sgemm paths) over one sample at a time (AMX tiles).
  bool prefers_batches() const { return !gram_ || !gram_->accumulates_in_tiles(); }
  // cols x cols, symmetric, 2/N * sum x x^T. Throws when no sample was added.
  std::vector<double> hessian() const;

 private:
  int64_t cols_;
  bool bf16_inputs_ = false;
  std::unique_ptr<kernels::Bf16Gram> gram_;  // bf16_inputs only; flushed (mutably) by hessian()
  int64_t samples_ = 0;
  int64_t rows_seen_ = 0;
  mutable std::vector<double> sum_;  // lower triangle (row >= col) of sum x x^T, row-major cols x cols
};

struct GptqStats {
  double loss = 0;        // llm-compressor's loss: sum over rows and columns of err^2 / 2
  double damping = 0;     // the lambda finally added to the diagonal
  int dead_columns = 0;   // columns with diag(H) == 0
  int damping_tries = 0;  // factorizations attempted (1 when the first succeeded)
  bool fell_back_to_rtn = false;
  std::string warning;  // non-empty when GPTQ had to retry or fell back
};

// Quantizes w (rows x cols fp32, row-major, [out_features, in_features]) with scheme.weights (int 2..8
// bits symmetric or asymmetric, or fp8 symmetric; tensor, channel or group strategy, group size dividing
// cols) using hessian (cols x cols fp64, e.g. HessianAccumulator::hessian()). weight_dtype is the stored
// dtype of the original weight: it selects the arithmetic (compute_dtype_for) as in quantize_module_rtn;
// for BF16 the weights are rounded to bf16 first. The result is filled like quantize_module_rtn's (codes,
// scales, zero points, grid, weight_dtype, compute) plus g_idx for actorder group; `scheme` must outlive it.
// Throws lowbit::Error (naming `name`) on a missing weight scheme, unsupported args, a null or non-finite
// Hessian, non-finite weights or bad options.
ModuleQuantization gptq_quantize(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                 DType weight_dtype, const QuantScheme& scheme, const double* hessian,
                                 const GptqOptions& options, GptqStats* stats = nullptr);

// The same with the Hessian's size checked: throws unless hessian.size() == cols * cols.
ModuleQuantization gptq_quantize(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                 DType weight_dtype, const QuantScheme& scheme,
                                 const std::vector<double>& hessian, const GptqOptions& options,
                                 GptqStats* stats = nullptr);

// The GPTQ factor: the upper Cholesky factor U of (H + lambda I)^-1 (U^T U = (H + lambda I)^-1), in place
// on h (n x n, symmetric, row-major; the strict lower triangle is zeroed). Returns false, with h
// unspecified, when H + lambda I is not numerically positive definite. Exposed for tests.
bool gptq_inverse_factor(std::vector<double>& h, int64_t n, double lambda);

}  // namespace lowbit

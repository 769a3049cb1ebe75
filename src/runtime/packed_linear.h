// Linear layers whose quantized weights stay packed in memory (formats::StoredWeight, read with
// ReadOptions::keep_packed) and run through kernels_packed.h: the codes are the checkpoint's mapped bytes,
// used in place (no re-layout, no copy); what is built at load is small: fp32 scales and the folded zero
// terms ([out][groups] floats each, 1/32 of the int4 codes' size at group 128).
//
// Activations: weight-only schemes (W4A16, W8A16) multiply fp32 activations. W8A8 (int8 symmetric
// per-channel weights, int8 symmetric per-token or per-tensor inputs) quantizes the activations to int8 codes
// with the quant library's own quantizer (the same codes and scales that fake quantization rounds to) and
// multiplies in integers. Other input schemes (fp8 activations, asymmetric inputs) apply the fake
// quantization of runtime/quantized_linear.h and then the fp32-activation kernels.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "formats/compressed_tensors_reader.h"
#include "runtime/kernels_packed.h"
#include "runtime/linear.h"
#include "runtime/quantized_linear.h"

namespace lowbit::runtime {

class PackedLinear final : public LinearWeight {
 public:
  // `stored.codes` is referenced (it must outlive this object); `bias` is converted to fp32.
  PackedLinear(const formats::StoredWeight& stored, const std::optional<TensorView>& bias,
               std::optional<ActivationQuantizer> input);
  int64_t out_features() const override { return w_.rows; }
  int64_t in_features() const override { return w_.cols; }
  void forward(const float* x, int64_t m, float* y) const override;
  uint64_t weight_bytes() const override;
  const kernels::PackedMatrix& matrix() const { return w_; }
  // True when forward() multiplies int8 activation codes (W8A8).
  bool integer_activations() const { return int8_inputs_; }
  // True when forward() multiplies x as given (weight-only schemes): kernels::packed_linear of matrix().
  bool weight_only() const { return !input_; }
  // W8A8 makes integer codes of x instead of rounding it: none.
  const ActivationQuantizer* input_rounding() const override {
    return input_ && !int8_inputs_ ? &*input_ : nullptr;
  }
  void forward_rounded(const float* xq, int64_t m, float* y) const override;
  const float* bias() const { return bias_.empty() ? nullptr : bias_.data(); }

 private:
  void forward_int8(const float* x, int64_t m, float* y) const;

  kernels::PackedMatrix w_;
  uint64_t code_bytes_ = 0;
  std::vector<float> scales_, zero_terms_, bias_;
  std::vector<int32_t> row_code_sums_;          // W8A8 only
  std::vector<uint64_t> zero_exponent_chunks_;  // E4M3 on the table decoder only
  std::optional<ActivationQuantizer> input_;
  bool int8_inputs_ = false;
};

// Linears that read the same input x (q/k/v, gate/up): outputs[j] = linears[j](x). When all are weight-only
// PackedLinear, one kernels::packed_linear_shared_input call (at decode sizes, x rounded once and one
// parallel region for all); when all round x the same dynamic way first (FP8_DYNAMIC), x is rounded once
// for all of them; otherwise one forward() each.
void forward_shared_input(const float* x, int64_t m, std::span<const LinearWeight* const> linears,
                          std::span<float* const> outputs);

// A LinearFactory for a checkpoint opened with keep_packed: modules with a StoredWeight become PackedLinear,
// the others what make_quantized_linear_factory makes (QuantizedLinear over dequantized weights, or dense).
LinearFactory make_packed_linear_factory(std::shared_ptr<const formats::QuantizedCheckpoint> quant);

}  // namespace lowbit::runtime

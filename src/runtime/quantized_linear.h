// The fake-quant evaluation path of a quantized Linear module: the weight is the matrix dequantized from the
// checkpoint's codes (formats/compressed_tensors_reader.h), and the input activations are quantized and
// dequantized before the matmul exactly as the module's scheme says, as compressed-tensors'
// quantized_forward does:
//   dynamic (W8A8, FP8_DYNAMIC): qparams from the data, per token (each row's absmax) or per tensor;
//   static (FP8): the stored input_scale (and input_zero_point when asymmetric), per tensor.
// Activations are fp32 in lowbit's runtime, so the quantize-dequantize runs in fp32 (a bf16 torch model
// rounds x / scale to bf16 first; the codes can differ in rare ties).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "formats/compressed_tensors_reader.h"
#include "runtime/linear.h"

namespace lowbit::runtime {

// Fake quantization of activations x [rows x cols] in place, for one module's input args.
class ActivationQuantizer {
 public:
  // `scale` / `zero_point`: the static qparams (ignored when args are dynamic; required otherwise).
  ActivationQuantizer(QuantArgs args, std::vector<float> scale, std::vector<int8_t> zero_point);
  void apply(float* x, int64_t rows, int64_t cols) const;
  const QuantArgs& args() const { return args_; }
  const std::vector<float>& scale() const { return scale_; }  // static qparams (empty when dynamic)

 private:
  QuantArgs args_;
  std::vector<float> scale_;
  std::vector<int8_t> zero_point_;
};

class QuantizedLinear final : public LinearWeight {
 public:
  // `module` holds the dequantized weight (referenced, as DenseLinear does); `input` may be empty
  // (weight-only schemes).
  QuantizedLinear(const LinearModule& module, std::optional<ActivationQuantizer> input);
  int64_t out_features() const override { return dense_.out_features(); }
  int64_t in_features() const override { return dense_.in_features(); }
  void forward(const float* x, int64_t m, float* y) const override;
  uint64_t weight_bytes() const override { return dense_.weight_bytes(); }
  const ActivationQuantizer* input_rounding() const override { return input_ ? &*input_ : nullptr; }
  void forward_rounded(const float* xq, int64_t m, float* y) const override { dense_.forward(xq, m, y); }
  const std::optional<ActivationQuantizer>& input_quantizer() const { return input_; }

 private:
  DenseLinear dense_;
  std::optional<ActivationQuantizer> input_;
};

// A LinearFactory for a checkpoint opened by formats::open_compressed_tensors: its quantized modules become
// QuantizedLinear (with input quantization when their scheme has it), the others DenseLinear.
LinearFactory make_quantized_linear_factory(std::shared_ptr<const formats::QuantizedCheckpoint> quant);

}  // namespace lowbit::runtime

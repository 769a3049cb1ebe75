// The linear layers of the runtime behind one small interface, so that quantized formats (W8A8, W4A16,
// FP8 ...) can replace the dense weights of a model without the forward pass knowing. DenseLinear is the
// stored F32/BF16/F16 matrix, used in place (mmap), through kernels::linear; quantized checkpoints add
// QuantizedLinear (runtime/quantized_linear.h, dequantized weights) and PackedLinear
// (runtime/packed_linear.h, packed codes).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/model.h"
#include "runtime/kernels.h"

namespace lowbit::runtime {

class ActivationQuantizer;  // runtime/quantized_linear.h

class LinearWeight {
 public:
  virtual ~LinearWeight() = default;
  virtual int64_t out_features() const = 0;
  virtual int64_t in_features() const = 0;
  // y[m x out] = x[m x in] * W^T (+ bias); x and y row-major and dense.
  virtual void forward(const float* x, int64_t m, float* y) const = 0;
  // Bytes of weight data one forward() streams from memory (codes, scales, bias): what decode reads.
  virtual uint64_t weight_bytes() const = 0;
  // The fake quantization forward() applies to x before its product (FP8 activations ...), or null; and
  // forward() for an x that has been through it already. forward_shared_input rounds an input that
  // several such linears read once.
  virtual const ActivationQuantizer* input_rounding() const { return nullptr; }
  virtual void forward_rounded(const float* xq, int64_t m, float* y) const { forward(xq, m, y); }
};

class DenseLinear final : public LinearWeight {
 public:
  // The weight is referenced, not copied (it must outlive this object); the bias is converted to fp32.
  explicit DenseLinear(const LinearModule& module);
  int64_t out_features() const override { return weight_.rows; }
  int64_t in_features() const override { return weight_.cols; }
  void forward(const float* x, int64_t m, float* y) const override;
  uint64_t weight_bytes() const override;
  const kernels::DenseWeight& weight() const { return weight_; }

 private:
  kernels::DenseWeight weight_;
  std::vector<float> bias_;  // empty when the module has no bias
};

// Builds the runtime weight of one module; the default makes a DenseLinear. A quantized model passes a
// factory that recognises its modules.
using LinearFactory = std::function<std::unique_ptr<LinearWeight>(const LinearModule&)>;
std::unique_ptr<LinearWeight> make_dense_linear(const LinearModule& module);

// The stored matrix of a float tensor as a kernels::DenseWeight (rows = shape[0]).
kernels::DenseWeight dense_weight(const TensorView& view);
// A small float tensor (norm weight, bias) converted to fp32.
std::vector<float> to_f32(const TensorView& view);

}  // namespace lowbit::runtime

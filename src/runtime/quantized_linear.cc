#include "runtime/quantized_linear.h"

#include <cstring>

#include "quant/quantizer.h"
#include "util/error.h"

namespace lowbit::runtime {

ActivationQuantizer::ActivationQuantizer(QuantArgs args, std::vector<float> scale,
                                         std::vector<int8_t> zero_point)
    : args_(std::move(args)), scale_(std::move(scale)), zero_point_(std::move(zero_point)) {
  if (!args_.is_dynamic()) {
    if (args_.strategy != QuantStrategy::Tensor) {
      fail("static input activation quantization with strategy {} is not supported (per tensor only)",
           to_string(args_.strategy));
    }
    if (scale_.size() != 1)
      fail("static input activation quantization needs one scale, got {}", scale_.size());
    if (!args_.symmetric && zero_point_.size() != 1)
      fail("asymmetric static input quantization needs a zero point");
  } else if (args_.strategy != QuantStrategy::Token && args_.strategy != QuantStrategy::Tensor) {
    fail("dynamic input activation quantization with strategy {} is not supported (token or tensor)",
         to_string(args_.strategy));
  }
}

void ActivationQuantizer::apply(float* x, int64_t rows, int64_t cols) const {
  if (args_.is_dynamic()) {
    fake_quantize_dynamic(x, rows, cols, args_, x);
  } else {
    // fake_quantize reads x and writes out; the per-tensor grid makes in-place safe element by element, but
    // the contract does not promise it, so go through a copy.
    std::vector<float> in(x, x + rows * cols);
    fake_quantize(in.data(), rows, cols, args_, scale_.data(),
                  zero_point_.empty() ? nullptr : zero_point_.data(), x);
  }
}

QuantizedLinear::QuantizedLinear(const LinearModule& module, std::optional<ActivationQuantizer> input)
    : dense_(module), input_(std::move(input)) {}

void QuantizedLinear::forward(const float* x, int64_t m, float* y) const {
  if (!input_) {
    dense_.forward(x, m, y);
    return;
  }
  const int64_t k = in_features();
  std::vector<float> xq(x, x + m * k);
  input_->apply(xq.data(), m, k);
  dense_.forward(xq.data(), m, y);
}

LinearFactory make_quantized_linear_factory(std::shared_ptr<const formats::QuantizedCheckpoint> quant) {
  return [quant](const LinearModule& module) -> std::unique_ptr<LinearWeight> {
    const formats::QuantizedModule* qm = quant->module(module.name);
    if (qm == nullptr) return make_dense_linear(module);
    std::optional<ActivationQuantizer> input;
    if (qm->scheme.input_activations) {
      try {
        input.emplace(*qm->scheme.input_activations, qm->input_scale, qm->input_zero_point);
      } catch (const Error& e) {
        fail("module {}: {}", module.name, e.what());
      }
    }
    return std::make_unique<QuantizedLinear>(module, std::move(input));
  };
}

}  // namespace lowbit::runtime

#include "runtime/linear.h"

#include "util/error.h"

namespace lowbit::runtime {

kernels::DenseWeight dense_weight(const TensorView& view) {
  if (view.shape.size() != 2) fail("tensor {}: expected a 2-D weight matrix", view.name);
  if (view.data == nullptr && view.numel() > 0)
    fail("tensor {} has no data: its module was loaded packed and runs through runtime/packed_linear.h",
         view.name);
  kernels::DenseWeight w;
  w.dtype = view.dtype;
  w.data = view.data;
  w.rows = view.shape[0];
  w.cols = view.shape[1];
  return w;
}

std::vector<float> to_f32(const TensorView& view) {
  std::vector<float> out(static_cast<size_t>(view.numel()));
  convert_to_f32(view.dtype, view.data, out.data(), out.size());
  return out;
}

DenseLinear::DenseLinear(const LinearModule& module) : weight_(dense_weight(module.weight)) {
  if (module.bias) bias_ = to_f32(*module.bias);
}

void DenseLinear::forward(const float* x, int64_t m, float* y) const {
  kernels::linear(x, m, weight_, bias_.empty() ? nullptr : bias_.data(), y);
}

uint64_t DenseLinear::weight_bytes() const {
  return static_cast<uint64_t>(weight_.rows * weight_.cols) * dtype_size(weight_.dtype) + bias_.size() * 4;
}

std::unique_ptr<LinearWeight> make_dense_linear(const LinearModule& module) {
  return std::make_unique<DenseLinear>(module);
}

}  // namespace lowbit::runtime

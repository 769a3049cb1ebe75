#include "sensitivity/module_bytes.h"

#include "quant/pack.h"
#include "quant/plan.h"
#include "quant/scale_grid.h"
#include "util/error.h"

namespace lowbit::sensitivity {
namespace {

// The writer's scale dtype (compressed-tensors keeps qparams in the weight's float dtype, else f16).
uint64_t scale_size(DType weight) {
  return weight == DType::BF16 || weight == DType::F16 || weight == DType::F32 ? dtype_size(weight) : 2;
}

}  // namespace

uint64_t dense_bytes(int64_t rows, int64_t cols, DType weight_dtype) {
  return static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) * dtype_size(weight_dtype);
}

uint64_t quantized_bytes(const QuantScheme& scheme, int64_t rows, int64_t cols, DType weight_dtype,
                         std::string_view format) {
  if (!scheme.weights) fail("module bytes: the scheme quantizes no weights");
  const QuantArgs& w = *scheme.weights;
  const std::string fmt =
      format.empty() ? (scheme.format ? *scheme.format : infer_format(scheme)) : std::string(format);
  const ScaleGrid grid = make_scale_grid(w, rows, cols, "module bytes");
  const uint64_t cells = static_cast<uint64_t>(grid.size());
  const uint64_t elements = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
  const uint64_t ssize = scale_size(weight_dtype);
  uint64_t bytes = cells * ssize;  // weight_scale
  if (fmt == "pack-quantized") {
    bytes += static_cast<uint64_t>(rows) * static_cast<uint64_t>(packed_words(cols, w.num_bits)) * 4;
    bytes += 2 * 8;  // weight_shape
    if (!w.symmetric) {
      if (w.strategy == QuantStrategy::Group || w.strategy == QuantStrategy::Channel)
        bytes += static_cast<uint64_t>(packed_words(grid.scale_rows, w.num_bits)) *
                 static_cast<uint64_t>(grid.scale_cols) * 4;
      else
        bytes += cells;
    }
  } else if (fmt == "int-quantized" || fmt == "naive-quantized" || fmt == "float-quantized") {
    bytes += elements;  // int8 or fp8 codes
    if (w.type == QuantType::Int && !w.symmetric) bytes += cells;
  } else {
    fail("module bytes: lowbit does not write compression format '{}'", fmt);
  }
  if (w.actorder == ActOrder::Group) bytes += static_cast<uint64_t>(cols) * 4;  // weight_g_idx
  const auto& in = scheme.input_activations;
  if (in && !in->is_dynamic()) bytes += ssize + (in->symmetric ? 0 : 1);  // input_scale, input_zero_point
  return bytes;
}

}  // namespace lowbit::sensitivity

// How many bytes a Linear module occupies in an exported checkpoint, counted exactly as
// export/compressed_tensors_writer.cc writes it, so that a size budget can be checked before anything is
// quantized:
//   dense (unquantized)   weight rows x cols in its stored dtype
//   pack-quantized        weight_packed I32 [rows, ceil(cols * bits / 32)] + weight_shape I64 [2]
//                         + weight_zero_point (asymmetric: I32 packed along rows for channel/group, I8 for
//                         tensor)
//   int-/naive-quantized  weight I8 [rows, cols] (+ I8 zero points in the scale shape when asymmetric)
//   float-quantized       weight F8 [rows, cols]
//   every quantized module: weight_scale in the scale dtype (the weight's bf16/f16/f32, else f16) with one
//   value per cell of the scale grid; input_scale (+ input_zero_point) for static input activations;
//   weight_g_idx I32 [cols] when the weights use actorder "group" (GPTQ).
// Biases are the same either way and are not counted here (they are in the model total).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/dtype.h"
#include "quant/scheme.h"

namespace lowbit::sensitivity {

uint64_t dense_bytes(int64_t rows, int64_t cols, DType weight_dtype);

// `format` is the compression format the module is written in ("pack-quantized", ...); empty means the
// format compressed-tensors infers for the scheme (quant/plan.h infer_format). Throws for a scheme without
// weights or a format the writer does not produce.
uint64_t quantized_bytes(const QuantScheme& scheme, int64_t rows, int64_t cols, DType weight_dtype,
                         std::string_view format = {});

}  // namespace lowbit::sensitivity

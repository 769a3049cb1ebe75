// Which scale (and zero point) each element of a rows x cols matrix uses, for a given strategy. Matrices are
// [out_features, in_features] weights or [tokens, features] activations; groups run along the columns.
//
//   tensor        1 x 1
//   channel       rows x 1   (one per output channel of a weight)
//   token         rows x 1   (one per token row of an activation)
//   group         rows x (cols / group_size)
//
// These are also the shapes of compressed-tensors' weight_scale / weight_zero_point: (1,), (N, 1),
// (N, groups).
#pragma once

#include <cstdint>
#include <string_view>

#include "quant/quant_args.h"

namespace lowbit {

struct ScaleGrid {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t scale_rows = 1;  // 1 for tensor, rows otherwise
  int64_t scale_cols = 1;  // cols / group for group, else 1
  int64_t group = 1;       // columns that share a scale within a row (cols for non-group strategies)

  int64_t size() const { return scale_rows * scale_cols; }
  int64_t index(int64_t r, int64_t c) const { return (scale_rows == 1 ? 0 : r) * scale_cols + c / group; }
};

// Throws lowbit::Error naming `name` and the shape when the strategy is not supported by lowbit's
// quantizers (block, tensor_group, attn_head) or when the group size does not divide the columns.
ScaleGrid make_scale_grid(const QuantArgs& args, int64_t rows, int64_t cols, std::string_view name);

}  // namespace lowbit

#include "quant/scale_grid.h"

#include "util/error.h"

namespace lowbit {

ScaleGrid make_scale_grid(const QuantArgs& args, int64_t rows, int64_t cols, std::string_view name) {
  if (rows < 0 || cols < 0) fail("{}: invalid shape [{}, {}]", name, rows, cols);
  ScaleGrid g;
  g.rows = rows;
  g.cols = cols;
  g.group = cols > 0 ? cols : 1;
  switch (args.strategy) {
    case QuantStrategy::Tensor:
      break;
    case QuantStrategy::Channel:
    case QuantStrategy::Token:
      g.scale_rows = rows;
      break;
    case QuantStrategy::Group: {
      const int gs = args.group_size.value_or(0);
      if (gs <= 0) fail("{}: group strategy without a positive group size", name);
      if (cols % gs != 0) {
        fail(
            "{}: group size {} does not divide the input dimension {} (shape [{}, {}]); choose a group "
            "size that divides it or ignore this module",
            name, gs, cols, rows, cols);
      }
      g.scale_rows = rows;
      g.scale_cols = cols / gs;
      g.group = gs;
      break;
    }
    default:
      fail("{}: strategy '{}' is not supported by lowbit's quantizers (shape [{}, {}])", name,
           to_string(args.strategy), rows, cols);
  }
  return g;
}

}  // namespace lowbit

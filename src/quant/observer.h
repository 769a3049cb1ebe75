// Observers: where the min/max behind the qparams come from, with llm-compressor's names and defaults.
//
//   memoryless_minmax  min/max of the current tensor (the default, and what weights always use)
//   static_minmax      running min/max over every calibration batch (FP8's static input scale)
//   minmax             moving average of per-batch min/max: m <- m + c * (batch - m), c = 0.01 by default
//                      (observer_kwargs.averaging_constant); the first batch sets m
//   memoryless_mse     MSE clipping search on the current tensor
//   mse                moving average of per-batch MSE-searched min/max
//
// llm-compressor turns minmax/static_minmax into memoryless_minmax and mse into memoryless_mse for weights
// (observed once); observer_kind(args, true) does the same.
//
// MSE clipping search (llm-compressor observers/grid_search.py, eager path): with the cell's min/max,
// for i in 0 .. int(maxshrink * grid) - 1, p = 1 - i / grid, candidates (p * min, p * max) are turned into
// qparams (calculate_qparams) and the cell is fake-quantized; the error is sum(|q - x|^norm). A candidate
// replaces the best when its error is strictly smaller. The search stops after `patience` consecutive steps
// in which no cell of the tensor improved (the counter is shared by all cells). Defaults: maxshrink 0.20,
// grid 100, norm 2.4, patience 5 (observer_kwargs override them).
#pragma once

#include <cstdint>
#include <vector>

#include "quant/quant_args.h"
#include "quant/quantizer_ref.h"
#include "quant/scale_grid.h"

namespace lowbit {

enum class ObserverKind { MemorylessMinMax, StaticMinMax, MovingMinMax, MemorylessMse, MovingMse };

// The observer for `args` (args.observer, default memoryless_minmax). Throws for unknown names, listing the
// supported ones.
ObserverKind observer_kind(const QuantArgs& args, bool for_weights);

struct MseOptions {
  double maxshrink = 0.20;
  int patience = 5;
  double grid = 100.0;
  double norm = 2.4;
};
// Defaults overridden by args.observer_kwargs.
MseOptions mse_options(const QuantArgs& args);

// The MSE-searched min/max per cell of `grid` for x (grid.rows x grid.cols). Arithmetic follows
// ComputeDType like the quantizers; errors are accumulated in double (torch sums in the tensor's dtype, so a
// near-tie between two shrink factors may resolve differently).
void observe_mse_ref(const float* x, const ScaleGrid& grid, const QuantArgs& args, const MseOptions& options,
                     ComputeDType dt, float* min_vals, float* max_vals);

// Calibrates static activation qparams from batches of [tokens x features] inputs. Tensor strategy gives
// one scale; group strategy gives features / group_size scales shared by all tokens (compressed-tensors'
// static input qparam shapes).
class ActivationObserver {
 public:
  ActivationObserver(const QuantArgs& args, int64_t features, ComputeDType dt = ComputeDType::F32);

  void observe(const float* x, int64_t tokens);
  int64_t batches() const { return batches_; }
  int64_t num_qparams() const { return static_cast<int64_t>(min_.size()); }
  const std::vector<float>& min_vals() const { return min_; }
  const std::vector<float>& max_vals() const { return max_; }
  // Throws when nothing was observed. zero_points may be null for symmetric args.
  void qparams(float* scales, int8_t* zero_points) const;

 private:
  QuantArgs args_;
  int64_t features_;
  ComputeDType dt_;
  ObserverKind kind_;
  float averaging_constant_ = 0.01f;
  std::vector<float> min_, max_;
  int64_t batches_ = 0;
};

}  // namespace lowbit

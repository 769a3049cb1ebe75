// Static activation and KV-cache scales from calibration text: a min-max observer pass (the observer the
// scheme names, quant/observer.h) over a few samples of `seq_len` tokens run through the unquantized model.
// Observed are the inputs of every quantized module whose scheme has static input activations (FP8's
// input_scale), and, when the plan has a kv_cache_scheme, the keys (after RoPE, as they enter the cache)
// and values of every layer (k_scale / v_scale). The layer-sequential pipeline of GPTQ/AWQ is not this:
// activations here come from the unquantized model, as llm-compressor's QuantizationModifier does.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "calib/calib_data.h"
#include "model/model.h"
#include "quant/plan.h"

namespace lowbit {

// Static qparams, one per tensor (compressed-tensors shape (1,)).
struct StaticQParams {
  float scale = 1.0f;
  int8_t zero_point = 0;  // asymmetric args only
};

struct Calibration {
  std::map<std::string, StaticQParams> inputs;  // module name -> input_scale (/ input_zero_point)
  std::map<std::string, StaticQParams> keys;    // attention module ("model.layers.0.self_attn") -> k_scale
  std::map<std::string, StaticQParams> values;  // -> v_scale
  int64_t samples = 0;
  int64_t tokens = 0;
  double seconds = 0.0;
};

// Whether the plan needs calibration: a quantized module with static input activations, or a
// kv_cache_scheme. Throws for static input strategies other than tensor (group static inputs are not
// produced by lowbit yet).
bool needs_calibration(const QuantPlan& plan);

// Runs the calibration samples through the unquantized model with min-max observers attached (RTN's
// static scales; the GPTQ / AWQ / SmoothQuant pipeline observes its own, see calib/pipeline.h).
Calibration calibrate(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                      const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace lowbit

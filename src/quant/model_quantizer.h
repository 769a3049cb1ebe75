// Round-to-nearest quantization of a whole model, one module at a time: each quantized Linear's weight is
// converted to fp32, quantized with min-max qparams (quant/quantizer.h, parallel over rows on the global
// pool) and handed to a sink before the next module is touched, so memory holds one module's fp32 copy and
// codes at a time, never the whole quantized model (the export writer streams the sink's output to disk).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "model/model.h"
#include "quant/plan.h"
#include "quant/quantizer_ref.h"
#include "quant/scheme.h"
#include "quant/targets.h"

namespace lowbit {

// The RTN result for one module's weight [rows x cols]. Codes are int8 (int types) or fp8 bit patterns
// (float types); scales / zero points are scale_rows x scale_cols (the quant/scale_grid.h grid, i.e. the
// compressed-tensors weight_scale shape); zero_points is empty for symmetric weights.
struct ModuleQuantization {
  std::string name;                     // "model.layers.0.self_attn.q_proj"
  const QuantScheme* scheme = nullptr;  // points into the plan's recipe
  int64_t rows = 0, cols = 0;
  DType weight_dtype = DType::BF16;  // the stored dtype of the original weight
  ComputeDType compute = ComputeDType::F32;
  std::vector<int8_t> int_codes;
  std::vector<uint8_t> fp8_codes;
  std::vector<float> scales;
  std::vector<int8_t> zero_points;
  int64_t scale_rows = 1, scale_cols = 1;
  // GPTQ with actorder=group: the group of each input column (cols entries, compressed-tensors'
  // weight_g_idx); empty means column c belongs to group c / group_size.
  std::vector<int32_t> g_idx;

  const QuantArgs& weights() const { return *scheme->weights; }
  // The fake-quantized weight, dequantize(quantize(w)), rows x cols.
  std::vector<float> dequantize() const;
};

// The arithmetic precision that reproduces llm-compressor for weights stored as `dtype` (bf16 weights keep
// bf16 scales and bf16 intermediate results; everything else is computed in fp32).
ComputeDType compute_dtype_for(DType dtype);

// The module tree as compressed-tensors sees a Llama-shaped model: embed_tokens (Embedding), per layer the
// two RMSNorms and seven Linear projections, the final norm and lm_head (always present as a module, also
// when tied to the embeddings). This is the list resolve_plan and make_quantization_config take.
std::vector<ModuleInfo> model_modules(const Model& model);

// Quantizes one module's weight with the scheme's weight args.
ModuleQuantization quantize_module_rtn(const LinearModule& module, const QuantScheme& scheme);
// The same for a weight already in fp32 (e.g. after smoothing); weight_dtype is the dtype it is stored in,
// which selects the arithmetic (compute_dtype_for) and the scale dtype of the export.
ModuleQuantization quantize_weight_rtn(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                       DType weight_dtype, const QuantScheme& scheme);

// Where a whole-model quantization pass delivers its results, one at a time, so that they can be streamed
// to disk (export/compressed_tensors_writer.h): quantized modules, and stored tensors whose values changed
// (norm weights and unquantized weights with smoothing scales folded in; fp32 values, written in `dtype`).
struct ModelSink {
  std::function<void(ModuleQuantization&)> module;  // the argument may be moved from
  std::function<void(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                     const float* values)>
      tensor;
};

struct RtnProgress {
  int64_t done = 0;   // modules finished
  int64_t total = 0;  // modules to quantize
  const std::string* module = nullptr;
};

// Quantizes every module the plan selects, in model order, calling sink once per module (the result may be
// moved from). A tied lm_head is quantized from the embedding matrix, which itself stays unquantized (the
// export unties the two). Throws lowbit::Error for a scheme without weights or a planned module the model
// lacks.
void quantize_model_rtn(const Model& model, const QuantPlan& plan,
                        const std::function<void(ModuleQuantization&)>& sink,
                        const std::function<void(const RtnProgress&)>& progress = {});

}  // namespace lowbit

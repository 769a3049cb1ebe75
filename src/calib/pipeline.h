// The layer-sequential calibration pipeline (GPTQ paper §4 "step-by-step", llm-compressor's sequential
// pipeline): quantization methods that need activations (SmoothQuant, AWQ, GPTQ) run here, in bounded
// memory.
//
//   embed every calibration sample (hidden states [samples x tokens x hidden], fp32, kept for the run)
//   for each decoder layer:
//     copy its weights to fp32 (decoder_layer.h) and release the mapped pages (one layer resident)
//     pass 1: run the samples through it, observing each linear's inputs: per-channel range (SmoothQuant),
//             mean |x| (AWQ), Hessians X^T X (GPTQ, and AWQ's linear-parent losses and clipping), and a
//             cached subset of the norm outputs (AWQ's grid search runs the parent block on them)
//     smoothing: SmoothQuant or AWQ scales folded into the norms / preceding linears (the layer computes
//             the same function before quantization); Hessians are transformed with the scales
//             (H' = S^-1 H S^-1), so one observation pass serves every step
//     quantize each planned module: GPTQ with its site's Hessian, else RTN (after AWQ's clipping search)
//     pass 2: run the samples through the quantized layer: these are the next layer's inputs (errors of
//             earlier layers propagate, as in GPTQ); static input / KV-cache scales are observed here
//     hand the layer's results to the sink, free the layer
//   (with true_sequential, GPTQ's observation, quantization and propagation are one pass, module group by
//   module group: LayerPipeline::run_true_sequential)
//   modules outside the decoder layers (lm_head when targeted) are quantized with RTN
//
// Peak memory is one fp32 layer + the hidden states + the Hessians of one layer, whatever the depth
// (true_sequential adds one layer's SwiGLU activations of every sample: intermediate_size / hidden_size
// times the hidden states in fp32, half of that with bf16 calibration precision).
// Every forward pass and the Hessian products run on the global thread pool.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "calib/calib_data.h"
#include "calib/decoder_layer.h"
#include "calib/static_scales.h"
#include "model/model.h"
#include "quant/awq.h"
#include "quant/gptq.h"
#include "quant/model_quantizer.h"
#include "quant/plan.h"

namespace lowbit {

struct PipelineOptions {
  bool smoothquant = false;
  float smoothing_strength = 0.5f;  // SmoothQuant's alpha

  bool awq = false;
  int awq_grid = 20;
  AwqDuoScaling awq_duo_scaling = AwqDuoScaling::On;  // llm-compressor's duo_scaling: true, false or "both"
  bool awq_clip = true;  // clipping search (skipped when GPTQ follows: it sets its own ranges)
  // Calibration tokens the grid search runs the parent blocks on (0 = all): whole samples for the attention
  // block, an evenly strided subset of every sample's tokens for the (row-wise) MLP.
  int64_t awq_search_tokens = 4096;

  bool gptq = false;
  GptqOptions gptq_options;  // actorder comes from each scheme's weight args
  // GPTQ in one pass per layer, each module group quantized before the next group's inputs are observed
  // (AutoGPTQ's true_sequential; the GPTQ paper's reference code). false: llm-compressor's order, every
  // Hessian from the layer with its original weights, then a second pass through the quantized layer.
  // Needs GPTQ without AWQ.
  bool true_sequential = false;

  // The arithmetic of the calibration passes (calib/decoder_layer.h). The CLI's default follows the model's
  // dtype: BF16 for bf16 checkpoints, as llm-compressor calibrates a bf16 model in bf16.
  CalibPrecision precision = CalibPrecision::F32;

  // false: smoothing only, nothing is quantized; every changed weight is delivered through sink.tensor
  // (tests use it to check that folding leaves the model's function unchanged).
  bool apply_quantization = true;
};

// The methods of a recipe: "rtn", "gptq", "awq", "smoothquant", and '+'-chains of them
// ("smoothquant+gptq", "awq+gptq"). Throws for unknown names and impossible chains (AWQ and SmoothQuant
// together).
PipelineOptions pipeline_options_for(const std::string& method);
// Whether the method needs the pipeline (anything but plain RTN).
bool method_needs_pipeline(const std::string& method);

struct LayerReport {
  int64_t layer = 0;
  double seconds = 0.0;
  // Where the time went: observation pass (forward + statistics), smoothing search, quantization,
  // propagation pass.
  double observe_seconds = 0, smooth_seconds = 0, quantize_seconds = 0, propagate_seconds = 0;
  std::vector<std::string> lines;  // per mapping / module: chosen ratios, GPTQ losses
};

struct PipelineReport {
  int64_t samples = 0;
  int64_t tokens = 0;
  double seconds = 0.0;
  uint64_t hidden_state_bytes = 0;
  uint64_t max_layer_bytes = 0;
  std::vector<LayerReport> layers;
  std::vector<std::string> warnings;  // GPTQ fallbacks etc.
};

struct PipelineProgress {
  int64_t layer = 0;   // layers done
  int64_t layers = 0;  // total
  std::string stage;   // "observe", "smooth", "quantize", "propagate" (true-sequential: per module group)
};

// Runs the pipeline and delivers every quantized module (and changed tensor) to `sink`. When
// needs_calibration(plan), `calibration` receives the static input and KV-cache scales, each before the
// modules that use it are delivered (the export writer reads them at that moment).
PipelineReport run_sequential_pipeline(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                                       const PipelineOptions& options, const ModelSink& sink,
                                       Calibration* calibration,
                                       const std::function<void(const PipelineProgress&)>& progress = {});

}  // namespace lowbit

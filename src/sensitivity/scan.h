// The sensitivity scan: for every module the plan quantizes, how much the model's output changes when only
// that module is quantized (the end-to-end effect), how much its own output changes (the layer-local
// error), and statistics of its weights.
//
// How the end-to-end scan reuses work (one calibration sample at a time, so memory does not grow with the
// number of samples):
//   1. every decoder layer is held as an fp32 copy (calib/decoder_layer.h), and each targeted module's
//      fake-quantized weight dequantize(quantize(W)) (the scheme's RTN quantizer, weights only: activation
//      and KV-cache quantization are not simulated) is computed once;
//   2. per sample, the unquantized model runs once and the hidden state at the input of every decoder
//      layer is cached, together with the base model's log-probabilities (and probabilities, entropy, argmax)
//      at every scored position; the layer-local errors are measured on this pass;
//   3. per run (one module, or one layer / one module type with --granularity layer|type), the forward pass
//      restarts from the cached hidden state of the first affected layer with the run's modules swapped to
//      their fake-quantized weights, runs the remaining layers, the final norm and lm_head, and compares the
//      next-token distributions with the base ones: KL(base || quantized) per position, the NLL of the next
//      token (Δppl), and top-1 agreement.
// Every matrix product runs on the global thread pool (kernels::linear), and the per-position KL / NLL
// reductions run in parallel over positions; per-position values are summed in a fixed order, so the result
// does not depend on timing (it is reproducible for a fixed seed and thread count).
//
// Positions: each sample of T tokens is scored on its T - 1 next-token predictions (as eval's perplexity).
// KL and NLL are means over all scored positions of all samples.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "calib/calib_data.h"
#include "io/dtype.h"
#include "model/model.h"
#include "quant/plan.h"
#include "sensitivity/weight_stats.h"

namespace lowbit::sensitivity {

enum class Granularity { Module, Layer, Type };
// "module" | "layer" | "type"; throws listing the valid names.
Granularity parse_granularity(const std::string& name);
std::string to_string(Granularity g);

// The end-to-end effect of quantizing a set of modules (and nothing else).
struct EndToEnd {
  double kl_mean = 0.0;  // nats, mean over scored positions
  double kl_max = 0.0;
  double nll = 0.0;  // mean NLL of the next token (nats)
  double ppl = 0.0;  // exp(nll)
  double top1_agreement = 0.0;
};

struct ModuleSensitivity {
  std::string name;  // "model.layers.3.mlp.down_proj"
  std::string type;  // "down_proj"
  int64_t layer = 0;
  int64_t rows = 0, cols = 0;
  DType weight_dtype = DType::BF16;
  WeightStats stats;
  // ||W x - Q(W) x||^2 / ||W x||^2 summed over the calibration inputs of this module (bias excluded),
  // measured on the unquantized model's activations.
  double output_rel_mse = 0.0;
  std::optional<EndToEnd> end_to_end;  // set with Granularity::Module
};

// The end-to-end effect of quantizing a whole layer or module type (Granularity::Layer / Type).
struct GroupSensitivity {
  std::string name;  // "layer 3" / "down_proj"
  std::vector<std::string> modules;
  EndToEnd end_to_end;
};

struct ScanOptions {
  Granularity granularity = Granularity::Module;
  bool end_to_end = true;  // false: weight statistics and layer-local error only (no per-run forward passes)
};

struct ScanProgress {
  int64_t done = 0;   // runs finished (all samples)
  int64_t total = 0;  // (runs + 1 base pass) x samples
  std::string stage;  // "load", "base", "scan"
};

struct ScanResult {
  Granularity granularity = Granularity::Module;
  std::vector<ModuleSensitivity> modules;  // the plan's quantized decoder-layer modules, in model order
  std::vector<GroupSensitivity> groups;    // Granularity::Layer / Type
  EndToEnd base;                           // kl 0, top-1 1: the unquantized model's nll / ppl
  int64_t samples = 0;
  int64_t positions = 0;  // scored positions
  std::vector<std::string> notes;
  // Seconds: fp32 copies + fake-quant weights, base passes (with local errors), end-to-end runs, total.
  double load_seconds = 0, base_seconds = 0, scan_seconds = 0, seconds = 0;
  uint64_t resident_bytes = 0;  // fp32 layers + fake-quant weights + one sample's cached states
};

// Throws for an empty dataset, token ids outside the vocabulary, or a plan that quantizes no decoder-layer
// module (lm_head is skipped with a note: it is not part of a decoder layer).
ScanResult scan_sensitivity(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                            const ScanOptions& options,
                            const std::function<void(const ScanProgress&)>& progress = {});

// "q_proj", "k_proj", ... of a module name "model.layers.3.self_attn.q_proj" (the last component).
std::string module_type(const std::string& name);

}  // namespace lowbit::sensitivity

// Writes a quantized model folder: RTN quantization (quant/model_quantizer.h) streamed module by module into
// safetensors in one of the compressed-tensors layouts (0.20), byte-compatible with what the Python
// package's compressors write:
//
//   pack-quantized   weight_packed  I32 [N, ceil(K*bits/32)]   codes packed along K, LSB first (quant/pack.h)
//                    weight_scale   scale dtype, [1] | [N, 1] | [N, K/g]
//                    weight_zero_point  asymmetric only: I32 packed along N for group/channel, I8 [1] for
//                    tensor weight_shape   I64 [2] = {N, K}
//   int-quantized,   weight         I8 [N, K] codes (int schemes) | F8_E4M3 [N, K] (float schemes)
//   naive-quantized, weight_scale, weight_zero_point (asymmetric only, I8 in the scale shape)
//   float-quantized
//   any scheme with static input activations: input_scale [1] (input_zero_point I8 [1] if asymmetric);
//   kv_cache_scheme: <layer>.self_attn.k_scale / v_scale [1]
//
// Scales are stored in the original weight dtype (bf16/f16/f32), as compressed-tensors does. Unquantized
// tensors (embeddings, norms, biases, ignored modules) are copied unchanged. config.json gets the
// `quantization_config` of make_quantization_config (format per group, "mixed-precision" when they differ,
// quantization_status "compressed", version). Tokenizer files and generation_config.json are copied. The
// folder is built under a temporary name and renamed into place at the end (util/files.h StagedDirectory):
// an error leaves nothing behind, an existing output is refused unless overwrite is set.
//
// `fake-quant` writes dequantize(quantize(w)) in the weight's own dtype into a plain Hugging Face folder (no
// quantization_config): the weight-quantization error without low-bit kernels (activation and KV-cache
// quantization are not represented).
//
// lowbit extension: fp8 e5m2 weights (fp8_e5m2_* presets) are stored as F8_E5M2 `weight` tensors in the
// naive-/float-quantized layout; the weight args carry "lowbit_fp8_format": "e5m2" (docs/FORMATS.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "calib/static_scales.h"
#include "model/model.h"
#include "quant/model_quantizer.h"
#include "quant/plan.h"

namespace lowbit {

enum class ExportFormat { Auto, PackQuantized, IntQuantized, FloatQuantized, NaiveQuantized, FakeQuant };

// "auto", "pack-quantized", "int-quantized", "float-quantized", "naive-quantized", "fake-quant"; throws
// listing the valid names.
ExportFormat parse_export_format(std::string_view name);
std::string_view to_string(ExportFormat f);

struct ExportOptions {
  ExportFormat format = ExportFormat::Auto;  // auto: compressed-tensors' inference per config group
  bool overwrite = false;
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default "5GB"
  const Calibration* calibration = nullptr;  // required when needs_calibration(plan)
  // Produces the quantized modules (and tensors whose values it changed); unset means RTN
  // (quantize_model_rtn). The calibration pipeline (calib/pipeline.h) plugs in here, so a model streams
  // from the input files through one resident layer into the output files.
  std::function<void(const ModelSink&)> source;
};

struct ExportProgress {
  int64_t done = 0;
  int64_t total = 0;
  const std::string* module = nullptr;
};

struct ExportSummary {
  std::string format;  // the checkpoint format ("pack-quantized", "mixed-precision", "fake-quant", ...)
  int64_t modules_quantized = 0;
  int64_t modules_not_quantized = 0;    // Linear modules left dense (ignored or not targeted)
  uint64_t quantized_params = 0;        // weights of the quantized modules
  uint64_t quantized_bytes_before = 0;  // their original weights
  uint64_t quantized_bytes_after = 0;   // everything written for them (codes, scales, zero points, shapes)
  uint64_t total_bytes_before = 0;      // all tensors of the input
  uint64_t total_bytes_after = 0;       // all tensors written
  double seconds = 0.0;
  std::vector<std::string> files;  // written, relative to the output folder
  std::vector<std::string> notes;

  double bits_per_weight() const {
    return quantized_params
               ? 8.0 * static_cast<double>(quantized_bytes_after) / static_cast<double>(quantized_params)
               : 0.0;
  }
};

// Quantizes (RTN, or options.source) and writes the model to `out`. Throws lowbit::Error for an existing
// `out` without overwrite, a format the plan's schemes cannot be stored in, missing calibration, or a model
// without config.json on disk.
ExportSummary export_model(const Model& model, const QuantPlan& plan, const std::filesystem::path& out,
                           const ExportOptions& options,
                           const std::function<void(const ExportProgress&)>& progress = {});

// The quantization_config export_model writes into config.json for this plan and format (not fake-quant).
nlohmann::json export_quantization_config(const Model& model, const QuantPlan& plan, ExportFormat format);

}  // namespace lowbit

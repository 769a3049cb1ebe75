// Opening a model folder for inference: weights (mmap), tokenizer and the runtime transformer, with the
// load time measured and config warnings printed once. A compressed-tensors checkpoint (config.json with a
// quantization_config) is recognised and run with its quantization applied (formats/,
// runtime/packed_linear.h, runtime/kv_quant.h), so every command evaluates what the quantized model computes.
#pragma once

#include <filesystem>
#include <memory>

#include "formats/compressed_tensors_reader.h"
#include "model/model.h"
#include "runtime/transformer.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::cli {

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<runtime::Transformer> transformer;
  std::unique_ptr<Tokenizer> tokenizer;                       // null when loaded with WithTokenizer::No
  std::shared_ptr<const formats::QuantizedCheckpoint> quant;  // null for a float checkpoint
  bool packed = false;  // quantized weights run packed (runtime/packed_linear.h)
  double load_seconds = 0.0;
};

// How a quantized checkpoint's weights are held. Default: packed (runtime/packed_linear.h: the codes stay in
// the mapped file, kernels dequantize in registers), unless the environment variable LOWBIT_DEQUANTIZE is
// set (and not "0"): then every weight is dequantized at load (the fake-quant evaluation path,
// runtime/quantized_linear.h), which is the reference the packed path is compared with.
enum class QuantizedWeights { Default, Packed, Dequantized };

// Whether load_model reads tokenizer.json. `bench` feeds token ids and never tokenizes, so it skips the
// tokenizer and its memory (about 10 MB for a 32k-entry vocabulary with its merges) stays out of the
// model's measured RSS.
enum class WithTokenizer { Yes, No };

// `quiet` suppresses the config warnings on stderr.
LoadedModel load_model(const std::filesystem::path& dir, bool quiet = false,
                       QuantizedWeights weights = QuantizedWeights::Default,
                       WithTokenizer tokenizer = WithTokenizer::Yes);

// Sets how the model's sessions cache keys and values: "auto" (the dtype of the checkpoint's embeddings
// when it is bf16 or fp16, else fp32), "fp32", "bf16" or "fp16". A checkpoint whose kv_cache_scheme stores
// codes keeps its codes either way.
void apply_kv_cache_dtype(LoadedModel& loaded, const std::string& kv_cache_dtype);
// What the sessions cache: "codes (<kv_cache_scheme>)" for a quantized cache, else "fp32", "bf16" or "fp16".
std::string describe_kv_cache(const LoadedModel& loaded);

// Peak resident set size of this process so far, in bytes.
size_t peak_rss_bytes();

// One line about the quantization of a loaded model ("compressed-tensors pack-quantized: 84 modules ..."),
// empty for a float model.
std::string describe_quantization(const LoadedModel& loaded);

}  // namespace lowbit::cli

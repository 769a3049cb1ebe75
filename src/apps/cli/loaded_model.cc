#include "apps/cli/loaded_model.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>

#include "runtime/kv_quant.h"
#include "runtime/packed_linear.h"
#include "runtime/quantized_linear.h"
#include "util/error.h"

namespace lowbit::cli {

bool dequantize_requested() {
  const char* v = std::getenv("LOWBIT_DEQUANTIZE");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

LoadedModel load_model(const std::filesystem::path& dir, bool quiet, QuantizedWeights weights,
                       WithTokenizer tokenizer) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModel loaded;
  if (formats::read_compressed_tensors_config(dir)) {
    if (weights == QuantizedWeights::Default)
      weights = dequantize_requested() ? QuantizedWeights::Dequantized : QuantizedWeights::Packed;
    const bool packed = weights == QuantizedWeights::Packed;
    formats::OpenedQuantizedModel opened = formats::open_compressed_tensors(dir, {.keep_packed = packed});
    loaded.model = std::move(opened.model);
    loaded.quant = std::move(opened.quant);
    loaded.packed = packed;
    loaded.transformer = std::make_unique<runtime::Transformer>(
        *loaded.model, packed ? runtime::make_packed_linear_factory(loaded.quant)
                              : runtime::make_quantized_linear_factory(loaded.quant));
    loaded.transformer->set_kv_quantizer(
        runtime::KVQuantizer::from_checkpoint(*loaded.quant, loaded.model->config()));
  } else {
    loaded.model = Model::open(dir);
    loaded.transformer = std::make_unique<runtime::Transformer>(*loaded.model);
  }
  if (tokenizer == WithTokenizer::Yes) loaded.tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  loaded.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!quiet) {
    for (const auto& warning : loaded.model->config().warnings) fmt::print(stderr, "warning: {}\n", warning);
    if (loaded.quant) fmt::print(stderr, "{}\n", describe_quantization(loaded));
  }
  return loaded;
}

void apply_kv_cache_dtype(LoadedModel& loaded, const std::string& kv_cache_dtype) {
  DType storage = DType::F32;
  if (kv_cache_dtype == "bf16") storage = DType::BF16;
  if (kv_cache_dtype == "fp16") storage = DType::F16;
  if (kv_cache_dtype == "auto") {
    const DType stored = loaded.model->embed_tokens().dtype;
    if (stored == DType::BF16 || stored == DType::F16) storage = stored;
  } else if (kv_cache_dtype != "fp32" && kv_cache_dtype != "bf16" && kv_cache_dtype != "fp16") {
    fail("--kv-cache-dtype {}: expected auto, fp32, bf16 or fp16", kv_cache_dtype);
  }
  loaded.transformer->set_kv_storage(storage);
}

std::string describe_kv_cache(const LoadedModel& loaded) {
  const runtime::KVQuantizer* kv = loaded.transformer->kv_quantizer();
  if (kv && kv->stores_codes()) return "codes (" + describe(*loaded.quant->kv_cache_scheme) + ")";
  switch (loaded.transformer->kv_storage()) {
    case DType::BF16:
      return "bf16";
    case DType::F16:
      return "fp16";
    default:
      return "fp32";
  }
}

size_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<size_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

std::string describe_quantization(const LoadedModel& loaded) {
  if (!loaded.quant) return {};
  const formats::QuantizedCheckpoint& q = *loaded.quant;
  std::map<std::string, int> per_scheme;  // "pack-quantized w: int4 ... in: ..." -> modules
  for (const auto& [name, m] : q.modules) {
    std::string key = m.format;
    if (m.scheme.weights) key += " W " + describe(*m.scheme.weights);
    if (m.scheme.input_activations) key += " A " + describe(*m.scheme.input_activations);
    ++per_scheme[key];
  }
  std::string out = fmt::format("quantized (compressed-tensors, {}, weights {}):", q.config.format,
                                loaded.packed ? "packed" : "dequantized");
  for (const auto& [key, n] : per_scheme) out += fmt::format(" {} modules {};", n, key);
  out += fmt::format(" {} left in float", q.ignored.size());
  if (q.kv_cache_scheme) out += "; KV cache " + describe(*q.kv_cache_scheme);
  return out;
}

}  // namespace lowbit::cli

// Reading compressed-tensors checkpoints (config.json `quantization_config` with quant_method
// "compressed-tensors"; formats pack-quantized, int-quantized, float-quantized, naive-quantized and
// mixed-precision of those) for evaluation.
//
// Every targeted Linear module's weight is dequantized from its stored codes exactly as compressed-tensors
// 0.20 decompresses it (compressors/*/base.py decompress -> quantization/lifecycle/forward.py dequantize):
// w = (q - zero_point) * scale, computed in the dtype of weight_scale (a bf16 scale gives bf16 weights,
// every step rounded to bf16 as torch does). The dequantized matrices are presented to the Model as ordinary
// float `<module>.weight` tensors of a TensorStore view over the checkpoint, so model/ needs no change and
// the compressed tensors stay where they are; what the runtime must additionally do per module (input
// activation quantization with the stored input_scale) and per attention layer (k_scale / v_scale) is
// described by QuantizedCheckpoint.
//
// Which tensors a module has decides how it is read (the format name is checked to be one lowbit knows):
//   weight_packed int32 [N, ceil(K*b/32)] + weight_shape      pack-quantized (zero points packed along dim 0)
//   weight int8 + weight_scale (+ weight_zero_point)          int-quantized / naive-quantized
//   weight float8_e4m3fn + weight_scale                       float-quantized
//   weight float8_e5m2 + weight_scale ("lowbit_fp8_format")   lowbit extension, docs/FORMATS.md
//   weight float (no weight_scale)                             stored already fake-quantized ("frozen")
// An optional weight_g_idx (GPTQ activation ordering) maps column k to its group g_idx[k]; compressed-tensors
// 0.20 no longer reads it, older versions and vLLM do, and for the identity ordering both agree.
//
// With ReadOptions::keep_packed the weights that runtime/packed_linear.h can run directly are NOT
// dequantized: QuantizedModule::stored describes their codes (a view into the mapped checkpoint, never
// copied) with fp32 scales and int8 zero points, and the Model's `<module>.weight` of such a module is a
// placeholder of the right shape without data (TensorView::data == nullptr), so model/ still validates the
// architecture but nothing can read a matrix that does not exist (runtime::dense_weight refuses it).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"
#include "quant/scheme.h"

namespace lowbit::formats {

// A quantized weight as stored (ReadOptions::keep_packed). `codes` is one of
//   I32 [out, in/8] weight_packed of 4-bit codes, or [out, in/4] of 8-bit codes (pack-quantized,
//   quant/pack.h:
//       little-endian, code + 2^(bits-1) per field, so 8-bit words are simply bytes of unsigned codes);
//   I8 [out, in] weight (int-quantized / naive-quantized);
//   F8_E4M3 / F8_E5M2 [out, in] weight (float-quantized).
// scales / zero_points: one per cell of make_scale_grid(args, out, in): [out][groups] for group, [out] for
// channel, 1 for tensor. `scales` is the stored tensor itself (F32, BF16 or F16; torch dequantizes in its
// dtype, so BF16 scales round each weight), a view like `codes`: the runtime converts what it keeps, and
// no fp32 copy stays with the checkpoint. zero_points is empty when symmetric.
struct StoredWeight {
  QuantArgs args;
  int64_t out_features = 0, in_features = 0;
  TensorView codes;
  TensorView scales;
  std::vector<int8_t> zero_points;
};

// What the forward pass must apply to one quantized Linear module besides its (dequantized) weight.
struct QuantizedModule {
  std::string name;    // "model.layers.0.self_attn.q_proj"
  std::string format;  // the compression format it was read with, e.g. "pack-quantized"
  std::string group;   // the config group that targets it
  QuantScheme scheme;
  // Static input activation qparams (input_scale, input_zero_point), as stored; empty when dynamic/absent.
  std::vector<float> input_scale;
  std::vector<int8_t> input_zero_point;
  // Set when the weight was kept packed (ReadOptions::keep_packed); the Model then holds a placeholder.
  std::optional<StoredWeight> stored;
};

// Per attention layer static KV qparams (k_scale / v_scale: one value per tensor, or one per KV head).
struct KVScales {
  std::vector<float> k_scale, v_scale;
};

struct QuantizedCheckpoint {
  QuantConfig config;
  std::map<std::string, QuantizedModule> modules;  // by module name; only the quantized ones
  std::vector<std::string> ignored;                // Linear modules left in float
  std::optional<QuantArgs> kv_cache_scheme;
  std::vector<KVScales> kv_scales;  // per layer when kv_cache_scheme is static; else empty
  const QuantizedModule* module(const std::string& name) const {
    auto it = modules.find(name);
    return it == modules.end() ? nullptr : &it->second;
  }
};

// The parsed `quantization_config` of dir/config.json when its quant_method is "compressed-tensors"; nullopt
// when there is none. Other quant_methods (gptq, awq, ...) are an error naming the method.
std::optional<QuantConfig> read_compressed_tensors_config(const std::filesystem::path& dir);

struct OpenedQuantizedModel {
  std::unique_ptr<Model> model;  // float view: quantized modules' weights are the dequantized matrices
  std::shared_ptr<const QuantizedCheckpoint> quant;
};

// Opens a compressed-tensors checkpoint folder: reads the config, resolves which Linear modules each config
// group targets (compressed-tensors' matching rules, quant/plan.h), dequantizes their weights and reads
// input_scale / k_scale / v_scale. Throws lowbit::Error naming the folder, module and tensor on anything
// inconsistent (missing tensors, wrong shapes or dtypes, unsupported format or strategy).
struct ReadOptions {
  // Keep the codes of weights that can_keep_packed() accepts instead of dequantizing them.
  bool keep_packed = false;
};
OpenedQuantizedModel open_compressed_tensors(const std::filesystem::path& dir,
                                             const ReadOptions& options = {});

// The same over any tensor store (tests, in-memory checkpoints); `dir` only names things in messages.
OpenedQuantizedModel open_compressed_tensors(ModelConfig config, const QuantConfig& qconfig,
                                             std::unique_ptr<TensorStore> store,
                                             const std::filesystem::path& dir = {},
                                             const ReadOptions& options = {});

// Whether a module's weight args and stored tensors are a form runtime/packed_linear.h executes: int4
// (pack-quantized) or int8 (pack-quantized or I8) codes, or fp8 codes; tensor, channel, or group strategy
// with a group size that is a multiple of 16 and divides in_features; no non-trivial weight_g_idx.
bool can_keep_packed(const TensorStore& store, const std::string& module, const QuantArgs& weights,
                     int64_t in_features);

// Dequantizes one module's stored weight ([out, in], row-major fp32; values are bf16-exact when the scale
// is bf16) with the given weight args. `format` as above. Exposed for tests and tools.
std::vector<float> dequantize_module_weight(const TensorStore& store, const std::string& module,
                                            const QuantArgs& weights, int64_t out_features,
                                            int64_t in_features, std::string* format = nullptr);

}  // namespace lowbit::formats

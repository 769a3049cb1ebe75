// Quantization schemes and the checkpoint-level config, mirroring compressed-tensors' `QuantizationScheme`
// and `QuantizationConfig` (0.20). The JSON functions produce and read exactly what compressed-tensors writes
// into config.json: field names, defaults, nulls and omitted fields match its pydantic serializers.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quant/quant_args.h"

namespace lowbit {

// How the tensors of one module are quantized, and which modules it is for.
struct QuantScheme {
  std::vector<std::string> targets;  // class names ("Linear"), exact module names, or "re:" regexes
  std::optional<QuantArgs> weights;
  std::optional<QuantArgs> input_activations;
  std::optional<QuantArgs> output_activations;
  std::optional<std::string> format;  // a compression format name, e.g. "pack-quantized"; null = inferred
};

bool operator==(const QuantScheme& a, const QuantScheme& b);

// The `quantization_config` block of config.json.
struct QuantConfig {
  std::vector<std::pair<std::string, QuantScheme>> config_groups;  // in order
  std::string quant_method = "compressed-tensors";
  std::optional<QuantArgs> kv_cache_scheme;
  std::string format = "fakequant";                 // compressed-tensors' default
  std::string quantization_status = "initialized";  // initialized|calibration|frozen|compressed|decompressed
  std::optional<double> global_compression_ratio;
  std::vector<std::string> ignore;
  nlohmann::json moe_sparsity_config = nullptr;  // carried through verbatim
};

// The compressed-tensors version whose config.json layout lowbit writes (the "version" key).
inline constexpr std::string_view kCompressedTensorsVersion = "0.20.0";

// Checks a scheme like compressed-tensors' validator: activation strategies must be token, tensor, group,
// tensor_group or attn_head; no actorder on activations; format is not mixed-precision.
void validate_scheme(const QuantScheme& scheme, std::string_view where);

// ---- JSON (what compressed-tensors' model_dump(mode="json") produces) -----------------------------------

nlohmann::json to_json(const QuantArgs& args);
nlohmann::json to_json(const QuantScheme& scheme);
// The whole `quantization_config` block as ModelCompressor.update_config writes it: the config's fields
// (without quant_method's position mattering; keys sort like json.dump(sort_keys=True)) plus "version",
// "quant_method", "sparsity_config": {} and "transform_config": {}.
nlohmann::json to_json(const QuantConfig& config);

// Parsers accept what compressed-tensors accepts (case-insensitive enums, strategy inferred from group_size,
// "static" as an alias of actorder "weight") and reject unknown fields; errors name `where` and the field.
QuantArgs quant_args_from_json(const nlohmann::json& j, std::string_view where);
QuantScheme quant_scheme_from_json(const nlohmann::json& j, std::string_view where);
// A config group whose value is a list of targets names a preset (e.g. "W4A16": ["Linear"]), as in
// compressed-tensors. Keys "version", "sparsity_config" and "transform_config" are accepted and dropped.
QuantConfig quant_config_from_json(const nlohmann::json& j, std::string_view where);

}  // namespace lowbit

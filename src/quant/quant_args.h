// Quantization arguments for one tensor role (weights, input or output activations, KV cache), mirroring
// compressed-tensors' `QuantizationArgs` field by field so that a config maps 1:1 onto the
// `quantization_config` of a checkpoint's config.json (see quant/quant_json.h for the JSON form).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

enum class QuantType { Int, Float };

// The scope that shares one scale (and zero point). Block, TensorGroup and AttnHead exist so that any
// compressed-tensors config can be read and printed; lowbit's quantizers implement Tensor, Channel, Group
// and Token.
enum class QuantStrategy { Tensor, Channel, Group, Block, Token, TensorGroup, AttnHead };

// `dynamic`: false (static qparams from calibration), true (computed on the fly), or "local" (only the
// local scales are dynamic; tensor_group only).
enum class DynamicMode { Static, Dynamic, Local };

// GPTQ activation ordering; compressed-tensors accepts "static" as an alias of "weight".
enum class ActOrder { Weight, Group };

// Element format of 8-bit float codes. compressed-tensors only knows e4m3 (fn); e5m2 is a lowbit
// extension, serialized as "lowbit_fp8_format": "e5m2" (which compressed-tensors rejects, on purpose).
enum class FloatFormat { E4M3, E5M2 };

struct QuantArgs {
  int num_bits = 8;
  QuantType type = QuantType::Int;
  bool symmetric = true;
  std::optional<int> group_size;                   // > 0 for group strategies, -1 means channel
  QuantStrategy strategy = QuantStrategy::Tensor;  // always resolved (see validate_quant_args)
  std::vector<int> block_structure;                // [rows, cols] for the block strategy; empty = none
  DynamicMode dynamic = DynamicMode::Static;
  std::optional<ActOrder> actorder;
  // Optional strings are empty when unset (plain strings, not std::optional: GCC 12 reports false
  // -Wmaybe-uninitialized warnings when structs holding optional<string> are copied).
  std::string scale_dtype;  // e.g. "torch.float8_e4m3fn"; empty = the model's dtype
  std::string zp_dtype;     // only when set explicitly (serialized for asymmetric args)
  std::string observer;     // "memoryless_minmax", "static_minmax", "minmax", "mse", ...; empty = default
  std::string observer_kwargs_json = "{}";       // kept verbatim (a JSON object)
  FloatFormat float_format = FloatFormat::E4M3;  // type == Float, num_bits == 8 only

  bool is_dynamic() const { return dynamic != DynamicMode::Static; }
  // The smallest and largest code value: [-2^(b-1), 2^(b-1)-1] for int, +-448 (e4m3) or +-57344 (e5m2).
  float q_min() const;
  float q_max() const;
};

// Resolves and checks args like compressed-tensors' validator: infers the strategy from group_size when it
// is not given (none -> tensor, > 0 -> group, -1 -> channel), requires group_size > 0 for group strategies,
// rejects static token quantization, block_structure without block strategy, and unsupported bit widths.
// `strategy_given` says whether the strategy was explicitly specified. Throws lowbit::Error naming `where`.
void validate_quant_args(QuantArgs& args, bool strategy_given, std::string_view where);

std::string_view to_string(QuantType t);
std::string_view to_string(QuantStrategy s);
std::string_view to_string(ActOrder a);
std::string_view to_string(FloatFormat f);
QuantType parse_quant_type(std::string_view s);          // throws on unknown names (case-insensitive)
QuantStrategy parse_quant_strategy(std::string_view s);  // throws on unknown names (case-insensitive)

// One-line human summary, e.g. "int4 sym group128 static" or "fp8_e4m3 sym token dynamic".
std::string describe(const QuantArgs& args);

bool operator==(const QuantArgs& a, const QuantArgs& b);

}  // namespace lowbit

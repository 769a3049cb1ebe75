// Where a QuantRecipe comes from: CLI flags (--scheme, --targets, --ignore, --group-size, --kv-cache,
// --include-lm-head) or an llm-compressor YAML recipe (--recipe). Both produce the same QuantRecipe, which
// quant/plan.h resolves against a model.
//
// Recipe format (llm-compressor): stages and modifier groups nest freely; lowbit looks for one quantization
// modifier anywhere in the tree:
//
//   quant_stage:
//     quant_modifiers:
//       QuantizationModifier:          # or GPTQModifier / AWQModifier (method gptq / awq)
//         targets: [Linear]            # default [Linear]
//         ignore: [lm_head, 're:.*layers\.0\..*']
//         scheme: W4A16                # a preset; or {W4A16: [Linear], W8A16: ['re:.*down_proj']};
//                                      # or a scheme body {weights: {...}, input_activations: {...}}
//         # config_groups: {group_0: {targets: [Linear], weights: {...}, input_activations: {...}}}
//         kv_cache_scheme: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
//
// The modifier's other fields (block_size, dampening_frac, actorder, duo_scaling, ...) are kept verbatim in
// QuantRecipe::method_args for the method that uses them. Modifiers chain: a SmoothQuantModifier
// (smoothing_strength) before the quantization modifier gives method "smoothquant+<method>"; an
// AWQModifier together with a GPTQModifier gives "awq+gptq" (AWQ's smoothing, then GPTQ with the GPTQ
// modifier's scheme). Other modifiers are recorded in QuantRecipe::notes. lowbit extension:
// `include_lm_head: true` in the modifier.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quant/plan.h"

namespace lowbit {

struct CliQuantOptions {
  std::string scheme;  // a preset name (quant/presets.h)
  std::vector<std::string> targets = {"Linear"};
  std::vector<std::string> ignore;  // in addition to the default lm_head
  std::optional<int> group_size;    // > 0 or -1 (per channel)
  bool include_lm_head = false;
  std::optional<std::string> kv_cache;  // "fp8" or "int8"
  std::string method = "rtn";
};

QuantRecipe recipe_from_cli(const CliQuantOptions& options);

// Parses recipe text; `source` (the file name) is used in messages. Throws lowbit::Error naming the source
// and the field (and the line for YAML syntax errors).
QuantRecipe parse_recipe_yaml(std::string_view text, std::string_view source);
QuantRecipe load_recipe(const std::filesystem::path& path);

// --group-size on top of a recipe: applies to the weights of every group.
void override_group_size(QuantRecipe& recipe, int group_size);

// --kv-cache NAME: "fp8" (static per-tensor e4m3, what vLLM calls fp8 KV cache) or "int8" (static
// per-tensor symmetric int8).
QuantArgs kv_cache_args(std::string_view name);

}  // namespace lowbit

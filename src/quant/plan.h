// The quantization plan: which module gets which scheme. A QuantRecipe (from CLI flags or a YAML recipe,
// see quant/recipe.h) is resolved against the model's module list exactly as compressed-tensors'
// apply_quantization_config does:
//   - a module is selected when any target matches it (name, regex or class) and no ignore entry does;
//   - only Linear and Embedding modules are quantized (others may match but are not quantizable);
//   - when targets of several config groups match, the most specific wins: exact names first, then "re:"
//     patterns, then class names; ties within a kind go to the alphabetically first target string (that
//     is compressed-tensors' sort, not the order of the groups). A target listed in two groups belongs to
//     the later group.
// lowbit adds one default: `lm_head` is ignored unless the recipe names it in a target ("lm_head" or a
// regex matching it) or include_lm_head is set. Targets and ignore entries that match no module at all
// produce warnings (compressed-tensors only warns for targets, and also when a target is shadowed).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quant/scheme.h"
#include "quant/targets.h"

namespace lowbit {

struct QuantRecipe {
  std::vector<std::pair<std::string, QuantScheme>> groups;  // config groups, in order
  std::vector<std::string> ignore;
  bool ignore_lm_head = true;  // lowbit's default; false with --include-lm-head / include_lm_head: true
  std::optional<QuantArgs> kv_cache_scheme;
  std::string method = "rtn";  // rtn | gptq | awq | smoothquant+rtn | smoothquant+gptq | awq+gptq
  nlohmann::json method_args = nlohmann::json::object();  // the modifier's other fields, verbatim
  std::vector<std::string> notes;                         // e.g. modifiers lowbit does not run yet
  std::string source;                                     // "--scheme W4A16 ..." or the recipe path
};

enum class ModuleDecision { Quantized, Ignored, NotTargeted };

struct PlannedModule {
  std::string name;
  std::string type;
  std::vector<int64_t> weight_shape;
  ModuleDecision decision = ModuleDecision::NotTargeted;
  int group = -1;      // index into recipe.groups when quantized
  std::string reason;  // the target that selected it, or the ignore entry that excluded it
};

struct QuantPlan {
  QuantRecipe recipe;
  std::vector<PlannedModule> modules;  // every Linear / Embedding module, in model order
  std::vector<std::string> warnings;

  // The scheme for a module, or null when it is not quantized (or unknown).
  const QuantScheme* scheme_for(std::string_view module) const;
  int count(ModuleDecision d) const;
};

// Resolves the recipe against the model's modules. Throws lowbit::Error for an invalid regex or when a
// group size does not divide a selected module's input dimension (naming the module and its shape).
QuantPlan resolve_plan(const QuantRecipe& recipe, const std::vector<ModuleInfo>& modules);

// The compression format compressed-tensors infers for a Linear module with this scheme
// (compressors/format.py priority order): int-quantized, pack-quantized, float-quantized, naive-quantized,
// dense.
std::string infer_format(const QuantScheme& scheme);

// The quantization_config compressed-tensors writes for this plan (QuantizationConfig.from_pretrained +
// ModelCompressor): one config group "group_N" per distinct scheme in module order, each with its inferred
// format; the model format (or "mixed-precision"); and `ignore` as the concrete names of the modules that
// are not quantized but whose class was quantized elsewhere. `modules` is the full module list used to plan.
QuantConfig make_quantization_config(const QuantPlan& plan, const std::vector<ModuleInfo>& modules,
                                     std::string_view status = "compressed");

// `lowbit plan` output: one row per module, then a summary (counts per group, warnings).
std::string format_plan_table(const QuantPlan& plan);
nlohmann::json plan_to_json(const QuantPlan& plan);

std::string_view to_string(ModuleDecision d);

}  // namespace lowbit

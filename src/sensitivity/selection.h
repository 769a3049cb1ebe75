// Choosing the modules to keep in higher precision (unquantized, or at a higher-precision scheme such as
// W8A16 inside a W4A16 model), so that a size budget buys the most accuracy.
//
// Candidates are the modules the plan quantizes inside decoder layers. Each has a cost, the bytes it adds
// when kept (kept bytes - quantized bytes, both counted exactly as the export writes them:
// sensitivity/module_bytes.h), and a score:
//   sensitivity    its end-to-end KL divergence from `lowbit sensitivity` (sensitivity.json);
//   weight-stats   its weights' per-channel variance ("outlier magnitude"), no data needed;
//   random         none: a random order (std::mt19937_64 seeded with `seed`).
// The order is: --keep-sensitive N: score, highest first (random: the shuffled order); a byte budget:
// score per added byte, highest first (greedy knapsack; random: the shuffled order). Ties keep model order.
// Walking the order, a candidate is kept when it still fits (budget), or until N are kept.
//
// Budgets, all exact in bytes of tensors in the exported checkpoint (safetensors payloads, headers and
// config.json not counted):
//   --max-size BYTES   the whole exported checkpoint (every tensor, as ExportSummary::total_bytes_after);
//   --target-bits B    the candidates' bytes <= B * their parameter count / 8, i.e. B bits per weight over
//                      the targeted modules, scales and zero points included (converted to a --max-size).
// A budget below the everything-quantized size keeps nothing (with a note saying so); a budget above the
// everything-kept size keeps every candidate.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/dtype.h"
#include "model/model.h"
#include "quant/plan.h"

namespace lowbit::sensitivity {

enum class Selector { Sensitivity, Random, WeightStats };
Selector parse_selector(std::string_view name);  // "sensitivity" | "random" | "weight-stats"
std::string to_string(Selector s);

struct SelectionRequest {
  Selector selector = Selector::Sensitivity;
  uint64_t seed = 42;                      // random selector
  std::optional<int64_t> keep_count;       // --keep-sensitive N
  std::optional<uint64_t> max_bytes;       // --max-size
  std::optional<double> target_bits;       // --target-bits
  std::optional<QuantScheme> keep_scheme;  // unset: kept modules stay in their original dtype
  std::string format;                      // export format name; empty = inferred per scheme
};

struct Candidate {
  std::string name;
  uint64_t params = 0;
  uint64_t quantized_bytes = 0;  // as exported with the plan's scheme
  uint64_t kept_bytes = 0;       // dense, or with the keep scheme
  double score = 0.0;            // the selector's benefit (unused by random)
  int64_t cost() const { return static_cast<int64_t>(kept_bytes) - static_cast<int64_t>(quantized_bytes); }
};

struct Selection {
  Selector selector = Selector::Sensitivity;
  std::vector<std::string> kept;  // model order
  uint64_t size_all_quantized = 0;
  uint64_t size_selected = 0;  // size with `kept` kept
  std::optional<uint64_t> budget;
  std::vector<std::string> notes;
};

// The bytes of every tensor export_model writes for this plan (what ExportSummary::total_bytes_after
// reports): the model's tensors, with each quantized module's weight replaced by its compressed tensors,
// plus KV-cache scales when the recipe has a kv_cache_scheme.
uint64_t planned_export_bytes(const Model& model, const QuantPlan& plan, std::string_view format = {});

// The candidates of `plan` with their byte costs; scores from `scores` (by module name) for the
// sensitivity and weight-stats selectors (a candidate without a score is an error naming it), computed from
// the weights for weight-stats when `scores` is empty.
std::vector<Candidate> make_candidates(const Model& model, const QuantPlan& plan,
                                       const SelectionRequest& request,
                                       const std::map<std::string, double>& scores);

// Picks the modules; exactly one of keep_count, max_bytes, target_bits must be set.
Selection select_modules(const std::vector<Candidate>& candidates, uint64_t size_all_quantized,
                         const SelectionRequest& request);

// Writes the selection into the recipe: kept modules become exact-name `ignore` entries, or (keep_scheme)
// targets of an extra config group with that scheme, so the exported quantization_config records them.
void apply_selection(QuantRecipe& recipe, const Selection& selection, const SelectionRequest& request);

nlohmann::json to_json(const Selection& s);

// The end-to-end KL (score of the sensitivity selector) of every module in a sensitivity.json.
std::map<std::string, double> sensitivity_scores(const nlohmann::json& report, std::string_view where);

}  // namespace lowbit::sensitivity

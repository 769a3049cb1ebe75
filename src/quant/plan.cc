#include "quant/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "util/error.h"

namespace lowbit {
namespace {

bool is_quantizable(const ModuleInfo& m) {
  return TargetMatcher::match_class(m, "Linear") || TargetMatcher::match_class(m, "Embedding");
}

// compressed-tensors get_vllm_module_type: MoE routers and gates are treated as Linear.
std::string vllm_module_type(const std::string& type) {
  bool gate = false;  // re.search(r"Gate(?![a-z])", type)
  for (size_t at = type.find("Gate"); at != std::string::npos && !gate; at = type.find("Gate", at + 1)) {
    gate = at + 4 == type.size() || !(type[at + 4] >= 'a' && type[at + 4] <= 'z');
  }
  const bool router = type.find("Router") != std::string::npos || type.find("Gating") != std::string::npos;
  return type.find("ExpertMLP") == std::string::npos && (router || gate) ? "Linear" : type;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

void check_group_divides(const PlannedModule& m, const QuantScheme& s) {
  if (!s.weights || m.weight_shape.size() < 2) return;
  const QuantArgs& w = *s.weights;
  if (w.strategy != QuantStrategy::Group && w.strategy != QuantStrategy::TensorGroup) return;
  const int64_t in = m.weight_shape.back();
  const int gs = w.group_size.value_or(0);
  if (gs <= 0 || in % gs != 0) {
    // Suggest the usual sizes that do divide this dimension; per channel (-1) always works.
    std::string options;
    for (const int candidate : {32, 64, 128, 256})
      if (in % candidate == 0) options += fmt::format("{} ", candidate);
    fail(
        "{} (weight shape {}): group size {} does not divide the input dimension {}; choose a group size "
        "that divides it ({}-1 for per channel) or ignore this module",
        m.name, shape_string(m.weight_shape), gs, in,
        options.empty() ? "" : "--group-size " + options + "or ");
  }
}

}  // namespace

std::string_view to_string(ModuleDecision d) {
  switch (d) {
    case ModuleDecision::Quantized:
      return "quantized";
    case ModuleDecision::Ignored:
      return "ignored";
    case ModuleDecision::NotTargeted:
      return "not targeted";
  }
  return "?";
}

const QuantScheme* QuantPlan::scheme_for(std::string_view module) const {
  for (const PlannedModule& m : modules) {
    if (m.name == module) {
      return m.decision == ModuleDecision::Quantized ? &recipe.groups[static_cast<size_t>(m.group)].second
                                                     : nullptr;
    }
  }
  return nullptr;
}

int QuantPlan::count(ModuleDecision d) const {
  return static_cast<int>(
      std::count_if(modules.begin(), modules.end(), [&](const auto& m) { return m.decision == d; }));
}

QuantPlan resolve_plan(const QuantRecipe& recipe, const std::vector<ModuleInfo>& modules) {
  QuantPlan plan;
  plan.recipe = recipe;
  TargetMatcher matcher;

  // compressed-tensors' target_to_scheme: an ordered dict, so a repeated target keeps its first position
  // but belongs to the last group that lists it.
  std::vector<std::pair<std::string, int>> targets;
  for (size_t g = 0; g < recipe.groups.size(); ++g) {
    for (const std::string& t : recipe.groups[g].second.targets) {
      auto it = std::find_if(targets.begin(), targets.end(), [&](const auto& e) { return e.first == t; });
      if (it != targets.end()) {
        it->second = static_cast<int>(g);
      } else {
        targets.emplace_back(t, static_cast<int>(g));
      }
    }
  }
  // match_targets' priority: sorted by ("re:" in target, target).
  std::vector<std::pair<std::string, int>> by_priority = targets;
  std::stable_sort(by_priority.begin(), by_priority.end(), [](const auto& a, const auto& b) {
    const bool ra = a.first.find("re:") != std::string::npos;
    const bool rb = b.first.find("re:") != std::string::npos;
    return ra != rb ? !ra : a.first < b.first;
  });
  bool lm_head_named = !recipe.ignore_lm_head;
  for (const auto& [t, g] : targets) {
    if (matcher.match_name("lm_head", t)) lm_head_named = true;
  }

  for (const ModuleInfo& m : modules) {
    if (!is_quantizable(m)) continue;
    PlannedModule p;
    p.name = m.name;
    p.type = m.type();
    p.weight_shape = m.weight_shape;
    const bool targeted = std::any_of(targets.begin(), targets.end(),
                                      [&](const auto& t) { return matcher.is_match(m, t.first); });
    if (!targeted) {
      plan.modules.push_back(std::move(p));
      continue;
    }
    auto ignored_by = std::find_if(recipe.ignore.begin(), recipe.ignore.end(),
                                   [&](const std::string& i) { return matcher.is_match(m, i); });
    if (ignored_by != recipe.ignore.end()) {
      p.decision = ModuleDecision::Ignored;
      p.reason = "ignore: " + *ignored_by;
    } else if (m.name == "lm_head" && !lm_head_named) {
      p.decision = ModuleDecision::Ignored;
      p.reason = "default: lm_head";
    } else {
      const std::pair<std::string, int>* chosen = nullptr;
      for (const auto& t : by_priority) {
        if (matcher.match_name(m.name, t.first)) {
          chosen = &t;
          break;
        }
      }
      if (chosen == nullptr) {
        for (const auto& t : by_priority) {
          if (TargetMatcher::match_class(m, t.first)) {
            chosen = &t;
            break;
          }
        }
      }
      p.decision = ModuleDecision::Quantized;
      p.group = chosen->second;
      p.reason = "target: " + chosen->first;
      check_group_divides(p, recipe.groups[static_cast<size_t>(p.group)].second);
    }
    plan.modules.push_back(std::move(p));
  }

  const auto matches_nothing = [&](const std::string& pattern) {
    return std::none_of(modules.begin(), modules.end(),
                        [&](const ModuleInfo& m) { return matcher.is_match(m, pattern); });
  };
  for (const auto& [group_name, scheme] : recipe.groups) {
    for (const std::string& t : scheme.targets) {
      if (matches_nothing(t))
        plan.warnings.push_back(fmt::format("target '{}' ({}) matches no module", t, group_name));
    }
  }
  for (const std::string& i : recipe.ignore) {
    if (matches_nothing(i)) plan.warnings.push_back(fmt::format("ignore entry '{}' matches no module", i));
  }
  if (plan.count(ModuleDecision::Quantized) == 0)
    plan.warnings.push_back("no module is quantized by this plan");
  return plan;
}

std::string infer_format(const QuantScheme& s) {
  if (!s.weights) return "dense";
  const QuantArgs& w = *s.weights;
  const auto& in = s.input_activations;
  if (in && w.type == QuantType::Int) return "int-quantized";
  if (w.type == QuantType::Int && w.num_bits >= 1 && w.num_bits <= 8 &&
      (!in || in->type != QuantType::Float)) {
    return "pack-quantized";
  }
  if (in && w.type == QuantType::Float) return "float-quantized";
  return "naive-quantized";
}

QuantConfig make_quantization_config(const QuantPlan& plan, const std::vector<ModuleInfo>& modules,
                                     std::string_view status) {
  QuantConfig c;
  c.quantization_status = std::string(status);
  c.kv_cache_scheme = plan.recipe.kv_cache_scheme;
  std::set<std::string> quantized_names;
  std::set<std::string> quantized_types;
  std::set<std::string> formats;
  for (const PlannedModule& m : plan.modules) {
    if (m.decision != ModuleDecision::Quantized) continue;
    QuantScheme s = plan.recipe.groups[static_cast<size_t>(m.group)].second;
    if (!s.format) s.format = infer_format(s);
    if (*s.format != "dense") formats.insert(*s.format);
    quantized_names.insert(m.name);
    quantized_types.insert(vllm_module_type(m.type));
    const bool known = std::any_of(c.config_groups.begin(), c.config_groups.end(),
                                   [&](const auto& g) { return g.second == s; });
    if (!known) c.config_groups.emplace_back(fmt::format("group_{}", c.config_groups.size()), std::move(s));
  }
  c.format = formats.empty() ? "dense" : formats.size() == 1 ? *formats.begin() : "mixed-precision";
  // Not-quantized modules grouped by type, types in order of first appearance (from_pretrained's dict).
  std::vector<std::pair<std::string, std::vector<std::string>>> by_type;
  for (const ModuleInfo& m : modules) {
    if (quantized_names.count(m.name)) continue;
    const std::string type = vllm_module_type(m.type());
    auto it = std::find_if(by_type.begin(), by_type.end(), [&](const auto& e) { return e.first == type; });
    if (it == by_type.end()) it = by_type.insert(by_type.end(), {type, {}});
    it->second.push_back(m.name);
  }
  for (const auto& [type, names] : by_type) {
    if (quantized_types.count(type)) c.ignore.insert(c.ignore.end(), names.begin(), names.end());
  }
  return c;
}

namespace {

std::string scheme_summary(const QuantScheme& s) {
  std::string out = "W " + (s.weights ? describe(*s.weights) : std::string("-"));
  if (s.input_activations) out += "; A " + describe(*s.input_activations);
  if (s.output_activations) out += "; O " + describe(*s.output_activations);
  return out;
}

}  // namespace

std::string format_plan_table(const QuantPlan& plan) {
  size_t name_w = 6, type_w = 4;
  for (const PlannedModule& m : plan.modules) {
    name_w = std::max(name_w, m.name.size());
    type_w = std::max(type_w, m.type.size());
  }
  std::string out = fmt::format("plan from {} (method {})\n",
                                plan.recipe.source.empty() ? "?" : plan.recipe.source, plan.recipe.method);
  for (const auto& [name, scheme] : plan.recipe.groups) {
    out += fmt::format("  {}: {} -> targets [{}]\n", name, scheme_summary(scheme),
                       fmt::join(scheme.targets, ", "));
  }
  if (plan.recipe.kv_cache_scheme)
    out += fmt::format("  kv cache: {}\n", describe(*plan.recipe.kv_cache_scheme));
  out += fmt::format("\n{:<{}}  {:<{}}  {:<12}  {:<16}  {}\n", "module", name_w, "type", type_w, "decision",
                     "shape", "group / reason");
  for (const PlannedModule& m : plan.modules) {
    const std::string shape = m.weight_shape.empty() ? "" : fmt::format("{}", fmt::join(m.weight_shape, "x"));
    const std::string why =
        m.decision == ModuleDecision::Quantized
            ? fmt::format("{} ({})", plan.recipe.groups[static_cast<size_t>(m.group)].first, m.reason)
            : m.reason;
    out += fmt::format("{:<{}}  {:<{}}  {:<12}  {:<16}  {}\n", m.name, name_w, m.type, type_w,
                       to_string(m.decision), shape, why);
  }
  out += fmt::format("\n{} quantized, {} ignored, {} not targeted", plan.count(ModuleDecision::Quantized),
                     plan.count(ModuleDecision::Ignored), plan.count(ModuleDecision::NotTargeted));
  std::map<int, int> per_group;
  for (const PlannedModule& m : plan.modules) {
    if (m.decision == ModuleDecision::Quantized) ++per_group[m.group];
  }
  for (const auto& [g, n] : per_group)
    out += fmt::format("; {}: {}", plan.recipe.groups[static_cast<size_t>(g)].first, n);
  out += "\n";
  for (const std::string& w : plan.warnings) out += "warning: " + w + "\n";
  for (const std::string& n : plan.recipe.notes) out += "note: " + n + "\n";
  return out;
}

nlohmann::json plan_to_json(const QuantPlan& plan) {
  nlohmann::json j;
  j["source"] = plan.recipe.source;
  j["method"] = plan.recipe.method;
  j["method_args"] = plan.recipe.method_args;
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& [name, scheme] : plan.recipe.groups) {
    groups.push_back({{"name", name}, {"scheme", to_json(scheme)}});
  }
  j["groups"] = groups;
  j["ignore"] = plan.recipe.ignore;
  j["ignore_lm_head"] = plan.recipe.ignore_lm_head;
  j["kv_cache_scheme"] =
      plan.recipe.kv_cache_scheme ? to_json(*plan.recipe.kv_cache_scheme) : nlohmann::json(nullptr);
  nlohmann::json mods = nlohmann::json::array();
  for (const PlannedModule& m : plan.modules) {
    nlohmann::json e = {
        {"name", m.name}, {"type", m.type}, {"decision", to_string(m.decision)}, {"reason", m.reason}};
    e["group"] = m.decision == ModuleDecision::Quantized
                     ? nlohmann::json(plan.recipe.groups[static_cast<size_t>(m.group)].first)
                     : nlohmann::json(nullptr);
    if (!m.weight_shape.empty()) e["weight_shape"] = m.weight_shape;
    mods.push_back(std::move(e));
  }
  j["modules"] = mods;
  j["warnings"] = plan.warnings;
  j["notes"] = plan.recipe.notes;
  return j;
}

}  // namespace lowbit

#include "quant/recipe.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "quant/presets.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {

using nlohmann::json;

namespace {

// A YAML scalar as JSON, following the YAML 1.2 core schema (quoted scalars stay strings).
json scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used, 10);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  return s;
}

json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json j = json::object();
      for (const auto& kv : node) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      json j = json::array();
      for (const auto& v : node) j.push_back(yaml_to_json(v));
      return j;
    }
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    default:
      return nullptr;
  }
}

std::vector<std::string> string_list(const json& j, std::string_view where) {
  if (j.is_string()) return {j.get<std::string>()};
  std::vector<std::string> out;
  if (!j.is_array()) fail("{}: expected a string or a list of strings, got {}", where, j.dump());
  for (const auto& v : j) {
    if (!v.is_string()) fail("{}: expected strings, got {}", where, v.dump());
    out.push_back(v.get<std::string>());
  }
  return out;
}

const std::set<std::string>& quant_modifiers() {
  static const std::set<std::string> names = {"QuantizationModifier", "GPTQModifier", "AWQModifier"};
  return names;
}

std::string method_of(const std::string& modifier) {
  if (modifier == "GPTQModifier") return "gptq";
  if (modifier == "AWQModifier") return "awq";
  return "rtn";
}

void find_modifiers(const json& node, const std::string& path,
                    std::vector<std::pair<std::string, json>>& quant,
                    std::vector<std::pair<std::string, json>>& smoothing, std::vector<std::string>& others) {
  if (!node.is_object()) return;
  for (const auto& [key, value] : node.items()) {
    const std::string here = path.empty() ? key : path + "." + key;
    if (quant_modifiers().count(key)) {
      quant.emplace_back(here, value);
    } else if (key == "SmoothQuantModifier") {
      smoothing.emplace_back(here, value);
    } else if (key.size() > 8 && key.compare(key.size() - 8, 8, "Modifier") == 0) {
      others.push_back(fmt::format("{} is not run by lowbit (only the quantization modifier is)", here));
    } else {
      find_modifiers(value, here, quant, smoothing, others);
    }
  }
}

QuantRecipe recipe_from_modifier(const std::string& modifier, const json& m, std::string_view where) {
  if (!m.is_object()) fail("{}: the modifier needs a mapping of arguments", where);
  QuantRecipe r;
  r.method = method_of(modifier);
  const std::string w(where);
  std::vector<std::string> targets = {"Linear"};
  if (m.contains("targets")) targets = string_list(m["targets"], w + ".targets");
  if (m.contains("ignore") && !m["ignore"].is_null()) r.ignore = string_list(m["ignore"], w + ".ignore");
  if (m.contains("include_lm_head")) r.ignore_lm_head = !m["include_lm_head"].get<bool>();
  const bool has_scheme = m.contains("scheme") && !m["scheme"].is_null();
  const bool has_groups = m.contains("config_groups") && !m["config_groups"].is_null();
  if (has_scheme && has_groups) fail("{}: specify either 'scheme' or 'config_groups', not both", where);
  if (has_scheme) {
    const json& s = m["scheme"];
    if (s.is_string()) {
      r.groups.emplace_back("group_0", preset_scheme(s.get<std::string>(), targets));
    } else if (s.is_object() && std::all_of(s.items().begin(), s.items().end(),
                                            [](const auto& kv) { return is_preset(kv.key()); })) {
      for (const auto& [name, t] : s.items()) {
        r.groups.emplace_back(fmt::format("group_{}", r.groups.size()),
                              preset_scheme(name, string_list(t, w + ".scheme." + name)));
      }
    } else if (s.is_object()) {
      json body = s;
      body["targets"] = targets;
      r.groups.emplace_back("group_0", quant_scheme_from_json(body, w + ".scheme"));
    } else {
      fail("{}.scheme: expected a preset name or a mapping, got {}", where, s.dump());
    }
  } else if (has_groups) {
    if (!m["config_groups"].is_object()) fail("{}.config_groups: expected a mapping", where);
    for (const auto& [name, g] : m["config_groups"].items()) {
      const std::string gw = w + ".config_groups." + name;
      r.groups.emplace_back(
          name, g.is_array() ? preset_scheme(name, string_list(g, gw)) : quant_scheme_from_json(g, gw));
    }
  } else {
    fail("{}: the modifier has neither 'scheme' nor 'config_groups'; valid schemes: {}", where,
         fmt::join(preset_names(), ", "));
  }
  if (m.contains("kv_cache_scheme") && !m["kv_cache_scheme"].is_null()) {
    r.kv_cache_scheme = quant_args_from_json(m["kv_cache_scheme"], w + ".kv_cache_scheme");
  }
  static const std::set<std::string> consumed = {"targets",       "ignore",          "scheme",
                                                 "config_groups", "kv_cache_scheme", "include_lm_head"};
  for (const auto& [key, value] : m.items()) {
    if (!consumed.count(key)) r.method_args[key] = value;
  }
  return r;
}

}  // namespace

QuantRecipe recipe_from_cli(const CliQuantOptions& o) {
  if (o.scheme.empty()) fail("--scheme is required; valid schemes: {}", fmt::join(preset_names(), ", "));
  QuantRecipe r;
  r.groups.emplace_back("group_0", preset_scheme(o.scheme, o.targets));
  if (o.group_size) override_group_size(r.groups[0].second, *o.group_size, "--group-size");
  r.ignore = o.ignore;
  r.ignore_lm_head = !o.include_lm_head;
  if (o.kv_cache) r.kv_cache_scheme = kv_cache_args(*o.kv_cache);
  r.method = o.method;
  r.source = fmt::format("--scheme {}", o.scheme);
  if (o.group_size) r.source += fmt::format(" --group-size {}", *o.group_size);
  for (const std::string& i : o.ignore) r.source += fmt::format(" --ignore '{}'", i);
  return r;
}

QuantRecipe parse_recipe_yaml(std::string_view text, std::string_view source) {
  json doc;
  try {
    doc = yaml_to_json(YAML::Load(std::string(text)));
  } catch (const YAML::Exception& e) {
    fail("{}: invalid YAML at line {}, column {}: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  std::vector<std::pair<std::string, json>> quant, smoothing;
  std::vector<std::string> others;
  find_modifiers(doc, "", quant, smoothing, others);
  if (quant.empty()) {
    fail("{}: no QuantizationModifier, GPTQModifier or AWQModifier found in the recipe", source);
  }
  const auto modifier_name = [](const std::string& path) {
    return path.substr(path.rfind('.') == std::string::npos ? 0 : path.rfind('.') + 1);
  };
  // Chains lowbit runs: [SmoothQuantModifier] + one quantization modifier, or AWQModifier + GPTQModifier
  // (AWQ's smoothing, then GPTQ with the GPTQ modifier's scheme).
  size_t main = 0;
  std::string method_prefix;
  json awq_args = json::object();
  if (quant.size() == 2 && modifier_name(quant[0].first) != modifier_name(quant[1].first) &&
      (modifier_name(quant[0].first) == "AWQModifier" || modifier_name(quant[1].first) == "AWQModifier") &&
      (modifier_name(quant[0].first) == "GPTQModifier" || modifier_name(quant[1].first) == "GPTQModifier")) {
    main = modifier_name(quant[0].first) == "GPTQModifier" ? 0 : 1;
    method_prefix = "awq+";
    const json& awq = quant[1 - main].second;
    if (awq.is_object())
      for (const auto& [key, value] : awq.items())
        if (key == "duo_scaling" || key == "n_grid") awq_args[key] = value;
  } else if (quant.size() > 1) {
    fail(
        "{}: lowbit runs one quantization modifier per recipe (optionally after SmoothQuantModifier, or "
        "AWQModifier + GPTQModifier), found {} ({} and {})",
        source, quant.size(), quant[0].first, quant[1].first);
  }
  if (smoothing.size() > 1) fail("{}: more than one SmoothQuantModifier", source);
  const std::string& path = quant[main].first;
  QuantRecipe r =
      recipe_from_modifier(modifier_name(path), quant[main].second, fmt::format("{}: {}", source, path));
  for (const auto& [key, value] : awq_args.items()) r.method_args[key] = value;
  if (!smoothing.empty()) {
    if (!method_prefix.empty())
      fail("{}: SmoothQuant and AWQ both rescale the same channels; pick one", source);
    const json& sq = smoothing[0].second;
    if (!sq.is_null() && !sq.is_object())
      fail("{}: {}: the modifier needs a mapping of arguments", source, smoothing[0].first);
    method_prefix = "smoothquant+";
    if (sq.is_object()) {
      if (sq.contains("smoothing_strength")) r.method_args["smoothing_strength"] = sq["smoothing_strength"];
      if (sq.contains("mappings") && !sq["mappings"].is_null())
        others.push_back(fmt::format(
            "{}.mappings: lowbit uses the standard Llama/Mistral/Qwen2 mappings (input_layernorm -> q,k,v; "
            "post_attention_layernorm -> gate,up)",
            smoothing[0].first));
    }
  }
  r.method = method_prefix + r.method;
  r.notes = others;
  r.source = std::string(source);
  return r;
}

QuantRecipe load_recipe(const std::filesystem::path& path) {
  return parse_recipe_yaml(read_file(path), path.string());
}

void override_group_size(QuantRecipe& recipe, int group_size) {
  for (auto& [name, scheme] : recipe.groups)
    override_group_size(scheme, group_size, "--group-size (" + name + ")");
  recipe.source += fmt::format(" --group-size {}", group_size);
}

QuantArgs kv_cache_args(std::string_view name) {
  QuantArgs a;  // static, per tensor, symmetric, 8 bits
  if (name == "fp8" || name == "fp8_e4m3") {
    a.type = QuantType::Float;
  } else if (name == "int8") {
    a.type = QuantType::Int;
  } else {
    fail("unknown KV cache scheme '{}'; use fp8 or int8", name);
  }
  return a;
}

}  // namespace lowbit

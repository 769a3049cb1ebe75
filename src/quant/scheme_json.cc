// JSON form of QuantArgs / QuantScheme / QuantConfig, field for field as compressed-tensors 0.20 serializes
// them (quant_args.py _serialize, quant_scheme.py, quant_config.py, ModelCompressor.update_config).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "quant/presets.h"
#include "quant/scheme.h"
#include "util/error.h"

namespace lowbit {

using nlohmann::json;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void reject_unknown_keys(const json& j, const std::set<std::string>& known, std::string_view where) {
  if (!j.is_object()) fail("{}: expected a JSON object, got {}", where, j.dump());
  for (const auto& [key, value] : j.items()) {
    if (!known.count(key)) {
      fail("{}: unknown field '{}' (known: {})", where, key, fmt::join(known, ", "));
    }
  }
}

template <typename T>
T get_as(const json& j, const char* key, std::string_view where) {
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail("{}: field '{}' has the wrong type ({})", where, key, j.at(key).dump());
  }
}

std::string normalize_dtype(std::string name) {
  return name.rfind("torch.", 0) == 0 ? name : "torch." + name;
}

json optional_args(const std::optional<QuantArgs>& a) {
  return a ? to_json(*a) : json(nullptr);
}

std::optional<QuantArgs> optional_args_from(const json& j, const char* key, std::string_view where) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return quant_args_from_json(j.at(key), fmt::format("{}.{}", where, key));
}

}  // namespace

json to_json(const QuantArgs& a) {
  json j;
  j["num_bits"] = a.num_bits;
  j["type"] = to_string(a.type);
  j["symmetric"] = a.symmetric;
  j["group_size"] = a.group_size ? json(*a.group_size) : json(nullptr);
  j["strategy"] = to_string(a.strategy);
  if (!a.block_structure.empty()) j["block_structure"] = a.block_structure;
  if (a.dynamic == DynamicMode::Local) {
    j["dynamic"] = "local";
  } else {
    j["dynamic"] = a.dynamic == DynamicMode::Dynamic;
  }
  if (a.actorder) j["actorder"] = to_string(*a.actorder);
  if (!a.scale_dtype.empty()) j["scale_dtype"] = a.scale_dtype;
  if (!a.zp_dtype.empty() && !a.symmetric) j["zp_dtype"] = a.zp_dtype;  // symmetric: serialized as None
  if (!a.observer.empty()) j["observer"] = a.observer;
  const json kwargs = json::parse(a.observer_kwargs_json);
  if (!kwargs.empty()) j["observer_kwargs"] = kwargs;
  if (a.float_format == FloatFormat::E5M2) j["lowbit_fp8_format"] = "e5m2";
  return j;
}

QuantArgs quant_args_from_json(const json& j, std::string_view where) {
  reject_unknown_keys(
      j,
      {"num_bits", "type", "symmetric", "group_size", "strategy", "block_structure", "dynamic", "actorder",
       "scale_dtype", "zp_dtype", "observer", "observer_kwargs", "lowbit_fp8_format"},
      where);
  QuantArgs a;
  if (j.contains("num_bits")) a.num_bits = get_as<int>(j, "num_bits", where);
  if (j.contains("type")) a.type = parse_quant_type(get_as<std::string>(j, "type", where));
  if (j.contains("symmetric")) a.symmetric = get_as<bool>(j, "symmetric", where);
  if (j.contains("group_size") && !j["group_size"].is_null())
    a.group_size = get_as<int>(j, "group_size", where);
  bool strategy_given = false;
  if (j.contains("strategy") && !j["strategy"].is_null()) {
    a.strategy = parse_quant_strategy(get_as<std::string>(j, "strategy", where));
    strategy_given = true;
  }
  if (j.contains("block_structure") && !j["block_structure"].is_null()) {
    const json& b = j["block_structure"];
    if (b.is_string()) {  // the legacy "128x128" form
      const std::string s = b.get<std::string>();
      const size_t x = s.find('x');
      try {
        a.block_structure = std::vector<int>{std::stoi(s.substr(0, x)), std::stoi(s.substr(x + 1))};
      } catch (const std::exception&) {
        fail("{}: invalid block_structure '{}'", where, s);
      }
    } else {
      a.block_structure = get_as<std::vector<int>>(j, "block_structure", where);
    }
  }
  if (j.contains("dynamic")) {
    const json& d = j["dynamic"];
    if (d.is_boolean()) {
      a.dynamic = d.get<bool>() ? DynamicMode::Dynamic : DynamicMode::Static;
    } else if (d.is_string() && lower(d.get<std::string>()) == "local") {
      a.dynamic = DynamicMode::Local;
    } else {
      fail("{}: dynamic must be true, false or \"local\", got {}", where, d.dump());
    }
  }
  if (j.contains("actorder") && !j["actorder"].is_null()) {
    const json& o = j["actorder"];
    if (o.is_boolean()) {
      if (o.get<bool>()) fail("{}: actorder=true was removed; use actorder: weight", where);
    } else {
      const std::string s = o.is_string() ? lower(o.get<std::string>()) : "";
      if (s == "weight" || s == "static") {
        a.actorder = ActOrder::Weight;
      } else if (s == "group") {
        // compressed-tensors 0.20 removed it from its validator, but checkpoints with weight_g_idx exist
        // (older compressed-tensors, lowbit's --actorder group) and lowbit reads them.
        a.actorder = ActOrder::Group;
      } else if (s == "dynamic") {
        fail("{}: actorder '{}' was removed; use actorder: weight or null", where, s);
      } else {
        fail("{}: unknown actorder {}", where, o.dump());
      }
    }
  }
  if (j.contains("scale_dtype") && !j["scale_dtype"].is_null()) {
    a.scale_dtype = normalize_dtype(get_as<std::string>(j, "scale_dtype", where));
  }
  if (j.contains("zp_dtype") && !j["zp_dtype"].is_null()) {
    a.zp_dtype = normalize_dtype(get_as<std::string>(j, "zp_dtype", where));
  }
  if (j.contains("observer") && !j["observer"].is_null())
    a.observer = get_as<std::string>(j, "observer", where);
  if (j.contains("observer_kwargs") && !j["observer_kwargs"].is_null()) {
    if (!j["observer_kwargs"].is_object()) fail("{}: observer_kwargs must be an object", where);
    a.observer_kwargs_json = j["observer_kwargs"].dump();
  }
  if (j.contains("lowbit_fp8_format")) {
    const std::string f = lower(get_as<std::string>(j, "lowbit_fp8_format", where));
    if (f == "e4m3") {
      a.float_format = FloatFormat::E4M3;
    } else if (f == "e5m2") {
      a.float_format = FloatFormat::E5M2;
    } else {
      fail("{}: lowbit_fp8_format must be e4m3 or e5m2, got '{}'", where, f);
    }
  }
  validate_quant_args(a, strategy_given, where);
  return a;
}

bool operator==(const QuantScheme& a, const QuantScheme& b) {
  return a.targets == b.targets && a.weights == b.weights && a.input_activations == b.input_activations &&
         a.output_activations == b.output_activations && a.format == b.format;
}

void validate_scheme(const QuantScheme& s, std::string_view where) {
  if (s.input_activations) {
    const QuantStrategy st = s.input_activations->strategy;
    if (st == QuantStrategy::Channel || st == QuantStrategy::Block) {
      fail("{}: strategy '{}' is not supported for activation quantization", where, to_string(st));
    }
    if (s.input_activations->actorder) fail("{}: actorder cannot apply to input activations", where);
  }
  if (s.output_activations && s.output_activations->actorder) {
    fail("{}: actorder cannot apply to output activations", where);
  }
  if (s.format && *s.format == "mixed-precision") {
    fail("{}: mixed-precision cannot be the format of a single scheme", where);
  }
}

json to_json(const QuantScheme& s) {
  json j;
  j["targets"] = s.targets;
  j["weights"] = optional_args(s.weights);
  j["input_activations"] = optional_args(s.input_activations);
  j["output_activations"] = optional_args(s.output_activations);
  j["format"] = s.format ? json(*s.format) : json(nullptr);
  return j;
}

QuantScheme quant_scheme_from_json(const json& j, std::string_view where) {
  reject_unknown_keys(j, {"targets", "weights", "input_activations", "output_activations", "format"}, where);
  QuantScheme s;
  if (!j.contains("targets")) fail("{}: a scheme needs 'targets'", where);
  s.targets = get_as<std::vector<std::string>>(j, "targets", where);
  s.weights = optional_args_from(j, "weights", where);
  s.input_activations = optional_args_from(j, "input_activations", where);
  s.output_activations = optional_args_from(j, "output_activations", where);
  if (j.contains("format") && !j["format"].is_null()) s.format = get_as<std::string>(j, "format", where);
  validate_scheme(s, where);
  return s;
}

json to_json(const QuantConfig& c) {
  json j;
  json groups = json::object();
  for (const auto& [name, scheme] : c.config_groups) groups[name] = to_json(scheme);
  j["config_groups"] = groups;
  j["quant_method"] = c.quant_method;
  j["kv_cache_scheme"] = optional_args(c.kv_cache_scheme);
  j["format"] = c.format;
  j["quantization_status"] = c.quantization_status;
  j["global_compression_ratio"] =
      c.global_compression_ratio ? json(*c.global_compression_ratio) : json(nullptr);
  j["ignore"] = c.ignore;
  j["moe_sparsity_config"] = c.moe_sparsity_config;
  j["version"] = kCompressedTensorsVersion;
  j["sparsity_config"] = json::object();
  j["transform_config"] = json::object();
  return j;
}

QuantConfig quant_config_from_json(const json& j, std::string_view where) {
  reject_unknown_keys(j,
                      {"config_groups", "quant_method", "kv_cache_scheme", "format", "quantization_status",
                       "global_compression_ratio", "ignore", "moe_sparsity_config", "version",
                       "sparsity_config", "transform_config"},
                      where);
  QuantConfig c;
  if (!j.contains("config_groups") || !j["config_groups"].is_object()) {
    fail("{}: quantization_config needs a 'config_groups' object", where);
  }
  for (const auto& [name, value] : j["config_groups"].items()) {
    const std::string group_where = fmt::format("{}.config_groups.{}", where, name);
    if (value.is_array()) {  // a preset name mapped to its targets
      std::vector<std::string> targets;
      for (const auto& t : value) {
        if (!t.is_string()) fail("{}: targets must be strings", group_where);
        targets.push_back(t.get<std::string>());
      }
      c.config_groups.emplace_back(name, preset_scheme(name, targets));
    } else {
      c.config_groups.emplace_back(name, quant_scheme_from_json(value, group_where));
    }
  }
  if (j.contains("quant_method")) c.quant_method = get_as<std::string>(j, "quant_method", where);
  c.kv_cache_scheme = optional_args_from(j, "kv_cache_scheme", where);
  if (j.contains("format") && !j["format"].is_null()) c.format = get_as<std::string>(j, "format", where);
  if (j.contains("quantization_status")) {
    c.quantization_status = lower(get_as<std::string>(j, "quantization_status", where));
    static const std::set<std::string> statuses = {"initialized", "calibration", "frozen", "compressed",
                                                   "decompressed"};
    if (!statuses.count(c.quantization_status)) {
      fail("{}: unknown quantization_status '{}'", where, c.quantization_status);
    }
  }
  if (j.contains("global_compression_ratio") && !j["global_compression_ratio"].is_null()) {
    c.global_compression_ratio = get_as<double>(j, "global_compression_ratio", where);
  }
  if (j.contains("ignore") && !j["ignore"].is_null())
    c.ignore = get_as<std::vector<std::string>>(j, "ignore", where);
  if (j.contains("moe_sparsity_config")) c.moe_sparsity_config = j["moe_sparsity_config"];
  return c;
}

}  // namespace lowbit

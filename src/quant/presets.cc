#include "quant/presets.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>

#include "util/error.h"

namespace lowbit {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

QuantArgs int_weights(int bits, QuantStrategy strategy, std::optional<int> group_size, bool symmetric) {
  QuantArgs a;
  a.num_bits = bits;
  a.type = QuantType::Int;
  a.strategy = strategy;
  a.group_size = group_size;
  a.symmetric = symmetric;
  return a;
}

QuantArgs dynamic_token(int bits, QuantType type) {
  QuantArgs a;
  a.num_bits = bits;
  a.type = type;
  a.strategy = QuantStrategy::Token;
  a.dynamic = DynamicMode::Dynamic;
  return a;
}

QuantArgs fp8(QuantStrategy strategy, FloatFormat format = FloatFormat::E4M3) {
  QuantArgs a;
  a.type = QuantType::Float;
  a.strategy = strategy;
  a.float_format = format;
  return a;
}

struct Preset {
  std::optional<QuantArgs> weights;
  std::optional<QuantArgs> input_activations;
};

// compressed-tensors' _int_wnam: int weights, group 128, symmetric; dynamic per-token int activations
// below 16 bits.
Preset int_wnam(int weight_bits, int act_bits) {
  Preset p{int_weights(weight_bits, QuantStrategy::Group, 128, true), std::nullopt};
  if (act_bits < 16) p.input_activations = dynamic_token(act_bits, QuantType::Int);
  return p;
}

const std::vector<std::pair<std::string, Preset>>& presets() {
  static const std::vector<std::pair<std::string, Preset>> table = [] {
    std::vector<std::pair<std::string, Preset>> t;
    t.emplace_back("W4A16", int_wnam(4, 16));
    t.emplace_back("W4A16_ASYM", Preset{int_weights(4, QuantStrategy::Group, 128, false), std::nullopt});
    t.emplace_back("W8A16", int_wnam(8, 16));
    const Preset w8a8{int_weights(8, QuantStrategy::Channel, std::nullopt, true),
                      dynamic_token(8, QuantType::Int)};
    t.emplace_back("W8A8", w8a8);
    t.emplace_back("INT8", w8a8);
    QuantArgs fp8_input = fp8(QuantStrategy::Tensor);
    fp8_input.observer = "static_minmax";
    t.emplace_back("FP8", Preset{fp8(QuantStrategy::Tensor), fp8_input});
    t.emplace_back("FP8_DYNAMIC", Preset{fp8(QuantStrategy::Channel), dynamic_token(8, QuantType::Float)});
    t.emplace_back("W4AFP8", Preset{int_weights(4, QuantStrategy::Group, 128, true),
                                    dynamic_token(8, QuantType::Float)});
    for (int w = 2; w <= 8; ++w) {
      for (int a : {4, 8, 16}) {
        const std::string name = fmt::format("W{}A{}", w, a);
        if (w > a || name == "W4A16" || name == "W8A16" || name == "W8A8") continue;  // defined above
        t.emplace_back(name, int_wnam(w, a));
      }
    }
    t.emplace_back("UNQUANTIZED", Preset{});
    // NxD-style weight-only schemes.
    for (const auto& [dtype, make] :
         std::vector<std::pair<std::string, std::function<QuantArgs(QuantStrategy)>>>{
             {"int8", [](QuantStrategy s) { return int_weights(8, s, std::nullopt, true); }},
             {"fp8_e4m3", [](QuantStrategy s) { return fp8(s); }},
             {"fp8_e5m2", [](QuantStrategy s) { return fp8(s, FloatFormat::E5M2); }}}) {
      t.emplace_back(dtype + "_per_tensor_symmetric", Preset{make(QuantStrategy::Tensor), std::nullopt});
      t.emplace_back(dtype + "_per_channel_symmetric", Preset{make(QuantStrategy::Channel), std::nullopt});
    }
    return t;
  }();
  return table;
}

const Preset* find_preset(std::string_view name) {
  const std::string key = upper(name);
  for (const auto& [n, p] : presets()) {
    if (upper(n) == key) return &p;
  }
  return nullptr;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [n, p] : presets()) names.push_back(n);
  return names;
}

bool is_preset(std::string_view name) {
  return find_preset(name) != nullptr;
}

QuantScheme preset_scheme(std::string_view name, std::vector<std::string> targets) {
  const Preset* p = find_preset(name);
  if (p == nullptr) {
    static const std::vector<std::string> unsupported = {"FP8_BLOCK", "NVFP4",     "NVFP4A16", "MXFP4A16",
                                                         "MXFP4",     "MXFP4XFP8", "MXFP6A16", "MXFP6A8",
                                                         "MXFP8A16",  "MXFP8"};
    if (std::find(unsupported.begin(), unsupported.end(), upper(name)) != unsupported.end()) {
      fail(
          "scheme '{}' is a compressed-tensors preset that lowbit cannot produce (block, fp4/fp6 or "
          "microscaling formats); lowbit schemes: {}",
          name, fmt::join(preset_names(), ", "));
    }
    fail("unknown quantization scheme '{}'; valid schemes: {}", name, fmt::join(preset_names(), ", "));
  }
  QuantScheme s;
  s.targets = std::move(targets);
  s.weights = p->weights;
  s.input_activations = p->input_activations;
  return s;
}

void override_group_size(QuantScheme& s, int group_size, std::string_view where) {
  if (!s.weights) fail("{}: a group size needs a scheme that quantizes weights", where);
  if (group_size > 0) {
    s.weights->strategy = QuantStrategy::Group;
    s.weights->group_size = group_size;
  } else if (group_size == -1) {
    s.weights->strategy = QuantStrategy::Channel;
    s.weights->group_size = std::nullopt;
  } else {
    fail("{}: invalid group size {}; use a positive group size (32, 64, 128, ...) or -1 for per channel",
         where, group_size);
  }
  validate_quant_args(*s.weights, true, where);
}

}  // namespace lowbit

#include "model/config.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>

#include "util/error.h"
#include "util/files.h"

namespace lowbit {

namespace {

using json = nlohmann::json;

struct Arch {
  const char* architecture;
  const char* model_type;
};
constexpr Arch kArchitectures[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};

// Typed access to config.json fields with errors that name the file and the field.
class Fields {
 public:
  Fields(const json& j, const std::string& source) : j_(j), source_(source) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t required_int(const char* key) const {
    if (!has(key)) fail("{}: required field '{}' is missing", source_, key);
    return to_int(j_.at(key), key);
  }
  int64_t int_or(const char* key, int64_t fallback) const {
    return has(key) ? to_int(j_.at(key), key) : fallback;
  }
  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) fail("{}: field '{}' must be a number, got {}", source_, key, v.dump());
    return v.get<double>();
  }
  bool bool_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) fail("{}: field '{}' must be true or false, got {}", source_, key, v.dump());
    return v.get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_string()) fail("{}: field '{}' must be a string, got {}", source_, key, v.dump());
    return v.get<std::string>();
  }

  int64_t to_int(const json& v, const std::string& key) const {
    if (v.is_number_integer()) return v.get<int64_t>();
    // Some exporters write integral values as floats (2048.0).
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
      return static_cast<int64_t>(v.get<double>());
    }
    fail("{}: field '{}' must be an integer, got {}", source_, key, v.dump());
  }

 private:
  const json& j_;
  const std::string& source_;
};

std::string arch_for_model_type(const std::string& model_type) {
  for (const Arch& a : kArchitectures) {
    if (model_type == a.model_type) return a.architecture;
  }
  return {};
}

RopeScaling parse_rope_scaling(const json& r, const std::string& source, const char* field) {
  if (!r.is_object()) fail("{}: field '{}' must be an object, got {}", source, field, r.dump());
  Fields f(r, source);
  // transformers 5 writes "rope_type"; older configs "type".
  std::string type = f.string_or("rope_type", f.string_or("type", "default"));
  RopeScaling s;
  auto need = [&](const char* key) {
    if (!f.has(key)) fail("{}: {}.{} is required for rope_type '{}'", source, field, key, type);
    return f.number_or(key, 0.0);
  };
  if (type == "default") {
    s.type = RopeType::Default;
  } else if (type == "linear") {
    s.type = RopeType::Linear;
    s.factor = need("factor");
  } else if (type == "llama3") {
    s.type = RopeType::Llama3;
    s.factor = need("factor");
    s.low_freq_factor = need("low_freq_factor");
    s.high_freq_factor = need("high_freq_factor");
    s.original_max_position_embeddings = static_cast<int64_t>(need("original_max_position_embeddings"));
    if (s.high_freq_factor <= s.low_freq_factor) {
      fail("{}: {}: high_freq_factor ({}) must exceed low_freq_factor ({})", source, field,
           s.high_freq_factor, s.low_freq_factor);
    }
  } else {
    fail("{}: {}: rope_type '{}' is not supported (supported: default, linear, llama3)", source, field, type);
  }
  if (!(s.factor > 0)) fail("{}: {}.factor must be positive, got {}", source, field, s.factor);
  return s;
}

}  // namespace

std::string supported_architectures() {
  std::string out;
  for (const Arch& a : kArchitectures) out += (out.empty() ? "" : ", ") + std::string(a.architecture);
  return out;
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: expected a JSON object", source);
  Fields f(j, source);
  ModelConfig c;

  c.model_type = f.string_or("model_type", "");
  if (f.has("architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || a.empty() || !a.at(0).is_string()) {
      fail("{}: field 'architectures' must be a non-empty list of strings", source);
    }
    c.architecture = a.at(0).get<std::string>();
  } else {
    c.architecture = arch_for_model_type(c.model_type);
    if (c.architecture.empty()) {
      fail("{}: field 'architectures' is missing and model_type '{}' is unknown (supported: {})", source,
           c.model_type, supported_architectures());
    }
  }
  const Arch* arch = nullptr;
  for (const Arch& a : kArchitectures) {
    if (c.architecture == a.architecture) arch = &a;
  }
  if (!arch)
    fail("{}: architecture '{}' is not supported (supported: {})", source, c.architecture,
         supported_architectures());
  if (c.model_type.empty()) c.model_type = arch->model_type;
  const bool llama = c.model_type == "llama";
  const bool qwen2 = c.model_type == "qwen2";

  c.vocab_size = f.required_int("vocab_size");
  c.hidden_size = f.required_int("hidden_size");
  c.intermediate_size = f.required_int("intermediate_size");
  c.num_layers = f.required_int("num_hidden_layers");
  c.num_heads = f.required_int("num_attention_heads");
  c.num_kv_heads = f.int_or("num_key_value_heads", c.num_heads);
  c.max_position_embeddings = f.int_or("max_position_embeddings", c.max_position_embeddings);
  for (auto [name, v] : {std::pair{"vocab_size", c.vocab_size},
                         {"hidden_size", c.hidden_size},
                         {"intermediate_size", c.intermediate_size},
                         {"num_hidden_layers", c.num_layers},
                         {"num_attention_heads", c.num_heads},
                         {"num_key_value_heads", c.num_kv_heads}}) {
    if (v <= 0) fail("{}: field '{}' must be positive, got {}", source, name, v);
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source, c.num_heads,
         c.num_kv_heads);
  }
  if (f.has("head_dim")) {
    c.head_dim = f.required_int("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      fail("{}: hidden_size ({}) is not divisible by num_attention_heads ({}) and head_dim is not given",
           source, c.hidden_size, c.num_heads);
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) {
    fail("{}: head_dim must be positive and even, got {}", source, c.head_dim);
  }

  const std::string act = f.string_or("hidden_act", "silu");
  if (act != "silu") fail("{}: hidden_act '{}' is not supported (only silu)", source, act);

  c.rms_norm_eps = f.number_or("rms_norm_eps", 1e-6);
  c.rope_theta = f.number_or("rope_theta", 10000.0);
  if (f.has("rope_parameters")) {
    const json& rp = j.at("rope_parameters");
    c.rope = parse_rope_scaling(rp, source, "rope_parameters");
    if (rp.contains("rope_theta") && !rp.at("rope_theta").is_null()) {
      c.rope_theta = Fields(rp, source).number_or("rope_theta", c.rope_theta);
    }
  } else if (f.has("rope_scaling")) {
    c.rope = parse_rope_scaling(j.at("rope_scaling"), source, "rope_scaling");
  }
  if (!(c.rope_theta > 0)) fail("{}: rope_theta must be positive, got {}", source, c.rope_theta);
  if (f.has("partial_rotary_factor") && f.number_or("partial_rotary_factor", 1.0) != 1.0) {
    fail("{}: partial_rotary_factor != 1 is not supported", source);
  }

  c.tie_word_embeddings = f.bool_or("tie_word_embeddings", false);
  if (llama) {
    c.qkv_bias = c.o_proj_bias = f.bool_or("attention_bias", false);
    c.mlp_bias = f.bool_or("mlp_bias", false);
  } else if (qwen2) {
    // Qwen2 always has q/k/v biases and none on o_proj (not configurable in transformers).
    c.qkv_bias = true;
  }

  if (c.model_type == "mistral") {
    if (f.has("sliding_window")) c.sliding_window = f.required_int("sliding_window");
  } else if (qwen2) {
    if (f.bool_or("use_sliding_window", false) && f.has("sliding_window")) {
      c.sliding_window = f.required_int("sliding_window");
    }
  }
  if (c.sliding_window && *c.sliding_window < c.max_position_embeddings) {
    c.warnings.push_back(fmt::format(
        "{}: sliding_window = {} is not applied: sequences longer than {} tokens get full attention and "
        "differ from transformers",
        source, *c.sliding_window, *c.sliding_window));
  }

  if (f.has("bos_token_id")) c.bos_token_id = f.required_int("bos_token_id");
  if (f.has("eos_token_id")) {
    const json& e = j.at("eos_token_id");
    if (e.is_array()) {
      for (const json& v : e) c.eos_token_ids.push_back(f.to_int(v, "eos_token_id"));
    } else {
      c.eos_token_ids.push_back(f.required_int("eos_token_id"));
    }
  }
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "config.json";
  if (!std::filesystem::exists(path))
    fail("{}: not found (is {} a model folder?)", path.string(), dir.string());
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
  return from_json(j, path.string());
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in float32.
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(static_cast<float>(rope_theta), exponent);
  }
  // The scaling below repeats transformers' float32 tensor arithmetic operation by operation (Python
  // scalars become float32 operands), so that inv_freq agrees to the bit: at position 1e5 a 1-ulp
  // difference in a frequency already moves the angle by ~3e-6 rad.
  const auto f32 = [](double v) { return static_cast<float>(v); };
  if (rope.type == RopeType::Linear) {
    for (float& v : inv) v = v / f32(rope.factor);
  } else if (rope.type == RopeType::Llama3) {
    // Long wavelengths (low frequencies) are divided by `factor`, short ones kept, and the band between
    // the two wavelength thresholds interpolated smoothly (transformers _compute_llama3_parameters).
    const double old_len = static_cast<double>(rope.original_max_position_embeddings);
    const float low_freq_wavelen = f32(old_len / rope.low_freq_factor);
    const float high_freq_wavelen = f32(old_len / rope.high_freq_factor);
    const float factor = f32(rope.factor);
    for (float& v : inv) {
      const float wavelen = f32(2.0 * std::numbers::pi) / v;
      const float scaled = wavelen > low_freq_wavelen ? v / factor : v;
      const float smooth = (f32(old_len) / wavelen - f32(rope.low_freq_factor)) /
                           f32(rope.high_freq_factor - rope.low_freq_factor);
      const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      v = medium ? smoothed : scaled;
    }
  }
  return inv;
}

}  // namespace lowbit

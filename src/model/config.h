// The architecture hyper-parameters of a decoder-only checkpoint, read from its Hugging Face config.json.
// Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (all "Llama-shaped": RMSNorm, RoPE,
// GQA attention, SwiGLU MLP). Defaults follow the transformers configuration classes; the fields every
// real checkpoint writes (sizes, layer and head counts) are required.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lowbit {

enum class RopeType { Default, Linear, Llama3 };

// rope_scaling (transformers 4) / rope_parameters (transformers 5).
struct RopeScaling {
  RopeType type = RopeType::Default;
  double factor = 1.0;                              // linear, llama3
  double low_freq_factor = 1.0;                     // llama3
  double high_freq_factor = 4.0;                    // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM", ...
  std::string model_type;    // "llama", "mistral", "qwen2"

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads without GQA
  int64_t head_dim = 0;      // hidden_size / num_heads unless given
  int64_t max_position_embeddings = 2048;

  double rope_theta = 10000.0;
  RopeScaling rope;
  double rms_norm_eps = 1e-6;

  bool tie_word_embeddings = false;
  bool qkv_bias = false;     // q/k/v projections have a bias (Llama attention_bias, always for Qwen2)
  bool o_proj_bias = false;  // o_proj has a bias (Llama attention_bias only)
  bool mlp_bias = false;     // gate/up/down have biases (Llama mlp_bias)

  // Sliding-window attention is not implemented: recorded so that callers can warn when a sequence longer
  // than the window is run (results then differ from transformers).
  std::optional<int64_t> sliding_window;

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json allows an int or a list

  // Notes for the user about config entries that are accepted but not applied (printed by the CLI).
  std::vector<std::string> warnings;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }

  // RoPE inverse frequencies (head_dim / 2 values) for the configured rope type, computed in float32 the
  // way transformers does (so positions' angles match its cos/sin tables).
  std::vector<float> rope_inv_freq() const;

  // Parses a config.json object; `source` names the file in error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source = "config.json");
  // Reads and parses dir/config.json.
  static ModelConfig load(const std::filesystem::path& dir);
};

// "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM".
std::string supported_architectures();

}  // namespace lowbit

// A tiny random Llama-shaped model written to a temporary Hugging Face folder (config.json +
// model.safetensors), and a naive scalar forward pass over the same weights: straight loops in double,
// written from the transformers modeling code's definitions, independent of the runtime's code paths.
// Shared by the runtime and eval tests.
#pragma once

#include <unistd.h>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "util/files.h"

namespace lowbit::testing {

struct TinySpec {
  std::string architecture = "LlamaForCausalLM";
  std::string model_type = "llama";
  int64_t vocab = 61;
  int64_t hidden = 32;
  int64_t intermediate = 40;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  bool tie = false;
  bool attention_bias = false;  // llama: q/k/v/o biases
  bool mlp_bias = false;
  DType dtype = DType::F32;
  uint32_t seed = 1;
  nlohmann::json rope_scaling;  // null: none
  double rope_theta = 10000.0;
};

struct TinyModel {
  std::filesystem::path dir;
  nlohmann::json config;
  std::map<std::string, std::vector<float>> weights;  // values as stored (after dtype rounding)
  std::map<std::string, std::vector<int64_t>> shapes;
};

// A folder under the temp directory unique to this process and `tag`; removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(std::filesystem::temp_directory_path() / ("lowbit_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline TinyModel write_tiny_model(const std::filesystem::path& dir, const TinySpec& s) {
  TinyModel m;
  m.dir = dir;
  std::filesystem::create_directories(dir);
  const int64_t head_dim = s.hidden / s.heads;
  const bool qwen2 = s.model_type == "qwen2";
  m.config = {{"architectures", {s.architecture}},
              {"model_type", s.model_type},
              {"vocab_size", s.vocab},
              {"hidden_size", s.hidden},
              {"intermediate_size", s.intermediate},
              {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads},
              {"num_key_value_heads", s.kv_heads},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", s.rope_theta},
              {"tie_word_embeddings", s.tie},
              {"attention_bias", s.attention_bias},
              {"mlp_bias", s.mlp_bias},
              {"max_position_embeddings", 4096},
              {"bos_token_id", 1},
              {"eos_token_id", 2}};
  if (!s.rope_scaling.is_null()) m.config["rope_scaling"] = s.rope_scaling;
  write_file_atomic(dir / "config.json", m.config.dump(2));

  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  SafetensorsWriter writer(dir);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) v = offset + scale * normal(rng);
    if (s.dtype == DType::F32) {
      writer.add(name, DType::F32, shape, values.data(), values.size() * 4);
    } else {
      std::vector<uint16_t> half(values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        half[i] = s.dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
        values[i] = s.dtype == DType::BF16 ? bf16_to_f32(half[i]) : f16_to_f32(half[i]);
      }
      writer.add(name, s.dtype, shape, half.data(), half.size() * 2);
    }
    m.weights[name] = std::move(values);
    m.shapes[name] = shape;
  };
  const float w = 0.3f;
  add("model.embed_tokens.weight", {s.vocab, s.hidden}, 1.0f, 0.0f);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {s.hidden}, 0.1f, 1.0f);
    add(p + "post_attention_layernorm.weight", {s.hidden}, 0.1f, 1.0f);
    const bool qkv_bias = s.attention_bias || qwen2;
    const bool o_bias = s.attention_bias && !qwen2;
    struct Lin {
      const char* name;
      int64_t out, in;
      bool bias;
    };
    const Lin lins[] = {{"self_attn.q_proj", s.heads * head_dim, s.hidden, qkv_bias},
                        {"self_attn.k_proj", s.kv_heads * head_dim, s.hidden, qkv_bias},
                        {"self_attn.v_proj", s.kv_heads * head_dim, s.hidden, qkv_bias},
                        {"self_attn.o_proj", s.hidden, s.heads * head_dim, o_bias},
                        {"mlp.gate_proj", s.intermediate, s.hidden, s.mlp_bias},
                        {"mlp.up_proj", s.intermediate, s.hidden, s.mlp_bias},
                        {"mlp.down_proj", s.hidden, s.intermediate, s.mlp_bias}};
    for (const Lin& lin : lins) {
      add(p + lin.name + ".weight", {lin.out, lin.in}, w, 0.0f);
      if (lin.bias) add(p + lin.name + ".bias", {lin.out}, 0.2f, 0.0f);
    }
  }
  add("model.norm.weight", {s.hidden}, 0.1f, 1.0f);
  if (!s.tie) add("lm_head.weight", {s.vocab, s.hidden}, w, 0.0f);
  writer.finish();
  return m;
}

// Logits [tokens][vocab] of the whole sequence (positions 0..n-1), in double.
inline std::vector<std::vector<double>> naive_forward(const TinyModel& m, const ModelConfig& c,
                                                      const std::vector<int32_t>& tokens) {
  using Vec = std::vector<double>;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t H = c.hidden_size, D = c.head_dim, NH = c.num_heads, KV = c.num_kv_heads;
  auto W = [&](const std::string& name) -> const std::vector<float>& { return m.weights.at(name); };
  auto has = [&](const std::string& name) { return m.weights.count(name) != 0; };
  auto rmsnorm = [&](const Vec& x, const std::vector<float>& g) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + c.rms_norm_eps);
    Vec out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * g[i];
    return out;
  };
  auto linear = [&](const Vec& x, const std::string& module) {
    const auto& w = W(module + ".weight");
    const int64_t in = static_cast<int64_t>(x.size());
    const int64_t out = static_cast<int64_t>(w.size()) / in;
    Vec y(static_cast<size_t>(out), 0.0);
    for (int64_t o = 0; o < out; ++o) {
      double acc = has(module + ".bias") ? W(module + ".bias")[static_cast<size_t>(o)] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += x[static_cast<size_t>(i)] * w[static_cast<size_t>(o * in + i)];
      y[static_cast<size_t>(o)] = acc;
    }
    return y;
  };
  const std::vector<float> inv_freq = c.rope_inv_freq();
  auto rope = [&](Vec& v, int64_t heads, int64_t pos) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < D / 2; ++i) {
        const double angle = static_cast<double>(inv_freq[static_cast<size_t>(i)]) * static_cast<double>(pos);
        double& a = v[static_cast<size_t>(h * D + i)];
        double& b = v[static_cast<size_t>(h * D + i + D / 2)];
        const double na = a * std::cos(angle) - b * std::sin(angle);
        const double nb = b * std::cos(angle) + a * std::sin(angle);
        a = na;
        b = nb;
      }
    }
  };

  std::vector<Vec> x(static_cast<size_t>(n));
  const auto& emb = W("model.embed_tokens.weight");
  for (int64_t t = 0; t < n; ++t) {
    x[static_cast<size_t>(t)].assign(emb.begin() + tokens[static_cast<size_t>(t)] * H,
                                     emb.begin() + (tokens[static_cast<size_t>(t)] + 1) * H);
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<Vec> q(static_cast<size_t>(n)), k(static_cast<size_t>(n)), v(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
      const Vec h = rmsnorm(x[static_cast<size_t>(t)], W(p + "input_layernorm.weight"));
      q[static_cast<size_t>(t)] = linear(h, p + "self_attn.q_proj");
      k[static_cast<size_t>(t)] = linear(h, p + "self_attn.k_proj");
      v[static_cast<size_t>(t)] = linear(h, p + "self_attn.v_proj");
      rope(q[static_cast<size_t>(t)], NH, t);
      rope(k[static_cast<size_t>(t)], KV, t);
    }
    for (int64_t t = 0; t < n; ++t) {
      Vec attn(static_cast<size_t>(NH * D), 0.0);
      for (int64_t h = 0; h < NH; ++h) {
        const int64_t g = h / (NH / KV);
        Vec s(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < D; ++i) {
            dot += q[static_cast<size_t>(t)][static_cast<size_t>(h * D + i)] *
                   k[static_cast<size_t>(j)][static_cast<size_t>(g * D + i)];
          }
          s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < D; ++i) {
            attn[static_cast<size_t>(h * D + i)] +=
                s[static_cast<size_t>(j)] / sum * v[static_cast<size_t>(j)][static_cast<size_t>(g * D + i)];
          }
        }
      }
      const Vec o = linear(attn, p + "self_attn.o_proj");
      Vec& xt = x[static_cast<size_t>(t)];
      for (int64_t i = 0; i < H; ++i) xt[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      const Vec h2 = rmsnorm(xt, W(p + "post_attention_layernorm.weight"));
      const Vec gate = linear(h2, p + "mlp.gate_proj");
      const Vec up = linear(h2, p + "mlp.up_proj");
      Vec act(gate.size());
      for (size_t i = 0; i < gate.size(); ++i) act[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
      const Vec down = linear(act, p + "mlp.down_proj");
      for (int64_t i = 0; i < H; ++i) xt[static_cast<size_t>(i)] += down[static_cast<size_t>(i)];
    }
  }
  const std::string head = has("lm_head.weight") ? "lm_head" : "model.embed_tokens";
  std::vector<Vec> logits;
  for (int64_t t = 0; t < n; ++t) {
    logits.push_back(linear(rmsnorm(x[static_cast<size_t>(t)], W("model.norm.weight")), head));
  }
  return logits;
}

}  // namespace lowbit::testing

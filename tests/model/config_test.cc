// ModelConfig parsing (architectures, defaults, GQA, biases, rope variants, errors) and the RoPE inverse
// frequencies / cos / sin against transformers (tests/fixtures/rope/rope.json,
// tools/reference/rope_fixtures.py).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"
#include "runtime/rope.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

json llama_base() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", 32000},
              {"hidden_size", 768},
              {"intermediate_size", 2048},
              {"num_hidden_layers", 12},
              {"num_attention_heads", 12},
              {"num_key_value_heads", 4},
              {"rms_norm_eps", 1e-5},
              {"bos_token_id", 1},
              {"eos_token_id", 2}};
}

// The message of the lowbit::Error thrown by fn ("" when none is thrown).
template <typename F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, LlamaFieldsAndDefaults) {
  const ModelConfig c = ModelConfig::from_json(llama_base());
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.intermediate_size, 2048);
  EXPECT_EQ(c.num_layers, 12);
  EXPECT_EQ(c.num_heads, 12);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 64);  // hidden / heads
  EXPECT_EQ(c.q_dim(), 768);
  EXPECT_EQ(c.kv_dim(), 256);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope.type, RopeType::Default);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.bos_token_id, 1);
  ASSERT_EQ(c.eos_token_ids.size(), 1u);
  EXPECT_EQ(c.eos_token_ids[0], 2);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(ModelConfig, KvHeadsDefaultToHeadsAndExplicitHeadDim) {
  json j = llama_base();
  j.erase("num_key_value_heads");
  j["head_dim"] = 128;
  j["tie_word_embeddings"] = true;
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  j["eos_token_id"] = {128001, 128009};
  const ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.num_kv_heads, 12);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.q_dim(), 12 * 128);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.o_proj_bias);
  EXPECT_TRUE(c.mlp_bias);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128009}));
}

TEST(ModelConfig, Qwen2HasQkvBiasAndOptionalSlidingWindow) {
  json j = llama_base();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["model_type"] = "qwen2";
  j["max_position_embeddings"] = 32768;
  j["sliding_window"] = 4096;
  j["use_sliding_window"] = false;
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.sliding_window.has_value());  // not used by Qwen2 unless use_sliding_window
  j["use_sliding_window"] = true;
  c = ModelConfig::from_json(j);
  ASSERT_TRUE(c.sliding_window.has_value());
  EXPECT_EQ(*c.sliding_window, 4096);
  EXPECT_EQ(c.warnings.size(), 1u);  // 4096 < 32768: not applied, so the user is told
}

TEST(ModelConfig, MistralSlidingWindowWarnsWhenShorterThanContext) {
  json j = llama_base();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  j["max_position_embeddings"] = 32768;
  j["sliding_window"] = 4096;
  j["attention_bias"] = true;  // not a Mistral field: ignored
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_FALSE(c.qkv_bias);
  ASSERT_TRUE(c.sliding_window.has_value());
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("sliding_window"), std::string::npos);
  j["sliding_window"] = nullptr;
  c = ModelConfig::from_json(j);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_TRUE(c.warnings.empty());
}

TEST(ModelConfig, RopeThetaInsideRopeParameters) {
  json j = llama_base();
  j["rope_theta"] = 10000.0;
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
  const ModelConfig c = ModelConfig::from_json(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope.type, RopeType::Default);
}

TEST(ModelConfig, RopeScalingVariants) {
  json j = llama_base();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope.type, RopeType::Linear);
  EXPECT_DOUBLE_EQ(c.rope.factor, 2.0);

  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope.type, RopeType::Llama3);
  EXPECT_DOUBLE_EQ(c.rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);

  j["rope_scaling"] = nullptr;  // explicit null = no scaling
  c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope.type, RopeType::Default);
}

TEST(ModelConfig, Errors) {
  json j = llama_base();
  j["architectures"] = {"GPT2LMHeadModel"};
  std::string msg = error_of([&] { ModelConfig::from_json(j, "/m/config.json"); });
  EXPECT_NE(msg.find("GPT2LMHeadModel"), std::string::npos) << msg;
  EXPECT_NE(msg.find("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"), std::string::npos) << msg;

  for (const char* field :
       {"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"}) {
    j = llama_base();
    j.erase(field);
    msg = error_of([&] { ModelConfig::from_json(j, "/m/config.json"); });
    EXPECT_NE(msg.find("/m/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
  }

  j = llama_base();
  j["hidden_size"] = "768";
  msg = error_of([&] { ModelConfig::from_json(j); });
  EXPECT_NE(msg.find("hidden_size"), std::string::npos) << msg;

  j = llama_base();
  j["num_key_value_heads"] = 5;  // 12 % 5 != 0
  EXPECT_NE(error_of([&] { ModelConfig::from_json(j); }).find("num_key_value_heads"), std::string::npos);

  j = llama_base();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  msg = error_of([&] { ModelConfig::from_json(j); });
  EXPECT_NE(msg.find("yarn"), std::string::npos) << msg;

  j = llama_base();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  msg = error_of([&] { ModelConfig::from_json(j); });
  EXPECT_NE(msg.find("low_freq_factor"), std::string::npos) << msg;

  j = llama_base();
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of([&] { ModelConfig::from_json(j); }).find("gelu"), std::string::npos);

  EXPECT_NE(error_of([] { ModelConfig::load("/nonexistent/model"); }).find("config.json"), std::string::npos);
}

TEST(ModelConfig, LoadFromFolder) {
  const auto dir = std::filesystem::temp_directory_path() / "lowbit_config_test";
  std::filesystem::create_directories(dir);
  write_file_atomic(dir / "config.json", llama_base().dump());
  EXPECT_EQ(ModelConfig::load(dir).num_kv_heads, 4);
  write_file_atomic(dir / "config.json", "{ not json");
  EXPECT_NE(error_of([&] { ModelConfig::load(dir); }).find("config.json"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// inv_freq and cos/sin against transformers' LlamaRotaryEmbedding for each fixture config.
TEST(Rope, MatchesTransformers) {
  const json fx = json::parse(read_file(std::string(LOWBIT_FIXTURES_DIR) + "/rope/rope.json"));
  const std::vector<int64_t> positions = fx.at("positions").get<std::vector<int64_t>>();
  for (const auto& [name, cse] : fx.at("cases").items()) {
    SCOPED_TRACE(name);
    const ModelConfig c = ModelConfig::from_json(cse.at("config"));
    ASSERT_EQ(c.head_dim, cse.at("head_dim").get<int64_t>());
    ASSERT_DOUBLE_EQ(cse.at("attention_scaling").get<double>(), 1.0);
    const std::vector<float> inv = c.rope_inv_freq();
    const std::vector<double> want = cse.at("inv_freq").get<std::vector<double>>();
    ASSERT_EQ(inv.size(), want.size());
    for (size_t i = 0; i < inv.size(); ++i) {
      EXPECT_NEAR(inv[i], want[i], 1.2e-7 * std::abs(want[i])) << "inv_freq[" << i << "]";  // <= 1 ulp
    }
    // cos/sin of each fixture position: angles are formed in float32 as transformers does, so even at
    // position 100000 (angle ~1e5 rad) they agree to float rounding of cos/sin.
    for (size_t p = 0; p < positions.size(); ++p) {
      runtime::RopeAngles a;
      runtime::rope_angles(inv, positions[p], 1, &a);
      const auto cos_want = cse.at("cos").at(p).get<std::vector<double>>();
      const auto sin_want = cse.at("sin").at(p).get<std::vector<double>>();
      for (size_t i = 0; i < cos_want.size(); ++i) {
        EXPECT_NEAR(a.cos[i], cos_want[i], 2e-6) << "pos " << positions[p] << " i " << i;
        EXPECT_NEAR(a.sin[i], sin_want[i], 2e-6) << "pos " << positions[p] << " i " << i;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

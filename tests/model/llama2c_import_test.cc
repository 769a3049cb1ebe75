// llama2.c v0 import: the RoPE row permutation (against the formula of transformers' converter and by
// the attention-score identity it must preserve), the converted folder's tensors and config on a
// synthetic checkpoint, rejection of malformed files, and bit-exact reproduction of the bundled
// models/stories260K from the shared stories260K.bin.
#include "model/llama2c_import.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / fmt::format("lowbit_llama2c_test_{:08x}", rd());
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A synthetic v0 checkpoint whose float at file position i (after the header) is i, so every tensor
// element tells where it came from.
struct Synthetic {
  int32_t dim = 8, hidden = 12, layers = 2, heads = 2, kv_heads = 1, vocab = 10, seq_len = 4;
  bool shared = false;

  int32_t head_dim() const { return dim / heads; }
  uint64_t floats() const {
    const uint64_t kv = static_cast<uint64_t>(kv_heads * head_dim());
    return static_cast<uint64_t>(vocab * dim) +
           layers * (2ull * dim + 2ull * dim * dim + 2ull * kv * dim + 3ull * hidden * dim) + dim +
           static_cast<uint64_t>(seq_len * head_dim()) + (shared ? 0 : vocab * dim);
  }
  void write(const fs::path& path, int64_t extra_floats = 0) const {
    std::ofstream out(path, std::ios::binary);
    const int32_t header[7] = {dim, hidden, layers, heads, kv_heads, shared ? vocab : -vocab, seq_len};
    out.write(reinterpret_cast<const char*>(header), sizeof(header));
    const int64_t n = static_cast<int64_t>(floats()) + extra_floats;
    for (int64_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(i);
      out.write(reinterpret_cast<const char*>(&v), sizeof(v));
    }
  }
};

TEST(Llama2cImport, PermutationMatchesTransformersFormula) {
  // transformers: w.view(n_heads, head_dim/2, 2, cols).transpose(1, 2).reshape(rows, cols), i.e. within a
  // head the even rows come first, then the odd rows. Two heads of head_dim 4, one column = row index.
  std::vector<float> rows = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(permute_rope_rows(rows.data(), 2, 4, 1), (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
  // Columns move with their row.
  std::vector<float> two_cols = {0, 10, 1, 11, 2, 12, 3, 13};
  EXPECT_EQ(permute_rope_rows(two_cols.data(), 1, 4, 2), (std::vector<float>{0, 10, 2, 12, 1, 11, 3, 13}));
}

// RoPE as llama2.c applies it: pairs (2i, 2i+1) rotated by pos * theta^(-2i/head_dim).
void rope_interleaved(std::vector<double>& x, int64_t pos) {
  const int64_t hd = static_cast<int64_t>(x.size());
  for (int64_t i = 0; i < hd / 2; ++i) {
    const double angle = pos * std::pow(10000.0, -2.0 * i / hd);
    const double a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * std::cos(angle) - b * std::sin(angle);
    x[2 * i + 1] = a * std::sin(angle) + b * std::cos(angle);
  }
}

// RoPE as HF Llama applies it: x * cos + rotate_half(x) * sin with pairs (i, i + head_dim/2).
void rope_rotate_half(std::vector<double>& x, int64_t pos) {
  const int64_t half = static_cast<int64_t>(x.size()) / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle = pos * std::pow(10000.0, -2.0 * i / (2 * half));
    const double a = x[i], b = x[i + half];
    x[i] = a * std::cos(angle) - b * std::sin(angle);
    x[i + half] = b * std::cos(angle) + a * std::sin(angle);
  }
}

std::vector<double> matvec(const std::vector<float>& w, const std::vector<double>& x, int64_t rows) {
  const int64_t cols = static_cast<int64_t>(x.size());
  std::vector<double> y(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r] += w[r * cols + c] * x[c];
  return y;
}

TEST(Llama2cImport, PermutationPreservesAttentionScores) {
  // q.k after llama2.c's interleaved RoPE with the original weights must equal q.k after HF's
  // rotate-half RoPE with the permuted weights, for every position pair.
  const int64_t head_dim = 16, cols = 12;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> wq(head_dim * cols), wk(head_dim * cols);
  for (float& v : wq) v = normal(rng);
  for (float& v : wk) v = normal(rng);
  std::vector<double> xq(cols), xk(cols);
  for (double& v : xq) v = normal(rng);
  for (double& v : xk) v = normal(rng);
  const std::vector<float> wq_hf = permute_rope_rows(wq.data(), 1, head_dim, cols);
  const std::vector<float> wk_hf = permute_rope_rows(wk.data(), 1, head_dim, cols);

  for (int64_t pq : {0, 1, 5, 37}) {
    for (int64_t pk : {0, 3, 37}) {
      std::vector<double> q = matvec(wq, xq, head_dim), k = matvec(wk, xk, head_dim);
      std::vector<double> q_hf = matvec(wq_hf, xq, head_dim), k_hf = matvec(wk_hf, xk, head_dim);
      rope_interleaved(q, pq);
      rope_interleaved(k, pk);
      rope_rotate_half(q_hf, pq);
      rope_rotate_half(k_hf, pk);
      double score = 0, score_hf = 0;
      for (int64_t i = 0; i < head_dim; ++i) {
        score += q[i] * k[i];
        score_hf += q_hf[i] * k_hf[i];
      }
      EXPECT_NEAR(score, score_hf, 1e-9 * (1 + std::abs(score))) << "positions " << pq << ", " << pk;
    }
  }
}

TEST(Llama2cImport, ConvertsSyntheticCheckpoint) {
  TempDir tmp;
  Synthetic s;  // separate classifier, GQA (2 heads, 1 kv head)
  s.write(tmp.path() / "model.bin");
  const fs::path out = tmp.path() / "hf";
  convert_llama2c(tmp.path() / "model.bin", {}, out, false);

  const auto config = nlohmann::json::parse(read_file(out / "config.json"));
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(config["hidden_size"], 8);
  EXPECT_EQ(config["intermediate_size"], 12);
  EXPECT_EQ(config["num_hidden_layers"], 2);
  EXPECT_EQ(config["num_attention_heads"], 2);
  EXPECT_EQ(config["num_key_value_heads"], 1);
  EXPECT_EQ(config["vocab_size"], 10);
  EXPECT_EQ(config["max_position_embeddings"], 4);
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_DOUBLE_EQ(config["rms_norm_eps"].get<double>(), 1e-5);
  EXPECT_FALSE(fs::exists(out / "tokenizer.json"));  // no tokenizer.bin given

  SafetensorsFile st(out / "model.safetensors");
  EXPECT_EQ(st.names().size(), 2 + 9 * 2 + 1u);  // embed, norm, lm_head + 9 per layer
  const int64_t dim = 8, hidden = 12, kv = 4, vocab = 10, layers = 2;
  // File offsets (in floats) of each array, in v0 order.
  const int64_t emb = 0, rms_att = emb + vocab * dim, wq = rms_att + layers * dim,
                wk = wq + layers * dim * dim;
  const int64_t wv = wk + layers * kv * dim, wo = wv + layers * kv * dim, rms_ffn = wo + layers * dim * dim;
  const int64_t w1 = rms_ffn + layers * dim, w2 = w1 + layers * hidden * dim, w3 = w2 + layers * dim * hidden;
  const int64_t norm = w3 + layers * hidden * dim, wcls = norm + dim + 4 * 4 / 2 * 2;

  auto first = [&](const std::string& name) { return st.get(name).as<float>()[0]; };
  EXPECT_EQ(first("model.embed_tokens.weight"), emb);
  EXPECT_EQ(first("model.layers.1.input_layernorm.weight"), rms_att + dim);
  EXPECT_EQ(first("model.layers.1.self_attn.v_proj.weight"), wv + kv * dim);
  EXPECT_EQ(first("model.layers.1.self_attn.o_proj.weight"), wo + dim * dim);
  EXPECT_EQ(first("model.layers.0.post_attention_layernorm.weight"), rms_ffn);
  EXPECT_EQ(first("model.layers.1.mlp.gate_proj.weight"), w1 + hidden * dim);
  EXPECT_EQ(first("model.layers.1.mlp.down_proj.weight"), w2 + dim * hidden);
  EXPECT_EQ(first("model.layers.1.mlp.up_proj.weight"), w3 + hidden * dim);
  EXPECT_EQ(first("model.norm.weight"), norm);
  EXPECT_EQ(first("lm_head.weight"), wcls);  // freq_cis_real/imag were skipped
  EXPECT_EQ(st.get("lm_head.weight").shape, (std::vector<int64_t>{vocab, dim}));
  EXPECT_EQ(st.get("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{kv, dim}));
  EXPECT_EQ(st.get("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{dim, hidden}));

  // q rows permuted per head (head_dim 4: rows 0,2,1,3 then 4,6,5,7), k with its single kv head.
  const auto q = st.get("model.layers.1.self_attn.q_proj.weight").as<float>();
  const int64_t q_rows[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t r = 0; r < 8; ++r) EXPECT_EQ(q[r * dim + 3], wq + dim * dim + q_rows[r] * dim + 3) << r;
  const auto k = st.get("model.layers.0.self_attn.k_proj.weight").as<float>();
  const int64_t k_rows[4] = {0, 2, 1, 3};
  for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(k[r * dim], wk + k_rows[r] * dim) << r;
}

TEST(Llama2cImport, SharedClassifierHasNoLmHead) {
  TempDir tmp;
  Synthetic s;
  s.shared = true;
  s.kv_heads = 2;
  s.write(tmp.path() / "model.bin");
  const auto model = load_llama2c(tmp.path() / "model.bin");
  EXPECT_TRUE(model->config().tie_word_embeddings);
  EXPECT_FALSE(model->has_tensor("lm_head.weight"));
  EXPECT_EQ(model->config().num_kv_heads, 2);
  EXPECT_EQ(model->layer(1).k_proj.weight.shape, (std::vector<int64_t>{8, 8}));
}

TEST(Llama2cImport, RejectsMalformedFiles) {
  TempDir tmp;
  const fs::path bin = tmp.path() / "model.bin";
  const fs::path out = tmp.path() / "out";
  auto expect_error = [&](const std::string& needle) {
    try {
      convert_llama2c(bin, {}, out, false);
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("model.bin"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
  };

  Synthetic s;
  s.write(bin, -1);
  expect_error("implies");  // truncated
  s.write(bin, +1);
  expect_error("implies");  // trailing data
  s.heads = 3;
  s.write(bin);
  expect_error("n_heads");
  s = Synthetic{};
  s.kv_heads = 0;
  s.write(bin);
  expect_error("implausible header");
  write_file_atomic(bin, std::string("\x32\x34\x6b\x61", 4) + std::string(100, '\0'));
  expect_error("version 1/2");
  write_file_atomic(bin, "abc");
  expect_error("header");

  s = Synthetic{};
  s.write(bin);
  fs::create_directories(out);
  EXPECT_THROW(convert_llama2c(bin, {}, out, false), Error);
  EXPECT_NO_THROW(convert_llama2c(bin, {}, out, true));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
}

TEST(Llama2cImport, ReproducesBundledStories260K) {
  const fs::path bin = fs::path(LOWBIT_SHARED_DIR) / "models/stories260K/stories260K.bin";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " not present";
  const fs::path bundled = fs::path(LOWBIT_SOURCE_DIR) / "models/stories260K";
  TempDir tmp;
  const fs::path out = tmp.path() / "stories260K";
  convert_llama2c(bin, bundled / "tok512.bin", out, false);

  for (const char* file :
       {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_EQ(nlohmann::json::parse(read_file(out / file)), nlohmann::json::parse(read_file(bundled / file)))
        << file;
  }
  SafetensorsFile fresh(out / "model.safetensors");
  SafetensorsFile committed(bundled / "model.safetensors");
  ASSERT_EQ(fresh.names(), committed.names());
  for (const std::string& name : committed.names()) {
    const TensorView a = fresh.get(name), b = committed.get(name);
    EXPECT_EQ(a.dtype, b.dtype) << name;
    EXPECT_EQ(a.shape, b.shape) << name;
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name << " differs";
  }
}

}  // namespace
}  // namespace lowbit

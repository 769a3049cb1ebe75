// The forward pass on tiny random models against the naive scalar implementation in tiny_model.h:
// Llama (GQA, untied / tied, attention and MLP biases, bf16 weights, llama3 / linear RoPE scaling),
// Qwen2 (q/k/v biases), prefill vs incremental decode vs mixed chunks through the KV cache, and inputs
// longer than one internal chunk.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/tiny_model.h"
#include "runtime/transformer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {
namespace {

using testing::TempDir;
using testing::TinySpec;

std::vector<int32_t> some_tokens(int64_t n, int64_t vocab, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

double max_abs_diff(const float* got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]));
  return worst;
}

// Runs the model on `n` tokens in one prefill and checks every position's logits against the naive forward.
void check_against_naive(const TinySpec& spec, int64_t n, double tol) {
  TempDir tmp("fwd");
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path(), spec);
  auto model = Model::open(tmp.path());
  runtime::Transformer tf(*model);
  const auto tokens = some_tokens(n, spec.vocab);
  const auto want = testing::naive_forward(tiny, model->config(), tokens);

  runtime::Session session(tf);
  std::vector<float> logits;
  session.forward(tokens, runtime::Logits::All, &logits);
  ASSERT_EQ(logits.size(), static_cast<size_t>(n * spec.vocab));
  EXPECT_EQ(session.position(), n);
  for (int64_t t = 0; t < n; ++t) {
    EXPECT_LE(max_abs_diff(logits.data() + t * spec.vocab, want[static_cast<size_t>(t)]), tol)
        << "position " << t;
  }
}

TEST(Forward, LlamaGqaMatchesNaive) {
  check_against_naive(TinySpec{}, 20, 1e-4);
}

TEST(Forward, MultiHeadNoGqaTiedEmbeddingsWithBiases) {
  TinySpec s;
  s.kv_heads = 4;
  s.tie = true;
  s.attention_bias = true;
  s.mlp_bias = true;
  s.seed = 2;
  check_against_naive(s, 17, 1e-4);
}

TEST(Forward, MultiQueryAttention) {
  TinySpec s;
  s.kv_heads = 1;
  s.seed = 3;
  check_against_naive(s, 9, 1e-4);
}

TEST(Forward, Qwen2QkvBias) {
  TinySpec s;
  s.architecture = "Qwen2ForCausalLM";
  s.model_type = "qwen2";
  s.rope_theta = 1000000.0;
  s.seed = 4;
  check_against_naive(s, 15, 1e-4);
}

TEST(Forward, Bf16WeightsAndLlama3Rope) {
  TinySpec s;
  s.dtype = DType::BF16;
  s.seed = 5;
  s.rope_scaling = {{"rope_type", "llama3"},
                    {"factor", 8.0},
                    {"low_freq_factor", 1.0},
                    {"high_freq_factor", 4.0},
                    {"original_max_position_embeddings", 64}};
  check_against_naive(s, 21, 1e-4);
}

TEST(Forward, F16WeightsAndLinearRope) {
  TinySpec s;
  s.dtype = DType::F16;
  s.seed = 6;
  s.rope_scaling = {{"type", "linear"}, {"factor", 4.0}};
  check_against_naive(s, 12, 1e-4);
}

// Several query blocks in attention and two internal chunks (> Session::max_chunk() tokens).
TEST(Forward, LongInputAcrossChunks) {
  check_against_naive(TinySpec{}, runtime::Session::max_chunk() + 88, 2e-4);
}

// Prefill of the whole sequence, token-by-token decode, and uneven chunks must give the same logits.
TEST(Forward, PrefillEqualsIncrementalDecode) {
  TempDir tmp("decode");
  TinySpec spec;
  spec.seed = 9;
  testing::write_tiny_model(tmp.path(), spec);
  auto model = Model::open(tmp.path());
  runtime::Transformer tf(*model);
  const int64_t n = 150;
  const auto tokens = some_tokens(n, spec.vocab, 11);

  runtime::Session prefill(tf);
  std::vector<float> all;
  prefill.forward(tokens, runtime::Logits::All, &all);

  runtime::Session decode(tf, 4);  // capacity 4: the KV cache grows while decoding
  std::vector<float> one;
  for (int64_t t = 0; t < n; ++t) {
    decode.forward(std::span<const int32_t>(&tokens[static_cast<size_t>(t)], 1), runtime::Logits::Last, &one);
    ASSERT_EQ(one.size(), static_cast<size_t>(spec.vocab));
    for (int64_t i = 0; i < spec.vocab; ++i) {
      ASSERT_NEAR(one[static_cast<size_t>(i)], all[static_cast<size_t>(t * spec.vocab + i)], 1e-4) << t;
    }
  }

  // Uneven chunks: 1, 70, 79 (the second and third start with past > 0 and span query blocks).
  runtime::Session mixed(tf);
  std::vector<float> part;
  int64_t begin = 0;
  for (int64_t len : {1, 70, 79}) {
    mixed.forward(
        std::span<const int32_t>(tokens).subspan(static_cast<size_t>(begin), static_cast<size_t>(len)),
        runtime::Logits::All, &part);
    for (int64_t t = 0; t < len; ++t) {
      for (int64_t i = 0; i < spec.vocab; ++i) {
        ASSERT_NEAR(part[static_cast<size_t>(t * spec.vocab + i)],
                    all[static_cast<size_t>((begin + t) * spec.vocab + i)], 1e-4);
      }
    }
    begin += len;
  }
  EXPECT_EQ(mixed.position(), n);
  mixed.reset();
  EXPECT_EQ(mixed.position(), 0);
}

// A bf16 / fp16 KV cache: prefill and token-by-token decode (which reads the 16-bit rows in place) agree,
// and the logits stay close to the fp32 cache's (every cached value moves by at most 2^-9 / 2^-12 of itself).
// Prefill and decode differ by more than with an fp32 cache: their fp32 keys and values differ in summation
// order, so a value next to a rounding boundary can be cached as neighbouring 16-bit numbers in the two.
TEST(Forward, SixteenBitKVCachePrefillEqualsDecode) {
  TempDir tmp("kv16");
  TinySpec spec;
  spec.seed = 13;
  testing::write_tiny_model(tmp.path(), spec);
  auto model = Model::open(tmp.path());
  runtime::Transformer tf(*model);
  const int64_t n = 90;
  const auto tokens = some_tokens(n, spec.vocab, 17);
  std::vector<float> exact;
  runtime::Session(tf).forward(tokens, runtime::Logits::All, &exact);
  for (DType storage : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(storage));
    tf.set_kv_storage(storage);
    std::vector<float> all, one;
    runtime::Session prefill(tf);
    prefill.forward(tokens, runtime::Logits::All, &all);
    runtime::Session decode(tf, 3);
    double worst_vs_fp32 = 0;
    const double tol = storage == DType::BF16 ? 2e-3 : 5e-4;
    for (int64_t t = 0; t < n; ++t) {
      decode.forward(std::span<const int32_t>(&tokens[static_cast<size_t>(t)], 1), runtime::Logits::Last,
                     &one);
      for (int64_t i = 0; i < spec.vocab; ++i) {
        const size_t at = static_cast<size_t>(t * spec.vocab + i);
        ASSERT_NEAR(one[static_cast<size_t>(i)], all[at], tol) << t;
        worst_vs_fp32 = std::max(worst_vs_fp32, static_cast<double>(std::abs(all[at] - exact[at])));
      }
    }
    EXPECT_GT(worst_vs_fp32, 0.0);  // the cache really holds rounded values
    double largest = 0;
    for (float v : exact) largest = std::max(largest, static_cast<double>(std::abs(v)));
    // The random tiny model amplifies a cached value's rounding into its logits (measured: 1.7 % of the
    // largest logit with bf16, 0.2 % with fp16, the 8x of their 3 bits of mantissa difference).
    EXPECT_LT(worst_vs_fp32, (storage == DType::BF16 ? 0.05 : 0.01) * largest);
  }
  EXPECT_THROW(tf.set_kv_storage(DType::I8), Error);
}

TEST(Forward, ThreadCountDoesNotChangeResults) {
  TempDir tmp("threads");
  testing::write_tiny_model(tmp.path(), TinySpec{});
  auto model = Model::open(tmp.path());
  runtime::Transformer tf(*model);
  const auto tokens = some_tokens(40, TinySpec{}.vocab);
  std::vector<float> a, b;
  set_global_threads(1);
  runtime::Session(tf).forward(tokens, runtime::Logits::All, &a);
  set_global_threads(2);
  runtime::Session(tf).forward(tokens, runtime::Logits::All, &b);
  set_global_threads(0);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5);
}

TEST(Forward, RejectsOutOfVocabularyTokens) {
  TempDir tmp("oov");
  testing::write_tiny_model(tmp.path(), TinySpec{});
  auto model = Model::open(tmp.path());
  runtime::Transformer tf(*model);
  runtime::Session s(tf);
  std::vector<float> logits;
  const std::vector<int32_t> bad = {1, 61};
  EXPECT_THROW(s.forward(bad, runtime::Logits::Last, &logits), Error);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(s.forward(negative, runtime::Logits::Last, &logits), Error);
}

// This process's resident set in bytes (VmRSS of /proc/self/status; -1 where there is none).
int64_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

// An untied embedding table is looked up with reads of the file, not through the mapping: 512 lookups into an
// 8 MiB bf16 table leave the resident set where it was. Through the mapping, each lookup would map at least
// the row's page (about 450 distinct 4 KiB pages here, 1.8 MB; with the kernel's 64 KiB fault-around most of
// the table). The rows themselves must equal the stored values either way.
TEST(Forward, UntiedEmbeddingLookupsStayOutOfTheResidentSet) {
  if (resident_bytes() < 0) GTEST_SKIP() << "no /proc/self/status";
  TempDir tmp("embed_rss");
  TinySpec spec;
  spec.vocab = 16384;
  spec.hidden = 256;
  spec.intermediate = 32;
  spec.layers = 1;
  spec.dtype = DType::BF16;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path(), spec);
  auto model = Model::open(tmp.path());
  ASSERT_FALSE(model->lm_head_tied());
  runtime::Transformer tf(*model);
  const std::vector<int32_t> tokens = some_tokens(512, spec.vocab);
  std::vector<float> rows(tokens.size() * static_cast<size_t>(spec.hidden), 1.0f);  // touched up front
  const int64_t before = resident_bytes();
  tf.embed(tokens.data(), static_cast<int64_t>(tokens.size()), rows.data());
  const int64_t grown = resident_bytes() - before;
  EXPECT_LT(grown, int64_t{256} << 10) << "the resident set grew by " << grown << " bytes";
  const std::vector<float>& table = tiny.weights.at("model.embed_tokens.weight");
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int64_t j = 0; j < spec.hidden; ++j)
      ASSERT_EQ(rows[t * static_cast<size_t>(spec.hidden) + static_cast<size_t>(j)],
                table[static_cast<size_t>(tokens[t] * spec.hidden + j)])
          << "token " << tokens[t] << " column " << j;
}

TEST(Model, ValidatesTensorsAgainstConfig) {
  TempDir tmp("validate");
  testing::TinyModel tiny = testing::write_tiny_model(tmp.path(), TinySpec{});
  // A config whose intermediate size disagrees with the stored MLP weights.
  nlohmann::json cfg = tiny.config;
  cfg["intermediate_size"] = 41;
  write_file_atomic(tmp.path() / "config.json", cfg.dump());
  try {
    Model::open(tmp.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.gate_proj.weight"), std::string::npos)
        << e.what();
  }
  // Qwen2 requires q/k/v biases, which this Llama checkpoint lacks.
  cfg = tiny.config;
  cfg["architectures"] = {"Qwen2ForCausalLM"};
  cfg["model_type"] = "qwen2";
  write_file_atomic(tmp.path() / "config.json", cfg.dump());
  try {
    Model::open(tmp.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q_proj.bias"), std::string::npos) << e.what();
  }
}

TEST(Model, VisitorsAndTiedHead) {
  TempDir tmp("visit");
  TinySpec s;
  s.tie = true;
  testing::write_tiny_model(tmp.path(), s);
  auto model = Model::open(tmp.path());
  EXPECT_TRUE(model->lm_head_tied());
  EXPECT_EQ(model->lm_head().weight.data, model->embed_tokens().data);
  std::vector<std::string> names;
  model->for_each_linear([&](const LinearModule& m) { names.push_back(m.name); });
  ASSERT_EQ(names.size(), static_cast<size_t>(7 * s.layers));  // tied lm_head not visited by default
  EXPECT_EQ(names.front(), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(names.back(), "model.layers.1.mlp.down_proj");
  int with_head = 0;
  model->for_each_linear([&](const LinearModule&) { ++with_head; }, /*include_tied_lm_head=*/true);
  EXPECT_EQ(with_head, 7 * s.layers + 1);
  int tensors = 0;
  model->for_each_tensor([&](const std::string&, const TensorView&) { ++tensors; });
  EXPECT_EQ(tensors, 2 + 9 * s.layers);  // embed, norm; per layer 2 norms + 7 weights
}

TEST(Generate, GreedyIsDeterministicAndMatchesArgmaxOfFullForward) {
  TempDir tmp("gen");
  testing::write_tiny_model(tmp.path(), TinySpec{});
  auto model = Model::open(tmp.path());
  runtime::Transformer tf(*model);
  const std::vector<int32_t> prompt = {1, 5, 9};
  runtime::GenerateOptions opt;
  opt.max_new_tokens = 12;
  opt.ignore_eos = true;
  std::vector<int32_t> streamed;
  const auto r = runtime::generate(tf, prompt, opt, [&](int32_t t) {
    streamed.push_back(t);
    return true;
  });
  ASSERT_EQ(r.tokens.size(), 12u);
  EXPECT_EQ(streamed, r.tokens);
  // Re-running prompt + generated tokens in one prefill: each generated token is the argmax after its prefix.
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), r.tokens.begin(), r.tokens.end());
  std::vector<float> all;
  runtime::Session(tf).forward(seq, runtime::Logits::All, &all);
  const int64_t V = tf.config().vocab_size;
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    const size_t row = prompt.size() - 1 + i;
    EXPECT_EQ(runtime::argmax({all.data() + row * V, static_cast<size_t>(V)}), r.tokens[i]) << i;
  }
  // Sampling: the same seed gives the same tokens, another seed (almost surely) others.
  opt.sampler.temperature = 1.0f;
  opt.sampler.top_p = 0.9f;
  opt.sampler.seed = 42;
  const auto s1 = runtime::generate(tf, prompt, opt);
  const auto s2 = runtime::generate(tf, prompt, opt);
  EXPECT_EQ(s1.tokens, s2.tokens);
  opt.sampler.seed = 43;
  EXPECT_NE(runtime::generate(tf, prompt, opt).tokens, s1.tokens);
  // Early stop from the callback, and stop tokens.
  opt.sampler = {};
  EXPECT_EQ(runtime::generate(tf, prompt, opt, [](int32_t) { return false; }).tokens.size(), 1u);
  opt.ignore_eos = false;
  opt.stop_tokens = {r.tokens[3]};
  const auto stopped = runtime::generate(tf, prompt, opt);
  EXPECT_TRUE(stopped.stopped_at_eos);
  EXPECT_EQ(stopped.tokens.back(), r.tokens[3]);
}

}  // namespace
}  // namespace lowbit

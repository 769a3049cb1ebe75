// The fp32 forward pass against transformers' logits on real checkpoints (tests/fixtures/logits/*.json,
// tools/reference/make_logits_fixtures.py; format in /work/notes/fixtures.md): lowbit-ref-100m (bf16,
// GQA 12/4, tied embeddings; skipped without the shared assets) and the bundled stories260K folder (against
// transformers and against llama2.c's own forward, tools/reference/llama2c_reference.py).
// Each prompt runs as one prefill and token by token through the KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "runtime/transformer.h"
#include "util/files.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::vector<float> read_f32(const fs::path& path, size_t count) {
  const std::string bytes = read_file(path);
  EXPECT_EQ(bytes.size(), count * sizeof(float)) << path;
  std::vector<float> out(count);
  std::memcpy(out.data(), bytes.data(), std::min(bytes.size(), count * sizeof(float)));
  return out;
}

struct RowStats {
  double max_logit, logsumexp;
  int32_t argmax;
};
RowStats stats(const float* row, int64_t n) {
  RowStats s{row[0], 0.0, 0};
  for (int64_t i = 1; i < n; ++i) {
    if (row[i] > s.max_logit) {
      s.max_logit = row[i];
      s.argmax = static_cast<int32_t>(i);
    }
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i]) - s.max_logit);
  s.logsumexp = s.max_logit + std::log(sum);
  return s;
}

// `logits` holds rows for positions [first, first + rows) of the prompt.
void check_rows(const json& p, const float* logits, int64_t first, int64_t rows, int64_t vocab, double tol,
                const fs::path& fixtures) {
  const auto argmax = p.at("argmax").get<std::vector<int32_t>>();
  const auto max_logit = p.at("max_logit").get<std::vector<double>>();
  const auto lse = p.at("logsumexp").get<std::vector<double>>();
  const auto gap = p.at("top2_gap").get<std::vector<double>>();
  for (int64_t r = 0; r < rows; ++r) {
    const size_t pos = static_cast<size_t>(first + r);
    const RowStats s = stats(logits + r * vocab, vocab);
    EXPECT_NEAR(s.max_logit, max_logit[pos], tol) << "position " << pos;
    EXPECT_NEAR(s.logsumexp, lse[pos], tol) << "position " << pos;
    if (gap[pos] >= 2 * tol) {
      EXPECT_EQ(s.argmax, argmax[pos]) << "position " << pos;
    }
  }
  auto compare = [&](const json& ref, const float* got, int64_t n_rows) {
    const auto want =
        read_f32(fixtures / ref.at("file").get<std::string>(), static_cast<size_t>(n_rows * vocab));
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]));
    EXPECT_LE(worst, tol) << ref.at("file");
    std::printf("%s: max |logit - reference| = %.3g\n", ref.at("file").get<std::string>().c_str(), worst);
  };
  const int64_t n = static_cast<int64_t>(argmax.size());
  if (first + rows == n) compare(p.at("last_logits"), logits + (rows - 1) * vocab, 1);
  if (first == 0 && rows == n && p.contains("all_logits")) compare(p.at("all_logits"), logits, n);
}

void check_model(const fs::path& model_dir, const std::string& tag, double tol) {
  const fs::path fixtures = fs::path(LOWBIT_FIXTURES_DIR) / "logits";
  if (!fs::exists(fixtures / (tag + ".json"))) GTEST_SKIP() << "no fixture " << tag << ".json";
  if (!fs::exists(model_dir / "config.json")) GTEST_SKIP() << "model folder absent: " << model_dir;
  const json fx = json::parse(read_file(fixtures / (tag + ".json")));
  auto model = Model::open(model_dir);
  runtime::Transformer tf(*model);
  const int64_t vocab = model->config().vocab_size;
  ASSERT_EQ(vocab, fx.at("vocab_size").get<int64_t>());
  for (const json& p : fx.at("prompts")) {
    SCOPED_TRACE(p.at("name").get<std::string>());
    const auto ids = p.at("ids").get<std::vector<int32_t>>();
    const int64_t n = static_cast<int64_t>(ids.size());
    // One prefill over the prompt.
    runtime::Session prefill(tf);
    std::vector<float> all;
    prefill.forward(ids, runtime::Logits::All, &all);
    check_rows(p, all.data(), 0, n, vocab, tol, fixtures);
    // Token by token through the KV cache.
    runtime::Session decode(tf);
    std::vector<float> last;
    for (int64_t t = 0; t < n; ++t) {
      decode.forward(std::span<const int32_t>(&ids[static_cast<size_t>(t)], 1), runtime::Logits::Last, &last);
      check_rows(p, last.data(), t, 1, vocab, tol, fixtures);
    }
  }
}

TEST(ReferenceLogits, LowbitRef100m) {
  check_model(fs::path(LOWBIT_SHARED_DIR) / "models/lowbit-ref-100m", "ref100m", 1e-3);
}

// The llama2.c original run by a numpy port of run.c (float64) on stories260K.bin, against lowbit's forward
// on the converted folder: checks the RoPE row permutation of the import as much as the forward pass.
TEST(ReferenceLogits, Stories260KAgainstLlama2c) {
  check_model(fs::path(LOWBIT_SOURCE_DIR) / "models/stories260K", "llama2c_stories260K", 1e-4);
}

TEST(ReferenceLogits, Stories260K) {
  check_model(fs::path(LOWBIT_SOURCE_DIR) / "models/stories260K", "stories260K", 1e-4);
}

}  // namespace
}  // namespace lowbit

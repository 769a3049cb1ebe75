// Perplexity of real models against transformers (tests/fixtures/ppl/*.json from
// tools/reference/ppl_reference.py; format in /work/notes/fixtures.md): the text is tokenized as a whole
// by lowbit's tokenizer (checked against the fixture's token count and first ids), then the first windows'
// NLL sums are compared (the full runs take minutes and belong to the benchmarks).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/files.h"

namespace lowbit::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Runs the first `windows` windows of fixture result `name` and compares the NLL sum (relative `tol`).
void check(const std::string& fixture, const std::string& name, const fs::path& model_dir,
           const fs::path& text, int64_t windows, double tol) {
  const fs::path path = fs::path(LOWBIT_FIXTURES_DIR) / "ppl" / fixture;
  if (!fs::exists(path)) GTEST_SKIP() << "no fixture " << path;
  if (!fs::exists(model_dir / "config.json")) GTEST_SKIP() << "model folder absent: " << model_dir;
  if (!fs::exists(text)) GTEST_SKIP() << "text absent: " << text;
  const json r = json::parse(read_file(path)).at("results").at(name);

  auto model = Model::open(model_dir);
  runtime::Transformer tf(*model);
  const Tokenizer tok = Tokenizer::load(model_dir);
  const std::vector<int32_t> ids = tok.encode(read_file(text), true);
  ASSERT_EQ(static_cast<int64_t>(ids.size()), r.at("text_tokens").get<int64_t>());
  const auto first = r.at("first_ids").get<std::vector<int32_t>>();
  ASSERT_TRUE(std::equal(first.begin(), first.end(), ids.begin()));

  PerplexityOptions o;
  o.ctx = r.at("ctx").get<int64_t>();
  const int64_t all_windows = r.at("windows").get<int64_t>();
  windows = std::min(windows, all_windows);
  o.max_tokens = windows == all_windows ? 0 : windows * o.ctx;
  const PerplexityResult got = perplexity(tf, ids, o);
  ASSERT_EQ(got.windows, windows);
  ASSERT_EQ(got.tokens, windows * (o.ctx - 1));
  double want = 0;
  for (int64_t w = 0; w < windows; ++w) want += r.at("window_nll").at(static_cast<size_t>(w)).get<double>();
  const double total = got.nll * static_cast<double>(got.tokens);
  EXPECT_NEAR(total, want, tol * want);
  std::printf("%s %s: %lld windows, nll sum %.6f vs transformers %.6f (rel %.2g), ppl %.4f, %.2f s\n",
              fixture.c_str(), name.c_str(), static_cast<long long>(windows), total, want,
              std::abs(total - want) / want, got.ppl, got.seconds);
  if (windows == all_windows) {
    EXPECT_NEAR(got.ppl, r.at("ppl").get<double>(), tol * got.ppl);
  }
}

TEST(PerplexityReference, Ref100mHeldoutFirstWindows) {
  const fs::path shared(LOWBIT_SHARED_DIR);
  check("ref100m.json", "ref100m_heldout", shared / "models/lowbit-ref-100m",
        shared / "data/eval/ref100m_heldout.txt", 2, 1e-4);
}

TEST(PerplexityReference, Stories260KWhole) {
  const fs::path src(LOWBIT_SOURCE_DIR);
  check("stories260K.json", "tinystories_sample", src / "models/stories260K",
        src / "data/demo/tinystories_sample.txt", 1 << 30, 1e-4);
}

}  // namespace
}  // namespace lowbit::eval

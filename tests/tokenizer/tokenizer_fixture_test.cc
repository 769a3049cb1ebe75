// Every id of the golden fixtures (tools/reference/tokenizer_fixtures.py, produced with Hugging Face
// `tokenizers`) must be reproduced, and decoding must give the same text as `tokenizers`.
#include <gtest/gtest.h>

#include <fstream>

#include "tokenizer_test_util.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::cached_tokenizer;
using testing::fixture_path;
using testing::read_json;

struct Case {
  std::string text;
  std::vector<int32_t> ids, ids_special;
  std::string decoded, decoded_keep_special;
};

std::vector<Case> load_cases(const json& fixture) {
  std::vector<Case> cases;
  for (const json& c : fixture.at("cases")) {
    Case k;
    if (c.at("text").is_null()) {
      // A prefix of a shared file (kept out of the repository).
      std::ifstream in(testing::shared_dir() / c.at("text_file").get<std::string>(), std::ios::binary);
      k.text.resize(c.at("text_bytes").get<size_t>());
      in.read(k.text.data(), static_cast<std::streamsize>(k.text.size()));
      EXPECT_TRUE(in) << "cannot read " << c.at("text_file");
    } else {
      k.text = c.at("text").get<std::string>();
    }
    k.ids = c.at("ids").get<std::vector<int32_t>>();
    k.ids_special = c.at("ids_special").get<std::vector<int32_t>>();
    k.decoded = c.at("decoded").get<std::string>();
    k.decoded_keep_special = c.value("decoded_keep_special", k.decoded);
    cases.push_back(std::move(k));
  }
  return cases;
}

// Index of the first difference (for readable failures).
size_t first_difference(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  StreamDecoder stream(tok, skip_special);
  std::string out;
  for (const int32_t id : ids) out += stream.push(id);
  out += stream.finish();
  return out;
}

class TokenizerFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerFixtureTest, MatchesHuggingFaceTokenizers) {
  LOWBIT_REQUIRE_SHARED();
  const json fixture = read_json(fixture_path(GetParam()));
  const Tokenizer& tok = cached_tokenizer(fixture.at("tokenizer").get<std::string>(), fixture.at("variant"));
  const std::vector<Case> cases = load_cases(fixture);
  ASSERT_GT(cases.size(), 50u);
  size_t total_ids = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE("text: " + c.text.substr(0, 80));
    const std::vector<int32_t> ids = tok.encode(c.text, false);
    EXPECT_EQ(ids, c.ids) << "first difference at index " << first_difference(ids, c.ids);
    EXPECT_EQ(tok.encode(c.text, true), c.ids_special);
    EXPECT_EQ(tok.decode(c.ids_special, true), c.decoded);
    EXPECT_EQ(tok.decode(c.ids_special, false), c.decoded_keep_special);
    // Streaming gives exactly the full decode, with and without special tokens.
    EXPECT_EQ(stream_decode(tok, c.ids_special, true), c.decoded);
    EXPECT_EQ(stream_decode(tok, c.ids_special, false), c.decoded_keep_special);
    total_ids += c.ids.size();
  }
  // The WikiText slice is part of the fixtures of unmodified tokenizers.
  const bool has_wikitext = fixture.at("variant").is_null();
  EXPECT_TRUE(!has_wikitext || total_ids > 10000u) << total_ids << " ids";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerFixtureTest,
                         ::testing::Values("llama2", "mistral", "qwen3", "llama2_metaspace_first",
                                           "llama2_metaspace_always_split", "llama2_added_flags",
                                           "qwen3_added_flags"));

// Plain text (no added-token strings) decodes back to itself: SentencePiece keeps every space and
// byte fallback keeps every character; byte-level BPE keeps every byte (NFC text stays NFC).
TEST(TokenizerRoundTrip, DecodeOfEncodeIsIdentity) {
  LOWBIT_REQUIRE_SHARED();
  const std::vector<std::string> texts = {"Hello world",
                                          "  two leading spaces",
                                          "tabs\tand\nnewlines\n\n",
                                          "Café 東京 😀 👨\u200d👩\u200d👧",
                                          "    indented code;",
                                          "trailing spaces   ",
                                          "मनुष्य",
                                          "x = [1, 2, 3]\r\n"};
  for (const std::string folder : {"llama2", "mistral", "qwen3"}) {
    const Tokenizer& tok = cached_tokenizer(folder);
    for (const std::string& t : texts) {
      EXPECT_EQ(tok.decode(tok.encode(t, true), true), t) << folder;
      EXPECT_EQ(tok.decode(tok.encode(t, false), false), t) << folder;
    }
  }
}

}  // namespace
}  // namespace lowbit

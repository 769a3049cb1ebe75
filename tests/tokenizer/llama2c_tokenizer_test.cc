// llama2.c tokenizer.bin conversion: the Llama-2 tokenizer.bin must become the published
// tokenizer.json (same vocabulary, same merges in the same order) and tokenize like it.
#include <gtest/gtest.h>

#include <fstream>

#include "tokenizer_test_util.h"
#include "util/error.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::read_json;

std::vector<std::pair<std::string, std::string>> merge_pairs(const json& merges) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const json& m : merges) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      out.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
  return out;
}

TEST(Llama2cTokenizer, ConvertsToThePublishedTokenizerJson) {
  LOWBIT_REQUIRE_SHARED();
  const auto dir = testing::tokenizer_dir("llama2");
  const json converted = llama2c_tokenizer_to_hf_json(dir / "llama2c_tokenizer.bin", 32000);
  const json published = read_json(dir / "tokenizer.json");
  EXPECT_EQ(converted.at("model").at("vocab"), published.at("model").at("vocab"));
  const auto ours = merge_pairs(converted.at("model").at("merges"));
  const auto theirs = merge_pairs(published.at("model").at("merges"));
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < ours.size(); ++i) ASSERT_EQ(ours[i], theirs[i]) << "merge " << i;
  for (const char* key : {"normalizer", "pre_tokenizer", "decoder", "added_tokens"})
    EXPECT_EQ(converted.at(key), published.at(key)) << key;
}

TEST(Llama2cTokenizer, TokenizesTheFixtureCorpusLikeTokenizerJson) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer tok =
      load_llama2c_tokenizer(testing::tokenizer_dir("llama2") / "llama2c_tokenizer.bin", 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_TRUE(tok.add_bos());
  const json fixture = read_json(testing::fixture_path("llama2"));
  size_t compared = 0;
  for (const json& c : fixture.at("cases")) {
    if (c.at("text").is_null()) continue;  // the WikiText case is covered by the fixture test
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(tok.encode(text, false), c.at("ids").get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok.encode(text, true), c.at("ids_special").get<std::vector<int32_t>>()) << text;
    ++compared;
  }
  EXPECT_GT(compared, 50u);
  // And on a large text, against the tokenizer.json implementation (itself checked on WikiText).
  const std::string wiki =
      read_file(testing::shared_dir() / "data" / "eval" / "wikitext2_test.raw").substr(0, 200000);
  EXPECT_EQ(tok.encode(wiki), testing::cached_tokenizer("llama2").encode(wiki));
}

TEST(Llama2cTokenizer, Stories260KTokenizerRoundTrips) {
  LOWBIT_REQUIRE_SHARED();
  const auto path = testing::shared_dir() / "models" / "stories260K" / "tok512.bin";
  const Tokenizer tok = load_llama2c_tokenizer(path, 512);
  EXPECT_EQ(tok.vocab_size(), 512);
  const std::string text = "Once upon a time, there was a little girl named Lily. 😀";
  const auto ids = tok.encode(text);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_LT(ids.size(), text.size());  // merges were applied
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(Llama2cTokenizer, RejectsAWrongVocabSizeOrTruncatedFile) {
  LOWBIT_REQUIRE_SHARED();
  const auto path = testing::shared_dir() / "models" / "stories260K" / "tok512.bin";
  EXPECT_THROW(llama2c_tokenizer_to_hf_json(path, 511), Error);  // bytes left over
  EXPECT_THROW(llama2c_tokenizer_to_hf_json(path, 513), Error);  // truncated
  try {
    llama2c_tokenizer_to_hf_json(path, 513);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tok512.bin"), std::string::npos) << e.what();
  }
  EXPECT_THROW(llama2c_tokenizer_to_hf_json(path.parent_path() / "missing.bin", 512), Error);
}

}  // namespace
}  // namespace lowbit

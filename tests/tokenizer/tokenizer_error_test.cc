// Unsupported or malformed tokenizer descriptions and bad input fail with lowbit::Error naming the
// source and the problem; nothing is approximated silently.
#include <gtest/gtest.h>

#include "tokenizer_test_util.h"
#include "util/error.h"

namespace lowbit {
namespace {

using nlohmann::json;

// A tiny valid byte-level-free BPE tokenizer.json to mutate.
json tiny_bpe() {
  return json::parse(R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true, "normalized": false}],
    "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false,
              "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3}, "merges": ["a b"]}})");
}

// Expects from_json to throw an Error whose message contains every one of `needles`.
void expect_error(const json& tj, std::initializer_list<std::string> needles) {
  try {
    Tokenizer::from_json(tj, nullptr, "my/tokenizer.json");
    ADD_FAILURE() << "no error for " << tj.dump().substr(0, 200);
  } catch (const Error& e) {
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, TinyBpeWorks) {
  const Tokenizer tok = Tokenizer::from_json(tiny_bpe(), nullptr, "tiny");
  EXPECT_EQ(tok.encode("abab"), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(tok.encode("acb"), (std::vector<int32_t>{1, 0, 2}));   // unknown -> <unk>
  EXPECT_EQ(tok.encode("accb"), (std::vector<int32_t>{1, 0, 2}));  // fused
  EXPECT_EQ(tok.decode(std::vector<int32_t>{3, 1}), "ab a");       // no decoder: joined by spaces
}

TEST(TokenizerErrors, UnsupportedModels) {
  json tj = tiny_bpe();
  tj["model"]["type"] = "WordPiece";
  expect_error(tj, {"my/tokenizer.json", "WordPiece"});
  tj["model"]["type"] = "Unigram";
  expect_error(tj, {"my/tokenizer.json", "Unigram"});
  tj = tiny_bpe();
  tj["model"]["dropout"] = 0.1;
  expect_error(tj, {"my/tokenizer.json", "dropout"});
}

TEST(TokenizerErrors, UnsupportedPipelineParts) {
  json tj = tiny_bpe();
  tj["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(tj, {"my/tokenizer.json", "BertNormalizer"});
  tj = tiny_bpe();
  tj["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(tj, {"my/tokenizer.json", "Whitespace"});
  tj = tiny_bpe();
  tj["decoder"] = {{"type", "WordPiece"}};
  expect_error(tj, {"my/tokenizer.json", "WordPiece"});
  tj = tiny_bpe();
  tj["post_processor"] = {{"type", "Mystery"}};
  expect_error(tj, {"my/tokenizer.json", "Mystery"});
  tj = tiny_bpe();
  tj["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error(tj, {"my/tokenizer.json", "regex"});
}

TEST(TokenizerErrors, MalformedDescriptions) {
  json tj = tiny_bpe();
  tj["model"]["merges"] = json::array({"a c"});
  expect_error(tj, {"my/tokenizer.json", "'c'"});
  tj = tiny_bpe();
  tj["model"].erase("vocab");
  expect_error(tj, {"my/tokenizer.json", "vocab"});
  expect_error(json::object(), {"my/tokenizer.json", "model"});
}

TEST(TokenizerErrors, MissingFileAndInvalidJson) {
  EXPECT_THROW(Tokenizer::load("/nonexistent/folder"), Error);
  const auto bad = std::filesystem::temp_directory_path() / "lowbit_tok_bad.json";
  write_file_atomic(bad, "{ not json");
  try {
    Tokenizer::load(bad);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lowbit_tok_bad.json"), std::string::npos) << e.what();
  }
  std::filesystem::remove(bad);
}

TEST(TokenizerErrors, InvalidUtf8Input) {
  const Tokenizer tok = Tokenizer::from_json(tiny_bpe(), nullptr, "tiny");
  EXPECT_THROW(tok.encode("ab\xC3"), Error);
  EXPECT_THROW(tok.encode("\xFF"), Error);
}

TEST(TokenizerErrors, DecodeSkipsUnknownIds) {
  const Tokenizer tok = Tokenizer::from_json(tiny_bpe(), nullptr, "tiny");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{-5, 3, 99}), "ab");
}

}  // namespace
}  // namespace lowbit

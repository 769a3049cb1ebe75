// StreamDecoder: incremental text never contains a partial UTF-8 character, byte-fallback tokens
// combine across pushes, and the SentencePiece leading-space strip happens only at stream start.
#include <gtest/gtest.h>

#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace lowbit {
namespace {

using testing::cached_tokenizer;

TEST(StreamDecoder, ByteFallbackCharacterIsHeldUntilComplete) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer& tok = cached_tokenizer("llama2");
  // U+1F600 is not in the Llama-2 vocabulary: "▁" then four byte tokens.
  const auto ids = tok.encode("\U0001F600", false);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(tok.token(ids[1]), "<0xF0>");
  StreamDecoder stream(tok);
  std::vector<std::string> pieces;
  for (const int32_t id : ids) pieces.push_back(stream.push(id));
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "", "", "", "\U0001F600"}));
  EXPECT_EQ(stream.finish(), "");
}

TEST(StreamDecoder, LeadingSpaceIsStrippedOnlyAtStart) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer& tok = cached_tokenizer("llama2");
  const auto ids = tok.encode("Hello world", true);  // <s> ▁Hello ▁world
  ASSERT_EQ(ids.size(), 3u);
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "Hello");
  EXPECT_EQ(stream.push(ids[2]), " world");
  stream.reset();
  EXPECT_EQ(stream.push(ids[2]), "world");
}

TEST(StreamDecoder, ByteLevelMultiByteCharactersAcrossTokens) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer& tok = cached_tokenizer("qwen3");
  const std::string text = "emoji 👨\u200d👩\u200d👧\u200d👦 and 東京 and हिन्दी";
  const auto ids = tok.encode(text, false);
  StreamDecoder stream(tok);
  std::string joined;
  int empty_pushes = 0;
  for (const int32_t id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_TRUE(tokenizer_detail::is_valid_utf8(piece)) << "partial UTF-8 emitted";
    empty_pushes += piece.empty();
    joined += piece;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, text);
  EXPECT_GT(empty_pushes, 0);  // some characters really were split over tokens
}

TEST(StreamDecoder, FinishFlushesAnIncompleteCharacterAsReplacement) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer& tok = cached_tokenizer("llama2");
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(*tok.token_to_id("<0xE6>")), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");
  // A full decode of the same ids agrees.
  const std::vector<int32_t> ids = {*tok.token_to_id("<0xE6>")};
  EXPECT_EQ(tok.decode(ids), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace lowbit

// The small public surface other stages use: special ids, BOS/EOS policy, vocabulary access.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tokenizer_test_util.h"

namespace lowbit {
namespace {

using testing::cached_tokenizer;

TEST(TokenizerApi, Llama2SpecialTokens) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer& tok = cached_tokenizer("llama2");
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.pad_id(), -1);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_EQ(tok.token(1), "<s>");
  EXPECT_EQ(tok.token(13), "<0x0A>");
  EXPECT_EQ(tok.token(-1), "");
  EXPECT_EQ(tok.token(32000), "");
  EXPECT_EQ(tok.token_to_id("\u2581the"), 278);
  EXPECT_FALSE(tok.token_to_id("no such token").has_value());
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_FALSE(tok.is_special(278));
  // encode(text, true) = BOS + encode(text, false), as transformers' tokenizer(text).
  const auto plain = tok.encode("The history of the", false);
  auto with_bos = plain;
  with_bos.insert(with_bos.begin(), 1);
  EXPECT_EQ(tok.encode("The history of the", true), with_bos);
  EXPECT_EQ(tok.encode("", true), std::vector<int32_t>{1});
}

TEST(TokenizerApi, Qwen3SpecialTokens) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer& tok = cached_tokenizer("qwen3");
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_EQ(tok.bos_id(), -1);      // Qwen has no BOS
  EXPECT_EQ(tok.eos_id(), 151645);  // <|im_end|> per tokenizer_config.json
  EXPECT_EQ(tok.pad_id(), 151643);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_EQ(tok.encode("hi", true), tok.encode("hi", false));
  EXPECT_TRUE(tok.is_special(151644));
  EXPECT_FALSE(tok.is_special(151667));  // <think> is an added token but not special
  EXPECT_EQ(tok.token(151667), "<think>");
}

TEST(TokenizerApi, ReferenceModelFolderUsesLlama2Tokenizer) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer ref = Tokenizer::load(testing::shared_dir() / "models" / "lowbit-ref-100m");
  const Tokenizer& llama = cached_tokenizer("llama2");
  const std::string text = "Once upon a time, there was a little girl named Lily.";
  EXPECT_EQ(ref.encode(text), llama.encode(text));
  EXPECT_EQ(ref.bos_id(), 1);
  EXPECT_TRUE(ref.add_bos());
}

TEST(TokenizerApi, LoadAcceptsTheJsonFilePath) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer tok = Tokenizer::load(testing::tokenizer_dir("mistral") / "tokenizer.json");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_TRUE(tok.add_bos());  // from the tokenizer_config.json next to it
}

TEST(TokenizerApi, CopiesShareStateAndAreThreadSafe) {
  LOWBIT_REQUIRE_SHARED();
  const Tokenizer tok = cached_tokenizer("qwen3");  // a copy
  const std::string text = "Concurrent encoders share one word cache. 同时 🚀";
  const auto expected = tok.encode(text);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i)
        if (tok.encode(text) != expected) ++mismatches;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// Long runs (one huge SentencePiece word, one huge regex match, 200k byte-fallback tokens) neither
// fail nor lose text.
TEST(TokenizerRobustness, LongRuns) {
  LOWBIT_REQUIRE_SHARED();
  for (const std::string folder : {"llama2", "qwen3"}) {
    const Tokenizer& tok = testing::cached_tokenizer(folder);
    for (const std::string unit : {" ", "a", "\n", "東", "😀", " \n", "1"}) {
      std::string text;
      while (text.size() < 200000) text += unit;
      const auto ids = tok.encode(text, false);
      EXPECT_FALSE(ids.empty());
      EXPECT_EQ(tok.decode(ids), text) << folder << " unit '" << unit << "'";
    }
  }
}

// Random mixtures of scripts, emoji, joiners, whitespace and ASCII round-trip exactly (the pool is
// NFC-stable and avoids "▁", which SentencePiece tokenizers decode as a space).
TEST(TokenizerRobustness, RandomTextRoundTrips) {
  LOWBIT_REQUIRE_SHARED();
  const std::vector<std::string> pool = {"a", "Z",  "7", " ",  "  ", "\n", "\t",       "\r\n",
                                         ".", "'s", "é", "東", "京", "😀",  "👍🏽", "\u200d",
                                         "न", "ि",  "م", "ß",  "{",  "_",  "<",        "Ġ"};
  std::mt19937 rng(1234);
  for (const std::string folder : {"llama2", "mistral", "qwen3"}) {
    const Tokenizer& tok = testing::cached_tokenizer(folder);
    for (int n = 0; n < 300; ++n) {
      std::string text;
      const int len = static_cast<int>(rng() % 40);
      for (int i = 0; i < len; ++i) text += pool[rng() % pool.size()];
      EXPECT_EQ(tok.decode(tok.encode(text, false)), text) << folder;
      // Streaming agrees with the full decode.
      StreamDecoder stream(tok);
      std::string streamed;
      for (const int32_t id : tok.encode(text, true)) streamed += stream.push(id);
      streamed += stream.finish();
      EXPECT_EQ(streamed, text) << folder;
    }
  }
}

}  // namespace
}  // namespace lowbit

// Text <-> token ids, compatible id-for-id with Hugging Face `tokenizers` for the BPE tokenizers we
// meet in practice:
//   * SentencePiece-style BPE (Llama-2, Mistral): "▁" word marker, byte fallback <0xNN>, unk fusion.
//   * Byte-level BPE with a regex pre-tokenizer (Qwen2/3, Llama-3, GPT-2 style).
// The model is read from a `tokenizer.json` (plus the optional `tokenizer_config.json` next to it).
// Anything outside that subset (WordPiece, Unigram, unknown normalizers ...) is rejected with a
// lowbit::Error that names the file and the feature, never silently approximated.
//
// encode(text, add_special_tokens) returns the ids of Hugging Face `tokenizers` for tokenizer.json
// (Tokenizer.from_file(...).encode(text, add_special_tokens=...).ids), with the special tokens that
// transformers' `tokenizer(text, add_special_tokens=...)["input_ids"]` adds:
//   * added tokens written in the text (e.g. "<s>", "<|im_start|>") are matched first, as
//     transformers does with split_special_tokens=False;
//   * add_special_tokens=true adds BOS/EOS. When tokenizer_config.json has `add_bos_token` /
//     `add_eos_token` (Llama-style tokenizers), those flags decide, as in transformers; otherwise the
//     tokenizer.json `post_processor` (TemplateProcessing, single sequence) decides. Llama-2 and
//     Mistral: BOS, no EOS. Qwen3: nothing.
// Known difference: transformers 5's LlamaTokenizer does not use the tokenizer.json pre-tokenizer
// as written (it rebuilds a Metaspace one) and then differs from `tokenizers` -- and from
// sentencepiece, which trained lowbit-ref-100m -- on leading and repeated spaces (" a" -> "▁a"
// instead of "▁▁a"). lowbit follows tokenizer.json, i.e. `tokenizers` and sentencepiece.
//
// A Tokenizer is immutable after load() and cheap to copy (shared state); encode/decode are safe to
// call from several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lowbit {

namespace tokenizer_detail {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // `path` is a folder holding tokenizer.json (and optionally tokenizer_config.json), or the path of
  // a tokenizer.json file (its folder is searched for tokenizer_config.json).
  static Tokenizer load(const std::filesystem::path& path);

  // Builds from already-parsed JSON. `config` may be null (no tokenizer_config.json). `source` names
  // the origin in error messages.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const nlohmann::json& config,
                             const std::string& source);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // Concatenated text of `ids`, through the tokenizer.json decoder (e.g. "▁" -> " ", byte fallback,
  // leading-space strip). With skip_special_tokens, added tokens marked special are dropped.
  // Invalid UTF-8 produced by byte tokens is replaced by U+FFFD, like the Python libraries do.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = true) const;

  // -1 when the tokenizer has no such token.
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  int32_t unk_id() const;
  // Whether encode(text, true) adds BOS / EOS.
  bool add_bos() const;
  bool add_eos() const;

  // One past the largest id (model vocabulary plus added tokens).
  int64_t vocab_size() const;
  // The token's text as stored in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>"); empty for an id
  // that is out of range or unused.
  std::string_view token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // True for added tokens flagged "special" (these are what skip_special_tokens removes).
  bool is_special(int32_t id) const;

  // Internal state, for StreamDecoder and tests.
  const tokenizer_detail::TokenizerImpl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl);
  std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl_;
};

// Incremental detokenization for generation: push ids one at a time and receive the text they
// complete. The concatenation of everything push() and finish() return equals
// tokenizer.decode(all_ids, skip_special_tokens) whenever the decoded bytes are valid UTF-8. Never
// returns a partial UTF-8 sequence: bytes of a character split over several byte tokens are held
// until the character is complete. (For invalid byte sequences both produce U+FFFD, but the count
// can differ: decode() follows tokenizers' ByteFallback, one U+FFFD per byte token of an invalid
// run, while the stream replaces each maximal invalid subsequence once. A Strip decoder's trailing
// `stop` is not applied to streams; no tokenizer we load has one.)
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true);

  // The newly completed text after adding `id` (possibly empty).
  std::string push(int32_t id);
  // Flushes bytes still pending (an incomplete UTF-8 sequence becomes U+FFFD) and resets.
  std::string finish();
  // Starts a new stream (the SentencePiece leading-space strip applies again).
  void reset();

 private:
  std::string emit(bool final);

  Tokenizer tokenizer_;
  bool skip_special_;
  bool first_token_ = true;  // no token passed to the decoder yet
  size_t strip_left_ = 0;    // leading spaces still to strip (Strip decoder, start of stream)
  std::string pending_;      // decoded bytes not yet returned (an incomplete UTF-8 tail)
};

// llama2.c `tokenizer.bin` (int32 max_token_length, then per token: float32 score, int32 length,
// bytes) converted into an equivalent Hugging Face tokenizer.json (SentencePiece-style BPE with byte
// fallback, merges derived from the vocabulary and scores as transformers' SentencePiece converter
// does). `vocab_size` is the number of tokens in the file (the model's vocab_size).
nlohmann::json llama2c_tokenizer_to_hf_json(const std::filesystem::path& tokenizer_bin, int64_t vocab_size);
// The matching tokenizer_config.json (BOS added, EOS not, as in llama2.c's encode(bos=1, eos=0)).
nlohmann::json llama2c_tokenizer_config();
// Convenience: load a llama2.c tokenizer.bin as a Tokenizer.
Tokenizer load_llama2c_tokenizer(const std::filesystem::path& tokenizer_bin, int64_t vocab_size);

}  // namespace lowbit

// Internal pieces of the tokenizer, one per stage of the Hugging Face pipeline:
//   added tokens -> normalizer -> pre-tokenizer -> BPE model -> post-processor ; decoder.
// Each is parsed from its tokenizer.json section and rejects what it does not implement.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit::tokenizer_detail {

using json = nlohmann::json;

// Hash map keyed by std::string that can be queried with a std::string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// ---- normalizer (normalizer.cc) -----------------------------------------------------------------
class Normalizer {
 public:
  // `spec` is the tokenizer.json "normalizer" value (may be null).
  static Normalizer parse(const json& spec, const std::string& source);
  bool empty() const { return steps_.empty(); }
  std::string apply(std::string_view text) const;

 private:
  struct Step {
    enum Kind { kPrepend, kReplace, kNfc, kNfd, kNfkc, kNfkd, kLowercase, kStrip } kind;
    std::string from, to;  // kPrepend: to; kReplace: from -> to
    bool strip_left = false, strip_right = false;
  };
  static void parse_into(const json& spec, const std::string& source, std::vector<Step>& steps);
  std::vector<Step> steps_;
};

// ---- regex (pretokenizer.cc) ----------------------------------------------------------------------
// A compiled PCRE2 pattern (UTF + UCP, JIT when available), shareable between threads.
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& source);
  // [begin, end) byte ranges of all non-overlapping matches, left to right.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  std::shared_ptr<void> code_;  // pcre2_code_8*
  bool jit_ = false;
};

// ---- pre-tokenizer (pretokenizer.cc) -------------------------------------------------------------
// Splits a normalized segment into words for the model.
class PreTokenizer {
 public:
  static PreTokenizer parse(const json& spec, const std::string& source);
  // `at_text_start`: the segment starts at offset 0 of the input (Metaspace prepend_scheme "first").
  void apply(std::string_view segment, bool at_text_start, std::vector<std::string>& words) const;

 private:
  enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    enum Kind { kSplit, kByteLevel, kMetaspace } kind;
    std::shared_ptr<Regex> regex;  // kSplit; kByteLevel with use_regex
    std::string literal;           // kSplit with a String pattern
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // kByteLevel
    std::string replacement;        // kMetaspace
    enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
    bool split = true;  // kMetaspace
  };
  static void parse_into(const json& spec, const std::string& source, std::vector<Step>& steps);
  static void split(const Step& step, std::string_view piece, std::vector<std::string>& out);
  std::vector<Step> steps_;
};

// The GPT-2 byte <-> printable-character table used by ByteLevel (encoded as UTF-8 strings).
const std::array<std::string, 256>& byte_level_chars();
// Appends the byte-level rendering of `bytes` (each byte as its printable character).
void append_byte_level(std::string& out, std::string_view bytes);

// ---- BPE model (bpe.cc) ----------------------------------------------------------------------------
class BpeModel {
 public:
  static std::unique_ptr<BpeModel> parse(const json& model, const std::string& source);
  // Appends the ids of one pre-tokenized word. Thread-safe; results are cached per word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  // For SentencePiece-style input (the whole text is one "word"): split words before every
  // `marker` ("▁") that follows another character, when the vocabulary proves that no merge can
  // cross such a point. Returns whether it was enabled. Speeds up long texts and makes the cache work.
  bool enable_marker_split(const std::string& marker);

  const StringMap<int32_t>& vocab() const { return vocab_; }
  int32_t unk_id() const { return unk_id_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void tokenize_word(std::string_view word, std::vector<int32_t>& out) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  StringMap<int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::array<int32_t, 256> byte_token_ids_{};  // id of "<0xNN>", -1 when absent
  std::string split_marker_;                   // see enable_marker_split

  // Word cache, split into shards so that concurrent encoders rarely wait on each other.
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCacheEntriesPerShard = 4096;
  struct CacheShard {
    std::mutex mutex;
    StringMap<std::vector<int32_t>> entries;
  };
  mutable std::array<CacheShard, kCacheShards> cache_;
};

// ---- added tokens (added_tokens.cc) ------------------------------------------------------------------
struct AddedToken {
  std::string content;
  std::string match;  // what is searched for: content, or normalized content when `normalized`
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// One piece of the input after added-token matching: either plain text for the model, or a token.
struct Segment {
  std::string_view text;  // plain text (when id < 0)
  int32_t id = -1;
  size_t offset = 0;  // byte offset of `text` in the input it was split from
};

// Leftmost-longest matcher over a set of added tokens.
class AddedTokenMatcher {
 public:
  void build(const std::vector<const AddedToken*>& tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` at matches; plain pieces keep their offsets relative to `text`.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  std::vector<const AddedToken*> tokens_;
  std::array<std::vector<const AddedToken*>, 256> by_first_byte_;  // by match, longest first
};

// ---- decoder (decoder.cc) --------------------------------------------------------------------------
class Decoder {
 public:
  static Decoder parse(const json& spec, const std::string& source);
  // The tokenizer.json decoder applied to the token strings, as in tokenizers' decode_chain.
  std::string decode(std::vector<std::string> tokens) const;

  // Streaming form. Renders one token as raw bytes (possibly partial UTF-8); `first` is true for the
  // first token passed to the decoder.
  std::string stream_bytes(std::string_view token, bool first) const;
  // Leading spaces to strip at the start of the decoded text (Strip decoder's `start`).
  size_t strip_start() const { return strip_start_; }
  // No decoder in tokenizer.json: tokens are joined with spaces.
  bool join_with_spaces() const { return steps_.empty(); }

 private:
  struct Step {
    enum Kind { kReplace, kByteFallback, kFuse, kStrip, kByteLevel, kMetaspace } kind;
    std::string from, to;    // kReplace; kMetaspace: from = replacement
    std::string strip_char;  // kStrip
    size_t start = 0, stop = 0;
    bool metaspace_strip_first = true;  // kMetaspace: prepend_scheme != "never"
  };
  static void parse_into(const json& spec, const std::string& source, std::vector<Step>& steps);
  std::vector<Step> steps_;
  size_t strip_start_ = 0;
};

// ---- the whole tokenizer (tokenizer.cc) --------------------------------------------------------------
struct TokenizerImpl {
  std::string source;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::vector<AddedToken> added_tokens;
  AddedTokenMatcher raw_matcher;         // added tokens with normalized=false
  AddedTokenMatcher normalized_matcher;  // added tokens with normalized=true
  Decoder decoder;

  std::vector<std::string> id_to_token;  // model vocabulary and added tokens
  std::vector<uint8_t> special;          // per id: an added token flagged special
  StringMap<int32_t> token_to_id;

  std::vector<int32_t> prefix_ids, suffix_ids;  // added by encode(text, true)
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  bool add_bos = false, add_eos = false;

  void encode_plain(std::string_view text, bool at_text_start, std::vector<int32_t>& out) const;
};

}  // namespace lowbit::tokenizer_detail

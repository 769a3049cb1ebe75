// llama2.c tokenizer.bin -> Hugging Face tokenizer.json.
//
// The file holds a SentencePiece BPE vocabulary as exported by llama2.c's tokenizer.py: int32
// max_token_length, then per token float32 score, int32 byte length, bytes. The export wrote "▁" as
// a plain space and BOS/EOS as "\n<s>\n" / "\n</s>\n"; both are undone here. Merges are derived the
// way transformers' SentencePiece converter derived the published Llama-2 tokenizer.json: every
// split of a piece into two pieces of the vocabulary is a merge; merges are ordered by the score of
// the merged piece (highest first, stable), and the splits of one piece by the ids of their parts.
#include <algorithm>
#include <cstring>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {

using tokenizer_detail::json;
using tokenizer_detail::replace_all;

namespace {

constexpr const char* kMarker = "\u2581";

struct Piece {
  std::string text;
  float score;
};

std::vector<Piece> read_pieces(const std::filesystem::path& path, int64_t vocab_size) {
  const std::string data = read_file(path);
  if (vocab_size <= 0) fail("{}: vocab_size {} is not positive", path.string(), vocab_size);
  size_t pos = 0;
  auto read_i32 = [&](const char* what, int64_t index) {
    if (pos + 4 > data.size())
      fail("{}: truncated at byte {} reading the {} of token {} (vocab_size {})", path.string(), pos, what,
           index, vocab_size);
    int32_t v;
    std::memcpy(&v, data.data() + pos, 4);
    pos += 4;
    return v;
  };
  const int32_t max_len = read_i32("header", -1);
  if (max_len <= 0) fail("{}: invalid max_token_length {}", path.string(), max_len);
  std::vector<Piece> pieces;
  pieces.reserve(static_cast<size_t>(vocab_size));
  for (int64_t i = 0; i < vocab_size; ++i) {
    const int32_t score_bits = read_i32("score", i);
    float score;
    std::memcpy(&score, &score_bits, 4);
    const int32_t len = read_i32("length", i);
    if (len < 0 || len > max_len || pos + static_cast<size_t>(len) > data.size())
      fail("{}: token {} has invalid length {} (max_token_length {}, {} bytes left)", path.string(), i, len,
           max_len, data.size() - pos);
    pieces.push_back({data.substr(pos, static_cast<size_t>(len)), score});
    pos += static_cast<size_t>(len);
  }
  if (pos != data.size())
    fail("{}: {} bytes left after {} tokens: vocab_size does not match the file", path.string(),
         data.size() - pos, vocab_size);
  return pieces;
}

}  // namespace

json llama2c_tokenizer_to_hf_json(const std::filesystem::path& tokenizer_bin, int64_t vocab_size) {
  std::vector<Piece> pieces = read_pieces(tokenizer_bin, vocab_size);
  if (pieces.size() < 3)
    fail("{}: {} tokens is too few (need <unk>, <s>, </s>)", tokenizer_bin.string(), pieces.size());
  // Undo the export's renaming.
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::string& t = pieces[i].text;
    if (!tokenizer_detail::is_valid_utf8(t))
      fail("{}: token {} is not valid UTF-8", tokenizer_bin.string(), i);
    if (i <= 2 && t.size() > 2 && t.front() == '\n' && t.back() == '\n') t = t.substr(1, t.size() - 2);
    t = replace_all(t, " ", kMarker);
  }
  const char* expected[] = {"<unk>", "<s>", "</s>"};
  for (size_t i = 0; i < 3; ++i)
    if (pieces[i].text != expected[i])
      fail("{}: token {} is '{}', expected '{}' (SentencePiece layout)", tokenizer_bin.string(), i,
           pieces[i].text, expected[i]);

  json vocab = json::object();
  tokenizer_detail::StringMap<int32_t> ids;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (!ids.emplace(pieces[i].text, static_cast<int32_t>(i)).second)
      fail("{}: token {} '{}' appears twice", tokenizer_bin.string(), i, pieces[i].text);
    vocab[pieces[i].text] = i;
  }

  struct Candidate {
    int32_t left, right;
    float score;
  };
  std::vector<Candidate> candidates;
  for (const Piece& p : pieces) {
    const std::string& t = p.text;
    if (t.empty()) continue;
    const size_t first = candidates.size();
    // Split points at character boundaries only (pieces are UTF-8 strings).
    for (size_t k = tokenizer_detail::utf8_sequence_length(static_cast<unsigned char>(t[0])); k < t.size();
         k += tokenizer_detail::utf8_sequence_length(static_cast<unsigned char>(t[k]))) {
      const auto l = ids.find(std::string_view(t).substr(0, k));
      const auto r = ids.find(std::string_view(t).substr(k));
      if (l != ids.end() && r != ids.end()) candidates.push_back({l->second, r->second, p.score});
    }
    std::sort(candidates.begin() + static_cast<ptrdiff_t>(first), candidates.end(),
              [](const Candidate& a, const Candidate& b) {
                return std::tie(a.left, a.right) < std::tie(b.left, b.right);
              });
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  json merges = json::array();
  for (const Candidate& c : candidates)
    merges.push_back(
        json::array({pieces[static_cast<size_t>(c.left)].text, pieces[static_cast<size_t>(c.right)].text}));

  json added = json::array();
  for (int id = 0; id < 3; ++id)
    added.push_back({{"id", id},
                     {"content", expected[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "Prepend"}, {"prepend", kMarker}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMarker}}})}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{"<s>", {{"id", "<s>"}, {"ids", json::array({1})}, {"tokens", json::array({"<s>"})}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", kMarker}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
  };
}

json llama2c_tokenizer_config() {
  return {{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token", "<s>"},
          {"eos_token", "</s>"},   {"unk_token", "<unk>"},   {"tokenizer_class", "LlamaTokenizer"}};
}

Tokenizer load_llama2c_tokenizer(const std::filesystem::path& tokenizer_bin, int64_t vocab_size) {
  return Tokenizer::from_json(llama2c_tokenizer_to_hf_json(tokenizer_bin, vocab_size),
                              llama2c_tokenizer_config(), tokenizer_bin.string());
}

}  // namespace lowbit

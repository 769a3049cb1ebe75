// Added tokens ("<s>", "<|im_start|>", ...): found in the text before the model sees it, with the
// leftmost-longest rule of tokenizers' AddedVocabulary and its lstrip / rstrip / single_word flags.
#include <algorithm>

#include "tokenizer/tokenizer_impl.h"

namespace lowbit::tokenizer_detail {

namespace {

// ASCII whitespace; tokenizers uses Unicode White_Space (none of our tokenizers sets lstrip/rstrip).
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Word characters for single_word: ASCII letters, digits, '_' and any non-ASCII byte (letters of
// other scripts), so that a single-word token never matches inside a word.
bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || c == '_';
}

}  // namespace

void AddedTokenMatcher::build(const std::vector<const AddedToken*>& tokens) {
  tokens_.clear();
  for (auto& bucket : by_first_byte_) bucket.clear();
  for (const AddedToken* t : tokens) {
    if (t->match.empty()) continue;
    tokens_.push_back(t);
    by_first_byte_[static_cast<unsigned char>(t->match[0])].push_back(t);
  }
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(), [](const AddedToken* a, const AddedToken* b) {
      return a->content.size() > b->content.size();
    });
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  size_t plain_begin = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (const AddedToken* t : candidates) {
      if (text.compare(i, t->match.size(), t->match) == 0) {
        hit = t;  // candidates are sorted longest first
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t begin = i, end = i + hit->match.size();
    i = end;  // like an Aho-Corasick iterator, the next search starts after this match
    if (hit->single_word) {
      const bool word_before = begin > 0 && is_word_byte(text[begin - 1]);
      const bool word_after = end < text.size() && is_word_byte(text[end]);
      if (word_before || word_after) continue;
    }
    if (hit->lstrip)
      while (begin > plain_begin && is_space(text[begin - 1])) --begin;
    if (hit->rstrip)
      while (end < text.size() && is_space(text[end])) ++end;
    if (begin > plain_begin) out.push_back({text.substr(plain_begin, begin - plain_begin), -1, plain_begin});
    out.push_back({{}, hit->id, begin});
    plain_begin = i = end;
  }
  if (plain_begin < text.size()) out.push_back({text.substr(plain_begin), -1, plain_begin});
}

}  // namespace lowbit::tokenizer_detail

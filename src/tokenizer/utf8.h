// Small UTF-8 helpers shared by the tokenizer stages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::tokenizer_detail {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence that starts with `lead` (1 for ASCII and for stray bytes).
inline size_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF8) return 4;
  return 1;
}

// `text` with every occurrence of `from` replaced by `to` (left to right, non-overlapping).
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// Appends the UTF-8 encoding of code point `cp`.
void append_utf8(std::string& out, uint32_t cp);

// Number of leading bytes of `bytes` that form a complete, valid UTF-8 prefix.
size_t valid_utf8_prefix(std::string_view bytes);
inline bool is_valid_utf8(std::string_view bytes) {
  return valid_utf8_prefix(bytes) == bytes.size();
}

// Length of the longest suffix of `bytes` that is an incomplete but so far valid UTF-8 sequence
// (0..3): those bytes may still become a character when more bytes arrive.
size_t incomplete_utf8_suffix(std::string_view bytes);

// Appends `bytes` with every maximal invalid subsequence replaced by U+FFFD, as Rust's
// String::from_utf8_lossy (and Python's bytes.decode(errors="replace")) do.
void append_utf8_lossy(std::string& out, std::string_view bytes);

}  // namespace lowbit::tokenizer_detail

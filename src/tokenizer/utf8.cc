#include "tokenizer/utf8.h"

namespace lowbit::tokenizer_detail {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit = text.find(from); hit != std::string_view::npos; hit = text.find(from, pos)) {
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Length of the valid prefix of the character starting at bytes[i] (Unicode Table 3-7 of
// well-formed byte sequences): equal to the full length when the character is complete and valid,
// shorter when it is truncated or broken after that many bytes; 0 when the lead byte is invalid.
// `complete` tells whether the whole sequence was present.
size_t well_formed_length(std::string_view bytes, size_t i, bool& complete) {
  const auto b0 = static_cast<unsigned char>(bytes[i]);
  complete = false;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0x80) {
    complete = true;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  size_t len = 1;
  for (; len < need; ++len) {
    if (i + len >= bytes.size()) return len;
    const auto b = static_cast<unsigned char>(bytes[i + len]);
    const unsigned char l = len == 1 ? lo : 0x80, h = len == 1 ? hi : 0xBF;
    if (b < l || b > h) return len;
  }
  complete = true;
  return need;
}

}  // namespace

size_t valid_utf8_prefix(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (static_cast<unsigned char>(bytes[i]) < 0x80) {
      ++i;
      continue;
    }
    bool complete;
    const size_t n = well_formed_length(bytes, i, complete);
    if (!complete) return i;
    i += n;
  }
  return i;
}

size_t incomplete_utf8_suffix(std::string_view bytes) {
  // A truncated character starts at most 3 bytes before the end.
  const size_t first = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t i = first; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0xC2 || b > 0xF4) continue;  // not a multi-byte lead byte
    bool complete;
    const size_t n = well_formed_length(bytes, i, complete);
    if (!complete && i + n == bytes.size()) return n;
  }
  return 0;
}

void append_utf8_lossy(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete;
    const size_t n = well_formed_length(bytes, i, complete);
    if (complete) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out.append(kReplacementChar);
      i += n == 0 ? 1 : n;
    }
  }
}

}  // namespace lowbit::tokenizer_detail

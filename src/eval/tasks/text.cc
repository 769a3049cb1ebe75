#include "eval/tasks/text.h"

#include <utf8proc.h>

#include "util/error.h"

namespace lowbit::eval {

namespace {

// Decodes the code point at text[pos] and advances pos; fails on invalid UTF-8.
uint32_t next_code_point(std::string_view text, size_t& pos) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                                              static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
  if (n <= 0) fail("invalid UTF-8 at byte {} of \"{}\"", pos, text.substr(0, 80));
  pos += static_cast<size_t>(n);
  return static_cast<uint32_t>(cp);
}

void append_code_point(std::string& out, uint32_t cp) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

}  // namespace

int64_t utf8_length(std::string_view text) {
  int64_t count = 0;
  for (size_t pos = 0; pos < text.size(); ++count) next_code_point(text, pos);
  return count;
}

bool is_python_space(uint32_t cp) {
  // The characters Python's str.isspace() accepts: bidirectional class WS, B or S, or category Zs.
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

std::string_view python_rstrip(std::string_view text) {
  size_t end = text.size();
  size_t pos = 0;
  size_t last_non_space_end = 0;
  while (pos < end) {
    if (!is_python_space(next_code_point(text, pos))) last_non_space_end = pos;
  }
  return text.substr(0, last_non_space_end);
}

std::string_view python_strip(std::string_view text) {
  size_t pos = 0;
  size_t start = text.size();
  while (pos < text.size()) {
    const size_t here = pos;
    if (!is_python_space(next_code_point(text, pos))) {
      start = here;
      break;
    }
  }
  return python_rstrip(text.substr(start));
}

std::string python_capitalize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool first = true;
  for (size_t pos = 0; pos < text.size();) {
    const uint32_t cp = next_code_point(text, pos);
    const utf8proc_int32_t c = static_cast<utf8proc_int32_t>(cp);
    append_code_point(out, static_cast<uint32_t>(first ? utf8proc_totitle(c) : utf8proc_tolower(c)));
    first = false;
  }
  return out;
}

}  // namespace lowbit::eval

// Small text helpers with Python's semantics, as lm-eval's task code relies on them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::eval {

// Number of Unicode code points (Python's len(str)); `text` must be valid UTF-8.
int64_t utf8_length(std::string_view text);

// Python's str.isspace() for one code point.
bool is_python_space(uint32_t cp);
// Python's str.strip() / str.rstrip() with no argument (Unicode whitespace).
std::string_view python_strip(std::string_view text);
std::string_view python_rstrip(std::string_view text);

// Python's str.capitalize(): the first character in title case, the rest in lower case (simple case
// mappings from utf8proc; Python's rare multi-character mappings such as "ß" -> "Ss" are not applied).
std::string python_capitalize(std::string_view text);

}  // namespace lowbit::eval

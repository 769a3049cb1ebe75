// tokenizer.json "normalizer": the text transformations applied before pre-tokenization.
#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace lowbit::tokenizer_detail {

namespace {

bool is_ascii_byte(char c) {
  return static_cast<unsigned char>(c) < 0x80;
}

bool is_ascii(std::string_view text) {
  for (const char c : text)
    if (!is_ascii_byte(c)) return false;
  return true;
}

std::string utf8proc_transform(std::string_view text, int options) {
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &result,
                                          static_cast<utf8proc_option_t>(options));
  // Input comes from std::string_view of the caller's text; invalid UTF-8 is reported, not skipped.
  if (n < 0) fail("tokenizer: cannot normalize text: {}", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

// Per-code-point lowercase mapping (Rust's str::to_lowercase, without its context-dependent final
// sigma rule).
std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t cp;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) fail("tokenizer: invalid UTF-8 in text to lowercase");
    append_utf8(out, static_cast<uint32_t>(utf8proc_tolower(cp)));
    p += n;
    left -= n;
  }
  return out;
}

// ASCII whitespace only (tokenizers uses Unicode White_Space; no tokenizer we load has a Strip
// normalizer, see the report).
// Unicode normalization of mostly-ASCII text, one non-ASCII run at a time. Exact: ASCII characters
// have no decomposition, never move in canonical reordering and are never the second character of a
// composition, so no normalization crosses the point just before an ASCII character. Each run
// includes the ASCII character before it, which may compose with a following combining mark.
std::string normalize_runs(std::string_view text, int options) {
  if (is_ascii(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t j = pos;
    while (j < text.size() && is_ascii_byte(text[j])) ++j;
    if (j == text.size()) {
      out.append(text.substr(pos));
      break;
    }
    const size_t start = j > pos ? j - 1 : j;
    out.append(text.substr(pos, start - pos));
    size_t end = j;
    while (end < text.size() && !is_ascii_byte(text[end])) ++end;
    out += utf8proc_transform(text.substr(start, end - start), options);
    pos = end;
  }
  return out;
}

bool is_strip_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

void Normalizer::parse_into(const json& spec, const std::string& source, std::vector<Step>& steps) {
  if (spec.is_null()) return;
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const json& child : spec.at("normalizers")) parse_into(child, source, steps);
  } else if (type == "Prepend") {
    steps.push_back({Step::kPrepend, "", spec.at("prepend").get<std::string>()});
  } else if (type == "Replace") {
    const json& pattern = spec.at("pattern");
    if (!pattern.contains("String"))
      fail("{}: normalizer Replace with a {} pattern is not supported (only String)", source, pattern.dump());
    steps.push_back(
        {Step::kReplace, pattern.at("String").get<std::string>(), spec.at("content").get<std::string>()});
    if (steps.back().from.empty()) fail("{}: normalizer Replace has an empty pattern", source);
  } else if (type == "NFC") {
    steps.push_back({Step::kNfc});
  } else if (type == "NFD") {
    steps.push_back({Step::kNfd});
  } else if (type == "NFKC") {
    steps.push_back({Step::kNfkc});
  } else if (type == "NFKD") {
    steps.push_back({Step::kNfkd});
  } else if (type == "Lowercase") {
    steps.push_back({Step::kLowercase});
  } else if (type == "Strip") {
    Step step{Step::kStrip};
    step.strip_left = spec.value("strip_left", false);
    step.strip_right = spec.value("strip_right", false);
    steps.push_back(step);
  } else {
    fail(
        "{}: normalizer type '{}' is not supported (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, "
        "NFKD, Lowercase, Strip)",
        source, type);
  }
}

Normalizer Normalizer::parse(const json& spec, const std::string& source) {
  Normalizer n;
  parse_into(spec, source, n.steps_);
  return n;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::kPrepend:
        // tokenizers leaves an empty string empty.
        if (!s.empty()) s = step.to + s;
        break;
      case Step::kReplace:
        s = replace_all(s, step.from, step.to);
        break;
      case Step::kNfc:
        s = normalize_runs(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        break;
      case Step::kNfd:
        s = normalize_runs(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
        break;
      case Step::kNfkc:
        s = normalize_runs(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case Step::kNfkd:
        s = normalize_runs(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case Step::kLowercase:
        s = lowercase(s);
        break;
      case Step::kStrip: {
        size_t b = 0, e = s.size();
        if (step.strip_left)
          while (b < e && is_strip_space(static_cast<unsigned char>(s[b]))) ++b;
        if (step.strip_right)
          while (e > b && is_strip_space(static_cast<unsigned char>(s[e - 1]))) --e;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

}  // namespace lowbit::tokenizer_detail

// tokenizer.json "decoder": token strings back to text (Replace, ByteFallback, Fuse, Strip,
// ByteLevel, Metaspace), in batch form (exactly tokenizers' decode_chain) and per token for streams.
#include <optional>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace lowbit::tokenizer_detail {

namespace {

// "<0xNN>" -> NN.
std::optional<unsigned char> byte_token_value(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(token[3]), lo = hex(token[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

// The inverse of byte_level_chars(): UTF-8 character -> byte.
const StringMap<unsigned char>& byte_level_inverse() {
  static const StringMap<unsigned char> map = [] {
    StringMap<unsigned char> m;
    const auto& chars = byte_level_chars();
    for (size_t b = 0; b < 256; ++b) m.emplace(chars[b], static_cast<unsigned char>(b));
    return m;
  }();
  return map;
}

// Appends the bytes a ByteLevel token stands for; a token with a character outside the table is
// taken verbatim (tokenizers does the same).
void append_byte_level_bytes(std::string& out, std::string_view token) {
  const auto& inverse = byte_level_inverse();
  std::string bytes;
  for (size_t i = 0; i < token.size();) {
    const size_t n = std::min(token.size() - i, utf8_sequence_length(static_cast<unsigned char>(token[i])));
    const auto it = inverse.find(token.substr(i, n));
    if (it == inverse.end()) {
      out.append(token);
      return;
    }
    bytes.push_back(static_cast<char>(it->second));
    i += n;
  }
  out.append(bytes);
}

// Removes up to `count` leading occurrences of `c` (a whole UTF-8 character).
void strip_leading(std::string& s, std::string_view c, size_t count) {
  size_t cut = 0;
  for (size_t k = 0; k < count && s.compare(cut, c.size(), c) == 0; ++k) cut += c.size();
  s.erase(0, cut);
}

void strip_trailing(std::string& s, std::string_view c, size_t count) {
  for (size_t k = 0; k < count && s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0;
       ++k)
    s.resize(s.size() - c.size());
}

}  // namespace

void Decoder::parse_into(const json& spec, const std::string& source, std::vector<Step>& steps) {
  if (spec.is_null()) return;
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const json& child : spec.at("decoders")) parse_into(child, source, steps);
  } else if (type == "Replace") {
    const json& pattern = spec.at("pattern");
    if (!pattern.contains("String"))
      fail("{}: decoder Replace with a {} pattern is not supported (only String)", source, pattern.dump());
    Step step{Step::kReplace, pattern.at("String").get<std::string>(), spec.at("content").get<std::string>()};
    if (step.from.empty()) fail("{}: decoder Replace has an empty pattern", source);
    steps.push_back(std::move(step));
  } else if (type == "ByteFallback") {
    steps.push_back({Step::kByteFallback});
  } else if (type == "Fuse") {
    steps.push_back({Step::kFuse});
  } else if (type == "Strip") {
    Step step{Step::kStrip};
    step.strip_char = spec.value("content", " ");
    step.start = spec.value("start", size_t{0});
    step.stop = spec.value("stop", size_t{0});
    steps.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    steps.push_back({Step::kByteLevel});
  } else if (type == "Metaspace") {
    Step step{Step::kMetaspace, spec.value("replacement", "\u2581"), " "};
    std::string scheme = spec.value("prepend_scheme", "");
    if (scheme.empty()) scheme = spec.value("add_prefix_space", true) ? "always" : "never";
    step.metaspace_strip_first = scheme != "never";
    steps.push_back(std::move(step));
  } else {
    fail(
        "{}: decoder type '{}' is not supported (supported: Sequence, Replace, ByteFallback, Fuse, Strip, "
        "ByteLevel, Metaspace)",
        source, type);
  }
}

Decoder Decoder::parse(const json& spec, const std::string& source) {
  Decoder d;
  parse_into(spec, source, d.steps_);
  // In a stream the Strip decoder only matters at the very start (it follows Fuse in practice).
  for (const Step& s : d.steps_)
    if (s.kind == Step::kStrip && s.strip_char == " ") d.strip_start_ = s.start;
  return d;
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  if (steps_.empty()) {  // tokenizers joins with spaces when there is no decoder
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::kReplace:
        for (std::string& t : tokens) t = replace_all(t, step.from, step.to);
        break;
      case Step::kByteFallback: {
        std::vector<std::string> next;
        std::string run;  // bytes of consecutive <0xNN> tokens
        size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          if (is_valid_utf8(run)) {
            next.push_back(run);
          } else {
            for (size_t k = 0; k < run_tokens; ++k) next.emplace_back(kReplacementChar);
          }
          run.clear();
          run_tokens = 0;
        };
        for (std::string& t : tokens) {
          if (const auto b = byte_token_value(t)) {
            run.push_back(static_cast<char>(*b));
            ++run_tokens;
          } else {
            flush();
            next.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(next);
        break;
      }
      case Step::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Step::kStrip:
        for (std::string& t : tokens) {
          strip_leading(t, step.strip_char, step.start);
          strip_trailing(t, step.strip_char, step.stop);
        }
        break;
      case Step::kByteLevel: {
        std::string bytes;
        for (const std::string& t : tokens) append_byte_level_bytes(bytes, t);
        std::string text;
        append_utf8_lossy(text, bytes);
        tokens.assign(1, std::move(text));
        break;
      }
      case Step::kMetaspace:
        // tokenizers drops every replacement character of the first token (not only a leading one).
        for (size_t i = 0; i < tokens.size(); ++i)
          tokens[i] = replace_all(tokens[i], step.from, i == 0 && step.metaspace_strip_first ? "" : step.to);
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

std::string Decoder::stream_bytes(std::string_view token, bool first) const {
  std::string text(token);
  bool raw = false;  // already bytes: later text transformations do not apply
  for (const Step& step : steps_) {
    if (raw) break;
    switch (step.kind) {
      case Step::kReplace:
        text = replace_all(text, step.from, step.to);
        break;
      case Step::kByteFallback:
        if (const auto b = byte_token_value(text)) {
          text.assign(1, static_cast<char>(*b));
          raw = true;
        }
        break;
      case Step::kFuse:
      case Step::kStrip:  // handled by the stream (strip_start)
        break;
      case Step::kByteLevel: {
        std::string bytes;
        append_byte_level_bytes(bytes, text);
        text.swap(bytes);
        raw = true;
        break;
      }
      case Step::kMetaspace:
        text = replace_all(text, step.from, first && step.metaspace_strip_first ? "" : step.to);
        break;
    }
  }
  return text;
}

}  // namespace lowbit::tokenizer_detail

// tokenizer.json "pre_tokenizer": splitting normalized text into words (Split with a regex,
// ByteLevel, Metaspace), plus the PCRE2 wrapper used for the regexes.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace lowbit::tokenizer_detail {

// ---- Regex ------------------------------------------------------------------------------------------

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Match data holds only the overall match (we never read groups); one per thread, reused.
pcre2_match_data* thread_match_data() {
  thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  return data.get();
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& source) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
  if (!code)
    fail("{}: cannot compile pre-tokenizer regex at offset {}: {} (pattern {})", source, error_offset,
         pcre2_message(error), pattern);
  code_ = std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_.get());
  pcre2_match_data* md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // The text was validated once in Tokenizer::encode; checking it again on every call would make
    // the scan quadratic.
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr)
                        : pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) fail("tokenizer: regex match failed: {}", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
    } else {
      // Empty match: produces no piece; step over one character.
      if (b >= text.size()) return;
      start = b + utf8_sequence_length(static_cast<unsigned char>(text[b]));
    }
  }
}

// ---- byte-level table ----------------------------------------------------------------------------------

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> table = [] {
    // Printable bytes stand for themselves; the others are mapped, in order, to U+0100 onwards.
    std::array<std::string, 256> t;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      append_utf8(t[b], printable ? b : next++);
    }
    return t;
  }();
  return table;
}

void append_byte_level(std::string& out, std::string_view bytes) {
  const auto& table = byte_level_chars();
  for (const char c : bytes) out.append(table[static_cast<unsigned char>(c)]);
}

// ---- PreTokenizer -------------------------------------------------------------------------------------

namespace {

// The regex the ByteLevel pre-tokenizer uses when use_regex is true (GPT-2's).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

void PreTokenizer::parse_into(const json& spec, const std::string& source, std::vector<Step>& steps) {
  if (spec.is_null()) return;
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const json& child : spec.at("pretokenizers")) parse_into(child, source, steps);
  } else if (type == "Split") {
    Step step{Step::kSplit};
    const json& pattern = spec.at("pattern");
    if (pattern.contains("Regex")) {
      step.regex = std::make_shared<Regex>(pattern.at("Regex").get<std::string>(), source);
    } else if (pattern.contains("String")) {
      step.literal = pattern.at("String").get<std::string>();
      if (step.literal.empty()) fail("{}: pre-tokenizer Split has an empty String pattern", source);
    } else {
      fail("{}: pre-tokenizer Split pattern {} is neither Regex nor String", source, pattern.dump());
    }
    const std::string behavior = spec.value("behavior", "Isolated");
    if (behavior == "Removed")
      step.behavior = SplitBehavior::kRemoved;
    else if (behavior == "Isolated")
      step.behavior = SplitBehavior::kIsolated;
    else if (behavior == "MergedWithPrevious")
      step.behavior = SplitBehavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext")
      step.behavior = SplitBehavior::kMergedWithNext;
    else if (behavior == "Contiguous")
      step.behavior = SplitBehavior::kContiguous;
    else
      fail("{}: pre-tokenizer Split behavior '{}' is not supported", source, behavior);
    step.invert = spec.value("invert", false);
    steps.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    Step step{Step::kByteLevel};
    step.add_prefix_space = spec.value("add_prefix_space", true);
    if (spec.value("use_regex", true)) step.regex = std::make_shared<Regex>(kGpt2Pattern, source);
    steps.push_back(std::move(step));
  } else if (type == "Metaspace") {
    Step step{Step::kMetaspace};
    step.replacement = spec.value("replacement", "\u2581");
    std::string scheme = spec.value("prepend_scheme", "");
    if (scheme.empty()) scheme = spec.value("add_prefix_space", true) ? "always" : "never";  // older files
    if (scheme == "always")
      step.prepend = Step::Prepend::kAlways;
    else if (scheme == "first")
      step.prepend = Step::Prepend::kFirst;
    else if (scheme == "never")
      step.prepend = Step::Prepend::kNever;
    else
      fail("{}: Metaspace prepend_scheme '{}' is not supported", source, scheme);
    step.split = spec.value("split", true);
    steps.push_back(std::move(step));
  } else {
    fail("{}: pre_tokenizer type '{}' is not supported (supported: Sequence, Split, ByteLevel, Metaspace)",
         source, type);
  }
}

PreTokenizer PreTokenizer::parse(const json& spec, const std::string& source) {
  PreTokenizer p;
  parse_into(spec, source, p.steps_);
  return p;
}

// Splits `piece` at the matches of the step's pattern, arranging matches and the text between them
// according to the split behavior (tokenizers' SplitDelimiterBehavior). Empty pieces are dropped.
void PreTokenizer::split(const Step& step, std::string_view piece, std::vector<std::string>& out) {
  std::vector<std::pair<size_t, size_t>> matches;
  if (step.regex) {
    step.regex->find_all(piece, matches);
  } else {
    for (size_t pos = piece.find(step.literal); pos != std::string_view::npos;
         pos = piece.find(step.literal, pos + step.literal.size()))
      matches.emplace_back(pos, pos + step.literal.size());
  }
  // (begin, end, is_delimiter) spans covering the whole piece.
  struct Span {
    size_t begin, end;
    bool delimiter;
  };
  std::vector<Span> spans;
  size_t pos = 0;
  for (const auto& [b, e] : matches) {
    if (b > pos) spans.push_back({pos, b, step.invert});
    spans.push_back({b, e, !step.invert});
    pos = e;
  }
  if (pos < piece.size()) spans.push_back({pos, piece.size(), step.invert});

  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.emplace_back(piece.substr(b, e - b));
  };
  switch (step.behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) emit(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans)
        if (!s.delimiter) emit(s.begin, s.end);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      // Every piece ends right after a delimiter.
      size_t begin = 0;
      for (const Span& s : spans) {
        if (!s.delimiter) continue;
        emit(begin, s.end);
        begin = s.end;
      }
      emit(begin, piece.size());
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      size_t begin = 0;
      for (size_t i = 0; i < spans.size(); ++i) {
        // A piece ends before every delimiter (the delimiter starts the next piece).
        if (spans[i].delimiter && spans[i].begin > begin) {
          emit(begin, spans[i].begin);
          begin = spans[i].begin;
        }
      }
      emit(begin, piece.size());
      break;
    }
    case SplitBehavior::kContiguous: {
      size_t i = 0;
      while (i < spans.size()) {
        size_t j = i + 1;
        while (j < spans.size() && spans[j].delimiter == spans[i].delimiter) ++j;
        emit(spans[i].begin, spans[j - 1].end);
        i = j;
      }
      break;
    }
  }
}

void PreTokenizer::apply(std::string_view segment, bool at_text_start,
                         std::vector<std::string>& words) const {
  if (segment.empty()) return;
  std::vector<std::string> pieces{std::string(segment)};
  std::vector<std::string> next;
  for (const Step& step : steps_) {
    next.clear();
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string& piece = pieces[i];
      // Only the first piece of a segment at the start of the text has original offset 0.
      const bool piece_at_start = at_text_start && i == 0;
      switch (step.kind) {
        case Step::kSplit:
          split(step, piece, next);
          break;
        case Step::kByteLevel: {
          if (step.add_prefix_space && piece[0] != ' ') piece = " " + piece;
          std::vector<std::string> parts;
          if (step.regex) {
            Step isolate{Step::kSplit};
            isolate.regex = step.regex;
            split(isolate, piece, parts);
          } else {
            parts.push_back(std::move(piece));
          }
          for (const std::string& part : parts) {
            std::string mapped;
            mapped.reserve(part.size() * 2);
            append_byte_level(mapped, part);
            next.push_back(std::move(mapped));
          }
          break;
        }
        case Step::kMetaspace: {
          std::string replaced;
          for (const char c : piece) {
            if (c == ' ')
              replaced += step.replacement;
            else
              replaced.push_back(c);
          }
          const bool prepend = step.prepend == Step::Prepend::kAlways ||
                               (step.prepend == Step::Prepend::kFirst && piece_at_start);
          if (prepend && !replaced.starts_with(step.replacement)) replaced = step.replacement + replaced;
          if (step.split) {
            Step at_marker{Step::kSplit};
            at_marker.literal = step.replacement;
            at_marker.behavior = SplitBehavior::kMergedWithNext;
            split(at_marker, replaced, next);
          } else {
            next.push_back(std::move(replaced));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
  for (std::string& piece : pieces)
    if (!piece.empty()) words.push_back(std::move(piece));
}

}  // namespace lowbit::tokenizer_detail

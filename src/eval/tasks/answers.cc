#define PCRE2_CODE_UNIT_WIDTH 8
#include "eval/tasks/answers.h"

#include <pcre2.h>

#include <cctype>
#include <memory>
#include <vector>

#include "util/error.h"

namespace lowbit::eval {

namespace {

// A compiled PCRE2 pattern (Perl syntax; these patterns mean the same in Python's re module).
class Regex {
 public:
  explicit Regex(const char* pattern) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    re_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code,
                        &offset, nullptr);
    if (!re_) fail("internal: bad regex {} at {}", pattern, offset);
  }
  ~Regex() { pcre2_code_free(re_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match, left to right (Python's re.findall), as the first non-empty group
  // (or the whole match for a pattern without groups).
  std::vector<std::string> find_all(std::string_view text) const {
    std::vector<std::string> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re_, nullptr);
    PCRE2_SIZE start = 0;
    while (start <= text.size()) {
      const int rc =
          pcre2_match(re_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, 0, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      std::string found;
      for (int g = rc > 1 ? 1 : 0; g < rc; ++g) {
        if (ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g]) {
          found.assign(text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]));
          break;
        }
      }
      out.push_back(found);
      start = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
    }
    pcre2_match_data_free(md);
    return out;
  }

  // re.sub(pattern, "", text): every match deleted.
  std::string erase_all(std::string_view text) const {
    std::string out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re_, nullptr);
    PCRE2_SIZE start = 0, copied = 0;
    while (start <= text.size()) {
      const int rc =
          pcre2_match(re_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, 0, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      out.append(text.substr(copied, ov[0] - copied));
      copied = ov[1];
      start = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
    }
    pcre2_match_data_free(md);
    out.append(text.substr(std::min<size_t>(copied, text.size())));
    return out;
  }

 private:
  pcre2_code* re_ = nullptr;
};

std::string strip_ascii(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

std::string gsm8k_strict_answer(std::string_view output) {
  static const Regex re(R"(#### (\-?[0-9\.\,]+))");
  const auto all = re.find_all(output);
  return all.empty() ? std::string(kInvalidAnswer) : strip_ascii(all.front());
}

std::string gsm8k_flexible_answer(std::string_view output) {
  static const Regex re(R"((-?[$0-9.,]{2,})|(-?[0-9]+))");
  const auto all = re.find_all(output);
  return all.empty() ? std::string(kInvalidAnswer) : strip_ascii(all.back());
}

std::string gsm8k_normalize(std::string_view text) {
  static const Regex comma(","), dollar(R"(\$)"), reasoning(R"((?s).*#### )"), final_dot(R"(\.$)");
  std::string s = comma.erase_all(text);
  s = dollar.erase_all(s);
  s = reasoning.erase_all(s);
  s = final_dot.erase_all(s);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool gsm8k_match(std::string_view extracted, std::string_view reference) {
  return gsm8k_normalize(extracted) == gsm8k_normalize(reference);
}

}  // namespace lowbit::eval

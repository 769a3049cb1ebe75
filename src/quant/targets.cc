#include "quant/targets.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/error.h"

namespace lowbit {

const std::string& ModuleInfo::type() const {
  static const std::string none;
  return types.empty() ? none : types.front();
}

struct TargetMatcher::Regex {
  pcre2_code* code = nullptr;
  pcre2_match_data* match = nullptr;
  ~Regex() {
    pcre2_match_data_free(match);
    pcre2_code_free(code);
  }
};

TargetMatcher::TargetMatcher() = default;
TargetMatcher::~TargetMatcher() = default;

bool TargetMatcher::match_name(std::string_view name, std::string_view target) {
  constexpr std::string_view prefix = "re:";
  if (target.substr(0, prefix.size()) != prefix) return name == target;
  const std::string pattern(target.substr(prefix.size()));
  auto it = cache_.find(pattern);
  if (it == cache_.end()) {
    auto regex = std::make_unique<Regex>();
    int error = 0;
    PCRE2_SIZE offset = 0;
    regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), 0, &error,
                                &offset, nullptr);
    if (regex->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      fail("invalid regular expression '{}' at offset {}: {}", target, offset,
           reinterpret_cast<const char*>(message));
    }
    regex->match = pcre2_match_data_create_from_pattern(regex->code, nullptr);
    it = cache_.emplace(pattern, std::move(regex)).first;
  }
  // PCRE2_ANCHORED: the match must start at the beginning of the name, as Python's re.match.
  const int rc = pcre2_match(it->second->code, reinterpret_cast<PCRE2_SPTR>(name.data()), name.size(), 0,
                             PCRE2_ANCHORED, it->second->match, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) fail("regular expression '{}' failed on '{}' (PCRE2 error {})", target, name, rc);
  return true;
}

bool TargetMatcher::match_class(const ModuleInfo& module, std::string_view target) {
  for (const std::string& t : module.types) {
    if (t == target || (t == "LinearBase" && target == "Linear")) return true;
  }
  return false;
}

bool TargetMatcher::is_match(const ModuleInfo& module, std::string_view target) {
  return match_name(module.name, target) || match_class(module, target);
}

}  // namespace lowbit

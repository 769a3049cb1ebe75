// Module selection by targets and ignore lists, with compressed-tensors' semantics
// (compressed_tensors/utils/match.py, 0.20):
//   - a plain string matches a module whose name equals it exactly, or whose class (or any base class)
//     has that name ("Linear"; vLLM's "LinearBase" also counts as "Linear");
//   - "re:PATTERN" matches a module name with Python `re.match` semantics: anchored at the start, not at
//     the end ("re:.*q_proj" matches "model.layers.0.self_attn.q_proj", "re:q_proj" does not). Patterns
//     are PCRE2, which accepts Python's syntax for everything module names need ((?i), (?P<n>..), ...).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lowbit {

// A module of the model as the planner sees it.
struct ModuleInfo {
  std::string name;  // "model.layers.0.self_attn.q_proj"
  std::vector<std::string>
      types;  // class name first, then base classes: {"Linear"}, {"LlamaRMSNorm", "Module"}
  std::vector<int64_t> weight_shape;  // [out_features, in_features] for Linear; empty when unknown

  const std::string& type() const;  // types[0] or "" when unknown
};

// Compiles each distinct "re:" pattern once. Not thread-safe; one matcher per planning pass.
class TargetMatcher {
 public:
  TargetMatcher();
  ~TargetMatcher();
  TargetMatcher(const TargetMatcher&) = delete;
  TargetMatcher& operator=(const TargetMatcher&) = delete;

  // compressed-tensors match_name: exact equality, or an anchored-at-start regex for "re:" targets.
  // Throws lowbit::Error naming the pattern when it does not compile.
  bool match_name(std::string_view name, std::string_view target);
  // compressed-tensors _match_class.
  static bool match_class(const ModuleInfo& module, std::string_view target);
  // Name or class.
  bool is_match(const ModuleInfo& module, std::string_view target);

 private:
  struct Regex;
  std::unordered_map<std::string, std::unique_ptr<Regex>> cache_;
};

}  // namespace lowbit

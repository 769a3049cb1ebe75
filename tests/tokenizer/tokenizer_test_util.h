// Shared helpers for the tokenizer tests: where the assets are, and tokenizers loaded once per run
// (parsing the 11 MB Qwen3 tokenizer.json takes a moment).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "util/files.h"

namespace lowbit::testing {

inline std::filesystem::path shared_dir() {
  return LOWBIT_SHARED_DIR;
}
inline std::filesystem::path tokenizer_dir(const std::string& name) {
  return shared_dir() / "tokenizers" / name;
}
inline std::filesystem::path fixture_path(const std::string& name) {
  return std::filesystem::path(LOWBIT_FIXTURES_DIR) / "tokenizer" / (name + ".json");
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  return nlohmann::json::parse(read_file(path));
}

// The modification tools/reference/tokenizer_fixtures.py applies for a fixture variant.
inline nlohmann::json apply_variant(nlohmann::json tj, const nlohmann::json& variant) {
  if (variant.is_null()) return tj;
  const std::string v = variant.get<std::string>();
  if (v == "added_flags") {
    int64_t next_id = 0;
    for (const auto& entry : tj["model"]["vocab"].items())
      next_id = std::max(next_id, entry.value().get<int64_t>() + 1);
    for (const auto& t : tj["added_tokens"]) next_id = std::max(next_id, t["id"].get<int64_t>() + 1);
    auto token = [&](const char* content, bool normalized, bool special, bool strip, bool single_word) {
      return nlohmann::json{{"id", next_id++},   {"content", content}, {"single_word", single_word},
                            {"lstrip", strip},   {"rstrip", strip},    {"normalized", normalized},
                            {"special", special}};
    };
    tj["added_tokens"].push_back(token("hello world", true, false, false, false));
    tj["added_tokens"].push_back(token("<|tool|>", false, true, true, false));
    tj["added_tokens"].push_back(token("foobarbaz", false, false, false, true));
    return tj;
  }
  tj["normalizer"] = nullptr;
  if (v == "metaspace_first") {
    const nlohmann::json metaspace = {
        {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
    tj["pre_tokenizer"] = metaspace;
    tj["decoder"] = metaspace;
  } else if (v == "metaspace_always_split") {
    tj["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  } else {
    ADD_FAILURE() << "unknown fixture variant " << v;
  }
  return tj;
}

// Tokenizer of shared/tokenizers/<folder> with a fixture variant applied, loaded once.
inline const Tokenizer& cached_tokenizer(const std::string& folder, const nlohmann::json& variant = nullptr) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = folder + "/" + (variant.is_null() ? "" : variant.get<std::string>());
  auto& slot = cache[key];
  if (!slot) {
    const auto dir = tokenizer_dir(folder);
    if (variant.is_null()) {
      slot = std::make_unique<Tokenizer>(Tokenizer::load(dir));
    } else {
      slot = std::make_unique<Tokenizer>(
          Tokenizer::from_json(apply_variant(read_json(dir / "tokenizer.json"), variant),
                               read_json(dir / "tokenizer_config.json"), (dir / "tokenizer.json").string()));
    }
  }
  return *slot;
}

#define LOWBIT_REQUIRE_SHARED()                                                       \
  do {                                                                                \
    if (!std::filesystem::exists(::lowbit::testing::shared_dir() / "tokenizers"))     \
      GTEST_SKIP() << "test assets not found at " << ::lowbit::testing::shared_dir(); \
  } while (0)

}  // namespace lowbit::testing

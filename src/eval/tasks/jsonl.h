// JSON Lines input for the evaluation tasks: one JSON object per line, with errors that name the file,
// the line and the field, so a broken data set is easy to fix.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit::eval {

struct JsonlRecord {
  std::string source;  // "FILE:LINE", for error messages and logs
  int64_t line = 0;    // 1-based line number in the file
  nlohmann::json value;
};

// Every non-blank line of `path` parsed as a JSON object (blank lines are skipped but still counted).
std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path);

// Typed field access; a missing field or a wrong type fails with "FILE:LINE: field "name" ...".
std::string jsonl_string(const JsonlRecord& record, std::string_view field);
std::vector<std::string> jsonl_strings(const JsonlRecord& record, std::string_view field);
// An integer, or a string holding one (Hugging Face data sets store HellaSwag's label as "3").
int64_t jsonl_index(const JsonlRecord& record, std::string_view field);

}  // namespace lowbit::eval

#include "eval/tasks/jsonl.h"

#include <charconv>

#include "util/error.h"
#include "util/files.h"

namespace lowbit::eval {

std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  std::vector<JsonlRecord> records;
  size_t begin = 0;
  int64_t line = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string_view row(text.data() + begin, end - begin);
    begin = end + 1;
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (row.find_first_not_of(" \t") == std::string_view::npos) continue;
    JsonlRecord record;
    record.source = fmt::format("{}:{}", path.string(), line);
    record.line = line;
    try {
      record.value = nlohmann::json::parse(row);
    } catch (const nlohmann::json::parse_error& e) {
      fail("{}: invalid JSON ({})", record.source, e.what());
    }
    if (!record.value.is_object())
      fail("{}: expected a JSON object, got {}", record.source, record.value.type_name());
    records.push_back(std::move(record));
  }
  if (records.empty()) fail("{}: no JSON lines in the file", path.string());
  return records;
}

namespace {

const nlohmann::json& field_of(const JsonlRecord& record, std::string_view field) {
  const auto it = record.value.find(field);
  if (it == record.value.end()) fail("{}: missing field \"{}\"", record.source, field);
  return *it;
}

}  // namespace

std::string jsonl_string(const JsonlRecord& record, std::string_view field) {
  const nlohmann::json& v = field_of(record, field);
  if (!v.is_string()) fail("{}: field \"{}\" must be a string, got {}", record.source, field, v.type_name());
  return v.get<std::string>();
}

std::vector<std::string> jsonl_strings(const JsonlRecord& record, std::string_view field) {
  const nlohmann::json& v = field_of(record, field);
  if (!v.is_array())
    fail("{}: field \"{}\" must be an array of strings, got {}", record.source, field, v.type_name());
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      fail("{}: field \"{}\"[{}] must be a string, got {}", record.source, field, i, v[i].type_name());
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

int64_t jsonl_index(const JsonlRecord& record, std::string_view field) {
  const nlohmann::json& v = field_of(record, field);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) return value;
  }
  fail("{}: field \"{}\" must be an integer, got {}", record.source, field, v.dump());
}

}  // namespace lowbit::eval

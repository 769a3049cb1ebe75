#include "calib/calib_data.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>

#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

bool looks_like_jsonl(const std::filesystem::path& path, std::string_view text) {
  const std::string ext = path.extension().string();
  if (ext == ".jsonl" || ext == ".json") return true;
  const size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{';
}

}  // namespace

std::vector<std::string> read_calibration_documents(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  if (!looks_like_jsonl(path, text)) return {text};
  std::vector<std::string> docs;
  size_t begin = 0;
  for (int64_t line_no = 1; begin < text.size(); ++line_no) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: not a JSON object ({})", path.string(), line_no, e.what());
    }
    if (!record.is_object() || !record.contains("text") || !record["text"].is_string())
      fail("{}:{}: a calibration JSONL line needs a string \"text\" field", path.string(), line_no);
    docs.push_back(record["text"].get<std::string>());
  }
  if (docs.empty()) fail("{}: no calibration records", path.string());
  return docs;
}

int64_t CalibDataset::tokens() const {
  int64_t n = 0;
  for (const auto& s : samples) n += static_cast<int64_t>(s.size());
  return n;
}

std::string CalibDataset::describe() const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < files.size(); ++i)
    parts.push_back(fmt::format("{} ({} tokens)", files[i], file_tokens[i]));
  const int64_t len = samples.empty() ? 0 : static_cast<int64_t>(samples.front().size());
  return fmt::format("{} samples x {} tokens (seed {}) from {}", samples.size(), len, seed,
                     fmt::join(parts, ", "));
}

CalibDataset load_calibration_data(const Tokenizer& tokenizer, const CalibDataOptions& options) {
  if (options.files.empty()) fail("calibration needs at least one file (--calib FILE)");
  if (options.num_samples < 1) fail("--num-samples must be at least 1, got {}", options.num_samples);
  if (options.seq_len < 16) fail("--seq-len must be at least 16, got {}", options.seq_len);
  CalibDataset data;
  data.seed = options.seed;
  std::vector<int32_t> stream;
  for (const std::filesystem::path& file : options.files) {
    std::string joined;
    for (const std::string& doc : read_calibration_documents(file)) {
      if (!joined.empty()) joined += "\n\n";
      joined += doc;
    }
    const std::vector<int32_t> ids = tokenizer.encode(joined, /*add_special_tokens=*/false);
    stream.insert(stream.end(), ids.begin(), ids.end());
    data.files.push_back(file.string());
    data.file_tokens.push_back(static_cast<int64_t>(ids.size()));
  }
  const bool bos = tokenizer.add_bos() && tokenizer.bos_id() >= 0;
  const int64_t total = static_cast<int64_t>(stream.size());
  int64_t window = options.seq_len - (bos ? 1 : 0);
  if (total < 16) fail("calibration text has {} tokens; at least 16 are needed", total);
  int64_t samples = options.num_samples;
  if (total < window) {
    data.notes.push_back(fmt::format(
        "calibration text has {} tokens, fewer than one {}-token sample: using one sample of all of it",
        total, options.seq_len));
    window = total;
    samples = 1;
  } else if (total < samples * window) {
    data.notes.push_back(fmt::format(
        "calibration text has {} tokens for {} samples of {}: windows overlap (pass more text for more "
        "diverse samples)",
        total, samples, options.seq_len));
  }
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int64_t> offset(0, total - window);
  for (int64_t i = 0; i < samples; ++i) {
    const int64_t at = offset(rng);
    std::vector<int32_t> s;
    s.reserve(static_cast<size_t>(window + 1));
    if (bos) s.push_back(tokenizer.bos_id());
    s.insert(s.end(), stream.begin() + at, stream.begin() + at + window);
    data.samples.push_back(std::move(s));
    data.offsets.push_back(at);
  }
  return data;
}

}  // namespace lowbit

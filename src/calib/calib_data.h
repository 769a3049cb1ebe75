// Calibration data: the token sequences every calibration pass (static scales, SmoothQuant, AWQ, GPTQ) runs
// through the model. Files are plain text, or JSON Lines with a "text" field per line (a file ending in
// .jsonl / .json, or whose first non-blank character is '{'). Each file's documents are joined with blank
// lines and tokenized without special tokens; the files' token streams are concatenated; then
// `num_samples` windows of seq_len - 1 tokens are drawn at uniformly random offsets (std::mt19937_64 seeded
// with `seed`, so the choice is reproducible and independent of the thread count) and BOS is prepended
// when the tokenizer adds one, as the GPTQ paper's random-window sampling does. Windows may overlap when
// the text is short (reported in notes); a text shorter than one window gives a single shorter sample.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace lowbit {

struct CalibDataOptions {
  std::vector<std::filesystem::path> files;
  int64_t num_samples = 128;
  int64_t seq_len = 512;
  uint64_t seed = 42;
};

struct CalibDataset {
  std::vector<std::vector<int32_t>> samples;  // token ids, seq_len each (BOS included)
  std::vector<int64_t> offsets;               // where each window starts in the concatenated stream
  std::vector<std::string> files;
  std::vector<int64_t> file_tokens;  // tokens per file
  uint64_t seed = 0;
  std::vector<std::string> notes;

  int64_t num_samples() const { return static_cast<int64_t>(samples.size()); }
  int64_t tokens() const;
  // One line: "128 samples x 512 tokens (seed 42) from calib.txt (101,234 tokens)".
  std::string describe() const;
};

// Throws lowbit::Error naming the file (and line, for JSONL) for unreadable files, malformed JSON lines,
// lines without a string "text" field, or fewer than 16 tokens in total.
CalibDataset load_calibration_data(const Tokenizer& tokenizer, const CalibDataOptions& options);

// The documents of one calibration file (exposed for tests).
std::vector<std::string> read_calibration_documents(const std::filesystem::path& path);

}  // namespace lowbit

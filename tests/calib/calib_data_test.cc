// Calibration data: file formats, errors naming the file and line, and reproducible random windows.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "calib/calib_data.h"
#include "runtime/tiny_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

// The bundled stories260K tokenizer (512 tokens, adds BOS): small and always in the repo.
Tokenizer bundled_tokenizer() {
  return Tokenizer::load(fs::path(LOWBIT_SOURCE_DIR) / "models" / "stories260K");
}

std::string story_text(int repeats) {
  std::string text;
  for (int i = 0; i < repeats; ++i)
    text += "Once upon a time there was a little girl named Lily " + std::to_string(i) +
            ". She loved to play in the park with her dog.\n";
  return text;
}

TEST(CalibData, PlainTextWindowsAreReproducibleAndStartWithBos) {
  const testing::TempDir tmp("calib_plain");
  const fs::path file = tmp.path() / "calib.txt";
  write_file_atomic(file, story_text(200));
  const Tokenizer tok = bundled_tokenizer();
  CalibDataOptions o;
  o.files = {file};
  o.num_samples = 8;
  o.seq_len = 64;
  o.seed = 7;
  const CalibDataset a = load_calibration_data(tok, o);
  const CalibDataset b = load_calibration_data(tok, o);
  ASSERT_EQ(a.num_samples(), 8);
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.tokens(), 8 * 64);
  for (const auto& s : a.samples) {
    ASSERT_EQ(s.size(), 64u);
    EXPECT_EQ(s[0], tok.bos_id());
  }
  // The window is a slice of the tokenized text.
  const std::vector<int32_t> stream = tok.encode(read_file(file), false);
  for (int64_t i = 0; i < a.num_samples(); ++i)
    for (size_t t = 1; t < 64; ++t) ASSERT_EQ(a.samples[i][t], stream[a.offsets[i] + t - 1]);
  o.seed = 8;
  const CalibDataset c = load_calibration_data(tok, o);
  EXPECT_NE(a.offsets, c.offsets);
  EXPECT_NE(a.describe().find("8 samples x 64 tokens (seed 7)"), std::string::npos) << a.describe();
}

TEST(CalibData, JsonlTextFieldAndSeveralFiles) {
  const testing::TempDir tmp("calib_jsonl");
  const fs::path jsonl = tmp.path() / "data.jsonl";
  write_file_atomic(jsonl, "{\"text\": \"first document\", \"id\": 1}\n\n{\"text\": \"second \\u00e9\"}\n");
  EXPECT_EQ(read_calibration_documents(jsonl),
            (std::vector<std::string>{"first document", "second \xc3\xa9"}));
  const fs::path txt = tmp.path() / "more.txt";
  write_file_atomic(txt, story_text(50));
  CalibDataOptions o;
  o.files = {jsonl, txt};
  o.num_samples = 4;
  o.seq_len = 32;
  const CalibDataset d = load_calibration_data(bundled_tokenizer(), o);
  EXPECT_EQ(d.files.size(), 2u);
  EXPECT_GT(d.file_tokens[0], 0);
  EXPECT_EQ(d.num_samples(), 4);
}

TEST(CalibData, BadJsonlNamesFileAndLine) {
  const testing::TempDir tmp("calib_bad");
  const fs::path bad = tmp.path() / "bad.jsonl";
  write_file_atomic(bad, "{\"text\": \"ok\"}\n{\"txt\": \"no text field\"}\n");
  try {
    read_calibration_documents(bad);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  write_file_atomic(bad, "{\"text\": \"ok\"}\n{not json\n");
  EXPECT_THROW(read_calibration_documents(bad), Error);
}

TEST(CalibData, ShortTextGivesOneSampleAndOverlapNote) {
  const testing::TempDir tmp("calib_short");
  const fs::path file = tmp.path() / "short.txt";
  write_file_atomic(file, story_text(3));
  CalibDataOptions o;
  o.files = {file};
  o.num_samples = 4;
  o.seq_len = 4096;
  const CalibDataset d = load_calibration_data(bundled_tokenizer(), o);
  EXPECT_EQ(d.num_samples(), 1);
  ASSERT_FALSE(d.notes.empty());
  o.seq_len = 32;
  o.num_samples = 100;
  const CalibDataset overlap = load_calibration_data(bundled_tokenizer(), o);
  EXPECT_EQ(overlap.num_samples(), 100);
  ASSERT_FALSE(overlap.notes.empty());
  EXPECT_NE(overlap.notes[0].find("overlap"), std::string::npos);
  write_file_atomic(file, "hi");
  EXPECT_THROW(load_calibration_data(bundled_tokenizer(), o), Error);
}

}  // namespace
}  // namespace lowbit

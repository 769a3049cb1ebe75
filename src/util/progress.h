// A terminal progress bar for long work (calibration, quantization, perplexity). It draws on stderr
// only when stderr is a terminal, so logs and `--json` output on stdout stay clean.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace lowbit {

class ProgressBar {
 public:
  ProgressBar(std::string label, size_t total, bool enabled = true);
  ~ProgressBar();

  void advance(size_t n = 1) { update(done_ + n); }
  void update(size_t done);
  // Text shown after the counts, e.g. "ppl 12.31".
  void set_suffix(std::string suffix);
  void finish();

 private:
  void draw(bool final_draw);

  std::string label_;
  std::string suffix_;
  size_t total_;
  size_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lowbit

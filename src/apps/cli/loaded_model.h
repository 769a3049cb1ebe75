// Opening a model folder for inference: weights (mmap), tokenizer and the runtime transformer, with the
// load time measured and config warnings printed once.
#pragma once

#include <filesystem>
#include <memory>

#include "model/model.h"
#include "runtime/transformer.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::cli {

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<runtime::Transformer> transformer;
  std::unique_ptr<Tokenizer> tokenizer;
  double load_seconds = 0.0;
};

// `quiet` suppresses the config warnings on stderr.
LoadedModel load_model(const std::filesystem::path& dir, bool quiet = false);

// Peak resident set size of this process so far, in bytes.
size_t peak_rss_bytes();

}  // namespace lowbit::cli

#include "apps/cli/loaded_model.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>

namespace lowbit::cli {

LoadedModel load_model(const std::filesystem::path& dir, bool quiet) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModel loaded;
  loaded.model = Model::open(dir);
  loaded.tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  loaded.transformer = std::make_unique<runtime::Transformer>(*loaded.model);
  loaded.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!quiet)
    for (const auto& warning : loaded.model->config().warnings) fmt::print(stderr, "warning: {}\n", warning);
  return loaded;
}

size_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<size_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace lowbit::cli

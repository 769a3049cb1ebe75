// Tokenizer throughput on the first 1 MB of WikiText-2 (shared/data/eval/wikitext2_test.raw):
//   Encode/<tok>/cold  -- a freshly loaded tokenizer each iteration (empty word cache; load not timed)
//   Encode/<tok>/warm  -- steady state, word cache filled by earlier iterations
//   Decode/<tok>, StreamDecode/<tok> -- the ids of that text back to text
// Counter bytes_per_second is input text bytes (MB/s = bytes_per_second / 1e6).
// Run: build/<dir>/bench/tokenizer_bench [--benchmark_filter=Encode]
#include <benchmark/benchmark.h>

#include <filesystem>
#include <optional>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/files.h"

namespace lowbit {
namespace {

constexpr size_t kTextBytes = size_t{1} << 20;

const std::string& text() {
  static const std::string t = [] {
    std::string all = read_file(std::filesystem::path(LOWBIT_SHARED_DIR) / "data/eval/wikitext2_test.raw");
    size_t end = std::min(all.size(), kTextBytes);
    while (end < all.size() && (static_cast<unsigned char>(all[end]) & 0xC0) == 0x80) ++end;  // whole chars
    return all.substr(0, end);
  }();
  return t;
}

std::filesystem::path tokenizer_dir(const std::string& name) {
  return std::filesystem::path(LOWBIT_SHARED_DIR) / "tokenizers" / name;
}

void encode_cold(benchmark::State& state, const std::string& name) {
  std::optional<Tokenizer> tok;
  for (auto _ : state) {
    state.PauseTiming();
    tok.reset();  // neither loading nor destroying is timed
    tok.emplace(Tokenizer::load(tokenizer_dir(name)));
    state.ResumeTiming();
    benchmark::DoNotOptimize(tok->encode(text()));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
}

void encode_warm(benchmark::State& state, const std::string& name) {
  const Tokenizer tok = Tokenizer::load(tokenizer_dir(name));
  size_t ids = tok.encode(text()).size();
  for (auto _ : state) benchmark::DoNotOptimize(tok.encode(text()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
  state.counters["ids"] = static_cast<double>(ids);
}

void decode(benchmark::State& state, const std::string& name) {
  const Tokenizer tok = Tokenizer::load(tokenizer_dir(name));
  const auto ids = tok.encode(text());
  for (auto _ : state) benchmark::DoNotOptimize(tok.decode(ids));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
}

void stream_decode(benchmark::State& state, const std::string& name) {
  const Tokenizer tok = Tokenizer::load(tokenizer_dir(name));
  const auto ids = tok.encode(text());
  for (auto _ : state) {
    StreamDecoder stream(tok);
    size_t bytes = 0;
    for (const int32_t id : ids) bytes += stream.push(id).size();
    bytes += stream.finish().size();
    benchmark::DoNotOptimize(bytes);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
}

BENCHMARK_CAPTURE(encode_cold, llama2, std::string("llama2"))
    ->Name("Encode/llama2/cold")
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_warm, llama2, std::string("llama2"))
    ->Name("Encode/llama2/warm")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_cold, qwen3, std::string("qwen3"))
    ->Name("Encode/qwen3/cold")
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_warm, qwen3, std::string("qwen3"))
    ->Name("Encode/qwen3/warm")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode, llama2, std::string("llama2"))
    ->Name("Decode/llama2")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode, qwen3, std::string("qwen3"))->Name("Decode/qwen3")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(stream_decode, llama2, std::string("llama2"))
    ->Name("StreamDecode/llama2")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(stream_decode, qwen3, std::string("qwen3"))
    ->Name("StreamDecode/qwen3")
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();

#include "eval/speed.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <span>

#include "runtime/kernels.h"
#include "runtime/sampler.h"
#include "util/thread_pool.h"

namespace lowbit::eval {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const double rank = p * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (rank - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

Summary summarize(std::vector<double> values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.p50 = s.median = percentile(values, 0.5);
  s.p99 = percentile(values, 0.99);
  return s;
}

uint64_t decode_weight_bytes(const Model& model) {
  uint64_t bytes = 0;
  model.for_each_linear([&](const LinearModule& m) { bytes += m.weight.nbytes; },
                        /*include_tied_lm_head=*/true);
  return bytes;
}

SpeedResult measure_speed(const runtime::Transformer& transformer, const SpeedOptions& options) {
  const ModelConfig& config = transformer.config();
  std::mt19937_64 rng(options.seed);
  // Ids from 3 on avoid the usual special tokens (unk, bos, eos) in the prompt.
  std::uniform_int_distribution<int32_t> pick(3, static_cast<int32_t>(config.vocab_size - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(options.prompt_len));
  for (auto& t : prompt) t = pick(rng);

  SpeedResult result;
  result.prompt_len = options.prompt_len;
  result.gen_len = options.gen_len;
  result.repeat = options.repeat;
  result.decode_weight_bytes = decode_weight_bytes(transformer.model());

  std::vector<double> ttft, prefill, itl, decode, e2e;
  runtime::Session session(transformer, options.prompt_len + options.gen_len);
  std::vector<float> logits;
  // One untimed warm-up run (page faults of the mapped weights, thread start-up, allocations).
  for (int run = -1; run < options.repeat; ++run) {
    session.reset();
    const auto start = Clock::now();
    session.forward(prompt, runtime::Logits::Last, &logits);
    int32_t token = runtime::argmax(logits);
    const double first = seconds_since(start);
    const auto decode_start = Clock::now();
    std::vector<double> run_itl;
    for (int64_t i = 1; i < options.gen_len; ++i) {
      const auto t0 = Clock::now();
      session.forward(std::span<const int32_t>(&token, 1), runtime::Logits::Last, &logits);
      token = runtime::argmax(logits);
      run_itl.push_back(seconds_since(t0));
    }
    const double decode_s = seconds_since(decode_start);
    if (run < 0) continue;
    ttft.push_back(first);
    prefill.push_back(static_cast<double>(options.prompt_len) / first);
    itl.insert(itl.end(), run_itl.begin(), run_itl.end());
    if (options.gen_len > 1) decode.push_back(static_cast<double>(options.gen_len - 1) / decode_s);
    e2e.push_back(seconds_since(start));
  }
  result.ttft_s = summarize(ttft);
  result.prefill_tok_s = summarize(prefill);
  result.itl_s = summarize(itl);
  result.decode_tok_s = summarize(decode);
  result.e2e_s = summarize(e2e);
  return result;
}

double measure_read_bandwidth(size_t bytes) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buffer(n, 1.0f);  // written once, so every page is resident
  ThreadPool& pool = global_pool();
  double best = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = Clock::now();
    pool.parallel_for(n, 1 << 16, [&](size_t b, size_t e) {
      // dot(a, a) loads each byte once (both operands hit the same line) with the SIMD kernel, so the loads,
      // not the arithmetic, are the bottleneck.
      volatile float sink = kernels::dot(buffer.data() + b, buffer.data() + b, e - b);
      (void)sink;
    });
    best = std::max(best, static_cast<double>(n * sizeof(float)) / seconds_since(start));
  }
  return best;
}

}  // namespace lowbit::eval

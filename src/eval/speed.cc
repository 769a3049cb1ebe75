#include "eval/speed.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <span>

#include "runtime/kernels.h"
#include "runtime/sampler.h"
#include "util/error.h"
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

uint64_t decode_weight_bytes(const runtime::Transformer& transformer) {
  uint64_t bytes = transformer.lm_head().weight_bytes();
  for (int64_t i = 0; i < transformer.config().num_layers; ++i) {
    const runtime::Transformer::Layer& l = transformer.layer(i);
    for (const auto* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) bytes += (*w)->weight_bytes();
  }
  return bytes;
}

double prefill_flops_per_token(const runtime::Transformer& transformer, int64_t prompt_len) {
  if (prompt_len < 1) fail("prefill_flops_per_token: prompt length {} is not positive", prompt_len);
  const ModelConfig& c = transformer.config();
  double linears = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const runtime::Transformer::Layer& l = transformer.layer(i);
    for (const auto* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      linears += 2.0 * static_cast<double>((*w)->out_features()) * static_cast<double>((*w)->in_features());
  }
  const double positions = (static_cast<double>(prompt_len) + 1.0) / 2.0;
  const double attention = 4.0 * static_cast<double>(c.num_layers * c.q_dim()) * positions;
  const runtime::LinearWeight& head = transformer.lm_head();
  const double lm_head = 2.0 * static_cast<double>(head.out_features()) *
                         static_cast<double>(head.in_features()) / static_cast<double>(prompt_len);
  return linears + attention + lm_head;
}

uint64_t decode_kv_bytes(const runtime::Transformer& transformer, int64_t prompt_len, int64_t gen_len) {
  const ModelConfig& c = transformer.config();
  const runtime::KVQuantizer* codes = transformer.kv_quantizer();
  const uint64_t value_bytes =
      codes && codes->stores_codes() ? 1 : static_cast<uint64_t>(dtype_size(transformer.kv_storage()));
  const double mean_positions = static_cast<double>(prompt_len) + static_cast<double>(gen_len) / 2.0;
  const double per_position =
      static_cast<double>(c.num_layers * 2 * c.num_kv_heads * c.head_dim) * value_bytes;
  return static_cast<uint64_t>(mean_positions * per_position);
}

namespace {

// One batch size, options.repeat timed runs after one untimed warm-up (page faults of the mapped weights,
// thread start-up, allocations).
BatchSpeed measure_batch(const runtime::Transformer& transformer, const SpeedOptions& options,
                         const std::vector<std::vector<int32_t>>& prompts, int64_t batch) {
  std::vector<std::unique_ptr<runtime::Session>> owned;
  std::vector<runtime::Session*> sessions;
  for (int64_t b = 0; b < batch; ++b) {
    owned.push_back(std::make_unique<runtime::Session>(transformer, options.prompt_len + options.gen_len));
    sessions.push_back(owned.back().get());
  }
  const int64_t vocab = transformer.config().vocab_size;
  std::vector<double> ttft, prefill, itl, decode, e2e;
  std::vector<float> logits;
  std::vector<int32_t> tokens(static_cast<size_t>(batch));
  for (int run = -1; run < options.repeat; ++run) {
    const auto start = Clock::now();
    for (int64_t b = 0; b < batch; ++b) {
      runtime::Session& s = *sessions[static_cast<size_t>(b)];
      s.reset();
      const auto t0 = Clock::now();
      s.forward(prompts[static_cast<size_t>(b) % prompts.size()], runtime::Logits::Last, &logits);
      tokens[static_cast<size_t>(b)] = runtime::argmax(logits);
      const double first = seconds_since(t0);
      if (run < 0) continue;
      if (b == 0) ttft.push_back(first);
      prefill.push_back(static_cast<double>(options.prompt_len) / first);
    }
    const auto decode_start = Clock::now();
    for (int64_t i = 1; i < options.gen_len; ++i) {
      const auto t0 = Clock::now();
      if (batch == 1) {
        sessions[0]->forward(std::span<const int32_t>(tokens.data(), 1), runtime::Logits::Last, &logits);
        tokens[0] = runtime::argmax(logits);
      } else {
        runtime::decode_batch(transformer, sessions, tokens, &logits);
        for (int64_t b = 0; b < batch; ++b)
          tokens[static_cast<size_t>(b)] =
              runtime::argmax(std::span<const float>(logits.data() + b * vocab, static_cast<size_t>(vocab)));
      }
      if (run >= 0) itl.push_back(seconds_since(t0));
    }
    const double decode_s = seconds_since(decode_start);
    if (run < 0) continue;
    if (options.gen_len > 1) decode.push_back(static_cast<double>(batch * (options.gen_len - 1)) / decode_s);
    e2e.push_back(seconds_since(start));
  }
  BatchSpeed r;
  r.batch = batch;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  r.peak_rss_bytes = static_cast<size_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
  r.ttft_s = summarize(ttft);
  r.prefill_tok_s = summarize(prefill);
  r.itl_s = summarize(itl);
  r.decode_tok_s = summarize(decode);
  r.e2e_s = summarize(e2e);
  return r;
}

}  // namespace

SpeedResult measure_speed(const runtime::Transformer& transformer, const SpeedOptions& options) {
  const ModelConfig& config = transformer.config();
  std::mt19937_64 rng(options.seed);
  // Ids from 3 on avoid the usual special tokens (unk, bos, eos) in the prompt. Every sequence of a batch
  // gets its own prompt (the largest batch's worth).
  std::uniform_int_distribution<int32_t> pick(3, static_cast<int32_t>(config.vocab_size - 1));
  int64_t largest = 1;
  for (int64_t b : options.batches) largest = std::max(largest, b);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(largest));
  for (auto& prompt : prompts) {
    prompt.resize(static_cast<size_t>(options.prompt_len));
    for (auto& t : prompt) t = pick(rng);
  }

  SpeedResult result;
  result.prompt_len = options.prompt_len;
  result.gen_len = options.gen_len;
  result.repeat = options.repeat;
  result.decode_weight_bytes = decode_weight_bytes(transformer);
  result.decode_kv_bytes = decode_kv_bytes(transformer, options.prompt_len, options.gen_len);
  result.prefill_flops_per_token = prefill_flops_per_token(transformer, options.prompt_len);
  for (int64_t batch : options.batches) {
    if (batch < 1) fail("batch size {} is not positive", batch);
    result.batches.push_back(measure_batch(transformer, options, prompts, batch));
  }
  return result;
}

double measure_fma_peak() {
  ThreadPool& pool = global_pool();
  constexpr int64_t kTrips = int64_t{1} << 22;  // a few milliseconds per thread
  std::vector<double> flops(static_cast<size_t>(pool.size()));
  double best = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = Clock::now();
    pool.run_on_all(
        [&](int thread) { flops[static_cast<size_t>(thread)] = kernels::fma_chain_flops(kTrips); });
    const double seconds = seconds_since(start);
    best = std::max(best, std::accumulate(flops.begin(), flops.end(), 0.0) / seconds);
  }
  return best;
}

double measure_read_bandwidth(size_t bytes) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buffer(n, 1.0f);  // written once, so every page is resident
  ThreadPool& pool = global_pool();
  double best = 0.0;
  // Passes alternate between the two ways the decode products prefetch (row_streams.h), and the best pass
  // counts, so that the floor is not set by the slower one on any machine.
  for (int pass = 0; pass < 10; ++pass) {
    const bool non_temporal = pass % 2 == 1;
    const auto start = Clock::now();
    pool.parallel_for(n, 1 << 16, [&](size_t b, size_t e) {
      // Each chunk is read as four sequential streams side by side, as the decode products read their
      // weight rows; one stream per core draws less from DRAM on some machines (the Zen 3 VM: 14-18 against
      // 19-21 GB/s on one core), which would set the floor too low.
      volatile float sink = kernels::sum_four_streams(buffer.data() + b, e - b, non_temporal);
      (void)sink;
    });
    best = std::max(best, static_cast<double>(n * sizeof(float)) / seconds_since(start));
  }
  return best;
}

}  // namespace lowbit::eval

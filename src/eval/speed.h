// End-to-end speed of the engine, measured the way llama-bench and serving benchmarks report it:
// prefill throughput and time to first token for a prompt of P tokens, then inter-token latency and decode
// throughput for G generated tokens, repeated and summarised by median and spread. The machine's memory
// read bandwidth is measured in the same process so decode can be judged against its floor
// (weight bytes read per token / bandwidth).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/transformer.h"

namespace lowbit::eval {

struct SpeedOptions {
  int64_t prompt_len = 512;
  int64_t gen_len = 128;
  int repeat = 3;
  uint64_t seed = 1;
};

struct Summary {
  double median = 0, mean = 0, min = 0, max = 0, p50 = 0, p99 = 0;
};
Summary summarize(std::vector<double> values);

struct SpeedResult {
  int64_t prompt_len = 0, gen_len = 0;
  int repeat = 0;
  Summary ttft_s;                    // prefill of the prompt + choosing the first token, per run
  Summary prefill_tok_s;             // prompt_len / prefill time, per run
  Summary itl_s;                     // every inter-token latency of every run
  Summary decode_tok_s;              // (gen_len - 1) / decode time, per run
  Summary e2e_s;                     // whole request, per run
  uint64_t decode_weight_bytes = 0;  // bytes of weights read per decoded token
};

// Greedy generation from random prompt tokens (fixed seed); the stop token is ignored so every run
// generates exactly gen_len tokens.
SpeedResult measure_speed(const runtime::Transformer& transformer, const SpeedOptions& options);

// Bytes of weights one decode step reads: every linear module (lm_head included even when tied).
uint64_t decode_weight_bytes(const Model& model);

// Read bandwidth of main memory in bytes/s: multi-threaded sums over a buffer much larger than the caches
// (best of several passes), using the global thread pool.
double measure_read_bandwidth(size_t bytes = size_t{1} << 30);

}  // namespace lowbit::eval

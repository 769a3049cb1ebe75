// End-to-end speed of the engine, measured the way llama-bench and serving benchmarks report it:
// prefill throughput and time to first token for a prompt of P tokens, then inter-token latency and decode
// throughput for G generated tokens, repeated and summarised by median and spread. With several batch
// sizes, B sequences are prefilled one after the other and then decoded in lockstep
// (runtime::decode_batch: every linear layer runs once per step on B rows), as a static batch of a
// serving engine. The machine's memory read bandwidth is measured in the same process so decode can be
// judged against its floor (weight bytes read per step / bandwidth), and its FMA peak so prefill can be
// judged against its ceiling (useful flops per prompt token / peak flop rate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/transformer.h"

namespace lowbit::eval {

struct SpeedOptions {
  int64_t prompt_len = 512;
  int64_t gen_len = 128;
  int repeat = 3;
  uint64_t seed = 1;
  std::vector<int64_t> batches = {1};  // decode batch sizes, each measured separately
};

struct Summary {
  double median = 0, mean = 0, min = 0, max = 0, p50 = 0, p99 = 0;
};
Summary summarize(std::vector<double> values);

// One batch size: B sequences of prompt_len tokens, each prefilled, then gen_len - 1 lockstep steps.
struct BatchSpeed {
  int64_t batch = 1;
  Summary ttft_s;         // prefill of one prompt + choosing its first token (the first sequence), per run
  Summary prefill_tok_s;  // prompt_len / prefill time of one sequence, per sequence of every run
  Summary itl_s;          // every step of every run (each step gives every sequence one token)
  Summary decode_tok_s;   // batch * (gen_len - 1) / decode time, per run
  Summary e2e_s;          // the whole batch, prefills + decode, per run
  size_t peak_rss_bytes = 0;  // the process's peak resident set after this batch size's runs
};

struct SpeedResult {
  int64_t prompt_len = 0, gen_len = 0;
  int repeat = 0;
  std::vector<BatchSpeed> batches;     // in the order of SpeedOptions::batches
  uint64_t decode_weight_bytes = 0;    // bytes of weights read per decode step (every linear layer)
  uint64_t decode_kv_bytes = 0;        // bytes of KV cache one batch-1 decode step reads, mean over the steps
  double prefill_flops_per_token = 0;  // useful flops per prompt token (prefill_flops_per_token)
  // The first batch size's figures (for one-batch callers).
  const BatchSpeed& first() const { return batches.front(); }
};

// Greedy generation from random prompt tokens (fixed seed); the stop token is ignored so every run
// generates exactly gen_len tokens.
SpeedResult measure_speed(const runtime::Transformer& transformer, const SpeedOptions& options);

// Bytes of weights one decode step reads: every linear layer as the runtime holds it (packed codes and
// scales for a packed quantized model; lm_head included even when tied).
uint64_t decode_weight_bytes(const runtime::Transformer& transformer);

// Bytes of keys and values a decode step of one sequence reads from the KV cache, mean over the steps of a
// generation of gen_len tokens after a prompt_len prompt (step s attends to prompt_len + s positions), in
// the storage the transformer's sessions use (4, 2 or 1 byte per value).
uint64_t decode_kv_bytes(const runtime::Transformer& transformer, int64_t prompt_len, int64_t gen_len);

// Useful flops of a prefill per prompt token, for a prompt of prompt_len tokens: every decoder linear (2 out
// in), causal attention (QK^T and PV: 4 num_heads head_dim per attended position, (prompt_len + 1) / 2
// positions on average) and lm_head once, for the last position. Work a kernel does beyond that (masked
// score blocks, dequantization) does not count, as in a model-flops utilisation.
double prefill_flops_per_token(const runtime::Transformer& transformer, int64_t prompt_len);

// Peak fp32 multiply-add rate in flop/s: every thread of the global pool runs register-only FMA chains on
// the widest vectors the dispatcher picked (kernels::fma_chain_flops), best of several passes. The integer
// kernels (W8A8, the int4/8-bit decode products) have ceilings of their own; on the Zen 3 VM they equal this
// one (packed_bench Machine/Peak, docs/PERFORMANCE.md), on VNNI machines they are higher.
double measure_fma_peak();

// Read bandwidth of main memory in bytes/s: multi-threaded sums over a buffer much larger than the caches
// (best of several passes), using the global thread pool.
double measure_read_bandwidth(size_t bytes = size_t{1} << 30);

}  // namespace lowbit::eval

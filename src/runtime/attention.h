// Causal grouped-query attention over the KV cache: softmax(q k^T / sqrt(head_dim)) v, where query head h
// reads KV head h / (num_heads / num_kv_heads) (transformers' repeat_kv). Prefill splits the work into
// (block of 64 queries) x (KV head) tasks in the global thread pool; a task stacks the queries of all heads
// sharing the KV head into one matrix, so each task is two single-threaded sgemm calls (scores, weighted
// values) that only cover the keys its block can see. Decode (one query) runs head by head with vector
// kernels.
#pragma once

#include <cstdint>

#include "runtime/kv_cache.h"

namespace lowbit::runtime {

struct AttentionShape {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

// q: [count][num_heads * head_dim] for the tokens at positions [first, first + count), whose keys and
// values are already in `cache` (layer `layer`). Writes out: [count][num_heads * head_dim].
void causal_attention(const float* q, int64_t first, int64_t count, const KVCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out);

}  // namespace lowbit::runtime

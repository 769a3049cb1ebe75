// Causal grouped-query attention over the KV cache: softmax(q k^T / sqrt(head_dim)) v, where query head h
// reads KV head h / (num_heads / num_kv_heads) (transformers' repeat_kv). Work is split over heads and
// blocks of queries in the global thread pool; blocks of queries use single-threaded sgemm for scores
// and for the weighted sum of values, and each block only computes scores for the keys it can see.
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

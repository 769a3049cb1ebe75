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

// Causal attention of one sequence starting at position 0, in the bf16 arithmetic of runtime/gemm_bf16.h:
// q and k rounded to bf16 for the scores, the softmax in fp32, its weights and v rounded to bf16 for the
// weighted sum, fp32 sums (what torch computes for a bf16 model). The calibration pipeline's BF16 passes use
// it. k (after RoPE) and v: [count][num_kv_heads * head_dim]; q and out as for causal_attention.
void causal_attention_bf16(const float* q, const float* k, const float* v, int64_t count,
                           const AttentionShape& shape, float* out);
// Scalar reference (double sums and softmax, the same roundings). The fast version differs by fp32
// summation order and by at most one bf16 step of a softmax weight that falls next to a rounding boundary.
void causal_attention_bf16_ref(const float* q, const float* k, const float* v, int64_t count,
                               const AttentionShape& shape, float* out);

}  // namespace lowbit::runtime

#include "runtime/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/kernels.h"
#include "util/thread_pool.h"

namespace lowbit::runtime {

namespace {

// Queries per prefill task: large enough for an efficient sgemm, small enough that the causal triangle
// above a block's diagonal (computed, then masked) stays a small fraction of the work.
constexpr int64_t kQueryBlock = 64;

struct Scratch {
  std::vector<float> q, scores, out;
};

// Decode-sized work (one query per head): `heads` consecutive query heads of one KV head, a matrix-vector
// product each way over the cached rows, read in their storage dtype (16-bit caches halve what each token
// reads) and widened once for all the heads; vector kernels beat sgemm's setup here. q and out: [heads][d].
void attend_one(const float* q, int64_t heads, int64_t keys_seen, KVCache::Rows keys, KVCache::Rows values,
                int64_t d, float* out, std::vector<float>& scores, const void* next_keys) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  scores.resize(static_cast<size_t>(heads * keys_seen));
  float* sc = scores.data();
  // The values come from DRAM along with the keys (a decode step streams the weights through the caches
  // between two visits of a head), while the scores are computed.
  const void* next = values.dtype == keys.dtype ? values.data : nullptr;
  kernels::scaled_row_dots(q, heads, keys.data, keys.dtype, keys_seen, d, scale, sc, next);
  for (int64_t i = 0; i < heads; ++i) kernels::softmax(sc + i * keys_seen, static_cast<size_t>(keys_seen));
  kernels::weighted_row_sum(sc, heads, values.data, values.dtype, keys_seen, d, out, next_keys);
}

// Prefill: queries [t0, t1) of all `group` query heads that share one KV head, stacked into one matrix
// (row j * rows + r = head j, query t0 + r), so that the keys and values are packed once per sgemm for the
// whole group. Scores cover the keys the block's last query sees; each row is masked to its own causal
// prefix before the softmax.
void attend_group_block(const float* q, int64_t first, int64_t t0, int64_t t1, const float* keys,
                        const float* values, const AttentionShape& s, int64_t kv_head, float* out,
                        Scratch& w) {
  const int64_t d = s.head_dim;
  const int64_t stride = s.num_heads * d;
  const int64_t group = s.num_heads / s.num_kv_heads;
  const int64_t rows = t1 - t0;
  const int64_t m = group * rows;
  const int64_t keys_seen = first + t1;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  w.q.resize(static_cast<size_t>(m * d));
  w.out.resize(static_cast<size_t>(m * d));
  w.scores.resize(static_cast<size_t>(m * keys_seen));
  const size_t head_bytes = static_cast<size_t>(d) * sizeof(float);
  for (int64_t j = 0; j < group; ++j) {
    const float* src = q + t0 * stride + (kv_head * group + j) * d;
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(w.q.data() + (j * rows + r) * d, src + r * stride, head_bytes);
  }

  float* sc = w.scores.data();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(keys_seen),
              static_cast<int>(d), scale, w.q.data(), static_cast<int>(d), keys, static_cast<int>(d), 0.0f,
              sc, static_cast<int>(keys_seen));
  for (int64_t i = 0; i < m; ++i) {
    float* row = sc + i * keys_seen;
    const int64_t visible = first + t0 + i % rows + 1;  // keys 0 .. position of this query
    kernels::softmax(row, static_cast<size_t>(visible));
    std::fill(row + visible, row + keys_seen, 0.0f);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(d),
              static_cast<int>(keys_seen), 1.0f, sc, static_cast<int>(keys_seen), values, static_cast<int>(d),
              0.0f, w.out.data(), static_cast<int>(d));

  for (int64_t j = 0; j < group; ++j) {
    float* dst = out + t0 * stride + (kv_head * group + j) * d;
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + r * stride, w.out.data() + (j * rows + r) * d, head_bytes);
  }
}

}  // namespace

void causal_attention(const float* q, int64_t first, int64_t count, const KVCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out) {
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  const int64_t d = shape.head_dim;
  if (count == 1) {
    // A task is up to `per_task` query heads of one KV head (they read the same rows). Whole groups unless
    // there are fewer KV heads than threads; the result is the same either way (per-head sums in row order).
    const int64_t threads = global_pool().size();
    const int64_t wanted = std::min(group, (threads + shape.num_kv_heads - 1) / shape.num_kv_heads);
    const int64_t per_task = (group + wanted - 1) / wanted;
    const int64_t parts = (group + per_task - 1) / per_task;  // every part holds at least one head
    const int64_t tasks = shape.num_kv_heads * parts;
    // An equal run of tasks per thread (they cost the same), so that a thread knows which keys it reads next.
    const auto grain = static_cast<size_t>((tasks + threads - 1) / threads);
    global_pool().parallel_for(static_cast<size_t>(tasks), grain, [&](size_t begin, size_t end) {
      thread_local std::vector<float> scores;
      for (auto t = static_cast<int64_t>(begin); t < static_cast<int64_t>(end); ++t) {
        const int64_t kv_head = t / parts;
        const int64_t h0 = kv_head * group + (t % parts) * per_task;
        const int64_t heads = std::min(per_task, (kv_head + 1) * group - h0);
        const KVCache::Rows values = cache.value_rows(layer, kv_head);
        // When this thread's next task reads another KV head, its keys come in along with these values.
        const void* next_keys = nullptr;
        if (t + 1 < static_cast<int64_t>(end) && (t + 1) / parts != kv_head) {
          const KVCache::Rows keys = cache.key_rows(layer, (t + 1) / parts);
          if (keys.dtype == values.dtype) next_keys = keys.data;
        }
        attend_one(q + h0 * d, heads, first + 1, cache.key_rows(layer, kv_head), values, d, out + h0 * d,
                   scores, next_keys);
      }
    });
    return;
  }
  // The pool is the only source of parallelism (the policy of kernels_linear.cc): each pool thread runs
  // its own single-threaded sgemm.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  const int64_t blocks = (count + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = blocks * shape.num_kv_heads;
  // Task order: the last (most expensive) query blocks first, KV heads inner, so that dynamic scheduling
  // ends with cheap tasks.
  global_pool().parallel_for(static_cast<size_t>(tasks), 1, [&](size_t begin, size_t end) {
    thread_local Scratch scratch;
    for (size_t task = begin; task < end; ++task) {
      const int64_t block = blocks - 1 - static_cast<int64_t>(task) / shape.num_kv_heads;
      const int64_t kv_head = static_cast<int64_t>(task) % shape.num_kv_heads;
      const int64_t t0 = block * kQueryBlock;
      const int64_t t1 = std::min(count, t0 + kQueryBlock);
      attend_group_block(q, first, t0, t1, cache.keys(layer, kv_head), cache.values(layer, kv_head), shape,
                         kv_head, out, scratch);
    }
  });
}

}  // namespace lowbit::runtime

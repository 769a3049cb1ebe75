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

// Queries per task: large enough for an efficient sgemm, small enough that the causal triangle above a
// block's diagonal (computed, then masked) stays a small fraction of the work.
constexpr int64_t kQueryBlock = 64;

// One head, queries [t0, t1): scores for the keys each query sees, softmax, then the weighted values.
void attend_block(const float* q, int64_t first, int64_t t0, int64_t t1, const float* keys, const float* values,
                  const AttentionShape& s, int64_t head, float* out, std::vector<float>& scores) {
  const int64_t d = s.head_dim;
  const int64_t stride = s.num_heads * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t rows = t1 - t0;
  const int64_t keys_seen = first + t1;  // the last query of the block sees this many keys
  const float* qb = q + t0 * stride + head * d;
  float* ob = out + t0 * stride + head * d;
  scores.resize(static_cast<size_t>(rows * keys_seen));
  float* sc = scores.data();

  if (rows == 1) {
    // Decode: a matrix-vector product each way; vector kernels beat sgemm's setup here.
    for (int64_t j = 0; j < keys_seen; ++j) sc[j] = scale * kernels::dot(qb, keys + j * d, static_cast<size_t>(d));
    kernels::softmax(sc, static_cast<size_t>(keys_seen));
    std::memset(ob, 0, static_cast<size_t>(d) * sizeof(float));
    for (int64_t j = 0; j < keys_seen; ++j) kernels::axpy(sc[j], values + j * d, ob, static_cast<size_t>(d));
    return;
  }

  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(keys_seen),
              static_cast<int>(d), scale, qb, static_cast<int>(stride), keys, static_cast<int>(d), 0.0f, sc,
              static_cast<int>(keys_seen));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = sc + r * keys_seen;
    const int64_t visible = first + t0 + r + 1;  // keys 0 .. position of this query
    kernels::softmax(row, static_cast<size_t>(visible));
    std::fill(row + visible, row + keys_seen, 0.0f);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(d),
              static_cast<int>(keys_seen), 1.0f, sc, static_cast<int>(keys_seen), values, static_cast<int>(d), 0.0f,
              ob, static_cast<int>(stride));
}

}  // namespace

void causal_attention(const float* q, int64_t first, int64_t count, const KVCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out) {
  // The pool is the only source of parallelism (the policy of kernels_linear.cc): each pool thread runs
  // its own single-threaded sgemm.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  const int64_t blocks = (count + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = blocks * shape.num_heads;
  // Task order: the last (most expensive) query blocks first, heads inner, so that dynamic scheduling
  // ends with cheap tasks.
  global_pool().parallel_for(static_cast<size_t>(tasks), 1, [&](size_t begin, size_t end) {
    thread_local std::vector<float> scores;
    for (size_t task = begin; task < end; ++task) {
      const int64_t block = blocks - 1 - static_cast<int64_t>(task) / shape.num_heads;
      const int64_t head = static_cast<int64_t>(task) % shape.num_heads;
      const int64_t kv_head = head / group;
      const int64_t t0 = block * kQueryBlock;
      const int64_t t1 = std::min(count, t0 + kQueryBlock);
      attend_block(q, first, t0, t1, cache.keys(layer, kv_head), cache.values(layer, kv_head), shape, head, out,
                   scores);
    }
  });
}

}  // namespace lowbit::runtime

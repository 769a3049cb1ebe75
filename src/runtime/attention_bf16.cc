// Causal attention in bf16 arithmetic for the calibration pipeline (see attention.h). The structure is
// causal_attention's: (block of 64 queries) x (KV head) tasks, the queries of all heads sharing a KV head
// stacked into one matrix; the two products run on AMX tiles where the CPU has them, else as OpenBLAS sgemm
// on the bf16-rounded values (the same numbers up to summation order).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "io/dtype.h"
#include "runtime/attention.h"
#include "runtime/gemm_bf16.h"
#include "runtime/gemm_bf16_amx.h"
#include "runtime/kernels.h"
#include "util/aligned_vector.h"
#include "util/thread_pool.h"

namespace lowbit::runtime {
namespace {

constexpr int64_t kQueryBlock = 64;

int64_t round_up(int64_t v, int64_t to) {
  return (v + to - 1) / to * to;
}
float round_bf16(float v) {
  return bf16_to_f32(f32_to_bf16(v));
}

// Scales a row of scores, applies the causal mask (keys past `visible` get weight 0) and the softmax, and
// rounds the weights to bf16 as the second product's operand.
void softmax_row(float* row, int64_t visible, int64_t keys, float scale) {
  for (int64_t j = 0; j < visible; ++j) row[j] *= scale;
  kernels::softmax(row, static_cast<size_t>(visible));
  std::fill(row + visible, row + keys, 0.0f);
}

struct Task {
  int64_t kv_head, t0, t1;
};

// Writes a task's stacked result (row j * rows + r = head j of the group, query t0 + r) back to
// out [tokens][num_heads * head_dim].
void scatter_heads(const float* result, const Task& task, const AttentionShape& s, float* out) {
  const int64_t d = s.head_dim, group = s.num_heads / s.num_kv_heads, q_dim = s.num_heads * d;
  const int64_t rows = task.t1 - task.t0;
  for (int64_t j = 0; j < group; ++j)
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(out + (task.t0 + r) * q_dim + (task.kv_head * group + j) * d, result + (j * rows + r) * d,
                  static_cast<size_t>(d) * sizeof(float));
}

std::vector<Task> tasks_for(int64_t count, const AttentionShape& s) {
  // The last (most expensive) query blocks first, so that dynamic scheduling ends with cheap tasks.
  std::vector<Task> tasks;
  const int64_t blocks = (count + kQueryBlock - 1) / kQueryBlock;
  for (int64_t b = blocks - 1; b >= 0; --b)
    for (int64_t h = 0; h < s.num_kv_heads; ++h)
      tasks.push_back({h, b * kQueryBlock, std::min(count, (b + 1) * kQueryBlock)});
  return tasks;
}

void attention_amx(const float* q, const float* k, const float* v, int64_t count, const AttentionShape& s,
                   float* out) {
  const int64_t d = s.head_dim, group = s.num_heads / s.num_kv_heads;
  const int64_t q_dim = s.num_heads * d, kv_dim = s.num_kv_heads * d;
  const int64_t qk_depth = round_up(d, 32), pv_depth = round_up(count, 32);
  const int64_t key_panels = round_up(count, 32) / 16, value_panels = round_up(d, 32) / 16;
  const int64_t key_panel_elems = key_panels * qk_depth * 16,
                value_panel_elems = value_panels * pv_depth * 16;
  // Per KV head: the keys as B panels of the scores product (columns = keys), the values as B panels of
  // the weighted sum (k-pairs = consecutive keys).
  // Scratch kept per calling thread: the pipeline calls this thousands of times with the same shapes, and
  // fresh buffers of this size would be page-faulted in every time.
  thread_local AlignedVector<uint16_t> keys, values;
  keys.resize(static_cast<size_t>(s.num_kv_heads * key_panel_elems));
  values.resize(static_cast<size_t>(s.num_kv_heads * value_panel_elems));
  uint16_t* key_panels_data = keys.data();
  uint16_t* value_panels_data = values.data();
  global_pool().parallel_for(static_cast<size_t>(s.num_kv_heads), 1, [&](size_t b, size_t e) {
    thread_local AlignedVector<uint16_t> rows;
    rows.resize(static_cast<size_t>(count * qk_depth));
    for (auto h = static_cast<int64_t>(b); h < static_cast<int64_t>(e); ++h) {
      kernels::amx::pack_rows(k + h * d, kv_dim, count, d, qk_depth, rows.data());
      kernels::amx::rows_to_panels(rows.data(), count, qk_depth, 0, key_panels,
                                   key_panels_data + h * key_panel_elems);
      kernels::amx::pack_row_pairs(v + h * d, kv_dim, count, d, pv_depth, 0, value_panels,
                                   value_panels_data + h * value_panel_elems);
    }
  });
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const std::vector<Task> tasks = tasks_for(count, s);
  global_pool().parallel_for(tasks.size(), 1, [&](size_t b, size_t e) {
    thread_local AlignedVector<uint16_t> a;
    thread_local AlignedVector<float> scores, result;
    for (size_t t = b; t < e; ++t) {
      const Task& task = tasks[t];
      const int64_t rows = task.t1 - task.t0, m = group * rows, keys_seen = task.t1;
      const int64_t padded = round_up(m, 32), p_depth = round_up(keys_seen, 32);
      // Queries of the group's heads stacked (row j * rows + r = head j, query t0 + r), rows zero padded.
      a.assign(static_cast<size_t>(padded * std::max(qk_depth, p_depth)), 0);
      for (int64_t j = 0; j < group; ++j)
        kernels::amx::pack_rows(q + task.t0 * q_dim + (task.kv_head * group + j) * d, q_dim, rows, d,
                                qk_depth, a.data() + j * rows * qk_depth);
      scores.resize(static_cast<size_t>(m * keys_seen));
      kernels::amx::gemm_tiles(a.data(), qk_depth, key_panels_data + task.kv_head * key_panel_elems, qk_depth,
                               qk_depth, scores.data(), keys_seen, m, keys_seen);
      for (int64_t i = 0; i < m; ++i)
        softmax_row(scores.data() + i * keys_seen, task.t0 + i % rows + 1, keys_seen, scale);
      std::fill(a.begin(), a.end(), uint16_t{0});
      kernels::amx::pack_rows(scores.data(), keys_seen, m, keys_seen, p_depth, a.data());
      result.resize(static_cast<size_t>(m * d));
      kernels::amx::gemm_tiles(a.data(), p_depth, value_panels_data + task.kv_head * value_panel_elems,
                               pv_depth, p_depth, result.data(), d, m, d);
      scatter_heads(result.data(), task, s, out);
    }
  });
}

// Without AMX: the same roundings, fp32 sgemm.
void attention_sgemm(const float* q, const float* k, const float* v, int64_t count, const AttentionShape& s,
                     float* out) {
  const int64_t d = s.head_dim, group = s.num_heads / s.num_kv_heads;
  const int64_t q_dim = s.num_heads * d, kv_dim = s.num_kv_heads * d;
  std::vector<float> kr(static_cast<size_t>(count * kv_dim)), vr(kr.size());
  kernels::round_bf16(k, kr.data(), kr.size());
  kernels::round_bf16(v, vr.data(), vr.size());
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const std::vector<Task> tasks = tasks_for(count, s);
  global_pool().parallel_for(tasks.size(), 1, [&](size_t b, size_t e) {
    std::vector<float> qs, scores, result;
    for (size_t t = b; t < e; ++t) {
      const Task& task = tasks[t];
      const int64_t rows = task.t1 - task.t0, m = group * rows, keys_seen = task.t1;
      qs.resize(static_cast<size_t>(m * d));
      for (int64_t j = 0; j < group; ++j)
        for (int64_t r = 0; r < rows; ++r)
          kernels::round_bf16(q + (task.t0 + r) * q_dim + (task.kv_head * group + j) * d,
                              qs.data() + (j * rows + r) * d, static_cast<size_t>(d));
      scores.resize(static_cast<size_t>(m * keys_seen));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(keys_seen),
                  static_cast<int>(d), 1.0f, qs.data(), static_cast<int>(d), kr.data() + task.kv_head * d,
                  static_cast<int>(kv_dim), 0.0f, scores.data(), static_cast<int>(keys_seen));
      for (int64_t i = 0; i < m; ++i) {
        float* row = scores.data() + i * keys_seen;
        softmax_row(row, task.t0 + i % rows + 1, keys_seen, scale);
        kernels::round_bf16(row, row, static_cast<size_t>(keys_seen));
      }
      result.resize(static_cast<size_t>(m * d));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(d),
                  static_cast<int>(keys_seen), 1.0f, scores.data(), static_cast<int>(keys_seen),
                  vr.data() + task.kv_head * d, static_cast<int>(kv_dim), 0.0f, result.data(),
                  static_cast<int>(d));
      scatter_heads(result.data(), task, s, out);
    }
  });
}

}  // namespace

void causal_attention_bf16(const float* q, const float* k, const float* v, int64_t count,
                           const AttentionShape& shape, float* out) {
  if (count <= 0) return;
  if (kernels::bf16_gemm_uses_amx())
    attention_amx(q, k, v, count, shape, out);
  else
    attention_sgemm(q, k, v, count, shape, out);
}

void causal_attention_bf16_ref(const float* q, const float* k, const float* v, int64_t count,
                               const AttentionShape& s, float* out) {
  const int64_t d = s.head_dim, group = s.num_heads / s.num_kv_heads;
  const int64_t q_dim = s.num_heads * d, kv_dim = s.num_kv_heads * d;
  const double scale = 1.0 / std::sqrt(static_cast<double>(static_cast<float>(d)));
  std::vector<double> w(static_cast<size_t>(count));
  for (int64_t h = 0; h < s.num_heads; ++h) {
    const int64_t kv = h / group;
    for (int64_t i = 0; i < count; ++i) {
      double max_score = -INFINITY, total = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c)
          dot += double(round_bf16(q[i * q_dim + h * d + c])) * round_bf16(k[j * kv_dim + kv * d + c]);
        w[j] = dot * scale;
        max_score = std::max(max_score, w[j]);
      }
      for (int64_t j = 0; j <= i; ++j) total += (w[j] = std::exp(w[j] - max_score));
      for (int64_t c = 0; c < d; ++c) {
        double acc = 0;
        for (int64_t j = 0; j <= i; ++j)
          acc +=
              double(round_bf16(static_cast<float>(w[j] / total))) * round_bf16(v[j * kv_dim + kv * d + c]);
        out[i * q_dim + h * d + c] = static_cast<float>(acc);
      }
    }
  }
}

}  // namespace lowbit::runtime

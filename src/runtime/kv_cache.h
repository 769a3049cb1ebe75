// Keys and values of the tokens seen so far, per layer and KV head: [layer][kv_head][position][head_dim].
// Head-major storage makes the keys of one head a dense [positions x head_dim] matrix, so attention
// scores are one GEMM per head. Capacity grows on demand (doubling, contents kept).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::runtime {

class KVCache {
 public:
  KVCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity = 0);

  int64_t capacity() const { return capacity_; }
  int64_t head_dim() const { return head_dim_; }
  // Ensures room for `positions` tokens.
  void reserve(int64_t positions);

  // Keys / values of one layer and KV head: `capacity()` rows of head_dim floats.
  float* keys(int64_t layer, int64_t kv_head) { return data_.data() + offset(layer, kv_head, 0); }
  float* values(int64_t layer, int64_t kv_head) { return data_.data() + offset(layer, kv_head, 1); }
  const float* keys(int64_t layer, int64_t kv_head) const { return data_.data() + offset(layer, kv_head, 0); }
  const float* values(int64_t layer, int64_t kv_head) const {
    return data_.data() + offset(layer, kv_head, 1);
  }

  // Stores `count` tokens at positions [first, first + count) of `layer`. k and v are [count][kv_heads *
  // head_dim] (the k_proj / v_proj output layout).
  void store(int64_t layer, int64_t first, int64_t count, const float* k, const float* v);

 private:
  size_t offset(int64_t layer, int64_t kv_head, int which) const {
    return static_cast<size_t>(((layer * 2 + which) * kv_heads_ + kv_head) * capacity_ * head_dim_);
  }

  int64_t layers_, kv_heads_, head_dim_;
  int64_t capacity_ = 0;
  std::vector<float> data_;
};

}  // namespace lowbit::runtime

#include "runtime/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace lowbit::runtime {

KVCache::KVCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity)
    : layers_(layers), kv_heads_(kv_heads), head_dim_(head_dim) {
  reserve(capacity);
}

void KVCache::reserve(int64_t positions) {
  if (positions <= capacity_) return;
  const int64_t new_capacity = std::max(positions, capacity_ * 2);
  std::vector<float> grown(static_cast<size_t>(layers_ * 2 * kv_heads_ * new_capacity * head_dim_));
  const size_t old_rows = static_cast<size_t>(capacity_ * head_dim_);
  for (int64_t block = 0; block < layers_ * 2 * kv_heads_; ++block) {
    if (old_rows == 0) break;
    std::memcpy(grown.data() + static_cast<size_t>(block * new_capacity * head_dim_),
                data_.data() + static_cast<size_t>(block) * old_rows, old_rows * sizeof(float));
  }
  data_ = std::move(grown);
  capacity_ = new_capacity;
}

void KVCache::store(int64_t layer, int64_t first, int64_t count, const float* k, const float* v) {
  if (first + count > capacity_) fail("KV cache: {} positions exceed capacity {}", first + count, capacity_);
  const int64_t row = kv_heads_ * head_dim_;
  for (int64_t g = 0; g < kv_heads_; ++g) {
    float* kd = keys(layer, g) + first * head_dim_;
    float* vd = values(layer, g) + first * head_dim_;
    for (int64_t t = 0; t < count; ++t) {
      std::memcpy(kd + t * head_dim_, k + t * row + g * head_dim_,
                  static_cast<size_t>(head_dim_) * sizeof(float));
      std::memcpy(vd + t * head_dim_, v + t * row + g * head_dim_,
                  static_cast<size_t>(head_dim_) * sizeof(float));
    }
  }
}

}  // namespace lowbit::runtime

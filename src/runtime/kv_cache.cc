#include "runtime/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "runtime/kernels.h"
#include "runtime/kv_quant.h"
#include "util/error.h"

namespace lowbit::runtime {
namespace {

// Copies `blocks` blocks of old_rows * head_dim elements into a buffer with new_rows rows per block.
template <typename T>
std::vector<T> regrow(const std::vector<T>& old, int64_t blocks, int64_t old_rows, int64_t new_rows,
                      int64_t head_dim) {
  std::vector<T> grown(static_cast<size_t>(blocks * new_rows * head_dim));
  const size_t block = static_cast<size_t>(old_rows * head_dim);
  if (block == 0) return grown;
  for (int64_t b = 0; b < blocks; ++b)
    std::memcpy(grown.data() + static_cast<size_t>(b * new_rows * head_dim),
                old.data() + static_cast<size_t>(b) * block, block * sizeof(T));
  return grown;
}

// n values rounded to 16 bits (nearest even).
void round_to_halves(DType storage, const float* src, uint16_t* dst, int64_t n) {
  if (storage == DType::F16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

}  // namespace

KVCache::KVCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity,
                 const KVQuantizer* quantizer, DType storage)
    : layers_(layers),
      kv_heads_(kv_heads),
      head_dim_(head_dim),
      quantizer_(quantizer && quantizer->stores_codes() ? quantizer : nullptr),
      storage_(quantizer_ ? DType::F32 : storage) {
  if (storage_ != DType::F32 && storage_ != DType::BF16 && storage_ != DType::F16)
    fail("KV cache: storage dtype {} is not supported (F32, BF16 or F16)", dtype_name(storage_));
  reserve(capacity);
}

void KVCache::reserve(int64_t positions) {
  if (positions <= capacity_) return;
  const int64_t new_capacity = std::max(positions, capacity_ * 2);
  const int64_t blocks = layers_ * 2 * kv_heads_;
  if (quantizer_) {
    codes_ = regrow(codes_, blocks, capacity_, new_capacity, head_dim_);
  } else if (storage_ != DType::F32) {
    halves_ = regrow(halves_, blocks, capacity_, new_capacity, head_dim_);
  } else {
    data_ = regrow(data_, blocks, capacity_, new_capacity, head_dim_);
  }
  capacity_ = new_capacity;
}

const float* KVCache::read(int64_t layer, int64_t kv_head, int which) const {
  if (!quantizer_ && storage_ == DType::F32) return data_.data() + offset(layer, kv_head, which);
  thread_local std::vector<float> decoded[2];
  std::vector<float>& out = decoded[which];
  const size_t n = static_cast<size_t>(filled_ * head_dim_);
  out.resize(std::max<size_t>(n, 1));
  if (!quantizer_) {
    const kernels::DenseWeight stored{storage_, halves_.data() + offset(layer, kv_head, which), filled_,
                                      head_dim_};
    kernels::convert_rows_to_f32(stored, 0, filled_, out.data());
    return out.data();
  }
  const uint8_t* codes = codes_.data() + offset(layer, kv_head, which);
  const float scale = quantizer_->scale(layer, which, kv_head);
  for (size_t i = 0; i < n; ++i) out[i] = quantizer_->decode(codes[i], scale);
  return out.data();
}

KVCache::Rows KVCache::rows(int64_t layer, int64_t kv_head, int which) const {
  if (quantizer_ || storage_ == DType::F32) return {read(layer, kv_head, which), DType::F32};
  return {halves_.data() + offset(layer, kv_head, which), storage_};
}

void KVCache::store(int64_t layer, int64_t first, int64_t count, const float* k, const float* v) {
  if (first + count > capacity_) fail("KV cache: {} positions exceed capacity {}", first + count, capacity_);
  const int64_t row = kv_heads_ * head_dim_;
  const size_t head_bytes = static_cast<size_t>(head_dim_) * sizeof(float);
  for (int64_t g = 0; g < kv_heads_; ++g) {
    for (int which = 0; which < 2; ++which) {
      const float* src = which == 0 ? k : v;
      const size_t base = offset(layer, g, which) + static_cast<size_t>(first * head_dim_);
      if (!quantizer_ && storage_ == DType::F32) {
        for (int64_t t = 0; t < count; ++t)
          std::memcpy(data_.data() + base + static_cast<size_t>(t * head_dim_), src + t * row + g * head_dim_,
                      head_bytes);
        continue;
      }
      if (!quantizer_) {
        for (int64_t t = 0; t < count; ++t)
          round_to_halves(storage_, src + t * row + g * head_dim_,
                          halves_.data() + base + static_cast<size_t>(t * head_dim_), head_dim_);
        continue;
      }
      const float scale = quantizer_->scale(layer, which, g);
      for (int64_t t = 0; t < count; ++t) {
        uint8_t* dst = codes_.data() + base + static_cast<size_t>(t * head_dim_);
        const float* s = src + t * row + g * head_dim_;
        for (int64_t d = 0; d < head_dim_; ++d) dst[d] = quantizer_->encode(s[d], scale);
      }
    }
  }
  filled_ = std::max(filled_, first + count);
}

}  // namespace lowbit::runtime

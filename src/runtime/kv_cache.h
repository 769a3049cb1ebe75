// Keys and values of the tokens seen so far, per layer and KV head: [layer][kv_head][position][head_dim].
// Head-major storage makes the keys of one head a dense [positions x head_dim] matrix, so attention
// scores are one GEMM per head. Capacity grows on demand (doubling, contents kept).
//
// Storage is one byte per value when the model's KV cache scheme is static int8 / fp8
// (KVQuantizer::stores_codes): the values arriving in store() are already fake-quantized, so each is
// exactly code * scale and the codes lose nothing. Otherwise it is fp32, bf16 or fp16 (`storage`): 16-bit
// storage rounds each value to nearest even, as a bf16 / fp16 torch model's cache holds it, and halves both
// the cache's memory and what decode attention reads per token (the 100M reference model at 576 positions:
// 14 MB of fp32 per step, next to the 53 MB of its W4A16 weights with lm_head quantized).
//
// Readers: rows() gives a head's stored rows in their storage dtype (codes decoded to fp32 first); keys() /
// values() give fp32 rows, decoding 16-bit or code storage into a buffer owned by the calling thread (one
// for keys, one for values), valid until that thread's next call of the same accessor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/dtype.h"

namespace lowbit::runtime {

class KVQuantizer;

class KVCache {
 public:
  // `quantizer` (may be null) must outlive the cache; it is used only when it stores codes, and then
  // `storage` is ignored. `storage`: F32, BF16 or F16.
  KVCache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity = 0,
          const KVQuantizer* quantizer = nullptr, DType storage = DType::F32);

  int64_t capacity() const { return capacity_; }
  int64_t head_dim() const { return head_dim_; }
  bool stores_codes() const { return quantizer_ != nullptr; }
  // The dtype of stored values (F32, BF16 or F16; F32 for a code cache, whose rows() decode to fp32).
  DType storage() const { return storage_; }
  // Bytes held for keys and values (capacity included).
  size_t bytes() const {
    return data_.size() * sizeof(float) + halves_.size() * sizeof(uint16_t) + codes_.size();
  }
  // Ensures room for `positions` tokens.
  void reserve(int64_t positions);

  // Keys / values of one layer and KV head: rows of head_dim floats, at least every position stored so
  // far (`capacity()` rows for an fp32 cache).
  const float* keys(int64_t layer, int64_t kv_head) const { return read(layer, kv_head, 0); }
  const float* values(int64_t layer, int64_t kv_head) const { return read(layer, kv_head, 1); }

  // The rows of one layer and KV head as stored: at least every position stored so far, `dtype` F32,
  // BF16 or F16 (decode attention reads 16-bit rows in place).
  struct Rows {
    const void* data;
    DType dtype;
  };
  Rows key_rows(int64_t layer, int64_t kv_head) const { return rows(layer, kv_head, 0); }
  Rows value_rows(int64_t layer, int64_t kv_head) const { return rows(layer, kv_head, 1); }

  // Stores `count` tokens at positions [first, first + count) of `layer`. k and v are [count][kv_heads *
  // head_dim] (the k_proj / v_proj output layout).
  void store(int64_t layer, int64_t first, int64_t count, const float* k, const float* v);

 private:
  size_t offset(int64_t layer, int64_t kv_head, int which) const {
    return static_cast<size_t>(((layer * 2 + which) * kv_heads_ + kv_head) * capacity_ * head_dim_);
  }
  const float* read(int64_t layer, int64_t kv_head, int which) const;
  Rows rows(int64_t layer, int64_t kv_head, int which) const;

  int64_t layers_, kv_heads_, head_dim_;
  int64_t capacity_ = 0;
  int64_t filled_ = 0;  // positions below this have been stored at least once
  const KVQuantizer* quantizer_ = nullptr;
  DType storage_ = DType::F32;
  std::vector<float> data_;       // fp32 storage
  std::vector<uint16_t> halves_;  // bf16 / fp16 storage (same layout)
  std::vector<uint8_t> codes_;    // code storage (same layout, one byte per value)
};

}  // namespace lowbit::runtime

#include "runtime/transformer.h"

#include <algorithm>
#include <array>

#include "runtime/attention.h"
#include "runtime/packed_linear.h"
#include "util/error.h"

namespace lowbit::runtime {

namespace {

template <typename T>
T* sized(std::vector<T>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

// The second half of a decoder layer, shared by prefill and batched decode: x += down(silu(gate(n)) * up(n))
// with n = rmsnorm(x). h, gate and up are scratch of rows x hidden / intermediate.
void mlp_residual(const Transformer::Layer& l, const ModelConfig& c, float* x, int64_t rows, float* h,
                  float* gate, float* up) {
  const int64_t hidden = c.hidden_size;
  kernels::rmsnorm(x, l.post_attention_norm.data(), rows, hidden, static_cast<float>(c.rms_norm_eps), h);
  forward_shared_input(h, rows, std::array<const LinearWeight*, 2>{l.gate.get(), l.up.get()},
                       std::array<float*, 2>{gate, up});
  kernels::silu_mul(gate, up, gate, static_cast<size_t>(rows * c.intermediate_size));
  l.down->forward(gate, rows, h);
  kernels::add_inplace(x, h, static_cast<size_t>(rows * hidden));
}

}  // namespace

Transformer::Transformer(const Model& model, const LinearFactory& make_linear)
    : model_(model),
      embed_(dense_weight(model.embed_tokens())),
      embed_by_reading_(!model.lm_head_tied()),
      final_norm_(to_f32(model.final_norm())),
      lm_head_(make_linear(model.lm_head())),
      inv_freq_(model.config().rope_inv_freq()) {
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    const LayerWeights& w = model.layer(i);
    Layer l;
    l.input_norm = to_f32(w.input_layernorm);
    l.post_attention_norm = to_f32(w.post_attention_layernorm);
    l.q = make_linear(w.q_proj);
    l.k = make_linear(w.k_proj);
    l.v = make_linear(w.v_proj);
    l.o = make_linear(w.o_proj);
    l.gate = make_linear(w.gate_proj);
    l.up = make_linear(w.up_proj);
    l.down = make_linear(w.down_proj);
    layers_.push_back(std::move(l));
  }
}

// An untied table is only ever looked up, a row at a time: reading rows from the file keeps the table out
// of the resident set, where every row read through the mapping would bring in the kernel's 64 KiB
// fault-around window (17-29 MB for a 512-token prompt of random ids on the reference model, whose
// W4A16 + lm_head weights are 53 MB). A tied table is streamed whole by lm_head each step, so rows come
// from the mapping.
void Transformer::embed(const int32_t* tokens, int64_t count, float* out) const {
  const int64_t hidden = embed_.cols;
  if (!embed_by_reading_) {
    for (int64_t t = 0; t < count; ++t) kernels::convert_rows_to_f32(embed_, tokens[t], 1, out + t * hidden);
    return;
  }
  const TensorView& table = model_.embed_tokens();
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(table.dtype);
  std::vector<std::byte> row(row_bytes);
  for (int64_t t = 0; t < count; ++t) {
    model_.store().read(table.name, static_cast<uint64_t>(tokens[t]) * row_bytes, row_bytes, row.data());
    kernels::convert_rows_to_f32({table.dtype, row.data(), 1, hidden}, 0, 1, out + t * hidden);
  }
}

void Transformer::set_kv_storage(DType storage) {
  if (storage != DType::F32 && storage != DType::BF16 && storage != DType::F16)
    fail("KV cache storage must be F32, BF16 or F16, not {}", dtype_name(storage));
  kv_storage_ = storage;
}

Session::Session(const Transformer& transformer, int64_t capacity)
    : tf_(transformer),
      cache_(transformer.config().num_layers, transformer.config().num_kv_heads,
             transformer.config().head_dim, capacity, transformer.kv_quantizer(), transformer.kv_storage()) {}

void Session::truncate(int64_t position) {
  if (position < 0 || position > position_)
    fail("Session::truncate({}): the session holds {} tokens", position, position_);
  position_ = position;
}

void Session::forward(std::span<const int32_t> tokens, Logits which, std::vector<float>* logits) {
  const int64_t vocab = tf_.config().vocab_size;
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[static_cast<size_t>(i)] < 0 || tokens[static_cast<size_t>(i)] >= vocab) {
      fail("token id {} at index {} is outside the model's vocabulary (vocab_size {})",
           tokens[static_cast<size_t>(i)], i, vocab);
    }
  }
  if (which != Logits::None && !logits) fail("Session::forward: logits requested without an output vector");
  if (which == Logits::All) logits->resize(static_cast<size_t>(n * vocab));
  if (which == Logits::Last) logits->resize(static_cast<size_t>(vocab));
  if (n == 0) {
    if (which == Logits::Last) fail("Session::forward: no tokens given, so there are no last logits");
    return;
  }
  cache_.reserve(position_ + n);
  for (int64_t begin = 0; begin < n; begin += max_chunk()) {
    const int64_t count = std::min(max_chunk(), n - begin);
    const bool last_chunk = begin + count == n;
    Logits chunk_logits = which;
    float* out = nullptr;
    if (which == Logits::All) out = logits->data() + begin * vocab;
    if (which == Logits::Last) {
      chunk_logits = last_chunk ? Logits::Last : Logits::None;
      out = logits->data();
    }
    forward_chunk(tokens.data() + begin, count, chunk_logits, out);
  }
}

void Session::forward_chunk(const int32_t* tokens, int64_t count, Logits which, float* logits) {
  const ModelConfig& c = tf_.config();
  const int64_t hidden = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};

  float* x = sized(x_, count * hidden);  // the residual stream
  float* h = sized(h_, count * hidden);
  float* q = sized(q_, count * c.q_dim());
  float* k = sized(k_, count * c.kv_dim());
  float* v = sized(v_, count * c.kv_dim());
  float* attn = sized(attn_, count * c.q_dim());
  float* gate = sized(gate_, count * c.intermediate_size);
  float* up = sized(up_, count * c.intermediate_size);

  tf_.embed(tokens, count, x);
  rope_angles(tf_.inv_freq(), position_, count, &angles_);

  for (int64_t li = 0; li < c.num_layers; ++li) {
    const Transformer::Layer& l = tf_.layer(li);
    kernels::rmsnorm(x, l.input_norm.data(), count, hidden, eps, h);
    forward_shared_input(h, count, std::array<const LinearWeight*, 3>{l.q.get(), l.k.get(), l.v.get()},
                         std::array<float*, 3>{q, k, v});
    apply_rope(q, count, c.num_heads, c.q_dim(), angles_);
    apply_rope(k, count, c.num_kv_heads, c.kv_dim(), angles_);
    if (const KVQuantizer* kv_quant = tf_.kv_quantizer()) kv_quant->apply(li, k, v, count);
    cache_.store(li, position_, count, k, v);
    causal_attention(q, position_, count, cache_, li, shape, attn);
    l.o->forward(attn, count, h);
    kernels::add_inplace(x, h, static_cast<size_t>(count * hidden));
    mlp_residual(l, c, x, count, h, gate, up);
  }
  position_ += count;

  if (which == Logits::None) return;
  const int64_t first_row = which == Logits::Last ? count - 1 : 0;
  const int64_t rows = count - first_row;
  kernels::rmsnorm(x + first_row * hidden, tf_.final_norm().data(), rows, hidden, eps, h);
  tf_.lm_head().forward(h, rows, logits);
}

void decode_batch(const Transformer& tf, std::span<Session* const> sessions, std::span<const int32_t> tokens,
                  std::vector<float>* logits) {
  const ModelConfig& c = tf.config();
  const auto B = static_cast<int64_t>(sessions.size());
  if (tokens.size() != sessions.size())
    fail("decode_batch: {} tokens for {} sessions", tokens.size(), sessions.size());
  if (!logits) fail("decode_batch: no output vector for the logits");
  for (int64_t b = 0; b < B; ++b) {
    const int32_t t = tokens[static_cast<size_t>(b)];
    if (sessions[static_cast<size_t>(b)] == nullptr || &sessions[static_cast<size_t>(b)]->tf_ != &tf)
      fail("decode_batch: session {} does not belong to this transformer", b);
    if (t < 0 || t >= c.vocab_size)
      fail("token id {} of session {} is outside the model's vocabulary (vocab_size {})", t, b, c.vocab_size);
  }
  logits->resize(static_cast<size_t>(B * c.vocab_size));
  if (B == 0) return;
  const int64_t hidden = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  thread_local std::vector<float> xs, hs, qs, ks, vs, attn, gate, up;
  float* x = sized(xs, B * hidden);
  float* h = sized(hs, B * hidden);
  float* q = sized(qs, B * qd);
  float* k = sized(ks, B * kvd);
  float* v = sized(vs, B * kvd);
  float* at = sized(attn, B * qd);
  float* g = sized(gate, B * c.intermediate_size);
  float* u = sized(up, B * c.intermediate_size);
  for (int64_t b = 0; b < B; ++b) {
    Session& s = *sessions[static_cast<size_t>(b)];
    s.cache_.reserve(s.position_ + 1);
    rope_angles(tf.inv_freq(), s.position_, 1, &s.angles_);
    tf.embed(&tokens[static_cast<size_t>(b)], 1, x + b * hidden);
  }
  for (int64_t li = 0; li < c.num_layers; ++li) {
    const Transformer::Layer& l = tf.layer(li);
    kernels::rmsnorm(x, l.input_norm.data(), B, hidden, eps, h);
    forward_shared_input(h, B, std::array<const LinearWeight*, 3>{l.q.get(), l.k.get(), l.v.get()},
                         std::array<float*, 3>{q, k, v});
    for (int64_t b = 0; b < B; ++b) {
      Session& s = *sessions[static_cast<size_t>(b)];
      apply_rope(q + b * qd, 1, c.num_heads, qd, s.angles_);
      apply_rope(k + b * kvd, 1, c.num_kv_heads, kvd, s.angles_);
      if (const KVQuantizer* kv_quant = tf.kv_quantizer()) kv_quant->apply(li, k + b * kvd, v + b * kvd, 1);
      s.cache_.store(li, s.position_, 1, k + b * kvd, v + b * kvd);
      causal_attention(q + b * qd, s.position_, 1, s.cache_, li, shape, at + b * qd);
    }
    l.o->forward(at, B, h);
    kernels::add_inplace(x, h, static_cast<size_t>(B * hidden));
    mlp_residual(l, c, x, B, h, g, u);
  }
  for (int64_t b = 0; b < B; ++b) ++sessions[static_cast<size_t>(b)]->position_;
  kernels::rmsnorm(x, tf.final_norm().data(), B, hidden, eps, h);
  tf.lm_head().forward(h, B, logits->data());
}

}  // namespace lowbit::runtime

// Offline re-layout of quantized weights for the GPU kernels, its inverse, and the CPU twins of the kernels'
// arithmetic. See layout.h for the formats.
#include "cuda/layout.h"

#include <algorithm>
#include <cmath>

#include "io/dtype.h"
#include "quant/pack.h"
#include "util/error.h"

namespace lowbit::cuda {

const char* to_string(ActDType t) {
  return t == ActDType::F16 ? "f16" : "bf16";
}

const char* to_string(WeightOnlyKernel k) {
  switch (k) {
    case WeightOnlyKernel::Auto:
      return "auto";
    case WeightOnlyKernel::Gemv:
      return "gemv";
    case WeightOnlyKernel::Mma:
      return "mma";
  }
  return "?";
}

float act_to_f32(uint16_t v, ActDType t) {
  return t == ActDType::F16 ? f16_to_f32(v) : bf16_to_f32(v);
}
uint16_t f32_to_act(float v, ActDType t) {
  return t == ActDType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
}

int64_t WeightOnlyLayout::device_bytes() const {
  return static_cast<int64_t>(qweight.size() * sizeof(uint32_t) + scales.size() * sizeof(uint16_t) +
                              zeros.size());
}

WeightOnlyLayout relayout_weight_only(const PackedQuantWeight& w, ActDType scale_dtype, const char* name) {
  if (w.bits != 4 && w.bits != 8) fail("{}: weight-only kernels support 4 or 8 bits, got {}", name, w.bits);
  if (w.n <= 0 || w.k <= 0) fail("{}: bad weight shape [{}, {}]", name, w.n, w.k);
  if (!w.weight_packed || !w.weight_scale) fail("{}: weight_packed and weight_scale are required", name);
  const bool per_channel = w.group_size <= 0;
  if (per_channel && w.group_size != 0 && w.group_size != -1)
    fail("{}: group_size {} is neither a positive group nor -1 (per-channel)", name, w.group_size);
  if (!per_channel && w.group_size % 32 != 0)
    fail("{}: group_size {} is not a multiple of 32 (the GPU kernels read 32-code chunks)", name,
         w.group_size);

  WeightOnlyLayout out;
  out.bits = w.bits;
  out.n = w.n;
  out.k = w.k;
  out.k_padded = round_up(w.k, kWeightOnlyKAlign);
  out.group_size = per_channel ? w.k : w.group_size;
  out.num_groups = per_channel ? 1 : (w.k + w.group_size - 1) / w.group_size;
  out.symmetric = w.weight_zero_point == nullptr;
  out.scale_dtype = scale_dtype;

  // Codes: through the reference unpacker/packer of quant/pack.h, so the GPU words have exactly the
  // compressed-tensors bit order, with each row zero-code padded to k_padded (a multiple of 64 codes, hence
  // whole words and 16-byte aligned rows).
  const int64_t in_words = packed_words(w.k, w.bits);
  const int64_t out_words = out.words_per_row();
  const int per_word = 32 / w.bits;
  out.qweight.resize(static_cast<size_t>(w.n * out_words));
  std::vector<int8_t> codes(static_cast<size_t>(out.k_padded), 0);
  for (int64_t r = 0; r < w.n; ++r) {
    const int32_t* src = w.weight_packed + r * in_words;
    // compressed-tensors leaves the padding bits of a partial last word zero; anything else is corrupt.
    const int64_t used = w.k % per_word;
    if (used != 0 && (static_cast<uint32_t>(src[in_words - 1]) >> (w.bits * used)) != 0)
      fail("{}: row {} of weight_packed has non-zero padding bits in its last word", name, r);
    unpack_int_rows(src, 1, w.k, w.bits, codes.data());
    const std::vector<int32_t> row = pack_int_rows(codes.data(), 1, out.k_padded, w.bits);
    std::copy(row.begin(), row.end(), out.qweight.begin() + r * out_words);
  }

  out.scales.resize(static_cast<size_t>(w.n * out.num_groups));
  for (size_t i = 0; i < out.scales.size(); ++i) {
    const float s = w.weight_scale[i];
    if (!std::isfinite(s)) fail("{}: weight_scale[{}] = {} is not finite", name, i, s);
    out.scales[i] = f32_to_act(s, scale_dtype);
    if (!std::isfinite(act_to_f32(out.scales[i], scale_dtype)))
      fail("{}: weight_scale[{}] = {} overflows {}", name, i, s, to_string(scale_dtype));
  }

  if (!out.symmetric) {
    out.zeros.resize(static_cast<size_t>(w.n * out.num_groups));
    unpack_int_cols(w.weight_zero_point, w.n, out.num_groups, w.bits, out.zeros.data());
    const int lo = -(1 << (w.bits - 1));
    const int hi = (1 << (w.bits - 1)) - 1;
    for (size_t i = 0; i < out.zeros.size(); ++i) {
      if (out.zeros[i] < lo || out.zeros[i] > hi)
        fail("{}: weight_zero_point[{}] = {} is outside the {}-bit range", name, i, out.zeros[i], w.bits);
    }
  }
  return out;
}

PackedTensors unrelayout_weight_only(const WeightOnlyLayout& layout) {
  PackedTensors out;
  const int64_t words = packed_words(layout.k, layout.bits);
  out.weight_packed.resize(static_cast<size_t>(layout.n * words));
  std::vector<int8_t> codes(static_cast<size_t>(layout.k_padded));
  for (int64_t r = 0; r < layout.n; ++r) {
    const auto* src = reinterpret_cast<const int32_t*>(layout.qweight.data() + r * layout.words_per_row());
    unpack_int_rows(src, 1, layout.k_padded, layout.bits, codes.data());
    const std::vector<int32_t> row = pack_int_rows(codes.data(), 1, layout.k, layout.bits);
    std::copy(row.begin(), row.end(), out.weight_packed.begin() + r * words);
  }
  out.weight_scale.resize(layout.scales.size());
  for (size_t i = 0; i < layout.scales.size(); ++i)
    out.weight_scale[i] = act_to_f32(layout.scales[i], layout.scale_dtype);
  if (!layout.symmetric)
    out.weight_zero_point = pack_int_cols(layout.zeros.data(), layout.n, layout.num_groups, layout.bits);
  return out;
}

float layout_weight_at(const WeightOnlyLayout& layout, int64_t row, int64_t col) {
  const int per_word = 32 / layout.bits;
  const uint32_t word = layout.qweight[static_cast<size_t>(row * layout.words_per_row() + col / per_word)];
  const uint32_t code = (word >> (layout.bits * (col % per_word))) & ((1u << layout.bits) - 1);
  const int64_t g = std::min(col / layout.group_size, layout.num_groups - 1);
  const size_t gi = static_cast<size_t>(row * layout.num_groups + g);
  // The kernels fold the code offset and the zero point into one float before the multiply.
  const float offset =
      static_cast<float>((1 << (layout.bits - 1)) + (layout.symmetric ? 0 : layout.zeros[gi]));
  return (static_cast<float>(code) - offset) * act_to_f32(layout.scales[gi], layout.scale_dtype);
}

std::vector<float> dequantize_layout(const WeightOnlyLayout& layout) {
  std::vector<float> w(static_cast<size_t>(layout.n * layout.k));
  for (int64_t r = 0; r < layout.n; ++r)
    for (int64_t c = 0; c < layout.k; ++c)
      w[static_cast<size_t>(r * layout.k + c)] = layout_weight_at(layout, r, c);
  return w;
}

// ---- W8A8 int8 ------------------------------------------------------------------------------------------

Int8WeightLayout relayout_int8(const int8_t* q, const float* scale, int64_t n, int64_t k, const char* name) {
  if (n <= 0 || k <= 0) fail("{}: bad int8 weight shape [{}, {}]", name, n, k);
  Int8WeightLayout out;
  out.n = n;
  out.k = k;
  out.k_padded = round_up(k, kInt8KAlign);
  out.q.assign(static_cast<size_t>(n * out.k_padded), 0);
  for (int64_t r = 0; r < n; ++r) std::copy(q + r * k, q + (r + 1) * k, out.q.begin() + r * out.k_padded);
  out.scale.assign(scale, scale + n);
  for (int64_t r = 0; r < n; ++r)
    if (!std::isfinite(scale[r])) fail("{}: weight_scale[{}] = {} is not finite", name, r, scale[r]);
  return out;
}

void quantize_act_int8_ref(const uint16_t* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                           int8_t* q, float* scale) {
  for (int64_t r = 0; r < m; ++r) {
    const uint16_t* row = x + r * k;
    float amax = 0.0f;
    for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(act_to_f32(row[c], dtype)));
    const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
    scale[r] = s;
    for (int64_t c = 0; c < k_padded; ++c) {
      int v = 0;
      if (c < k) v = static_cast<int>(std::nearbyint(act_to_f32(row[c], dtype) / s));
      q[r * k_padded + c] = static_cast<int8_t>(std::clamp(v, -127, 127));
    }
  }
}

// ---- FP8 --------------------------------------------------------------------------------------------------

Fp8WeightLayout relayout_fp8(const uint8_t* q, const float* scale, bool per_channel, int64_t n, int64_t k,
                             const char* name) {
  if (n <= 0 || k <= 0) fail("{}: bad fp8 weight shape [{}, {}]", name, n, k);
  Fp8WeightLayout out;
  out.n = n;
  out.k = k;
  out.k_padded = round_up(k, kFp8KAlign);
  out.per_channel = per_channel;
  out.q.assign(static_cast<size_t>(n * out.k_padded), 0);
  for (int64_t r = 0; r < n; ++r) std::copy(q + r * k, q + (r + 1) * k, out.q.begin() + r * out.k_padded);
  out.scale.assign(scale, scale + (per_channel ? n : 1));
  for (size_t i = 0; i < out.scale.size(); ++i)
    if (!std::isfinite(out.scale[i])) fail("{}: weight_scale[{}] = {} is not finite", name, i, out.scale[i]);
  return out;
}

void quantize_act_fp8_ref(const uint16_t* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                          Fp8ActScale mode, uint8_t* q, float* scale) {
  constexpr float kE4m3Max = 448.0f;
  std::vector<float> amax(static_cast<size_t>(m), 0.0f);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < k; ++c)
      amax[static_cast<size_t>(r)] =
          std::max(amax[static_cast<size_t>(r)], std::fabs(act_to_f32(x[r * k + c], dtype)));
  if (mode == Fp8ActScale::PerTensor) {
    const float all = *std::max_element(amax.begin(), amax.end());
    std::fill(amax.begin(), amax.end(), all);
  }
  for (int64_t r = 0; r < m; ++r) {
    const float a = amax[static_cast<size_t>(r)];
    const float s = a > 0.0f ? a / kE4m3Max : 1.0f;
    scale[mode == Fp8ActScale::PerToken ? r : 0] = s;  // per tensor: every row writes the same value
    for (int64_t c = 0; c < k_padded; ++c)
      q[r * k_padded + c] = c < k ? f32_to_e4m3(act_to_f32(x[r * k + c], dtype) / s) : 0;
  }
}

// ---- kernel choice ----------------------------------------------------------------------------------------

WeightOnlyPlan plan_weight_only(int64_t m, WeightOnlyKernel forced) {
  if (m <= 0) fail("weight-only GEMM: M = {} (must be positive)", m);
  WeightOnlyPlan plan;
  plan.kernel = forced != WeightOnlyKernel::Auto ? forced
                : m <= kGemvMaxRows              ? WeightOnlyKernel::Gemv
                                                 : WeightOnlyKernel::Mma;
  if (plan.kernel == WeightOnlyKernel::Gemv) plan.gemv_rows = m == 1 ? 1 : m <= 4 ? 4 : 16;
  return plan;
}

}  // namespace lowbit::cuda

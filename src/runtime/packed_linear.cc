#include "runtime/packed_linear.h"

#include <algorithm>

#include <cmath>

#include "io/dtype.h"
#include "quant/quantizer.h"
#include "runtime/kernels_packed_fp8.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::runtime {
namespace {

// Floats every scale array carries past its end: the int4 kernel loads a whole vector of group scales.
constexpr size_t kScalePadding = 16;

kernels::Codes codes_of(const formats::StoredWeight& s) {
  if (s.codes.dtype == DType::I32) return s.args.num_bits == 4 ? kernels::Codes::Int4 : kernels::Codes::UInt8;
  if (s.codes.dtype == DType::I8) return kernels::Codes::Int8;
  if (s.codes.dtype == DType::F8_E5M2) return kernels::Codes::E5M2;
  return kernels::Codes::E4M3;
}

// The storage offset of the codes (quant/pack.h stores q + 2^(bits-1)).
float code_offset(kernels::Codes c) {
  if (c == kernels::Codes::Int4) return 8.0f;
  if (c == kernels::Codes::UInt8) return 128.0f;
  return 0.0f;
}

// Whether inputs with these args can be multiplied as int8 codes: 8-bit int, symmetric, per token or per
// tensor (dynamic), or a static per-tensor scale.
bool int8_input_args(const QuantArgs& a) {
  if (a.type != QuantType::Int || a.num_bits != 8 || !a.symmetric) return false;
  if (a.is_dynamic()) return a.strategy == QuantStrategy::Token || a.strategy == QuantStrategy::Tensor;
  return a.strategy == QuantStrategy::Tensor;
}

// The calling thread's copy of a linear's input, rounded in place (a vector per call was a malloc and,
// above glibc's mmap threshold, fresh pages every time).
std::vector<float>& rounding_buffer() {
  thread_local std::vector<float> buffer;
  return buffer;
}

}  // namespace

PackedLinear::PackedLinear(const formats::StoredWeight& stored, const std::optional<TensorView>& bias,
                           std::optional<ActivationQuantizer> input)
    : input_(std::move(input)) {
  const int64_t N = stored.out_features, K = stored.in_features;
  w_.codes = codes_of(stored);
  w_.data = stored.codes.data;
  w_.rows = N;
  w_.cols = K;
  w_.row_bytes = N > 0 ? static_cast<int64_t>(stored.codes.nbytes) / N : 0;
  code_bytes_ = stored.codes.nbytes;
  w_.group_size =
      stored.args.strategy == QuantStrategy::Group ? *stored.args.group_size : std::max<int64_t>(K, 1);
  const int64_t G = w_.groups();
  const int64_t n_scales = stored.scales.numel();
  const bool per_tensor = n_scales == 1;
  if (n_scales != (per_tensor ? 1 : N * G) || !is_floating(stored.scales.dtype) ||
      stored.scales.nbytes != static_cast<size_t>(n_scales) * dtype_size(stored.scales.dtype))
    fail("tensor {}: {} scales of {} for {} rows x {} groups", stored.codes.name, n_scales,
         dtype_name(stored.scales.dtype), N, G);
  std::vector<float> scales(static_cast<size_t>(n_scales));
  convert_to_f32(stored.scales.dtype, stored.scales.data, scales.data(), scales.size());
  // E4M3 codes decode to value / 2^8 (kernels_packed_hwy.cc), so their scales carry the 2^8.
  const float scale_factor = w_.codes == kernels::Codes::E4M3 ? 256.0f : 1.0f;
  scales_.assign(static_cast<size_t>(N * G) + kScalePadding, 0.0f);
  for (int64_t c = 0; c < N * G; ++c)
    scales_[static_cast<size_t>(c)] = scales[per_tensor ? 0 : static_cast<size_t>(c)] * scale_factor;
  const float offset = code_offset(w_.codes);
  if (stored.zero_points.empty()) {
    w_.zero_offset = offset;  // z = offset * s, computed where used
  } else {
    zero_terms_.resize(static_cast<size_t>(N * G));
    for (int64_t c = 0; c < N * G; ++c) {
      const size_t cell = per_tensor ? 0 : static_cast<size_t>(c);
      zero_terms_[static_cast<size_t>(c)] =
          (offset + static_cast<float>(stored.zero_points[cell])) * scales[cell];
    }
  }
  w_.scales = scales_.data();
  w_.round_to_bf16 = stored.scales.dtype == DType::BF16 &&
                     (w_.codes == kernels::Codes::E4M3 || w_.codes == kernels::Codes::E5M2);
  w_.nonfinite_codes = kernels::has_nonfinite_codes(w_);
  if (kernels::fp8_gemv_supports(w_)) {  // the table decoder's fast chunks
    zero_exponent_chunks_ = kernels::fp8_zero_exponent_chunks(w_);
    w_.zero_exponent_chunks = zero_exponent_chunks_.data();
  }
  if (!zero_terms_.empty()) w_.zero_terms = zero_terms_.data();
  if (bias) bias_ = to_f32(*bias);
  const bool int8_weights = (w_.codes == kernels::Codes::Int8 || w_.codes == kernels::Codes::UInt8) &&
                            stored.zero_points.empty() && w_.group_size == K;
  int8_inputs_ = int8_weights && input_ && int8_input_args(input_->args());
  if (int8_inputs_) {  // the VNNI kernel's correction term: sum of each row's signed codes
    row_code_sums_.resize(static_cast<size_t>(N));
    const int32_t storage_offset = w_.codes == kernels::Codes::UInt8 ? 128 : 0;
    for (int64_t n = 0; n < N; ++n) {
      const auto* row = static_cast<const uint8_t*>(w_.data) + n * w_.row_bytes;
      int32_t sum = 0;
      for (int64_t k = 0; k < K; ++k)
        sum += (w_.codes == kernels::Codes::Int8 ? static_cast<int8_t>(row[k]) : row[k]) - storage_offset;
      row_code_sums_[static_cast<size_t>(n)] = sum;
    }
    w_.row_code_sums = row_code_sums_.data();
  }
}

uint64_t PackedLinear::weight_bytes() const {
  return code_bytes_ + (scales_.size() - kScalePadding + zero_terms_.size() + bias_.size()) * sizeof(float) +
         zero_exponent_chunks_.size() * sizeof(uint64_t);
}

void PackedLinear::forward(const float* x, int64_t m, float* y) const {
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  if (int8_inputs_) return forward_int8(x, m, y);
  if (!input_) return kernels::packed_linear(x, m, w_, bias, y);
  std::vector<float>& xq = rounding_buffer();
  xq.assign(x, x + m * w_.cols);
  input_->apply(xq.data(), m, w_.cols);
  kernels::packed_linear(xq.data(), m, w_, bias, y);
}

void PackedLinear::forward_rounded(const float* xq, int64_t m, float* y) const {
  if (int8_inputs_) fail("forward_rounded: W8A8 linears quantize their inputs to integer codes themselves");
  kernels::packed_linear(xq, m, w_, bias(), y);
}

namespace {

// Dynamic symmetric int8 codes of x's rows, written straight into the integer kernels' operands. The
// definition is quant/quantizer_ref.h's (compressed-tensors'): scale = max(|min(x, 0)|, max(x, 0)) / 127.5
// (2^-23 when 0), code = round_half_even(clamp(x / scale, -128, 127)); the same codes quantize_int gives,
// fused with the int16 copy, the biased bytes and the code sums (quantize_int + finish_int8_activations
// took a fifth of a W8A8 prefill; the scalar row loop still took a tenth on Zen 3, so kernels::
// quantize_int8_row vectorizes it). `tensor_scale` > 0: one scale for all rows.
void quantize_rows_int8(const float* x, int64_t rows, int64_t K, float tensor_scale,
                        kernels::Int8Activations& a) {
  global_pool().parallel_for(static_cast<size_t>(rows), 8, [&](size_t begin, size_t end) {
    for (auto i = static_cast<int64_t>(begin); i < static_cast<int64_t>(end); ++i) {
      a.sums[static_cast<size_t>(i)] =
          kernels::quantize_int8_row(x + i * K, K, tensor_scale, &a.scales[static_cast<size_t>(i)],
                                     a.codes.data() + i * K, a.biased.data() + i * K);
    }
  });
}

// Dynamic per-tensor scale: the same formula over the whole matrix.
float tensor_scale_of(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t k = 0; k < n; ++k) amax = std::max(amax, std::abs(x[k]));
  const float scale = amax / 127.5f;
  return scale == 0.0f ? std::ldexp(1.0f, -23) : scale;
}

}  // namespace

// The int8 codes and scales of the inputs are those the quant library computes for the input args: the same
// qparams and rounding the fake-quant path (ActivationQuantizer) dequantizes.
void PackedLinear::forward_int8(const float* x, int64_t m, float* y) const {
  const int64_t K = w_.cols;
  thread_local kernels::Int8Activations a;
  thread_local std::vector<int8_t> codes;
  a.rows = m;
  a.cols = K;
  a.scales.assign(static_cast<size_t>(m), 0.0f);
  const QuantArgs& args = input_->args();
  if (args.is_dynamic()) {
    a.codes.resize(static_cast<size_t>(m * K));
    a.biased.resize(a.codes.size());
    a.sums.resize(static_cast<size_t>(m));
    const float tensor_scale = args.strategy == QuantStrategy::Token ? 0.0f : tensor_scale_of(x, m * K);
    quantize_rows_int8(x, m, K, tensor_scale, a);
    kernels::int8_linear(a, w_, bias_.empty() ? nullptr : bias_.data(), y);
    return;
  } else {
    const float scale = input_->scale()[0];
    codes.resize(static_cast<size_t>(m * K));
    quantize_int_with_qparams(x, m, K, args, &scale, nullptr, codes.data());
    std::fill(a.scales.begin(), a.scales.end(), scale);
  }
  a.codes.assign(codes.begin(), codes.end());
  kernels::finish_int8_activations(a);
  kernels::int8_linear(a, w_, bias_.empty() ? nullptr : bias_.data(), y);
}

namespace {
// Whether every linear rounds its input with the same dynamic quantization (its result then depends on x
// alone), and reads as many columns.
bool same_dynamic_rounding(std::span<const LinearWeight* const> linears) {
  const ActivationQuantizer* first = linears.empty() ? nullptr : linears[0]->input_rounding();
  if (first == nullptr || !first->args().is_dynamic()) return false;
  for (const LinearWeight* l : linears) {
    const ActivationQuantizer* q = l->input_rounding();
    if (q == nullptr || !(q->args() == first->args()) || l->in_features() != linears[0]->in_features())
      return false;
  }
  return true;
}
}  // namespace

void forward_shared_input(const float* x, int64_t m, std::span<const LinearWeight* const> linears,
                          std::span<float* const> outputs) {
  std::vector<kernels::PackedProduct> products;
  for (size_t j = 0; j < linears.size(); ++j) {
    const auto* packed = dynamic_cast<const PackedLinear*>(linears[j]);
    if (packed == nullptr || !packed->weight_only()) {
      products.clear();
      break;
    }
    products.push_back({&packed->matrix(), packed->bias(), outputs[j]});
  }
  if (products.size() == linears.size() && !products.empty())
    return kernels::packed_linear_shared_input(x, m, products);
  if (same_dynamic_rounding(linears)) {
    // Each linear rounding the input again made 3 of FP8_DYNAMIC's 7 roundings per layer repeats.
    const int64_t K = linears[0]->in_features();
    std::vector<float>& xq = rounding_buffer();
    xq.assign(x, x + m * K);
    linears[0]->input_rounding()->apply(xq.data(), m, K);
    for (size_t j = 0; j < linears.size(); ++j) linears[j]->forward_rounded(xq.data(), m, outputs[j]);
    return;
  }
  for (size_t j = 0; j < linears.size(); ++j) linears[j]->forward(x, m, outputs[j]);
}

LinearFactory make_packed_linear_factory(std::shared_ptr<const formats::QuantizedCheckpoint> quant) {
  LinearFactory fallback = make_quantized_linear_factory(quant);
  return [quant, fallback](const LinearModule& module) -> std::unique_ptr<LinearWeight> {
    const formats::QuantizedModule* qm = quant->module(module.name);
    if (qm == nullptr || !qm->stored) return fallback(module);
    std::optional<ActivationQuantizer> input;
    if (qm->scheme.input_activations) {
      try {
        input.emplace(*qm->scheme.input_activations, qm->input_scale, qm->input_zero_point);
      } catch (const Error& e) {
        fail("module {}: {}", module.name, e.what());
      }
    }
    return std::make_unique<PackedLinear>(*qm->stored, module.bias, std::move(input));
  };
}

}  // namespace lowbit::runtime

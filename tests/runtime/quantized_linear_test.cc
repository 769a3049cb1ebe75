// The fake-quant forward path of quantized checkpoints: input activation quantization against the quant
// library's scalar references, QuantizedLinear against a double-precision matmul of the fake-quantized input,
// and whole tiny models against the naive forward pass over the dequantized weights.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "formats/compressed_tensors_reader.h"
#include "formats/ct_checkpoint.h"
#include "quant/quantizer_ref.h"
#include "quant/scale_grid.h"
#include "runtime/packed_linear.h"
#include "runtime/quantized_linear.h"
#include "runtime/transformer.h"
#include "util/error.h"

namespace lowbit::runtime {
namespace {

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float& v : x) v = normal(rng);
  x[3] = 9.0f * scale;  // an outlier, so per-token and per-tensor scales differ
  return x;
}

QuantArgs act_args(QuantType type, QuantStrategy strategy, bool dynamic, bool symmetric = true) {
  QuantArgs a;
  a.num_bits = 8;
  a.type = type;
  a.strategy = strategy;
  a.symmetric = symmetric;
  a.dynamic = dynamic ? DynamicMode::Dynamic : DynamicMode::Static;
  return a;
}

// Reference: per-cell min-max qparams (compressed-tensors calculate_qparams) then fake_quantize_ref.
std::vector<float> reference_dynamic(const std::vector<float>& x, int64_t rows, int64_t cols,
                                     const QuantArgs& a) {
  const ScaleGrid grid = make_scale_grid(a, rows, cols, "x");
  std::vector<float> lo(static_cast<size_t>(grid.size())), hi(lo.size()), scales(lo.size());
  std::vector<int8_t> zps(lo.size());
  observe_minmax_ref(x.data(), grid, lo.data(), hi.data());
  calculate_qparams_ref(lo.data(), hi.data(), grid.size(), a, ComputeDType::F32, scales.data(), zps.data());
  std::vector<float> out(x.size());
  fake_quantize_ref(x.data(), rows, cols, a, scales.data(), a.symmetric ? nullptr : zps.data(), out.data());
  return out;
}

TEST(ActivationQuantizer, DynamicPerTokenMatchesReference) {
  const int64_t rows = 7, cols = 48;
  for (QuantType type : {QuantType::Int, QuantType::Float}) {
    const QuantArgs a = act_args(type, QuantStrategy::Token, true);
    std::vector<float> x = random_matrix(rows, cols, 3);
    const std::vector<float> expected = reference_dynamic(x, rows, cols, a);
    ActivationQuantizer(a, {}, {}).apply(x.data(), rows, cols);
    EXPECT_EQ(x, expected) << to_string(type);
  }
}

TEST(ActivationQuantizer, DynamicPerTensorAndAsymmetricTokens) {
  const int64_t rows = 5, cols = 32;
  for (const QuantArgs& a : {act_args(QuantType::Int, QuantStrategy::Tensor, true),
                             act_args(QuantType::Int, QuantStrategy::Token, true, false)}) {
    std::vector<float> x = random_matrix(rows, cols, 4);
    const std::vector<float> expected = reference_dynamic(x, rows, cols, a);
    ActivationQuantizer(a, {}, {}).apply(x.data(), rows, cols);
    EXPECT_EQ(x, expected) << describe(a);
  }
}

TEST(ActivationQuantizer, StaticPerTensorUsesTheStoredScale) {
  const int64_t rows = 4, cols = 16;
  for (QuantType type : {QuantType::Int, QuantType::Float}) {
    const QuantArgs a = act_args(type, QuantStrategy::Tensor, false);
    std::vector<float> x = random_matrix(rows, cols, 5);
    const float scale = 0.01f;  // small: the outlier saturates
    std::vector<float> expected(x.size());
    fake_quantize_ref(x.data(), rows, cols, a, &scale, nullptr, expected.data());
    ActivationQuantizer(a, {scale}, {}).apply(x.data(), rows, cols);
    EXPECT_EQ(x, expected);
    const float saturated = type == QuantType::Int ? 127 * scale : 448 * scale;
    EXPECT_FLOAT_EQ(x[3], saturated);
  }
}

TEST(ActivationQuantizer, RejectsSchemesItCannotApply) {
  EXPECT_THROW(ActivationQuantizer q(act_args(QuantType::Int, QuantStrategy::Tensor, false), {}, {}), Error);
  EXPECT_THROW(ActivationQuantizer q(act_args(QuantType::Int, QuantStrategy::Channel, true), {}, {}), Error);
}

TEST(QuantizedLinear, QuantizesInputsBeforeTheMatmul) {
  const int64_t m = 6, in = 32, out = 10;
  const std::vector<float> w = random_matrix(out, in, 7, 0.2f);
  const std::vector<float> x = random_matrix(m, in, 8);
  MemoryTensorStore store;
  store.add("lin.weight", DType::F32, {out, in}, w.data(), w.size() * 4);
  LinearModule module;
  module.name = "lin";
  module.weight = store.get("lin.weight");
  const QuantArgs a = act_args(QuantType::Int, QuantStrategy::Token, true);
  QuantizedLinear lin(module, ActivationQuantizer(a, {}, {}));
  std::vector<float> y(static_cast<size_t>(m * out));
  lin.forward(x.data(), m, y.data());
  const std::vector<float> xq = reference_dynamic(x, m, in, a);
  double worst = 0.0, worst_unquantized = 0.0;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0.0, acc_raw = 0.0;
      for (int64_t k = 0; k < in; ++k) {
        acc += static_cast<double>(xq[r * in + k]) * w[o * in + k];
        acc_raw += static_cast<double>(x[r * in + k]) * w[o * in + k];
      }
      worst = std::max(worst, std::abs(acc - y[r * out + o]));
      worst_unquantized = std::max(worst_unquantized, std::abs(acc_raw - y[r * out + o]));
    }
  }
  EXPECT_LT(worst, 1e-4);              // fp32 accumulation error only
  EXPECT_GT(worst_unquantized, 1e-3);  // and the quantization really happened
}

// Records which entry point forward_shared_input called.
class CountingLinear final : public LinearWeight {
 public:
  explicit CountingLinear(const LinearWeight& inner) : inner_(inner) {}
  int64_t out_features() const override { return inner_.out_features(); }
  int64_t in_features() const override { return inner_.in_features(); }
  void forward(const float* x, int64_t m, float* y) const override {
    ++forwards;
    inner_.forward(x, m, y);
  }
  uint64_t weight_bytes() const override { return inner_.weight_bytes(); }
  const ActivationQuantizer* input_rounding() const override { return inner_.input_rounding(); }
  void forward_rounded(const float* xq, int64_t m, float* y) const override {
    ++rounded;
    inner_.forward_rounded(xq, m, y);
  }
  mutable int forwards = 0, rounded = 0;

 private:
  const LinearWeight& inner_;
};

// Linears that read one input and round it the same dynamic way (FP8_DYNAMIC's q/k/v) get it rounded once
// by forward_shared_input, with each output equal bit for bit to its own forward(); different args (or a
// static scale) make each linear round for itself.
TEST(QuantizedLinear, SharedInputIsRoundedOnceForLinearsWithTheSameDynamicArgs) {
  const int64_t m = 5, in = 64, out = 12;
  const std::vector<float> x = random_matrix(m, in, 21);
  MemoryTensorStore store;
  std::vector<std::vector<float>> weights;
  std::vector<LinearModule> modules(3);
  for (int j = 0; j < 3; ++j) {
    weights.push_back(random_matrix(out, in, static_cast<uint32_t>(30 + j), 0.2f));
    const std::string name = "lin" + std::to_string(j) + ".weight";
    store.add(name, DType::F32, {out, in}, weights.back().data(), weights.back().size() * 4);
    modules[static_cast<size_t>(j)].name = name;
    modules[static_cast<size_t>(j)].weight = store.get(name);
  }
  const QuantArgs fp8 = act_args(QuantType::Float, QuantStrategy::Token, true);
  const QuantArgs int8 = act_args(QuantType::Int, QuantStrategy::Token, true);
  for (bool same : {true, false}) {
    std::vector<std::unique_ptr<QuantizedLinear>> linears;
    for (int j = 0; j < 3; ++j) {
      const QuantArgs& a = same || j < 2 ? fp8 : int8;
      linears.push_back(
          std::make_unique<QuantizedLinear>(modules[static_cast<size_t>(j)], ActivationQuantizer(a, {}, {})));
    }
    std::vector<CountingLinear> counted;
    for (const auto& l : linears) counted.emplace_back(*l);
    const std::array<const LinearWeight*, 3> views = {&counted[0], &counted[1], &counted[2]};
    std::vector<std::vector<float>> shared(3, std::vector<float>(static_cast<size_t>(m * out)));
    const std::array<float*, 3> outputs = {shared[0].data(), shared[1].data(), shared[2].data()};
    forward_shared_input(x.data(), m, views, outputs);
    for (int j = 0; j < 3; ++j) {
      const CountingLinear& c = counted[static_cast<size_t>(j)];
      EXPECT_EQ(c.rounded, same ? 1 : 0) << j;
      EXPECT_EQ(c.forwards, same ? 0 : 1) << j;
      std::vector<float> alone(static_cast<size_t>(m * out));
      linears[static_cast<size_t>(j)]->forward(x.data(), m, alone.data());
      EXPECT_EQ(shared[static_cast<size_t>(j)], alone) << "linear " << j << (same ? " (shared)" : "");
    }
  }
}

// Whole tiny models: the quantized checkpoint's logits equal the naive double forward pass over the
// dequantized weights (weight-only schemes), and are close to the float model's.
struct TinyQuantized {
  testing::TempDir tmp{"quantized_linear"};
  testing::TinyModel tiny;
  testing::CtCheckpoint ct;
  formats::OpenedQuantizedModel opened;
  explicit TinyQuantized(const testing::CtSpec& spec) {
    testing::TinySpec ts;
    ts.intermediate = 48;
    tiny = testing::write_tiny_model(tmp.path() / "float", ts);
    ct = testing::write_ct_checkpoint(tiny, tmp.path() / "q", spec);
    opened = formats::open_compressed_tensors(tmp.path() / "q");
  }
};

std::vector<float> run_logits(const Transformer& tf, const std::vector<int32_t>& tokens) {
  Session s(tf);
  std::vector<float> logits;
  s.forward(tokens, Logits::All, &logits);
  return logits;
}

TEST(QuantizedModel, W8A16LogitsMatchTheDequantizedReferenceAndStayCloseToFloat) {
  testing::CtSpec spec;
  spec.scheme.weights = act_args(QuantType::Int, QuantStrategy::Group, false);
  spec.scheme.weights->group_size = 16;
  spec.format = "pack-quantized";
  TinyQuantized q(spec);
  const std::vector<int32_t> tokens = {1, 5, 9, 33, 2, 17, 60, 4};
  Transformer tf(*q.opened.model, make_quantized_linear_factory(q.opened.quant));
  const std::vector<float> got = run_logits(tf, tokens);

  testing::TinyModel dequantized = q.tiny;
  for (const auto& [module, w] : q.ct.dequantized) dequantized.weights[module + ".weight"] = w;
  const auto ref = testing::naive_forward(dequantized, q.opened.model->config(), tokens);
  const auto ref_float = testing::naive_forward(q.tiny, q.opened.model->config(), tokens);
  const int64_t vocab = q.opened.model->config().vocab_size;
  double worst = 0.0, worst_float = 0.0, largest = 0.0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (int64_t v = 0; v < vocab; ++v) {
      const double y = got[t * static_cast<size_t>(vocab) + static_cast<size_t>(v)];
      worst = std::max(worst, std::abs(y - ref[t][static_cast<size_t>(v)]));
      worst_float = std::max(worst_float, std::abs(y - ref_float[t][static_cast<size_t>(v)]));
      largest = std::max(largest, std::abs(ref_float[t][static_cast<size_t>(v)]));
    }
  }
  EXPECT_LT(worst, 2e-4);                  // same weights: fp32 vs double only
  EXPECT_LT(worst_float, 0.02 * largest);  // int8 weights: close to the float model
  EXPECT_GT(worst_float, worst);           // ... but not the float model
}

TEST(QuantizedModel, W8A8AppliesPerTokenInputQuantization) {
  testing::CtSpec spec;
  spec.scheme.weights = act_args(QuantType::Int, QuantStrategy::Channel, false);
  spec.scheme.input_activations = act_args(QuantType::Int, QuantStrategy::Token, true);
  spec.format = "int-quantized";
  TinyQuantized q(spec);
  const std::vector<int32_t> tokens = {1, 5, 9, 33, 2, 17};
  const std::vector<float> with_inputs =
      run_logits(Transformer(*q.opened.model, make_quantized_linear_factory(q.opened.quant)), tokens);
  // The same weights without input quantization.
  const std::vector<float> weights_only = run_logits(Transformer(*q.opened.model), tokens);
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < with_inputs.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(with_inputs[i] - weights_only[i])));
    scale = std::max(scale, static_cast<double>(std::abs(weights_only[i])));
  }
  EXPECT_GT(diff, 1e-5);
  EXPECT_LT(diff, 0.05 * scale);
}

}  // namespace
}  // namespace lowbit::runtime

// Whole tiny models run packed (ReadOptions::keep_packed + make_packed_linear_factory) against the same
// checkpoint dequantized at load (the fake-quant path), for every stored form the packed kernels read; the
// reader's placeholders; and batched decode (decode_batch) against one session per sequence.
#include <gtest/gtest.h>

#include <cmath>

#include "formats/compressed_tensors_reader.h"
#include "formats/ct_checkpoint.h"
#include "runtime/kernels_packed.h"
#include "runtime/kernels_packed_int16.h"
#include "runtime/packed_linear.h"
#include "runtime/quantized_linear.h"
#include "runtime/transformer.h"
#include "util/error.h"

namespace lowbit::runtime {
namespace {

QuantArgs args(QuantType type, int bits, QuantStrategy strategy, int group, bool symmetric) {
  QuantArgs a;
  a.num_bits = bits;
  a.type = type;
  a.strategy = strategy;
  a.symmetric = symmetric;
  if (strategy == QuantStrategy::Group) a.group_size = group;
  return a;
}

std::vector<float> logits_of(const Transformer& tf, const std::vector<int32_t>& tokens) {
  Session s(tf);
  std::vector<float> logits;
  s.forward(tokens, Logits::All, &logits);
  return logits;
}

struct Case {
  std::string name;
  testing::CtSpec spec;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  auto add = [&](std::string name, QuantArgs w, std::string format, std::optional<QuantArgs> in = {}) {
    Case c;
    c.name = std::move(name);
    c.spec.scheme.weights = w;
    c.spec.scheme.input_activations = in;
    c.spec.format = std::move(format);
    c.spec.scale_dtype = DType::F32;  // bf16 scales: the dequantized path rounds weights to bf16
    out.push_back(c);
  };
  add("W4A16 g16", args(QuantType::Int, 4, QuantStrategy::Group, 16, true), "pack-quantized");
  add("W4A16 asym g16", args(QuantType::Int, 4, QuantStrategy::Group, 16, false), "pack-quantized");
  add("W4A16 channel", args(QuantType::Int, 4, QuantStrategy::Channel, 0, true), "pack-quantized");
  add("W8A16 packed", args(QuantType::Int, 8, QuantStrategy::Group, 16, true), "pack-quantized");
  add("W8A16 int8", args(QuantType::Int, 8, QuantStrategy::Channel, 0, false), "int-quantized");
  add("FP8 weights", args(QuantType::Float, 8, QuantStrategy::Channel, 0, true), "float-quantized");
  add("FP8 weights bf16 scales", args(QuantType::Float, 8, QuantStrategy::Channel, 0, true),
      "float-quantized");
  out.back().spec.scale_dtype = DType::BF16;  // both paths round each weight to bf16
  QuantArgs token = args(QuantType::Int, 8, QuantStrategy::Token, 0, true);
  token.dynamic = DynamicMode::Dynamic;
  add("W8A8", args(QuantType::Int, 8, QuantStrategy::Channel, 0, true), "int-quantized", token);
  QuantArgs fp8_token = args(QuantType::Float, 8, QuantStrategy::Token, 0, true);
  fp8_token.dynamic = DynamicMode::Dynamic;
  add("FP8_DYNAMIC", args(QuantType::Float, 8, QuantStrategy::Channel, 0, true), "float-quantized",
      fp8_token);
  return out;
}

TEST(PackedModel, LogitsMatchTheDequantizedPath) {
  testing::TempDir tmp("packed_forward");
  testing::TinySpec ts;
  ts.hidden = 64;  // int4 word vectors of AVX-512 (128 codes) need K >= 128 for the MLP down projection
  ts.intermediate = 128;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "float", ts);
  const std::vector<int32_t> tokens = {1, 5, 9, 33, 2, 17, 60, 4, 8, 3};
  int i = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto dir = tmp.path() / ("q" + std::to_string(i++));
    testing::write_ct_checkpoint(tiny, dir, c.spec);
    const formats::OpenedQuantizedModel packed = formats::open_compressed_tensors(dir, {.keep_packed = true});
    const formats::OpenedQuantizedModel dequantized = formats::open_compressed_tensors(dir);
    // Every targeted module was kept packed, and its Model weight is a placeholder without data.
    for (const auto& [name, m] : packed.quant->modules) {
      ASSERT_TRUE(m.stored.has_value()) << name;
      EXPECT_EQ(packed.model->tensor(name + ".weight").data, nullptr) << name;
    }
    Transformer tf_packed(*packed.model, make_packed_linear_factory(packed.quant));
    Transformer tf_deq(*dequantized.model, make_quantized_linear_factory(dequantized.quant));
    // W8A8 runs integer products in the packed path.
    if (c.name == "W8A8") {
      const auto* lin = dynamic_cast<const PackedLinear*>(tf_packed.layer(0).q.get());
      ASSERT_NE(lin, nullptr);
      EXPECT_TRUE(lin->integer_activations());
    }
    const std::vector<float> want = logits_of(tf_deq, tokens);
    // The fp32 decoders first, then (where the CPU has them) the integer-activation kernels: int16 codes,
    // then int8 codes (int4 weights' default; the same as int16 for other weights).
    const bool int8_saved = kernels::int8_activations_enabled();
    kernels::set_int16_gemv_enabled(false);
    const std::vector<float> got = logits_of(tf_packed, tokens);
    kernels::set_int16_gemv_enabled(true);
    kernels::set_int8_activations_enabled(false);
    const std::vector<float> got16 = logits_of(tf_packed, tokens);
    kernels::set_int8_activations_enabled(true);
    const std::vector<float> got8 = logits_of(tf_packed, tokens);
    kernels::set_int8_activations_enabled(int8_saved);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0.0, worst16 = 0.0, worst8 = 0.0, largest = 0.0, mean = 0.0;
    for (size_t k = 0; k < got.size(); ++k) {
      worst = std::max(worst, static_cast<double>(std::abs(got[k] - want[k])));
      worst16 = std::max(worst16, static_cast<double>(std::abs(got16[k] - want[k])));
      worst8 = std::max(worst8, static_cast<double>(std::abs(got8[k] - want[k])));
      largest = std::max(largest, static_cast<double>(std::abs(want[k])));
      mean += std::abs(got[k] - want[k]) / static_cast<double>(got.size());
    }
    if (!c.spec.scheme.input_activations || c.name == "FP8_DYNAMIC") {
      // Same weights, fp32 scales: only the fp32 summation order differs.
      EXPECT_LT(worst, 2e-5 * largest) << "largest logit " << largest;
      // int16 activation codes move each input by up to 2^-16 of its 32-column block's largest value, a
      // relative error of about 1.5e-5 per product that 14 products and the attention in between carry into
      // the logits; measured 1.2e-4 of the largest logit here (packed_kernels_test bounds the product).
      EXPECT_LT(worst16, 5e-4 * largest) << "largest logit " << largest;
      // int8 codes (int4 weights) move each input by up to 2^-8 of its 8-column block's largest value, 256
      // times int16's step: measured 3.3e-2 of the largest logit here (W4A16 channel; 1.2e-4 with int16).
      // The model is random and tiny; on the reference model, perplexity moved by 0.03 %.
      EXPECT_LT(worst8, 0.1 * largest) << "largest logit " << largest;
    } else {
      // Integer products are exact where the fake-quant path rounds in fp32; the tiny differences move a few
      // activation codes across a rounding boundary (one quantization step each), which then propagate.
      // packed_kernels_test checks the product itself to 1e-5.
      EXPECT_LT(worst, 0.03 * largest) << "largest logit " << largest;
      EXPECT_LT(mean, 0.003 * largest) << "largest logit " << largest;
      EXPECT_LT(worst16, 0.03 * largest) << "largest logit " << largest;  // W8A8 on the int16 kernels
      EXPECT_EQ(got8, got16);  // byte codes take int16 activations either way
    }
  }
}

TEST(PackedModel, PlaceholderWeightsCannotBeReadAsDense) {
  testing::TempDir tmp("packed_placeholder");
  testing::TinySpec ts;
  ts.intermediate = 64;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "float", ts);
  testing::CtSpec spec;
  spec.scheme.weights = args(QuantType::Int, 4, QuantStrategy::Group, 16, true);
  spec.format = "pack-quantized";
  testing::write_ct_checkpoint(tiny, tmp.path() / "q", spec);
  const formats::OpenedQuantizedModel packed =
      formats::open_compressed_tensors(tmp.path() / "q", {.keep_packed = true});
  // The dense factory meets a placeholder: an error naming the tensor, not a crash.
  EXPECT_THROW(Transformer(*packed.model), Error);
}

// Decodes `prompts` in lockstep and one by one for four steps; every logit must be bit-equal.
void expect_batch_equals_single(const Transformer& tf, const std::vector<std::vector<int32_t>>& prompts,
                                const std::string& what) {
  const int64_t vocab = tf.config().vocab_size;
  std::vector<std::unique_ptr<Session>> batched, single;
  std::vector<Session*> ptrs;
  std::vector<int32_t> next;
  std::vector<float> logits;
  for (const auto& p : prompts) {
    batched.push_back(std::make_unique<Session>(tf));
    single.push_back(std::make_unique<Session>(tf));
    batched.back()->forward(p, Logits::None, nullptr);
    single.back()->forward(p, Logits::None, nullptr);
    ptrs.push_back(batched.back().get());
    next.push_back(p.back() + 1);
  }
  for (int step = 0; step < 4; ++step) {
    decode_batch(tf, ptrs, next, &logits);
    for (size_t b = 0; b < prompts.size(); ++b) {
      std::vector<float> one;
      single[b]->forward(std::span<const int32_t>(&next[b], 1), Logits::Last, &one);
      for (int64_t v = 0; v < vocab; ++v) {
        // The gemv kernels sum each output in the same order whatever the number of rows: bit-equal.
        ASSERT_EQ(logits[b * static_cast<size_t>(vocab) + static_cast<size_t>(v)],
                  one[static_cast<size_t>(v)])
            << what << " step " << step << " sequence " << b << " logit " << v;
      }
      EXPECT_EQ(batched[b]->position(), single[b]->position());
      next[b] = (next[b] * 7 + step) % static_cast<int32_t>(vocab);
    }
  }
}

TEST(PackedModel, DecodeBatchEqualsOneSessionPerSequence) {
  testing::TempDir tmp("packed_batch");
  testing::TinySpec ts;
  ts.hidden = 128;
  ts.intermediate = 256;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "float", ts);
  // Sequences of different lengths: 3 of them, then 15, which the int16 kernels take as blocks of 8, 4, 2
  // and 1 x rows.
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {7, 8, 9, 10, 11}, {5}};
  std::vector<std::vector<int32_t>> many;
  for (int32_t b = 0; b < 15; ++b) many.push_back(std::vector<int32_t>(1 + b % 4, 2 + b));
  // int4 and 8-bit codes; groups of 32 columns split the kernels' 64-column chunks, groups of 128 hold two.
  for (const auto& [bits, group] : {std::pair{4, 32}, std::pair{4, 128}, std::pair{8, 128}}) {
    testing::CtSpec spec;
    spec.scheme.weights = args(QuantType::Int, bits, QuantStrategy::Group, group, true);
    spec.format = "pack-quantized";
    const std::string name = "w" + std::to_string(bits) + " g" + std::to_string(group);
    const auto dir = tmp.path() / ("w" + std::to_string(bits) + "g" + std::to_string(group));
    testing::write_ct_checkpoint(tiny, dir, spec);
    const formats::OpenedQuantizedModel packed = formats::open_compressed_tensors(dir, {.keep_packed = true});
    Transformer tf(*packed.model, make_packed_linear_factory(packed.quant));
    expect_batch_equals_single(tf, prompts, name + " batch 3");
    expect_batch_equals_single(tf, many, name + " batch 15");
    if (group != 32) continue;
    // Mismatched inputs are errors.
    std::vector<float> logits;
    Session a(tf);
    a.forward(prompts[0], Logits::None, nullptr);
    std::vector<Session*> ptrs = {&a};
    EXPECT_THROW(decode_batch(tf, ptrs, std::vector<int32_t>{1, 2}, &logits), Error);
    Transformer other(*packed.model, make_packed_linear_factory(packed.quant));
    Session stranger(other);
    std::vector<Session*> mixed = {&a, &stranger};
    EXPECT_THROW(decode_batch(tf, mixed, std::vector<int32_t>{1, 2}, &logits), Error);
  }
}

}  // namespace
}  // namespace lowbit::runtime

// The compressed-tensors reader: every storage layout (pack-quantized with and without packed zero points,
// int8 / float8 weights, fp32 and bf16 scales, actorder g_idx) dequantizes to exactly what the quant
// library's reference dequantizer gives for the stored codes; bad checkpoints fail with messages that name
// the tensor.
#include <gtest/gtest.h>

#include "formats/compressed_tensors_reader.h"
#include "formats/ct_checkpoint.h"
#include "util/error.h"

namespace lowbit {
namespace {

using testing::CtSpec;
using testing::TempDir;

QuantArgs int_args(int bits, QuantStrategy strategy, bool symmetric,
                   std::optional<int> group = std::nullopt) {
  QuantArgs a;
  a.num_bits = bits;
  a.type = QuantType::Int;
  a.symmetric = symmetric;
  a.strategy = strategy;
  a.group_size = group;
  return a;
}

QuantArgs fp8_args(QuantStrategy strategy, bool dynamic) {
  QuantArgs a;
  a.num_bits = 8;
  a.type = QuantType::Float;
  a.strategy = strategy;
  a.dynamic = dynamic ? DynamicMode::Dynamic : DynamicMode::Static;
  return a;
}

// Loads the checkpoint and checks every quantized module's weight bit for bit.
formats::OpenedQuantizedModel expect_exact(const std::filesystem::path& dir, const testing::CtCheckpoint& ct,
                                           const std::string& format) {
  formats::OpenedQuantizedModel opened = formats::open_compressed_tensors(dir);
  EXPECT_EQ(opened.quant->modules.size(), ct.dequantized.size());
  EXPECT_EQ(opened.quant->ignored, std::vector<std::string>{"lm_head"});
  for (const auto& [module, expected] : ct.dequantized) {
    const formats::QuantizedModule* qm = opened.quant->module(module);
    EXPECT_NE(qm, nullptr) << module;
    if (qm) {
      EXPECT_EQ(qm->format, format) << module;
    }
    const TensorView w = opened.model->tensor(module + ".weight");
    std::vector<float> got(static_cast<size_t>(w.numel()));
    convert_to_f32(w.dtype, w.data, got.data(), got.size());
    EXPECT_EQ(got.size(), expected.size()) << module;
    if (got.size() != expected.size()) continue;
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != expected[i];
    EXPECT_EQ(mismatches, 0u) << module;
  }
  return opened;
}

struct Fixture {
  TempDir tmp{"ct_reader"};
  testing::TinyModel tiny;
  Fixture() {
    testing::TinySpec spec;
    spec.intermediate = 48;
    tiny = testing::write_tiny_model(tmp.path() / "float", spec);
  }
};

TEST(CompressedTensorsReader, PackQuantizedW4GroupSymmetric) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = int_args(4, QuantStrategy::Group, true, 16);
  spec.format = "pack-quantized";
  const auto ct = testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  auto opened = expect_exact(f.tmp.path() / "q", ct, "pack-quantized");
  EXPECT_FALSE(opened.quant->kv_cache_scheme);
  // The compressed tensors are hidden behind the dequantized weight.
  EXPECT_FALSE(opened.model->has_tensor("model.layers.0.mlp.up_proj.weight_packed"));
  EXPECT_TRUE(opened.model->has_tensor("lm_head.weight"));
}

TEST(CompressedTensorsReader, PackQuantizedW4AsymmetricBf16ScalesPackedZeroPoints) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = int_args(4, QuantStrategy::Group, false, 8);
  spec.format = "pack-quantized";
  spec.scale_dtype = DType::BF16;
  const auto ct = testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  auto opened = expect_exact(f.tmp.path() / "q", ct, "pack-quantized");
  // bf16 scales: the weight is presented in bf16, as torch's dequantize returns it.
  EXPECT_EQ(opened.model->tensor("model.layers.1.self_attn.o_proj.weight").dtype, DType::BF16);
}

TEST(CompressedTensorsReader, PackQuantizedChannelAsymmetric) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = int_args(4, QuantStrategy::Channel, false);
  spec.format = "pack-quantized";
  const auto ct = testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  expect_exact(f.tmp.path() / "q", ct, "pack-quantized");
}

TEST(CompressedTensorsReader, ActorderGIdxMapsColumnsToGroups) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = int_args(4, QuantStrategy::Group, true, 8);
  spec.scheme.weights->actorder = ActOrder::Weight;
  spec.format = "pack-quantized";
  spec.permuted_g_idx = true;
  const auto ct = testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  expect_exact(f.tmp.path() / "q", ct, "pack-quantized");
}

TEST(CompressedTensorsReader, IntQuantizedW8A8ChannelDynamicTokens) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = int_args(8, QuantStrategy::Channel, true);
  QuantArgs in = int_args(8, QuantStrategy::Token, true);
  in.dynamic = DynamicMode::Dynamic;
  spec.scheme.input_activations = in;
  spec.format = "int-quantized";
  const auto ct = testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  auto opened = expect_exact(f.tmp.path() / "q", ct, "int-quantized");
  const formats::QuantizedModule* qm = opened.quant->module("model.layers.0.mlp.down_proj");
  ASSERT_NE(qm, nullptr);
  ASSERT_TRUE(qm->scheme.input_activations);
  EXPECT_TRUE(qm->input_scale.empty());
}

TEST(CompressedTensorsReader, NaiveQuantizedPerTensorAsymmetric) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = int_args(8, QuantStrategy::Tensor, false);
  spec.format = "naive-quantized";
  const auto ct = testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  expect_exact(f.tmp.path() / "q", ct, "int-quantized");
}

TEST(CompressedTensorsReader, FloatQuantizedStaticInputAndKVScales) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = fp8_args(QuantStrategy::Tensor, false);
  spec.scheme.input_activations = fp8_args(QuantStrategy::Tensor, false);
  spec.kv = fp8_args(QuantStrategy::Tensor, false);
  spec.format = "float-quantized";
  spec.scale_dtype = DType::BF16;
  const auto ct = testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  auto opened = expect_exact(f.tmp.path() / "q", ct, "float-quantized");
  const formats::QuantizedModule* qm = opened.quant->module("model.layers.0.self_attn.q_proj");
  ASSERT_NE(qm, nullptr);
  ASSERT_EQ(qm->input_scale.size(), 1u);
  EXPECT_EQ(qm->input_scale[0], round_to_bf16(spec.input_scale));
  ASSERT_EQ(opened.quant->kv_scales.size(), 2u);
  EXPECT_EQ(opened.quant->kv_scales[1].k_scale, std::vector<float>{round_to_bf16(spec.k_scale)});
  EXPECT_EQ(opened.quant->kv_scales[1].v_scale, std::vector<float>{round_to_bf16(spec.v_scale)});
}

TEST(CompressedTensorsReader, FloatModelHasNoQuantizationConfig) {
  Fixture f;
  EXPECT_FALSE(formats::read_compressed_tensors_config(f.tmp.path() / "float"));
}

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(CompressedTensorsReader, BadCheckpointsFailNamingTheProblem) {
  Fixture f;
  CtSpec spec;
  spec.scheme.weights = int_args(4, QuantStrategy::Group, true, 16);
  spec.format = "pack-quantized";
  testing::write_ct_checkpoint(f.tiny, f.tmp.path() / "q", spec);
  const std::filesystem::path cfg = f.tmp.path() / "q" / "config.json";
  const nlohmann::json good = nlohmann::json::parse(read_file(cfg));

  // The config says int8 but the tensors are packed int4: the packed shape does not match.
  nlohmann::json j = good;
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 8;
  write_file_atomic(cfg, j.dump());
  expect_error([&] { formats::open_compressed_tensors(f.tmp.path() / "q"); }, "weight_packed");

  j = good;
  j["quantization_config"]["format"] = "marlin-24";
  j["quantization_config"]["config_groups"]["group_0"]["format"] = "marlin-24";
  write_file_atomic(cfg, j.dump());
  expect_error([&] { formats::open_compressed_tensors(f.tmp.path() / "q"); }, "marlin-24");

  j = good;
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  write_file_atomic(cfg, j.dump());
  expect_error([&] { formats::read_compressed_tensors_config(f.tmp.path() / "q"); }, "gptq");

  // Scales of the wrong granularity.
  j = good;
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] = 8;
  write_file_atomic(cfg, j.dump());
  expect_error([&] { formats::open_compressed_tensors(f.tmp.path() / "q"); }, "weight_scale");
}

}  // namespace
}  // namespace lowbit

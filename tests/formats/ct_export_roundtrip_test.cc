// Writer -> reader round trip for the NxD-style weight-only presets, including lowbit's fp8 e5m2 extension
// (docs/FORMATS.md), which compressed-tensors cannot express: a tiny bf16 model is exported with the real
// export API, opened with the compressed-tensors reader, and every quantized module's weight must equal,
// bit for bit, the quant library's scalar reference RTN of the original weight (quantize_*_ref then
// dequantize_*_ref in bf16, as the writer quantizes a bf16 model). fp8 weights are stored float-quantized
// (F8_E4M3 or F8_E5M2 codes); int8 weight-only ones pack-quantized, as compressed-tensors infers it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "export/compressed_tensors_writer.h"
#include "formats/compressed_tensors_reader.h"
#include "quant/model_quantizer.h"
#include "quant/presets.h"
#include "quant/quantizer_ref.h"
#include "quant/recipe.h"
#include "quant/scale_grid.h"
#include "runtime/tiny_model.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

testing::TinySpec bf16_spec() {
  testing::TinySpec s;
  s.hidden = 64;
  s.intermediate = 96;
  s.dtype = DType::BF16;  // the writer then quantizes and stores scales in bf16
  s.seed = 11;
  return s;
}

// The scalar reference fake-quantization of one stored weight.
std::vector<float> reference_fake_quant(const std::vector<float>& w, int64_t rows, int64_t cols,
                                        const QuantArgs& args, const std::string& module) {
  const int64_t cells = make_scale_grid(args, rows, cols, module).size();
  std::vector<float> scales(static_cast<size_t>(cells)), out(w.size());
  if (args.type == QuantType::Float) {
    std::vector<uint8_t> codes(w.size());
    quantize_fp8_ref(w.data(), rows, cols, args, codes.data(), scales.data(), ComputeDType::BF16);
    dequantize_fp8_ref(codes.data(), rows, cols, args, scales.data(), out.data(), ComputeDType::BF16);
  } else {
    std::vector<int8_t> codes(w.size()), zp(static_cast<size_t>(cells));
    quantize_int_ref(w.data(), rows, cols, args, codes.data(), scales.data(), zp.data(), ComputeDType::BF16);
    dequantize_int_ref(codes.data(), rows, cols, args, scales.data(), args.symmetric ? nullptr : zp.data(),
                       out.data(), ComputeDType::BF16);
  }
  return out;
}

class WeightOnlyRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(WeightOnlyRoundTrip, ReaderReproducesReferenceFakeQuant) {
  const std::string preset = GetParam();
  TempDir tmp("ct_roundtrip_" + preset);
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "model", bf16_spec());
  auto model = Model::open(tmp.path() / "model");
  QuantRecipe recipe;
  recipe.groups.emplace_back("group_0", preset_scheme(preset, {"Linear"}));
  const QuantPlan plan = resolve_plan(recipe, model_modules(*model));
  export_model(*model, plan, tmp.path() / "q", ExportOptions{});

  const bool e5m2 = preset.rfind("fp8_e5m2", 0) == 0;
  const nlohmann::json q =
      nlohmann::json::parse(read_file(tmp.path() / "q" / "config.json"))["quantization_config"];
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"].contains("lowbit_fp8_format"), e5m2);

  const formats::OpenedQuantizedModel opened = formats::open_compressed_tensors(tmp.path() / "q");
  int checked = 0;
  for (const PlannedModule& m : plan.modules) {
    if (m.decision != ModuleDecision::Quantized) continue;
    const QuantArgs& args = *plan.scheme_for(m.name)->weights;
    EXPECT_EQ(args.float_format == FloatFormat::E5M2, e5m2) << m.name;
    const formats::QuantizedModule* qm = opened.quant->module(m.name);
    ASSERT_NE(qm, nullptr) << m.name;
    ASSERT_TRUE(qm->scheme.weights);
    EXPECT_EQ(*qm->scheme.weights, args) << m.name;  // float_format survives the config round trip
    EXPECT_EQ(qm->format, args.type == QuantType::Float ? "float-quantized" : "pack-quantized") << m.name;

    const int64_t rows = m.weight_shape[0], cols = m.weight_shape[1];
    const std::vector<float> want =
        reference_fake_quant(tiny.weights.at(m.name + ".weight"), rows, cols, args, m.name);
    const TensorView w = opened.model->tensor(m.name + ".weight");
    EXPECT_EQ(w.dtype, DType::BF16) << m.name;
    std::vector<float> got(static_cast<size_t>(w.numel()));
    convert_to_f32(w.dtype, w.data, got.data(), got.size());
    ASSERT_EQ(got.size(), want.size()) << m.name;
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != want[i];
    EXPECT_EQ(mismatches, 0u) << m.name;
    ++checked;
  }
  EXPECT_EQ(checked, 14);  // 7 projections x 2 layers; lm_head is ignored by default
}

// A tied lm_head targeted with --include-lm-head is untied, as llm-compressor does: lm_head is stored
// quantized (the reference RTN of the embedding matrix), the embeddings stay as they were, and the config
// says tie_word_embeddings: false, so lowbit (dequantized or packed) and transformers load two modules.
TEST(TiedLmHead, IsUntiedAndQuantizedFromTheEmbeddings) {
  TempDir tmp("ct_untie");
  testing::TinySpec spec = bf16_spec();
  spec.tie = true;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "model", spec);
  auto model = Model::open(tmp.path() / "model");
  ASSERT_TRUE(model->lm_head_tied());
  QuantScheme w4 = preset_scheme("W4A16", {"Linear"});
  w4.weights->group_size = 32;  // hidden 64
  QuantRecipe recipe;
  recipe.groups.emplace_back("group_0", w4);
  recipe.ignore_lm_head = false;
  const QuantPlan plan = resolve_plan(recipe, model_modules(*model));
  ASSERT_NE(plan.scheme_for("lm_head"), nullptr);
  const ExportSummary summary = export_model(*model, plan, tmp.path() / "q", ExportOptions{});
  EXPECT_EQ(summary.modules_quantized, 15);  // 7 projections x 2 layers + lm_head
  EXPECT_FALSE(summary.notes.empty());

  const nlohmann::json config = nlohmann::json::parse(read_file(tmp.path() / "q" / "config.json"));
  EXPECT_EQ(config["tie_word_embeddings"], false);
  for (bool packed : {false, true}) {
    formats::ReadOptions options;
    options.keep_packed = packed;
    const formats::OpenedQuantizedModel opened = formats::open_compressed_tensors(tmp.path() / "q", options);
    EXPECT_FALSE(opened.model->lm_head_tied());
    ASSERT_NE(opened.quant->module("lm_head"), nullptr);
    // The embeddings are the original bf16 values.
    const TensorView embed = opened.model->tensor("model.embed_tokens.weight");
    std::vector<float> e(static_cast<size_t>(embed.numel()));
    convert_to_f32(embed.dtype, embed.data, e.data(), e.size());
    EXPECT_EQ(e, tiny.weights.at("model.embed_tokens.weight"));
    if (packed) continue;  // the codes are checked through the dequantized view
    const std::vector<float> want =
        reference_fake_quant(tiny.weights.at("model.embed_tokens.weight"), spec.vocab, spec.hidden,
                             *plan.scheme_for("lm_head")->weights, "lm_head");
    const TensorView w = opened.model->tensor("lm_head.weight");
    std::vector<float> got(static_cast<size_t>(w.numel()));
    convert_to_f32(w.dtype, w.data, got.data(), got.size());
    EXPECT_EQ(got, want);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, WeightOnlyRoundTrip,
                         ::testing::Values("fp8_e5m2_per_tensor_symmetric", "fp8_e5m2_per_channel_symmetric",
                                           "fp8_e4m3_per_tensor_symmetric", "fp8_e4m3_per_channel_symmetric",
                                           "int8_per_tensor_symmetric", "int8_per_channel_symmetric"));

// The stored fp8 dtype and the config's lowbit_fp8_format must agree; a mismatch is an error naming the
// tensor, never a silent misread with the other format's bit patterns.
TEST(CtExportRoundTrip, E5m2WeightsWithoutTheExtensionFieldAreRefused) {
  TempDir tmp("ct_roundtrip_e5m2_mismatch");
  testing::write_tiny_model(tmp.path() / "model", bf16_spec());
  auto model = Model::open(tmp.path() / "model");
  QuantRecipe recipe;
  recipe.groups.emplace_back("group_0", preset_scheme("fp8_e5m2_per_channel_symmetric", {"Linear"}));
  export_model(*model, resolve_plan(recipe, model_modules(*model)), tmp.path() / "q", ExportOptions{});

  nlohmann::json config = nlohmann::json::parse(read_file(tmp.path() / "q" / "config.json"));
  config["quantization_config"]["config_groups"]["group_0"]["weights"].erase("lowbit_fp8_format");
  write_file_atomic(tmp.path() / "q" / "config.json", config.dump(2));
  try {
    formats::open_compressed_tensors(tmp.path() / "q");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(".weight is float8_e5m2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("lowbit_fp8_format"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace lowbit

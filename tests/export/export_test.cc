// RTN quantization + compressed-tensors export of a tiny random bf16 model shaped like the TinyLlama of
// tools/reference/quant_golden.py (vocab 32, hidden 128, intermediate 256, 2 layers): the written
// config.json quantization_config and the tensor names/dtypes/shapes must equal what compressed-tensors
// 0.20 writes for the same plan (tests/fixtures/quant/presets_golden.json "exports"), and decoding the
// files (unpack + dequantize) must reproduce the scalar-reference RTN fake-quant weights exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "export/compressed_tensors_writer.h"
#include "io/safetensors.h"
#include "quant/model_quantizer.h"
#include "quant/pack.h"
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
using nlohmann::json;
using testing::TempDir;
using testing::TinySpec;

const json& golden() {
  static const json g =
      json::parse(read_file(fs::path(LOWBIT_FIXTURES_DIR) / "quant" / "presets_golden.json"));
  return g;
}

TinySpec golden_shape(bool tie = false) {
  TinySpec s;
  s.vocab = 32;
  s.hidden = 128;
  s.intermediate = 256;
  s.layers = 2;
  s.heads = 4;
  s.kv_heads = 4;  // q/k/v all 128 x 128, as in the golden's TinyAttn
  s.dtype = DType::BF16;
  s.tie = tie;
  s.seed = 7;
  return s;
}

// The recipe behind each golden export (see presets_golden() in tools/reference/quant_golden.py).
QuantRecipe golden_recipe(const std::string& name) {
  QuantRecipe r;
  if (name == "W4A16_g64") {
    r.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
    override_group_size(r.groups[0].second, 64, "test");
  } else if (name == "mixed") {
    r.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
    r.groups.emplace_back("group_1", preset_scheme("W8A16", {"re:.*down_proj$"}));
    r.ignore = {"lm_head", "re:model\\.layers\\.0\\.self_attn\\..*"};
  } else if (name == "W8A8_fp8kv") {
    r.groups.emplace_back("group_0", preset_scheme("W8A8", {"Linear"}));
    r.kv_cache_scheme = kv_cache_args("fp8");
  } else {
    r.groups.emplace_back("group_0", preset_scheme(name, {"Linear"}));
  }
  return r;
}

// Made-up static scales (what calibrate() would produce) for every module with static inputs.
Calibration fake_calibration(const Model& model, const QuantPlan& plan) {
  Calibration cal;
  for (const PlannedModule& m : plan.modules) {
    const QuantScheme* s = plan.scheme_for(m.name);
    if (s && s->input_activations && !s->input_activations->is_dynamic()) cal.inputs[m.name] = {0.5f, 0};
  }
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    cal.keys["model.layers." + std::to_string(l) + ".self_attn"] = {0.25f, 0};
    cal.values["model.layers." + std::to_string(l) + ".self_attn"] = {0.125f, 0};
  }
  return cal;
}

std::string torch_dtype(DType t) {
  switch (t) {
    case DType::BF16:
      return "bfloat16";
    case DType::I32:
      return "int32";
    case DType::I64:
      return "int64";
    case DType::I8:
      return "int8";
    case DType::F8_E4M3:
      return "float8_e4m3fn";
    default:
      return std::string(dtype_name(t));
  }
}

std::vector<float> floats(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.data, out.data(), out.size());
  return out;
}

struct Exported {
  std::unique_ptr<Model> model;
  QuantPlan plan;
  ExportSummary summary;
};

Exported export_case(const fs::path& model_dir, const fs::path& out, const QuantRecipe& recipe,
                     ExportFormat format = ExportFormat::Auto) {
  Exported e;
  e.model = Model::open(model_dir);
  e.plan = resolve_plan(recipe, model_modules(*e.model));
  const Calibration cal = fake_calibration(*e.model, e.plan);
  ExportOptions options;
  options.format = format;
  options.calibration = &cal;
  options.overwrite = true;
  e.summary = export_model(*e.model, e.plan, out, options);
  return e;
}

class GoldenExport : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenExport, ConfigAndTensorsMatchCompressedTensors) {
  const std::string name = GetParam();
  const json& want = golden()["exports"][name];
  TempDir tmp("export_golden_" + name);
  testing::write_tiny_model(tmp.path() / "model", golden_shape());
  const Exported e = export_case(tmp.path() / "model", tmp.path() / "out", golden_recipe(name));

  const json config = json::parse(read_file(tmp.path() / "out" / "config.json"));
  EXPECT_EQ(config["quantization_config"], want["quantization_config"])
      << "ours:   " << config["quantization_config"].dump()
      << "\ngolden: " << want["quantization_config"].dump();
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");  // the rest of config.json is kept

  Checkpoint ckpt(tmp.path() / "out");
  const std::vector<std::string> names = ckpt.names();
  for (const std::string module :
       {"model.layers.0.self_attn.q_proj.", "model.layers.0.mlp.down_proj.", "lm_head."}) {
    std::set<std::string> ours, theirs;
    for (const std::string& n : names)
      if (n.rfind(module, 0) == 0) ours.insert(n);
    for (const auto& [n, t] : want["tensors"].items()) {
      if (n.rfind(module, 0) != 0) continue;
      theirs.insert(n);
      ASSERT_TRUE(ckpt.contains(n)) << n;
      const TensorView v = ckpt.get(n);
      EXPECT_EQ(torch_dtype(v.dtype), t["dtype"].get<std::string>()) << n;
      EXPECT_EQ(v.shape, t["shape"].get<std::vector<int64_t>>()) << n;
    }
    EXPECT_EQ(ours, theirs) << module;
  }
  if (name == "W8A8_fp8kv") {
    for (const char* s : {"k_scale", "v_scale"}) {
      const TensorView v = ckpt.get(std::string("model.layers.1.self_attn.") + s);
      EXPECT_EQ(v.dtype, DType::BF16);
      EXPECT_EQ(v.shape, std::vector<int64_t>{1});
      EXPECT_EQ(floats(v)[0], s[0] == 'k' ? 0.25f : 0.125f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, GoldenExport,
                         ::testing::Values("W8A16", "W4A16", "W4A16_ASYM", "W8A8", "INT8", "FP8",
                                           "FP8_DYNAMIC", "W4A8", "W4AFP8", "W4A16_g64", "mixed",
                                           "W8A8_fp8kv"));

// Decodes one module of a written checkpoint back to weights, independently of the writer: unpack (pack.h),
// scales from their stored dtype, the scalar reference dequantizer.
std::vector<float> decode_module(const Checkpoint& ckpt, const std::string& m, const QuantArgs& args,
                                 int64_t rows, int64_t cols, std::vector<int8_t>* int_codes) {
  const std::vector<float> scales = floats(ckpt.get(m + ".weight_scale"));
  std::vector<float> out(static_cast<size_t>(rows * cols));
  if (args.type == QuantType::Float) {
    const TensorView w = ckpt.get(m + ".weight");
    std::vector<uint8_t> codes(w.as<uint8_t>().begin(), w.as<uint8_t>().end());
    dequantize_fp8_ref(codes.data(), rows, cols, args, scales.data(), out.data(), ComputeDType::BF16);
    return out;
  }
  std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
  std::vector<int8_t> zp;
  if (ckpt.contains(m + ".weight_packed")) {
    const TensorView shape = ckpt.get(m + ".weight_shape");
    EXPECT_EQ(shape.as<int64_t>()[0], rows);
    EXPECT_EQ(shape.as<int64_t>()[1], cols);
    unpack_int_rows(ckpt.get(m + ".weight_packed").as<int32_t>().data(), rows, cols, args.num_bits,
                    codes.data());
    if (!args.symmetric) {
      const ScaleGrid g = make_scale_grid(args, rows, cols, m);
      zp.resize(static_cast<size_t>(g.size()));
      unpack_int_cols(ckpt.get(m + ".weight_zero_point").as<int32_t>().data(), g.scale_rows, g.scale_cols,
                      args.num_bits, zp.data());
    }
  } else {
    const TensorView w = ckpt.get(m + ".weight");
    EXPECT_EQ(w.dtype, DType::I8);
    std::copy(w.as<int8_t>().begin(), w.as<int8_t>().end(), codes.begin());
    if (!args.symmetric) {
      const TensorView z = ckpt.get(m + ".weight_zero_point");
      zp.assign(z.as<int8_t>().begin(), z.as<int8_t>().end());
    }
  }
  dequantize_int_ref(codes.data(), rows, cols, args, scales.data(), zp.empty() ? nullptr : zp.data(),
                     out.data(), ComputeDType::BF16);
  *int_codes = codes;
  return out;
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, DecodedWeightsEqualReferenceFakeQuant) {
  const std::string name = GetParam();
  TempDir tmp("export_roundtrip_" + name);
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "model", golden_shape());
  QuantRecipe recipe;
  recipe.groups.emplace_back("group_0", preset_scheme(name, {"Linear"}));
  const Exported e = export_case(tmp.path() / "model", tmp.path() / "out", recipe);
  const Exported fq = export_case(tmp.path() / "model", tmp.path() / "fq", recipe, ExportFormat::FakeQuant);
  Checkpoint ckpt(tmp.path() / "out");
  Checkpoint fake(tmp.path() / "fq");
  const json fq_config = json::parse(read_file(tmp.path() / "fq" / "config.json"));
  EXPECT_FALSE(fq_config.contains("quantization_config"));

  int checked = 0;
  for (const PlannedModule& m : e.plan.modules) {
    const std::string weight = m.name + ".weight";
    if (m.decision != ModuleDecision::Quantized) {
      // Not quantized: copied bit for bit.
      if (m.type == "Linear") {
        EXPECT_EQ(floats(ckpt.get(weight)), tiny.weights.at(weight)) << m.name;
      }
      continue;
    }
    const QuantArgs& args = *e.plan.scheme_for(m.name)->weights;
    const int64_t rows = m.weight_shape[0], cols = m.weight_shape[1];
    // The scalar reference RTN of the stored bf16 weight.
    const std::vector<float>& w = tiny.weights.at(weight);
    const ScaleGrid grid = make_scale_grid(args, rows, cols, m.name);
    std::vector<float> ref_scales(static_cast<size_t>(grid.size())), ref(w.size());
    std::vector<int8_t> ref_zp(static_cast<size_t>(grid.size())), ref_codes(w.size());
    std::vector<uint8_t> ref_fp8(w.size());
    if (args.type == QuantType::Int) {
      quantize_int_ref(w.data(), rows, cols, args, ref_codes.data(), ref_scales.data(), ref_zp.data(),
                       ComputeDType::BF16);
      dequantize_int_ref(ref_codes.data(), rows, cols, args, ref_scales.data(),
                         args.symmetric ? nullptr : ref_zp.data(), ref.data(), ComputeDType::BF16);
    } else {
      quantize_fp8_ref(w.data(), rows, cols, args, ref_fp8.data(), ref_scales.data(), ComputeDType::BF16);
      dequantize_fp8_ref(ref_fp8.data(), rows, cols, args, ref_scales.data(), ref.data(), ComputeDType::BF16);
    }
    std::vector<int8_t> codes;
    const std::vector<float> decoded = decode_module(ckpt, m.name, args, rows, cols, &codes);
    if (args.type == QuantType::Int) {
      EXPECT_EQ(codes, ref_codes) << m.name;
    }
    EXPECT_EQ(floats(ckpt.get(m.name + ".weight_scale")), ref_scales) << m.name;
    ASSERT_EQ(decoded, ref) << m.name;
    // fake-quant: the same values, stored as bf16 (exact: bf16 arithmetic throughout).
    EXPECT_EQ(fake.get(weight).dtype, DType::BF16);
    EXPECT_EQ(floats(fake.get(weight)), ref) << m.name;
    ++checked;
  }
  EXPECT_EQ(checked, 14);  // 7 projections x 2 layers; lm_head ignored
  EXPECT_EQ(e.summary.modules_quantized, 14);
  EXPECT_EQ(e.summary.modules_not_quantized, 1);
  EXPECT_LT(e.summary.quantized_bytes_after, e.summary.quantized_bytes_before);
}

INSTANTIATE_TEST_SUITE_P(Presets, RoundTrip,
                         ::testing::Values("W8A16", "W4A16", "W4A16_ASYM", "W8A8", "FP8", "FP8_DYNAMIC",
                                           "W4A8", "W2A16", "W3A16", "int8_per_tensor_symmetric",
                                           "fp8_e4m3_per_channel_symmetric",
                                           "fp8_e5m2_per_tensor_symmetric"));

TEST(Export, E5m2WeightsUseTheLowbitExtension) {
  TempDir tmp("export_e5m2");
  testing::write_tiny_model(tmp.path() / "model", golden_shape());
  QuantRecipe recipe;
  recipe.groups.emplace_back("group_0", preset_scheme("fp8_e5m2_per_channel_symmetric", {"Linear"}));
  export_case(tmp.path() / "model", tmp.path() / "out", recipe);
  Checkpoint ckpt(tmp.path() / "out");
  EXPECT_EQ(ckpt.get("model.layers.0.mlp.up_proj.weight").dtype, DType::F8_E5M2);
  const json q = json::parse(read_file(tmp.path() / "out" / "config.json"))["quantization_config"];
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["lowbit_fp8_format"], "e5m2");
}

TEST(Export, SideFilesAreCopied) {
  TempDir tmp("export_side");
  testing::write_tiny_model(tmp.path() / "model", golden_shape());
  write_file_atomic(tmp.path() / "model" / "generation_config.json", "{\"bos_token_id\": 1}");
  write_file_atomic(tmp.path() / "model" / "tokenizer_config.json", "{}");
  write_file_atomic(tmp.path() / "model" / "train.log", "not copied");
  QuantRecipe recipe;
  recipe.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
  export_case(tmp.path() / "model", tmp.path() / "out", recipe);
  EXPECT_EQ(read_file(tmp.path() / "out" / "generation_config.json"), "{\"bos_token_id\": 1}");
  EXPECT_TRUE(fs::exists(tmp.path() / "out" / "tokenizer_config.json"));
  EXPECT_FALSE(fs::exists(tmp.path() / "out" / "train.log"));
}

TEST(Export, ErrorsLeaveNoFolderAndExistingOutputNeedsOverwrite) {
  TempDir tmp("export_atomic");
  testing::write_tiny_model(tmp.path() / "model", golden_shape(/*tie=*/true));
  auto model = Model::open(tmp.path() / "model");
  const auto entries = [&] {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(tmp.path())) out.insert(e.path().filename().string());
    return out;
  };
  const std::set<std::string> before = entries();

  // A quantization method that fails after the output folder was staged and its first module written.
  QuantRecipe w8;
  w8.groups.emplace_back("group_0", preset_scheme("W8A16", {"Linear"}));
  const QuantPlan w8_plan = resolve_plan(w8, model_modules(*model));
  ExportOptions options;
  options.source = [&](const ModelSink& sink) {
    model->for_each_linear([&](const LinearModule& m) {
      ModuleQuantization q = quantize_module_rtn(m, *w8_plan.scheme_for(m.name));
      sink.module(q);
      fail("the method failed after {}", m.name);
    });
  };
  try {
    export_model(*model, w8_plan, tmp.path() / "out", options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the method failed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(entries(), before);  // neither the output nor a temporary folder is left
  options.source = nullptr;

  // Static input scales without calibration.
  QuantRecipe fp8;
  fp8.groups.emplace_back("group_0", preset_scheme("FP8", {"Linear"}));
  EXPECT_THROW(export_model(*model, resolve_plan(fp8, model_modules(*model)), tmp.path() / "out", options),
               Error);
  EXPECT_EQ(entries(), before);

  // Incompatible forced format.
  QuantRecipe w4;
  w4.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
  const QuantPlan plan = resolve_plan(w4, model_modules(*model));
  options.format = ExportFormat::FloatQuantized;
  EXPECT_THROW(export_model(*model, plan, tmp.path() / "out", options), Error);
  EXPECT_EQ(entries(), before);

  options.format = ExportFormat::Auto;
  export_model(*model, plan, tmp.path() / "out", options);
  ASSERT_TRUE(fs::exists(tmp.path() / "out" / "model.safetensors"));
  write_file_atomic(tmp.path() / "out" / "marker", "x");
  EXPECT_THROW(export_model(*model, plan, tmp.path() / "out", options), Error);  // exists
  EXPECT_TRUE(fs::exists(tmp.path() / "out" / "marker"));
  options.overwrite = true;
  export_model(*model, plan, tmp.path() / "out", options);
  EXPECT_FALSE(fs::exists(tmp.path() / "out" / "marker"));
  EXPECT_TRUE(fs::exists(tmp.path() / "out" / "model.safetensors"));
}

TEST(Export, FormatNames) {
  EXPECT_EQ(parse_export_format("pack-quantized"), ExportFormat::PackQuantized);
  EXPECT_EQ(to_string(parse_export_format("fake-quant")), "fake-quant");
  try {
    parse_export_format("gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("naive-quantized"), std::string::npos);
  }
}

}  // namespace
}  // namespace lowbit

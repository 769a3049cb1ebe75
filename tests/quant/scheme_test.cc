// Presets, QuantArgs / QuantScheme / QuantConfig JSON against what compressed-tensors produces
// (tests/fixtures/quant/presets_golden.json, written by tools/reference/quant_golden.py).
#include <gtest/gtest.h>

#include "golden.h"
#include "quant/plan.h"
#include "quant/presets.h"
#include "quant/recipe.h"
#include "quant/scheme.h"
#include "util/error.h"

namespace lowbit {
namespace {

using nlohmann::json;

const json& golden() {
  static const json g = testing::load_quant_golden("presets_golden.json");
  return g;
}

std::vector<ModuleInfo> golden_modules() {
  const json g = testing::load_quant_golden("match_golden.json");
  std::vector<ModuleInfo> out;
  for (const auto& m : g["modules"]) {
    out.push_back({m["name"], m["types"].get<std::vector<std::string>>(),
                   m["weight_shape"].get<std::vector<int64_t>>()});
  }
  return out;
}

TEST(Presets, EveryLowbitPresetMatchesCompressedTensors) {
  int compared = 0;
  for (const std::string& name : preset_names()) {
    if (!golden()["schemes"].contains(name)) {
      EXPECT_NE(name.find("_symmetric"), std::string::npos)
          << name << " is neither compressed-tensors nor NxD";
      continue;
    }
    EXPECT_EQ(to_json(preset_scheme(name, {"Linear"})), golden()["schemes"][name]) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 23);  // all of PRESET_SCHEMES except FP8_BLOCK and the fp4/fp6/mx presets, each once
}

TEST(Presets, CoreNamesHaveTheExpectedMeaning) {
  const QuantScheme w8a8 = preset_scheme("w8a8", {"Linear"});  // case-insensitive
  EXPECT_EQ(describe(*w8a8.weights), "int8 sym channel static");
  EXPECT_EQ(describe(*w8a8.input_activations), "int8 sym token dynamic");
  EXPECT_EQ(preset_scheme("INT8", {"Linear"}), w8a8);
  EXPECT_EQ(describe(*preset_scheme("FP8", {"Linear"}).input_activations),
            "fp8_e4m3 sym tensor static observer=static_minmax");
  EXPECT_EQ(describe(*preset_scheme("FP8_DYNAMIC", {"Linear"}).weights), "fp8_e4m3 sym channel static");
  EXPECT_EQ(describe(*preset_scheme("W4A16_ASYM", {"Linear"}).weights), "int4 asym group128 static");
  const QuantScheme e5m2 = preset_scheme("fp8_e5m2_per_channel_symmetric", {"Linear"});
  EXPECT_EQ(describe(*e5m2.weights), "fp8_e5m2 sym channel static");
  EXPECT_FALSE(e5m2.input_activations);
  EXPECT_EQ(to_json(*e5m2.weights)["lowbit_fp8_format"], "e5m2");
  EXPECT_EQ(describe(*preset_scheme("int8_per_tensor_symmetric", {"Linear"}).weights),
            "int8 sym tensor static");
}

TEST(Presets, UnknownNameListsTheValidOnes) {
  try {
    preset_scheme("W4A17", {"Linear"});
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown quantization scheme 'W4A17'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("W4A16_ASYM"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fp8_e5m2_per_tensor_symmetric"), std::string::npos) << msg;
  }
  try {
    preset_scheme("NVFP4", {"Linear"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot produce"), std::string::npos) << e.what();
  }
}

TEST(Presets, GroupSizeOverride) {
  QuantScheme s = preset_scheme("W4A16", {"Linear"});
  override_group_size(s, 32, "test");
  EXPECT_EQ(s.weights->group_size, 32);
  override_group_size(s, -1, "test");
  EXPECT_EQ(s.weights->strategy, QuantStrategy::Channel);
  EXPECT_FALSE(s.weights->group_size);
  EXPECT_THROW(override_group_size(s, 0, "test"), Error);
  EXPECT_THROW(override_group_size(s, -2, "test"), Error);
  QuantScheme none = preset_scheme("UNQUANTIZED", {"Linear"});
  EXPECT_THROW(override_group_size(none, 64, "test"), Error);
}

TEST(SchemeJson, EveryCompressedTensorsPresetRoundTrips) {
  // Including the ones lowbit cannot quantize: reading and writing configs must still be lossless.
  for (const auto& [name, j] : golden()["schemes"].items()) {
    EXPECT_EQ(to_json(quant_scheme_from_json(j, name)), j) << name;
  }
}

TEST(SchemeJson, ArgsParsingFollowsCompressedTensors) {
  // Strategy inferred from group_size; enums case-insensitive; "static" actorder is "weight".
  QuantArgs a =
      quant_args_from_json(json::parse(R"({"num_bits": 4, "group_size": 128, "type": "INT"})"), "t");
  EXPECT_EQ(a.strategy, QuantStrategy::Group);
  a = quant_args_from_json(json::parse(R"({"group_size": -1})"), "t");
  EXPECT_EQ(a.strategy, QuantStrategy::Channel);
  EXPECT_EQ(to_json(a)["group_size"], -1);
  a = quant_args_from_json(
      json::parse(R"({"num_bits": 4, "actorder": "static", "strategy": "group", "group_size": 32})"), "t");
  EXPECT_EQ(to_json(a)["actorder"], "weight");
  a = quant_args_from_json(json::parse(R"({"symmetric": false, "zp_dtype": "int8"})"), "t");
  EXPECT_EQ(to_json(a)["zp_dtype"], "torch.int8");
  a = quant_args_from_json(json::parse(R"({"symmetric": true, "zp_dtype": "int8"})"), "t");
  EXPECT_FALSE(to_json(a).contains("zp_dtype"));  // serialized as None, then omitted

  EXPECT_THROW(quant_args_from_json(json::parse(R"({"num_bits": 8, "colour": 1})"), "t"), Error);
  EXPECT_THROW(quant_args_from_json(json::parse(R"({"strategy": "token"})"), "t"), Error);  // static token
  EXPECT_THROW(quant_args_from_json(json::parse(R"({"strategy": "group"})"), "t"), Error);  // no group_size
  EXPECT_THROW(quant_args_from_json(json::parse(R"({"group_size": 64, "strategy": "channel"})"), "t"), Error);
  EXPECT_THROW(quant_args_from_json(json::parse(R"({"actorder": true})"), "t"), Error);
  EXPECT_THROW(quant_args_from_json(json::parse(R"({"num_bits": "8"})"), "t"), Error);
  EXPECT_THROW(quant_args_from_json(json::parse(R"({"type": "fixed"})"), "t"), Error);
}

// The whole quantization_config block, through lowbit's own planning path, against the one
// compressed-tensors' ModelCompressor wrote for the same model, recipe and ignore list.
TEST(SchemeJson, ExportedConfigMatchesModelCompressor) {
  const std::vector<ModuleInfo> modules = golden_modules();
  const auto plan_for = [&](const QuantRecipe& r) { return resolve_plan(r, modules); };
  int compared = 0;
  for (const auto& [name, expected] : golden()["exports"].items()) {
    QuantRecipe r;
    r.ignore = {"lm_head"};
    if (name == "W4A16_g64") {
      r.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
      override_group_size(r, 64);
    } else if (name == "mixed") {
      r.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
      r.groups.emplace_back("group_1", preset_scheme("W8A16", {"re:.*down_proj$"}));
      r.ignore.push_back("re:model\\.layers\\.0\\.self_attn\\..*");
    } else if (name == "W8A8_fp8kv") {
      r.groups.emplace_back("group_0", preset_scheme("W8A8", {"Linear"}));
      r.kv_cache_scheme = kv_cache_args("fp8");
    } else {
      r.groups.emplace_back("group_0", preset_scheme(name, {"Linear"}));
    }
    const QuantConfig config = make_quantization_config(plan_for(r), modules);
    EXPECT_EQ(to_json(config), expected["quantization_config"])
        << name << "\nours: " << to_json(config).dump()
        << "\nwant: " << expected["quantization_config"].dump();
    // And the block parses back to the same config.
    EXPECT_EQ(to_json(quant_config_from_json(expected["quantization_config"], name)),
              expected["quantization_config"]);
    ++compared;
  }
  EXPECT_EQ(compared, 12);
}

TEST(SchemeJson, ConfigGroupsMayNamePresets) {
  const json j = json::parse(R"({"config_groups": {"W4A16": ["Linear"]}, "ignore": ["lm_head"]})");
  const QuantConfig c = quant_config_from_json(j, "config.json");
  ASSERT_EQ(c.config_groups.size(), 1u);
  EXPECT_EQ(c.config_groups[0].second, preset_scheme("W4A16", {"Linear"}));
  EXPECT_EQ(c.format, "fakequant");
  EXPECT_EQ(c.quantization_status, "initialized");
  EXPECT_THROW(quant_config_from_json(json::parse(R"({"ignore": []})"), "config.json"), Error);
}

}  // namespace
}  // namespace lowbit

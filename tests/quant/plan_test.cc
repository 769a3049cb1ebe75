// Target / ignore resolution against compressed-tensors' own decisions (match_golden.json), plus lowbit's
// additions: the lm_head default, warnings for patterns that match nothing, group size checks.
#include "quant/plan.h"

#include <gtest/gtest.h>

#include <map>

#include "golden.h"
#include "quant/presets.h"
#include "util/error.h"

namespace lowbit {
namespace {

using nlohmann::json;

const json& golden() {
  static const json g = testing::load_quant_golden("match_golden.json");
  return g;
}

std::vector<ModuleInfo> golden_modules() {
  std::vector<ModuleInfo> out;
  for (const auto& m : golden()["modules"]) {
    out.push_back({m["name"], m["types"].get<std::vector<std::string>>(),
                   m["weight_shape"].get<std::vector<int64_t>>()});
  }
  return out;
}

QuantRecipe recipe_from_golden(const json& c) {
  QuantRecipe r;
  for (const auto& g : c["groups"]) {
    r.groups.emplace_back(
        fmt::format("group_{}", r.groups.size()),
        preset_scheme(g["preset"].get<std::string>(), g["targets"].get<std::vector<std::string>>()));
  }
  r.ignore = c["ignore"].get<std::vector<std::string>>();
  r.ignore_lm_head = false;  // compressed-tensors has no such default
  return r;
}

std::map<std::string, std::string> quantized(const QuantPlan& plan) {
  std::map<std::string, std::string> out;
  for (const PlannedModule& m : plan.modules) {
    if (m.decision == ModuleDecision::Quantized)
      out[m.name] = plan.recipe.groups[static_cast<size_t>(m.group)].first;
  }
  return out;
}

TEST(Targets, NameMatchingIsPythonReMatch) {
  TargetMatcher matcher;
  for (const auto& [pattern, expected] : golden()["name_matches"].items()) {
    std::vector<std::string> got;
    for (const auto& m : golden()["modules"]) {
      if (matcher.match_name(m["name"].get<std::string>(), pattern)) got.push_back(m["name"]);
    }
    EXPECT_EQ(got, expected.get<std::vector<std::string>>()) << pattern;
  }
}

TEST(Targets, ClassMatching) {
  const ModuleInfo norm{"model.norm", {"LlamaRMSNorm", "Module"}, {}};
  EXPECT_TRUE(TargetMatcher::match_class(norm, "LlamaRMSNorm"));
  EXPECT_TRUE(TargetMatcher::match_class(norm, "Module"));
  EXPECT_FALSE(TargetMatcher::match_class(norm, "RMSNorm"));
  EXPECT_TRUE(TargetMatcher::match_class({"x", {"QKVParallelLinear", "LinearBase"}, {}}, "Linear"));
}

TEST(Targets, InvalidRegexNamesThePattern) {
  TargetMatcher matcher;
  try {
    matcher.match_name("lm_head", "re:model.(layers");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("re:model.(layers"), std::string::npos) << e.what();
  }
}

TEST(Plan, MatchesCompressedTensorsSelection) {
  const auto modules = golden_modules();
  int cases = 0;
  for (const auto& c : golden()["plans"]) {
    const QuantPlan plan = resolve_plan(recipe_from_golden(c), modules);
    EXPECT_EQ(quantized(plan), (c["plan"].get<std::map<std::string, std::string>>())) << c["name"];
    ++cases;
  }
  EXPECT_EQ(cases, 9);
}

TEST(Plan, WarnsForPatternsThatMatchNothing) {
  const auto modules = golden_modules();
  for (const auto& c : golden()["plans"]) {
    const QuantPlan plan = resolve_plan(recipe_from_golden(c), modules);
    const std::string all = fmt::format("{}", fmt::join(plan.warnings, "\n"));
    if (c["name"] == "unmatched_target") {
      EXPECT_NE(all.find("target 're:.*does_not_exist' (group_0) matches no module"), std::string::npos)
          << all;
      EXPECT_NE(all.find("ignore entry 're:nothing.*' matches no module"), std::string::npos) << all;
    } else {
      // compressed-tensors would warn about shadowed targets (e.g. re:.*down_proj$ behind Linear); we don't.
      EXPECT_TRUE(plan.warnings.empty()) << c["name"] << ": " << all;
    }
  }
}

TEST(Plan, LmHeadIsIgnoredByDefault) {
  const auto modules = golden_modules();
  QuantRecipe r;
  r.groups.emplace_back("group_0", preset_scheme("W8A16", {"Linear"}));
  QuantPlan plan = resolve_plan(r, modules);
  EXPECT_EQ(plan.scheme_for("lm_head"), nullptr);
  EXPECT_NE(plan.scheme_for("model.layers.1.mlp.up_proj"), nullptr);
  EXPECT_EQ(plan.count(ModuleDecision::Quantized), 14);
  EXPECT_EQ(plan.count(ModuleDecision::Ignored), 1);
  EXPECT_EQ(plan.modules.back().reason, "default: lm_head");
  // The embedding is a quantizable type, but no target selects it.
  EXPECT_EQ(plan.count(ModuleDecision::NotTargeted), 1);

  r.ignore_lm_head = false;  // --include-lm-head
  EXPECT_NE(resolve_plan(r, modules).scheme_for("lm_head"), nullptr);
  r.ignore_lm_head = true;  // naming it in a target also includes it
  r.groups.emplace_back("group_1", preset_scheme("W8A8", {"lm_head"}));
  plan = resolve_plan(r, modules);
  ASSERT_NE(plan.scheme_for("lm_head"), nullptr);
  EXPECT_EQ(*plan.scheme_for("lm_head"), r.groups[1].second);
}

TEST(Plan, GroupSizeMustDivideTheInputDimension) {
  std::vector<ModuleInfo> modules = {{"model.layers.0.mlp.down_proj", {"Linear"}, {4096, 11000}},
                                     {"model.layers.0.mlp.up_proj", {"Linear"}, {11000, 4096}}};
  QuantRecipe r;
  r.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
  try {
    resolve_plan(r, modules);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.layers.0.mlp.down_proj (weight shape [4096, 11000])"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("group size 128 does not divide the input dimension 11000"), std::string::npos) << msg;
  }
  r.ignore = {"re:.*down_proj"};  // ignoring the module makes the plan valid
  EXPECT_EQ(resolve_plan(r, modules).count(ModuleDecision::Quantized), 1);
}

TEST(Plan, TableAndJson) {
  QuantRecipe r;
  r.groups.emplace_back("group_0", preset_scheme("W4A16", {"Linear"}));
  r.groups.emplace_back("group_1", preset_scheme("W8A16", {"re:.*down_proj$"}));
  r.ignore = {"re:.*layers\\.0\\..*", "re:.*nothing"};
  r.source = "test";
  const QuantPlan plan = resolve_plan(r, golden_modules());
  const std::string table = format_plan_table(plan);
  EXPECT_NE(table.find("model.layers.1.mlp.down_proj"), std::string::npos) << table;
  EXPECT_NE(table.find("group_1 (target: re:.*down_proj$)"), std::string::npos) << table;
  EXPECT_NE(table.find("ignore: re:.*layers\\.0\\..*"), std::string::npos) << table;
  EXPECT_NE(table.find("7 quantized, 8 ignored, 1 not targeted; group_0: 6; group_1: 1"), std::string::npos)
      << table;
  EXPECT_NE(table.find("warning: ignore entry 're:.*nothing' matches no module"), std::string::npos) << table;
  const json j = plan_to_json(plan);
  EXPECT_EQ(j["modules"].size(), plan.modules.size());
  EXPECT_EQ(j["groups"][1]["scheme"]["weights"]["num_bits"], 8);
  EXPECT_EQ(j["warnings"].size(), 1u);
}

TEST(Plan, InferredFormats) {
  EXPECT_EQ(infer_format(preset_scheme("W4A16", {"Linear"})), "pack-quantized");
  EXPECT_EQ(infer_format(preset_scheme("W8A16", {"Linear"})), "pack-quantized");
  EXPECT_EQ(infer_format(preset_scheme("W8A8", {"Linear"})), "int-quantized");
  EXPECT_EQ(infer_format(preset_scheme("FP8", {"Linear"})), "float-quantized");
  EXPECT_EQ(infer_format(preset_scheme("FP8_DYNAMIC", {"Linear"})), "float-quantized");
  EXPECT_EQ(infer_format(preset_scheme("fp8_e4m3_per_channel_symmetric", {"Linear"})), "naive-quantized");
  EXPECT_EQ(infer_format(preset_scheme("int8_per_tensor_symmetric", {"Linear"})), "pack-quantized");
  EXPECT_EQ(infer_format(preset_scheme("UNQUANTIZED", {"Linear"})), "dense");
}

}  // namespace
}  // namespace lowbit

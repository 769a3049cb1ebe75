// llm-compressor YAML recipes and CLI flags must produce the same plan.
#include "quant/recipe.h"

#include <gtest/gtest.h>

#include "golden.h"
#include "quant/presets.h"
#include "util/error.h"

namespace lowbit {
namespace {

using nlohmann::json;

std::vector<ModuleInfo> golden_modules() {
  const json g = testing::load_quant_golden("match_golden.json");
  std::vector<ModuleInfo> out;
  for (const auto& m : g["modules"]) {
    out.push_back({m["name"], m["types"].get<std::vector<std::string>>(),
                   m["weight_shape"].get<std::vector<int64_t>>()});
  }
  return out;
}

// Plans compared without their provenance.
json plan_json(QuantRecipe r) {
  r.source.clear();
  return plan_to_json(resolve_plan(r, golden_modules()));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Recipe, YamlAndCliGiveTheSamePlan) {
  CliQuantOptions cli;
  cli.scheme = "W4A16";
  cli.ignore = {"re:.*layers\\.0\\..*"};
  cli.group_size = 64;
  const QuantRecipe from_cli = recipe_from_cli(cli);
  EXPECT_EQ(from_cli.source, "--scheme W4A16 --group-size 64 --ignore 're:.*layers\\.0\\..*'");

  const QuantRecipe from_yaml = parse_recipe_yaml(R"(
quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: ['re:.*layers\.0\..*']
      targets: [Linear]
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 64, dynamic: false}
)",
                                                  "r.yaml");
  EXPECT_EQ(from_yaml.source, "r.yaml");
  EXPECT_EQ(plan_json(from_yaml), plan_json(from_cli));

  // The preset form plus a --group-size on top gives the same again.
  QuantRecipe preset_yaml = parse_recipe_yaml(R"(
default_stage:
  default_modifiers:
    QuantizationModifier: {scheme: W4A16, ignore: ['re:.*layers\.0\..*']}
)",
                                              "r2.yaml");
  override_group_size(preset_yaml, 64);
  EXPECT_EQ(plan_json(preset_yaml), plan_json(from_cli));
}

TEST(Recipe, SchemeForms) {
  // A mapping of presets to targets: mixed precision.
  QuantRecipe r = parse_recipe_yaml(R"(
QuantizationModifier:
  scheme:
    W4A16: [Linear]
    W8A16: 're:.*down_proj$'
  kv_cache_scheme: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
)",
                                    "mixed.yaml");
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[1].first, "group_1");
  EXPECT_EQ(r.groups[1].second, preset_scheme("W8A16", {"re:.*down_proj$"}));
  ASSERT_TRUE(r.kv_cache_scheme);
  EXPECT_EQ(*r.kv_cache_scheme, kv_cache_args("fp8"));
  const QuantPlan plan = resolve_plan(r, golden_modules());
  EXPECT_EQ(*plan.scheme_for("model.layers.0.mlp.down_proj"), r.groups[1].second);
  EXPECT_EQ(*plan.scheme_for("model.layers.0.mlp.up_proj"), r.groups[0].second);

  // A scheme body with the modifier's targets.
  r = parse_recipe_yaml(R"(
stage:
  mods:
    QuantizationModifier:
      targets: Linear
      scheme:
        weights: {num_bits: 8, type: int, strategy: channel, symmetric: true}
        input_activations: {num_bits: 8, type: int, strategy: token, dynamic: true, symmetric: true}
)",
                        "body.yaml");
  ASSERT_EQ(r.groups.size(), 1u);
  EXPECT_EQ(r.groups[0].second, preset_scheme("W8A8", {"Linear"}));
}

TEST(Recipe, MethodAndOtherModifiers) {
  const QuantRecipe r = parse_recipe_yaml(R"(
sq_stage:
  sq_modifiers:
    SmoothQuantModifier: {smoothing_strength: 0.8}
quant_stage:
  quant_modifiers:
    GPTQModifier:
      scheme: W4A16
      ignore: [lm_head]
      block_size: 128
      dampening_frac: 0.01
      actorder: weight
)",
                                          "gptq.yaml");
  // The SmoothQuant stage chains in front of GPTQ: the standard W8A8 recipe shape.
  EXPECT_EQ(r.method, "smoothquant+gptq");
  EXPECT_EQ(r.method_args["block_size"], 128);
  EXPECT_EQ(r.method_args["dampening_frac"], 0.01);
  EXPECT_EQ(r.method_args["actorder"], "weight");
  EXPECT_EQ(r.method_args["smoothing_strength"], 0.8);
  EXPECT_TRUE(r.notes.empty());
}

TEST(Recipe, ModifierChains) {
  const QuantRecipe awq = parse_recipe_yaml(R"(
awq_stage: {AWQModifier: {scheme: W4A16, duo_scaling: false, n_grid: 10}}
gptq_stage: {GPTQModifier: {scheme: W4A16_ASYM, ignore: [lm_head, 're:.*layers\.0\..*'], actorder: null}}
)",
                                            "awq_gptq.yaml");
  EXPECT_EQ(awq.method, "awq+gptq");
  EXPECT_EQ(awq.groups[0].second, preset_scheme("W4A16_ASYM", {"Linear"}));  // GPTQ's scheme
  EXPECT_EQ(awq.method_args["duo_scaling"], false);
  EXPECT_EQ(awq.method_args["n_grid"], 10);
  EXPECT_TRUE(awq.method_args["actorder"].is_null());
  EXPECT_EQ(awq.ignore.size(), 2u);
  const QuantRecipe sq = parse_recipe_yaml(
      "SmoothQuantModifier: {smoothing_strength: 0.5, mappings: [[[q], norm]]}\n"
      "QuantizationModifier: {scheme: W8A8}\n",
      "sq.yaml");
  EXPECT_EQ(sq.method, "smoothquant+rtn");
  ASSERT_EQ(sq.notes.size(), 1u);  // custom mappings are reported, not silently used
  EXPECT_NE(sq.notes[0].find("mappings"), std::string::npos);
  EXPECT_NE(error_of([] {
              parse_recipe_yaml(
                  "SmoothQuantModifier: {}\nAWQModifier: {scheme: W4A16}\nGPTQModifier: {scheme: "
                  "W4A16}\n",
                  "bad.yaml");
            }).find("pick one"),
            std::string::npos);
}

TEST(Recipe, QuotedScalarsStayStrings) {
  const QuantRecipe r = parse_recipe_yaml(R"(
QuantizationModifier: {scheme: W8A16, ignore: ['123', "true", lm_head], include_lm_head: false})",
                                          "q.yaml");
  EXPECT_EQ(r.ignore, (std::vector<std::string>{"123", "true", "lm_head"}));
}

TEST(Recipe, BadInput) {
  EXPECT_NE(error_of([] {
              parse_recipe_yaml("QuantizationModifier: {scheme: W4A17}", "a.yaml");
            }).find("unknown quantization scheme 'W4A17'; valid schemes: W4A16, W4A16_ASYM"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { parse_recipe_yaml("foo: {bar: 1}", "b.yaml"); }).find("b.yaml: no QuantizationModifier"),
      std::string::npos);
  EXPECT_NE(error_of([] {
              parse_recipe_yaml(
                  "QuantizationModifier: {scheme: W4A16, config_groups: {g: {targets: [Linear]}}}", "c.yaml");
            }).find("either 'scheme' or 'config_groups'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_recipe_yaml("a:\n  b: [1, 2\n  c: 3\n", "d.yaml");
            }).find("d.yaml: invalid YAML at line"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_recipe_yaml(
                  "s1: {QuantizationModifier: {scheme: W8A8}}\ns2: {GPTQModifier: {scheme: W4A16}}",
                  "e.yaml");
            }).find("one quantization modifier"),
            std::string::npos);
  const std::string bad_field = error_of([] {
    parse_recipe_yaml(
        "QuantizationModifier:\n  config_groups:\n    g0:\n      targets: [Linear]\n      weights: "
        "{num_bits: 4, colour: red}\n",
        "f.yaml");
  });
  EXPECT_NE(bad_field.find("f.yaml: QuantizationModifier.config_groups.g0.weights: unknown field 'colour'"),
            std::string::npos)
      << bad_field;
  EXPECT_NE(error_of([] { kv_cache_args("fp4"); }).find("unknown KV cache scheme 'fp4'"), std::string::npos);
  CliQuantOptions none;
  EXPECT_NE(error_of([&] { recipe_from_cli(none); }).find("--scheme is required"), std::string::npos);
}

}  // namespace
}  // namespace lowbit

// Calibration of static input and KV-cache scales on the reference model (skipped without ../shared): a
// short pass, checked for coverage (every module, every layer's keys and values, the token count) and
// against an invariant that does not depend on the observers: q/k/v read the same normalized hidden
// state, so their input scales must be equal (gate/up likewise). The scale arithmetic itself is the
// observer's, tested in tests/quant against compressed-tensors.
#include <gtest/gtest.h>

#include <filesystem>

#include "calib/static_scales.h"
#include "quant/model_quantizer.h"
#include "quant/presets.h"
#include "quant/recipe.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

TEST(Calibration, ReferenceModelFp8StaticAndKvScales) {
  const fs::path dir = fs::path(LOWBIT_SHARED_DIR) / "models" / "lowbit-ref-100m";
  const fs::path calib = fs::path(LOWBIT_SHARED_DIR) / "data" / "calib" / "pile_like_calibration.txt";
  if (!fs::exists(dir / "config.json") || !fs::exists(calib)) GTEST_SKIP() << "no reference model";
  auto model = Model::open(dir);
  const Tokenizer tokenizer = Tokenizer::load(dir);
  QuantRecipe recipe;
  recipe.groups.emplace_back("group_0", preset_scheme("FP8", {"Linear"}));
  recipe.kv_cache_scheme = kv_cache_args("fp8");
  const QuantPlan plan = resolve_plan(recipe, model_modules(*model));
  ASSERT_TRUE(needs_calibration(plan));
  CalibDataOptions options;
  options.files = {calib};
  options.num_samples = 2;
  options.seq_len = 64;
  const Calibration cal = calibrate(*model, plan, load_calibration_data(tokenizer, options));
  EXPECT_EQ(cal.samples, 2);
  EXPECT_EQ(cal.tokens, 128);
  EXPECT_EQ(cal.inputs.size(), 84u);
  EXPECT_EQ(cal.keys.size(), 12u);
  EXPECT_EQ(cal.values.size(), 12u);
  for (int l = 0; l < 12; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const float q = cal.inputs.at(p + "self_attn.q_proj").scale;
    EXPECT_GT(q, 0.0f);
    EXPECT_EQ(cal.inputs.at(p + "self_attn.k_proj").scale, q);
    EXPECT_EQ(cal.inputs.at(p + "self_attn.v_proj").scale, q);
    EXPECT_EQ(cal.inputs.at(p + "mlp.gate_proj").scale, cal.inputs.at(p + "mlp.up_proj").scale);
    EXPECT_GT(cal.keys.at(p + "self_attn").scale, 0.0f);
    EXPECT_GT(cal.values.at(p + "self_attn").scale, 0.0f);
  }
}

TEST(Calibration, DynamicSchemesNeedNone) {
  QuantPlan plan;
  plan.recipe.groups.emplace_back("group_0", preset_scheme("W8A8", {"Linear"}));
  plan.modules.push_back(
      {"model.layers.0.mlp.up_proj", "Linear", {64, 32}, ModuleDecision::Quantized, 0, "Linear"});
  EXPECT_FALSE(needs_calibration(plan));
  plan.recipe.kv_cache_scheme = kv_cache_args("int8");
  EXPECT_TRUE(needs_calibration(plan));
}

}  // namespace
}  // namespace lowbit

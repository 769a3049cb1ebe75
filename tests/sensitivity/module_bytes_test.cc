// The byte counts the selector budgets with equal what the export writer actually writes, for every layout
// (pack-quantized symmetric / asymmetric group and channel, int-quantized, naive-quantized, float-quantized).
#include <gtest/gtest.h>

#include "export/compressed_tensors_writer.h"
#include "quant/model_quantizer.h"
#include "quant/presets.h"
#include "runtime/tiny_model.h"
#include "sensitivity/module_bytes.h"
#include "sensitivity/selection.h"

namespace lowbit::sensitivity {
namespace {

using testing::TempDir;

struct BytesCase {
  const char* preset;
  int group;  // 0: the preset's
  ExportFormat format;
};

class ModuleBytesTest : public ::testing::TestWithParam<BytesCase> {};

TEST_P(ModuleBytesTest, EqualExportedBytes) {
  const BytesCase& bc = GetParam();
  TempDir tmp("sens_bytes");
  testing::TinySpec spec;
  spec.hidden = 32;
  spec.intermediate = 48;
  spec.dtype = DType::BF16;
  testing::write_tiny_model(tmp.path() / "model", spec);
  const std::unique_ptr<Model> model = Model::open(tmp.path() / "model");

  QuantRecipe r;
  QuantScheme s = preset_scheme(bc.preset, {"Linear"});
  if (bc.group != 0) override_group_size(s, bc.group, "test");
  r.groups.emplace_back("group_0", s);
  r.ignore = {"model.layers.1.mlp.up_proj"};
  const QuantPlan plan = resolve_plan(r, model_modules(*model));
  ExportOptions options;
  options.format = bc.format;
  const std::string format = bc.format == ExportFormat::Auto ? "" : std::string(to_string(bc.format));

  uint64_t modules = 0;
  for (const PlannedModule& pm : plan.modules)
    if (pm.decision == ModuleDecision::Quantized)
      modules += quantized_bytes(*plan.scheme_for(pm.name), pm.weight_shape[0], pm.weight_shape[1],
                                 DType::BF16, format);
  const uint64_t planned = planned_export_bytes(*model, plan, format);
  const ExportSummary summary = export_model(*model, plan, tmp.path() / "out", options);
  EXPECT_EQ(modules, summary.quantized_bytes_after);
  EXPECT_EQ(planned, summary.total_bytes_after);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ModuleBytesTest,
                         ::testing::Values(BytesCase{"W4A16", 16, ExportFormat::Auto},
                                           BytesCase{"W4A16_ASYM", 16, ExportFormat::Auto},
                                           BytesCase{"W4A16_ASYM", -1, ExportFormat::Auto},
                                           BytesCase{"W8A16", 16, ExportFormat::Auto},
                                           BytesCase{"W8A8", 0, ExportFormat::Auto},
                                           BytesCase{"int8_per_tensor_symmetric", 0, ExportFormat::Auto},
                                           BytesCase{"W4A16_ASYM", 16, ExportFormat::NaiveQuantized},
                                           BytesCase{"FP8_DYNAMIC", 0, ExportFormat::Auto}));

TEST(ModuleBytes, Dense) {
  EXPECT_EQ(dense_bytes(3, 5, DType::BF16), 30u);
  EXPECT_EQ(dense_bytes(3, 5, DType::F32), 60u);
}

TEST(ModuleBytes, HandCounted) {
  // W4A16 g16 on a bf16 [8 x 32] weight: 8 x 32 x 4 bits = 8 rows x 4 int32 words = 128 bytes of codes,
  // 8 x 2 bf16 scales = 32 bytes, weight_shape 16 bytes.
  QuantScheme s = preset_scheme("W4A16", {"Linear"});
  override_group_size(s, 16, "test");
  EXPECT_EQ(quantized_bytes(s, 8, 32, DType::BF16), 128u + 32u + 16u);
}

}  // namespace
}  // namespace lowbit::sensitivity

// lowbit plan MODEL --scheme W4A16 | --recipe r.yaml: which module gets which scheme, and the
// quantization_config `lowbit quantize` would write.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/recipe_options.h"
#include "export/compressed_tensors_writer.h"

namespace lowbit::cli {
namespace {

struct PlanArgs {
  CommonOptions common;
  RecipeFlags recipe;
  std::string model;
  std::string format = "auto";
};

int run_plan(const PlanArgs& args) {
  const std::unique_ptr<Model> model = open_model_for_quantization(args.model);
  const QuantRecipe recipe = recipe_from_flags(args.recipe);
  const QuantPlan plan = plan_for(*model, recipe);
  const ExportFormat format = parse_export_format(args.format);
  const nlohmann::json config = format == ExportFormat::FakeQuant
                                    ? nlohmann::json(nullptr)
                                    : export_quantization_config(*model, plan, format);
  if (args.common.json) {
    nlohmann::json out = plan_to_json(plan);
    out["quantization_config"] = config;
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("{}", format_plan_table(plan));
    if (!config.is_null()) fmt::print("\nquantization_config:\n{}\n", config.dump(2));
  }
  return 0;
}

}  // namespace

void register_plan(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Print the quantization plan a scheme or recipe resolves to");
  cmd->add_option("model", args->model, "Model folder")->required()->check(CLI::ExistingDirectory);
  add_recipe_options(cmd, args->recipe);
  cmd->add_option("--format", args->format, "Export format the printed quantization_config is for")
      ->capture_default_str();
  add_common_options(cmd, args->common);
  commands.emplace_back(cmd, [args] { return run_plan(*args); });
}

}  // namespace lowbit::cli

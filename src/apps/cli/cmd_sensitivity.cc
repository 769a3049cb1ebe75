// lowbit sensitivity MODEL --scheme SCHEME --calib FILE -o report/: which modules lose the most when
// quantized (sensitivity/scan.h), written as sensitivity.json, sensitivity.md and SVG charts
// (sensitivity/report.h). `lowbit quantize --sensitivity report/sensitivity.json --keep-sensitive N` uses it.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "apps/cli/recipe_options.h"
#include "calib/calib_data.h"
#include "sensitivity/report.h"
#include "sensitivity/scan.h"
#include "util/error.h"
#include "util/files.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace lowbit::cli {
namespace {

struct SensitivityArgs {
  CommonOptions common;
  RecipeFlags recipe;
  std::string model;
  std::string out;
  CalibFlags calib{.files = {}, .num_samples = 8, .seq_len = 512, .seed = 42};
  std::string granularity = "module";
  std::string format = "";
  bool no_end_to_end = false;
  int top = 10;
  std::string replot;  // an existing sensitivity.json: only rewrite the Markdown and charts
};

int run_sensitivity(const SensitivityArgs& args) {
  if (!args.replot.empty()) {
    const nlohmann::json report = nlohmann::json::parse(read_file(args.replot));
    if (report.value("schema", "") != "lowbit.sensitivity/1")
      fail("{} is not a sensitivity report", args.replot);
    const std::vector<std::string> files = sensitivity::write_report(args.out, report);
    fmt::print("wrote {}/{{{}}}\n", args.out, fmt::join(files, ", "));
    return 0;
  }
  if (args.model.empty() || args.calib.files.empty()) fail("lowbit sensitivity needs MODEL and --calib FILE");
  apply_threads(args.common);
  const std::unique_ptr<Model> model = open_model_for_quantization(args.model);
  const QuantRecipe recipe = recipe_from_flags(args.recipe);
  const QuantPlan plan = plan_for(*model, recipe);
  if (recipe.method != "rtn")
    fmt::print(stderr,
               "note: the scan measures each module quantized with RTN (fake-quant); --method {} is not "
               "run\n",
               recipe.method);

  const CalibDataset data = load_calibration(args.calib, args.model);

  sensitivity::ScanOptions options;
  options.granularity = sensitivity::parse_granularity(args.granularity);
  options.end_to_end = !args.no_end_to_end;
  std::unique_ptr<ProgressBar> bar;
  const sensitivity::ScanResult scan =
      sensitivity::scan_sensitivity(*model, plan, data, options, [&](const sensitivity::ScanProgress& p) {
        if (p.total == 0) return;
        if (!bar)
          bar = std::make_unique<ProgressBar>("sensitivity", static_cast<size_t>(p.total), !args.common.json);
        bar->update(static_cast<size_t>(p.done));
      });
  if (bar) bar->finish();

  sensitivity::ReportContext ctx;
  ctx.model = args.model;
  ctx.scheme = recipe.source;
  ctx.format = args.format;
  ctx.plan = &plan;
  ctx.threads = global_pool().size();
  ctx.data = &data;
  ctx.seq_len = args.calib.seq_len;
  const nlohmann::json report = sensitivity::report_json(scan, ctx);
  const std::vector<std::string> files = sensitivity::write_report(args.out, report);

  if (args.common.json) {
    fmt::print("{}\n", nlohmann::json{{"output", args.out},
                                      {"files", files},
                                      {"modules", scan.modules.size()},
                                      {"groups", scan.groups.size()},
                                      {"seconds", scan.seconds},
                                      {"base_ppl", scan.base.ppl},
                                      {"peak_rss_bytes", peak_rss_bytes()}}
                           .dump());
    return 0;
  }
  fmt::print("sensitivity of {} to {} ({} modules, granularity {})\n", args.model, recipe.source,
             scan.modules.size(), args.granularity);
  fmt::print("  calibration   {} scored positions, base ppl {:.4f}\n", scan.positions, scan.base.ppl);
  fmt::print(
      "  time          {:.1f} s (load {:.1f} s, base passes {:.1f} s, end-to-end runs {:.1f} s) on {} "
      "threads\n",
      scan.seconds, scan.load_seconds, scan.base_seconds, scan.scan_seconds, ctx.threads);
  fmt::print("  peak RSS      {:.1f} MiB\n", static_cast<double>(peak_rss_bytes()) / (1024.0 * 1024.0));
  std::vector<const sensitivity::ModuleSensitivity*> order;
  for (const auto& m : scan.modules) order.push_back(&m);
  const bool e2e = !order.empty() && order[0]->end_to_end.has_value();
  auto key = [&](const sensitivity::ModuleSensitivity* m) {
    return e2e ? m->end_to_end->kl_mean : m->output_rel_mse;
  };
  std::stable_sort(order.begin(), order.end(), [&](auto* a, auto* b) { return key(a) > key(b); });
  fmt::print("  most sensitive ({}):\n", e2e ? "end-to-end KL" : "layer-local relative output MSE");
  for (size_t i = 0; i < order.size() && static_cast<int>(i) < args.top; ++i)
    fmt::print("    {:2}  {:<40} {:.3e}\n", i + 1, order[i]->name, key(order[i]));
  for (const auto& g : scan.groups)
    fmt::print("  {:<20} KL {:.3e}  Δppl {:+.3f} %\n", g.name, g.end_to_end.kl_mean,
               100.0 * (g.end_to_end.ppl / scan.base.ppl - 1.0));
  for (const std::string& n : scan.notes) fmt::print("note: {}\n", n);
  fmt::print("  wrote         {}/{{{}}}\n", args.out, fmt::join(files, ", "));
  return 0;
}

}  // namespace

void register_sensitivity(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<SensitivityArgs>();
  CLI::App* cmd = app.add_subcommand("sensitivity",
                                     "Per-module quantization sensitivity: weight statistics, layer-local "
                                     "error and end-to-end KL / Δppl, with a report and charts");
  cmd->footer(
      "Examples:\n"
      "  lowbit sensitivity MODEL --scheme W4A16 --calib calib.txt -o report/\n"
      "  lowbit sensitivity MODEL --scheme int8_per_channel_symmetric --calib calib.txt --granularity layer "
      "-o report/\n"
      "  lowbit quantize MODEL --scheme W4A16 --sensitivity report/sensitivity.json --max-size 80000000 -o "
      "out/");
  cmd->add_option("model", args->model, "Model folder (Hugging Face, safetensors)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--output,-o", args->out, "Report folder (sensitivity.json, sensitivity.md, *.svg)")
      ->required();
  add_recipe_options(cmd, args->recipe);
  add_calibration_options(cmd, args->calib,
                          "Calibration text (required unless --replot): plain text or JSONL with a \"text\" "
                          "field (repeat for several files)");
  cmd->add_option("--granularity", args->granularity,
                  "End-to-end runs: module (each module alone), layer (each decoder layer) or type (each "
                  "module type across layers)")
      ->capture_default_str()
      ->check(CLI::IsMember({"module", "layer", "type"}));
  cmd->add_flag("--no-end-to-end", args->no_end_to_end,
                "Only weight statistics and layer-local errors (one forward pass per sample)");
  cmd->add_option(
      "--format,-f", args->format,
      "Export format the byte counts assume (pack-quantized, int-quantized, ...; default: inferred)");
  cmd->add_option("--replot", args->replot,
                  "Rewrite sensitivity.md and the charts from an existing sensitivity.json (no model run)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--top", args->top, "Modules listed on the terminal")->capture_default_str();
  add_common_options(cmd, args->common);
  commands.emplace_back(cmd, [args] { return run_sensitivity(*args); });
}

}  // namespace lowbit::cli

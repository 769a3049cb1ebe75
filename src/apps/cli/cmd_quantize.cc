// lowbit quantize MODEL --scheme W4A16 -o OUT: RTN quantization of a whole model, written as a
// compressed-tensors checkpoint (or a fake-quant bf16 folder), with a progress bar and a summary table.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "apps/cli/recipe_options.h"
#include "export/calibration.h"
#include "export/compressed_tensors_writer.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/files.h"
#include "util/progress.h"

namespace lowbit::cli {
namespace {

struct QuantizeArgs {
  CommonOptions common;
  RecipeFlags recipe;
  std::string model;
  std::string out;
  std::string format = "auto";
  std::string calib;
  int64_t calib_samples = 16;
  int64_t calib_seq_len = 512;
  bool overwrite = false;
};

std::string mib(uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

int run_quantize(const QuantizeArgs& args) {
  apply_threads(args.common);
  const auto start = std::chrono::steady_clock::now();
  const std::unique_ptr<Model> model = open_model_for_quantization(args.model);
  const QuantRecipe recipe = recipe_from_flags(args.recipe);
  if (recipe.method != "rtn")
    fail("--method {}: only rtn is implemented (GPTQ/AWQ arrive with their own issue)", recipe.method);
  const QuantPlan plan = plan_for(*model, recipe);
  ExportOptions options;
  options.format = parse_export_format(args.format);
  options.overwrite = args.overwrite;

  std::optional<Calibration> calibration;
  if (options.format != ExportFormat::FakeQuant && needs_calibration(plan)) {
    if (args.calib.empty())
      fail("{} needs static activation or KV-cache scales: pass calibration text with --calib FILE",
           recipe.source);
    const Tokenizer tokenizer = Tokenizer::load(args.model);
    const std::string text = read_file(args.calib);
    CalibrationOptions co;
    co.samples = args.calib_samples;
    co.seq_len = args.calib_seq_len;
    std::unique_ptr<ProgressBar> bar;
    calibration = calibrate(*model, plan, tokenizer, text, co, [&](int64_t done, int64_t total) {
      if (!bar)
        bar = std::make_unique<ProgressBar>("calibrate", static_cast<size_t>(total), !args.common.json);
      bar->update(static_cast<size_t>(done));
    });
    if (bar) bar->finish();
    options.calibration = &*calibration;
  }

  std::unique_ptr<ProgressBar> bar;
  const ExportSummary s = export_model(*model, plan, args.out, options, [&](const ExportProgress& p) {
    if (!bar)
      bar = std::make_unique<ProgressBar>("quantize", static_cast<size_t>(p.total), !args.common.json);
    bar->set_suffix(*p.module);
    bar->update(static_cast<size_t>(p.done));
  });
  if (bar) bar->finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const size_t rss = peak_rss_bytes();

  if (args.common.json) {
    nlohmann::json out = {{"model", args.model},
                          {"output", args.out},
                          {"recipe", recipe.source},
                          {"method", recipe.method},
                          {"format", s.format},
                          {"modules_quantized", s.modules_quantized},
                          {"modules_not_quantized", s.modules_not_quantized},
                          {"quantized_params", s.quantized_params},
                          {"bits_per_weight", s.bits_per_weight()},
                          {"quantized_bytes_before", s.quantized_bytes_before},
                          {"quantized_bytes_after", s.quantized_bytes_after},
                          {"total_bytes_before", s.total_bytes_before},
                          {"total_bytes_after", s.total_bytes_after},
                          {"calibration_tokens", calibration ? calibration->tokens : 0},
                          {"seconds", seconds},
                          {"export_seconds", s.seconds},
                          {"peak_rss_bytes", rss},
                          {"files", s.files},
                          {"warnings", plan.warnings},
                          {"notes", s.notes}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("quantized {} -> {} ({}, {}, format {})\n", args.model, args.out, recipe.source, recipe.method,
             s.format);
  fmt::print("  modules quantized      {}\n", s.modules_quantized);
  fmt::print("  linear modules kept    {}\n", s.modules_not_quantized);
  fmt::print("  bits per weight        {:.3f}  (quantized modules, scales and zero points included)\n",
             s.bits_per_weight());
  fmt::print("  quantized weights      {} -> {}\n", mib(s.quantized_bytes_before),
             mib(s.quantized_bytes_after));
  fmt::print("  all tensors            {} -> {}\n", mib(s.total_bytes_before), mib(s.total_bytes_after));
  if (calibration)
    fmt::print("  calibration            {} samples, {} tokens, {:.1f} s\n", calibration->samples,
               calibration->tokens, calibration->seconds);
  fmt::print("  time                   {:.2f} s (export {:.2f} s)\n", seconds, s.seconds);
  fmt::print("  peak RSS               {}\n", mib(rss));
  for (const std::string& note : s.notes) fmt::print("note: {}\n", note);
  return 0;
}

}  // namespace

void register_quantize(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd =
      app.add_subcommand("quantize", "Quantize a model (RTN) and write a compressed-tensors checkpoint");
  cmd->footer(
      "Examples:\n"
      "  lowbit quantize MODEL --scheme W4A16 -o out/w4a16\n"
      "  lowbit quantize MODEL --scheme W4A16_ASYM --group-size 64 --ignore 're:.*layers\\.0\\..*' -o "
      "out/w4\n"
      "  lowbit quantize MODEL --scheme FP8 --calib calib.txt --kv-cache fp8 -o out/fp8\n"
      "  lowbit quantize MODEL --recipe recipe.yaml --format fake-quant -o out/fq");
  cmd->add_option("model", args->model, "Model folder (Hugging Face, safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--output,-o", args->out, "Output folder (written atomically)")->required();
  add_recipe_options(cmd, args->recipe);
  cmd->add_option("--format,-f", args->format,
                  "auto | pack-quantized | int-quantized | float-quantized | naive-quantized | fake-quant")
      ->capture_default_str();
  cmd->add_option("--calib", args->calib, "Calibration text for static activation / KV-cache scales")
      ->check(CLI::ExistingFile);
  cmd->add_option("--calib-samples", args->calib_samples, "Calibration sequences")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--calib-seq-len", args->calib_seq_len, "Tokens per calibration sequence")
      ->capture_default_str()
      ->check(CLI::Range(16, 512));
  cmd->add_flag("--overwrite", args->overwrite, "Replace an existing output folder");
  add_common_options(cmd, args->common);
  commands.emplace_back(cmd, [args] { return run_quantize(*args); });
}

}  // namespace lowbit::cli

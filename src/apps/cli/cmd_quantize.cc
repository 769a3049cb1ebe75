// lowbit quantize MODEL --scheme W4A16 [--method gptq --calib FILE] -o OUT: quantization of a whole model
// (RTN, or SmoothQuant / AWQ / GPTQ through the layer-sequential calibration pipeline), written as a
// compressed-tensors checkpoint (or a fake-quant bf16 folder), with progress bars and a summary table.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "apps/cli/recipe_options.h"
#include "calib/calib_data.h"
#include "calib/pipeline.h"
#include "calib/static_scales.h"
#include "export/compressed_tensors_writer.h"
#include "quant/model_quantizer.h"
#include "quant/presets.h"
#include "runtime/gemm_bf16.h"
#include "sensitivity/selection.h"
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
  CalibFlags calib;  // llm-compressor's defaults: 128 samples x 512 tokens
  // Method arguments; unset ones come from the recipe's modifier, then llm-compressor's defaults.
  std::optional<double> dampening_frac;
  std::optional<int64_t> block_size;
  std::string actorder;  // static | group | none
  std::optional<float> smoothing_strength;
  std::optional<int> awq_grid;
  std::optional<int64_t> awq_search_tokens;
  bool no_duo_scaling = false;
  std::string duo_scaling;  // --awq-duo-scaling: true, false or both
  bool no_awq_clip = false;
  bool true_sequential = false;
  std::string calib_precision = "auto";  // auto | bf16 | fp32
  bool overwrite = false;
  // Selective quantization (sensitivity/selection.h).
  std::string sensitivity;  // sensitivity.json
  std::optional<int64_t> keep_sensitive;
  std::optional<uint64_t> max_size;
  std::optional<double> target_bits;
  std::string keep_scheme;
  std::string selector = "sensitivity";
  uint64_t selector_seed = 42;
};

template <typename T>
T method_arg(const nlohmann::json& args, const char* key, std::optional<T> flag, T fallback) {
  if (flag) return *flag;
  if (args.contains(key) && !args[key].is_null()) {
    try {
      return args[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      fail("recipe argument {}: unexpected value {}", key, args[key].dump());
    }
  }
  return fallback;
}

// AWQ's duo_scaling from --no-duo-scaling, --awq-duo-scaling or the recipe (true, false or "both", as
// llm-compressor's AWQModifier takes it); default true.
AwqDuoScaling duo_scaling_arg(const nlohmann::json& m, const QuantizeArgs& args) {
  auto parse = [](const std::string& v, const char* where) {
    if (v == "true") return AwqDuoScaling::On;
    if (v == "false") return AwqDuoScaling::Off;
    if (v == "both") return AwqDuoScaling::Both;
    fail("{} {}: expected true, false or both", where, v);
  };
  if (args.no_duo_scaling) {
    if (!args.duo_scaling.empty() && args.duo_scaling != "false")
      fail("--no-duo-scaling contradicts --awq-duo-scaling {}", args.duo_scaling);
    return AwqDuoScaling::Off;
  }
  if (!args.duo_scaling.empty()) return parse(args.duo_scaling, "--awq-duo-scaling");
  if (!m.contains("duo_scaling") || m["duo_scaling"].is_null()) return AwqDuoScaling::On;
  const nlohmann::json& v = m["duo_scaling"];
  if (v.is_boolean()) return v.get<bool>() ? AwqDuoScaling::On : AwqDuoScaling::Off;
  if (v.is_string()) return parse(v.get<std::string>(), "recipe argument duo_scaling:");
  fail("recipe argument duo_scaling: unexpected value {}", v.dump());
}

// The pipeline's options from the method, the recipe's modifier arguments and the flags. GPTQ's activation
// ordering goes into the scheme's weight args (as llm-compressor does), so the exported config records it
// and the quantizer reads it from there.
PipelineOptions pipeline_options(const QuantizeArgs& args, QuantRecipe& recipe, const Model& model) {
  PipelineOptions o = pipeline_options_for(recipe.method);
  // auto: the model's own dtype, as llm-compressor runs a bf16 model's calibration passes in bf16.
  if (args.calib_precision == "bf16" || (args.calib_precision == "auto" && model.num_layers() > 0 &&
                                         model.layer(0).q_proj.weight.dtype == DType::BF16))
    o.precision = CalibPrecision::BF16;
  else if (args.calib_precision != "fp32" && args.calib_precision != "auto")
    fail("--calib-precision {}: expected auto, bf16 or fp32", args.calib_precision);
  const nlohmann::json& m = recipe.method_args;
  o.smoothing_strength = method_arg<float>(m, "smoothing_strength", args.smoothing_strength, 0.5f);
  if (o.smoothing_strength < 0.0f || o.smoothing_strength > 1.0f)
    fail("--smoothing-strength must be in [0, 1], got {}", o.smoothing_strength);
  o.awq_grid = method_arg<int>(m, "n_grid", args.awq_grid, 20);
  if (o.awq_grid < 1) fail("--awq-grid must be at least 1");
  o.awq_duo_scaling = duo_scaling_arg(m, args);
  if (args.no_awq_clip) o.awq_clip = false;
  o.awq_search_tokens = args.awq_search_tokens.value_or(o.awq_search_tokens);
  o.gptq_options.block_size = method_arg<int64_t>(m, "block_size", args.block_size, 128);
  o.gptq_options.dampening_frac = method_arg<double>(m, "dampening_frac", args.dampening_frac, 0.01);
  if (o.gptq_options.block_size < 1) fail("--block-size must be at least 1");
  if (o.gptq_options.dampening_frac < 0.0) fail("--dampening-frac must not be negative");
  o.true_sequential = args.true_sequential || method_arg<bool>(m, "true_sequential", std::nullopt, false);
  if (o.true_sequential && (!o.gptq || o.awq))
    fail("--true-sequential applies to GPTQ (--method gptq or smoothquant+gptq), not to method {}",
         recipe.method);
  if (o.gptq) {
    std::string order = args.actorder;
    if (order.empty() && m.contains("actorder"))
      order = m["actorder"].is_null() ? "none" : m["actorder"].get<std::string>();
    for (auto& [name, scheme] : recipe.groups) {
      if (!scheme.weights || scheme.weights->type != QuantType::Int) continue;
      if (order == "none") {
        scheme.weights->actorder.reset();
      } else if (order == "group") {
        scheme.weights->actorder = ActOrder::Group;
      } else if (order == "static" || order == "weight" || (order.empty() && !scheme.weights->actorder)) {
        scheme.weights->actorder = ActOrder::Weight;  // llm-compressor's default
      } else if (!order.empty()) {
        fail("--actorder {}: expected static, group or none", order);
      }
    }
  }
  return o;
}

bool selection_requested(const QuantizeArgs& a) {
  return a.keep_sensitive || a.max_size || a.target_bits;
}

// --keep-sensitive / --max-size / --target-bits: picks the modules to keep and writes them into the recipe
// (ignore entries, or a config group with --keep-scheme) before the plan is resolved, so every method
// (RTN, GPTQ, AWQ, ...) quantizes the same selection and the export records it.
std::optional<sensitivity::Selection> select_kept_modules(const QuantizeArgs& args, const Model& model,
                                                          QuantRecipe& recipe) {
  if (!selection_requested(args)) {
    if (!args.sensitivity.empty() || !args.keep_scheme.empty())
      fail("--sensitivity / --keep-scheme need --keep-sensitive N, --max-size BYTES or --target-bits B");
    return std::nullopt;
  }
  sensitivity::SelectionRequest req;
  req.selector = sensitivity::parse_selector(args.selector);
  req.seed = args.selector_seed;
  req.keep_count = args.keep_sensitive;
  req.max_bytes = args.max_size;
  req.target_bits = args.target_bits;
  if (args.format != "auto") req.format = args.format;
  if (!args.keep_scheme.empty()) req.keep_scheme = preset_scheme(args.keep_scheme, {});
  std::map<std::string, double> scores;
  if (req.selector == sensitivity::Selector::Sensitivity) {
    if (args.sensitivity.empty())
      fail("--selector sensitivity needs --sensitivity REPORT/sensitivity.json (from `lowbit sensitivity`)");
    const nlohmann::json report = nlohmann::json::parse(read_file(args.sensitivity));
    scores = sensitivity::sensitivity_scores(report, args.sensitivity);
    if (report.value("scheme", "") != recipe.source)
      fmt::print(stderr, "warning: {} was measured for {}, quantizing with {}\n", args.sensitivity,
                 report.value("scheme", "?"), recipe.source);
  }
  const QuantPlan full = resolve_plan(recipe, model_modules(model));  // warnings: printed by plan_for later
  const std::vector<sensitivity::Candidate> candidates =
      sensitivity::make_candidates(model, full, req, scores);
  const sensitivity::Selection sel = sensitivity::select_modules(
      candidates, sensitivity::planned_export_bytes(model, full, req.format), req);
  for (const std::string& note : sel.notes) fmt::print(stderr, "note: {}\n", note);
  fmt::print(stderr, "selection ({}): keeping {} of {} modules{}: {}\n", sensitivity::to_string(sel.selector),
             sel.kept.size(), candidates.size(),
             args.keep_scheme.empty() ? " unquantized" : " at " + args.keep_scheme, fmt::join(sel.kept, " "));
  if (sel.budget && *sel.budget < sel.size_all_quantized)
    fail("the size budget ({} bytes) is below the size with every module quantized ({} bytes)", *sel.budget,
         sel.size_all_quantized);
  if (!candidates.empty() && sel.kept.size() == candidates.size() && !req.keep_scheme)
    fail("the selection keeps every targeted module unquantized: nothing would be quantized");
  sensitivity::apply_selection(recipe, sel, req);
  return sel;
}

std::string mib(uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

int run_quantize(const QuantizeArgs& args) {
  apply_threads(args.common);
  const auto start = std::chrono::steady_clock::now();
  const std::unique_ptr<Model> model = open_model_for_quantization(args.model);
  QuantRecipe recipe = recipe_from_flags(args.recipe);
  const bool pipeline = method_needs_pipeline(recipe.method);
  const PipelineOptions pipeline_opts = pipeline_options(args, recipe, *model);
  const std::optional<sensitivity::Selection> selection = select_kept_modules(args, *model, recipe);
  const QuantPlan plan = plan_for(*model, recipe);
  ExportOptions options;
  options.format = parse_export_format(args.format);
  options.overwrite = args.overwrite;

  const bool fake = options.format == ExportFormat::FakeQuant;
  const bool needs_scales = !fake && needs_calibration(plan);
  std::optional<CalibDataset> data;
  if (pipeline || needs_scales) {
    if (args.calib.files.empty())
      fail("{} needs calibration text: pass --calib FILE (plain text or JSONL with a \"text\" field)",
           pipeline ? "method " + recipe.method : recipe.source + " (static activation or KV-cache scales)");
    data = load_calibration(args.calib, args.model);
    if (pipeline)
      fmt::print(stderr, "calibration passes: {}\n",
                 pipeline_opts.precision == CalibPrecision::F32 ? "fp32"
                 : kernels::bf16_gemm_uses_amx()                ? "bf16 operands, fp32 sums (AMX)"
                                                 : "bf16 operands, fp32 sums (no AMX: fp32 kernels)");
  }

  Calibration calibration;
  std::optional<PipelineReport> report;
  if (pipeline) {
    options.calibration = needs_scales ? &calibration : nullptr;
    options.source = [&](const ModelSink& sink) {
      std::unique_ptr<ProgressBar> bar;
      report = run_sequential_pipeline(
          *model, plan, *data, pipeline_opts, sink, needs_scales ? &calibration : nullptr,
          [&](const PipelineProgress& p) {
            if (!bar)
              bar = std::make_unique<ProgressBar>(recipe.method, static_cast<size_t>(p.layers),
                                                  !args.common.json);
            bar->set_suffix(fmt::format("layer {} {}", std::min(p.layer, p.layers - 1), p.stage));
            bar->update(static_cast<size_t>(p.layer));
          });
      if (bar) bar->finish();
    };
  } else if (needs_scales) {
    std::unique_ptr<ProgressBar> bar;
    calibration = calibrate(*model, plan, *data, [&](int64_t done, int64_t total) {
      if (!bar)
        bar = std::make_unique<ProgressBar>("calibrate", static_cast<size_t>(total), !args.common.json);
      bar->update(static_cast<size_t>(done));
    });
    if (bar) bar->finish();
    options.calibration = &calibration;
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
                          {"calibration_tokens", data ? data->tokens() : 0},
                          {"calibration", data ? data->describe() : ""},
                          {"calibration_offsets", data ? data->offsets : std::vector<int64_t>{}},
                          {"calib_precision", !pipeline ? "none"
                                              : pipeline_opts.precision == CalibPrecision::BF16
                                                  ? (kernels::bf16_gemm_uses_amx() ? "bf16 (amx)" : "bf16")
                                                  : "fp32"},
                          {"seconds", seconds},
                          {"export_seconds", s.seconds},
                          {"peak_rss_bytes", rss},
                          {"files", s.files},
                          {"warnings", plan.warnings},
                          {"notes", s.notes}};
    if (selection) out["selection"] = sensitivity::to_json(*selection);
    if (report) {
      nlohmann::json layers = nlohmann::json::array();
      for (const LayerReport& l : report->layers)
        layers.push_back({{"layer", l.layer},
                          {"seconds", l.seconds},
                          {"observe_seconds", l.observe_seconds},
                          {"smooth_seconds", l.smooth_seconds},
                          {"quantize_seconds", l.quantize_seconds},
                          {"propagate_seconds", l.propagate_seconds},
                          {"log", l.lines}});
      out["pipeline"] = {{"seconds", report->seconds},
                         {"true_sequential", pipeline_opts.true_sequential},
                         {"hidden_state_bytes", report->hidden_state_bytes},
                         {"max_layer_bytes", report->max_layer_bytes},
                         {"warnings", report->warnings},
                         {"layers", layers}};
    }
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
  if (data)
    fmt::print("  calibration            {} samples, {} tokens\n", data->num_samples(), data->tokens());
  if (report)
    fmt::print("  pipeline               {:.1f} s ({} layers, {} of hidden states, {} per resident layer)\n",
               report->seconds, report->layers.size(), mib(report->hidden_state_bytes),
               mib(report->max_layer_bytes));
  if (report)
    for (const std::string& w : report->warnings) fmt::print("warning: {}\n", w);
  if (selection)
    fmt::print("  kept ({})  {} modules{}\n", sensitivity::to_string(selection->selector),
               selection->kept.size(),
               selection->budget
                   ? fmt::format(", {} of {} budget bytes", selection->size_selected, *selection->budget)
                   : "");
  fmt::print("  time                   {:.2f} s (export {:.2f} s)\n", seconds, s.seconds);
  fmt::print("  peak RSS               {}\n", mib(rss));
  for (const std::string& note : s.notes) fmt::print("note: {}\n", note);
  return 0;
}

}  // namespace

void register_quantize(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize",
                                     "Quantize a model (RTN, GPTQ, AWQ, SmoothQuant) and write a "
                                     "compressed-tensors checkpoint");
  cmd->footer(
      "Examples:\n"
      "  lowbit quantize MODEL --scheme W4A16 -o out/w4a16\n"
      "  lowbit quantize MODEL --scheme W4A16_ASYM --group-size 64 --ignore 're:.*layers\\.0\\..*' -o "
      "out/w4\n"
      "  lowbit quantize MODEL --scheme W4A16 --method gptq --calib calib.txt -o out/w4-gptq\n"
      "  lowbit quantize MODEL --scheme W4A16 --method awq --calib data.jsonl -o out/w4-awq\n"
      "  lowbit quantize MODEL --scheme W8A8 --method smoothquant+gptq --calib calib.txt -o out/w8a8\n"
      "  lowbit quantize MODEL --scheme FP8 --calib calib.txt --kv-cache fp8 -o out/fp8\n"
      "  lowbit quantize MODEL --recipe recipe.yaml --format fake-quant -o out/fq\n"
      "  lowbit quantize MODEL --scheme W4A16 --sensitivity report/sensitivity.json --target-bits 4.6 -o "
      "out/w4sel");
  cmd->add_option("model", args->model, "Model folder (Hugging Face, safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--output,-o", args->out, "Output folder (written atomically)")->required();
  add_recipe_options(cmd, args->recipe);
  cmd->add_option("--format,-f", args->format,
                  "auto | pack-quantized | int-quantized | float-quantized | naive-quantized | fake-quant")
      ->capture_default_str();
  add_calibration_options(
      cmd, args->calib,
      "Calibration text: plain text or JSONL with a \"text\" field (repeat for several files)");
  cmd->add_option("--dampening-frac", args->dampening_frac,
                  "GPTQ: dampening added to the Hessian diagonal, as a fraction of its mean (default 0.01)");
  cmd->add_option("--block-size", args->block_size, "GPTQ: columns per lazy-update block (default 128)");
  cmd->add_option("--actorder", args->actorder,
                  "GPTQ activation ordering: static (default), group (exports weight_g_idx) or none")
      ->check(CLI::IsMember({"static", "weight", "group", "none"}));
  cmd->add_flag("--true-sequential", args->true_sequential,
                "GPTQ: quantize q/k/v, o, gate/up, down in turn, each group's Hessian from the already "
                "quantized modules before it, in one pass per layer instead of two (AutoGPTQ's "
                "true_sequential; default: llm-compressor's two passes)");
  cmd->add_option("--smoothing-strength", args->smoothing_strength,
                  "SmoothQuant's alpha: migration strength from activations to weights (default 0.5)");
  cmd->add_option("--awq-grid", args->awq_grid, "AWQ: ratios searched per mapping (default 20)");
  cmd->add_option(
         "--awq-search-tokens", args->awq_search_tokens,
         "AWQ: calibration tokens the scale search runs the parent blocks on (default 4096, 0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-duo-scaling", args->no_duo_scaling,
                "AWQ: scales from activations only (x^r); the same as --awq-duo-scaling false");
  cmd->add_option("--awq-duo-scaling", args->duo_scaling,
                  "AWQ: true (s = x^r / w^(1-r), the default), false (x^r) or both (half the grid each, "
                  "llm-compressor's \"both\")")
      ->check(CLI::IsMember({"true", "false", "both"}));
  cmd->add_flag("--no-awq-clip", args->no_awq_clip, "AWQ: skip the weight clipping search");
  cmd->add_option(
         "--calib-precision", args->calib_precision,
         "Arithmetic of the calibration passes: bf16 (operands rounded to bf16, fp32 sums; AMX where "
         "the CPU has it), fp32, or auto (bf16 for bf16 models, as llm-compressor)")
      ->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite, "Replace an existing output folder");
  cmd->add_option("--sensitivity", args->sensitivity,
                  "sensitivity.json from `lowbit sensitivity` (scores of --selector sensitivity)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--keep-sensitive", args->keep_sensitive,
                  "Keep the N most sensitive modules in high precision")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option(
      "--max-size", args->max_size,
      "Keep modules in high precision while the exported tensors stay within BYTES (greedy KL per byte)");
  cmd->add_option("--target-bits", args->target_bits,
                  "Like --max-size, as bits per weight over the targeted modules (scales included)");
  cmd->add_option("--keep-scheme", args->keep_scheme,
                  "Scheme of the kept modules (e.g. W8A16); default: left unquantized");
  cmd->add_option("--selector", args->selector,
                  "How kept modules are chosen: sensitivity | random | weight-stats")
      ->capture_default_str()
      ->check(CLI::IsMember({"sensitivity", "random", "weight-stats"}));
  cmd->add_option("--selector-seed", args->selector_seed, "Seed of --selector random")->capture_default_str();
  add_common_options(cmd, args->common);
  commands.emplace_back(cmd, [args] { return run_quantize(*args); });
}

}  // namespace lowbit::cli

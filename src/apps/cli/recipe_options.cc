#include "apps/cli/recipe_options.h"

#include <fmt/format.h>

#include "quant/model_quantizer.h"
#include "quant/presets.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lowbit::cli {

void add_recipe_options(CLI::App* cmd, RecipeFlags& f) {
  cmd->add_option("--scheme,-s", f.scheme, fmt::format("Preset scheme: {}", fmt::join(preset_names(), ", ")));
  cmd->add_option("--recipe", f.recipe, "llm-compressor style YAML recipe (instead of --scheme)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--group-size,-g", f.group_size, "Weight group size (32, 64, 128, ...; -1 = per channel)");
  cmd->add_option("--targets", f.targets,
                  "Modules to quantize: class names, names or 're:' regexes (default Linear)");
  cmd->add_option(
         "--ignore,--modules-to-not-convert", f.ignore,
         "Modules to leave unquantized (names or 're:' regexes); lm_head too unless --include-lm-head")
      ->take_all();
  cmd->add_flag("--include-lm-head", f.include_lm_head,
                "Quantize lm_head too (ignored by default); a tied lm_head is untied: stored quantized, "
                "the embeddings kept as they are");
  cmd->add_option("--kv-cache", f.kv_cache, "Quantize the KV cache: fp8 (e4m3) or int8, static per tensor")
      ->check(CLI::IsMember({"fp8", "int8"}));
  cmd->add_option(
      "--method", f.method,
      "rtn | gptq | awq | smoothquant | smoothquant+gptq | awq+gptq (default: the recipe's, or rtn)");
}

QuantRecipe recipe_from_flags(const RecipeFlags& f) {
  if (f.scheme.empty() == f.recipe.empty())
    fail("give exactly one of --scheme NAME or --recipe FILE; valid schemes: {}",
         fmt::join(preset_names(), ", "));
  QuantRecipe r;
  if (!f.recipe.empty()) {
    if (!f.targets.empty()) fail("--targets cannot be combined with --recipe (the recipe names its targets)");
    r = load_recipe(f.recipe);
    r.ignore.insert(r.ignore.end(), f.ignore.begin(), f.ignore.end());
    if (f.include_lm_head) r.ignore_lm_head = false;
    if (f.group_size) override_group_size(r, *f.group_size);
    if (!f.kv_cache.empty()) r.kv_cache_scheme = kv_cache_args(f.kv_cache);
  } else {
    CliQuantOptions o;
    o.scheme = f.scheme;
    if (!f.targets.empty()) o.targets = f.targets;
    o.ignore = f.ignore;
    o.group_size = f.group_size;
    o.include_lm_head = f.include_lm_head;
    if (!f.kv_cache.empty()) o.kv_cache = f.kv_cache;
    if (!f.method.empty()) o.method = f.method;
    r = recipe_from_cli(o);
  }
  if (!f.method.empty()) r.method = f.method;
  return r;
}

std::unique_ptr<Model> open_model_for_quantization(const std::string& dir) {
  try {
    return Model::open(dir);
  } catch (const Error& e) {
    fail("cannot quantize {}: {}", dir, e.what());
  }
}

QuantPlan plan_for(const Model& model, const QuantRecipe& recipe) {
  QuantPlan plan = resolve_plan(recipe, model_modules(model));
  for (const std::string& w : plan.warnings) fmt::print(stderr, "warning: {}\n", w);
  if (plan.count(ModuleDecision::Quantized) == 0)
    fail("the plan from {} quantizes no module of {}", recipe.source.empty() ? "the recipe" : recipe.source,
         model.dir().string());
  return plan;
}

void add_calibration_options(CLI::App* cmd, CalibFlags& flags, const std::string& calib_help) {
  cmd->add_option("--calib", flags.files, calib_help)->check(CLI::ExistingFile);
  cmd->add_option("--num-samples,--calib-samples", flags.num_samples, "Calibration samples (random windows)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len,--calib-seq-len", flags.seq_len, "Tokens per calibration sample")
      ->capture_default_str()
      ->check(CLI::Range(16, 8192));
  cmd->add_option("--seed", flags.seed, "Seed of the calibration window choice")->capture_default_str();
}

CalibDataset load_calibration(const CalibFlags& flags, const std::string& model_dir) {
  CalibDataOptions co;
  for (const std::string& f : flags.files) co.files.emplace_back(f);
  co.num_samples = flags.num_samples;
  co.seq_len = flags.seq_len;
  co.seed = flags.seed;
  CalibDataset data = load_calibration_data(Tokenizer::load(model_dir), co);
  fmt::print(stderr, "calibration: {}\n", data.describe());
  for (const std::string& note : data.notes) fmt::print(stderr, "note: {}\n", note);
  return data;
}

}  // namespace lowbit::cli

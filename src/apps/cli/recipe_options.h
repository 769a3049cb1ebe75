// The quantization flags `lowbit quantize`, `plan` and `sensitivity` share (--scheme, --recipe, --group-size,
// --targets, --ignore, --include-lm-head, --kv-cache, --method), turning them into a resolved plan, and the
// calibration-data flags (--calib, --num-samples, --seq-len, --seed).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "calib/calib_data.h"
#include "model/model.h"
#include "quant/plan.h"
#include "quant/recipe.h"

namespace lowbit::cli {

struct RecipeFlags {
  std::string scheme;
  std::string recipe;
  std::optional<int> group_size;  // unset: the scheme's own
  std::vector<std::string> targets;
  std::vector<std::string> ignore;
  bool include_lm_head = false;
  std::string kv_cache;  // "", "fp8" or "int8"
  std::string method;    // "": the recipe's (rtn for --scheme)
};

void add_recipe_options(CLI::App* cmd, RecipeFlags& flags);

// --recipe FILE (with --ignore / --group-size / --kv-cache on top) or --scheme; exactly one of the two.
QuantRecipe recipe_from_flags(const RecipeFlags& flags);

// Opens the model for quantization: a clear error for an architecture lowbit cannot quantize.
std::unique_ptr<Model> open_model_for_quantization(const std::string& dir);

// Resolves the recipe against the model's modules; warnings go to stderr (also with --json, whose output on
// stdout carries them too). Throws when the plan quantizes nothing.
QuantPlan plan_for(const Model& model, const QuantRecipe& recipe);

struct CalibFlags {
  std::vector<std::string> files;  // --calib
  int64_t num_samples = 128;       // the command sets its own default before add_calibration_options
  int64_t seq_len = 512;
  uint64_t seed = 42;
};

// --calib FILE... (described by calib_help), --num-samples, --seq-len, --seed.
void add_calibration_options(CLI::App* cmd, CalibFlags& flags, const std::string& calib_help);

// Random windows of the calibration text tokenized with the model's tokenizer; the choice and any notes
// are printed to stderr.
CalibDataset load_calibration(const CalibFlags& flags, const std::string& model_dir);

}  // namespace lowbit::cli

// The lowbit command line: one file per subcommand, each registering itself on the CLI11 app. The
// commands are thin: parsing, progress, printing; the work is in the stage libraries.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace lowbit::cli {

// Options every model-running command shares.
struct CommonOptions {
  int threads = 0;  // 0: all hardware threads
  bool json = false;
  // --kv-cache-dtype: auto | fp32 | bf16 | fp16 (commands that run models; see add_kv_cache_dtype_option).
  std::string kv_cache_dtype = "fp32";
};

// Each register_* adds a subcommand to `app` and appends it to `commands` with the Runner that executes it
// once parsing has chosen that subcommand.
using Runner = std::function<int()>;
void register_generate(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_ppl(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_compare(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_convert(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_info(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_bench(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_quantize(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_plan(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_eval(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);
void register_sensitivity(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands);

// Adds --threads and --json to a subcommand.
void add_common_options(CLI::App* cmd, CommonOptions& options);
// Adds --kv-cache-dtype with `default_value`: "auto" (serving commands: the checkpoint's float dtype, as
// vLLM's kv_cache_dtype=auto) or "fp32" (evaluation commands: exact attention inputs).
void add_kv_cache_dtype_option(CLI::App* cmd, CommonOptions& options, const std::string& default_value);
// Applies --threads to the global pool (and OpenBLAS).
void apply_threads(const CommonOptions& options);

}  // namespace lowbit::cli

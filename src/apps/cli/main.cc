// lowbit: quantize, export and run large language models, natively.
#include <fmt/format.h>

#include <cstdio>
#include <exception>

#include "apps/cli/commands.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::cli {

void add_common_options(CLI::App* cmd, CommonOptions& options) {
  cmd->add_option("--threads,-t", options.threads, "Worker threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", options.json, "Print one machine-readable JSON object on stdout");
}

void add_kv_cache_dtype_option(CLI::App* cmd, CommonOptions& options, const std::string& default_value) {
  options.kv_cache_dtype = default_value;
  cmd->add_option("--kv-cache-dtype", options.kv_cache_dtype,
                  "How keys and values are cached when the checkpoint does not quantize them: auto (the "
                  "checkpoint's float dtype, as vLLM), fp32, bf16 or fp16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "fp16"}))
      ->capture_default_str();
}

void apply_threads(const CommonOptions& options) {
  set_global_threads(options.threads);
}

}  // namespace lowbit::cli

int main(int argc, char** argv) {
  using namespace lowbit::cli;
  CLI::App app{"lowbit: quantize, export and run large language models, natively on CPU (and CUDA)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lowbit 0.1.0");
  app.footer(
      "Examples:\n"
      "  lowbit generate models/stories260K --prompt \"Once upon a time\"\n"
      "  lowbit ppl MODEL_DIR --data wiki.test.raw --ctx 512 --json\n"
      "  lowbit quantize MODEL_DIR --scheme W4A16 -o out/w4a16\n"
      "  lowbit sensitivity MODEL_DIR --scheme W4A16 --calib calib.txt -o report/\n"
      "  lowbit eval BASE_DIR QUANT_DIR --task hellaswag --data hellaswag_val.jsonl\n"
      "  lowbit convert llama2c stories260K.bin --tokenizer tok512.bin -o out/stories260K\n"
      "Run `lowbit COMMAND --help` for a command's options.");

  std::vector<std::pair<CLI::App*, Runner>> commands;
  register_generate(app, commands);
  register_ppl(app, commands);
  register_compare(app, commands);
  register_info(app, commands);
  register_bench(app, commands);
  register_convert(app, commands);
  register_quantize(app, commands);
  register_plan(app, commands);
  register_eval(app, commands);
  register_sensitivity(app, commands);

  CLI11_PARSE(app, argc, argv);
  try {
    for (auto& [cmd, run] : commands)
      if (cmd->parsed()) return run();
  } catch (const lowbit::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "lowbit: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "lowbit: internal error: {}\n", e.what());
    return 2;
  }
  return 1;
}

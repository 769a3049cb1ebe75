// lowbit convert llama2c CHECKPOINT.bin --tokenizer tok.bin -o DIR: import into a Hugging Face folder.
#include <fmt/format.h>

#include "apps/cli/commands.h"
#include "model/llama2c_import.h"

namespace lowbit::cli {
namespace {

struct ConvertLlama2cArgs {
  std::string checkpoint;
  std::string tokenizer;
  std::string output;
  bool overwrite = false;
};

int run_convert_llama2c(const ConvertLlama2cArgs& args) {
  convert_llama2c(args.checkpoint, args.tokenizer, args.output, args.overwrite);
  fmt::print("wrote {}\n", args.output);
  return 0;
}

}  // namespace

void register_convert(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  CLI::App* convert =
      app.add_subcommand("convert", "Convert checkpoints from other formats into Hugging Face folders");
  convert->require_subcommand(1);

  auto args = std::make_shared<ConvertLlama2cArgs>();
  CLI::App* cmd =
      convert->add_subcommand("llama2c", "Import a llama2.c (version 0) checkpoint and tokenizer.bin");
  cmd->add_option("checkpoint", args->checkpoint, "llama2.c model .bin")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", args->tokenizer, "llama2.c tokenizer.bin (omit to write no tokenizer)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", args->output, "Output folder")->required();
  cmd->add_flag("--overwrite", args->overwrite, "Replace the output folder if it exists");
  commands.emplace_back(cmd, [args] { return run_convert_llama2c(*args); });
}

}  // namespace lowbit::cli

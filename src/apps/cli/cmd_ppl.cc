// lowbit ppl MODEL --data FILE: perplexity as the GPTQ/AWQ papers define it (see eval/perplexity.h).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "eval/perplexity.h"
#include "util/error.h"
#include "util/files.h"
#include "util/progress.h"

namespace lowbit::cli {
namespace {

struct PplArgs {
  CommonOptions common;
  std::string model;
  std::string data;
  int64_t ctx = 512;
  int64_t stride = 0;
  int64_t max_tokens = 0;
  bool decode = false;
};

int run_ppl(const PplArgs& args) {
  apply_threads(args.common);
  LoadedModel loaded = load_model(args.model, args.common.json);
  apply_kv_cache_dtype(loaded, args.common.kv_cache_dtype);
  const std::string text = read_file(args.data);

  eval::PerplexityOptions options;
  options.ctx = args.ctx;
  options.stride = args.stride;
  options.max_tokens = args.max_tokens;
  options.decode = args.decode;

  std::unique_ptr<ProgressBar> bar;
  const eval::PerplexityResult result = eval::perplexity(
      *loaded.transformer, *loaded.tokenizer, text, options, [&](const eval::PerplexityProgress& p) {
        if (!bar) bar = std::make_unique<ProgressBar>("ppl", static_cast<size_t>(p.windows_total));
        bar->set_suffix(fmt::format("ppl {:.4f}", p.running_ppl));
        bar->update(static_cast<size_t>(p.windows_done));
      });
  if (bar) bar->finish();
  if (result.windows == 0)
    fail("{} has {} tokens, fewer than one window of --ctx {}", args.data, result.text_tokens, args.ctx);

  if (args.common.json) {
    nlohmann::json out = {
        {"model", args.model},
        {"data", args.data},
        {"ctx", args.ctx},
        {"stride", args.stride},
        {"decode", args.decode},
        {"kv_cache", describe_kv_cache(loaded)},
        {"ppl", result.ppl},
        {"nll", result.nll},
        {"tokens", result.tokens},
        {"windows", result.windows},
        {"text_tokens", result.text_tokens},
        {"seconds", result.seconds},
        {"tokens_per_second", static_cast<double>(result.windows * args.ctx) / result.seconds}};
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("ppl {:.4f}  nll {:.6f}  tokens {}  windows {}  ({:.1f} s, {:.0f} tok/s)\n", result.ppl,
               result.nll, result.tokens, result.windows, result.seconds,
               static_cast<double>(result.windows * args.ctx) / result.seconds);
  }
  return 0;
}

}  // namespace

void register_ppl(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<PplArgs>();
  CLI::App* cmd =
      app.add_subcommand("ppl", "Perplexity of a model on a text file (the GPTQ/AWQ papers' method)");
  cmd->footer(
      "The text is tokenized whole (BOS first when the tokenizer adds one) and cut into consecutive windows "
      "of\n"
      "--ctx tokens (a final partial window is dropped); each window is scored on its ctx-1 next-token\n"
      "predictions with no context from the previous one; ppl = exp(total NLL / tokens scored).");
  cmd->add_option("model", args->model, "Model folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--data,-d", args->data, "UTF-8 text file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--ctx,-c", args->ctx, "Window length in tokens")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option(
         "--stride", args->stride,
         "Sliding-window variant: windows start every STRIDE tokens and score only new tokens (0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-tokens", args->max_tokens, "Use only the first N tokens of the text (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--decode", args->decode,
                "Run each window one token at a time through the decode kernels (as generation does) "
                "instead of as one prefill (slower: every token is its own pass over the weights)");
  add_common_options(cmd, args->common);
  add_kv_cache_dtype_option(cmd, args->common, "fp32");
  commands.emplace_back(cmd, [args] { return run_ppl(*args); });
}

}  // namespace lowbit::cli

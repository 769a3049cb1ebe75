// lowbit compare BASE QUANT --data FILE: what quantization costs, as llama.cpp's --kl-divergence reports it
// (both perplexities, KL(base || quant) of the next-token distributions, top-1 agreement); see
// eval/kl_divergence.h.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "eval/kl_divergence.h"
#include "util/error.h"
#include "util/files.h"
#include "util/progress.h"

namespace lowbit::cli {
namespace {

struct CompareArgs {
  CommonOptions common;
  std::string base;
  std::string quant;
  std::string data;
  int64_t ctx = 512;
  int64_t max_tokens = 0;
};

int run_compare(const CompareArgs& args) {
  apply_threads(args.common);
  LoadedModel base = load_model(args.base, args.common.json);
  LoadedModel quant = load_model(args.quant, args.common.json);
  apply_kv_cache_dtype(base, args.common.kv_cache_dtype);
  apply_kv_cache_dtype(quant, args.common.kv_cache_dtype);
  const std::string text = read_file(args.data);
  // Both models are fed the same tokens: the base model's tokenization.
  const std::vector<int32_t> tokens = base.tokenizer->encode(text, /*add_special_tokens=*/true);
  if (quant.tokenizer->encode(text.substr(0, std::min<size_t>(text.size(), 2000)), true) !=
      base.tokenizer->encode(text.substr(0, std::min<size_t>(text.size(), 2000)), true)) {
    fail("{} and {} tokenize {} differently; compare needs the same tokenizer", args.base, args.quant,
         args.data);
  }

  eval::PerplexityOptions options;
  options.ctx = args.ctx;
  options.max_tokens = args.max_tokens;
  std::unique_ptr<ProgressBar> bar;
  const eval::KLDivergenceResult r = eval::compare_models(
      *base.transformer, *quant.transformer, tokens, options, [&](const eval::PerplexityProgress& p) {
        if (args.common.json) return;
        if (!bar) bar = std::make_unique<ProgressBar>("compare", static_cast<size_t>(p.windows_total));
        bar->set_suffix(fmt::format("quant ppl {:.4f}", p.running_ppl));
        bar->update(static_cast<size_t>(p.windows_done));
      });
  if (bar) bar->finish();

  if (args.common.json) {
    nlohmann::json out = {{"base", args.base},
                          {"quant", args.quant},
                          {"data", args.data},
                          {"ctx", args.ctx},
                          {"tokens", r.tokens},
                          {"windows", r.base.windows},
                          {"ppl_base", r.base.ppl},
                          {"ppl_quant", r.quant.ppl},
                          {"ppl_ratio", r.quant.ppl / r.base.ppl},
                          {"kl_mean", r.kl_mean},
                          {"kl_median", r.kl_median},
                          {"kl_p99", r.kl_p99},
                          {"kl_max", r.kl_max},
                          {"top1_agreement", r.top1_agreement},
                          {"seconds", r.seconds}};
    if (quant.quant) out["quantization"] = describe_quantization(quant);
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("scored tokens     {} ({} windows of {})\n", r.tokens, r.base.windows, args.ctx);
    fmt::print("ppl base          {:.4f}\n", r.base.ppl);
    fmt::print("ppl quant         {:.4f}  ({:+.3f} %)\n", r.quant.ppl,
               100.0 * (r.quant.ppl / r.base.ppl - 1.0));
    fmt::print("KL mean           {:.6f}\n", r.kl_mean);
    fmt::print("KL median         {:.6f}\n", r.kl_median);
    fmt::print("KL p99            {:.6f}\n", r.kl_p99);
    fmt::print("KL max            {:.6f}\n", r.kl_max);
    fmt::print("top-1 agreement   {:.4f} %\n", 100.0 * r.top1_agreement);
    fmt::print("({:.1f} s)\n", r.seconds);
  }
  return 0;
}

}  // namespace

void register_compare(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "Perplexities, KL divergence and top-1 agreement of a quantized model against its base");
  cmd->footer(
      "Both models run the same windows as `lowbit ppl` (consecutive windows of --ctx tokens, each scored "
      "on\n"
      "its ctx-1 next-token predictions). KL is KL(base || quant) in nats per scored token, as llama.cpp's\n"
      "--kl-divergence reports it; top-1 agreement is the share of positions whose most likely tokens "
      "agree.");
  cmd->add_option("base", args->base, "Base (float) model folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("quant", args->quant, "Quantized model folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--data,-d", args->data, "UTF-8 text file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--ctx,-c", args->ctx, "Window length in tokens")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-tokens", args->max_tokens, "Use only the first N tokens of the text (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  add_common_options(cmd, args->common);
  add_kv_cache_dtype_option(cmd, args->common, "fp32");
  commands.emplace_back(cmd, [args] { return run_compare(*args); });
}

}  // namespace lowbit::cli

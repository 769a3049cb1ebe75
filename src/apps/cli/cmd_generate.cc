// lowbit generate MODEL --prompt TEXT: streams a continuation to stdout.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "runtime/generate.h"

namespace lowbit::cli {
namespace {

struct GenerateArgs {
  CommonOptions common;
  std::string model;
  std::string prompt;
  int64_t max_tokens = 128;
  float temperature = 0.8f;
  float top_p = 0.95f;
  int top_k = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
};

int run_generate(const GenerateArgs& args) {
  apply_threads(args.common);
  LoadedModel loaded = load_model(args.model, args.common.json);
  apply_kv_cache_dtype(loaded, args.common.kv_cache_dtype);
  const Tokenizer& tokenizer = *loaded.tokenizer;

  std::vector<int32_t> prompt = tokenizer.encode(args.prompt, /*add_special_tokens=*/true);
  if (prompt.empty()) prompt.push_back(tokenizer.bos_id());

  runtime::GenerateOptions options;
  options.max_new_tokens = args.max_tokens;
  options.sampler.temperature = args.temperature;
  options.sampler.top_p = args.top_p;
  options.sampler.top_k = args.top_k;
  options.sampler.seed = args.seed;
  options.ignore_eos = args.ignore_eos;

  // The prompt goes through the stream decoder first (its text discarded) so that the SentencePiece
  // "strip the leading space" rule applies to the prompt, not to the first generated word.
  StreamDecoder stream(tokenizer);
  for (const int32_t token : prompt) stream.push(token);
  std::string text;
  if (!args.common.json) {
    std::fputs(args.prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  const runtime::GenerateResult result =
      runtime::generate(*loaded.transformer, prompt, options, [&](int32_t token) {
        std::string piece = stream.push(token);
        text += piece;
        if (!args.common.json && !piece.empty()) {
          std::fputs(piece.c_str(), stdout);
          std::fflush(stdout);
        }
        return true;
      });
  const std::string tail = stream.finish();
  text += tail;

  const auto generated = static_cast<double>(result.tokens.size());
  const double decode_tps = result.tokens.size() > 1 ? (generated - 1) / result.decode_seconds : 0.0;
  const double prefill_tps = static_cast<double>(result.prompt_tokens) / result.prefill_seconds;
  if (args.common.json) {
    nlohmann::json out = {{"prompt", args.prompt},
                          {"text", text},
                          {"prompt_tokens", result.prompt_tokens},
                          {"generated_tokens", result.tokens.size()},
                          {"tokens", result.tokens},
                          {"stopped_at_eos", result.stopped_at_eos},
                          {"load_seconds", loaded.load_seconds},
                          {"ttft_seconds", result.prefill_seconds},
                          {"prefill_tokens_per_second", prefill_tps},
                          {"decode_tokens_per_second", decode_tps}};
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("{}\n", tail);
    fmt::print(stderr, "\n[{} prompt tokens, {} generated; TTFT {:.1f} ms, decode {:.1f} tok/s]\n",
               result.prompt_tokens, result.tokens.size(), result.prefill_seconds * 1e3, decode_tps);
  }
  return 0;
}

}  // namespace

void register_generate(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt, streaming it to stdout");
  cmd->add_option("model", args->model, "Model folder (Hugging Face layout)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--prompt,-p", args->prompt, "Prompt text")->required();
  cmd->add_option("--max-tokens,-n", args->max_tokens, "Tokens to generate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", args->temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling threshold")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--top-k", args->top_k, "Keep only the k most likely tokens (0 = off)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed (same seed, same text)")->capture_default_str();
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Keep generating after the end-of-sequence token");
  add_common_options(cmd, args->common);
  add_kv_cache_dtype_option(cmd, args->common, "auto");
  commands.emplace_back(cmd, [args] { return run_generate(*args); });
}

}  // namespace lowbit::cli

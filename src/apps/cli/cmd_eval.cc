// lowbit eval MODEL [MODEL ...] --task T --data FILE: task accuracy the way lm-evaluation-harness
// measures it (see eval/tasks/ and docs/EVAL.md). Several models are run one after the other on the same
// examples and compared in one table, the first model being the base.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "eval/tasks/report.h"
#include "eval/tasks/task_runner.h"
#include "util/error.h"
#include "util/files.h"
#include "util/progress.h"

namespace lowbit::cli {
namespace {

struct EvalArgs {
  CommonOptions common;
  std::vector<std::string> models;
  std::string task;
  std::string data;
  std::string fewshot_file;
  std::string log;
  int64_t shots = -1;  // -1: the task's default (gsm8k 5, others 0)
  int64_t limit = 0;
  int64_t max_new_tokens = 256;
  int64_t max_length = 0;
  std::vector<std::string> stop;
  std::string target_delimiter = " ";
  bool no_bos = false;
};

// The folder's name for progress bars ("a/b/" -> "b").
std::string folder_name(const std::string& dir) {
  std::filesystem::path p(dir);
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

std::string progress_suffix(const eval::ModelRun& run) {
  std::string s;
  for (size_t k = 0; k < run.metrics.size(); ++k) {
    double sum = 0;
    for (double v : run.values[k]) sum += v;
    s += fmt::format("{}{} {:.3f}", k ? "  " : "", run.metrics[k],
                     sum / static_cast<double>(run.values[k].size()));
  }
  return s;
}

int run_eval(const EvalArgs& args) {
  apply_threads(args.common);
  eval::TaskOptions options;
  options.kind = eval::parse_task_kind(args.task);
  options.shots = args.shots >= 0 ? args.shots : (options.kind == eval::TaskKind::Gsm8k ? 5 : 0);
  options.limit = args.limit;
  options.max_new_tokens = args.max_new_tokens;
  options.max_length = args.max_length;
  options.stop = args.stop;
  options.target_delimiter = args.target_delimiter;
  options.add_bos = !args.no_bos;
  std::optional<std::filesystem::path> fewshot;
  if (!args.fewshot_file.empty()) fewshot = args.fewshot_file;
  const eval::TaskData task = eval::prepare_task(args.data, fewshot, options);

  eval::ReportHeader header{args.task, args.data, options.shots, static_cast<int64_t>(task.size()),
                            task.fewshot_taken_from_data};
  std::vector<eval::ModelReport> reports;
  std::string log_lines;
  for (const std::string& dir : args.models) {
    LoadedModel loaded = load_model(dir, args.common.json);
    apply_kv_cache_dtype(loaded, args.common.kv_cache_dtype);
    eval::ModelReport report;
    report.model = dir;
    report.quantization = describe_quantization(loaded);
    report.load_seconds = loaded.load_seconds;
    ProgressBar bar(folder_name(dir), task.size());
    report.run = eval::run_task(task, *loaded.transformer, *loaded.tokenizer, options,
                                [&](size_t done, const eval::ModelRun& so_far) {
                                  bar.set_suffix(progress_suffix(so_far));
                                  bar.update(done);
                                });
    bar.finish();
    for (nlohmann::json line : report.run.logs) {
      line["model"] = dir;
      line["task"] = args.task;
      log_lines += line.dump() + "\n";
    }
    report.run.logs.clear();  // written below; not kept in memory for the next models
    reports.push_back(std::move(report));
  }
  if (!args.log.empty()) write_file_atomic(args.log, log_lines);

  if (args.common.json) {
    fmt::print("{}\n", eval::report_json(header, reports).dump());
  } else {
    fmt::print("{}", eval::format_table(header, reports));
  }
  return 0;
}

}  // namespace

void register_eval(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Task accuracy (HellaSwag, GSM8K, any multiple-choice or generation JSONL), lm-eval's method");
  cmd->footer(
      "Multiple choice (hellaswag, mc-jsonl): each choice is scored by its log-likelihood after the "
      "context;\n"
      "acc picks the highest, acc_norm the highest per character. Generation (gsm8k, gen-jsonl): greedy\n"
      "decoding until a stop string; gsm8k reports strict (\"#### N\") and flexible (last number) match.\n"
      "Give several models to compare them (the first is the base). Data formats: docs/EVAL.md.");
  cmd->add_option("models", args->models, "Model folders (the first is the base of the comparison)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--task", args->task, "hellaswag | mc-jsonl | gsm8k | gen-jsonl")
      ->required()
      ->check(CLI::IsMember({"hellaswag", "mc-jsonl", "gsm8k", "gen-jsonl"}));
  cmd->add_option("--data,-d", args->data, "JSONL data file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shots,-k", args->shots,
                  "Few-shot examples (default: gsm8k 5, others 0); taken from --fewshot-file, else from the "
                  "first K lines of --data, which are then not evaluated")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--fewshot-file", args->fewshot_file, "JSONL file (same format) the shots come from")
      ->check(CLI::ExistingFile);
  cmd->add_option("--limit,-n", args->limit, "Evaluate only the first N examples (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--log", args->log, "Write one JSON line per model and example to this file");
  cmd->add_option("--max-new-tokens", args->max_new_tokens,
                  "Generation length limit (lm-eval's max_gen_toks)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--max-length", args->max_length,
                  "Context window in tokens; longer inputs lose their oldest tokens (0 = the model's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option(
         "--stop", args->stop,
         "Generation stop string (repeatable; default: \"Question:\" \"</s>\" \"<|im_end|>\" and a blank "
         "line). Escapes \\n are understood")
      ->allow_extra_args(false);
  cmd->add_option(
      "--target-delimiter", args->target_delimiter,
      "Text between a context and its choice or answer (lm-eval's target_delimiter; default: one space)");
  cmd->add_flag(
      "--no-bos", args->no_bos,
      "Encode without BOS (lm-eval's old add_bos_token=False default); by default the tokenizer's own "
      "special tokens are added, as current lm-eval does");
  add_common_options(cmd, args->common);
  add_kv_cache_dtype_option(cmd, args->common, "fp32");
  commands.emplace_back(cmd, [args] {
    for (std::string& s : args->stop) {
      std::string unescaped;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
          unescaped += '\n';
          ++i;
        } else {
          unescaped += s[i];
        }
      }
      s = unescaped;
    }
    return run_eval(*args);
  });
}

}  // namespace lowbit::cli

// Running one evaluation task on one model: few-shot prompt assembly, scoring (log-likelihood for
// multiple choice, greedy generation for the rest), and per-example metrics and logs.
//
// Few-shot examples come from the first K examples of `fewshot_file` when one is given, otherwise from
// the first K lines of the data file itself, which are then not evaluated (the shared GSM8K and HellaSwag
// files are test/validation splits only; lm-eval takes shots from the train split, first_n for gsm8k).
// A shot is written as context + target_delimiter + answer; shots are joined and followed by the
// few-shot delimiter, then the evaluated example's context, exactly like lm-eval's fewshot_context.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/tasks/datasets.h"
#include "eval/tasks/examples.h"
#include "runtime/transformer.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::eval {

struct TaskOptions {
  TaskKind kind = TaskKind::HellaSwag;
  int64_t shots = 0;
  int64_t limit = 0;  // > 0: evaluate only the first `limit` examples
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";
  bool add_bos = true;
  int64_t max_length = 0;  // context window in tokens; 0: the model's max_position_embeddings
  int64_t max_new_tokens = 256;
  std::vector<std::string> stop;  // generation stop strings
};

// The stop strings used when none are given: lm-eval gsm8k's "Question:", "</s>", "<|im_end|>", plus
// "\n\n" (the blank line that ends every few-shot answer; older lm-eval versions stopped there too).
std::vector<std::string> default_stop_strings();

struct TaskData {
  TaskKind kind = TaskKind::HellaSwag;
  std::vector<ChoiceExample> choice;
  std::vector<GenExample> gen;
  std::string fewshot_prefix;  // shots joined, ending with the few-shot delimiter; empty for 0-shot
  int64_t fewshot_taken_from_data = 0;
  size_t size() const { return is_multiple_choice(kind) ? choice.size() : gen.size(); }
};

TaskData prepare_task(const std::filesystem::path& data,
                      const std::optional<std::filesystem::path>& fewshot_file, const TaskOptions& options);

// Metric names, in report order: acc, acc_norm (multiple choice); strict_match, flexible_extract
// (gsm8k); exact, number (gen-jsonl: output == target after trimming; last number == target).
std::vector<std::string> metric_names(TaskKind kind);

struct ModelRun {
  std::vector<std::string> metrics;
  std::vector<std::vector<double>> values;  // [metric][example], 0/1
  std::vector<std::string> predictions;     // per example: chosen index or extracted answer (agreement)
  std::vector<nlohmann::json> logs;         // per example
  double seconds = 0.0;                     // scoring time, load excluded
};

using ExampleCallback = std::function<void(size_t done, const ModelRun& so_far)>;

ModelRun run_task(const TaskData& task, const runtime::Transformer& model, const Tokenizer& tokenizer,
                  const TaskOptions& options, const ExampleCallback& on_example = {});

}  // namespace lowbit::eval

// Loading the data sets `lowbit eval` knows into ChoiceExample / GenExample, with each set's
// preprocessing as lm-evaluation-harness defines it. Formats (one JSON object per line):
//   hellaswag:  {"activity_label", "ctx_a", "ctx_b", "endings": [4], "label"}  (the HF validation rows)
//   mc-jsonl:   {"context": str, "choices": [str, ...], "label": int}          (ARC, PIQA, MMLU-style)
//   gsm8k:      {"question": str, "answer": "... #### 42"}                     (openai/grade-school-math)
//   gen-jsonl:  {"prompt": str, "target": str}
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "eval/tasks/examples.h"
#include "eval/tasks/jsonl.h"

namespace lowbit::eval {

// lm-eval's HellaSwag text cleanup: strip, " [title]" -> ". ", drop "[...]" (not across a newline),
// "  " -> " " (one pass, as Python's str.replace does).
std::string hellaswag_preprocess(std::string_view text);
// query = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)); choices = preprocess(ending).
ChoiceExample hellaswag_example(const JsonlRecord& record);

ChoiceExample mc_jsonl_example(const JsonlRecord& record);
// prompt = "Question: " + question + "\nAnswer:", target = answer (the full worked solution).
GenExample gsm8k_example(const JsonlRecord& record);
GenExample gen_jsonl_example(const JsonlRecord& record);

// The task names accepted by `lowbit eval --task`.
enum class TaskKind { HellaSwag, MultipleChoiceJsonl, Gsm8k, GenerationJsonl };
TaskKind parse_task_kind(std::string_view name);
std::string_view task_name(TaskKind kind);
bool is_multiple_choice(TaskKind kind);

std::vector<ChoiceExample> load_choice_examples(TaskKind kind, const std::filesystem::path& path);
std::vector<GenExample> load_gen_examples(TaskKind kind, const std::filesystem::path& path);

}  // namespace lowbit::eval

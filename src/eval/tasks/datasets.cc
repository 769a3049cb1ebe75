#include "eval/tasks/datasets.h"

#include "eval/tasks/text.h"
#include "util/error.h"

namespace lowbit::eval {

namespace {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

// re.sub(r"\[.*?\]", "", text): at each "[" the shortest "[...]" without a newline inside is removed.
std::string remove_brackets(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == '[') {
      const size_t close = text.find_first_of("]\n", pos + 1);
      if (close != std::string_view::npos && text[close] == ']') {
        pos = close + 1;
        continue;
      }
    }
    out.push_back(text[pos++]);
  }
  return out;
}

void check_label(const ChoiceExample& ex) {
  if (ex.choices.empty()) fail("{}: no choices", ex.source);
  if (ex.label < 0 || ex.label >= static_cast<int64_t>(ex.choices.size())) {
    fail("{}: label {} is out of range for {} choices", ex.source, ex.label, ex.choices.size());
  }
  for (size_t i = 0; i < ex.choices.size(); ++i) {
    if (ex.choices[i].empty()) fail("{}: choice {} is empty", ex.source, i);
  }
}

}  // namespace

std::string hellaswag_preprocess(std::string_view text) {
  std::string s(python_strip(text));
  s = replace_all(s, " [title]", ". ");
  s = remove_brackets(s);
  return replace_all(s, "  ", " ");
}

ChoiceExample hellaswag_example(const JsonlRecord& record) {
  ChoiceExample ex;
  ex.source = record.source;
  const std::string ctx =
      jsonl_string(record, "ctx_a") + " " + python_capitalize(jsonl_string(record, "ctx_b"));
  ex.context = hellaswag_preprocess(jsonl_string(record, "activity_label") + ": " + ctx);
  for (const std::string& ending : jsonl_strings(record, "endings"))
    ex.choices.push_back(hellaswag_preprocess(ending));
  ex.label = jsonl_index(record, "label");
  check_label(ex);
  return ex;
}

ChoiceExample mc_jsonl_example(const JsonlRecord& record) {
  ChoiceExample ex;
  ex.source = record.source;
  ex.context = jsonl_string(record, "context");
  ex.choices = jsonl_strings(record, "choices");
  ex.label = jsonl_index(record, "label");
  check_label(ex);
  return ex;
}

GenExample gsm8k_example(const JsonlRecord& record) {
  return {record.source,
          "Question: " + jsonl_string(record, "question") + "\nAnswer:", jsonl_string(record, "answer")};
}

GenExample gen_jsonl_example(const JsonlRecord& record) {
  return {record.source, jsonl_string(record, "prompt"), jsonl_string(record, "target")};
}

TaskKind parse_task_kind(std::string_view name) {
  if (name == "hellaswag") return TaskKind::HellaSwag;
  if (name == "mc-jsonl") return TaskKind::MultipleChoiceJsonl;
  if (name == "gsm8k") return TaskKind::Gsm8k;
  if (name == "gen-jsonl") return TaskKind::GenerationJsonl;
  fail("unknown task \"{}\" (expected hellaswag, mc-jsonl, gsm8k or gen-jsonl)", name);
}

std::string_view task_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::HellaSwag:
      return "hellaswag";
    case TaskKind::MultipleChoiceJsonl:
      return "mc-jsonl";
    case TaskKind::Gsm8k:
      return "gsm8k";
    case TaskKind::GenerationJsonl:
      return "gen-jsonl";
  }
  return "?";
}

bool is_multiple_choice(TaskKind kind) {
  return kind == TaskKind::HellaSwag || kind == TaskKind::MultipleChoiceJsonl;
}

std::vector<ChoiceExample> load_choice_examples(TaskKind kind, const std::filesystem::path& path) {
  std::vector<ChoiceExample> out;
  for (const JsonlRecord& r : read_jsonl(path))
    out.push_back(kind == TaskKind::HellaSwag ? hellaswag_example(r) : mc_jsonl_example(r));
  return out;
}

std::vector<GenExample> load_gen_examples(TaskKind kind, const std::filesystem::path& path) {
  std::vector<GenExample> out;
  for (const JsonlRecord& r : read_jsonl(path))
    out.push_back(kind == TaskKind::Gsm8k ? gsm8k_example(r) : gen_jsonl_example(r));
  return out;
}

}  // namespace lowbit::eval

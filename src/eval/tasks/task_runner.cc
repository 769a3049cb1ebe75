#include "eval/tasks/task_runner.h"

#include <algorithm>
#include <chrono>
#include <type_traits>

#include "eval/tasks/answers.h"
#include "eval/tasks/generate_until.h"
#include "eval/tasks/loglikelihood.h"
#include "eval/tasks/metrics.h"
#include "eval/tasks/text.h"
#include "util/error.h"

namespace lowbit::eval {

std::vector<std::string> default_stop_strings() {
  return {"Question:", "</s>", "<|im_end|>", "\n\n"};
}

std::vector<std::string> metric_names(TaskKind kind) {
  switch (kind) {
    case TaskKind::HellaSwag:
    case TaskKind::MultipleChoiceJsonl:
      return {"acc", "acc_norm"};
    case TaskKind::Gsm8k:
      return {"strict_match", "flexible_extract"};
    case TaskKind::GenerationJsonl:
      return {"exact", "number"};
  }
  return {};
}

namespace {

template <typename Example>
std::string fewshot_prefix(const std::vector<Example>& shots, const TaskOptions& o) {
  std::string prefix;
  for (const Example& shot : shots) {
    if constexpr (std::is_same_v<Example, ChoiceExample>) {
      prefix += shot.context + o.target_delimiter + shot.choices[static_cast<size_t>(shot.label)];
    } else {
      prefix += shot.prompt + o.target_delimiter + shot.target;
    }
    prefix += o.fewshot_delimiter;
  }
  return prefix;
}

// Splits the loaded examples into shots and evaluated examples, and applies --limit.
template <typename Example>
void select(std::vector<Example>& data, std::optional<std::vector<Example>> fewshot_pool, TaskData& task,
            const TaskOptions& o, const std::filesystem::path& path) {
  const auto k = static_cast<size_t>(o.shots);
  std::vector<Example> shots;
  if (fewshot_pool) {
    if (fewshot_pool->size() < k)
      fail("--shots {} but the few-shot file has {} examples", k, fewshot_pool->size());
    shots.assign(fewshot_pool->begin(), fewshot_pool->begin() + static_cast<std::ptrdiff_t>(k));
  } else {
    if (data.size() <= k)
      fail("{}: --shots {} leaves no example to evaluate ({} in the file)", path.string(), k, data.size());
    shots.assign(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(k));
    data.erase(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(k));
    task.fewshot_taken_from_data = o.shots;
  }
  if (o.limit > 0 && data.size() > static_cast<size_t>(o.limit)) data.resize(static_cast<size_t>(o.limit));
  task.fewshot_prefix = fewshot_prefix(shots, o);
}

int64_t context_window(const runtime::Transformer& model, const TaskOptions& o) {
  return o.max_length > 0 ? o.max_length : model.config().max_position_embeddings;
}

void run_choice_example(const ChoiceExample& ex, const std::string& prefix, runtime::Session& session,
                        const runtime::Transformer& model, const Tokenizer& tokenizer, const TaskOptions& o,
                        ModelRun& run) {
  const std::string context = prefix + ex.context;
  std::vector<int32_t> context_tokens;
  std::vector<std::vector<int32_t>> continuations;
  for (size_t i = 0; i < ex.choices.size(); ++i) {
    EncodedPair pair = encode_pair(tokenizer, context, o.target_delimiter + ex.choices[i], o.add_bos);
    if (pair.continuation.empty()) fail("{}: choice {} adds no tokens after the context", ex.source, i);
    // The context's own encoding does not depend on the choice; only the continuation does.
    if (i == 0) context_tokens = std::move(pair.context);
    continuations.push_back(std::move(pair.continuation));
  }
  const auto scores = score_continuations(session, context_tokens, continuations, context_window(model, o));
  std::vector<double> lls;
  nlohmann::json is_greedy = nlohmann::json::array(), lengths = nlohmann::json::array(),
                 cont_tokens = nlohmann::json::array();
  for (size_t i = 0; i < scores.size(); ++i) {
    lls.push_back(scores[i].loglikelihood);
    is_greedy.push_back(scores[i].is_greedy);
    lengths.push_back(utf8_length(ex.choices[i]));
    cont_tokens.push_back(scores[i].tokens);
  }
  const ChoiceDecision d = decide(lls, ex.choices);
  const double acc = d.pred == ex.label ? 1.0 : 0.0, acc_norm = d.pred_norm == ex.label ? 1.0 : 0.0;
  run.values[0].push_back(acc);
  run.values[1].push_back(acc_norm);
  run.predictions.push_back(std::to_string(d.pred));
  run.logs.push_back({{"source", ex.source},
                      {"label", ex.label},
                      {"pred", d.pred},
                      {"pred_norm", d.pred_norm},
                      {"acc", acc},
                      {"acc_norm", acc_norm},
                      {"loglikelihoods", lls},
                      {"is_greedy", is_greedy},
                      {"choice_chars", lengths},
                      {"context_tokens", context_tokens.size()},
                      {"continuation_tokens", cont_tokens}});
}

void run_gen_example(const GenExample& ex, const std::string& prefix, runtime::Session& session,
                     const runtime::Transformer& model, const Tokenizer& tokenizer, const TaskOptions& o,
                     ModelRun& run) {
  std::vector<int32_t> prompt = tokenizer.encode(prefix + ex.prompt, o.add_bos);
  const int64_t budget = std::max<int64_t>(1, context_window(model, o) - o.max_new_tokens);
  if (static_cast<int64_t>(prompt.size()) > budget) prompt.erase(prompt.begin(), prompt.end() - budget);
  GenerateUntilOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.stop = o.stop.empty() ? default_stop_strings() : o.stop;
  for (int64_t id : model.config().eos_token_ids) g.eos_ids.push_back(static_cast<int32_t>(id));
  if (g.eos_ids.empty() && tokenizer.eos_id() >= 0) g.eos_ids.push_back(tokenizer.eos_id());
  const GenerateUntilResult out = generate_until(session, tokenizer, prompt, g);

  nlohmann::json log = {{"source", ex.source},
                        {"prompt_tokens", prompt.size()},
                        {"output", out.text},
                        {"generated_tokens", out.tokens},
                        {"stop_reason", out.stop_reason},
                        {"target", ex.target}};
  if (o.kind == TaskKind::Gsm8k) {
    const std::string strict = gsm8k_strict_answer(out.text), flexible = gsm8k_flexible_answer(out.text);
    const double s = gsm8k_match(strict, ex.target) ? 1.0 : 0.0,
                 f = gsm8k_match(flexible, ex.target) ? 1.0 : 0.0;
    run.values[0].push_back(s);
    run.values[1].push_back(f);
    run.predictions.push_back(flexible);
    log.update({{"reference", gsm8k_normalize(ex.target)},
                {"strict_answer", strict},
                {"flexible_answer", flexible},
                {"strict_match", s},
                {"flexible_extract", f}});
  } else {
    const double e = python_strip(out.text) == python_strip(ex.target) ? 1.0 : 0.0;
    const std::string number = gsm8k_flexible_answer(out.text);
    const double n = gsm8k_match(number, python_strip(ex.target)) ? 1.0 : 0.0;
    run.values[0].push_back(e);
    run.values[1].push_back(n);
    run.predictions.push_back(std::string(python_strip(out.text)));
    log.update({{"number_answer", number}, {"exact", e}, {"number", n}});
  }
  run.logs.push_back(std::move(log));
}

}  // namespace

TaskData prepare_task(const std::filesystem::path& data,
                      const std::optional<std::filesystem::path>& fewshot_file, const TaskOptions& options) {
  if (options.shots < 0) fail("--shots must be >= 0, got {}", options.shots);
  TaskData task;
  task.kind = options.kind;
  if (is_multiple_choice(options.kind)) {
    task.choice = load_choice_examples(options.kind, data);
    std::optional<std::vector<ChoiceExample>> pool;
    if (fewshot_file) pool = load_choice_examples(options.kind, *fewshot_file);
    select(task.choice, std::move(pool), task, options, data);
  } else {
    task.gen = load_gen_examples(options.kind, data);
    std::optional<std::vector<GenExample>> pool;
    if (fewshot_file) pool = load_gen_examples(options.kind, *fewshot_file);
    select(task.gen, std::move(pool), task, options, data);
  }
  return task;
}

ModelRun run_task(const TaskData& task, const runtime::Transformer& model, const Tokenizer& tokenizer,
                  const TaskOptions& options, const ExampleCallback& on_example) {
  ModelRun run;
  run.metrics = metric_names(task.kind);
  run.values.resize(run.metrics.size());
  runtime::Session session(model);
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < task.size(); ++i) {
    if (is_multiple_choice(task.kind)) {
      run_choice_example(task.choice[i], task.fewshot_prefix, session, model, tokenizer, options, run);
    } else {
      run_gen_example(task.gen[i], task.fewshot_prefix, session, model, tokenizer, options, run);
    }
    run.logs.back()["index"] = i;
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_example) on_example(i + 1, run);
  }
  return run;
}

}  // namespace lowbit::eval

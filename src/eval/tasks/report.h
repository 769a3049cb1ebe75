// The comparison report of `lowbit eval`: one row per model (the first is the base), each metric as
// mean ± standard error, the difference to the base (± its paired standard error), how often the model's
// prediction agrees with the base's, and the time per example.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/tasks/metrics.h"
#include "eval/tasks/task_runner.h"

namespace lowbit::eval {

struct ModelReport {
  std::string model;         // folder as given
  std::string quantization;  // one line, empty for a float checkpoint
  double load_seconds = 0.0;
  ModelRun run;
  std::vector<MeanStderr> summary() const;
  double seconds_per_example() const;
};

struct ReportHeader {
  std::string task;
  std::string data;
  int64_t shots = 0;
  int64_t examples = 0;
  int64_t fewshot_taken_from_data = 0;
};

// Fraction of examples where both runs predicted the same (choice index or extracted answer).
double agreement(const ModelRun& a, const ModelRun& b);
// Mean and standard error of the per-example difference b - a of metric k (a paired comparison: much
// tighter than the two accuracies' own standard errors when the models mostly agree).
MeanStderr paired_delta(const ModelRun& a, const ModelRun& b, size_t k);

std::string format_table(const ReportHeader& header, const std::vector<ModelReport>& models);
nlohmann::json report_json(const ReportHeader& header, const std::vector<ModelReport>& models);

}  // namespace lowbit::eval

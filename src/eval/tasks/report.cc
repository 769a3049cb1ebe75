#include "eval/tasks/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace lowbit::eval {

std::vector<MeanStderr> ModelReport::summary() const {
  std::vector<MeanStderr> out;
  for (const auto& v : run.values) out.push_back(mean_stderr(v));
  return out;
}

double ModelReport::seconds_per_example() const {
  return run.predictions.empty() ? 0.0 : run.seconds / static_cast<double>(run.predictions.size());
}

double agreement(const ModelRun& a, const ModelRun& b) {
  const size_t n = std::min(a.predictions.size(), b.predictions.size());
  if (n == 0) return 0.0;
  size_t same = 0;
  for (size_t i = 0; i < n; ++i) same += a.predictions[i] == b.predictions[i];
  return static_cast<double>(same) / static_cast<double>(n);
}

MeanStderr paired_delta(const ModelRun& a, const ModelRun& b, size_t k) {
  const size_t n = std::min(a.values[k].size(), b.values[k].size());
  std::vector<double> diff(n);
  for (size_t i = 0; i < n; ++i) diff[i] = b.values[k][i] - a.values[k][i];
  return mean_stderr(diff);
}

namespace {

std::string short_name(const std::string& path) {
  std::filesystem::path p(path);
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string().empty() ? path : p.filename().string();
}

std::string pm(const MeanStderr& m) {
  if (std::isnan(m.stderr_)) return fmt::format("{:.4f}", m.mean);
  return fmt::format("{:.4f} ± {:.4f}", m.mean, m.stderr_);
}

}  // namespace

std::string format_table(const ReportHeader& h, const std::vector<ModelReport>& models) {
  std::string out = fmt::format("{}: {} examples, {}-shot, {}", h.task, h.examples, h.shots, h.data);
  if (h.fewshot_taken_from_data > 0)
    out += fmt::format(" (shots: its first {} lines, not evaluated)", h.fewshot_taken_from_data);
  out += "\n";
  if (models.empty()) return out;
  const auto& names = models.front().run.metrics;
  size_t name_width = 5;
  for (const auto& m : models) name_width = std::max(name_width, short_name(m.model).size());
  // "±" is two bytes but one column: pad by characters, not bytes.
  auto cell = [](const std::string& s, size_t width) {
    size_t chars = 0;
    for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
    return s + std::string(width > chars ? width - chars : 0, ' ');
  };
  std::string head = cell("model", name_width + 2);
  // Column widths: "0.2810 ± 0.0142" and "+0.0010 ± 0.0031", or the metric's name when longer.
  std::vector<size_t> value_width, delta_width;
  for (const auto& n : names) {
    value_width.push_back(std::max<size_t>(18, n.size() + 2));
    delta_width.push_back(std::max<size_t>(19, n.size() + 3));
    head += cell(n, value_width.back()) + cell("Δ" + n, delta_width.back());
  }
  head += cell("agree", 8) + "s/example\n";
  out += head;
  for (size_t r = 0; r < models.size(); ++r) {
    const auto s = models[r].summary();
    std::string row = cell(short_name(models[r].model), name_width + 2);
    for (size_t k = 0; k < s.size(); ++k) {
      row += cell(pm(s[k]), value_width[k]);
      const MeanStderr d = r == 0 ? MeanStderr{} : paired_delta(models[0].run, models[r].run, k);
      row += cell(r == 0 ? "-" : fmt::format("{:+.4f} ± {:.4f}", d.mean, d.stderr_), delta_width[k]);
    }
    row += cell(r == 0 ? "-" : fmt::format("{:.3f}", agreement(models[0].run, models[r].run)), 8);
    row += fmt::format("{:.3f}\n", models[r].seconds_per_example());
    out += row;
  }
  for (const auto& m : models)
    if (!m.quantization.empty()) out += fmt::format("  {}: {}\n", short_name(m.model), m.quantization);
  return out;
}

nlohmann::json report_json(const ReportHeader& h, const std::vector<ModelReport>& models) {
  nlohmann::json out = {{"task", h.task},
                        {"data", h.data},
                        {"shots", h.shots},
                        {"examples", h.examples},
                        {"fewshot_taken_from_data", h.fewshot_taken_from_data},
                        {"models", nlohmann::json::array()}};
  for (size_t r = 0; r < models.size(); ++r) {
    const ModelReport& m = models[r];
    const auto s = m.summary();
    nlohmann::json metrics = nlohmann::json::object();
    for (size_t k = 0; k < s.size(); ++k) {
      nlohmann::json entry = {
          {"value", s[k].mean},
          {"stderr", std::isnan(s[k].stderr_) ? nlohmann::json() : nlohmann::json(s[k].stderr_)}};
      if (r > 0) {
        const MeanStderr d = paired_delta(models[0].run, m.run, k);
        entry["delta"] = d.mean;
        entry["delta_stderr"] = std::isnan(d.stderr_) ? nlohmann::json() : nlohmann::json(d.stderr_);
      }
      metrics[m.run.metrics[k]] = entry;
    }
    nlohmann::json row = {{"model", m.model},
                          {"quantization", m.quantization},
                          {"metrics", metrics},
                          {"seconds", m.run.seconds},
                          {"seconds_per_example", m.seconds_per_example()},
                          {"load_seconds", m.load_seconds}};
    if (r > 0) row["agreement_with_base"] = agreement(models[0].run, m.run);
    out["models"].push_back(row);
  }
  return out;
}

}  // namespace lowbit::eval

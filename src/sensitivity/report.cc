#include "sensitivity/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sensitivity/module_bytes.h"
#include "sensitivity/svg_charts.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit::sensitivity {
namespace {

nlohmann::json end_to_end_json(const EndToEnd& e, const EndToEnd& base) {
  return {{"kl_mean", e.kl_mean},
          {"kl_max", e.kl_max},
          {"nll", e.nll},
          {"ppl", e.ppl},
          {"delta_ppl_percent", 100.0 * (e.ppl / base.ppl - 1.0)},
          {"top1_agreement", e.top1_agreement}};
}

// Ranks (1 = smallest), ties get their average rank.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = (static_cast<double>(i + j) / 2.0) + 1.0;
    i = j + 1;
  }
  return r;
}

// Spearman's rank correlation of two equally long series (0 when either is constant).
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size()), mean = (n + 1.0) / 2.0;
  double sab = 0.0, saa = 0.0, sbb = 0.0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return saa > 0.0 && sbb > 0.0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

std::vector<double> column(const nlohmann::json& modules, const char* key) {
  std::vector<double> out;
  for (const auto& m : modules) out.push_back(m[key].is_null() ? 0.0 : m[key].get<double>());
  return out;
}

bool has_end_to_end(const nlohmann::json& report) {
  return !report["modules"].empty() && !report["modules"][0]["kl_mean"].is_null();
}

std::vector<ChartCell> cells(const nlohmann::json& modules, const char* key) {
  std::vector<ChartCell> out;
  for (const auto& m : modules)
    out.push_back({m["layer"].get<int64_t>(), m["type"].get<std::string>(), m[key].get<double>()});
  return out;
}

}  // namespace

nlohmann::json report_json(const ScanResult& scan, const ReportContext& ctx) {
  nlohmann::json modules = nlohmann::json::array();
  for (const ModuleSensitivity& m : scan.modules) {
    nlohmann::json j = {{"name", m.name},
                        {"type", m.type},
                        {"layer", m.layer},
                        {"rows", m.rows},
                        {"cols", m.cols},
                        {"params", m.rows * m.cols},
                        {"weight_dtype", std::string(dtype_name(m.weight_dtype))},
                        {"dense_bytes", dense_bytes(m.rows, m.cols, m.weight_dtype)},
                        {"channel_variance", m.stats.channel_variance},
                        {"max_mean_ratio", m.stats.max_mean_ratio},
                        {"kurtosis", m.stats.kurtosis},
                        {"output_rel_mse", m.output_rel_mse}};
    j["quantized_bytes"] = nullptr;
    if (ctx.plan)
      if (const QuantScheme* s = ctx.plan->scheme_for(m.name))
        j["quantized_bytes"] = quantized_bytes(*s, m.rows, m.cols, m.weight_dtype, ctx.format);
    for (const char* k : {"kl_mean", "kl_max", "nll", "ppl", "delta_ppl_percent", "top1_agreement"})
      j[k] = nullptr;
    if (m.end_to_end) j.update(end_to_end_json(*m.end_to_end, scan.base));
    modules.push_back(std::move(j));
  }
  nlohmann::json groups = nlohmann::json::array();
  for (const GroupSensitivity& g : scan.groups) {
    nlohmann::json j = {{"name", g.name}, {"modules", g.modules}};
    j.update(end_to_end_json(g.end_to_end, scan.base));
    groups.push_back(std::move(j));
  }
  nlohmann::json calib = nullptr;
  if (ctx.data)
    calib = {{"description", ctx.data->describe()},
             {"files", ctx.data->files},
             {"num_samples", ctx.data->num_samples()},
             {"seq_len", ctx.seq_len},
             {"seed", ctx.data->seed},
             {"offsets", ctx.data->offsets},
             {"scored_positions", scan.positions}};
  nlohmann::json report = {
      {"schema", "lowbit.sensitivity/1"},
      {"model", ctx.model},
      {"scheme", ctx.scheme},
      {"format", ctx.format.empty() ? "auto" : ctx.format},
      {"granularity", to_string(scan.granularity)},
      {"end_to_end", "weights fake-quantized with the scheme's RTN quantizer, one run at a time"},
      {"calibration", calib},
      {"threads", ctx.threads},
      {"base", {{"nll", scan.base.nll}, {"ppl", scan.base.ppl}}},
      {"modules", modules},
      {"groups", groups},
      {"notes", scan.notes},
      {"resident_bytes", scan.resident_bytes},
      {"timing",
       {{"seconds", scan.seconds},
        {"load_seconds", scan.load_seconds},
        {"base_seconds", scan.base_seconds},
        {"scan_seconds", scan.scan_seconds}}}};
  // How well the cheap proxies rank the modules like the end-to-end metric does.
  nlohmann::json corr = nlohmann::json::object();
  if (has_end_to_end(report) && modules.size() > 1) {
    const std::vector<double> kl = column(modules, "kl_mean");
    for (const char* k : {"output_rel_mse", "channel_variance", "max_mean_ratio", "kurtosis"})
      corr[k] = spearman(kl, column(modules, k));
  }
  report["spearman_vs_kl"] = corr;
  return report;
}

std::string report_markdown(const nlohmann::json& r) {
  std::string s = fmt::format("# Sensitivity of {} to {}\n\n", r["model"].get<std::string>(),
                              r["scheme"].get<std::string>());
  if (!r["calibration"].is_null())
    s += fmt::format("Calibration: {} ({} scored positions). ",
                     r["calibration"]["description"].get<std::string>(),
                     r["calibration"]["scored_positions"].get<int64_t>());
  s += fmt::format(
      "Base model: ppl {:.4f} on these positions. Granularity: {}. Scan time {:.1f} s on {} threads.\n\n",
      r["base"]["ppl"].get<double>(), r["granularity"].get<std::string>(),
      r["timing"]["seconds"].get<double>(), r["threads"].get<int>());
  const bool e2e = has_end_to_end(r);
  if (!r["spearman_vs_kl"].empty()) {
    s += "Spearman rank correlation of each cheap proxy with the end-to-end KL:";
    for (auto& [k, v] : r["spearman_vs_kl"].items()) s += fmt::format(" {} {:.2f};", k, v.get<double>());
    s += "\n\n";
  }
  if (!r["groups"].empty()) {
    s += "| quantized alone | modules | KL mean | KL max | Δppl | top-1 |\n|---|---:|---:|---:|---:|---:|\n";
    for (const auto& g : r["groups"])
      s += fmt::format("| {} | {} | {:.3e} | {:.3e} | {:+.3f} % | {:.1f} % |\n", g["name"].get<std::string>(),
                       g["modules"].size(), g["kl_mean"].get<double>(), g["kl_max"].get<double>(),
                       g["delta_ppl_percent"].get<double>(), 100.0 * g["top1_agreement"].get<double>());
    s += "\n";
  }
  std::vector<nlohmann::json> modules(r["modules"].begin(), r["modules"].end());
  const char* key = e2e ? "kl_mean" : "output_rel_mse";
  std::stable_sort(modules.begin(), modules.end(), [&](const auto& a, const auto& b) {
    return a[key].template get<double>() > b[key].template get<double>();
  });
  s += fmt::format("Modules, most sensitive first (by {}):\n\n",
                   e2e ? "end-to-end KL" : "layer-local output error");
  s += "| rank | module | KL mean | Δppl | top-1 | rel. output MSE | channel var | max/mean | kurtosis |\n"
       "|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
  int rank = 0;
  for (const auto& m : modules) {
    std::string kl = "—", dppl = "—", top1 = "—";
    if (e2e) {
      kl = fmt::format("{:.3e}", m["kl_mean"].get<double>());
      dppl = fmt::format("{:+.3f} %", m["delta_ppl_percent"].get<double>());
      top1 = fmt::format("{:.1f} %", 100.0 * m["top1_agreement"].get<double>());
    }
    s += fmt::format("| {} | {} | {} | {} | {} | {:.3e} | {:.3e} | {:.1f} | {:.2f} |\n", ++rank,
                     m["name"].get<std::string>(), kl, dppl, top1, m["output_rel_mse"].get<double>(),
                     m["channel_variance"].get<double>(), m["max_mean_ratio"].get<double>(),
                     m["kurtosis"].get<double>());
  }
  return s;
}

std::vector<std::string> write_report(const std::filesystem::path& dir, const nlohmann::json& r) {
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, std::string>> files = {{"sensitivity.json", r.dump(2) + "\n"},
                                                            {"sensitivity.md", report_markdown(r)}};
  const std::string scheme = r["scheme"].get<std::string>();
  const nlohmann::json& modules = r["modules"];
  if (has_end_to_end(r)) {
    files.emplace_back("kl_by_layer.svg",
                       line_chart_svg("End-to-end KL when only one module is quantized (" + scheme + ")",
                                      "KL(base || quantized), nats", cells(modules, "kl_mean")));
    files.emplace_back("kl_heatmap.svg", heatmap_svg("End-to-end KL per module (" + scheme + ")", "KL (nats)",
                                                     cells(modules, "kl_mean")));
  }
  files.emplace_back("output_mse_by_layer.svg",
                     line_chart_svg("Layer-local relative output MSE (" + scheme + ")",
                                    "||Wx - Q(W)x||² / ||Wx||²", cells(modules, "output_rel_mse")));
  files.emplace_back("output_mse_heatmap.svg", heatmap_svg("Layer-local relative output MSE (" + scheme + ")",
                                                           "rel. MSE", cells(modules, "output_rel_mse")));
  if (!r["groups"].empty()) {
    std::vector<std::pair<std::string, double>> bars;
    for (const auto& g : r["groups"])
      bars.emplace_back(g["name"].get<std::string>(), g["kl_mean"].get<double>());
    files.emplace_back(
        "kl_groups.svg",
        bar_chart_svg("End-to-end KL per " + r["granularity"].get<std::string>() + " (" + scheme + ")",
                      "KL (nats)", bars));
  }
  std::vector<std::string> names;
  for (const auto& [name, contents] : files) {
    write_file_atomic(dir / name, contents);
    names.push_back(name);
  }
  return names;
}

}  // namespace lowbit::sensitivity

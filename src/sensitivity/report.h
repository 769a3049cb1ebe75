// The outputs of `lowbit sensitivity`: sensitivity.json (schema in docs/SENSITIVITY.md), sensitivity.md (a
// Markdown table, most sensitive first) and SVG charts (sensitivity/svg_charts.h), written atomically into
// one folder.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "calib/calib_data.h"
#include "quant/plan.h"
#include "sensitivity/scan.h"

namespace lowbit::sensitivity {

// Where a scan came from (recorded in the JSON so that a report can be reproduced).
struct ReportContext {
  std::string model;
  std::string scheme;               // the recipe source ("--scheme W4A16")
  std::string format;               // export format the byte counts assume ("" = inferred)
  const QuantPlan* plan = nullptr;  // for the modules' quantized byte counts
  int threads = 0;
  const CalibDataset* data = nullptr;
  int64_t seq_len = 0;
};

// sensitivity.json. Everything except the "timing" object is deterministic for a fixed model, scheme,
// calibration choice (files, samples, length, seed) and thread count.
nlohmann::json report_json(const ScanResult& scan, const ReportContext& context);

// sensitivity.md: a summary, then one row per module (or group), most sensitive first.
std::string report_markdown(const nlohmann::json& report);

// Writes sensitivity.json, sensitivity.md and the charts into `dir` (created when missing); returns the
// file names written.
std::vector<std::string> write_report(const std::filesystem::path& dir, const nlohmann::json& report);

}  // namespace lowbit::sensitivity

// Small self-contained SVG charts (no dependency): a line chart of a per-module metric across layers (one
// line per module type, log scale), a layer x module-type heat map with a colour legend, and a bar chart.
// Values <= 0 are drawn at the smallest positive value (log scales).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::sensitivity {

struct ChartCell {
  int64_t layer = 0;
  std::string type;  // "q_proj", ...
  double value = 0.0;
};

// Types are drawn in the order of their first appearance in `cells`.
std::string line_chart_svg(const std::string& title, const std::string& y_label,
                           const std::vector<ChartCell>& cells);
std::string heatmap_svg(const std::string& title, const std::string& legend_label,
                        const std::vector<ChartCell>& cells);
std::string bar_chart_svg(const std::string& title, const std::string& y_label,
                          const std::vector<std::pair<std::string, double>>& bars);

}  // namespace lowbit::sensitivity

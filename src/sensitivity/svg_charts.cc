#include "sensitivity/svg_charts.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace lowbit::sensitivity {
namespace {

// A qualitative palette (Tableau 10) for lines and bars.
constexpr std::array<const char*, 10> kPalette = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else
      out += c;
  }
  return out;
}

// The smallest and largest log10 of the positive values; {+inf, -inf} when there is none.
std::pair<double, double> log_extent(const std::vector<double>& values) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values)
    if (v > 0.0) {
      lo = std::min(lo, std::log10(v));
      hi = std::max(hi, std::log10(v));
    }
  return {lo, hi};
}

// The log10 range [lo, hi] of the positive values (a decade wide at least).
std::pair<double, double> log_range(const std::vector<double>& values) {
  auto [lo, hi] = log_extent(values);
  if (!std::isfinite(lo)) return {-1.0, 0.0};
  lo = std::floor(lo);
  hi = std::max(std::ceil(hi), lo + 1.0);
  return {lo, hi};
}

// The log10 range [lo, hi] of the positive values, as they are (at least 0.1 wide).
std::pair<double, double> exact_log_range(const std::vector<double>& values) {
  const auto [lo, hi] = log_extent(values);
  if (!std::isfinite(lo)) return {-1.0, 0.0};
  if (hi - lo < 0.1) return {lo - 0.05, hi + 0.05};
  return {lo, hi};
}

double log_of(double v, double lo) {
  return v > 0.0 ? std::log10(v) : lo;
}

std::vector<std::string> types_in_order(const std::vector<ChartCell>& cells) {
  std::vector<std::string> types;
  for (const ChartCell& c : cells)
    if (std::find(types.begin(), types.end(), c.type) == types.end()) types.push_back(c.type);
  return types;
}

int64_t layer_count(const std::vector<ChartCell>& cells) {
  int64_t n = 0;
  for (const ChartCell& c : cells) n = std::max(n, c.layer + 1);
  return n;
}

// Viridis, interpolated between five anchors; t in [0, 1].
std::string viridis(double t) {
  static constexpr double anchors[5][3] = {
      {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  int rgb[3];
  for (int k = 0; k < 3; ++k)
    rgb[k] = static_cast<int>(std::lround(anchors[i][k] + f * (anchors[i + 1][k] - anchors[i][k])));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

std::string header(int width, int height, const std::string& title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      width, height, width / 2, escape(title));
}

// A log-scale y axis with a grid line per decade; returns the y of a log10 value.
struct LogAxis {
  double lo, hi;
  double top, bottom;
  double y(double log_value) const { return bottom - (log_value - lo) / (hi - lo) * (bottom - top); }
};

std::string y_axis(const LogAxis& a, double left, double right, const std::string& label) {
  std::string s;
  for (double d = a.lo; d <= a.hi + 1e-9; d += 1.0) {
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
                     left, a.y(d), right, a.y(d));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">1e{}</text>\n", left - 6,
                     a.y(d) + 4, static_cast<int>(d));
  }
  s += fmt::format("<text transform=\"translate(16,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                   (a.top + a.bottom) / 2, escape(label));
  return s;
}

}  // namespace

std::string line_chart_svg(const std::string& title, const std::string& y_label,
                           const std::vector<ChartCell>& cells) {
  const std::vector<std::string> types = types_in_order(cells);
  const int64_t layers = std::max<int64_t>(layer_count(cells), 1);
  const int width = 760, height = 420;
  const double left = 70, right = 600, top = 40, bottom = 370;
  std::vector<double> values;
  for (const ChartCell& c : cells) values.push_back(c.value);
  const auto [lo, hi] = log_range(values);
  const LogAxis axis{lo, hi, top, bottom};
  auto x = [&](int64_t layer) {
    return layers == 1 ? (left + right) / 2
                       : left + (right - left) * static_cast<double>(layer) / (layers - 1);
  };
  std::string s = header(width, height, title);
  s += y_axis(axis, left, right, y_label);
  for (int64_t l = 0; l < layers; ++l)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x(l), bottom + 18,
                     l);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">decoder layer</text>\n",
                   (left + right) / 2, bottom + 40);
  for (size_t t = 0; t < types.size(); ++t) {
    const char* color = kPalette[t % kPalette.size()];
    std::string points;
    for (const ChartCell& c : cells)
      if (c.type == types[t])
        points += fmt::format("{:.1f},{:.1f} ", x(c.layer), axis.y(log_of(c.value, lo)));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", color,
                     points);
    for (const ChartCell& c : cells)
      if (c.type == types[t])
        s += fmt::format(
            "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>layer {} {}: "
            "{:.4g}</title></circle>\n",
            x(c.layer), axis.y(log_of(c.value, lo)), color, c.layer, escape(c.type), c.value);
    const double ly = top + 10 + 20.0 * static_cast<double>(t);
    s += fmt::format(
        "<line x1=\"620\" y1=\"{0:.1f}\" x2=\"645\" y2=\"{0:.1f}\" stroke=\"{1}\" stroke-width=\"3\"/>\n", ly,
        color);
    s += fmt::format("<text x=\"652\" y=\"{:.1f}\">{}</text>\n", ly + 4, escape(types[t]));
  }
  return s + "</svg>\n";
}

std::string heatmap_svg(const std::string& title, const std::string& legend_label,
                        const std::vector<ChartCell>& cells) {
  const std::vector<std::string> types = types_in_order(cells);
  const int64_t layers = std::max<int64_t>(layer_count(cells), 1);
  const double cell_w = 78, cell_h = 26, left = 70, top = 60;
  const int width = static_cast<int>(left + cell_w * static_cast<double>(types.size()) + 150);
  const int height = static_cast<int>(top + cell_h * static_cast<double>(layers) + 40);
  std::vector<double> values;
  for (const ChartCell& c : cells) values.push_back(c.value);
  // The colour scale spans the exact range of the values (not whole decades): more contrast.
  const auto [lo, hi] = exact_log_range(values);
  std::string s = header(width, height, title);
  for (size_t t = 0; t < types.size(); ++t)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     left + cell_w * (static_cast<double>(t) + 0.5), top - 8, escape(types[t]));
  for (int64_t l = 0; l < layers; ++l)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">layer {}</text>\n", left - 6,
                     top + cell_h * (static_cast<double>(l) + 0.5) + 4, l);
  for (const ChartCell& c : cells) {
    const size_t t = static_cast<size_t>(std::find(types.begin(), types.end(), c.type) - types.begin());
    const double f = (log_of(c.value, lo) - lo) / (hi - lo);
    const double x = left + cell_w * static_cast<double>(t), y = top + cell_h * static_cast<double>(c.layer);
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" "
        "stroke=\"white\"><title>layer {} "
        "{}: {:.4g}</title></rect>\n",
        x, y, cell_w, cell_h, viridis(f), c.layer, escape(c.type), c.value);
    s += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"10\" fill=\"{}\">{:.2g}</text>\n",
        x + cell_w / 2, y + cell_h / 2 + 4, f > 0.6 ? "black" : "white", c.value);
  }
  // Legend: a vertical gradient from hi (top) to lo (bottom), labelled per decade.
  const double lx = left + cell_w * static_cast<double>(types.size()) + 30,
               lh = cell_h * static_cast<double>(layers);
  s += "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int k = 0; k <= 10; ++k)
    s += fmt::format("<stop offset=\"{:.1f}\" stop-color=\"{}\"/>", k / 10.0, viridis(k / 10.0));
  s += "</linearGradient></defs>\n";
  s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"18\" height=\"{:.1f}\" fill=\"url(#scale)\"/>\n",
                   lx, top, lh);
  auto label = [&](double log_value, const std::string& text) {
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx + 24,
                     top + lh - (log_value - lo) / (hi - lo) * lh + 4, text);
  };
  label(lo, fmt::format("{:.2g}", std::pow(10.0, lo)));
  label(hi, fmt::format("{:.2g}", std::pow(10.0, hi)));
  for (double d = std::ceil(lo + 0.15); d <= hi - 0.15; d += 1.0)
    label(d, fmt::format("1e{}", static_cast<int>(d)));
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", lx + 20, top - 8,
                   escape(legend_label));
  return s + "</svg>\n";
}

std::string bar_chart_svg(const std::string& title, const std::string& y_label,
                          const std::vector<std::pair<std::string, double>>& bars) {
  const double left = 70, top = 40, bottom = 330, bar_w = 44;
  const double right = left + bar_w * static_cast<double>(std::max<size_t>(bars.size(), 1)) + 20;
  const int width = static_cast<int>(right + 30), height = 420;
  std::vector<double> values;
  for (const auto& b : bars) values.push_back(b.second);
  const auto [lo, hi] = log_range(values);
  const LogAxis axis{lo, hi, top, bottom};
  std::string s = header(width, height, title);
  s += y_axis(axis, left, right, y_label);
  for (size_t i = 0; i < bars.size(); ++i) {
    const double x = left + 10 + bar_w * static_cast<double>(i), y = axis.y(log_of(bars[i].second, lo));
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: "
        "{:.4g}</title></rect>\n",
        x, y, bar_w - 8, bottom - y, kPalette[0], escape(bars[i].first), bars[i].second);
    s += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(45)\" font-size=\"11\">{}</text>\n",
                     x + 6, bottom + 12, escape(bars[i].first));
  }
  return s + "</svg>\n";
}

}  // namespace lowbit::sensitivity

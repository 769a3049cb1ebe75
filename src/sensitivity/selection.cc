#include "sensitivity/selection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "quant/model_quantizer.h"
#include "runtime/kernels.h"
#include "runtime/linear.h"
#include "sensitivity/module_bytes.h"
#include "sensitivity/weight_stats.h"
#include "util/error.h"

namespace lowbit::sensitivity {
namespace {

bool in_decoder_layer(const std::string& name) {
  return name.rfind("model.layers.", 0) == 0;
}

std::map<std::string, const LinearModule*> linears_of(const Model& model) {
  std::map<std::string, const LinearModule*> out;
  model.for_each_linear([&](const LinearModule& m) { out[m.name] = &m; }, /*include_tied_lm_head=*/true);
  return out;
}

double weight_variance_score(const LinearModule& m) {
  const int64_t rows = m.weight.shape[0], cols = m.weight.shape[1];
  std::vector<float> w(static_cast<size_t>(rows * cols));
  kernels::convert_rows_to_f32(runtime::dense_weight(m.weight), 0, rows, w.data());
  return weight_stats(w.data(), rows, cols).channel_variance;
}

}  // namespace

Selector parse_selector(std::string_view name) {
  if (name == "sensitivity") return Selector::Sensitivity;
  if (name == "random") return Selector::Random;
  if (name == "weight-stats") return Selector::WeightStats;
  fail("--selector {}: expected sensitivity, random or weight-stats", name);
}

std::string to_string(Selector s) {
  return s == Selector::Sensitivity ? "sensitivity" : s == Selector::Random ? "random" : "weight-stats";
}

uint64_t planned_export_bytes(const Model& model, const QuantPlan& plan, std::string_view format) {
  uint64_t total = 0;
  model.for_each_tensor([&](const std::string&, const TensorView& t) { total += t.nbytes; });
  const auto linears = linears_of(model);
  for (const PlannedModule& pm : plan.modules) {
    if (pm.decision != ModuleDecision::Quantized) continue;
    auto it = linears.find(pm.name);
    if (it == linears.end()) fail("planned module {} is not a linear module of the model", pm.name);
    const TensorView& w = it->second->weight;
    total -= w.nbytes;
    total += quantized_bytes(*plan.scheme_for(pm.name), w.shape[0], w.shape[1], w.dtype, format);
  }
  if (plan.recipe.kv_cache_scheme) {
    const DType e = model.embed_tokens().dtype;
    const uint64_t scale = e == DType::BF16 || e == DType::F16 || e == DType::F32 ? dtype_size(e) : 2;
    total += 2 * static_cast<uint64_t>(model.num_layers()) * scale;  // k_scale, v_scale per layer
  }
  return total;
}

std::vector<Candidate> make_candidates(const Model& model, const QuantPlan& plan,
                                       const SelectionRequest& request,
                                       const std::map<std::string, double>& scores) {
  const auto linears = linears_of(model);
  std::vector<Candidate> out;
  for (const PlannedModule& pm : plan.modules) {
    if (pm.decision != ModuleDecision::Quantized || !in_decoder_layer(pm.name)) continue;
    const LinearModule& m = *linears.at(pm.name);
    const TensorView& w = m.weight;
    Candidate c;
    c.name = pm.name;
    c.params = static_cast<uint64_t>(w.numel());
    c.quantized_bytes =
        quantized_bytes(*plan.scheme_for(pm.name), w.shape[0], w.shape[1], w.dtype, request.format);
    c.kept_bytes = request.keep_scheme ? quantized_bytes(*request.keep_scheme, w.shape[0], w.shape[1],
                                                         w.dtype, request.format)
                                       : dense_bytes(w.shape[0], w.shape[1], w.dtype);
    if (request.selector != Selector::Random) {
      auto it = scores.find(pm.name);
      if (it != scores.end()) {
        c.score = it->second;
      } else if (request.selector == Selector::WeightStats && scores.empty()) {
        c.score = weight_variance_score(m);
      } else {
        fail("no {} score for module {} (was the sensitivity report made for this model and scheme?)",
             to_string(request.selector), pm.name);
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

Selection select_modules(const std::vector<Candidate>& candidates, uint64_t size_all_quantized,
                         const SelectionRequest& request) {
  const int modes =
      request.keep_count.has_value() + request.max_bytes.has_value() + request.target_bits.has_value();
  if (modes != 1) fail("give exactly one of --keep-sensitive N, --max-size BYTES or --target-bits B");
  Selection s;
  s.selector = request.selector;
  s.size_all_quantized = size_all_quantized;
  s.size_selected = size_all_quantized;

  std::optional<uint64_t> budget = request.max_bytes;
  if (request.target_bits) {
    if (!(*request.target_bits > 0.0)) fail("--target-bits must be positive, got {}", *request.target_bits);
    uint64_t params = 0, quantized = 0;
    for (const Candidate& c : candidates) {
      params += c.params;
      quantized += c.quantized_bytes;
    }
    const auto candidate_budget =
        static_cast<uint64_t>(std::floor(*request.target_bits * static_cast<double>(params) / 8.0));
    budget = size_all_quantized - quantized + candidate_budget;
  }
  if (request.keep_count && *request.keep_count < 0) fail("--keep-sensitive must not be negative");

  // The order in which candidates are considered.
  std::vector<size_t> order(candidates.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (request.selector == Selector::Random) {
    std::mt19937_64 rng(request.seed);
    // Fisher-Yates with our own index draw: std::shuffle's algorithm is not fixed by the standard.
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  } else {
    auto key = [&](size_t i) {
      const Candidate& c = candidates[i];
      if (!budget) return c.score;
      return c.cost() > 0 ? c.score / static_cast<double>(c.cost()) : std::numeric_limits<double>::infinity();
    };
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
  }

  std::set<size_t> kept;
  if (request.keep_count) {
    for (size_t i = 0; i < order.size() && static_cast<int64_t>(kept.size()) < *request.keep_count; ++i) {
      kept.insert(order[i]);
      s.size_selected += static_cast<uint64_t>(candidates[order[i]].cost());
    }
    if (*request.keep_count > static_cast<int64_t>(candidates.size()))
      s.notes.push_back(fmt::format("--keep-sensitive {}: only {} candidate modules, keeping all of them",
                                    *request.keep_count, candidates.size()));
  } else {
    s.budget = budget;
    if (*budget < size_all_quantized) {
      s.notes.push_back(fmt::format(
          "the budget of {} bytes is below the size with every module quantized ({} bytes): no module is "
          "kept, and the model does not fit the budget",
          *budget, size_all_quantized));
    } else {
      int64_t left = static_cast<int64_t>(*budget - size_all_quantized);
      for (size_t i : order) {
        const int64_t cost = candidates[i].cost();
        if (cost > left) continue;
        kept.insert(i);
        left -= cost;
        s.size_selected = static_cast<uint64_t>(static_cast<int64_t>(s.size_selected) + cost);
      }
      if (kept.empty() && !candidates.empty())
        s.notes.push_back(
            fmt::format("the budget leaves {} bytes over the everything-quantized size; the "
                        "cheapest module to keep costs more: no module is kept",
                        *budget - size_all_quantized));
    }
  }
  for (size_t i : kept) s.kept.push_back(candidates[i].name);  // std::set: model order
  if (!candidates.empty() && kept.size() == candidates.size())
    s.notes.push_back("every candidate module is kept");
  return s;
}

void apply_selection(QuantRecipe& recipe, const Selection& selection, const SelectionRequest& request) {
  if (selection.kept.empty()) return;
  if (request.keep_scheme) {
    QuantScheme keep = *request.keep_scheme;
    keep.targets = selection.kept;
    recipe.groups.emplace_back(fmt::format("group_{}", recipe.groups.size()), std::move(keep));
  } else {
    recipe.ignore.insert(recipe.ignore.end(), selection.kept.begin(), selection.kept.end());
  }
  recipe.source +=
      fmt::format(" + {} modules kept by {} selection", selection.kept.size(), to_string(selection.selector));
}

nlohmann::json to_json(const Selection& s) {
  return {{"selector", to_string(s.selector)},
          {"kept", s.kept},
          {"size_all_quantized", s.size_all_quantized},
          {"size_selected", s.size_selected},
          {"budget", s.budget ? nlohmann::json(*s.budget) : nlohmann::json(nullptr)},
          {"notes", s.notes}};
}

std::map<std::string, double> sensitivity_scores(const nlohmann::json& report, std::string_view where) {
  std::map<std::string, double> out;
  if (!report.is_object() || !report.contains("modules") || !report["modules"].is_array())
    fail("{}: not a sensitivity report (no \"modules\" array)", where);
  for (const auto& m : report["modules"]) {
    if (!m.contains("name") || !m.contains("kl_mean") || m["kl_mean"].is_null())
      fail(
          "{}: module entry without an end-to-end kl_mean (run `lowbit sensitivity` with --granularity "
          "module): {}",
          where, m.dump().substr(0, 120));
    out[m["name"].get<std::string>()] = m["kl_mean"].get<double>();
  }
  return out;
}

}  // namespace lowbit::sensitivity

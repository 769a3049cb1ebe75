#include "quant/observer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <nlohmann/json.hpp>

#include "io/dtype.h"
#include "quant/quantizer_ref_detail.h"
#include "util/error.h"

namespace lowbit {

using detail::rnd;

namespace {

// compressed-tensors _quantize_dequantize for one element with its cell's qparams.
float fake_quant_one(float x, float scale, float zp, const QuantArgs& args, ComputeDType dt) {
  float t = rnd(rnd(x / scale, dt) + zp, dt);
  t = std::clamp(t, args.q_min(), args.q_max());
  float q = 0;
  if (args.type == QuantType::Int) {
    q = std::isnan(t) ? t : std::nearbyint(t);
  } else if (args.float_format == FloatFormat::E4M3) {
    q = e4m3_to_f32(f32_to_e4m3(t));
  } else {
    q = e5m2_to_f32(f32_to_e5m2(t));
  }
  return rnd(rnd(q - zp, dt) * scale, dt);
}

// The search itself, over cells given by cell_of(row, col).
template <typename CellOf>
void mse_search(const float* x, int64_t rows, int64_t cols, int64_t cells, CellOf cell_of,
                const QuantArgs& args, const MseOptions& o, ComputeDType dt, float* best_min,
                float* best_max) {
  const std::vector<float> v = detail::inputs_in(x, rows * cols, dt);
  std::vector<float> lo(static_cast<size_t>(cells), INFINITY), hi(static_cast<size_t>(cells), -INFINITY);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(cell_of(r, c));
      lo[i] = std::min(lo[i], v[static_cast<size_t>(r * cols + c)]);
      hi[i] = std::max(hi[i], v[static_cast<size_t>(r * cols + c)]);
    }
  }
  std::copy(lo.begin(), lo.end(), best_min);
  std::copy(hi.begin(), hi.end(), best_max);
  std::vector<double> best_err(static_cast<size_t>(cells), static_cast<double>(FLT_MAX));
  std::vector<float> smin(lo.size()), smax(hi.size()), scales(lo.size());
  std::vector<int8_t> zps(lo.size());
  std::vector<double> err(lo.size());
  int no_improve = 0;
  const int steps = static_cast<int>(o.maxshrink * o.grid);
  for (int step = 0; step < steps; ++step) {
    const float p = static_cast<float>(1.0 - step / o.grid);
    for (size_t i = 0; i < lo.size(); ++i) {
      smin[i] = rnd(lo[i] * p, dt);
      smax[i] = rnd(hi[i] * p, dt);
    }
    calculate_qparams_ref(smin.data(), smax.data(), cells, args, dt, scales.data(), zps.data());
    std::fill(err.begin(), err.end(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = static_cast<size_t>(cell_of(r, c));
        const float xv = v[static_cast<size_t>(r * cols + c)];
        const float zp = args.symmetric ? 0.0f : static_cast<float>(zps[i]);
        const float d = rnd(std::fabs(rnd(fake_quant_one(xv, scales[i], zp, args, dt) - xv, dt)), dt);
        err[i] += rnd(std::pow(d, static_cast<float>(o.norm)), dt);
      }
    }
    bool improved = false;
    for (size_t i = 0; i < err.size(); ++i) {
      const double e =
          dt == ComputeDType::BF16 ? round_to_bf16(static_cast<float>(err[i])) : static_cast<float>(err[i]);
      if (e < best_err[i]) {
        best_err[i] = e;
        best_min[i] = smin[i];
        best_max[i] = smax[i];
        improved = true;
      }
    }
    if (improved) {
      no_improve = 0;
    } else if (++no_improve >= o.patience) {
      break;
    }
  }
}

}  // namespace

ObserverKind observer_kind(const QuantArgs& args, bool for_weights) {
  const std::string name = args.observer.empty() ? "memoryless_minmax" : args.observer;
  if (name == "memoryless_minmax" || name == "memoryless") return ObserverKind::MemorylessMinMax;
  if (name == "static_minmax")
    return for_weights ? ObserverKind::MemorylessMinMax : ObserverKind::StaticMinMax;
  if (name == "minmax") return for_weights ? ObserverKind::MemorylessMinMax : ObserverKind::MovingMinMax;
  if (name == "memoryless_mse") return ObserverKind::MemorylessMse;
  if (name == "mse") return for_weights ? ObserverKind::MemorylessMse : ObserverKind::MovingMse;
  fail("observer '{}' is not supported; use memoryless_minmax, static_minmax, minmax, memoryless_mse or mse",
       name);
}

MseOptions mse_options(const QuantArgs& args) {
  MseOptions o;
  const nlohmann::json kw = nlohmann::json::parse(args.observer_kwargs_json);
  try {
    if (kw.contains("maxshrink")) o.maxshrink = kw["maxshrink"].get<double>();
    if (kw.contains("patience")) o.patience = kw["patience"].get<int>();
    if (kw.contains("grid")) o.grid = kw["grid"].get<double>();
    if (kw.contains("norm")) o.norm = kw["norm"].get<double>();
  } catch (const nlohmann::json::exception&) {
    fail("observer_kwargs {} has a field of the wrong type", kw.dump());
  }
  if (o.grid <= 0) fail("observer_kwargs: grid must be > 0, got {}", o.grid);
  if (o.maxshrink < 0 || o.maxshrink > 1)
    fail("observer_kwargs: maxshrink must be in [0, 1], got {}", o.maxshrink);
  return o;
}

void observe_mse_ref(const float* x, const ScaleGrid& grid, const QuantArgs& args, const MseOptions& options,
                     ComputeDType dt, float* min_vals, float* max_vals) {
  mse_search(
      x, grid.rows, grid.cols, grid.size(), [&](int64_t r, int64_t c) { return grid.index(r, c); }, args,
      options, dt, min_vals, max_vals);
}

ActivationObserver::ActivationObserver(const QuantArgs& args, int64_t features, ComputeDType dt)
    : args_(args), features_(features), dt_(dt), kind_(observer_kind(args, false)) {
  if (args.is_dynamic())
    fail("dynamic activation quantization ({}) has no calibration observer", describe(args));
  int64_t cells = 1;
  if (args.strategy == QuantStrategy::Group) {
    const int gs = args.group_size.value_or(0);
    if (gs <= 0 || features % gs != 0) {
      fail("activation group size {} does not divide the {} input features", gs, features);
    }
    cells = features / gs;
  } else if (args.strategy != QuantStrategy::Tensor) {
    fail("static activation quantization supports tensor and group strategies, not {}",
         to_string(args.strategy));
  }
  const nlohmann::json kw = nlohmann::json::parse(args.observer_kwargs_json);
  if (kw.contains("averaging_constant")) averaging_constant_ = kw["averaging_constant"].get<float>();
  min_.assign(static_cast<size_t>(cells), INFINITY);
  max_.assign(static_cast<size_t>(cells), -INFINITY);
}

void ActivationObserver::observe(const float* x, int64_t tokens) {
  const int64_t cells = num_qparams();
  const int64_t group = features_ / cells;
  const auto cell_of = [&](int64_t, int64_t c) { return c / group; };
  std::vector<float> lo(static_cast<size_t>(cells), INFINITY), hi(static_cast<size_t>(cells), -INFINITY);
  if (kind_ == ObserverKind::MemorylessMse || kind_ == ObserverKind::MovingMse) {
    mse_search(x, tokens, features_, cells, cell_of, args_, mse_options(args_), dt_, lo.data(), hi.data());
  } else {
    const std::vector<float> v = detail::inputs_in(x, tokens * features_, dt_);
    for (int64_t r = 0; r < tokens; ++r) {
      for (int64_t c = 0; c < features_; ++c) {
        const size_t i = static_cast<size_t>(cell_of(r, c));
        lo[i] = std::min(lo[i], v[static_cast<size_t>(r * features_ + c)]);
        hi[i] = std::max(hi[i], v[static_cast<size_t>(r * features_ + c)]);
      }
    }
  }
  const bool first = batches_ == 0;
  for (size_t i = 0; i < lo.size(); ++i) {
    switch (kind_) {
      case ObserverKind::StaticMinMax:
        min_[i] = std::min(min_[i], lo[i]);
        max_[i] = std::max(max_[i], hi[i]);
        break;
      case ObserverKind::MovingMinMax:
      case ObserverKind::MovingMse:
        if (first) {
          min_[i] = lo[i];
          max_[i] = hi[i];
        } else {  // torch: past * (1 - c) + current * c
          const float keep = static_cast<float>(1.0 - static_cast<double>(averaging_constant_));
          min_[i] = rnd(rnd(min_[i] * keep, dt_) + rnd(lo[i] * averaging_constant_, dt_), dt_);
          max_[i] = rnd(rnd(max_[i] * keep, dt_) + rnd(hi[i] * averaging_constant_, dt_), dt_);
        }
        break;
      default:  // memoryless
        min_[i] = lo[i];
        max_[i] = hi[i];
    }
  }
  ++batches_;
}

void ActivationObserver::qparams(float* scales, int8_t* zero_points) const {
  if (batches_ == 0) fail("no calibration data was observed for {}", describe(args_));
  calculate_qparams_ref(min_.data(), max_.data(), num_qparams(), args_, dt_, scales, zero_points);
}

}  // namespace lowbit

// Observers: the MSE clipping search against a transcription of llm-compressor's eager grid search run with
// compressed-tensors (quant_golden.json "mse_cases"), and the calibration observers' accumulation rules.
#include "quant/observer.h"

#include <gtest/gtest.h>

#include "golden.h"
#include "quant/scheme.h"
#include "util/error.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::f32_from_hex;

TEST(Observer, MseSearchMatchesLlmCompressor) {
  const json g = testing::load_quant_golden("quant_golden.json");
  const int64_t rows = g["rows"], cols = g["cols"];
  int cells = 0, shrunk = 0, cases = 0, bf16_differences = 0;
  for (const auto& c : g["mse_cases"]) {
    const std::string dtype = c["dtype"];
    const std::string what = c["name"].get<std::string>() + " " + dtype;
    const ComputeDType dt = dtype == "bfloat16" ? ComputeDType::BF16 : ComputeDType::F32;
    const QuantArgs args = quant_args_from_json(c["args"], what);
    const auto x = f32_from_hex(g["inputs"][dtype]);
    const ScaleGrid grid = make_scale_grid(args, rows, cols, what);
    std::vector<float> lo(static_cast<size_t>(grid.size())), hi(lo.size()), scales(lo.size());
    std::vector<int8_t> zps(lo.size());
    observe_mse_ref(x.data(), grid, args, MseOptions{}, dt, lo.data(), hi.data());
    const auto want_lo = f32_from_hex(c["min"]), want_hi = f32_from_hex(c["max"]);
    ASSERT_EQ(lo.size(), want_lo.size()) << what;
    std::vector<float> plain_lo(lo.size()), plain_hi(lo.size());
    observe_minmax_ref(x.data(), grid, plain_lo.data(), plain_hi.data());
    for (size_t i = 0; i < lo.size(); ++i) {
      const bool same = lo[i] == want_lo[i] && hi[i] == want_hi[i];
      if (dt == ComputeDType::F32) {
        EXPECT_TRUE(same) << what << " cell " << i << ": got [" << lo[i] << ", " << hi[i] << "] want ["
                          << want_lo[i] << ", " << want_hi[i] << "]";
      } else if (!same) {
        ++bf16_differences;
      }
      shrunk += lo[i] != plain_lo[i] || hi[i] != plain_hi[i];
      ++cells;
    }
    if (dt == ComputeDType::F32) {
      calculate_qparams_ref(lo.data(), hi.data(), grid.size(), args, dt, scales.data(), zps.data());
      const auto want_scales = f32_from_hex(c["scales"]);
      for (size_t i = 0; i < scales.size(); ++i)
        EXPECT_EQ(scales[i], want_scales[i]) << what << " scale " << i;
    }
    ++cases;
  }
  EXPECT_EQ(cases, 10);
  // In bf16 the per-cell error sums are rounded to 8 significant bits, so neighbouring shrink factors often
  // tie; torch's summation order (vectorized) and pow differ from ours at the last bit and can break such a
  // tie the other way. Observed: 2 of the 216 bf16 cells (int4_asym_group16).
  EXPECT_LE(bf16_differences, 4);
  EXPECT_GT(shrunk, cells / 4) << "the search should clip many cells, or the test proves little";
}

TEST(Observer, KindsFollowLlmCompressor) {
  QuantArgs a;
  EXPECT_EQ(observer_kind(a, false), ObserverKind::MemorylessMinMax);
  a.observer = "static_minmax";
  EXPECT_EQ(observer_kind(a, false), ObserverKind::StaticMinMax);
  EXPECT_EQ(observer_kind(a, true), ObserverKind::MemorylessMinMax);
  a.observer = "minmax";
  EXPECT_EQ(observer_kind(a, false), ObserverKind::MovingMinMax);
  a.observer = "mse";
  EXPECT_EQ(observer_kind(a, false), ObserverKind::MovingMse);
  EXPECT_EQ(observer_kind(a, true), ObserverKind::MemorylessMse);
  a.observer = "histogram";
  EXPECT_THROW(observer_kind(a, false), Error);
  a.observer_kwargs_json = R"({"maxshrink": 0.5, "grid": 50, "norm": 2.0, "patience": 3})";
  const MseOptions o = mse_options(a);
  EXPECT_EQ(o.maxshrink, 0.5);
  EXPECT_EQ(o.grid, 50);
  EXPECT_EQ(o.norm, 2.0);
  EXPECT_EQ(o.patience, 3);
}

// Args from JSON, as a user's config would give them.
QuantArgs args(const char* text) {
  return quant_args_from_json(json::parse(text), "test");
}

TEST(Observer, StaticMinMaxKeepsTheRunningRange) {
  ActivationObserver obs(args(R"({"type": "float", "observer": "static_minmax"})"),
                         4);  // FP8's input observer
  const std::vector<float> b1 = {1, -2, 3, 0, 0.5f, 0.5f, 0.5f, 0.5f};
  const std::vector<float> b2 = {-7, 1, 1, 1};
  obs.observe(b1.data(), 2);
  obs.observe(b2.data(), 1);
  EXPECT_EQ(obs.min_vals()[0], -7);
  EXPECT_EQ(obs.max_vals()[0], 3);
  float scale = 0;
  obs.qparams(&scale, nullptr);
  EXPECT_EQ(scale, 7.0f / 448.0f);
}

TEST(Observer, MovingAverageAndMemoryless) {
  ActivationObserver moving(args(R"({"observer": "minmax", "observer_kwargs": {"averaging_constant": 0.5}})"),
                            2);
  const std::vector<float> b1 = {-4, 4}, b2 = {-2, 8};
  moving.observe(b1.data(), 1);
  moving.observe(b2.data(), 1);
  EXPECT_EQ(moving.min_vals()[0], -3);
  EXPECT_EQ(moving.max_vals()[0], 6);
  ActivationObserver memoryless(args(R"({"observer": "memoryless_minmax"})"), 2);
  memoryless.observe(b1.data(), 1);
  memoryless.observe(b2.data(), 1);
  EXPECT_EQ(memoryless.max_vals()[0], 8);
  EXPECT_EQ(memoryless.min_vals()[0], -2);
}

TEST(Observer, GroupActivationsAndBadInput) {
  const QuantArgs a = args(R"({"strategy": "group", "group_size": 2, "observer": "static_minmax"})");
  ActivationObserver obs(a, 4);
  EXPECT_EQ(obs.num_qparams(), 2);
  const std::vector<float> x = {1, 2, 30, 4, -5, 6, 7, 8};
  obs.observe(x.data(), 2);
  EXPECT_EQ(obs.min_vals(), (std::vector<float>{-5, 4}));
  EXPECT_EQ(obs.max_vals(), (std::vector<float>{6, 30}));
  EXPECT_THROW(ActivationObserver(a, 5), Error);
  QuantArgs dynamic;
  dynamic.strategy = QuantStrategy::Token;
  dynamic.dynamic = DynamicMode::Dynamic;
  EXPECT_THROW(ActivationObserver(dynamic, 4), Error);
  QuantArgs tensor;
  ActivationObserver empty(tensor, 4);
  float s = 0;
  EXPECT_THROW(empty.qparams(&s, nullptr), Error);
}

}  // namespace
}  // namespace lowbit

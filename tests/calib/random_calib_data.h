// Calibration data for tests: `samples` sequences of `tokens` uniformly random ids in [3, vocab) (the
// special ids 0-2 left out). Shared by the calibration-pipeline and sensitivity tests.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "calib/calib_data.h"

namespace lowbit::testing {

inline CalibDataset random_calib_data(int64_t vocab, int64_t samples, int64_t tokens, uint32_t seed) {
  CalibDataset d;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(3, static_cast<int32_t>(vocab) - 1);
  for (int64_t i = 0; i < samples; ++i) {
    std::vector<int32_t> s(static_cast<size_t>(tokens));
    for (int32_t& t : s) t = id(rng);
    d.samples.push_back(std::move(s));
    d.offsets.push_back(0);
  }
  d.seed = seed;
  return d;
}

}  // namespace lowbit::testing

// The machine-independent parts of `lowbit bench`'s arithmetic: the useful flops of a prefill, counted by
// hand on a tiny model, and the FMA peak probe's bookkeeping.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/speed.h"
#include "model/model.h"
#include "runtime/kernels.h"
#include "runtime/tiny_model.h"
#include "util/error.h"

namespace lowbit::eval {
namespace {

using lowbit::testing::TempDir;
using lowbit::testing::TinySpec;

TEST(Speed, PrefillFlopsPerTokenCountsLinearsAttentionAndOneLmHead) {
  TempDir tmp("speed_flops");
  const TinySpec spec;  // hidden 32, intermediate 40, 2 layers, 4 heads of 8, 2 KV heads, vocab 61, untied
  lowbit::testing::write_tiny_model(tmp.path(), spec);
  const auto model = Model::open(tmp.path());
  const runtime::Transformer tf(*model);
  // Per layer: q 32x32, k and v 16x32, o 32x32, gate and up 40x32, down 32x40 = 6,912 multiply-adds.
  const double linears = 2.0 * 2 * 6912;
  // Attention: 4 flops x 32 query dims x 2 layers per attended position; lm_head (61 x 32) once per prompt.
  EXPECT_DOUBLE_EQ(prefill_flops_per_token(tf, 10), linears + 4.0 * 32 * 2 * 5.5 + 2.0 * 61 * 32 / 10);
  EXPECT_DOUBLE_EQ(prefill_flops_per_token(tf, 1), linears + 4.0 * 32 * 2 * 1.0 + 2.0 * 61 * 32);
  EXPECT_THROW(prefill_flops_per_token(tf, 0), Error);
}

TEST(Speed, FmaPeakCountsTwoFlopsPerLanePerMultiplyAdd) {
  // Ten chains of whole vectors (at least 4 lanes on every target) per trip.
  const double flops = kernels::fma_chain_flops(1000);
  EXPECT_GE(flops, 2.0 * 10 * 4 * 1000);
  EXPECT_EQ(std::fmod(flops, 2.0 * 10 * 1000), 0.0);
  EXPECT_EQ(kernels::fma_chain_flops(0), 0.0);
  const double peak = measure_fma_peak();
  EXPECT_TRUE(std::isfinite(peak));
  EXPECT_GT(peak, 1e8);  // any machine this runs on does more than 0.1 GFLOP/s
}

}  // namespace
}  // namespace lowbit::eval

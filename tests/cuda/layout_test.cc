// CPU tests of the host half of the CUDA library (no GPU needed): the re-layout and its exact inverse, the
// CPU emulation of the kernels' weight reads against the reference dequantizer, input validation, the CPU
// twins of the activation-quantization kernels, and the kernel choice by M.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cuda/gemm_cases.h"
#include "cuda/layout.h"
#include "io/dtype.h"
#include "util/error.h"

namespace lowbit::cuda {
namespace {

using testing::make_activations;
using testing::make_weight_only;
using testing::WeightOnlyCase;

// Odd shapes on purpose: K not a multiple of 256 (and for per-channel not even of 8), N not of 128.
const WeightOnlyCase kCases[] = {
    {4, 37, 1408, 128, true}, {4, 37, 1408, 128, false}, {4, 19, 1120, 32, true}, {4, 19, 1120, 32, false},
    {4, 21, 960, 64, false},  {4, 23, 999, 0, true},     {4, 23, 999, 0, false},  {8, 37, 1408, 128, true},
    {8, 19, 1120, 32, false}, {8, 23, 1001, 0, false},   {8, 5, 64, 64, true},
};

TEST(CudaLayout, RoundTripIsExact) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name());
    const auto q = make_weight_only(c, 1);
    for (ActDType dt : {ActDType::F16, ActDType::BF16}) {
      const WeightOnlyLayout layout = relayout_weight_only(q.view(c), dt, "w");
      EXPECT_EQ(layout.k_padded % 64, 0);
      EXPECT_GE(layout.k_padded, c.k);
      EXPECT_EQ(layout.words_per_row() * 4 % 16, 0) << "rows must be 16-byte aligned";
      EXPECT_EQ(layout.qweight.size(), static_cast<size_t>(c.n * layout.words_per_row()));
      const PackedTensors back = unrelayout_weight_only(layout);
      EXPECT_EQ(back.weight_packed, q.packed);
      EXPECT_EQ(back.weight_scale, q.scales) << "bf16-valued scales are exact in fp16 and bf16";
      if (c.symmetric) {
        EXPECT_TRUE(back.weight_zero_point.empty());
      } else {
        EXPECT_EQ(back.weight_zero_point, q.zeros_packed);
      }
    }
  }
}

TEST(CudaLayout, KernelReadsMatchReferenceDequantization) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name());
    const auto q = make_weight_only(c, 2);
    const WeightOnlyLayout layout = relayout_weight_only(q.view(c), ActDType::BF16, "w");
    const std::vector<float> emulated = dequantize_layout(layout);
    ASSERT_EQ(emulated.size(), q.dequant.size());
    for (size_t i = 0; i < emulated.size(); ++i)
      ASSERT_EQ(emulated[i], q.dequant[i]) << "element " << i << " (bit-exact expected)";
  }
}

TEST(CudaLayout, PaddingIsTheZeroCodeInTheLastGroup) {
  const WeightOnlyCase c{4, 3, 1120, 32, false};  // k_padded = 1152: 32 padding codes past the last group
  const auto q = make_weight_only(c, 3);
  const WeightOnlyLayout layout = relayout_weight_only(q.view(c), ActDType::F16, "w");
  ASSERT_EQ(layout.k_padded, 1152);
  for (int64_t r = 0; r < c.n; ++r)
    for (int64_t col = c.k; col < layout.k_padded; ++col) {
      const int64_t g = layout.num_groups - 1;  // clamped, like the kernels
      const float z = layout.zeros[static_cast<size_t>(r * layout.num_groups + g)];
      const float s =
          act_to_f32(layout.scales[static_cast<size_t>(r * layout.num_groups + g)], ActDType::F16);
      EXPECT_EQ(layout_weight_at(layout, r, col), (0.0f - z) * s);
    }
}

TEST(CudaLayout, DeviceBytesCountCodesScalesAndZeros) {
  const WeightOnlyCase c{4, 4096, 4096, 128, true};
  WeightOnlyLayout l;
  l.bits = 4;
  l.n = c.n;
  l.k = l.k_padded = c.k;
  l.qweight.resize(static_cast<size_t>(c.n * c.k / 8));
  l.scales.resize(static_cast<size_t>(c.n * c.k / 128));
  EXPECT_EQ(l.device_bytes(), 4096 * 4096 / 2 + 4096 * 32 * 2);
}

TEST(CudaLayout, RejectsBadInput) {
  const WeightOnlyCase c{4, 4, 256, 128, false};
  const auto q = make_weight_only(c, 4);
  PackedQuantWeight w = q.view(c);

  PackedQuantWeight bad = w;
  bad.bits = 3;
  EXPECT_THROW(relayout_weight_only(bad, ActDType::F16, "w"), Error);
  bad = w;
  bad.group_size = 48;
  EXPECT_THROW(relayout_weight_only(bad, ActDType::F16, "w"), Error);
  bad = w;
  bad.group_size = -2;
  EXPECT_THROW(relayout_weight_only(bad, ActDType::F16, "w"), Error);
  bad = w;
  bad.n = 0;
  EXPECT_THROW(relayout_weight_only(bad, ActDType::F16, "w"), Error);

  std::vector<float> scales = q.scales;
  scales[1] = NAN;
  bad = w;
  bad.weight_scale = scales.data();
  EXPECT_THROW(relayout_weight_only(bad, ActDType::F16, "w"), Error);
  scales = q.scales;
  scales[0] = 1e6f;  // fine in bf16, +inf in fp16
  bad.weight_scale = scales.data();
  EXPECT_NO_THROW(relayout_weight_only(bad, ActDType::BF16, "w"));
  EXPECT_THROW(relayout_weight_only(bad, ActDType::F16, "w"), Error);

  // Non-zero padding bits in a partial last word mean the tensor is corrupt (k = 250: 2 codes of padding).
  const WeightOnlyCase odd{4, 2, 250, 0, true};
  const auto qo = make_weight_only(odd, 5);
  std::vector<int32_t> packed = qo.packed;
  packed[packed_words(250, 4) - 1] |= static_cast<int32_t>(0xf0000000u);
  PackedQuantWeight wo = qo.view(odd);
  EXPECT_NO_THROW(relayout_weight_only(wo, ActDType::F16, "w"));
  wo.weight_packed = packed.data();
  try {
    relayout_weight_only(wo, ActDType::F16, "model.layers.0.mlp.up_proj");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj"), std::string::npos) << e.what();
  }
}

TEST(CudaLayout, Int8AndFp8WeightsArePaddedWithZeros) {
  const int8_t q[3 * 5] = {1, -2, 3, -4, 5, 6, 7, 8, 9, 10, -128, 127, 0, 1, 2};
  const float s[3] = {0.5f, 0.25f, 2.0f};
  const Int8WeightLayout l = relayout_int8(q, s, 3, 5, "w");
  ASSERT_EQ(l.k_padded, 64);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 64; ++c) EXPECT_EQ(l.q[static_cast<size_t>(r * 64 + c)], c < 5 ? q[r * 5 + c] : 0);
  EXPECT_EQ(l.scale, std::vector<float>(s, s + 3));

  const uint8_t f[2 * 3] = {0x38, 0xb8, 0x7e, 0x01, 0x00, 0x80};
  const Fp8WeightLayout fl = relayout_fp8(f, s, false, 2, 3, "w");
  ASSERT_EQ(fl.k_padded, 16);
  ASSERT_EQ(fl.scale.size(), 1u);
  EXPECT_EQ(fl.q[16 + 2], 0x80);
  EXPECT_EQ(fl.q[16 + 3], 0);
  EXPECT_EQ(relayout_fp8(f, s, true, 2, 3, "w").scale.size(), 2u);
  const float bad[1] = {INFINITY};
  EXPECT_THROW(relayout_fp8(f, bad, false, 2, 3, "w"), Error);
}

TEST(CudaActQuant, Int8PerTokenMatchesHandComputedValues) {
  // Row 0: amax 127/16 -> s = 1/16 exactly (all values exact in fp16); row 1 is all zero -> s = 1, codes 0.
  const float row0[5] = {7.9375f, -1.25f, 0.03125f, 0.09375f, -7.9375f};
  uint16_t x[10];
  for (int i = 0; i < 5; ++i) x[i] = f32_to_f16(row0[i]);
  for (int i = 5; i < 10; ++i) x[i] = f32_to_f16(0.0f);
  int8_t q[2 * 64];
  float scale[2];
  std::memset(q, 0x55, sizeof q);
  quantize_act_int8_ref(x, ActDType::F16, 2, 5, 64, q, scale);
  EXPECT_EQ(scale[0], 0.0625f);
  EXPECT_EQ(scale[1], 1.0f);
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], -20);
  EXPECT_EQ(q[2], 0);  // 0.5 rounds half to even
  EXPECT_EQ(q[3], 2);  // 1.5 rounds half to even
  EXPECT_EQ(q[4], -127);
  for (int c = 5; c < 64; ++c) EXPECT_EQ(q[c], 0);
  for (int c = 0; c < 64; ++c) EXPECT_EQ(q[64 + c], 0);
}

TEST(CudaActQuant, Fp8PerTokenAndPerTensorScales) {
  const auto a = make_activations(3, 40, ActDType::BF16, 7);
  std::vector<uint8_t> q(3 * 48);
  float per_token[3], per_tensor[1];
  quantize_act_fp8_ref(a.bits.data(), ActDType::BF16, 3, 40, 48, Fp8ActScale::PerToken, q.data(), per_token);
  float amax_all = 0;
  for (int r = 0; r < 3; ++r) {
    float amax = 0;
    for (int c = 0; c < 40; ++c) amax = std::max(amax, std::fabs(a.values[static_cast<size_t>(r * 40 + c)]));
    EXPECT_EQ(per_token[r], amax / 448.0f);
    amax_all = std::max(amax_all, amax);
    // The row maximum maps to +-448 exactly; dequantized codes are within e4m3 precision (2^-4 relative).
    for (int c = 0; c < 40; ++c) {
      const float x = a.values[static_cast<size_t>(r * 40 + c)];
      const float back = e4m3_to_f32(q[static_cast<size_t>(r * 48 + c)]) * per_token[r];
      EXPECT_NEAR(back, x, std::fabs(x) * 0.0625f + per_token[r] * 0.002f);
    }
    for (int c = 40; c < 48; ++c) EXPECT_EQ(q[static_cast<size_t>(r * 48 + c)], 0);
  }
  quantize_act_fp8_ref(a.bits.data(), ActDType::BF16, 3, 40, 48, Fp8ActScale::PerTensor, q.data(),
                       per_tensor);
  EXPECT_EQ(per_tensor[0], amax_all / 448.0f);
}

TEST(CudaDispatch, DecodeUsesGemvPrefillUsesTensorCores) {
  EXPECT_EQ(plan_weight_only(1).kernel, WeightOnlyKernel::Gemv);
  EXPECT_EQ(plan_weight_only(1).gemv_rows, 1);
  EXPECT_EQ(plan_weight_only(2).gemv_rows, 4);
  EXPECT_EQ(plan_weight_only(4).gemv_rows, 4);
  EXPECT_EQ(plan_weight_only(5).gemv_rows, 16);
  EXPECT_EQ(plan_weight_only(16).kernel, WeightOnlyKernel::Gemv);
  EXPECT_EQ(plan_weight_only(16).gemv_rows, 16);
  EXPECT_EQ(plan_weight_only(17).kernel, WeightOnlyKernel::Mma);
  EXPECT_EQ(plan_weight_only(17).gemv_rows, 0);
  EXPECT_EQ(plan_weight_only(4096).kernel, WeightOnlyKernel::Mma);
  // Forcing: the GEMV for a large M runs in 16-row slices; the MMA kernel works for M = 1 too.
  EXPECT_EQ(plan_weight_only(100, WeightOnlyKernel::Gemv).gemv_rows, 16);
  EXPECT_EQ(plan_weight_only(1, WeightOnlyKernel::Mma).kernel, WeightOnlyKernel::Mma);
  EXPECT_THROW(plan_weight_only(0), Error);
}

}  // namespace
}  // namespace lowbit::cuda

// The scalar reference quantizers against compressed-tensors goldens (tools/reference/quant_golden.py):
// scales, zero points, codes, dequantized values and the pack-quantized tensors must match bit for bit, in
// float32 and in bfloat16 arithmetic.
#include "quant/quantizer_ref.h"

#include <gtest/gtest.h>

#include <cmath>

#include "golden.h"
#include "quant/pack.h"
#include "util/error.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::f32_from_hex;
using testing::ints;
using testing::same_bits;

// Builds QuantArgs from compressed-tensors' model_dump of QuantizationArgs (the subset the goldens use).
QuantArgs args_from_golden(const json& j) {
  QuantArgs a;
  a.num_bits = j["num_bits"];
  a.type = parse_quant_type(j["type"].get<std::string>());
  a.symmetric = j["symmetric"];
  if (!j["group_size"].is_null()) a.group_size = j["group_size"].get<int>();
  a.strategy = parse_quant_strategy(j["strategy"].get<std::string>());
  a.dynamic = j["dynamic"].get<bool>() ? DynamicMode::Dynamic : DynamicMode::Static;
  validate_quant_args(a, true, "golden");
  return a;
}

void expect_same_floats(const std::vector<float>& got, const std::vector<float>& want,
                        const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!same_bits(got[i], want[i]) && mismatches++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << " want " << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

void expect_same_codes(const std::vector<int>& got, const std::vector<int>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && mismatches++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << " want " << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

class QuantGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { golden_ = new json(testing::load_quant_golden("quant_golden.json")); }
  static void TearDownTestSuite() { delete golden_; }
  static std::vector<float> input(const std::string& dtype) {
    return f32_from_hex((*golden_)["inputs"][dtype].get<std::string>());
  }
  static json* golden_;
};
json* QuantGolden::golden_ = nullptr;

// The compressed tensors of the pack-quantized compressor, rebuilt from our codes and qparams.
void check_pack_quantized(const json& compressed, const QuantArgs& args, int64_t rows, int64_t cols,
                          const std::vector<int8_t>& codes, const std::vector<int8_t>& zps,
                          const std::string& what) {
  const auto packed = pack_int_rows(codes.data(), rows, cols, args.num_bits);
  EXPECT_EQ(compressed["weight_packed"]["dtype"], "int32");
  EXPECT_EQ(compressed["weight_packed"]["shape"],
            (std::vector<int64_t>{rows, packed_words(cols, args.num_bits)}));
  EXPECT_EQ(packed, ints<int32_t>(compressed["weight_packed"]["values"])) << what;
  EXPECT_EQ(compressed["weight_shape"]["dtype"], "int64");
  EXPECT_EQ(compressed["weight_shape"]["values"], (std::vector<int64_t>{rows, cols}));
  if (args.symmetric) {
    EXPECT_FALSE(compressed.contains("weight_zero_point")) << what;
    return;
  }
  const auto& zp = compressed["weight_zero_point"];
  const ScaleGrid grid = make_scale_grid(args, rows, cols, what);
  if (args.strategy == QuantStrategy::Tensor) {
    // Only group and channel zero points are packed; a tensor zero point stays int8 [1].
    EXPECT_EQ(zp["dtype"], "int8");
    EXPECT_EQ(ints<int8_t>(zp["values"]), zps) << what;
  } else {
    EXPECT_EQ(zp["dtype"], "int32");
    EXPECT_EQ(zp["shape"],
              (std::vector<int64_t>{packed_words(grid.scale_rows, args.num_bits), grid.scale_cols}));
    EXPECT_EQ(pack_int_cols(zps.data(), grid.scale_rows, grid.scale_cols, args.num_bits),
              ints<int32_t>(zp["values"]))
        << what;
  }
}

TEST_F(QuantGolden, IntegerCodesScalesAndPacksMatch) {
  int checked = 0;
  for (const auto& c : (*golden_)["cases"]) {
    const QuantArgs args = args_from_golden(c["args"]);
    if (args.type != QuantType::Int) continue;
    const std::string dtype = c["dtype"];
    const std::string what = c["name"].get<std::string>() + " " + dtype;
    const ComputeDType dt = dtype == "bfloat16" ? ComputeDType::BF16 : ComputeDType::F32;
    const int64_t rows = c["rows"], cols = c["cols"];
    const auto x = input(dtype);
    const ScaleGrid grid = make_scale_grid(args, rows, cols, what);
    std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
    std::vector<float> scales(static_cast<size_t>(grid.size()));
    std::vector<int8_t> zps(static_cast<size_t>(grid.size()), 99);
    quantize_int_ref(x.data(), rows, cols, args, codes.data(), scales.data(), zps.data(), dt);

    expect_same_floats(scales, f32_from_hex(c["scales"]), what + " scales");
    expect_same_codes(std::vector<int>(zps.begin(), zps.end()), ints<int>(c["zero_points"]),
                      what + " zero points");
    expect_same_codes(std::vector<int>(codes.begin(), codes.end()), ints<int>(c["codes"]), what + " codes");

    std::vector<float> deq(codes.size());
    dequantize_int_ref(codes.data(), rows, cols, args, scales.data(), args.symmetric ? nullptr : zps.data(),
                       deq.data(), dt);
    expect_same_floats(deq, f32_from_hex(c["dequant"]), what + " dequant");

    if (c.contains("compressed")) check_pack_quantized(c["compressed"], args, rows, cols, codes, zps, what);
    ++checked;
  }
  EXPECT_EQ(checked, 2 * 14);
}

TEST_F(QuantGolden, Fp8E4m3CodesAndScalesMatch) {
  int checked = 0;
  for (const auto& c : (*golden_)["cases"]) {
    const QuantArgs args = args_from_golden(c["args"]);
    if (args.type != QuantType::Float) continue;
    const std::string dtype = c["dtype"];
    const std::string what = c["name"].get<std::string>() + " " + dtype;
    const ComputeDType dt = dtype == "bfloat16" ? ComputeDType::BF16 : ComputeDType::F32;
    const int64_t rows = c["rows"], cols = c["cols"];
    const auto x = input(dtype);
    const ScaleGrid grid = make_scale_grid(args, rows, cols, what);
    std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
    std::vector<float> scales(static_cast<size_t>(grid.size()));
    quantize_fp8_ref(x.data(), rows, cols, args, codes.data(), scales.data(), dt);
    expect_same_floats(scales, f32_from_hex(c["scales"]), what + " scales");
    expect_same_codes(std::vector<int>(codes.begin(), codes.end()), ints<int>(c["codes"]), what + " codes");
    std::vector<float> deq(codes.size());
    dequantize_fp8_ref(codes.data(), rows, cols, args, scales.data(), deq.data(), dt);
    expect_same_floats(deq, f32_from_hex(c["dequant"]), what + " dequant");
    ++checked;
  }
  EXPECT_EQ(checked, 2 * 5);
}

// lowbit's e5m2 extension against torch's float8_e5m2 cast with the same formulas.
TEST_F(QuantGolden, Fp8E5m2MatchesTorch) {
  int checked = 0;
  for (const auto& c : (*golden_)["e5m2_cases"]) {
    QuantArgs args;
    args.type = QuantType::Float;
    args.float_format = FloatFormat::E5M2;
    args.strategy = parse_quant_strategy(c["strategy"].get<std::string>());
    const std::string dtype = c["dtype"];
    const std::string what = c["name"].get<std::string>() + " " + dtype;
    const ComputeDType dt = dtype == "bfloat16" ? ComputeDType::BF16 : ComputeDType::F32;
    const int64_t rows = c["rows"], cols = c["cols"];
    const auto x = input(dtype);
    const ScaleGrid grid = make_scale_grid(args, rows, cols, what);
    std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
    std::vector<float> scales(static_cast<size_t>(grid.size()));
    quantize_fp8_ref(x.data(), rows, cols, args, codes.data(), scales.data(), dt);
    expect_same_floats(scales, f32_from_hex(c["scales"]), what + " scales");
    expect_same_codes(std::vector<int>(codes.begin(), codes.end()), ints<int>(c["codes"]), what + " codes");
    std::vector<float> deq(codes.size());
    dequantize_fp8_ref(codes.data(), rows, cols, args, scales.data(), deq.data(), dt);
    expect_same_floats(deq, f32_from_hex(c["dequant"]), what + " dequant");
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(QuantizerRef, Fp8SaturatesAtFormatMax) {
  QuantArgs args;
  args.type = QuantType::Float;
  const float scale = 1.0f;
  const std::vector<float> x = {1000.0f, -1000.0f, 448.0f, 464.0f, 1e6f};
  std::vector<uint8_t> q(x.size());
  quantize_fp8_with_scales_ref(x.data(), 1, 5, args, &scale, q.data());
  EXPECT_EQ(std::vector<int>(q.begin(), q.end()), (std::vector<int>{0x7e, 0xfe, 0x7e, 0x7e, 0x7e}));
  args.float_format = FloatFormat::E5M2;
  quantize_fp8_with_scales_ref(x.data(), 1, 5, args, &scale, q.data());
  EXPECT_EQ(q[4], 0x7b);  // 57344, not inf
}

TEST(QuantizerRef, RoundsHalfToEvenAfterClamping) {
  QuantArgs args;  // int8 symmetric per tensor
  const float scale = 1.0f;
  const std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 126.5f, 127.5f, 300.0f, -128.5f, -300.0f};
  std::vector<int8_t> q(x.size());
  quantize_int_with_qparams_ref(x.data(), 1, static_cast<int64_t>(x.size()), args, &scale, nullptr, q.data());
  EXPECT_EQ(std::vector<int>(q.begin(), q.end()),
            (std::vector<int>{0, 2, 2, 0, -2, 126, 127, 127, -128, -128}));
}

TEST(QuantizerRef, ZeroRangeUsesEpsilonScale) {
  QuantArgs args;
  args.symmetric = false;
  const std::vector<float> x(8, 0.0f);
  std::vector<int8_t> q(8, 1);
  float scale = 0;
  int8_t zp = 5;
  quantize_int_ref(x.data(), 1, 8, args, q.data(), &scale, &zp);
  EXPECT_EQ(scale, std::ldexp(1.0f, -23));
  EXPECT_EQ(zp, 0);  // qmin - 0/0 is NaN in compressed-tensors, which becomes 0 as int8
  for (int8_t v : q) EXPECT_EQ(v, 0);
  quantize_int_ref(x.data(), 1, 8, args, q.data(), &scale, &zp, ComputeDType::BF16);
  EXPECT_EQ(scale, 0.0078125f);
}

TEST(QuantizerRef, RoundToBf16) {
  EXPECT_EQ(round_to_bf16(1.0f), 1.0f);
  EXPECT_EQ(round_to_bf16(1.00390625f), 1.0f);       // exactly half an ulp above 1: ties to even (down)
  EXPECT_EQ(round_to_bf16(1.01171875f), 1.015625f);  // 1 + 1.5 ulp: ties to even (up)
  EXPECT_EQ(round_to_bf16(1.0040f), 1.0078125f);
  EXPECT_TRUE(std::isnan(round_to_bf16(NAN)));
}

TEST(QuantizerRef, GroupSizeMustDivideColumns) {
  QuantArgs args;
  args.num_bits = 4;
  args.group_size = 128;
  args.strategy = QuantStrategy::Group;
  try {
    make_scale_grid(args, 4096, 11008 + 64, "model.layers.0.mlp.down_proj");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.layers.0.mlp.down_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4096, 11072]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("128"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace lowbit

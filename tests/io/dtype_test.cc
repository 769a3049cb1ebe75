// Scalar dtype conversions against torch's golden tables (tools/reference/dtype_fixtures.py): every code of
// every 8/16-bit float format decoded, and a large set of float32 inputs (ties, neighbours of ties,
// subnormals, overflow boundaries, specials, random) encoded.
#include "io/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

const std::string kFixtures = std::string(LOWBIT_FIXTURES_DIR) + "/dtype/";

std::vector<uint32_t> read_u32s(const std::string& bytes, size_t offset, size_t count) {
  std::vector<uint32_t> out(count);
  std::memcpy(out.data(), bytes.data() + offset, count * 4);
  return out;
}

std::vector<uint32_t> decode_table(const std::string& fmt) {
  const std::string bytes = read_file(kFixtures + "decode_" + fmt + ".bin");
  return read_u32s(bytes, 0, bytes.size() / 4);
}

struct EncodeCases {
  std::vector<uint32_t> inputs;  // float32 bits
  std::vector<uint32_t> codes;   // torch's output code
};

EncodeCases encode_cases(const std::string& fmt, size_t code_bytes) {
  const std::string bytes = read_file(kFixtures + "encode_" + fmt + ".bin");
  uint32_t n = 0;
  std::memcpy(&n, bytes.data(), 4);
  EXPECT_EQ(bytes.size(), 4 + n * (4 + code_bytes)) << fmt;
  EncodeCases cases;
  cases.inputs = read_u32s(bytes, 4, n);
  cases.codes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t code = 0;
    std::memcpy(&code, bytes.data() + 4 + 4 * n + code_bytes * i, code_bytes);
    cases.codes[i] = code;
  }
  return cases;
}

uint32_t bits(float f) {
  return std::bit_cast<uint32_t>(f);
}
float from_bits(uint32_t b) {
  return std::bit_cast<float>(b);
}

bool is_nan_code16(uint32_t code, int man_bits, int exp_bits) {
  const uint32_t exp_mask = ((1u << exp_bits) - 1) << man_bits;
  return (code & exp_mask) == exp_mask && (code & ((1u << man_bits) - 1)) != 0;
}

// ---- names, sizes ---------------------------------------------------------------------------------------

TEST(DType, NamesSizesAndParsing) {
  const struct {
    DType type;
    const char* name;
    size_t size;
  } expected[] = {{DType::F32, "F32", 4},         {DType::F16, "F16", 2},         {DType::BF16, "BF16", 2},
                  {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1}, {DType::I8, "I8", 1},
                  {DType::U8, "U8", 1},           {DType::I16, "I16", 2},         {DType::I32, "I32", 4},
                  {DType::I64, "I64", 8},         {DType::BOOL, "BOOL", 1},       {DType::F64, "F64", 8}};
  for (const auto& e : expected) {
    EXPECT_EQ(dtype_name(e.type), e.name);
    EXPECT_EQ(dtype_size(e.type), e.size) << e.name;
    DType parsed = DType::BOOL;
    ASSERT_TRUE(parse_dtype(e.name, &parsed)) << e.name;
    EXPECT_EQ(parsed, e.type);
  }
  DType unused;
  for (const char* unknown : {"f32", "U16", "U32", "F8_E8M0", "", "BF16 ", "float32"})
    EXPECT_FALSE(parse_dtype(unknown, &unused)) << unknown;
  EXPECT_TRUE(is_floating(DType::BF16));
  EXPECT_TRUE(is_floating(DType::F64));
  EXPECT_FALSE(is_floating(DType::I8));
  EXPECT_FALSE(is_floating(DType::BOOL));
  EXPECT_THROW(dtype_size(static_cast<DType>(200)), Error);
}

TEST(DType, TensorNbytes) {
  uint64_t n = 0;
  ASSERT_TRUE(tensor_nbytes(DType::BF16, std::vector<int64_t>{32000, 768}, &n));
  EXPECT_EQ(n, 32000u * 768u * 2u);
  ASSERT_TRUE(tensor_nbytes(DType::F32, std::vector<int64_t>{}, &n));  // a scalar
  EXPECT_EQ(n, 4u);
  ASSERT_TRUE(tensor_nbytes(DType::I64, std::vector<int64_t>{5, 0}, &n));
  EXPECT_EQ(n, 0u);
  EXPECT_FALSE(tensor_nbytes(DType::U8, std::vector<int64_t>{-1}, &n));
  EXPECT_FALSE(tensor_nbytes(DType::U8, std::vector<int64_t>{int64_t{1} << 62, 2, 0}, &n));
  EXPECT_FALSE(tensor_nbytes(DType::F32, std::vector<int64_t>{int64_t{1} << 62}, &n));
  EXPECT_TRUE(tensor_nbytes(DType::U8, std::vector<int64_t>{int64_t{1} << 62, 1}, &n));
}

// ---- decoding: every code ---------------------------------------------------------------------------------

template <typename Decode>
void expect_decode_table(const std::string& fmt, size_t n_codes, Decode decode, bool exact_nan) {
  const std::vector<uint32_t> table = decode_table(fmt);
  ASSERT_EQ(table.size(), n_codes) << fmt;
  int mismatches = 0;
  for (uint32_t code = 0; code < n_codes; ++code) {
    const float want = from_bits(table[code]);
    const float got = decode(code);
    if (std::isnan(want) && !exact_nan) {
      EXPECT_TRUE(std::isnan(got)) << fmt << " code 0x" << std::hex << code;
    } else if (bits(got) != table[code] && ++mismatches <= 10) {
      ADD_FAILURE() << fmt << " code 0x" << std::hex << code << ": got 0x" << bits(got) << " torch 0x"
                    << table[code];
    }
  }
  EXPECT_EQ(mismatches, 0) << fmt;
}

TEST(DType, DecodeBf16AllCodesMatchTorch) {
  expect_decode_table(
      "bf16", 65536, [](uint32_t c) { return bf16_to_f32(static_cast<uint16_t>(c)); }, false);
}
TEST(DType, DecodeF16AllCodesMatchTorch) {
  expect_decode_table(
      "f16", 65536, [](uint32_t c) { return f16_to_f32(static_cast<uint16_t>(c)); }, false);
}
TEST(DType, DecodeE4m3AllCodesMatchTorch) {
  expect_decode_table(
      "e4m3", 256, [](uint32_t c) { return e4m3_to_f32(static_cast<uint8_t>(c)); }, true);
}
TEST(DType, DecodeE5m2AllCodesMatchTorch) {
  expect_decode_table(
      "e5m2", 256, [](uint32_t c) { return e5m2_to_f32(static_cast<uint8_t>(c)); }, true);
}

// ---- encoding: torch's outputs on the fixture inputs --------------------------------------------------

template <typename Encode, typename IsNanCode>
void expect_encode_cases(const std::string& fmt, size_t code_bytes, Encode encode, IsNanCode is_nan_code) {
  const EncodeCases cases = encode_cases(fmt, code_bytes);
  ASSERT_GT(cases.inputs.size(), 1000u) << fmt;
  int mismatches = 0;
  for (size_t i = 0; i < cases.inputs.size(); ++i) {
    const uint32_t want = cases.codes[i];
    const uint32_t got = encode(from_bits(cases.inputs[i]));
    // NaN bit patterns are not meaningful (torch's own scalar and vector paths differ): NaN-ness only.
    const bool ok = is_nan_code(want) ? is_nan_code(got) : got == want;
    if (!ok && ++mismatches <= 10) {
      ADD_FAILURE() << fmt << " input 0x" << std::hex << cases.inputs[i] << " (" << std::dec
                    << from_bits(cases.inputs[i]) << "): got 0x" << std::hex << got << " torch 0x" << want;
    }
  }
  EXPECT_EQ(mismatches, 0) << fmt;
}

TEST(DType, EncodeBf16MatchesTorch) {
  expect_encode_cases(
      "bf16", 2, [](float x) { return uint32_t{f32_to_bf16(x)}; },
      [](uint32_t c) { return is_nan_code16(c, 7, 8); });
}
TEST(DType, EncodeF16MatchesTorch) {
  expect_encode_cases(
      "f16", 2, [](float x) { return uint32_t{f32_to_f16(x)}; },
      [](uint32_t c) { return is_nan_code16(c, 10, 5); });
}
// fp8 NaN codes are exact (0x7f | sign): the predicate below never excuses a difference.
TEST(DType, EncodeE4m3MatchesTorchOnClampedInputs) {
  expect_encode_cases(
      "e4m3", 1, [](float x) { return uint32_t{f32_to_e4m3(x)}; }, [](uint32_t) { return false; });
}
TEST(DType, EncodeE5m2MatchesTorchOnClampedInputs) {
  expect_encode_cases(
      "e5m2", 1, [](float x) { return uint32_t{f32_to_e5m2(x)}; }, [](uint32_t) { return false; });
}

// ---- properties that hold for every code -------------------------------------------------------------

TEST(DType, EveryNonNanCodeRoundTrips) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const auto code = static_cast<uint16_t>(c);
    if (!std::isnan(bf16_to_f32(code))) {
      ASSERT_EQ(f32_to_bf16(bf16_to_f32(code)), code) << std::hex << c;
    }
    if (!std::isnan(f16_to_f32(code))) {
      ASSERT_EQ(f32_to_f16(f16_to_f32(code)), code) << std::hex << c;
    }
  }
  for (uint32_t c = 0; c < 256; ++c) {
    const auto code = static_cast<uint8_t>(c);
    if (!std::isnan(e4m3_to_f32(code))) {
      ASSERT_EQ(f32_to_e4m3(e4m3_to_f32(code)), code) << std::hex << c;
    }
    // e5m2 infinities saturate to the largest finite value by design.
    const float v = e5m2_to_f32(code);
    if (std::isfinite(v)) {
      ASSERT_EQ(f32_to_e5m2(v), code) << std::hex << c;
    }
  }
}

TEST(DType, SaturationAndSpecials) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(f32_to_e4m3(inf), 0x7e);
  EXPECT_EQ(f32_to_e4m3(-inf), 0xfe);
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7e);
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f32_to_e4m3(nan), 0x7f);
  EXPECT_EQ(f32_to_e4m3(-nan), 0xff);
  EXPECT_EQ(f32_to_e5m2(inf), 0x7b);
  EXPECT_EQ(e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_EQ(e5m2_to_f32(0x7c), inf);
  EXPECT_TRUE(std::isnan(e5m2_to_f32(f32_to_e5m2(nan))));
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // the first value that rounds to infinity
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_bf16(inf), 0x7f80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(nan))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001)))));  // signalling NaN stays NaN
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(from_bits(0xff800001)))));
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);      // tie, even below
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);  // tie, even above
}

// ---- bulk conversion ----------------------------------------------------------------------------------

template <typename T>
std::vector<std::byte> bytes_of(const std::vector<T>& values, size_t misalign) {
  std::vector<std::byte> out(misalign + values.size() * sizeof(T));
  std::memcpy(out.data() + misalign, values.data(), values.size() * sizeof(T));
  return out;
}

template <typename T>
void expect_converts(DType type, const std::vector<T>& values, const std::vector<float>& want) {
  for (size_t misalign : {0, 1, 3}) {  // any alignment is allowed
    const auto buf = bytes_of(values, misalign);
    std::vector<float> got(values.size(), -999.0f);
    convert_to_f32(type, buf.data() + misalign, got.data(), values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      if (std::isnan(want[i])) {
        EXPECT_TRUE(std::isnan(got[i])) << dtype_name(type) << " #" << i;
      } else {
        EXPECT_EQ(bits(got[i]), bits(want[i])) << dtype_name(type) << " #" << i << " got " << got[i];
      }
    }
  }
}

TEST(DType, ConvertToF32FloatTypesUseTheScalarConversions) {
  std::vector<uint16_t> codes16;
  std::vector<float> want_bf16, want_f16;
  for (uint32_t c = 0; c < 65536; c += 7) {
    codes16.push_back(static_cast<uint16_t>(c));
    want_bf16.push_back(bf16_to_f32(static_cast<uint16_t>(c)));
    want_f16.push_back(f16_to_f32(static_cast<uint16_t>(c)));
  }
  expect_converts(DType::BF16, codes16, want_bf16);
  expect_converts(DType::F16, codes16, want_f16);

  std::vector<uint8_t> codes8;
  std::vector<float> want_e4m3, want_e5m2;
  for (uint32_t c = 0; c < 256; ++c) {
    codes8.push_back(static_cast<uint8_t>(c));
    want_e4m3.push_back(e4m3_to_f32(static_cast<uint8_t>(c)));
    want_e5m2.push_back(e5m2_to_f32(static_cast<uint8_t>(c)));
  }
  expect_converts(DType::F8_E4M3, codes8, want_e4m3);
  expect_converts(DType::F8_E5M2, codes8, want_e5m2);

  const std::vector<float> f32 = {0.0f, -1.5f, 3.25e-40f, std::numeric_limits<float>::infinity()};
  expect_converts(DType::F32, f32, f32);
  const std::vector<double> f64 = {1.0, -2.5, 1e300, 1.0 + 0x1p-24, 1.0 + 0x1p-24 + 0x1p-40};
  expect_converts(DType::F64, f64,
                  {1.0f, -2.5f, std::numeric_limits<float>::infinity(), 1.0f, 1.0f + 0x1p-23f});
}

TEST(DType, ConvertToF32IntegerAndBoolTypes) {
  expect_converts(DType::I8, std::vector<int8_t>{-128, -1, 0, 127}, {-128.0f, -1.0f, 0.0f, 127.0f});
  expect_converts(DType::U8, std::vector<uint8_t>{0, 1, 255}, {0.0f, 1.0f, 255.0f});
  expect_converts(DType::I16, std::vector<int16_t>{-32768, 32767}, {-32768.0f, 32767.0f});
  // Integers beyond 2^24 round to nearest even, as static_cast and torch do.
  expect_converts(DType::I32, std::vector<int32_t>{(1 << 24) + 1, (1 << 24) + 3, -7},
                  {16777216.0f, 16777220.0f, -7.0f});
  expect_converts(DType::I64, std::vector<int64_t>{int64_t{1} << 40, -(int64_t{1} << 62) - 1, 5},
                  {0x1p40f, -0x1p62f, 5.0f});
  expect_converts(DType::BOOL, std::vector<uint8_t>{0, 1, 0, 2}, {0.0f, 1.0f, 0.0f, 1.0f});
  std::vector<float> none;
  convert_to_f32(DType::F32, nullptr, none.data(), 0);  // n == 0 touches nothing
}

}  // namespace
}  // namespace lowbit

// Fast quantizers against the scalar references: codes, scales, zero points and dequantized values must be
// identical bit for bit, for every strategy, bit width, format and compute dtype, on shapes that exercise
// vector tails and the thread pool.
#include "quant/quantizer.h"

#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <random>

#include "io/dtype.h"
#include "quant/scale_grid.h"

namespace lowbit {
namespace {

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = std::pow(10.0f, static_cast<float>(r % 7) - 3.0f);
    for (int64_t c = 0; c < cols; ++c) x[static_cast<size_t>(r * cols + c)] = normal(rng) * row_scale;
  }
  if (rows > 2) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);  // an all-zero row
  if (rows > 3) x[static_cast<size_t>(3 * cols + 1)] = 50.0f;             // an outlier
  if (rows > 4) x[static_cast<size_t>(4 * cols + cols / 2)] = NAN;        // a NaN: its cells' scales are NaN
  return x;
}

struct Shape {
  int64_t rows, cols;
};
const std::vector<Shape> kShapes = {{1, 32}, {5, 96}, {33, 160}, {300, 128}};

std::vector<QuantArgs> int_args() {
  std::vector<QuantArgs> out;
  for (int bits : {2, 3, 4, 5, 8}) {
    for (bool sym : {true, false}) {
      for (QuantStrategy st : {QuantStrategy::Tensor, QuantStrategy::Channel, QuantStrategy::Group}) {
        QuantArgs a;
        a.num_bits = bits;
        a.symmetric = sym;
        a.strategy = st;
        if (st == QuantStrategy::Group) a.group_size = 32;
        out.push_back(a);
      }
    }
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i]) && !(a[i] != a[i] && b[i] != b[i]))
      return false;
  }
  return true;
}

TEST(Quantizer, IntMatchesReference) {
  int cases = 0;
  for (const Shape& s : kShapes) {
    const auto x = random_matrix(s.rows, s.cols, static_cast<uint32_t>(s.rows * 7 + s.cols));
    for (const QuantArgs& a : int_args()) {
      for (ComputeDType dt : {ComputeDType::F32, ComputeDType::BF16}) {
        const std::string what = describe(a) + (dt == ComputeDType::BF16 ? " bf16 " : " f32 ") +
                                 std::to_string(s.rows) + "x" + std::to_string(s.cols);
        const int64_t n = s.rows * s.cols, cells = make_scale_grid(a, s.rows, s.cols, "t").size();
        std::vector<int8_t> q1(n), q2(n), z1(cells), z2(cells);
        std::vector<float> s1(cells), s2(cells), d1(n), d2(n);
        quantize_int_ref(x.data(), s.rows, s.cols, a, q1.data(), s1.data(), z1.data(), dt);
        quantize_int(x.data(), s.rows, s.cols, a, q2.data(), s2.data(), z2.data(), dt);
        ASSERT_TRUE(same_bits(s1, s2)) << what;
        ASSERT_EQ(z1, z2) << what;
        ASSERT_EQ(q1, q2) << what;
        const int8_t* zp = a.symmetric ? nullptr : z1.data();
        dequantize_int_ref(q1.data(), s.rows, s.cols, a, s1.data(), zp, d1.data(), dt);
        dequantize_int(q1.data(), s.rows, s.cols, a, s1.data(), zp, d2.data(), dt);
        ASSERT_TRUE(same_bits(d1, d2)) << what;
        fake_quantize(x.data(), s.rows, s.cols, a, s1.data(), zp, d2.data(), dt);
        ASSERT_TRUE(same_bits(d1, d2)) << what << " (fake quantize)";
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 4 * 30 * 2);
}

TEST(Quantizer, Fp8MatchesReference) {
  for (const Shape& s : kShapes) {
    const auto x = random_matrix(s.rows, s.cols, static_cast<uint32_t>(s.rows * 3 + s.cols));
    for (FloatFormat f : {FloatFormat::E4M3, FloatFormat::E5M2}) {
      for (QuantStrategy st : {QuantStrategy::Tensor, QuantStrategy::Channel, QuantStrategy::Group}) {
        for (ComputeDType dt : {ComputeDType::F32, ComputeDType::BF16}) {
          QuantArgs a;
          a.type = QuantType::Float;
          a.float_format = f;
          a.strategy = st;
          if (st == QuantStrategy::Group) a.group_size = 32;
          const std::string what = describe(a) + (dt == ComputeDType::BF16 ? " bf16" : " f32");
          const int64_t n = s.rows * s.cols, cells = make_scale_grid(a, s.rows, s.cols, "t").size();
          std::vector<uint8_t> q1(n), q2(n);
          std::vector<float> s1(cells), s2(cells), d1(n), d2(n);
          quantize_fp8_ref(x.data(), s.rows, s.cols, a, q1.data(), s1.data(), dt);
          quantize_fp8(x.data(), s.rows, s.cols, a, q2.data(), s2.data(), dt);
          ASSERT_TRUE(same_bits(s1, s2)) << what;
          ASSERT_EQ(q1, q2) << what;
          dequantize_fp8_ref(q1.data(), s.rows, s.cols, a, s1.data(), d1.data(), dt);
          dequantize_fp8(q1.data(), s.rows, s.cols, a, s1.data(), d2.data(), dt);
          ASSERT_TRUE(same_bits(d1, d2)) << what;
          fake_quantize(x.data(), s.rows, s.cols, a, s1.data(), nullptr, d2.data(), dt);
          ASSERT_TRUE(same_bits(d1, d2)) << what << " (fake quantize)";
        }
      }
    }
  }
}

TEST(Quantizer, DynamicActivationsMatchReference) {
  const int64_t rows = 70, cols = 96;
  const auto x = random_matrix(rows, cols, 5);
  for (QuantType type : {QuantType::Int, QuantType::Float}) {
    for (QuantStrategy st : {QuantStrategy::Token, QuantStrategy::Tensor}) {
      for (bool sym : {true, false}) {
        if (type == QuantType::Float && !sym) continue;
        QuantArgs a;
        a.type = type;
        a.strategy = st;
        a.symmetric = sym;
        a.dynamic = DynamicMode::Dynamic;
        const int64_t cells = make_scale_grid(a, rows, cols, "t").size();
        std::vector<float> scales(cells), want(x.size()), got(x);
        std::vector<int8_t> zps(cells);
        if (type == QuantType::Int) {
          std::vector<int8_t> q(x.size());
          quantize_int_ref(x.data(), rows, cols, a, q.data(), scales.data(), zps.data());
          dequantize_int_ref(q.data(), rows, cols, a, scales.data(), sym ? nullptr : zps.data(), want.data());
        } else {
          std::vector<uint8_t> q(x.size());
          quantize_fp8_ref(x.data(), rows, cols, a, q.data(), scales.data());
          dequantize_fp8_ref(q.data(), rows, cols, a, scales.data(), want.data());
        }
        fake_quantize_dynamic(got.data(), rows, cols, a, got.data());  // in place
        EXPECT_TRUE(same_bits(got, want)) << describe(a);
      }
    }
  }
}

// The vectorizable fp8 encoders and roundings against io's scalar converters: every bf16 bit pattern in
// range, values around every rounding midpoint, and random floats.
TEST(Quantizer, Fp8EncodersMatchScalarConverters) {
  struct Format {
    uint8_t (*fast)(float);
    uint8_t (*scalar)(float);
    float (*decode)(uint8_t);
    float (*round)(float);  // the decoded value without the code (fake quantization)
    float max;
  };
  for (const Format& f :
       {Format{encode_e4m3_clamped, f32_to_e4m3, e4m3_to_f32, round_e4m3_clamped, 448.0f},
        Format{encode_e5m2_clamped, f32_to_e5m2, e5m2_to_f32, round_e5m2_clamped, 57344.0f}}) {
    std::vector<float> values = {0.0f, -0.0f, NAN, -NAN, f.max, -f.max, 1e-30f, -1e-30f};
    for (uint32_t b = 0; b < 0x10000; ++b) values.push_back(std::bit_cast<float>(b << 16));
    for (int code = 0; code < 256; ++code) {
      const float v = f.decode(static_cast<uint8_t>(code));
      const float next = f.decode(static_cast<uint8_t>(code + 1 < 256 ? code + 1 : code));
      if (!std::isfinite(v) || !std::isfinite(next)) continue;
      const float mid = (v + next) / 2;
      for (float m : {v, mid, std::nextafter(mid, -INFINITY), std::nextafter(mid, INFINITY)})
        values.push_back(m);
    }
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    for (int i = 0; i < 100000; ++i)
      values.push_back(uni(rng) * std::pow(2.0f, static_cast<float>(i % 40) - 30.0f));
    int checked = 0;
    for (float v : values) {
      if (std::fabs(v) > f.max) continue;  // the encoders take clamped input
      ASSERT_EQ(f.fast(v), f.scalar(v))
          << "value " << v << " bits " << std::hex << std::bit_cast<uint32_t>(v);
      ASSERT_EQ(std::bit_cast<uint32_t>(f.round(v)), std::bit_cast<uint32_t>(f.decode(f.scalar(v))))
          << "value " << v << " bits " << std::hex << std::bit_cast<uint32_t>(v);
      ++checked;
    }
    EXPECT_GT(checked, 100000);
  }
}

// Timing of the fast path vs the reference on a 4096 x 4096 matrix (run with
// --gtest_also_run_disabled_tests; numbers go in the report, not in an assertion).
TEST(Quantizer, DISABLED_Speed) {
  const int64_t rows = 4096, cols = 4096;
  const auto x = random_matrix(rows, cols, 9);
  QuantArgs a;
  a.num_bits = 4;
  a.strategy = QuantStrategy::Group;
  a.group_size = 128;
  std::vector<int8_t> q(x.size());
  std::vector<float> s(static_cast<size_t>(rows * cols / 128));
  const auto time = [](const auto& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const double ref = time([&] { quantize_int_ref(x.data(), rows, cols, a, q.data(), s.data(), nullptr); });
  const double fast = time([&] { quantize_int(x.data(), rows, cols, a, q.data(), s.data(), nullptr); });
  std::vector<float> out(x.size());
  QuantArgs tok;
  tok.strategy = QuantStrategy::Token;
  tok.dynamic = DynamicMode::Dynamic;
  const double dyn = time([&] { fake_quantize_dynamic(x.data(), rows, cols, tok, out.data()); });
  std::printf(
      "int4 g128 RTN 4096x4096: reference %.3f s, fast %.3f s (%.1fx); int8 per-token fake quant %.3f s\n",
      ref, fast, ref / fast, dyn);
}

}  // namespace
}  // namespace lowbit

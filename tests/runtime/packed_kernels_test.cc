// Packed-weight kernels (runtime/kernels_packed.h, runtime/packed_linear.h) against the quant library's
// scalar reference: weights quantized with quantize_int_ref / quantize_fp8_ref, stored as a checkpoint stores
// them (pack_int_rows words, int8 or fp8 bytes), multiplied by the packed kernels, and compared with a
// double-precision matmul of dequantize_*_ref's fp32 weights.
//
// Error bound (fp32 arithmetic, stated per output): the kernels compute sum_k c_k s x_k - sum_g zt_g xsum_g
// (codes c as stored, zero terms zt) or sgemm over w = c s - zt rounded to fp32; both are within
//   (K + 8) * 2^-23 * M,   M = sum_k (|c_k s_g| + |zt_g|) |x_k|
// of the exact value, the usual worst-case bound of a length-K fp32 sum of terms bounded by M. The int4
// decoder sums (1 + c/16) 16 s x and removes 16 s x afterwards (kernels_packed_hwy.cc), so for int4 M also
// holds 16 s |x_k|. The int16-activation kernels (kernels_packed_int16.h) are held to the same bound against
// the values they multiply, x rounded to int16 codes per block (activation_code_values): their code sums
// are exact integers and the scaling is fp32.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "io/dtype.h"
#include "quant/pack.h"
#include "quant/quantizer.h"
#include "quant/quantizer_ref.h"
#include "quant/scale_grid.h"
#include "runtime/kernels_packed.h"
#include "runtime/kernels_packed_amx.h"
#include "runtime/kernels_packed_fp8.h"
#include "runtime/kernels_packed_int16.h"
#include "runtime/packed_linear.h"
#include "runtime/row_streams.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::runtime {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

QuantArgs int_args(int bits, QuantStrategy strategy, int group, bool symmetric) {
  QuantArgs a;
  a.num_bits = bits;
  a.type = QuantType::Int;
  a.strategy = strategy;
  a.symmetric = symmetric;
  if (strategy == QuantStrategy::Group) a.group_size = group;
  return a;
}

QuantArgs fp8_args(QuantStrategy strategy, FloatFormat format, int group = 0) {
  QuantArgs a;
  a.type = QuantType::Float;
  a.strategy = strategy;
  a.float_format = format;
  if (strategy == QuantStrategy::Group) a.group_size = group;
  return a;
}

// A quantized weight stored as a checkpoint would store it, with its reference dequantization.
struct StoredCase {
  std::vector<int32_t> words;          // pack-quantized words
  std::vector<uint8_t> bytes;          // int8 / fp8 codes
  std::vector<std::byte> scale_bytes;  // what stored.scales views
  formats::StoredWeight stored;
  std::vector<float> dequantized;  // [N x K], dequantize_*_ref in fp32
};

StoredCase make_case(const QuantArgs& args, int64_t N, int64_t K, bool as_words, uint32_t seed,
                     ComputeDType dt = ComputeDType::F32) {
  StoredCase c;
  const std::vector<float> w = random_values(N * K, seed, 0.05f);
  const int64_t cells = make_scale_grid(args, N, K, "w").size();
  c.stored.args = args;
  c.stored.out_features = N;
  c.stored.in_features = K;
  std::vector<float> scales(static_cast<size_t>(cells));
  DType scale_dtype = DType::F32;
  c.dequantized.resize(w.size());
  TensorView& view = c.stored.codes;
  view.name = "w";
  view.shape = {N, K};
  if (args.type == QuantType::Int) {
    std::vector<int8_t> q(w.size());
    std::vector<int8_t> zp(static_cast<size_t>(cells));
    quantize_int_ref(w.data(), N, K, args, q.data(), scales.data(), zp.data());
    if (!args.symmetric) c.stored.zero_points = zp;
    dequantize_int_ref(q.data(), N, K, args, scales.data(), args.symmetric ? nullptr : zp.data(),
                       c.dequantized.data());
    if (as_words) {
      c.words = pack_int_rows(q.data(), N, K, args.num_bits);
      view.dtype = DType::I32;
      view.shape = {N, packed_words(K, args.num_bits)};
      view.data = reinterpret_cast<const std::byte*>(c.words.data());
      view.nbytes = c.words.size() * 4;
    } else {
      c.bytes.assign(reinterpret_cast<const uint8_t*>(q.data()),
                     reinterpret_cast<const uint8_t*>(q.data()) + q.size());
      view.dtype = DType::I8;
    }
  } else {
    c.bytes.resize(w.size());
    quantize_fp8_ref(w.data(), N, K, args, c.bytes.data(), scales.data(), dt);
    dequantize_fp8_ref(c.bytes.data(), N, K, args, scales.data(), c.dequantized.data(), dt);
    if (dt == ComputeDType::BF16) scale_dtype = DType::BF16;  // bf16 scales: weights round to bf16
    view.dtype = args.float_format == FloatFormat::E5M2 ? DType::F8_E5M2 : DType::F8_E4M3;
  }
  if (!c.bytes.empty()) {
    view.data = reinterpret_cast<const std::byte*>(c.bytes.data());
    view.nbytes = c.bytes.size();
  }
  // The scales as a checkpoint stores them (bf16 scales come out of the bf16 reference bf16-valued).
  c.scale_bytes.resize(scales.size() * dtype_size(scale_dtype));
  for (size_t i = 0; i < scales.size(); ++i) {
    if (scale_dtype == DType::BF16) {
      const uint16_t bits = f32_to_bf16(scales[i]);
      std::memcpy(c.scale_bytes.data() + 2 * i, &bits, 2);
    } else {
      std::memcpy(c.scale_bytes.data() + 4 * i, &scales[i], 4);
    }
  }
  c.stored.scales = TensorView{"w_scale", scale_dtype, {cells}, c.scale_bytes.data(), c.scale_bytes.size()};
  return c;
}

// Checks y [m x N] against the double matmul of x with `dequantized`, with the bound stated at the top.
void expect_matches(const std::vector<float>& y, const std::vector<float>& x, int64_t m, const StoredCase& c,
                    const kernels::PackedMatrix& pm, const std::string& what) {
  const int64_t N = pm.rows, K = pm.cols;
  int bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t n = 0; n < N; ++n) {
      double exact = 0.0, magnitude = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double xk = x[static_cast<size_t>(i * K + k)];
        exact += xk * c.dequantized[static_cast<size_t>(n * K + k)];
        const int64_t cell = n * pm.groups() + k / pm.group_size;
        const double int4_bias = pm.codes == kernels::Codes::Int4 ? 16.0 * std::abs(pm.scales[cell]) : 0.0;
        const double term = std::abs(kernels::packed_code(pm, n, k) * pm.scales[cell]) +
                            std::abs(pm.zero_term(cell)) + int4_bias;
        magnitude += term * std::abs(xk);
      }
      const double bound = static_cast<double>(K + 8) * std::ldexp(1.0, -23) * magnitude + 1e-30;
      const double err = std::abs(y[static_cast<size_t>(i * N + n)] - exact);
      if (err > bound && bad++ < 3) {
        ADD_FAILURE() << what << ": y[" << i << "][" << n << "] = " << y[static_cast<size_t>(i * N + n)]
                      << ", exact " << exact << ", error " << err << " > bound " << bound;
      }
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

struct Shape {
  int64_t N, K;
};

void check_products(const StoredCase& c, const PackedLinear& lin, Shape s, const std::string& name);

void check_all_paths(const QuantArgs& args, Shape s, bool packed_words, const std::string& name,
                     ComputeDType dt = ComputeDType::F32) {
  const StoredCase c = make_case(args, s.N, s.K, packed_words, static_cast<uint32_t>(s.N * 131 + s.K), dt);
  PackedLinear lin(c.stored, std::nullopt, std::nullopt);
  const kernels::PackedMatrix& pm = lin.matrix();
  // The scalar definition of the weights equals the reference dequantization: c s - zt rounds twice, each
  // within 2^-24 of |c s| + |zt|.
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t k = 0; k < s.K; ++k) {
      const float want = c.dequantized[static_cast<size_t>(n * s.K + k)];
      const int64_t cell = n * pm.groups() + k / pm.group_size;
      const float terms =
          std::abs(kernels::packed_code(pm, n, k) * pm.scales[cell]) + std::abs(pm.zero_term(cell));
      ASSERT_NEAR(kernels::packed_weight(pm, n, k), want, std::ldexp(terms, -23) + 1e-30f)
          << name << " w[" << n << "][" << k << "]";
    }
  }
  // Every instruction set this CPU runs (AVX-512, AVX2, SSE4 ...): their lane counts give the int4 decoder
  // different blocks and tails.
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    check_products(c, lin, s, name);
  }
  hwy::SetSupportedTargetsForTest(0);  // back to the real CPU
}

void check_products(const StoredCase& c, const PackedLinear& lin, Shape s, const std::string& name) {
  const kernels::PackedMatrix& pm = lin.matrix();
  for (int threads : {1, 2}) {
    set_global_threads(threads);
    for (int64_t m : {1, 2, 3, 15, 40}) {
      const std::vector<float> x = random_values(m * s.K, static_cast<uint32_t>(m + 7));
      std::vector<float> y(static_cast<size_t>(m * s.N));
      const std::string what = name + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                               " m=" + std::to_string(m) + " threads=" + std::to_string(threads);
      kernels::packed_gemv(x.data(), m, pm, nullptr, y.data(), kernels::GemvPath::Float);
      expect_matches(y, x, m, c, pm, what + " gemv fp32");
      kernels::packed_tiled_sgemm(x.data(), m, pm, nullptr, y.data());
      expect_matches(y, x, m, c, pm, what + " sgemm");
      // The integer-activation kernels multiply x rounded to int16 codes, or int8 ones for int4 weights
      // (both are checked): exact against those values.
      const bool saved = kernels::int8_activations_enabled();
      for (bool int8 : {true, false}) {
        kernels::set_int8_activations_enabled(int8);
        const bool integer = kernels::packed_gemv_uses_int16(pm);
        const int bits = kernels::activation_code_bits(pm);
        std::vector<float> xq_values = x;
        if (integer) {
          kernels::ActivationCodes xq;
          kernels::quantize_activation_codes(x.data(), m, pm, xq);
          EXPECT_EQ(xq.bits, bits);
          xq_values = kernels::activation_code_values(xq, pm);
        }
        const std::string path = integer ? " int" + std::to_string(bits) : "";
        kernels::packed_gemv(x.data(), m, pm, nullptr, y.data());
        expect_matches(y, xq_values, m, c, pm, what + " gemv" + path);
        lin.forward(x.data(), m, y.data());
        expect_matches(y, m < kernels::packed_gemm_min_rows(pm.codes) ? xq_values : x, m, c, pm,
                       what + " forward" + path);
        if (pm.codes != kernels::Codes::Int4) break;  // byte codes take int16 activations either way
      }
      kernels::set_int8_activations_enabled(saved);
    }
  }
  set_global_threads(0);
}

TEST(PackedKernels, Int4GroupsSymmetricAndAsymmetric) {
  // K: a multiple of the AVX-512 block (384), of the AVX2 block only (192), of neither (224, 96 + tails).
  for (bool symmetric : {true, false}) {
    check_all_paths(int_args(4, QuantStrategy::Group, 32, symmetric), {13, 224}, true, "int4 g32");
    check_all_paths(int_args(4, QuantStrategy::Group, 64, symmetric), {9, 192}, true, "int4 g64");
    check_all_paths(int_args(4, QuantStrategy::Group, 128, symmetric), {7, 384}, true, "int4 g128");
    check_all_paths(int_args(4, QuantStrategy::Group, 16, symmetric), {5, 96}, true, "int4 g16");
  }
}

TEST(PackedKernels, Int4ChannelAndTensorWithRaggedRows) {
  // K = 200, 136: full 64-column chunks plus a partial one (the int16 kernels' scalar tail).
  for (bool symmetric : {true, false}) {
    check_all_paths(int_args(4, QuantStrategy::Channel, 0, symmetric), {11, 200}, true, "int4 channel");
    // K = 100: the last word of each row is half full.
    check_all_paths(int_args(4, QuantStrategy::Channel, 0, symmetric), {3, 100}, true, "int4 channel K%8");
    // K = 40: no full chunk at all, only the tail.
    check_all_paths(int_args(4, QuantStrategy::Channel, 0, symmetric), {6, 40}, true, "int4 channel K<64");
    check_all_paths(int_args(4, QuantStrategy::Tensor, 0, symmetric), {17, 136}, true, "int4 tensor");
  }
}

TEST(PackedKernels, LongRowsKeepTheDecodeBlockForBatches) {
  // Rows too long for the batched block's x rows to stay in L1 (int16 activation codes beyond 4096 columns
  // with int4 weights, beyond 2048 with bytes; int8 codes beyond 8192): several x rows go through the decode
  // block instead, one (int4) or two (bytes) at a time. At 4160 columns int4 with int8 codes takes blocks
  // of 2 x rows.
  check_all_paths(int_args(4, QuantStrategy::Group, 64, true), {5, 4160}, true, "int4 g64 long rows");
  check_all_paths(int_args(4, QuantStrategy::Group, 128, true), {3, 8320}, true, "int4 g128 longer rows");
  check_all_paths(int_args(8, QuantStrategy::Channel, 0, false), {3, 2112}, true, "uint8 long rows");
}

TEST(PackedKernels, Int8PackedAndPlainCodes) {
  for (bool symmetric : {true, false}) {
    for (bool words : {true, false}) {
      const std::string tag = words ? "uint8 words" : "int8";
      check_all_paths(int_args(8, QuantStrategy::Channel, 0, symmetric), {9, 203}, words, tag + " channel");
      check_all_paths(int_args(8, QuantStrategy::Group, 32, symmetric), {7, 96}, words, tag + " g32");
      check_all_paths(int_args(8, QuantStrategy::Group, 128, symmetric), {5, 256}, words, tag + " g128");
      check_all_paths(int_args(8, QuantStrategy::Tensor, 0, symmetric), {3, 77}, words, tag + " tensor");
    }
  }
}

TEST(PackedKernels, Fp8E4M3AndE5M2) {
  for (FloatFormat f : {FloatFormat::E4M3, FloatFormat::E5M2}) {
    const std::string tag = f == FloatFormat::E4M3 ? "e4m3" : "e5m2";
    check_all_paths(fp8_args(QuantStrategy::Channel, f), {9, 203}, false, tag + " channel");
    check_all_paths(fp8_args(QuantStrategy::Tensor, f), {5, 64}, false, tag + " tensor");
    check_all_paths(fp8_args(QuantStrategy::Group, f, 32), {7, 96}, false, tag + " g32");
    // bf16 scales: every weight rounds to bf16 as torch computes it (PackedMatrix::round_to_bf16).
    check_all_paths(fp8_args(QuantStrategy::Channel, f), {9, 203}, false, tag + " channel bf16",
                    ComputeDType::BF16);
    // Enough rows for more than one parallel chunk (gemv_grain: 32 KiB of codes), so that pool workers run
    // the decoders too, and groups of 32 columns (one table per group).
    check_all_paths(fp8_args(QuantStrategy::Channel, f), {700, 64}, false, tag + " channel bf16 700 rows",
                    ComputeDType::BF16);
    check_all_paths(fp8_args(QuantStrategy::Group, f, 32), {7, 96}, false, tag + " g32 bf16",
                    ComputeDType::BF16);
  }
}

// A rows x cols matrix of fp8 codes, one scale per row (scales must stay alive and padded as PackedMatrix
// requires).
kernels::PackedMatrix fp8_matrix(kernels::Codes codes, const std::vector<uint8_t>& data, int64_t rows,
                                 int64_t cols, const std::vector<float>& scales) {
  kernels::PackedMatrix pm;
  pm.codes = codes;
  pm.data = data.data();
  pm.rows = rows;
  pm.cols = cols;
  pm.row_bytes = cols;
  pm.group_size = cols;
  pm.scales = scales.data();
  return pm;
}

// Every fp8 bit pattern that is a finite number goes through the SIMD decoder: one row holds them all.
TEST(PackedKernels, Fp8DecoderCoversEveryFiniteCode) {
  for (FloatFormat f : {FloatFormat::E4M3, FloatFormat::E5M2}) {
    std::vector<uint8_t> codes;
    for (int b = 0; b < 256; ++b) {
      const float v = f == FloatFormat::E4M3 ? e4m3_to_f32(static_cast<uint8_t>(b))
                                             : e5m2_to_f32(static_cast<uint8_t>(b));
      if (std::isfinite(v)) codes.push_back(static_cast<uint8_t>(b));
    }
    const auto K = static_cast<int64_t>(codes.size());
    std::vector<float> sc(17, 0.5f);
    sc[0] = f == FloatFormat::E4M3 ? 0.5f * 256.0f : 0.5f;  // packed_linear.cc folds 2^8 into e4m3 scales
    const kernels::PackedMatrix pm =
        fp8_matrix(f == FloatFormat::E4M3 ? kernels::Codes::E4M3 : kernels::Codes::E5M2, codes, 1, K, sc);
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t b = codes[static_cast<size_t>(k)];
      const float v = f == FloatFormat::E4M3 ? e4m3_to_f32(b) : e5m2_to_f32(b);
      ASSERT_EQ(kernels::packed_weight(pm, 0, k), 0.5f * v) << "code " << int(b);
      // One-hot x picks a single code through the vector decoder of every target.
      std::vector<float> x(static_cast<size_t>(K), 0.0f);
      x[static_cast<size_t>(k)] = 1.0f;
      for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
        hwy::SetSupportedTargetsForTest(target);
        float y = 0.0f;
        kernels::packed_gemv(x.data(), 1, pm, nullptr, &y);
        ASSERT_EQ(y, 0.5f * v) << "code " << int(b) << " " << hwy::TargetName(target);
      }
      hwy::SetSupportedTargetsForTest(0);
    }
  }
}

// Non-finite fp8 codes are non-finite in the scalar definition, as in torch, so they poison their row's
// outputs: E4M3's NaN codes (0x7F, 0xFF), E5M2's NaNs and infinities. has_nonfinite_codes finds them, and
// with nonfinite_codes set every path (the gemv decoders of every target, dequantize + sgemm) gives the
// scalar definition's result; the row beside them is unaffected. (The SIMD decoders read E4M3's 0x7F as 480,
// and the dequantize + sgemm path served FP8 prefill with it.)
TEST(PackedKernels, NonFiniteFp8CodesPoisonTheirRow) {
  const int64_t K = 70, N = 2;
  struct Case {
    kernels::Codes codes;
    uint8_t code;
    float scale_fold;  // packed_linear.cc folds 2^8 into e4m3's scales
  };
  for (const Case c : {Case{kernels::Codes::E4M3, 0x7F, 256.0f}, Case{kernels::Codes::E4M3, 0xFF, 256.0f},
                       Case{kernels::Codes::E5M2, 0x7E, 1.0f}, Case{kernels::Codes::E5M2, 0xFD, 1.0f},
                       Case{kernels::Codes::E5M2, 0x7C, 1.0f}, Case{kernels::Codes::E5M2, 0xFC, 1.0f}}) {
    for (const int64_t at : {int64_t{3}, int64_t{37}, int64_t{68}}) {
      std::vector<uint8_t> codes(static_cast<size_t>(N * K));
      for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>((i * 37) % 0x40);  // |v| < 2
      codes[static_cast<size_t>(at)] = c.code;
      std::vector<float> scales(18, 0.0f);  // two rows, then the padding PackedMatrix asks for
      scales[0] = 0.5f * c.scale_fold;
      scales[1] = 0.25f * c.scale_fold;
      kernels::PackedMatrix pm = fp8_matrix(c.codes, codes, N, K, scales);
      ASSERT_FALSE(std::isfinite(kernels::packed_weight(pm, 0, at)));
      pm.nonfinite_codes = kernels::has_nonfinite_codes(pm);
      ASSERT_TRUE(pm.nonfinite_codes);
      const std::string what = std::string(c.codes == kernels::Codes::E4M3 ? "e4m3" : "e5m2") + " code " +
                               std::to_string(c.code) + " at column " + std::to_string(at);
      for (const int64_t m : {int64_t{1}, int64_t{2}, int64_t{9}}) {
        const std::vector<float> x = random_values(m * K, static_cast<uint32_t>(m + at));
        std::vector<float> ref(static_cast<size_t>(m * N)), y(ref.size());
        kernels::packed_linear_ref(x.data(), m, pm, nullptr, ref.data());
        const auto check = [&](const std::string& path) {
          for (int64_t i = 0; i < m; ++i) {
            const auto bad = static_cast<size_t>(i * N), good = bad + 1;
            EXPECT_EQ(std::isnan(y[bad]), std::isnan(ref[bad])) << what << ", " << path << ", x row " << i;
            EXPECT_FALSE(std::isfinite(y[bad])) << what << ", " << path << ", x row " << i;
            EXPECT_NEAR(y[good], ref[good], 1e-4f) << what << ", " << path << ", x row " << i;
          }
        };
        for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
          hwy::SetSupportedTargetsForTest(target);
          kernels::packed_gemv(x.data(), m, pm, nullptr, y.data(), kernels::GemvPath::Float);
          check(std::string("fp32 decoder ") + hwy::TargetName(target));
          kernels::packed_gemv(x.data(), m, pm, nullptr, y.data());
          check(std::string("gemv (auto) ") + hwy::TargetName(target));
          kernels::packed_tiled_sgemm(x.data(), m, pm, nullptr, y.data());
          check(std::string("dequantize + sgemm ") + hwy::TargetName(target));
          kernels::packed_linear(x.data(), m, pm, nullptr, y.data());
          check(std::string("packed_linear ") + hwy::TargetName(target));
        }
        hwy::SetSupportedTargetsForTest(0);
      }
      codes[static_cast<size_t>(at)] = 0x12;
      EXPECT_FALSE(kernels::has_nonfinite_codes(pm)) << what;
    }
  }
}

// The E4M3 table decoder (bf16-rounded weights, kernels_packed_fp8.h) gives packed_weight bit for bit for
// every finite code: each row holds all 254 of them, and a one-hot x reads one weight at a time. The
// scales include ones whose products round (many mantissa bits), a negative one, and ones the tables cannot
// serve (zero, tiny, huge, infinite), which go to the fp32 decoder. Row 5 also holds the NaN codes, which
// send its block to the scalar definition: NaN times 0 poisons all of its outputs. Rows go through the
// decoder four at a time and a block falls back as a whole, so the rows the tables serve share blocks
// (0-3, 4-7 with the NaN row) or stand alone (12), and the others fill block 8-11. With random x, the
// outputs equal the fp32 decoder's on its AVX2 target bit for bit (the same sums in the same order).
TEST(PackedKernels, Fp8TableDecoderGivesEveryWeightExactly) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> scales = {0.0123f, 1.0f / 3.0f, -0.7071f, 3.1e-5f, 250.0f, 0.5f, 0.09f,
                                     2.0e-3f, 0.0f,        1e-35f,   1e35f,   inf,    0.77f};
  const int64_t nan_row = 5;
  const int64_t K = 256 + 7;  // 8 chunks and a tail of 7 columns
  const auto N = static_cast<int64_t>(scales.size());
  std::vector<uint8_t> codes(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      auto b = static_cast<uint8_t>((k * 37 + n * 11) % 256);  // every code once in the first 256 columns
      // NaN codes only in nan_row, and only where the table decoder reads (not in the tail).
      if ((b & 0x7F) == 0x7F && (n != nan_row || k >= 256)) b = static_cast<uint8_t>(b - 1);
      codes[static_cast<size_t>(n * K + k)] = b;
    }
  }
  std::vector<float> sc(scales.size());
  for (size_t i = 0; i < sc.size(); ++i)
    sc[i] = 256.0f * bf16_to_f32(f32_to_bf16(scales[i]));  // + E4M3's 2^8
  kernels::PackedMatrix pm = fp8_matrix(kernels::Codes::E4M3, codes, N, K, sc);
  pm.round_to_bf16 = true;
  if (!kernels::packed_gemv_uses_fp8_table(pm))
    GTEST_SKIP() << "the table decoder does not run here (it needs AVX2 and FMA)";
  std::vector<float> x(static_cast<size_t>(K), 0.0f), y(static_cast<size_t>(N));
  for (int64_t k = 0; k < K; ++k) {
    x[static_cast<size_t>(k)] = 1.0f;
    kernels::packed_gemv(x.data(), 1, pm, nullptr, y.data());
    x[static_cast<size_t>(k)] = 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      if (n == nan_row) continue;
      const float want = kernels::packed_weight(pm, n, k), got = y[static_cast<size_t>(n)];
      if (std::isnan(want)) {  // an infinite scale times code 0
        EXPECT_TRUE(std::isnan(got)) << "row " << n;
      } else {
        ASSERT_EQ(got, want) << "row " << n << " (scale " << scales[static_cast<size_t>(n)] << ") code "
                             << int(codes[static_cast<size_t>(n * K + k)]);
      }
    }
    EXPECT_TRUE(std::isnan(y[static_cast<size_t>(nan_row)])) << "the row with NaN codes, column " << k;
  }
  for (int64_t m : {1, 2, 3, 5}) {
    const std::vector<float> xr = random_values(m * K, static_cast<uint32_t>(m));
    std::vector<float> table(static_cast<size_t>(m * N)), fp32(static_cast<size_t>(m * N));
    // Both on Highway's AVX2 target: the table decoder sums in its order, and the blocks it declines go to
    // the fp32 decoder, which on an AVX-512 CPU would otherwise sum in 16 lanes.
    hwy::SetSupportedTargetsForTest(HWY_AVX2);
    kernels::packed_gemv(xr.data(), m, pm, nullptr, table.data());
    kernels::packed_gemv(xr.data(), m, pm, nullptr, fp32.data(), kernels::GemvPath::Float);
    hwy::SetSupportedTargetsForTest(0);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t n = 0; n < N; ++n) {
        const size_t at = static_cast<size_t>(i * N + n);
        if (n == nan_row || std::isnan(fp32[at])) continue;
        EXPECT_EQ(table[at], fp32[at]) << "m=" << m << " x row " << i << " weight row " << n;
      }
    }
  }
}

// The table decoder's short path (chunks of 32 codes with no zero exponent field, marked by
// PackedMatrix::zero_exponent_chunks) gives packed_weight bit for bit for every normal code, next to chunks
// that hold zeros and subnormals (first, middle or last of a row, so runs of short chunks start and stop
// anywhere), per row and per group of 64 columns, with a tail of 5 columns. With random x and 1, 2 or 3
// x rows the outputs equal the fp32 decoder's and the decoder's without the bits, bit for bit.
TEST(PackedKernels, Fp8TableDecoderShortPathGivesEveryWeightExactly) {
  std::vector<uint8_t> normal;  // the 238 finite codes with a nonzero exponent field
  for (int b = 0; b < 256; ++b)
    if ((b & 0x78) != 0 && (b & 0x7F) != 0x7F) normal.push_back(static_cast<uint8_t>(b));
  ASSERT_EQ(normal.size(), 238u);
  const int64_t N = 13, K = 9 * 32 + 5;
  std::vector<uint8_t> codes(static_cast<size_t>(N * K));
  std::vector<int64_t> special(static_cast<size_t>(N));  // each row's chunk with zeros and subnormals
  for (int64_t n = 0; n < N; ++n) {
    special[static_cast<size_t>(n)] = n % 3 == 0 ? 8 : n % 3 == 1 ? 0 : 4;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t j = k % 32;
      uint8_t b = normal[static_cast<size_t>((k + 7 * n) % 238)];
      if (k / 32 == special[static_cast<size_t>(n)] && j < 16)
        b = static_cast<uint8_t>((j & 7) | (j & 8) << 4);
      codes[static_cast<size_t>(n * K + k)] = b;
    }
  }
  for (int64_t group : {K, int64_t{64}}) {
    const int64_t G = (K + group - 1) / group;
    std::vector<float> sc(static_cast<size_t>(N * G) + 16, 0.0f);
    for (int64_t c = 0; c < N * G; ++c)  // bf16 scales (+ E4M3's 2^8), some negative, many mantissa bits
      sc[static_cast<size_t>(c)] =
          256.0f *
          bf16_to_f32(f32_to_bf16((c % 5 == 2 ? -1.0f : 1.0f) * (0.0123f + 0.0371f * static_cast<float>(c))));
    kernels::PackedMatrix pm = fp8_matrix(kernels::Codes::E4M3, codes, N, K, sc);
    pm.group_size = group;
    pm.round_to_bf16 = true;
    if (!kernels::packed_gemv_uses_fp8_table(pm))
      GTEST_SKIP() << "the table decoder does not run here (it needs AVX2 and FMA)";
    const std::vector<uint64_t> bits = kernels::fp8_zero_exponent_chunks(pm);
    const int64_t words = kernels::fp8_chunk_words(K);
    ASSERT_EQ(words, 1);
    for (int64_t n = 0; n < N; ++n)
      EXPECT_EQ(bits[static_cast<size_t>(n)], uint64_t{1} << special[static_cast<size_t>(n)]) << "row " << n;
    kernels::PackedMatrix without = pm;
    pm.zero_exponent_chunks = bits.data();
    std::vector<float> x(static_cast<size_t>(K), 0.0f), y(static_cast<size_t>(N));
    for (int64_t k = 0; k < K; ++k) {
      x[static_cast<size_t>(k)] = 1.0f;
      kernels::packed_gemv(x.data(), 1, pm, nullptr, y.data());
      x[static_cast<size_t>(k)] = 0.0f;
      for (int64_t n = 0; n < N; ++n)
        ASSERT_EQ(y[static_cast<size_t>(n)], kernels::packed_weight(pm, n, k))
            << "group " << group << " row " << n << " column " << k << " code "
            << int(codes[static_cast<size_t>(n * K + k)]);
    }
    for (int64_t m : {1, 2, 3}) {
      const std::vector<float> xr = random_values(m * K, static_cast<uint32_t>(m + 40));
      std::vector<float> fast(static_cast<size_t>(m * N)), slow(fast.size()), fp32(fast.size());
      kernels::packed_gemv(xr.data(), m, pm, nullptr, fast.data());
      kernels::packed_gemv(xr.data(), m, without, nullptr, slow.data());
      hwy::SetSupportedTargetsForTest(HWY_AVX2);  // the table decoder's summation order
      kernels::packed_gemv(xr.data(), m, pm, nullptr, fp32.data(), kernels::GemvPath::Float);
      hwy::SetSupportedTargetsForTest(0);
      for (size_t at = 0; at < fast.size(); ++at) {
        EXPECT_EQ(fast[at], fp32[at]) << "group " << group << " m=" << m << " output " << at;
        EXPECT_EQ(slow[at], fp32[at]) << "group " << group << " m=" << m << " output " << at;
      }
    }
  }
}

// W8A8: int8 activation codes times int8 weight codes equals the fake-quant path (the activations
// quantized-dequantized by the quant library, then multiplied with the dequantized weights) up to fp32
// rounding of that path.
TEST(PackedKernels, W8A8IntegerProductMatchesFakeQuantization) {
  for (bool words : {true, false}) {
    for (QuantStrategy act : {QuantStrategy::Token, QuantStrategy::Tensor}) {
      const Shape s{11, 203};
      const StoredCase c = make_case(int_args(8, QuantStrategy::Channel, 0, true), s.N, s.K, words, 99);
      QuantArgs in = int_args(8, act, 0, true);
      in.dynamic = DynamicMode::Dynamic;
      PackedLinear lin(c.stored, std::nullopt, ActivationQuantizer(in, {}, {}));
      ASSERT_TRUE(lin.integer_activations());
      for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
        hwy::SetSupportedTargetsForTest(target);
        SCOPED_TRACE(hwy::TargetName(target));
        for (int threads : {1, 2}) {
          set_global_threads(threads);
          for (int64_t m : {1, 3, 6, 70}) {
            std::vector<float> x = random_values(m * s.K, static_cast<uint32_t>(m));
            x[2] = 7.0f;  // an outlier
            std::vector<float> y(static_cast<size_t>(m * s.N));
            lin.forward(x.data(), m, y.data());
            std::vector<float> xq(x.size());
            fake_quantize_dynamic(x.data(), m, s.K, in, xq.data());
            double worst = 0.0, largest = 0.0;
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t n = 0; n < s.N; ++n) {
                double exact = 0.0;
                for (int64_t k = 0; k < s.K; ++k)
                  exact += static_cast<double>(xq[static_cast<size_t>(i * s.K + k)]) *
                           c.dequantized[static_cast<size_t>(n * s.K + k)];
                worst = std::max(worst, std::abs(exact - y[static_cast<size_t>(i * s.N + n)]));
                largest = std::max(largest, std::abs(exact));
              }
            }
            // Exact integer sums; only the final rescale (and the reference's own fp32 inputs) round.
            EXPECT_LT(worst, 1e-5 * largest) << "m=" << m << " words=" << words;
          }
        }
      }
      hwy::SetSupportedTargetsForTest(0);
      set_global_threads(0);
    }
  }
}

// The integer kernels (Highway int16 multiply-add; the int16 gemv for few x rows; AMX-INT8, AVX-512 VNNI or
// on AVX2 the blocked vpmaddwd kernel for many, where the CPU has them) against the scalar integer reference:
// exact sums, the same float rescale, so equal results. The shapes reach every blocking edge of the AVX2
// kernel: partial blocks of 8 x rows, more weight rows than a tile of 32, more columns than a pass of 1024,
// and columns beyond the last whole 16; and of the AMX kernel (kernels_packed_amx_test.cc has more): x rows
// past the last whole 32 or 16, weight rows past the last whole 32 or 16.
TEST(PackedKernels, Int8KernelsEqualTheReference) {
  struct Shape {
    int64_t N, K, m;
  };
  const bool amx_saved = kernels::set_int8_amx_enabled(true);
  for (bool words : {true, false}) {
    for (const Shape& s :
         {Shape{9, 70, 6}, Shape{9, 200, 6}, Shape{9, 256, 6}, Shape{9, 200, 50}, Shape{70, 1100, 53},
          Shape{33, 64, 64}, Shape{9, 256, 3}, Shape{70, 768, 40}, Shape{37, 128, 17}}) {
      const StoredCase c = make_case(int_args(8, QuantStrategy::Channel, 0, true), s.N, s.K, words, 5);
      QuantArgs in = int_args(8, QuantStrategy::Token, 0, true);
      in.dynamic = DynamicMode::Dynamic;
      PackedLinear lin(c.stored, std::nullopt, ActivationQuantizer(in, {}, {}));
      ASSERT_NE(lin.matrix().row_code_sums, nullptr);
      kernels::Int8Activations a;
      a.rows = s.m;
      a.cols = s.K;
      std::mt19937 rng(3);
      std::uniform_int_distribution<int> code(-128, 127);
      for (int64_t i = 0; i < a.rows * a.cols; ++i) a.codes.push_back(static_cast<int16_t>(code(rng)));
      for (int64_t i = 0; i < a.rows; ++i) a.scales.push_back(0.01f * static_cast<float>(i + 1));
      kernels::finish_int8_activations(a);
      std::vector<float> bias(static_cast<size_t>(s.N));
      for (int64_t n = 0; n < s.N; ++n)
        bias[static_cast<size_t>(n)] = 0.37f * static_cast<float>(n % 7) - 1.1f;
      const float* b = s.m > 6 ? bias.data() : nullptr;
      std::vector<float> ref(static_cast<size_t>(a.rows * s.N));
      kernels::int8_linear_ref(a, lin.matrix(), b, ref.data());
      // fast with AMX off: VNNI or AVX2 take the sizes AMX takes where the CPU has it.
      for (int path : {0, 1, 2}) {
        const bool fast = path > 0;
        kernels::set_int8_amx_enabled(path == 2);
        for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
          hwy::SetSupportedTargetsForTest(target);
          std::vector<float> y(ref.size());
          kernels::int8_linear(a, lin.matrix(), b, y.data(), fast);
          const std::string what = "N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                                   " m=" + std::to_string(s.m) + " words=" + std::to_string(words) +
                                   " path=" + std::to_string(path) + " " + hwy::TargetName(target);
          const bool int16_gemv = fast && kernels::int8_linear_uses_int16(s.m, lin.matrix());
          if (!int16_gemv) {
            EXPECT_EQ(y, ref) << what;
          } else {
            // The int16 kernels: exact sums per 64-column chunk, fp32 across at most 4 chunks and the
            // storage offset's correction (relative 2^-22 of the terms summed, bounded here by 1e-5).
            for (size_t t = 0; t < y.size(); ++t) {
              double terms = 0.0;
              const int64_t i = static_cast<int64_t>(t) / s.N, n = static_cast<int64_t>(t) % s.N;
              for (int64_t k = 0; k < s.K; ++k)
                terms += std::abs(a.codes[static_cast<size_t>(i * s.K + k)] *
                                  (kernels::packed_code(lin.matrix(), n, k) + 128.0)) *
                         a.scales[static_cast<size_t>(i)] * lin.matrix().scales[n];
              EXPECT_NEAR(y[t], ref[t], 1e-5 * terms + 1e-30) << what << " y[" << t << "]";
            }
          }
        }
        hwy::SetSupportedTargetsForTest(0);
      }
    }
  }
  kernels::set_int8_amx_enabled(amx_saved);
  if (!kernels::have_avx512_vnni() && !kernels::have_avx2_fma())
    GTEST_SKIP() << "neither AVX-512 VNNI nor AVX2 here: only the Highway kernel ran";
}

// W8A8's per-row int8 activation quantizer: the vector version gives the scalar definition's scale, codes,
// biased bytes and code sum bit for bit. Rows: random values with an outlier, half-way values (a maximum of
// 127.5 makes the scale exactly 1, so k + 0.5 lies between two codes and rounds to even), all zeros (the
// 2^-23 scale), and a given per-tensor scale small enough that codes clamp at -128 and 127.
TEST(PackedKernels, Int8RowQuantizerMatchesReference) {
  if (!kernels::have_avx2_fma()) GTEST_SKIP() << "no AVX2 here: only the reference runs";
  for (int64_t K : {5, 16, 37, 768, 1100}) {
    std::vector<std::vector<float>> rows;
    rows.push_back(random_values(K, static_cast<uint32_t>(K), 2.0f));
    rows.back()[static_cast<size_t>(K / 2)] = -9.0f;
    std::vector<float> ties(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k)
      ties[static_cast<size_t>(k)] = (k % 2 ? -1.0f : 1.0f) * (static_cast<float>(k % 127) + 0.5f);
    ties[0] = 127.5f;
    rows.push_back(ties);
    rows.push_back(std::vector<float>(static_cast<size_t>(K), 0.0f));
    for (float tensor_scale : {0.0f, 0.01f}) {
      for (const std::vector<float>& x : rows) {
        float s_ref = 0, s_vec = 0;
        std::vector<int16_t> c_ref(static_cast<size_t>(K)), c_vec(static_cast<size_t>(K));
        std::vector<uint8_t> b_ref(static_cast<size_t>(K)), b_vec(static_cast<size_t>(K));
        const int32_t sum_ref =
            kernels::quantize_int8_row_ref(x.data(), K, tensor_scale, &s_ref, c_ref.data(), b_ref.data());
        const int32_t sum_vec =
            kernels::quantize_int8_row(x.data(), K, tensor_scale, &s_vec, c_vec.data(), b_vec.data());
        const std::string what = "K=" + std::to_string(K) + " tensor_scale=" + std::to_string(tensor_scale);
        EXPECT_EQ(s_vec, s_ref) << what;
        EXPECT_EQ(c_vec, c_ref) << what;
        EXPECT_EQ(b_vec, b_ref) << what;
        EXPECT_EQ(sum_vec, sum_ref) << what;
      }
    }
  }
}

// got[i] == want[i] for every i, or both NaN.
void expect_equal_or_both_nan(const std::vector<float>& got, const std::vector<float>& want,
                              const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " " << i;
    } else {
      EXPECT_EQ(got[i], want[i]) << what << " " << i;
    }
  }
}

// The vector quantizer of the int16 activations gives the scalar reference's codes and scales bit for bit:
// full and partial blocks, every code layout, zeros, tiny and huge magnitudes, half-way values (which round
// to even), and blocks holding a NaN or an infinity (which the vector code hands to the scalar one). The
// vector path writes into codes left from an earlier call (it does not clear them first), so each check
// starts from another input's codes of the same shape.
TEST(PackedKernels, Int16ActivationQuantizerMatchesReference) {
  if (!kernels::have_avx2_fma()) GTEST_SKIP() << "no AVX2 here: only the reference runs";
  for (kernels::Codes codes : {kernels::Codes::Int4, kernels::Codes::UInt8, kernels::Codes::Int8}) {
    for (int bits : {16, 8}) {
      if (bits == 8 && codes != kernels::Codes::Int4) continue;  // int8 codes go with int4 weights only
      const float limit = bits == 8 ? 127.0f : 32767.0f;
      for (auto [K, group_size] : {std::pair<int64_t, int64_t>{32, 32},
                                   {64, 32},
                                   {200, 32},
                                   {768, 32},
                                   {200, 128},
                                   {768, 128},
                                   {768, 768}}) {
        kernels::PackedMatrix w;
        w.codes = codes;
        w.cols = K;
        w.group_size = group_size;
        const int64_t m = 5;
        std::vector<float> x = random_values(m * K, static_cast<uint32_t>(K), 3.0f);
        for (int64_t k = 0; k < 32; ++k) x[static_cast<size_t>(K + k)] = 0.0f;  // row 1, block 0: all zero
        x[3] = 1e30f;                                                           // a huge magnitude
        x[static_cast<size_t>(2 * K + 1)] = 1e-38f;                             // tiny ones
        x[static_cast<size_t>(2 * K + 2)] = -3e-39f;
        x[static_cast<size_t>(3 * K + 5)] = std::numeric_limits<float>::quiet_NaN();
        x[static_cast<size_t>(4 * K + 1)] = -std::numeric_limits<float>::infinity();
        // Row 4, block 1: a maximum of `limit` makes the step exactly 1, so k + 0.5 lies half-way between
        // codes.
        if (K >= 64) {
          x[static_cast<size_t>(4 * K + 32)] = limit;
          for (int64_t k = 1; k < 32; ++k)
            x[static_cast<size_t>(4 * K + 32 + k)] = (k % 2 ? 1.0f : -1.0f) * (static_cast<float>(k) + 0.5f);
        }
        const std::string what = "K=" + std::to_string(K) + " group " + std::to_string(group_size) +
                                 " bits=" + std::to_string(bits);
        kernels::ActivationCodes fast, ref;
        const std::vector<float> before = random_values(m * K, static_cast<uint32_t>(K + 1), 100.0f);
        kernels::quantize_activation_codes(before.data(), m, w, fast, bits);
        kernels::quantize_activation_codes(x.data(), m, w, fast, bits);
        kernels::quantize_activation_codes_ref(x.data(), m, w, ref, bits);
        ASSERT_EQ(fast.bits, bits);
        ASSERT_EQ(ref.bits, bits);
        ASSERT_EQ(fast.codes, ref.codes) << what;
        ASSERT_EQ(fast.bytes, ref.bytes) << what;
        ASSERT_EQ(bits == 8 ? ref.bytes.size() : ref.codes.size(), static_cast<size_t>(m * ref.chunks * 64))
            << what;
        expect_equal_or_both_nan(fast.scales, ref.scales, what + " block");
        expect_equal_or_both_nan(fast.lane_scales, ref.lane_scales, what + " lane");
        expect_equal_or_both_nan(fast.group_sums, ref.group_sums, what + " group");
      }
    }
  }
}

// The int16 kernels fold offset zero terms (int4 symmetric: 8 s) into each group's chunk loop; a group that
// holds no full 64-column chunk gets them after the loop instead, as do zero terms given per cell
// (asymmetric codes). The quantizers only make groups that divide K, so this matrix is built directly: groups
// of 128 over 160 or 800 columns leave the last group only the 32-column tail (768: every group folded).
// Checked against the scalar definition on the same activation codes, and each x row of a batch (blocks of 2
// or 8 x rows, then one) against that row alone, bit for bit: the batched kernel and the decode kernel do the
// same operations, the scalar tail's included.
TEST(PackedKernels, Int16KernelsTakeZeroTermsOfGroupsWithoutAFullChunk) {
  if (!kernels::have_avx2_fma()) GTEST_SKIP() << "no AVX2 here: the int16 kernels do not run";
  for (const int64_t K : {int64_t{160}, int64_t{800}, int64_t{768}}) {
    const int64_t N = 6, G = (K + 127) / 128;
    std::mt19937 rng(static_cast<uint32_t>(K));
    std::vector<uint8_t> codes(static_cast<size_t>(N * K / 2));
    for (uint8_t& b : codes) b = static_cast<uint8_t>(rng());
    std::vector<float> scales = random_values(N * G + 16, 9, 0.02f);
    for (float& v : scales) v = std::abs(v) + 1e-3f;
    const std::vector<float> zero_terms = random_values(N * G + 16, 11, 0.1f);
    for (bool asymmetric : {false, true}) {
      kernels::PackedMatrix w;
      w.codes = kernels::Codes::Int4;
      w.data = codes.data();
      w.rows = N;
      w.cols = K;
      w.row_bytes = K / 2;
      w.group_size = 128;
      w.scales = scales.data();
      w.zero_offset = asymmetric ? 0.0f : 8.0f;
      w.zero_terms = asymmetric ? zero_terms.data() : nullptr;
      for (int bits : {8, 16}) {
        for (int64_t m : {1, 3, 9}) {
          const std::string what = "K=" + std::to_string(K) + (asymmetric ? " asymmetric" : " offset") +
                                   " bits=" + std::to_string(bits) + " m=" + std::to_string(m);
          const std::vector<float> x = random_values(m * K, static_cast<uint32_t>(m), 2.0f);
          kernels::ActivationCodes xq;
          kernels::quantize_activation_codes(x.data(), m, w, xq, bits);
          std::vector<float> y(static_cast<size_t>(m * N)), ref(y.size());
          kernels::int16_gemv_rows(xq, w, nullptr, y.data(), 0, N);
          const std::vector<float> values = kernels::activation_code_values(xq, w);
          kernels::packed_linear_ref(values.data(), m, w, nullptr, ref.data());
          for (int64_t i = 0; i < m; ++i) {
            kernels::ActivationCodes row_codes;
            kernels::quantize_activation_codes(x.data() + i * K, 1, w, row_codes, bits);
            std::vector<float> alone(static_cast<size_t>(N));
            kernels::int16_gemv_rows(row_codes, w, nullptr, alone.data(), 0, N);
            for (int64_t n = 0; n < N; ++n) {
              const auto at = static_cast<size_t>(i * N + n);
              double magnitude = 0.0;
              for (int64_t k = 0; k < K; ++k) {
                const int64_t cell = n * G + k / 128;
                magnitude += std::abs(values[static_cast<size_t>(i * K + k)]) *
                             (16.0 * w.scales[cell] + std::abs(w.zero_term(cell)));
              }
              EXPECT_NEAR(y[at], ref[at], static_cast<double>(K + 8) * std::ldexp(1.0, -23) * magnitude)
                  << what << " y[" << i << "][" << n << "]";
              EXPECT_EQ(y[at], alone[static_cast<size_t>(n)]) << what << " y[" << i << "][" << n << "]";
            }
          }
        }
      }
    }
  }
}

// The integer activation codes: every chunk position is used once, and each value moves by at most half its
// scale block's step (max |x_b| / 32767 / 2 over 32 columns for int16 codes, / 127 / 2 over 8 for int8, plus
// the fp32 rounding of code * scale).
TEST(PackedKernels, Int16ActivationsRoundWithinHalfAStep) {
  for (kernels::Codes codes : {kernels::Codes::Int4, kernels::Codes::UInt8, kernels::Codes::Int8}) {
    for (int bits : {16, 8}) {
      if (bits == 8 && codes != kernels::Codes::Int4) continue;
      std::vector<int> seen(kernels::kInt16Chunk, 0);
      for (int64_t j = 0; j < kernels::kInt16Chunk; ++j) {
        const int64_t p = kernels::int16_chunk_position(codes, j, bits);
        ASSERT_GE(p, 0);
        ASSERT_LT(p, kernels::kInt16Chunk);
        ++seen[static_cast<size_t>(p)];
        // Lanes 0-3 of the int32 sums must hold the first 32 columns: int16 lanes 0-7 of each vector of 16,
        // or bytes 0-15 of each vector of 32.
        const bool low_half = bits == 8 ? p % 32 < 16 : p % 16 < 8;
        EXPECT_EQ(low_half, j < kernels::kInt16Block) << "column " << j << " bits " << bits;
      }
      for (int count : seen) EXPECT_EQ(count, 1);
    }
  }
  kernels::PackedMatrix w;
  w.codes = kernels::Codes::Int4;
  w.cols = 200;
  w.group_size = 64;
  std::vector<float> x = random_values(3 * w.cols, 5, 2.0f);
  x[17] = 40.0f;  // an outlier: its block's step grows, the others' do not
  for (int bits : {16, 8}) {
    const float limit = bits == 8 ? 127.0f : 32767.0f;
    kernels::ActivationCodes q;
    kernels::quantize_activation_codes(x.data(), 3, w, q, bits);
    const std::vector<float> values = kernels::activation_code_values(q, w);
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t k = 0; k < w.cols; ++k) {
        const int64_t b0 = k / q.scale_block * q.scale_block;
        float amax = 0.0f;
        for (int64_t j = b0; j < std::min<int64_t>(w.cols, b0 + q.scale_block); ++j)
          amax = std::max(amax, std::abs(x[static_cast<size_t>(i * w.cols + j)]));
        const size_t at = static_cast<size_t>(i * w.cols + k);
        EXPECT_LE(std::abs(values[at] - x[at]),
                  amax / limit * 0.5f * (1.0f + 1e-5f) + std::abs(x[at]) * 1e-7f)
            << "x[" << i << "][" << k << "] bits " << bits;
      }
    }
  }
}

// A non-finite activation makes the int16 path's outputs NaN, as the fp32 path's are non-finite.
TEST(PackedKernels, Int16PathCarriesNonFiniteInputs) {
  const StoredCase c = make_case(int_args(4, QuantStrategy::Group, 128, true), 8, 256, true, 3);
  PackedLinear lin(c.stored, std::nullopt, std::nullopt);
  if (!kernels::packed_gemv_uses_int16(lin.matrix())) GTEST_SKIP() << "no AVX2 here: the int16 path is off";
  std::vector<float> x = random_values(256, 9);
  x[100] = std::numeric_limits<float>::infinity();
  std::vector<float> y(8);
  kernels::packed_gemv(x.data(), 1, lin.matrix(), nullptr, y.data());
  for (float v : y) EXPECT_TRUE(std::isnan(v));
}

// The int16 decode kernels are compiled once per prefetch hint (row_streams.h: non-temporal on AMD CPUs,
// temporal elsewhere); a prefetch moves no data into the results, so both give the same bits. m = 1 takes
// the four-stream rows, m = 3 the batched rows.
TEST(PackedKernels, Int16DecodeIsTheSameWithEitherPrefetchHint) {
  if (!kernels::have_avx2_fma()) GTEST_SKIP() << "no AVX2 here: the int16 kernels do not run";
  const bool saved = kernels::row_stream_prefetch_non_temporal();
  for (int bits : {4, 8}) {
    const StoredCase c = make_case(int_args(bits, QuantStrategy::Group, 128, true), 70, 768, true, 21);
    PackedLinear lin(c.stored, std::nullopt, std::nullopt);
    ASSERT_TRUE(kernels::packed_gemv_uses_int16(lin.matrix()));
    for (int64_t m : {1, 3}) {
      const std::vector<float> x = random_values(m * 768, 22 + static_cast<uint32_t>(m));
      std::vector<float> temporal(static_cast<size_t>(m * 70), 0.0f), non_temporal(temporal.size(), 1.0f);
      kernels::set_row_stream_prefetch_non_temporal(false);
      kernels::packed_gemv(x.data(), m, lin.matrix(), nullptr, temporal.data());
      kernels::set_row_stream_prefetch_non_temporal(true);
      kernels::packed_gemv(x.data(), m, lin.matrix(), nullptr, non_temporal.data());
      EXPECT_EQ(temporal, non_temporal) << "bits " << bits << " m " << m;
      // And right: exact against the activation codes' values (as check_products).
      kernels::ActivationCodes xq;
      kernels::quantize_activation_codes(x.data(), m, lin.matrix(), xq);
      expect_matches(temporal, kernels::activation_code_values(xq, lin.matrix()), m, c, lin.matrix(),
                     "int" + std::to_string(bits) + " m=" + std::to_string(m));
    }
  }
  kernels::set_row_stream_prefetch_non_temporal(saved);
}

// Products of one x (q/k/v, gate/up) through forward_shared_input equal each layer's own forward() bit for
// bit, fused (same layout: one int16 rounding, one parallel region, chunks spanning matrices) or not
// (different group sizes, prefill sizes); with several threads.
TEST(PackedKernels, SharedInputProductsEqualSeparateOnes) {
  const int64_t K = 256;
  const StoredCase a = make_case(int_args(4, QuantStrategy::Group, 128, true), 37, K, true, 11);
  const StoredCase b = make_case(int_args(4, QuantStrategy::Group, 128, false), 5, K, true, 12);
  const StoredCase c = make_case(int_args(4, QuantStrategy::Group, 128, true), 300, K, true, 13);
  const StoredCase d = make_case(int_args(4, QuantStrategy::Group, 64, true), 9, K, true, 14);
  const std::vector<float> bias = random_values(300, 15);
  TensorView bias_view{"b", DType::F32, {300}, reinterpret_cast<const std::byte*>(bias.data()), 1200};
  PackedLinear la(a.stored, std::nullopt, std::nullopt), lb(b.stored, std::nullopt, std::nullopt);
  PackedLinear lc(c.stored, bias_view, std::nullopt), ld(d.stored, std::nullopt, std::nullopt);
  for (int threads : {1, 2, 3}) {
    set_global_threads(threads);
    for (int64_t m : {1, 3, 64}) {
      const std::vector<float> x = random_values(m * K, 16 + static_cast<uint32_t>(m));
      for (const std::vector<const LinearWeight*>& layers :
           {std::vector<const LinearWeight*>{&la, &lb, &lc}, std::vector<const LinearWeight*>{&la, &ld}}) {
        std::vector<std::vector<float>> fused, separate;
        std::vector<float*> outputs;
        for (const LinearWeight* l : layers) {
          fused.emplace_back(static_cast<size_t>(m * l->out_features()), -1.0f);
          separate.emplace_back(fused.back().size());
          l->forward(x.data(), m, separate.back().data());
        }
        for (auto& f : fused) outputs.push_back(f.data());
        forward_shared_input(x.data(), m, layers, outputs);
        for (size_t j = 0; j < layers.size(); ++j)
          for (size_t i = 0; i < fused[j].size(); ++i)
            ASSERT_EQ(fused[j][i], separate[j][i]) << "threads " << threads << " m " << m << " layer " << j;
      }
    }
  }
  set_global_threads(0);
}

TEST(PackedKernels, RejectsMismatchedInputs) {
  const StoredCase c = make_case(int_args(4, QuantStrategy::Group, 32, true), 4, 64, true, 1);
  PackedLinear lin(c.stored, std::nullopt, std::nullopt);
  kernels::Int8Activations a;
  a.rows = 1;
  a.cols = 64;
  a.codes.assign(64, 0);
  a.scales = {1.0f};
  a.sums = {0};
  std::vector<float> y(4);
  EXPECT_THROW(kernels::int8_linear(a, lin.matrix(), nullptr, y.data()), Error);  // int4 weights
  formats::StoredWeight bad = c.stored;
  bad.scales.shape = {bad.scales.numel() - 1};
  bad.scales.nbytes -= dtype_size(bad.scales.dtype);
  EXPECT_THROW(PackedLinear(bad, std::nullopt, std::nullopt), Error);
}

}  // namespace
}  // namespace lowbit::runtime

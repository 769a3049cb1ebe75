// GPTQ (quant/gptq.h): golden values from tools/reference/gptq_reference.py, the error-reduction property
// against RTN, the RTN equivalences of a diagonal Hessian, dead columns, g_idx, the Cholesky fallback, bad
// input, and the Hessian accumulator against a naive loop.
#include "quant/gptq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "quant/observer.h"
#include "quant/quantizer.h"
#include "util/error.h"

namespace lowbit {
namespace {

QuantScheme int_scheme(int bits, bool symmetric, int group_size /* 0 tensor, -1 channel */) {
  QuantArgs a;
  a.num_bits = bits;
  a.type = QuantType::Int;
  a.symmetric = symmetric;
  if (group_size > 0) {
    a.strategy = QuantStrategy::Group;
    a.group_size = group_size;
  } else {
    a.strategy = group_size == 0 ? QuantStrategy::Tensor : QuantStrategy::Channel;
  }
  QuantScheme s;
  s.targets = {"Linear"};
  s.weights = a;
  return s;
}

QuantScheme fp8_scheme(int group_size) {
  QuantScheme s = int_scheme(8, true, group_size);
  s.weights->type = QuantType::Float;
  return s;
}

// A calibration layer: random weights, inputs with correlated channels and a few outlier channels.
struct Layer {
  int64_t rows = 0, cols = 0;
  std::vector<float> w;
  std::vector<std::vector<float>> samples;  // each tokens x cols
  std::vector<double> h;
};

Layer make_layer(int64_t rows, int64_t cols, uint32_t seed, int samples = 4, int tokens = 64) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Layer l;
  l.rows = rows;
  l.cols = cols;
  l.w.resize(static_cast<size_t>(rows * cols));
  for (float& v : l.w) v = 0.05f * normal(gen);
  std::vector<float> gains(static_cast<size_t>(cols));
  for (float& g : gains) g = std::exp(0.7f * normal(gen));
  for (int64_t c = 3; c < cols; c += 37) gains[static_cast<size_t>(c)] *= 12.0f;  // outlier channels
  HessianAccumulator acc(cols);
  for (int s = 0; s < samples; ++s) {
    std::vector<float> x(static_cast<size_t>(tokens * cols));
    for (int t = 0; t < tokens; ++t) {
      float shared = normal(gen);  // a component common to all channels of a token: correlation
      float prev = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const float own = normal(gen);
        const float v = own + 0.6f * shared + 0.5f * prev;  // neighbour channels correlate too
        prev = own;
        x[static_cast<size_t>(t * cols + c)] = v * gains[static_cast<size_t>(c)];
      }
    }
    acc.add(x.data(), tokens);
    l.samples.push_back(std::move(x));
  }
  l.h = acc.hessian();
  return l;
}

// sum over rows of e^T H e with e = w - q: the layer's output error 2/N * ||(W - Q) X^T||^2.
double output_error(const std::vector<float>& w, const std::vector<float>& q, const std::vector<double>& h,
                    int64_t rows, int64_t cols) {
  double total = 0;
  std::vector<double> e(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      e[static_cast<size_t>(c)] =
          static_cast<double>(w[static_cast<size_t>(r * cols + c)]) - q[static_cast<size_t>(r * cols + c)];
    for (int64_t i = 0; i < cols; ++i) {
      double hi = 0;
      for (int64_t j = 0; j < cols; ++j)
        hi += h[static_cast<size_t>(i * cols + j)] * e[static_cast<size_t>(j)];
      total += e[static_cast<size_t>(i)] * hi;
    }
  }
  return total;
}

// RTN with the fast quantizers, dequantized.
ModuleQuantization rtn(const std::vector<float>& w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                       DType dtype = DType::F32) {
  ModuleQuantization q;
  q.name = "rtn";
  q.scheme = &scheme;
  q.rows = rows;
  q.cols = cols;
  q.weight_dtype = dtype;
  q.compute = compute_dtype_for(dtype);
  const ScaleGrid grid = make_scale_grid(*scheme.weights, rows, cols, "rtn");
  q.scale_rows = grid.scale_rows;
  q.scale_cols = grid.scale_cols;
  q.scales.resize(static_cast<size_t>(grid.size()));
  if (scheme.weights->type == QuantType::Int) {
    q.int_codes.resize(w.size());
    if (!scheme.weights->symmetric) q.zero_points.resize(q.scales.size());
    quantize_int(w.data(), rows, cols, *scheme.weights, q.int_codes.data(), q.scales.data(),
                 q.zero_points.empty() ? nullptr : q.zero_points.data(), q.compute);
  } else {
    q.fp8_codes.resize(w.size());
    quantize_fp8(w.data(), rows, cols, *scheme.weights, q.fp8_codes.data(), q.scales.data(), q.compute);
  }
  return q;
}

std::vector<double> diagonal_hessian(int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(0.1, 10.0);
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t c = 0; c < cols; ++c) h[static_cast<size_t>(c * cols + c)] = u(gen);
  return h;
}

// ---- Hessian accumulator ----------------------------------------------------------------------------

TEST(GptqHessian, MatchesNaiveDoubleLoop) {
  // 300 columns: two 192-wide tiles, one of them partial, so diagonal and off-diagonal tiles are covered.
  const int64_t cols = 300;
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  HessianAccumulator acc(cols);
  std::vector<double> naive(static_cast<size_t>(cols * cols), 0.0), magnitude(naive.size(), 0.0);
  const int tokens[] = {17, 0, 64, 5};
  for (int t : tokens) {
    std::vector<float> x(static_cast<size_t>(t * cols));
    for (float& v : x) v = normal(gen) * 3.0f;
    acc.add(x.data(), t);
    for (int r = 0; r < t; ++r) {
      for (int64_t i = 0; i < cols; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
          const double p = static_cast<double>(x[static_cast<size_t>(r * cols + i)]) *
                           x[static_cast<size_t>(r * cols + j)];
          naive[static_cast<size_t>(i * cols + j)] += p;
          magnitude[static_cast<size_t>(i * cols + j)] += std::fabs(p);
        }
      }
    }
  }
  EXPECT_EQ(acc.samples(), 4);
  EXPECT_EQ(acc.rows_seen(), 86);
  EXPECT_EQ(acc.cols(), cols);
  const std::vector<double> h = acc.hessian();
  ASSERT_EQ(h.size(), naive.size());
  // Within one sample the products are summed in fp32 (at most 64 terms): |error| <= 64 * 2^-24 * sum |x x|.
  const double norm = 2.0 / 4;
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const size_t k = static_cast<size_t>(i * cols + j);
      ASSERT_NEAR(h[k], norm * naive[k], norm * 64 * std::ldexp(1.0, -24) * magnitude[k] + 1e-300)
          << i << ", " << j;
      ASSERT_EQ(h[k], h[static_cast<size_t>(j * cols + i)]);
    }
  }
}

TEST(GptqHessian, RejectsBadInput) {
  EXPECT_THROW(HessianAccumulator(0), Error);
  HessianAccumulator acc(4);
  EXPECT_THROW(acc.hessian(), Error);  // no samples
  std::vector<float> x = {1, 2, 3, NAN};
  EXPECT_THROW(acc.add(x.data(), 1), Error);
  EXPECT_THROW(acc.add(nullptr, 2), Error);
}

// ---- golden values ----------------------------------------------------------------------------------

template <typename T>
std::vector<T> read_bin(const std::string& dir, const nlohmann::json& ref, size_t count) {
  const std::string path = dir + "/" + ref.at("file").get<std::string>();
  std::ifstream f(path, std::ios::binary);
  if (!f) ADD_FAILURE() << "cannot open " << path;
  std::vector<T> v(count);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(T)));
  EXPECT_EQ(static_cast<size_t>(f.gcount()), count * sizeof(T)) << path;
  return v;
}

TEST(GptqGolden, MatchesNumpyReference) {
  const std::string dir = std::string(LOWBIT_FIXTURES_DIR) + "/quant/gptq";
  std::ifstream f(dir + "/gptq_golden.json");
  ASSERT_TRUE(f) << "missing " << dir << "/gptq_golden.json (tools/reference/gptq_reference.py)";
  const nlohmann::json doc = nlohmann::json::parse(f);
  const int64_t rows = doc.at("rows"), cols = doc.at("cols");
  const auto w = read_bin<float>(dir, doc.at("weight"), static_cast<size_t>(rows * cols));
  const auto h = read_bin<double>(dir, doc.at("hessian"), static_cast<size_t>(cols * cols));
  const int64_t dead = doc.at("dead_column");
  ASSERT_EQ(h[static_cast<size_t>(dead * cols + dead)], 0.0);
  ASSERT_GE(doc.at("cases").size(), 8u);
  for (const nlohmann::json& c : doc.at("cases")) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    const int group = c.at("group_size");
    const QuantScheme scheme = int_scheme(c.at("num_bits"), c.at("symmetric"), group);
    GptqOptions o;
    o.block_size = c.at("block_size");
    o.dampening_frac = doc.at("dampening_frac");
    if (!c.at("actorder").is_null())
      o.actorder = c.at("actorder") == "group" ? ActOrder::Group : ActOrder::Weight;
    const DType dtype = c.at("weight_dtype") == "bfloat16" ? DType::BF16 : DType::F32;
    GptqStats stats;
    const ModuleQuantization q = gptq_quantize(name, w.data(), rows, cols, dtype, scheme, h, o, &stats);
    EXPECT_EQ(stats.dead_columns, 1);
    EXPECT_FALSE(stats.fell_back_to_rtn);
    EXPECT_NEAR(stats.loss, c.at("loss").get<double>(), 1e-4 * c.at("loss").get<double>());
    // Exact: the qparams depend on the weights only, and the fp32 column loop performs the same IEEE
    // operations in the same order as the reference; the fp64 factors agree to far below fp32 resolution.
    const auto scales = read_bin<float>(dir, c.at("scales"), q.scales.size());
    EXPECT_EQ(q.scales, scales);
    const auto codes = read_bin<int8_t>(dir, c.at("codes"), q.int_codes.size());
    int64_t differ = 0;
    for (size_t i = 0; i < codes.size(); ++i) differ += codes[i] != q.int_codes[i];
    EXPECT_EQ(differ, 0) << "of " << codes.size() << " codes";
    if (c.contains("zero_points")) {
      EXPECT_EQ(q.zero_points, read_bin<int8_t>(dir, c.at("zero_points"), q.zero_points.size()));
    } else {
      EXPECT_TRUE(q.zero_points.empty());
    }
    if (c.contains("g_idx")) {
      EXPECT_EQ(q.g_idx, read_bin<int32_t>(dir, c.at("g_idx"), static_cast<size_t>(cols)));
    } else {
      EXPECT_TRUE(q.g_idx.empty());
    }
  }
}

// ---- GPTQ beats RTN ---------------------------------------------------------------------------------

struct SchemeCase {
  int bits;
  bool symmetric;
  int group;  // -1 channel, 0 tensor
};

TEST(GptqQuality, OutputErrorBelowRtnOnEveryLayer) {
  const SchemeCase schemes[] = {{4, true, 32},  {4, false, 32},  {4, true, 64}, {4, false, 64},
                                {4, true, 128}, {4, false, 128}, {4, true, -1}, {4, false, -1},
                                {8, true, -1},  {3, false, 0}};
  const std::optional<ActOrder> orders[] = {std::nullopt, ActOrder::Weight, ActOrder::Group};
  for (uint32_t seed : {1u, 2u, 3u}) {
    const Layer l = make_layer(40, 256, seed);
    for (const SchemeCase& s : schemes) {
      const QuantScheme scheme = int_scheme(s.bits, s.symmetric, s.group);
      const double rtn_err =
          output_error(l.w, rtn(l.w, l.rows, l.cols, scheme).dequantize(), l.h, l.rows, l.cols);
      for (const auto& order : orders) {
        SCOPED_TRACE(testing::Message() << "seed " << seed << " " << describe(*scheme.weights) << " actorder "
                                        << (order ? to_string(*order) : "none"));
        GptqOptions o;
        o.actorder = order;
        GptqStats stats;
        const ModuleQuantization q =
            gptq_quantize("layer", l.w.data(), l.rows, l.cols, DType::F32, scheme, l.h, o, &stats);
        EXPECT_FALSE(stats.fell_back_to_rtn);
        const double err = output_error(l.w, q.dequantize(), l.h, l.rows, l.cols);
        EXPECT_LT(err, rtn_err);
        EXPECT_GT(stats.loss, 0.0);
      }
    }
  }
}

TEST(GptqQuality, Fp8OutputErrorBelowRtn) {
  const Layer l = make_layer(32, 128, 11);
  for (int group : {-1, 32, 0}) {
    for (FloatFormat fmt : {FloatFormat::E4M3, FloatFormat::E5M2}) {
      QuantScheme scheme = fp8_scheme(group);
      scheme.weights->float_format = fmt;
      const double rtn_err =
          output_error(l.w, rtn(l.w, l.rows, l.cols, scheme).dequantize(), l.h, l.rows, l.cols);
      const ModuleQuantization q =
          gptq_quantize("fp8", l.w.data(), l.rows, l.cols, DType::F32, scheme, l.h, {});
      EXPECT_FALSE(q.fp8_codes.empty());
      EXPECT_LT(output_error(l.w, q.dequantize(), l.h, l.rows, l.cols), rtn_err) << describe(*scheme.weights);
    }
  }
}

TEST(GptqQuality, BlockSizeOnlyChangesRounding) {
  // Lazy batch updates are a reordering of the same arithmetic: any block size gives (nearly) the same
  // result. Codes may differ where a value lies within fp32 rounding of a rounding boundary.
  const Layer l = make_layer(32, 192, 5);
  const QuantScheme scheme = int_scheme(4, false, 32);
  GptqOptions whole;
  whole.block_size = 192;
  const ModuleQuantization a = gptq_quantize("a", l.w.data(), l.rows, l.cols, DType::F32, scheme, l.h, whole);
  for (int64_t block : {1, 16, 50, 128}) {
    GptqOptions o;
    o.block_size = block;
    const ModuleQuantization b = gptq_quantize("b", l.w.data(), l.rows, l.cols, DType::F32, scheme, l.h, o);
    int64_t differ = 0;
    for (size_t i = 0; i < a.int_codes.size(); ++i) differ += a.int_codes[i] != b.int_codes[i];
    EXPECT_LE(differ, static_cast<int64_t>(a.int_codes.size() / 200)) << "block " << block;
    const double ea = output_error(l.w, a.dequantize(), l.h, l.rows, l.cols);
    const double eb = output_error(l.w, b.dequantize(), l.h, l.rows, l.cols);
    EXPECT_NEAR(eb, ea, 0.02 * ea) << "block " << block;
  }
}

TEST(GptqQuality, RowsAreIndependentOfThePanelSplit) {
  // Rows only share Hinv and (per-row) qparams, so quantizing a subset of the rows gives the same codes:
  // the result does not depend on how the pool splits rows into panels (or on the thread count).
  const Layer l = make_layer(80, 256, 8);
  const QuantScheme scheme = int_scheme(4, false, 64);
  GptqOptions o;
  o.actorder = ActOrder::Group;
  const ModuleQuantization all = gptq_quantize("all", l.w.data(), 80, 256, DType::BF16, scheme, l.h, o);
  for (int64_t first : {0, 17, 79}) {
    const int64_t count = std::min<int64_t>(23, 80 - first);
    const ModuleQuantization part =
        gptq_quantize("part", l.w.data() + first * 256, count, 256, DType::BF16, scheme, l.h, o);
    EXPECT_TRUE(std::equal(part.int_codes.begin(), part.int_codes.end(), all.int_codes.begin() + first * 256))
        << "rows " << first << " .. " << first + count;
    EXPECT_EQ(part.g_idx, all.g_idx);
  }
}

// ---- diagonal Hessian = RTN ------------------------------------------------------------------------
// With a diagonal H the factor of H^-1 is diagonal, so no error is propagated and every column is rounded
// on its own with the up-front qparams. GPTQ then equals RTN code for code when (a) the qparams are RTN's:
// min-max observer, actorder none or weight/static (static keeps each column's original group; only the
// processing order changes, which no longer matters), not actorder group with groups (those are formed
// in diag order, i.e. on other columns); (b) the rounding arithmetic is RTN's: fp32 weights
// (ComputeDType::F32). For a bf16 model RTN divides in bf16 (compressed-tensors on a bf16 tensor) while GPTQ
// divides the fp32 working copy (llm-compressor upcasts), so codes can differ where the bf16 quotient
// rounds across .5; there the scales are still RTN's and the codes are RTN's fp32-arithmetic codes.

TEST(GptqDiagonal, EqualsRtnCodes) {
  std::mt19937 gen(3);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t rows = 24, cols = 256;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = normal(gen);
  const std::vector<double> h = diagonal_hessian(cols, 9);
  std::vector<QuantScheme> schemes;
  for (const SchemeCase& s : {SchemeCase{4, true, 32}, SchemeCase{4, false, 64}, SchemeCase{4, true, 128},
                              SchemeCase{8, false, -1}, SchemeCase{2, false, 0}, SchemeCase{8, true, 0}})
    schemes.push_back(int_scheme(s.bits, s.symmetric, s.group));
  schemes.push_back(fp8_scheme(-1));
  schemes.push_back(fp8_scheme(32));
  for (const QuantScheme& scheme : schemes) {
    const ModuleQuantization r = rtn(w, rows, cols, scheme);
    for (const auto& order : {std::optional<ActOrder>{}, std::optional<ActOrder>{ActOrder::Weight}}) {
      SCOPED_TRACE(testing::Message() << describe(*scheme.weights) << (order ? " static" : " none"));
      GptqOptions o;
      o.actorder = order;
      const ModuleQuantization q = gptq_quantize("diag", w.data(), rows, cols, DType::F32, scheme, h, o);
      EXPECT_EQ(q.scales, r.scales);
      EXPECT_EQ(q.zero_points, r.zero_points);
      EXPECT_EQ(q.int_codes, r.int_codes);
      EXPECT_EQ(q.fp8_codes, r.fp8_codes);
      EXPECT_TRUE(q.g_idx.empty());
    }
  }
}

TEST(GptqDiagonal, ActorderGroupIsRtnOfThePermutedColumns) {
  std::mt19937 gen(4);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t rows = 16, cols = 128;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = normal(gen);
  const std::vector<double> h = diagonal_hessian(cols, 10);
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
    return h[static_cast<size_t>(a * cols + a)] > h[static_cast<size_t>(b * cols + b)];
  });
  std::vector<float> wp(w.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < cols; ++p)
      wp[static_cast<size_t>(r * cols + p)] = w[static_cast<size_t>(r * cols + perm[static_cast<size_t>(p)])];
  const QuantScheme scheme = int_scheme(4, false, 32);
  const ModuleQuantization r = rtn(wp, rows, cols, scheme);
  GptqOptions o;
  o.actorder = ActOrder::Group;
  const ModuleQuantization q = gptq_quantize("diag", w.data(), rows, cols, DType::F32, scheme, h, o);
  EXPECT_EQ(q.scales, r.scales);  // scales[:, j] belong to permuted group j
  EXPECT_EQ(q.zero_points, r.zero_points);
  ASSERT_EQ(q.g_idx.size(), static_cast<size_t>(cols));
  for (int64_t r0 = 0; r0 < rows; ++r0) {
    for (int64_t p = 0; p < cols; ++p) {
      const int64_t c = perm[static_cast<size_t>(p)];
      ASSERT_EQ(q.int_codes[static_cast<size_t>(r0 * cols + c)],
                r.int_codes[static_cast<size_t>(r0 * cols + p)]);
      ASSERT_EQ(q.g_idx[static_cast<size_t>(c)], p / 32);
    }
  }
}

TEST(GptqDiagonal, Bf16UsesBf16ScalesAndFp32Division) {
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t rows = 16, cols = 128;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = round_to_bf16(normal(gen));  // a bf16 checkpoint
  const std::vector<double> h = diagonal_hessian(cols, 11);
  for (bool sym : {true, false}) {
    const QuantScheme scheme = int_scheme(4, sym, 32);
    const ModuleQuantization r = rtn(w, rows, cols, scheme, DType::BF16);
    const ModuleQuantization q = gptq_quantize("bf16", w.data(), rows, cols, DType::BF16, scheme, h, {});
    EXPECT_EQ(q.compute, ComputeDType::BF16);
    EXPECT_EQ(q.scales, r.scales);  // bf16 values
    EXPECT_EQ(q.zero_points, r.zero_points);
    std::vector<int8_t> codes(w.size());
    quantize_int_with_qparams(w.data(), rows, cols, *scheme.weights, q.scales.data(),
                              sym ? nullptr : q.zero_points.data(), codes.data(), ComputeDType::F32);
    EXPECT_EQ(q.int_codes, codes);
  }
}

TEST(GptqDiagonal, MseObserverGivesTheMseQparams) {
  // llm-compressor passes the weight observer's qparams into GPTQ; with observer "mse" that is the MSE
  // clipping search on the original weights.
  std::mt19937 gen(6);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t rows = 8, cols = 64;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = normal(gen);
  QuantScheme scheme = int_scheme(4, false, 32);
  scheme.weights->observer = "mse";
  const ScaleGrid grid = make_scale_grid(*scheme.weights, rows, cols, "mse");
  std::vector<float> lo(static_cast<size_t>(grid.size())), hi(lo.size()), scales(lo.size());
  std::vector<int8_t> zps(lo.size()), codes(w.size());
  observe_mse_ref(w.data(), grid, *scheme.weights, mse_options(*scheme.weights), ComputeDType::F32, lo.data(),
                  hi.data());
  calculate_qparams_ref(lo.data(), hi.data(), grid.size(), *scheme.weights, ComputeDType::F32, scales.data(),
                        zps.data());
  quantize_int_with_qparams(w.data(), rows, cols, *scheme.weights, scales.data(), zps.data(), codes.data());
  const ModuleQuantization q =
      gptq_quantize("mse", w.data(), rows, cols, DType::F32, scheme, diagonal_hessian(cols, 12), {});
  EXPECT_EQ(q.scales, scales);
  EXPECT_EQ(q.zero_points, zps);
  EXPECT_EQ(q.int_codes, codes);
  EXPECT_NE(q.scales, rtn(w, rows, cols, int_scheme(4, false, 32)).scales);  // the search clipped something
}

// ---- dead columns, g_idx, self-consistency -----------------------------------------------------------

TEST(GptqDeadColumns, AreZeroedAndCounted) {
  Layer l = make_layer(24, 128, 21);
  const int64_t n = l.cols;
  for (int64_t dead : {0, 17, 127}) {
    for (int64_t k = 0; k < n; ++k) {
      l.h[static_cast<size_t>(dead * n + k)] = 0;
      l.h[static_cast<size_t>(k * n + dead)] = 0;
    }
  }
  for (const auto& order : {std::optional<ActOrder>{}, std::optional<ActOrder>{ActOrder::Group}}) {
    const QuantScheme scheme = int_scheme(4, false, 32);
    GptqOptions o;
    o.actorder = order;
    GptqStats stats;
    const ModuleQuantization q =
        gptq_quantize("dead", l.w.data(), l.rows, l.cols, DType::F32, scheme, l.h, o, &stats);
    EXPECT_EQ(stats.dead_columns, 3);
    EXPECT_FALSE(stats.fell_back_to_rtn);
    const std::vector<float> deq = q.dequantize();
    for (int64_t r = 0; r < l.rows; ++r) {
      for (int64_t dead : {0, 17, 127})
        EXPECT_EQ(deq[static_cast<size_t>(r * n + dead)], 0.0f) << r << ", " << dead;
    }
    // The qparams were observed on the original weights, dead columns included (as llm-compressor does).
    if (!order) {
      EXPECT_EQ(q.scales, rtn(l.w, l.rows, l.cols, scheme).scales);
    }
  }
}

TEST(GptqGroupIndex, IsAPermutationConsistentGroupMap) {
  const Layer l = make_layer(32, 256, 31);
  const QuantScheme scheme = int_scheme(4, true, 64);
  GptqOptions o;
  o.actorder = ActOrder::Group;
  const ModuleQuantization q = gptq_quantize("gidx", l.w.data(), l.rows, l.cols, DType::BF16, scheme, l.h, o);
  ASSERT_EQ(q.g_idx.size(), static_cast<size_t>(l.cols));
  // Each group holds exactly group_size columns, and groups follow descending diag(H).
  std::vector<int> count(static_cast<size_t>(q.scale_cols), 0);
  for (int32_t g : q.g_idx) {
    ASSERT_GE(g, 0);
    ASSERT_LT(g, q.scale_cols);
    ++count[static_cast<size_t>(g)];
  }
  for (int c : count) EXPECT_EQ(c, 64);
  for (int64_t a = 0; a < l.cols; ++a) {
    for (int64_t b = 0; b < l.cols; ++b) {
      if (q.g_idx[static_cast<size_t>(a)] < q.g_idx[static_cast<size_t>(b)]) {
        ASSERT_GE(l.h[static_cast<size_t>(a * l.cols + a)], l.h[static_cast<size_t>(b * l.cols + b)]);
      }
    }
  }
  // dequantize() honours g_idx: code * scales[r, g_idx[c]] in bf16.
  const std::vector<float> deq = q.dequantize();
  for (int64_t r = 0; r < l.rows; ++r) {
    for (int64_t c = 0; c < l.cols; ++c) {
      const float s = q.scales[static_cast<size_t>(r * q.scale_cols + q.g_idx[static_cast<size_t>(c)])];
      ASSERT_EQ(deq[static_cast<size_t>(r * l.cols + c)],
                round_to_bf16(static_cast<float>(q.int_codes[static_cast<size_t>(r * l.cols + c)]) * s));
    }
  }
  // With the default group map instead the same codes would be garbage: g_idx is what makes them right.
  ModuleQuantization wrong = q;
  wrong.g_idx.clear();
  const double good = output_error(l.w, deq, l.h, l.rows, l.cols);
  EXPECT_LT(good, output_error(l.w, wrong.dequantize(), l.h, l.rows, l.cols));
  EXPECT_LT(good, output_error(l.w, rtn(l.w, l.rows, l.cols, scheme, DType::BF16).dequantize(), l.h, l.rows,
                               l.cols));
  // A malformed g_idx is an error, not a crash.
  wrong.g_idx.assign(static_cast<size_t>(l.cols), 0);
  wrong.g_idx[5] = 99;
  EXPECT_THROW(wrong.dequantize(), Error);
  wrong.g_idx.resize(3);
  EXPECT_THROW(wrong.dequantize(), Error);
}

// ---- factorization failures -------------------------------------------------------------------------

// I - k u u^T for a unit vector u: eigenvalues 1 (n - 1 times) and 1 - k.
std::vector<double> indefinite_hessian(int64_t n, double k) {
  std::vector<double> h(static_cast<size_t>(n * n), 0.0);
  const double u = 1.0 / std::sqrt(static_cast<double>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) h[static_cast<size_t>(i * n + j)] = (i == j ? 1.0 : 0.0) - k * u * u;
  }
  return h;
}

TEST(GptqFallback, RetriesWithLargerDamping) {
  const int64_t rows = 8, cols = 64;
  const Layer l = make_layer(rows, cols, 41);
  // Smallest eigenvalue -0.05, mean diagonal ~1: damping 0.01 fails, 0.1 succeeds.
  const std::vector<double> h = indefinite_hessian(cols, 1.05);
  const QuantScheme scheme = int_scheme(4, true, 32);
  GptqStats stats;
  gptq_quantize("retry", l.w.data(), rows, cols, DType::F32, scheme, h, {}, &stats);
  EXPECT_FALSE(stats.fell_back_to_rtn);
  EXPECT_EQ(stats.damping_tries, 2);
  EXPECT_NEAR(stats.damping, 0.1 * (1 - 1.05 / cols), 1e-12);
  EXPECT_NE(stats.warning.find("GPTQ used"), std::string::npos) << stats.warning;
  // Without retries (llm-compressor's behaviour) the same Hessian falls back to RTN.
  GptqOptions no_retry;
  no_retry.damping_retries = 0;
  const ModuleQuantization q =
      gptq_quantize("retry", l.w.data(), rows, cols, DType::F32, scheme, h, no_retry, &stats);
  EXPECT_TRUE(stats.fell_back_to_rtn);
  EXPECT_EQ(q.int_codes, rtn(l.w, rows, cols, scheme).int_codes);
}

TEST(GptqFallback, IndefiniteHessianFallsBackToRtnWithWarning) {
  const int64_t rows = 8, cols = 64;
  const Layer l = make_layer(rows, cols, 42);
  const std::vector<double> h = indefinite_hessian(cols, 30.0);  // eigenvalue -29: no damping saves it
  for (const QuantScheme& scheme : {int_scheme(4, false, 32), fp8_scheme(-1)}) {
    GptqStats stats;
    const ModuleQuantization q =
        gptq_quantize("indef", l.w.data(), rows, cols, DType::F32, scheme, h, {}, &stats);
    EXPECT_TRUE(stats.fell_back_to_rtn);
    EXPECT_EQ(stats.damping_tries, 4);
    EXPECT_NE(stats.warning.find("round-to-nearest"), std::string::npos) << stats.warning;
    EXPECT_NE(stats.warning.find("indef"), std::string::npos) << stats.warning;
    const ModuleQuantization r = rtn(l.w, rows, cols, scheme);
    EXPECT_EQ(q.int_codes, r.int_codes);
    EXPECT_EQ(q.fp8_codes, r.fp8_codes);
    EXPECT_EQ(q.scales, r.scales);
  }
}

TEST(GptqFactor, IsTheUpperCholeskyFactorOfTheInverse) {
  const Layer l = make_layer(4, 48, 51);
  std::vector<double> u = l.h;
  ASSERT_TRUE(gptq_inverse_factor(u, 48, 0.5));
  // (H + 0.5 I) U^T U = I.
  const int64_t n = 48;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(u[static_cast<size_t>(i * n + j)], 0.0);
  }
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) {
        double inv_kj = 0;  // (U^T U)[k][j]
        for (int64_t m = 0; m < n; ++m)
          inv_kj += u[static_cast<size_t>(m * n + k)] * u[static_cast<size_t>(m * n + j)];
        s += (l.h[static_cast<size_t>(i * n + k)] + (i == k ? 0.5 : 0.0)) * inv_kj;
      }
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  }
  EXPECT_LT(worst, 1e-8);
  std::vector<double> bad = indefinite_hessian(8, 3.0);
  EXPECT_FALSE(gptq_inverse_factor(bad, 8, 0.01));
}

// ---- bad input ----------------------------------------------------------------------------------------

TEST(GptqErrors, BadInputThrowsNamingTheModule) {
  const Layer l = make_layer(8, 64, 61);
  const QuantScheme scheme = int_scheme(4, true, 32);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto run = [&](const QuantScheme& s, const std::vector<double>& h, GptqOptions o = {}) {
    return message(
        [&] { gptq_quantize("model.layers.0.mlp.up_proj", l.w.data(), 8, 64, DType::F32, s, h, o); });
  };
  EXPECT_NE(run(scheme, std::vector<double>(63 * 63)).find("expected 64 x 64"), std::string::npos);
  EXPECT_NE(message([&] {
              gptq_quantize("m", l.w.data(), 8, 64, DType::F32, scheme, static_cast<const double*>(nullptr),
                            {});
            }).find("null Hessian"),
            std::string::npos);
  std::vector<double> nan_h = l.h;
  nan_h[70] = NAN;
  EXPECT_NE(run(scheme, nan_h).find("Hessian entry"), std::string::npos);
  std::vector<float> nan_w = l.w;
  nan_w[3] = INFINITY;
  EXPECT_NE(message([&] {
              gptq_quantize("m", nan_w.data(), 8, 64, DType::F32, scheme, l.h, {});
            }).find("weight [0, 3]"),
            std::string::npos);
  QuantScheme none = scheme;
  none.weights.reset();
  EXPECT_NE(run(none, l.h).find("up_proj"), std::string::npos);
  QuantScheme fp8_asym = fp8_scheme(-1);
  fp8_asym.weights->symmetric = false;
  EXPECT_NE(run(fp8_asym, l.h).find("symmetric fp8"), std::string::npos);
  QuantScheme fp4 = fp8_scheme(16);
  fp4.weights->num_bits = 4;
  EXPECT_NE(run(fp4, l.h).find("symmetric fp8"), std::string::npos);
  EXPECT_NE(run(int_scheme(4, true, 48), l.h).find("does not divide"), std::string::npos);
  GptqOptions zero_block;
  zero_block.block_size = 0;
  EXPECT_NE(run(scheme, l.h, zero_block).find("block size"), std::string::npos);
  GptqOptions neg_damp;
  neg_damp.dampening_frac = -1;
  EXPECT_NE(run(scheme, l.h, neg_damp).find("dampening_frac"), std::string::npos);
  QuantScheme weight_order = scheme;
  weight_order.weights->actorder = ActOrder::Weight;
  GptqOptions group_order;
  group_order.actorder = ActOrder::Group;
  EXPECT_NE(run(weight_order, l.h, group_order).find("conflicts"), std::string::npos);
}

TEST(GptqActorder, SchemeActorderApplies) {
  const Layer l = make_layer(16, 128, 71);
  QuantScheme scheme = int_scheme(4, true, 32);
  scheme.weights->actorder = ActOrder::Group;
  const ModuleQuantization from_scheme = gptq_quantize("m", l.w.data(), 16, 128, DType::F32, scheme, l.h, {});
  GptqOptions o;
  o.actorder = ActOrder::Group;
  const QuantScheme plain = int_scheme(4, true, 32);
  const ModuleQuantization from_options = gptq_quantize("m", l.w.data(), 16, 128, DType::F32, plain, l.h, o);
  EXPECT_FALSE(from_scheme.g_idx.empty());
  EXPECT_EQ(from_scheme.g_idx, from_options.g_idx);
  EXPECT_EQ(from_scheme.int_codes, from_options.int_codes);
}

}  // namespace
}  // namespace lowbit

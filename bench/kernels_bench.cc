// CPU kernel benchmarks and the machine limits they are judged against, measured in the same run:
//   Machine/MemRead, Machine/MemCopy  -- memory bandwidth over 1 GiB (far beyond any cache); MemRead reads
//                                        four streams per thread, MemReadOneStream one
//   Machine/Sgemm                     -- OpenBLAS cblas_sgemm on fp32 with all pool threads
//   Linear/<dtype>/N/K/m              -- kernels::linear; counters GB/s (weight bytes) and GFLOP/s
//   LinearPath/<path>/N/K/m           -- the gemv and tiled-sgemm paths at small m, to place the crossover
//   CalibGemm/<bf16|f32>/N/K/m        -- the calibration pipeline's products: linear_bf16 (AMX where the CPU
//                                        has it) vs fp32 kernels::linear on an fp32 weight, same shapes
//   CalibGram/<bf16|f32>/cols/rows    -- Hessian X^T X blocks: Bf16Gram (AMX) vs gram_f32_lower
//   Elementwise/...                   -- rmsnorm, silu_mul, softmax fast vs _ref
//   Machine/EmptyParallelFor          -- one pool hand-off with no work: a decode step issues ~60
// Weights are "cold": each iteration uses the next of enough copies to total >= 1 GiB, so the weight
// bytes come from DRAM as they do in a real decode step, not from the (large) last-level cache.
//
// Each family runs twice: with all pool threads, timed by the wall clock ("/real_time"), and with one
// thread ("1T/..."), timed by that thread's CPU time. On a shared, overloaded machine the wall-clock
// numbers mostly measure the other tenants; the one-thread CPU-time numbers stay stable, and the ratios
// that matter (kernel vs bandwidth, kernel vs sgemm) are computed within one family.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "runtime/gemm_bf16.h"
#include "runtime/kernels.h"
#include "runtime/kernels_hwy.h"
#include "runtime/kernels_linear.h"
#include "util/thread_pool.h"

namespace lowbit::kernels {
namespace {

constexpr size_t kColdBytes = size_t{1} << 30;

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

// Fills a large buffer in parallel (page faults on first touch are otherwise the bottleneck).
void parallel_fill(uint8_t* p, size_t bytes, uint8_t value) {
  global_pool().parallel_for(bytes, size_t{1} << 22,
                             [&](size_t b, size_t e) { std::memset(p + b, value, e - b); });
}

// Copies of one weight matrix totalling >= kColdBytes (at least `min_copies`), built once per shape.
struct ColdWeights {
  DType dtype;
  int64_t rows, cols;
  size_t bytes_each;
  std::vector<std::unique_ptr<uint8_t[]>> copies;
  size_t next = 0;
  DenseWeight take() {
    const DenseWeight w{dtype, copies[next].get(), rows, cols};
    next = (next + 1) % copies.size();
    return w;
  }
};

ColdWeights& cold_weights(DType dtype, int64_t rows, int64_t cols) {
  static std::unique_ptr<ColdWeights> cached;  // one shape at a time keeps memory use near 1 GiB
  if (cached && cached->dtype == dtype && cached->rows == rows && cached->cols == cols) return *cached;
  cached.reset();
  auto cw = std::make_unique<ColdWeights>();
  cw->dtype = dtype;
  cw->rows = rows;
  cw->cols = cols;
  cw->bytes_each = static_cast<size_t>(rows * cols) * dtype_size(dtype);
  // Fill with small real values so no kernel meets denormals/NaNs: encode one random row and repeat it.
  const std::vector<float> row = random_floats(static_cast<size_t>(cols), 7);
  std::vector<uint8_t> encoded(static_cast<size_t>(cols) * dtype_size(dtype));
  for (int64_t k = 0; k < cols; ++k) {
    if (dtype == DType::F32)
      std::memcpy(&encoded[static_cast<size_t>(k) * 4], &row[static_cast<size_t>(k)], 4);
    const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(row[static_cast<size_t>(k)])
                                            : f32_to_f16(row[static_cast<size_t>(k)]);
    if (dtype != DType::F32) std::memcpy(&encoded[static_cast<size_t>(k) * 2], &h, 2);
  }
  const size_t n_copies = std::max<size_t>(1, (kColdBytes + cw->bytes_each - 1) / cw->bytes_each);
  for (size_t c = 0; c < n_copies; ++c) {
    auto buf = std::make_unique<uint8_t[]>(cw->bytes_each);
    uint8_t* p = buf.get();
    global_pool().parallel_for(static_cast<size_t>(rows), 64, [&](size_t b, size_t e) {
      for (size_t r = b; r < e; ++r) std::memcpy(p + r * encoded.size(), encoded.data(), encoded.size());
    });
    cw->copies.push_back(std::move(buf));
  }
  cached = std::move(cw);
  return *cached;
}

void set_counters(benchmark::State& state, double weight_bytes, double flops) {
  state.counters["GB/s"] =
      benchmark::Counter(weight_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- machine limits -------------------------------------------------------------------------------

// Sum of 1 GiB of floats, split over all pool threads; each chunk read as four streams side by side
// (sum_four_streams, as the decode products read their rows; kNonTemporal: prefetched as the packed ones
// do), or as one (dot(a, a) reads each byte once).
template <int kThreads, bool kFourStreams = true, bool kNonTemporal = false>
void BM_MemRead(benchmark::State& state) {
  set_global_threads(kThreads);
  const size_t n = kColdBytes / sizeof(float);
  std::unique_ptr<float[]> a(new float[n]);
  parallel_fill(reinterpret_cast<uint8_t*>(a.get()), kColdBytes, 0);
  float sink = 0;
  std::mutex mutex;
  for (auto _ : state) {
    global_pool().parallel_for(n, n / 64, [&](size_t b, size_t e) {
      const float part = kFourStreams ? sum_four_streams(a.get() + b, e - b, kNonTemporal)
                                      : dot(a.get() + b, a.get() + b, e - b);
      std::lock_guard<std::mutex> lock(mutex);
      sink += part;
    });
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(kColdBytes) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// The cost of one parallel region on all pool threads with no work in it (job published, chunks claimed,
// completion seen), for n items in chunks of at least `grain`: {4, 1} as decode attention's KV-head tasks,
// {768, 84} as a 768-row int4 product's rows. A decode step pays it about 60 times.
void BM_EmptyParallelFor(benchmark::State& state) {
  set_global_threads(0);
  const auto n = static_cast<size_t>(state.range(0)), grain = static_cast<size_t>(state.range(1));
  std::atomic<size_t> covered{0};
  for (auto _ : state) {
    global_pool().parallel_for(
        n, grain, [&](size_t b, size_t e) { covered.fetch_add(e - b, std::memory_order_relaxed); });
  }
  benchmark::DoNotOptimize(covered.load());
}

// memcpy of 512 MiB into another 512 MiB; GB/s counts bytes read + written.
template <int kThreads>
void BM_MemCopy(benchmark::State& state) {
  set_global_threads(kThreads);
  const size_t half = kColdBytes / 2;
  std::unique_ptr<uint8_t[]> src(new uint8_t[half]), dst(new uint8_t[half]);
  parallel_fill(src.get(), half, 1);
  parallel_fill(dst.get(), half, 0);
  for (auto _ : state) {
    global_pool().parallel_for(half, size_t{1} << 24,
                               [&](size_t b, size_t e) { std::memcpy(dst.get() + b, src.get() + b, e - b); });
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(2.0 * static_cast<double>(half) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// Plain fp32 sgemm (C = A * B^T, the linear layout) with OpenBLAS using as many threads as the pool.
template <int kThreads>
void BM_Sgemm(benchmark::State& state) {
  set_global_threads(kThreads);
  const int64_t N = state.range(0), K = state.range(1), m = state.range(2);
  const std::vector<float> a = random_floats(static_cast<size_t>(m * K), 1);
  const std::vector<float> b = random_floats(static_cast<size_t>(N * K), 2);
  std::vector<float> c(static_cast<size_t>(m * N));
  openblas_set_num_threads(global_pool().size());
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(N),
                static_cast<blasint>(K), 1.0f, a.data(), static_cast<blasint>(K), b.data(),
                static_cast<blasint>(K), 0.0f, c.data(), static_cast<blasint>(N));
    benchmark::ClobberMemory();
  }
  set_counters(state, static_cast<double>(N * K) * 4, 2.0 * static_cast<double>(m * N * K));
}

// ---- linear -------------------------------------------------------------------------------------

template <DType T, int kThreads>
void BM_Linear(benchmark::State& state) {
  set_global_threads(kThreads);
  const int64_t N = state.range(0), K = state.range(1), m = state.range(2);
  ColdWeights& w = cold_weights(T, N, K);
  const std::vector<float> x = random_floats(static_cast<size_t>(m * K), 3);
  std::vector<float> y(static_cast<size_t>(m * N));
  for (auto _ : state) {
    linear(x.data(), m, w.take(), nullptr, y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, static_cast<double>(w.bytes_each), 2.0 * static_cast<double>(m * N * K));
}

template <bool kGemv, int kThreads>
void BM_LinearPath(benchmark::State& state) {
  set_global_threads(kThreads);
  const int64_t N = state.range(0), K = state.range(1), m = state.range(2);
  ColdWeights& w = cold_weights(DType::BF16, N, K);
  const std::vector<float> x = random_floats(static_cast<size_t>(m * K), 3);
  std::vector<float> y(static_cast<size_t>(m * N));
  for (auto _ : state) {
    if (kGemv) {
      linear_gemv(x.data(), m, w.take(), nullptr, y.data());
    } else {
      linear_tiled_sgemm(x.data(), m, w.take(), nullptr, y.data());
    }
    benchmark::ClobberMemory();
  }
  set_counters(state, static_cast<double>(w.bytes_each), 2.0 * static_cast<double>(m * N * K));
}

// The calibration pipeline's products (weights warm: the pipeline reuses one layer for every sample).
template <bool kBf16, int kThreads>
void BM_CalibGemm(benchmark::State& state) {
  set_global_threads(kThreads);
  const int64_t N = state.range(0), K = state.range(1), m = state.range(2);
  const std::vector<float> w = random_floats(static_cast<size_t>(N * K), 2);
  const std::vector<float> x = random_floats(static_cast<size_t>(m * K), 3);
  std::vector<float> y(static_cast<size_t>(m * N));
  const Bf16Weight packed = kBf16 ? Bf16Weight(w.data(), N, K) : Bf16Weight();
  for (auto _ : state) {
    if (kBf16)
      linear_bf16(x.data(), m, packed, nullptr, y.data());
    else
      linear(x.data(), m, DenseWeight{DType::F32, w.data(), N, K}, nullptr, y.data());
    benchmark::ClobberMemory();
  }
  state.counters["AMX"] = kBf16 && bf16_gemm_uses_amx() ? 1 : 0;
  set_counters(state, static_cast<double>(N * K) * (kBf16 ? 2 : 4), 2.0 * static_cast<double>(m * N * K));
}

// The Hessian blocks as the pipeline computes them: bf16 through a running kernels::Bf16Gram (fp32 tile
// accumulator, flushed into fp64 every 8192 rows), fp32 through gram_f32_lower on 2048-row batches.
template <bool kBf16, int kThreads>
void BM_CalibGram(benchmark::State& state) {
  set_global_threads(kThreads);
  const int64_t cols = state.range(0), rows = state.range(1);
  const std::vector<float> x = random_floats(static_cast<size_t>(rows * cols), 4);
  std::vector<double> sum(static_cast<size_t>(cols * cols));
  Bf16Gram gram(cols);
  for (auto _ : state) {
    if (kBf16)
      gram.add(x.data(), rows, sum.data());
    else
      gram_f32_lower(x.data(), rows, cols, sum.data());
    benchmark::ClobberMemory();
  }
  // Useful flops: the lower triangle, rows * cols * (cols + 1).
  set_counters(state, 0, static_cast<double>(rows) * static_cast<double>(cols * (cols + 1)));
}

void calib_gemm_args(benchmark::internal::Benchmark* b) {
  for (auto [N, K] :
       std::vector<std::pair<int64_t, int64_t>>{{768, 768}, {2048, 768}, {768, 2048}, {4096, 4096}})
    b->Args({N, K, 512});
}
void calib_gram_args(benchmark::internal::Benchmark* b) {
  for (int64_t cols : {768, 2048}) b->Args({cols, 2048});
}

// (N, K) of the reference model (hidden 768, k/v 256, MLP 2048, vocab 32000) and of Llama-3.1-8B.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{768, 768},    {256, 768},   {2048, 768},
                                                          {768, 2048},   {32000, 768}, {4096, 4096},
                                                          {14336, 4096}, {4096, 14336}};

void linear_args(benchmark::internal::Benchmark* b) {
  for (auto [N, K] : kShapes)
    for (int64_t m : {1, 16, 512}) b->Args({N, K, m});
}
void sgemm_args(benchmark::internal::Benchmark* b) {
  for (auto [N, K] : kShapes) b->Args({N, K, 512});
}
void decode_args(benchmark::internal::Benchmark* b) {  // the other dtypes at the decode shapes
  for (auto [N, K] : kShapes) b->Args({N, K, 1});
}
void path_args(benchmark::internal::Benchmark* b) {
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{2048, 768}, {4096, 4096}})
    for (int64_t m : {1, 4, 8, 16, 32, 48, 64, 96, 128}) b->Args({N, K, m});
}

// All threads (0 = the pool's default, every core), wall clock.
BENCHMARK(BM_MemRead<0>)->Name("Machine/MemRead")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MemRead<0, true, true>)
    ->Name("Machine/MemReadNonTemporal")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_MemRead<0, false>)
    ->Name("Machine/MemReadOneStream")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_MemCopy<0>)->Name("Machine/MemCopy")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EmptyParallelFor)
    ->Name("Machine/EmptyParallelFor")
    ->Args({4, 1})
    ->Args({768, 84})
    ->UseRealTime();
BENCHMARK(BM_Sgemm<0>)
    ->Name("Machine/Sgemm")
    ->Apply(sgemm_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Linear<DType::BF16, 0>)
    ->Name("Linear/BF16")
    ->Apply(linear_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Linear<DType::F32, 0>)
    ->Name("Linear/F32")
    ->Apply(linear_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Linear<DType::F16, 0>)
    ->Name("Linear/F16")
    ->Apply(decode_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_LinearPath<true, 0>)
    ->Name("LinearPath/gemv")
    ->Apply(path_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_LinearPath<false, 0>)
    ->Name("LinearPath/sgemm")
    ->Apply(path_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK(BM_CalibGemm<true, 0>)
    ->Name("CalibGemm/bf16")
    ->Apply(calib_gemm_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_CalibGemm<false, 0>)
    ->Name("CalibGemm/f32")
    ->Apply(calib_gemm_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_CalibGram<true, 0>)
    ->Name("CalibGram/bf16")
    ->Apply(calib_gram_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_CalibGram<false, 0>)
    ->Name("CalibGram/f32")
    ->Apply(calib_gram_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One thread, its CPU time (robust to other tenants).
BENCHMARK(BM_MemRead<1>)->Name("1T/Machine/MemRead")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MemRead<1, true, true>)->Name("1T/Machine/MemReadNonTemporal")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MemRead<1, false>)->Name("1T/Machine/MemReadOneStream")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MemCopy<1>)->Name("1T/Machine/MemCopy")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Sgemm<1>)->Name("1T/Machine/Sgemm")->Apply(sgemm_args)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Linear<DType::BF16, 1>)
    ->Name("1T/Linear/BF16")
    ->Apply(linear_args)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Linear<DType::F32, 1>)->Name("1T/Linear/F32")->Apply(linear_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Linear<DType::F16, 1>)->Name("1T/Linear/F16")->Apply(decode_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LinearPath<true, 1>)
    ->Name("1T/LinearPath/gemv")
    ->Apply(path_args)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LinearPath<false, 1>)
    ->Name("1T/LinearPath/sgemm")
    ->Apply(path_args)
    ->Unit(benchmark::kMicrosecond);

// ---- element-wise kernels -------------------------------------------------------------------------

template <bool kFast>
void BM_RmsNorm(benchmark::State& state) {
  const int64_t dim = state.range(0);
  const std::vector<float> x = random_floats(static_cast<size_t>(dim), 1),
                           w = random_floats(static_cast<size_t>(dim), 2);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    (kFast ? rmsnorm : rmsnorm_ref)(x.data(), w.data(), 1, dim, 1e-5f, y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * dim);
}

template <bool kFast>
void BM_SiluMul(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const std::vector<float> g = random_floats(n, 1), u = random_floats(n, 2);
  std::vector<float> y(n);
  for (auto _ : state) {
    (kFast ? silu_mul : silu_mul_ref)(g.data(), u.data(), y.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

template <bool kFast>
void BM_Softmax(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const std::vector<float> x0 = random_floats(n, 1);
  std::vector<float> x(n);
  for (auto _ : state) {
    std::copy(x0.begin(), x0.end(), x.begin());
    (kFast ? softmax : softmax_ref)(x.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// Decode attention over one KV head's cached bf16 rows (n positions, head_dim 64), for `heads` query heads:
// grouped = one call per product for all heads (what the runtime does), else one call per head. Counter
// GB/s: the cache bytes (keys and values) over the time, each row counted once.
template <bool kGrouped>
void BM_AttentionRows(benchmark::State& state) {
  const int64_t n = state.range(0), heads = state.range(1), d = 64;
  const std::vector<float> kf = random_floats(static_cast<size_t>(n * d), 1),
                           vf = random_floats(static_cast<size_t>(n * d), 2),
                           q = random_floats(static_cast<size_t>(heads * d), 3);
  std::vector<uint16_t> keys(kf.size()), values(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) keys[i] = f32_to_bf16(kf[i]), values[i] = f32_to_bf16(vf[i]);
  std::vector<float> scores(static_cast<size_t>(heads * n)), out(static_cast<size_t>(heads * d));
  for (auto _ : state) {
    const int64_t step = kGrouped ? heads : 1;
    for (int64_t h = 0; h < heads; h += step) {
      float* sc = scores.data() + h * n;
      scaled_row_dots(q.data() + h * d, step, keys.data(), DType::BF16, n, d, 0.125f, sc);
      for (int64_t i = 0; i < step; ++i) softmax(sc + i * n, static_cast<size_t>(n));
      weighted_row_sum(sc, step, values.data(), DType::BF16, n, d, out.data() + h * d);
    }
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 4.0 * n * d, benchmark::Counter::kIsRate);
}

// BM_AttentionRows<true> with the KV rows of one of 96 heads in turn (57 MB of bf16 at 576 rows: DRAM).
// next_rows: 1 = the values prefetched during the scores' pass (what attention does), 0 = not.
void BM_AttentionRowsCold(benchmark::State& state) {
  const int64_t n = state.range(0), heads = state.range(1), d = 64, copies = 96;
  const bool prefetch_values = state.range(2) != 0;
  const std::vector<float> kf = random_floats(static_cast<size_t>(n * d), 1),
                           q = random_floats(static_cast<size_t>(heads * d), 3);
  std::vector<uint16_t> keys(static_cast<size_t>(copies * n * d)), values(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = values[i] = f32_to_bf16(kf[i % kf.size()]);
  std::vector<float> scores(static_cast<size_t>(heads * n)), out(static_cast<size_t>(heads * d));
  int64_t c = 0;
  for (auto _ : state) {
    const uint16_t* k = keys.data() + c * n * d;
    const uint16_t* v = values.data() + c * n * d;
    c = (c + 1) % copies;
    scaled_row_dots(q.data(), heads, k, DType::BF16, n, d, 0.125f, scores.data(),
                    prefetch_values ? v : nullptr);
    for (int64_t i = 0; i < heads; ++i) softmax(scores.data() + i * n, static_cast<size_t>(n));
    weighted_row_sum(scores.data(), heads, v, DType::BF16, n, d, out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 4.0 * n * d, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AttentionRowsCold)
    ->Name("1T/AttentionRowsCold/grouped")
    ->ArgNames({"", "", "next_rows"})
    ->Args({576, 3, 0})
    ->Args({576, 3, 1});

BENCHMARK(BM_AttentionRows<true>)
    ->Name("1T/AttentionRows/grouped")
    ->Args({576, 1})
    ->Args({576, 3})
    ->Args({576, 4});
BENCHMARK(BM_AttentionRows<false>)->Name("1T/AttentionRows/per_head")->Args({576, 3})->Args({576, 4});

BENCHMARK(BM_RmsNorm<true>)->Name("Elementwise/rmsnorm")->Arg(768)->Arg(4096);
BENCHMARK(BM_RmsNorm<false>)->Name("Elementwise/rmsnorm_ref")->Arg(768)->Arg(4096);
BENCHMARK(BM_SiluMul<true>)->Name("Elementwise/silu_mul")->Arg(2048)->Arg(14336);
BENCHMARK(BM_SiluMul<false>)->Name("Elementwise/silu_mul_ref")->Arg(2048)->Arg(14336);
BENCHMARK(BM_Softmax<true>)->Name("Elementwise/softmax")->Arg(256)->Arg(4096);
BENCHMARK(BM_Softmax<false>)->Name("Elementwise/softmax_ref")->Arg(256)->Arg(4096);

}  // namespace
}  // namespace lowbit::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("hwy_target", lowbit::kernels::simd::target_name());
  benchmark::AddCustomContext("openblas", openblas_get_config());
  benchmark::AddCustomContext("pool_threads", std::to_string(lowbit::global_pool().size()));
  benchmark::AddCustomContext("linear_gemm_min_rows",
                              std::to_string(lowbit::kernels::linear_gemm_min_rows()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// Packed-weight kernels (runtime/kernels_packed.h) at the reference model's shapes (hidden 768, KV 256,
// MLP 2048, vocabulary 32000) and Llama-3.1-8B's (4096x4096, 14336x4096, 4096x14336), next to the dense bf16
// kernel on the same shape:
//   Packed/<format>/N/K/m     packed_linear (gemv below packed_gemm_min_rows, dequantized tiles + sgemm
//                             above); formats int4_g128, int8_ch (W8A16), fp8_e4m3_ch (fp32 scales),
//                             fp8_e4m3_ch_bf16 (bf16 scales: weights rounded to bf16, as FP8 checkpoints
//                             from bf16 models), w8a8 (int8 x int8)
//   Dense/bf16/N/K/m          kernels::linear on bf16, the baseline
//   1T/PackedPath/<format>/<gemv|sgemm>/N/K/m   both paths at small m, to place packed_gemm_min_rows
//   1T/ActivationCodes/<vector|reference>/K/m/bits   quantize_activation_codes, the step before each int4 /
//                             8-bit decode product, on the calling thread: bits 8 for int4 g128 weights
//                             (int8 codes), 16 for uint8 per-channel weights (int16 codes)
//   Machine/Peak/<instructions>   the core's multiply-add limit for each instruction mix the kernels use
//                             (machine_peaks.h), the ceiling to hold the m = 512 rows against
// Counters: GB/s = bytes of weight data read per call (codes + scales) / time; GFLOP/s = 2 m N K / time
// (for Machine/Peak: 2 x the multiply-adds issued).
// Weights are cold: every iteration uses the next of enough copies to exceed 512 MiB, so the codes come from
// DRAM as in a decode step. Each family runs with all pool threads (wall clock, "/real_time") and with one
// thread ("1T/", that thread's CPU time, stable on a shared machine).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "machine_peaks.h"
#include "runtime/kernels.h"
#include "runtime/kernels_packed.h"
#include "runtime/kernels_packed_fp8.h"
#include "runtime/kernels_packed_int16.h"
#include "util/thread_pool.h"

namespace lowbit::kernels {
namespace {

constexpr size_t kColdBytes = size_t{512} << 20;

enum class Format { Int4G128, Int8Channel, Fp8Channel, Fp8ChannelBf16, W8A8, DenseBf16 };

const char* format_name(Format f) {
  switch (f) {
    case Format::Int4G128:
      return "int4_g128";
    case Format::Int8Channel:
      return "int8_ch";
    case Format::Fp8Channel:
      return "fp8_e4m3_ch";
    case Format::Fp8ChannelBf16:
      return "fp8_e4m3_ch_bf16";
    case Format::W8A8:
      return "w8a8";
    case Format::DenseBf16:
      return "bf16";
  }
  return "?";
}

// Copies of one matrix's code bytes (random codes; fp8 codes those of normally distributed weights, about
// 4 standard deviations at E4M3's largest value 448, so that zeros and subnormals are as rare as in a
// checkpoint: the table decoder takes a longer path on chunks that hold them) and the shared scales (int4 is
// symmetric: its zero terms are 8 s, as PackedLinear holds them).
struct ColdMatrix {
  Format format;
  int64_t rows, cols;
  std::vector<std::vector<uint8_t>> copies;
  std::vector<float> scales;
  std::vector<int32_t> code_sums;              // W8A8
  std::vector<uint64_t> zero_exponent_chunks;  // fp8, as PackedLinear sets them
  size_t next = 0;

  size_t code_bytes() const { return copies.front().size(); }
  PackedMatrix take() {
    PackedMatrix w;
    const bool fp8 = format == Format::Fp8Channel || format == Format::Fp8ChannelBf16;
    w.codes = format == Format::Int4G128 ? Codes::Int4 : fp8 ? Codes::E4M3 : Codes::Int8;
    w.round_to_bf16 = format == Format::Fp8ChannelBf16;  // bf16 scales: the table decoder on AVX2
    w.data = copies[next].data();
    next = (next + 1) % copies.size();
    w.rows = rows;
    w.cols = cols;
    w.row_bytes = static_cast<int64_t>(code_bytes()) / rows;
    w.group_size = format == Format::Int4G128 ? 128 : cols;
    w.scales = scales.data();
    if (format == Format::Int4G128) w.zero_offset = 8.0f;
    w.row_code_sums = code_sums.empty() ? nullptr : code_sums.data();
    if (fp8 && kernels::fp8_gemv_supports(w)) {
      if (zero_exponent_chunks.empty()) zero_exponent_chunks = kernels::fp8_zero_exponent_chunks(w);
      w.zero_exponent_chunks = zero_exponent_chunks.data();  // every copy holds the same codes
    }
    return w;
  }
};

ColdMatrix& cold_matrix(Format format, int64_t rows, int64_t cols) {
  static std::unique_ptr<ColdMatrix> cached;  // one shape at a time
  if (cached && cached->format == format && cached->rows == rows && cached->cols == cols) return *cached;
  cached.reset();
  auto cm = std::make_unique<ColdMatrix>();
  cm->format = format;
  cm->rows = rows;
  cm->cols = cols;
  const size_t bytes = format == Format::Int4G128    ? static_cast<size_t>(rows * cols / 2)
                       : format == Format::DenseBf16 ? static_cast<size_t>(rows * cols * 2)
                                                     : static_cast<size_t>(rows * cols);
  std::mt19937 rng(11);
  std::vector<uint8_t> pattern(bytes);
  std::normal_distribution<float> normal(0.0f, 112.0f);
  for (auto& b : pattern) {
    b = static_cast<uint8_t>(rng());
    if (format == Format::Fp8Channel || format == Format::Fp8ChannelBf16) b = f32_to_e4m3(normal(rng));
    if (format == Format::DenseBf16 && (&b - pattern.data()) % 2) b = 0x3C;  // bf16 high bytes: |v| ~ 0.01
  }
  const size_t copies = std::max<size_t>(2, kColdBytes / std::max<size_t>(bytes, 1) + 1);
  for (size_t c = 0; c < copies; ++c) cm->copies.push_back(pattern);
  const int64_t groups = format == Format::Int4G128 ? (cols + 127) / 128 : 1;
  cm->scales.assign(static_cast<size_t>(rows * groups) + 16, 0.01f);
  cached = std::move(cm);
  return *cached;
}

void set_counters(benchmark::State& state, size_t weight_bytes, int64_t m, int64_t N, int64_t K) {
  const auto iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(weight_bytes) * iters / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(m * N * K) * iters / 1e9, benchmark::Counter::kIsRate);
}

enum class Path { Auto, Gemv, Sgemm };

void run(benchmark::State& state, Format format, int threads, Path path = Path::Auto) {
  const int64_t N = state.range(0), K = state.range(1), m = state.range(2);
  set_global_threads(threads);
  ColdMatrix& cm = cold_matrix(format, N, K);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(m * K)), y(static_cast<size_t>(m * N));
  for (float& v : x) v = normal(rng);
  Int8Activations a;
  if (format == Format::W8A8) {
    a.rows = m;
    a.cols = K;
    a.codes.resize(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      a.codes[i] = static_cast<int16_t>(static_cast<int>(x[i] * 40.0f) % 128);
    a.scales.assign(static_cast<size_t>(m), 0.02f);
    finish_int8_activations(a);
    // The VNNI kernel's per-row code sums (built once at load by runtime/packed_linear.cc).
    cm.code_sums.resize(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
      int32_t sum = 0;
      for (int64_t k = 0; k < K; ++k)
        sum += static_cast<int8_t>(cm.copies[0][static_cast<size_t>(n * K + k)]);
      cm.code_sums[static_cast<size_t>(n)] = sum;
    }
  }
  size_t weight_bytes = cm.code_bytes() + (cm.scales.size() - 16) * sizeof(float);
  if (format == Format::DenseBf16) weight_bytes = cm.code_bytes();
  for (auto _ : state) {
    PackedMatrix w = cm.take();
    if (format == Format::DenseBf16) {
      linear(x.data(), m, DenseWeight{DType::BF16, w.data, N, K}, nullptr, y.data());
    } else if (format == Format::W8A8) {
      int8_linear(a, w, nullptr, y.data());
    } else if (path == Path::Gemv) {
      packed_gemv(x.data(), m, w, nullptr, y.data());
    } else if (path == Path::Sgemm) {
      packed_tiled_sgemm(x.data(), m, w, nullptr, y.data());
    } else {
      packed_linear(x.data(), m, w, nullptr, y.data());
    }
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, weight_bytes, m, N, K);
  set_global_threads(0);
}

void shapes(benchmark::internal::Benchmark* b) {
  // Reference model: q/o (768x768), k/v (256x768), gate/up (2048x768), down (768x2048); m = decode and
  // batch sizes, then a prefill chunk.
  for (int64_t m : {1, 4, 16, 128, 512}) {
    b->Args({768, 768, m});
    b->Args({256, 768, m});
    b->Args({2048, 768, m});
    b->Args({768, 2048, m});
  }
  // Its lm_head (quantized with --include-lm-head), at decode: 12 MB of int4 codes in rows as short as the
  // layers' (K = 768) but too many to stay in the caches between calls, unlike the shapes above.
  b->Args({32000, 768, 1});
  // Llama-3.1-8B: q/o, gate/up, down.
  for (int64_t m : {1, 16}) {
    b->Args({4096, 4096, m});
    b->Args({14336, 4096, m});
    b->Args({4096, 14336, m});
  }
  b->ArgNames({"N", "K", "m"});
}

// Both paths of packed_linear at small m, one thread: where the crossover (packed_gemm_min_rows) lies.
void path_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {2, 4, 8, 16, 32, 64}) b->Args({2048, 768, m});
  b->ArgNames({"N", "K", "m"});
}

// One peak loop per pool thread (threads = 0: all of them), 2^24 trips each per iteration.
void run_peak(benchmark::State& state, bench::PeakOp op, int threads) {
  set_global_threads(threads);
  constexpr int64_t kTrips = int64_t{1} << 24;
  std::atomic<int64_t> done{0};
  for (auto _ : state) {
    global_pool().run_on_all([&](int) { done.fetch_add(bench::run_peak_loop(op, kTrips)); });
  }
  if (done.load() == 0) state.SkipWithError("needs AVX2 + FMA (tdpbf16ps: AMX-BF16)");
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(done.load()) / 1e9, benchmark::Counter::kIsRate);
  set_global_threads(0);
}

// x rows (K floats each, cached) to activation codes of `bits` (8: int4 g128 weights; 16: uint8 per-channel
// weights); counter GB/s: bytes of x read.
void run_activation_codes(benchmark::State& state, bool vector) {
  const int64_t K = state.range(0), m = state.range(1), bits = state.range(2);
  PackedMatrix w;
  w.codes = bits == 8 ? Codes::Int4 : Codes::UInt8;
  w.cols = K;
  w.group_size = bits == 8 ? 128 : K;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * K));
  for (float& v : x) v = normal(rng);
  ActivationCodes codes;
  for (auto _ : state) {
    if (vector) {
      quantize_activation_codes(x.data(), m, w, codes, static_cast<int>(bits));
    } else {
      quantize_activation_codes_ref(x.data(), m, w, codes, static_cast<int>(bits));
    }
    benchmark::DoNotOptimize(codes.bytes.data());
    benchmark::DoNotOptimize(codes.codes.data());
  }
  if (vector && !have_avx2_fma()) state.SkipWithError("needs AVX2 + FMA");
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(x.size() * sizeof(float)),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (bool vector : {true, false}) {
    const std::string name = std::string("1T/ActivationCodes/") + (vector ? "vector" : "reference");
    benchmark::RegisterBenchmark(name.c_str(),
                                 [vector](benchmark::State& s) { run_activation_codes(s, vector); })
        ->ArgsProduct({{768, 2048, 4096, 14336}, {1, 16}, {8, 16}})
        ->ArgNames({"K", "m", "bits"})
        ->Unit(benchmark::kMicrosecond);
  }
  for (bench::PeakOp op :
       {bench::PeakOp::Fp32Fma, bench::PeakOp::Int16Madd, bench::PeakOp::Int8Madd, bench::PeakOp::AmxBf16}) {
    const std::string name = std::string("Machine/Peak/") + bench::peak_op_name(op);
    benchmark::RegisterBenchmark(name.c_str(), [op](benchmark::State& s) { run_peak(s, op, 0); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("1T/" + name).c_str(), [op](benchmark::State& s) {
      run_peak(s, op, 1);
    })->Unit(benchmark::kMillisecond);
  }
  for (Format f : {Format::Int4G128, Format::Int8Channel, Format::Fp8Channel, Format::Fp8ChannelBf16}) {
    for (Path p : {Path::Gemv, Path::Sgemm}) {
      const std::string name =
          std::string("1T/PackedPath/") + format_name(f) + (p == Path::Gemv ? "/gemv" : "/sgemm");
      benchmark::RegisterBenchmark(name.c_str(), [f, p](benchmark::State& s) { run(s, f, 1, p); })
          ->Apply(path_shapes)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (Format f : {Format::DenseBf16, Format::Int4G128, Format::Int8Channel, Format::Fp8Channel,
                   Format::Fp8ChannelBf16, Format::W8A8}) {
    const std::string name = std::string(f == Format::DenseBf16 ? "Dense/" : "Packed/") + format_name(f);
    benchmark::RegisterBenchmark(name.c_str(), [f](benchmark::State& s) { run(s, f, 0); })
        ->Apply(shapes)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("1T/" + name).c_str(), [f](benchmark::State& s) { run(s, f, 1); })
        ->Apply(shapes)
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace
}  // namespace lowbit::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  lowbit::kernels::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// bench/cuda_gemm: the CUDA kernel library on Llama-3.1-8B linear shapes, against cuBLAS fp16 in the same
// run.
//
//   cuda_gemm [--json] [--m 1,4,16] [--shapes 4096x4096,28672x4096] [--reps 15] [--inner 10]
//
// For every shape N x K and M it times (CUDA events, warm-up, median over `reps` batches of `inner` calls):
//   cublas_f16   cuBLAS fp16 GEMM (the baseline)
//   w4a16_g128   W4A16 group 128, symmetric          w4a16_g128_asym   the same with zero points
//   w8a16_ch     W8A16 per-channel
//   w8a8_int8    int8 per-token x per-channel (the activation quantization pass included)
//   w8a8_fp8     fp8 e4m3 per-tensor (cuBLASLt)      w8a8_fp8_tok      per-token x per-channel (+ epilogue)
// and reports microseconds per call, GB/s of weight bytes (codes + scales + zero points), TFLOP/s
// (2·M·N·K / t), the speedup over cublas_f16, and the fraction of the measured device-to-device copy
// bandwidth. Weights are replicated so that each timed call reads weights that are not in L2 (as in a real
// model, where the other layers evict them). Without a CUDA device it prints why and exits 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_gemm.h"

namespace {

using namespace lowbit::cuda;

#define CHECK(expr)                                                                      \
  do {                                                                                   \
    const cudaError_t e_ = (expr);                                                       \
    if (e_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "cuda_gemm: %s failed: %s\n", #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)

struct Options {
  bool json = false;
  std::vector<int64_t> ms = {1, 4, 16, 64, 256, 1024, 4096};
  std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4096, 4096}, {6144, 4096}, {28672, 4096}, {4096, 14336}};
  int reps = 15;
  int inner = 10;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t pos; (pos = s.find(sep, start)) != std::string::npos; start = pos + 1)
    out.push_back(s.substr(start, pos - start));
  out.push_back(s.substr(start));
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "cuda_gemm: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--json") {
      o.json = true;
    } else if (a == "--m") {
      o.ms.clear();
      for (const auto& s : split(value(), ',')) o.ms.push_back(std::stoll(s));
    } else if (a == "--shapes") {
      o.shapes.clear();
      for (const auto& s : split(value(), ',')) {
        const auto nk = split(s, 'x');
        if (nk.size() != 2) {
          std::fprintf(stderr, "cuda_gemm: bad shape '%s' (want NxK)\n", s.c_str());
          std::exit(2);
        }
        o.shapes.emplace_back(std::stoll(nk[0]), std::stoll(nk[1]));
      }
    } else if (a == "--reps") {
      o.reps = std::max(1, std::stoi(value()));
    } else if (a == "--inner") {
      o.inner = std::max(1, std::stoi(value()));
    } else {
      std::fprintf(
          stderr,
          "usage: cuda_gemm [--json] [--m 1,4,16] [--shapes 4096x4096,...] [--reps 15] [--inner 10]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  return o;
}

// Median time of one call in microseconds: `reps` batches of `inner` calls after a warm-up, CUDA events
// around each batch. `call(i)` runs the i-th call (i selects the weight replica).
double time_us(Context& ctx, const Options& o, const std::function<void(int)>& call) {
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream());
  for (int i = 0; i < 3; ++i) call(i);
  ctx.synchronize();
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::vector<double> samples;
  int counter = 0;
  for (int r = 0; r < o.reps; ++r) {
    CHECK(cudaEventRecord(start, s));
    for (int i = 0; i < o.inner; ++i) call(counter++);
    CHECK(cudaEventRecord(stop, s));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    samples.push_back(1000.0 * ms / o.inner);
  }
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Device-to-device copy bandwidth (bytes read + bytes written per second), the practical bandwidth ceiling.
double copy_bandwidth_gbs(Context& ctx, const Options& o) {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer a(bytes), b(bytes);
  a.fill_bytes(1);
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream());
  const double us = time_us(
      ctx, o, [&](int) { CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s)); });
  return 2.0 * static_cast<double>(bytes) / (us * 1e3);
}

struct Row {
  std::string kernel;
  int64_t m, n, k;
  double us, weight_bytes;
};

std::vector<uint32_t> random_words(size_t count, std::mt19937& rng) {
  std::vector<uint32_t> v(count);
  for (auto& w : v) w = rng();
  return v;
}

// How many replicas of `bytes` of weights make each call miss the L2 cache (capped to bound memory use).
int replicas_for(int64_t bytes) {
  int dev = 0, l2 = 0;
  CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  return static_cast<int>(std::clamp<int64_t>((4 * static_cast<int64_t>(l2) + bytes - 1) / bytes, 1, 16));
}

void bench_shape(Context& ctx, const Options& o, int64_t n, int64_t k, bool fp8_ok, std::vector<Row>& rows) {
  std::mt19937 rng(static_cast<uint32_t>(n * 31 + k));
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream());
  const int64_t max_m = *std::max_element(o.ms.begin(), o.ms.end());

  // Activations: fp16 values in [-1, 1); the output buffer is shared by all kernels.
  std::vector<uint16_t> xh(static_cast<size_t>(max_m * k));
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (auto& v : xh) v = f32_to_act(unit(rng), ActDType::F16);
  DeviceBuffer x(xh.size() * 2), y(static_cast<size_t>(max_m * n) * 2);
  x.upload(xh.data(), xh.size() * 2);

  // Weights (random codes are as good as real ones for timing), replicated to defeat L2.
  std::vector<uint16_t> dense_h(static_cast<size_t>(n * k));
  for (auto& v : dense_h) v = f32_to_act(unit(rng) * 0.05f, ActDType::F16);
  const int dense_reps = replicas_for(n * k * 2);
  std::vector<DeviceBuffer> dense;
  for (int i = 0; i < dense_reps; ++i) {
    dense.emplace_back(dense_h.size() * 2);
    dense.back().upload(dense_h.data(), dense_h.size() * 2);
  }
  dense_h = {};

  auto weight_only = [&](int bits, int64_t group, bool asym) {
    std::vector<uint32_t> packed = random_words(static_cast<size_t>(n * k * bits / 32), rng);
    const int64_t groups = group > 0 ? k / group : 1;
    std::vector<float> scales(static_cast<size_t>(n * groups), 0.01f);
    const PackedQuantWeight w{
        bits, n, k, group, reinterpret_cast<const int32_t*>(packed.data()), scales.data(), nullptr};
    WeightOnlyLayout layout = relayout_weight_only(w, ActDType::F16, "bench");
    if (asym) {  // timing only needs a valid layout: give every group the zero point 1
      layout.symmetric = false;
      layout.zeros.assign(static_cast<size_t>(n * groups), 1);
    }
    std::vector<DeviceWeightOnly> out;
    const int reps = replicas_for(layout.device_bytes());
    for (int i = 0; i < reps; ++i) out.push_back(upload_weight_only(layout));
    return out;
  };
  const auto w4 = weight_only(4, 128, false);
  const auto w4a = weight_only(4, 128, true);
  const auto w8 = weight_only(8, -1, false);

  std::vector<int8_t> q8(static_cast<size_t>(n * k));
  for (auto& v : q8) v = static_cast<int8_t>(rng());
  std::vector<float> wscale(static_cast<size_t>(n), 0.01f);
  const Int8WeightLayout int8_layout = relayout_int8(q8.data(), wscale.data(), n, k, "bench");
  std::vector<DeviceInt8Weight> i8;
  for (int i = 0, r = replicas_for(int8_layout.device_bytes()); i < r; ++i)
    i8.push_back(upload_int8(int8_layout));

  std::vector<DeviceFp8Weight> f8, f8c;
  if (fp8_ok) {
    std::vector<uint8_t> qf(static_cast<size_t>(n * k));
    for (auto& v : qf) v = static_cast<uint8_t>(rng()) & 0xf7;  // no NaN patterns (0x7f / 0xff)
    const Fp8WeightLayout t = relayout_fp8(qf.data(), wscale.data(), false, n, k, "bench");
    const Fp8WeightLayout c = relayout_fp8(qf.data(), wscale.data(), true, n, k, "bench");
    for (int i = 0, r = replicas_for(t.device_bytes()); i < r; ++i) {
      f8.push_back(upload_fp8(t));
      f8c.push_back(upload_fp8(c));
    }
  }

  for (int64_t m : o.ms) {
    auto add = [&](const std::string& name, double bytes, const std::function<void(int)>& call) {
      rows.push_back({name, m, n, k, time_us(ctx, o, call), bytes});
    };
    add("cublas_f16", 2.0 * n * k, [&](int i) {
      gemm_dense(ctx, dense[i % dense.size()].data(), n, k, x.data(), m, y.data(), ActDType::F16);
    });
    add("w4a16_g128", w4[0].device_bytes,
        [&](int i) { gemm_weight_only(ctx, w4[i % w4.size()], x.data(), m, y.data(), ActDType::F16); });
    add("w4a16_g128_asym", w4a[0].device_bytes,
        [&](int i) { gemm_weight_only(ctx, w4a[i % w4a.size()], x.data(), m, y.data(), ActDType::F16); });
    add("w8a16_ch", w8[0].device_bytes,
        [&](int i) { gemm_weight_only(ctx, w8[i % w8.size()], x.data(), m, y.data(), ActDType::F16); });
    add("w8a8_int8", i8[0].device_bytes,
        [&](int i) { gemm_int8(ctx, i8[i % i8.size()], x.data(), m, y.data(), ActDType::F16); });
    if (fp8_ok) {
      add("w8a8_fp8", f8[0].device_bytes, [&](int i) {
        gemm_fp8(ctx, f8[i % f8.size()], x.data(), m, y.data(), ActDType::F16, Fp8ActScale::PerTensor);
      });
      add("w8a8_fp8_tok", f8c[0].device_bytes, [&](int i) {
        gemm_fp8(ctx, f8c[i % f8c.size()], x.data(), m, y.data(), ActDType::F16, Fp8ActScale::PerToken);
      });
    }
  }
  CHECK(cudaStreamSynchronize(s));
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!cuda_available()) {
    std::fprintf(stderr, "cuda_gemm: %s; nothing to measure.\n", device_summary().c_str());
    if (o.json) std::printf("{\"error\": \"no CUDA device\"}\n");
    return 0;
  }
  try {
    Context ctx;
    const std::string device = device_summary();
    const bool fp8_ok = device_compute_capability() >= 89;
    const double copy_gbs = copy_bandwidth_gbs(ctx, o);
    if (!o.json) {
      std::printf("device: %s\ndevice-to-device copy: %.0f GB/s (read + write)\n", device.c_str(), copy_gbs);
      if (!fp8_ok) std::printf("fp8 kernels skipped: need sm_89+\n");
    }
    std::vector<Row> rows;
    for (const auto& [n, k] : o.shapes) bench_shape(ctx, o, n, k, fp8_ok, rows);

    auto baseline = [&](const Row& r) {
      for (const Row& b : rows)
        if (b.kernel == "cublas_f16" && b.m == r.m && b.n == r.n && b.k == r.k) return b.us;
      return 0.0;
    };
    if (o.json) {
      std::printf("{\"device\": \"%s\", \"copy_gbs\": %.1f, \"results\": [\n", device.c_str(), copy_gbs);
    } else {
      std::printf("%-16s %6s %6s %6s %10s %9s %8s %9s %8s\n", "kernel", "M", "N", "K", "us", "GB/s",
                  "TFLOP/s", "x cuBLAS", "%copy");
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      const double gbs = r.weight_bytes / (r.us * 1e3);
      const double tflops = 2.0 * r.m * r.n * r.k / (r.us * 1e6);
      const double speedup = baseline(r) / r.us;
      const double frac = gbs / copy_gbs;
      if (o.json) {
        std::printf(
            "  {\"kernel\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"us\": %.3f, \"weight_bytes\": "
            "%.0f, "
            "\"weight_gbs\": %.1f, \"tflops\": %.2f, \"speedup_vs_cublas_f16\": %.3f, \"copy_fraction\": "
            "%.3f}%s\n",
            r.kernel.c_str(), static_cast<long long>(r.m), static_cast<long long>(r.n),
            static_cast<long long>(r.k), r.us, r.weight_bytes, gbs, tflops, speedup, frac,
            i + 1 < rows.size() ? "," : "");
      } else {
        std::printf("%-16s %6lld %6lld %6lld %10.2f %9.0f %8.1f %9.2f %7.0f%%\n", r.kernel.c_str(),
                    static_cast<long long>(r.m), static_cast<long long>(r.n), static_cast<long long>(r.k),
                    r.us, gbs, tflops, speedup, 100.0 * frac);
      }
    }
    if (o.json) std::printf("]}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}

// The int4 decode kernel (runtime/kernels_packed_int16.cc, int16_gemv_rows) on a large matrix from DRAM, one
// x row, one matrix per thread: GB/s of int4 codes. The library's kernel itself, where packed_bench goes
// through packed_linear and int4_loop_ablation.cc through a copy of the inner loop. docs/PERFORMANCE.md,
// session 17. A developer tool, not part of the build; after building the library (B=build/release):
//   g++ -O3 -std=c++20 -Isrc tools/microbench/int4_kernel_dram.cc $B/src/runtime/liblowbit_kernels.a
//       $B/src/util/liblowbit_util.a $B/src/io/liblowbit_io.a -lhwy -lfmt -lopenblas -pthread
//       -o /tmp/int4_kernel_dram
//   /tmp/int4_kernel_dram [rows=131072 [threads=1 [K=768]]]   # 131072 x 768: 48 MiB of codes per thread
// Scales are 0.01 with symmetric codes (zero offset 8), groups of 128; x is random normal.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "runtime/kernels_packed.h"
#include "runtime/kernels_packed_int16.h"

using namespace lowbit::kernels;

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atol(argv[1]) : 131072;
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1;
  const int64_t K = argc > 3 ? std::atol(argv[3]) : 768;
  if (!have_avx2_fma() || K % 128 != 0) {
    std::fprintf(stderr, "needs AVX2 + FMA and K a multiple of 128\n");
    return 1;
  }
  const int64_t groups = K / 128;
  std::mt19937 rng(3);
  std::vector<std::vector<uint8_t>> codes(static_cast<size_t>(threads));
  std::vector<std::vector<float>> scales(static_cast<size_t>(threads));
  std::vector<std::vector<float>> out(static_cast<size_t>(threads),
                                      std::vector<float>(static_cast<size_t>(rows)));
  std::vector<PackedMatrix> w(static_cast<size_t>(threads));
  std::vector<ActivationCodes> xq(static_cast<size_t>(threads));
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(K));
  for (float& v : x) v = normal(rng);
  for (int t = 0; t < threads; ++t) {
    auto& c = codes[static_cast<size_t>(t)];
    c.resize(static_cast<size_t>(rows * K / 2));
    for (uint8_t& b : c) b = static_cast<uint8_t>(rng());
    scales[static_cast<size_t>(t)].assign(static_cast<size_t>(rows * groups) + 16, 0.01f);
    PackedMatrix& m = w[static_cast<size_t>(t)];
    m.codes = Codes::Int4;
    m.data = c.data();
    m.rows = rows;
    m.cols = K;
    m.row_bytes = K / 2;
    m.group_size = 128;
    m.scales = scales[static_cast<size_t>(t)].data();
    m.zero_offset = 8.0f;
    quantize_activation_codes(x.data(), 1, m, xq[static_cast<size_t>(t)]);
  }
  for (int round = 0; round < 3; ++round) {
    double best = 1e30;
    for (int rep = 0; rep < 7; ++rep) {
      constexpr int kIterations = 10;
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          const auto i = static_cast<size_t>(t);
          for (int it = 0; it < kIterations; ++it)
            int16_gemv_rows(xq[i], w[i], nullptr, out[i].data(), 0, rows);
        });
      }
      for (auto& th : pool) th.join();
      const double ns =
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
          kIterations;
      best = std::min(best, ns);
    }
    std::printf("%lld x %lld int4, %d thread(s): %.1f GB/s of codes (best of 7)\n",
                static_cast<long long>(rows), static_cast<long long>(K), threads,
                static_cast<double>(threads * rows * K / 2) / best);
  }
  return 0;
}

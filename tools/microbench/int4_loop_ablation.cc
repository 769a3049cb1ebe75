// Ablation of the int4 decode kernel's inner loop (runtime/kernels_packed_int16.cc, int8 activation codes):
// cycles per step of 4 weight rows x 64 columns against one x row, K = 768, with the weights in L1, L2, L3
// or DRAM (the row count argument) and parts of the loop removed. docs/PERFORMANCE.md, sessions 14 and 16.
// A developer tool, not part of the build:
//   g++ -O3 -mavx2 -mfma -pthread tools/microbench/int4_loop_ablation.cc -o /tmp/int4_ablation
//   for rows in 64 1024 4096 65536; do /tmp/int4_ablation $rows; done     # four adjacent rows per step
//   /tmp/int4_ablation 131072 quarters 1; /tmp/int4_ablation 131072 quarters 2
// "quarters" takes each step's rows from four quarters of the matrix, as the kernel does
// (runtime/row_streams.h); the last argument runs that many threads, each on a matrix of its own (GB/s is
// their total). The cycle counts assume 3.35 GHz (the Zen 3 VM) and one thread; the GB/s column does not.
#include <immintrin.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
using C = std::chrono::steady_clock;
constexpr int R = 4;
enum V { FULL, NOPF, NOCVT, NOMADD, LOADAND, FULL_T0 };
template <int v>
__attribute__((noinline)) void run(const uint8_t* w, int64_t rowbytes, int64_t rows, const int8_t* x,
                                   const float* ls, int64_t chunks, float* out, bool quarters) {
  for (int64_t n = 0; n < rows; n += R) {
    const uint8_t* rp[R];
    int64_t row[R];  // adjacent rows n .. n + 3, or row n / 4 of each quarter
    for (int r = 0; r < R; ++r) row[r] = quarters ? r * (rows / R) + n / R : n + r;
    for (int r = 0; r < R; ++r) rp[r] = w + row[r] * rowbytes;
    __m256 acc[R];
    __m256i iacc[R];
    for (int r = 0; r < R; ++r) {
      acc[r] = _mm256_setzero_ps();
      iacc[r] = _mm256_setzero_si256();
    }
    const __m256i nib = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi16(1);
    for (int64_t c = 0; c < chunks; ++c) {
      if (v == FULL || v == NOCVT || v == NOMADD || v == LOADAND)
        for (int r = 0; r < R; ++r) __builtin_prefetch(rp[r] + c * 32 + 512, 0, 0);
      if (v == FULL_T0)
        for (int r = 0; r < R; ++r) __builtin_prefetch(rp[r] + c * 32 + 512, 0, 3);
      const __m256i x0 = _mm256_loadu_si256((const __m256i*)(x + c * 64));
      const __m256i x1 = _mm256_loadu_si256((const __m256i*)(x + c * 64 + 32));
      const __m256 a = _mm256_loadu_ps(ls + c * 8);
      for (int r = 0; r < R; ++r) {
        const __m256i vv = _mm256_loadu_si256((const __m256i*)(rp[r] + c * 32));
        const __m256i lo = _mm256_and_si256(vv, nib), hi = _mm256_and_si256(_mm256_srli_epi16(vv, 4), nib);
        if (v == LOADAND) {
          iacc[r] = _mm256_add_epi8(iacc[r], _mm256_add_epi8(lo, hi));
          continue;
        }
        const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_maddubs_epi16(hi, x1));
        if (v == NOMADD) {
          iacc[r] = _mm256_add_epi16(iacc[r], pairs);
          continue;
        }
        const __m256i p = _mm256_madd_epi16(pairs, one);
        if (v == NOCVT) {
          iacc[r] = _mm256_add_epi32(iacc[r], p);
          continue;
        }
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), a, acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      __m256 t = _mm256_add_ps(acc[r], _mm256_cvtepi32_ps(iacc[r]));
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
      s = _mm_hadd_ps(s, s);
      s = _mm_hadd_ps(s, s);
      out[row[r]] = _mm_cvtss_f32(s);
    }
  }
}
int main(int argc, char** argv) {
  const int64_t K = 768, chunks = K / 64, rowbytes = K / 2;
  const int64_t rows = argc > 1 ? atol(argv[1]) : 64;  // 64 rows = 24 KB (L1: 32 KB)
  const bool quarters = argc > 2 && std::strcmp(argv[2], "quarters") == 0;
  const int threads = argc > 3 ? std::max(1, atoi(argv[3])) : 1;
  std::vector<std::vector<uint8_t>> w(static_cast<size_t>(threads),
                                      std::vector<uint8_t>(rows * rowbytes + 4096));
  for (auto& m : w)
    for (auto& b : m) b = rand();
  std::vector<int8_t> x(K);
  for (auto& b : x) b = rand() % 255 - 127;
  std::vector<float> ls(chunks * 8, 0.01f);
  std::vector<std::vector<float>> out(static_cast<size_t>(threads), std::vector<float>(rows));
  const double ghz = 3.35;
  auto bench = [&](const char* name, auto f) {
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const int iters = std::max<int64_t>(3, 200000 * 64 / rows);
      auto s = C::now();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          for (int i = 0; i < iters; ++i) f(w[t].data(), out[t].data());
        });
      for (auto& th : pool) th.join();
      auto e = C::now();
      double ns = std::chrono::duration<double, std::nano>(e - s).count() / iters;
      best = std::min(best, ns);
    }
    const double steps = rows / R * chunks;
    printf("%-8s %6.2f cycles per 4-row chunk step (%.1f GB/s codes)\n", name, best * ghz / steps,
           threads * rows * rowbytes / best);
  };
#define LOWBIT_ABLATION(V, NAME)                                          \
  bench(NAME, [&](const uint8_t* wt, float* o) {                          \
    run<V>(wt, rowbytes, rows, x.data(), ls.data(), chunks, o, quarters); \
  })
  LOWBIT_ABLATION(FULL, "full");
  LOWBIT_ABLATION(FULL_T0, "full_t0");
  LOWBIT_ABLATION(NOPF, "nopf");
  LOWBIT_ABLATION(NOCVT, "nocvt");
  LOWBIT_ABLATION(NOMADD, "nomadd");
  LOWBIT_ABLATION(LOADAND, "loadand");
}

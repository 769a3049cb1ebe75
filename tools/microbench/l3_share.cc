// Can part of a decode step's weights stay in L3 from one token to the next? 53 MB of int4 rows (the W4A16 +
// lm_head reference model's bytes per step) multiplied as the int4 decode loop does, per thread the first
// share of its rows prefetched with prefetcht0 and the rest with prefetchnta; ms per pass for each share.
// docs/PERFORMANCE.md, session 14. A developer tool, not part of the build:
//   g++ -O3 -mavx2 -mfma -pthread tools/microbench/l3_share.cc -o /tmp/l3_share && /tmp/l3_share 53 2
#include <immintrin.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
using C = std::chrono::steady_clock;
constexpr int R = 4;
template <int HINT>
static inline void pf(const void* p) {
  __builtin_prefetch(p, 0, HINT);
}
__attribute__((noinline)) float run(const uint8_t* w, int64_t rowbytes, int64_t r0, int64_t r1, int64_t split,
                                    const int8_t* x, const float* ls, int64_t chunks) {
  float total = 0;
  const __m256i nib = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi16(1);
  for (int64_t n = r0; n < r1; n += R) {
    const uint8_t* rp[R];
    for (int r = 0; r < R; ++r) rp[r] = w + (n + r) * rowbytes;
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    const bool nta = n >= split;
    for (int64_t c = 0; c < chunks; ++c) {
      if (nta) {
        for (int r = 0; r < R; ++r) pf<0>(rp[r] + c * 32 + 512);
      } else {
        for (int r = 0; r < R; ++r) pf<3>(rp[r] + c * 32 + 512);
      }
      const __m256i x0 = _mm256_loadu_si256((const __m256i*)(x + c * 64));
      const __m256i x1 = _mm256_loadu_si256((const __m256i*)(x + c * 64 + 32));
      const __m256 a = _mm256_loadu_ps(ls + c * 8);
      for (int r = 0; r < R; ++r) {
        const __m256i vv = _mm256_loadu_si256((const __m256i*)(rp[r] + c * 32));
        const __m256i lo = _mm256_and_si256(vv, nib), hi = _mm256_and_si256(_mm256_srli_epi16(vv, 4), nib);
        const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_maddubs_epi16(hi, x1));
        const __m256i p = _mm256_madd_epi16(pairs, one);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), a, acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
      s = _mm_hadd_ps(s, s);
      s = _mm_hadd_ps(s, s);
      total += _mm_cvtss_f32(s);
    }
  }
  return total;
}
int main(int argc, char** argv) {
  const int64_t K = 768, chunks = K / 64, rowbytes = K / 2;
  const double mb = argc > 1 ? atof(argv[1]) : 53;
  const int threads = argc > 2 ? atoi(argv[2]) : 1;
  const int64_t rows = int64_t(mb * 1e6 / rowbytes) / 8 * 8;
  std::vector<uint8_t> w(rows * rowbytes + 4096);
  for (size_t i = 0; i < w.size(); ++i) w[i] = i * 2654435761u >> 13;
  std::vector<int8_t> x(K);
  for (auto& b : x) b = rand() % 255 - 127;
  std::vector<float> ls(chunks * 8, 0.01f);
  for (double frac : {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}) {
    // split per thread: each thread's range [t*rows/T, (t+1)*rows/T); the first frac of each range is T0.
    double best = 1e30;
    for (int rep = 0; rep < 12; ++rep) {
      auto s = C::now();
      std::vector<std::thread> th;
      for (int t = 0; t < threads; ++t)
        th.emplace_back([&, t] {
          const int64_t a = rows * t / threads / 4 * 4, b = rows * (t + 1) / threads / 4 * 4;
          volatile float r =
              run(w.data(), rowbytes, a, b, a + int64_t((b - a) * frac) / 4 * 4, x.data(), ls.data(), chunks);
          (void)r;
        });
      for (auto& t : th) t.join();
      auto e = C::now();
      if (rep >= 2) best = std::min(best, std::chrono::duration<double, std::milli>(e - s).count());
    }
    printf("%.0f MB, %d threads, T0 share %.1f: %.3f ms per pass, %.1f GB/s\n", mb, threads, frac, best,
           rows * rowbytes / best / 1e6);
  }
}

// The bf16 AMX product loop of runtime/gemm_bf16_amx.cc (2 x 2 tiles of C, two A and two B tile loads per
// four TDPBF16PS, panel pairs outside, rows inside) on one thread, with its operands on cache lines or 16
// bytes past them (where malloc puts them), and with the A operand row-major or tiled (each 16 x 32 tile as 1
// KiB of consecutive memory). docs/PERFORMANCE.md, session 22 ("AMX operands on cache lines"). A developer
// tool, not part of the build (needs an AMX-BF16 CPU and Linux):
//   g++ -O2 -std=c++20 tools/microbench/amx_tile_alignment.cc -o /tmp/amx_tile_alignment
//   /tmp/amx_tile_alignment            # the reference model's work items: 320 x 128 x 768, 256 x 128 x 2048
//   /tmp/amx_tile_alignment 512 2048 768
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-bf16"))) void configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

// C[m x n] = A[m x k] B[k x n]; B as panels of 16 columns (k/2 rows of 64 bytes each), A row-major or tiled.
__attribute__((target("amx-tile,amx-bf16"))) void product(const uint16_t* a, const uint16_t* b, float* c,
                                                          int64_t m, int64_t n, int64_t k, bool tiled) {
  configure();
  const size_t a_stride = tiled ? 64 : static_cast<size_t>(k) * 2, c_stride = static_cast<size_t>(n) * 4;
  const int64_t a_step = tiled ? 16 : 1;
  for (int64_t np = 0; np < n / 32; ++np) {
    const uint16_t* b0 = b + 2 * np * k * 16;
    const uint16_t* b1 = b0 + k * 16;
    for (int64_t m0 = 0; m0 < m; m0 += 32) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      const uint16_t* a0 = a + m0 * k;
      const uint16_t* a1 = a0 + 16 * k;
      for (int64_t k0 = 0; k0 < k; k0 += 32) {
        _tile_loadd(4, a0 + k0 * a_step, a_stride);
        _tile_loadd(5, a1 + k0 * a_step, a_stride);
        _tile_loadd(6, b0 + k0 * 16, 64);
        _tile_loadd(7, b1 + k0 * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      float* c0 = c + m0 * n + np * 32;
      _tile_stored(0, c0, c_stride);
      _tile_stored(1, c0 + 16, c_stride);
      _tile_stored(2, c0 + 16 * n, c_stride);
      _tile_stored(3, c0 + 16 * n + 16, c_stride);
    }
  }
  _tile_release();
}

double gflops(int64_t m, int64_t n, int64_t k, int offset_bytes, bool tiled) {
  auto* a = static_cast<uint16_t*>(std::aligned_alloc(4096, m * k * 2 + 4096)) + offset_bytes / 2;
  auto* b = static_cast<uint16_t*>(std::aligned_alloc(4096, n * k * 2 + 4096)) + offset_bytes / 2;
  auto* c = static_cast<float*>(std::aligned_alloc(4096, m * n * 4 + 4096));
  std::fill(a, a + m * k, uint16_t{0x3f80});  // bf16 1.0
  std::fill(b, b + n * k, uint16_t{0x3f80});
  product(a, b, c, m, n, k, tiled);
  const int reps = static_cast<int>(std::max<int64_t>(3, 4'000'000'000LL / (m * n * k)));
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) product(a, b, c, m, n, k, tiled);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::free(a - offset_bytes / 2);
  std::free(b - offset_bytes / 2);
  std::free(c);
  return 2.0 * m * n * k * reps / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) {
    std::fprintf(stderr, "no AMX tile state for this process\n");
    return 1;
  }
  std::vector<std::vector<int64_t>> shapes = {{320, 128, 768}, {256, 128, 2048}};
  if (argc == 4) shapes = {{std::atoll(argv[1]), std::atoll(argv[2]), std::atoll(argv[3])}};
  for (const auto& s : shapes) {
    const int64_t m = s[0] / 32 * 32, n = s[1] / 32 * 32, k = s[2] / 32 * 32;
    std::printf(
        "m %ld n %ld k %ld (GFLOP/s, one thread): A rows, 16 B past a line %.0f, on lines %.0f; "
        "A tiled, on lines %.0f\n",
        static_cast<long>(m), static_cast<long>(n), static_cast<long>(k), gflops(m, n, k, 16, false),
        gflops(m, n, k, 0, false), gflops(m, n, k, 0, true));
  }
}

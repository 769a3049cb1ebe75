// Register-only peak loops (machine_peaks.h).
#include "machine_peaks.h"

#include "runtime/gemm_bf16_amx.h"
#include "runtime/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOWBIT_PEAKS_X86 1
#endif

namespace lowbit::bench {

const char* peak_op_name(PeakOp op) {
  switch (op) {
    case PeakOp::Fp32Fma:
      return "vfmaddps";
    case PeakOp::Int16Madd:
      return "vpmaddwd+vpaddd";
    case PeakOp::Int8Madd:
      return "vpmaddubsw+vpmaddwd+vpaddd";
    case PeakOp::AmxBf16:
      return "tdpbf16ps";
  }
  return "?";
}

#ifdef LOWBIT_PEAKS_X86
namespace {

#define LOWBIT_PEAKS_AVX2 __attribute__((target("avx2,fma"), noinline))

// The integer loops are written in assembly with fixed registers: compiled from intrinsics, GCC 12 kept some
// of the accumulators on the stack (stores inside the loop), which measured the stores instead. The FMA peak
// is the product's own probe (kernels::fma_chain_flops, what `lowbit bench` uses), on the widest vectors.

// Six chains of c += vpmaddwd(x, w).
LOWBIT_PEAKS_AVX2 int64_t int16_loop(int64_t trips) {
  const int32_t x = 0x00010001, w = 0x00030003;
  int64_t n = trips;
  asm volatile(
      "vpbroadcastd %[x], %%ymm12\n\t"
      "vpbroadcastd %[w], %%ymm13\n\t"
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\tvpxor %%ymm1, %%ymm1, %%ymm1\n\tvpxor %%ymm2, %%ymm2, %%ymm2\n\t"
      "vpxor %%ymm3, %%ymm3, %%ymm3\n\tvpxor %%ymm4, %%ymm4, %%ymm4\n\tvpxor %%ymm5, %%ymm5, %%ymm5\n\t"
      "1:\n\t"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm6\n\tvpaddd %%ymm6, %%ymm0, %%ymm0\n\t"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm7\n\tvpaddd %%ymm7, %%ymm1, %%ymm1\n\t"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm8\n\tvpaddd %%ymm8, %%ymm2, %%ymm2\n\t"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm9\n\tvpaddd %%ymm9, %%ymm3, %%ymm3\n\t"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm10\n\tvpaddd %%ymm10, %%ymm4, %%ymm4\n\t"
      "vpmaddwd %%ymm13, %%ymm12, %%ymm11\n\tvpaddd %%ymm11, %%ymm5, %%ymm5\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper"
      : [n] "+r"(n)
      : [x] "m"(x), [w] "m"(w)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
  return trips * 6 * 16;
}

// Six chains of c += vpmaddwd(vpmaddubsw(x, w), 1).
LOWBIT_PEAKS_AVX2 int64_t int8_loop(int64_t trips) {
  const int32_t x = 0x01010101, w = 0x03030303, one = 0x00010001;
  int64_t n = trips;
  asm volatile(
      "vpbroadcastd %[x], %%ymm12\n\t"
      "vpbroadcastd %[w], %%ymm13\n\t"
      "vpbroadcastd %[one], %%ymm14\n\t"
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\tvpxor %%ymm1, %%ymm1, %%ymm1\n\tvpxor %%ymm2, %%ymm2, %%ymm2\n\t"
      "vpxor %%ymm3, %%ymm3, %%ymm3\n\tvpxor %%ymm4, %%ymm4, %%ymm4\n\tvpxor %%ymm5, %%ymm5, %%ymm5\n\t"
      "1:\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm6\n\t"
      "vpmaddwd %%ymm14, %%ymm6, %%ymm6\n\t"
      "vpaddd %%ymm6, %%ymm0, %%ymm0\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm7\n\t"
      "vpmaddwd %%ymm14, %%ymm7, %%ymm7\n\t"
      "vpaddd %%ymm7, %%ymm1, %%ymm1\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm8\n\t"
      "vpmaddwd %%ymm14, %%ymm8, %%ymm8\n\t"
      "vpaddd %%ymm8, %%ymm2, %%ymm2\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm9\n\t"
      "vpmaddwd %%ymm14, %%ymm9, %%ymm9\n\t"
      "vpaddd %%ymm9, %%ymm3, %%ymm3\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm10\n\t"
      "vpmaddwd %%ymm14, %%ymm10, %%ymm10\n\t"
      "vpaddd %%ymm10, %%ymm4, %%ymm4\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm11\n\t"
      "vpmaddwd %%ymm14, %%ymm11, %%ymm11\n\t"
      "vpaddd %%ymm11, %%ymm5, %%ymm5\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper"
      : [n] "+r"(n)
      : [x] "m"(x), [w] "m"(w), [one] "m"(one)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "cc");
  return trips * 6 * 32;
}

// Four chains of tdpbf16ps on tiles holding zeros, as the product kernel's 2 x 2 blocking issues them
// (runtime/gemm_bf16_amx.cc), without the four tile loads that kernel needs per four of them.
__attribute__((target("amx-tile,amx-bf16"), noinline)) int64_t amx_bf16_loop(int64_t trips) {
  kernels::amx::configure_tiles();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_zero(4);
  _tile_zero(5);
  _tile_zero(6);
  _tile_zero(7);
  for (int64_t i = 0; i < trips; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  kernels::amx::release_tiles();
  return trips * 4 * 16 * 16 * 32;
}

}  // namespace

#endif

int64_t run_peak_loop(PeakOp op, int64_t trips) {
  if (trips <= 0) return 0;
  if (op == PeakOp::Fp32Fma) return static_cast<int64_t>(kernels::fma_chain_flops(trips) / 2);
#ifdef LOWBIT_PEAKS_X86
  if (op == PeakOp::AmxBf16) return kernels::amx::amx_bf16_usable() ? amx_bf16_loop(trips / 16) : 0;
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  return op == PeakOp::Int16Madd ? int16_loop(trips) : int8_loop(trips);
#else
  return 0;
#endif
}

}  // namespace lowbit::bench

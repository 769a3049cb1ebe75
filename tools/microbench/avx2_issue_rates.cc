// Instructions per cycle of single 256-bit instructions in a loop of independent operations (no dependency
// chains), to see which execution ports a kernel's instruction mix competes for. docs/PERFORMANCE.md,
// session 18, used it on the Zen 3 VM to find why the fp8 table decoder ran at half its instruction budget.
// A developer tool, not part of the build:
//   g++ -O2 -mavx2 -mfma tools/microbench/avx2_issue_rates.cc -o /tmp/avx2_issue_rates
//   /tmp/avx2_issue_rates [GHz=3.35]
// The rate is per cycle of the given clock (the VM does not expose cycle counters).
#include <chrono>
#include <cstdio>
#include <cstdlib>

#define REP8(x) x x x x x x x x
#define FOUR(op)                                                                                             \
  REP8(op " %%ymm1, %%ymm2, %%ymm3\n\t" op " %%ymm1, %%ymm2, %%ymm4\n\t" op " %%ymm1, %%ymm2, %%ymm5\n\t" op \
          " %%ymm1, %%ymm2, %%ymm6\n\t")

namespace {

constexpr long kIters = 50000000;

template <int kKind>
double instructions_per_second() {
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < kIters; ++i) {
    if constexpr (kKind == 0) asm volatile(FOUR("vpand")::: "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 1) asm volatile(FOUR("vpaddw")::: "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 2) asm volatile(FOUR("vpshufb")::: "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 3) asm volatile(FOUR("vpunpcklbw")::: "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 4)
      asm volatile(REP8("vpsllw $7, %%ymm2, %%ymm3\n\t vpsllw $7, %%ymm2, %%ymm4\n\t"
                        "vpsllw $7, %%ymm2, %%ymm5\n\t vpsllw $7, %%ymm2, %%ymm6\n\t")::
                       : "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 5) asm volatile(FOUR("vpermd")::: "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 6)  // shuffle, shift, shuffle, shuffle: do shifts share the shuffle ports?
      asm volatile(REP8("vpunpcklwd %%ymm1, %%ymm2, %%ymm3\n\t vpsrlw $4, %%ymm2, %%ymm4\n\t"
                        "vpunpcklwd %%ymm1, %%ymm2, %%ymm5\n\t vpshufb %%ymm1, %%ymm2, %%ymm6\n\t")::
                       : "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 7)
      asm volatile(
          REP8("vinserti128 $1, (%%rsp), %%ymm1, %%ymm3\n\t vinserti128 $1, 16(%%rsp), %%ymm1, %%ymm4\n\t"
               "vinserti128 $1, (%%rsp), %%ymm1, %%ymm5\n\t vinserti128 $1, 16(%%rsp), %%ymm1, %%ymm6\n\t")::
              : "xmm3", "xmm4", "xmm5", "xmm6");
    if constexpr (kKind == 8)
      asm volatile(REP8("vpmovmskb %%ymm1, %%eax\n\t vpmovmskb %%ymm2, %%ecx\n\t"
                        "vpmovmskb %%ymm1, %%edx\n\t vpmovmskb %%ymm2, %%esi\n\t")::
                       : "eax", "ecx", "edx", "esi");
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 32.0 * static_cast<double>(kIters) / s;
}

}  // namespace

int main(int argc, char** argv) {
  const double hz = (argc > 1 ? std::atof(argv[1]) : 3.35) * 1e9;
  std::printf("vpand                  %.2f per cycle\n", instructions_per_second<0>() / hz);
  std::printf("vpaddw                 %.2f\n", instructions_per_second<1>() / hz);
  std::printf("vpshufb                %.2f\n", instructions_per_second<2>() / hz);
  std::printf("vpunpcklbw             %.2f\n", instructions_per_second<3>() / hz);
  std::printf("vpsllw (imm)           %.2f\n", instructions_per_second<4>() / hz);
  std::printf("vpermd                 %.2f\n", instructions_per_second<5>() / hz);
  std::printf("unpack/shift/pshufb    %.2f\n", instructions_per_second<6>() / hz);
  std::printf("vinserti128 (memory)   %.2f\n", instructions_per_second<7>() / hz);
  std::printf("vpmovmskb              %.2f\n", instructions_per_second<8>() / hz);
}

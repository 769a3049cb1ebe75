// The arithmetic limits the kernels are judged against, measured in the same run as they are: register-only
// loops that issue one kind of multiply-add as fast as the core accepts it, with enough independent chains to
// hide its latency. They show, for instance, whether a CPU's integer multiply-adds can make an int8 product
// faster than fp32 FMAs at all (on the Zen 3 VM they cannot: docs/PERFORMANCE.md).
#pragma once

#include <cstdint>

namespace lowbit::bench {

// The integer mixes in their 256-bit forms, which the AVX2 kernels use (AVX-512 VNNI is not measured); the
// FMAs on the widest vectors the dispatcher picks, as sgemm uses them.
enum class PeakOp {
  Fp32Fma,    // vfmadd...ps: 8 (16 on AVX-512) multiply-adds per instruction (the sgemm and bf16 paths)
  Int16Madd,  // vpmaddwd + vpaddd: 16 per pair (the W8A8 AVX2 prefill kernel and the 8-bit decode kernels)
  Int8Madd,   // vpmaddubsw + vpmaddwd + vpaddd: 32 per triple (the int4 decode kernel against int8 codes)
  AmxBf16,  // tdpbf16ps: 16 x 16 x 32 per instruction on AMX tiles (the bf16 calibration products), no loads
};

const char* peak_op_name(PeakOp op);

// Runs op's loop `trips` times on the calling thread; returns the multiply-adds done (0 for the integer
// loops without AVX2, and for tdpbf16ps without AMX-BF16).
int64_t run_peak_loop(PeakOp op, int64_t trips);

}  // namespace lowbit::bench

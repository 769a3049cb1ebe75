// Decode-size products of E4M3 weights whose values round to bf16 (FP8 / FP8_DYNAMIC checkpoints with bf16
// scales: PackedMatrix::round_to_bf16) on AVX2, by table lookup instead of arithmetic.
//
// Why: the Highway fp8 decoder widens each code through F16C, multiplies it by the scale and rounds the
// product to bf16 (as torch dequantizes), about 13 vector instructions per 8 weights; on two Zen 3 cores
// that made FP8 decode slower than bf16's. But with the row's scale s fixed, bf16(c s) depends on c only
// through its 3 mantissa bits and whether it is subnormal, and c's exponent e scales it by an exact power
// of two:
//   normal c = (1 + m/8) 2^(e-7):  bf16(c s) = bf16((1 + m/8) s 2^-7) * 2^e   (add e to the exponent field)
//   subnormal c = (m/8) 2^-6:      bf16(c s) = bf16((m/8) s 2^-6)
// so a 16-entry table per row and scale group, two vpshufb lookups (its low and high bytes), an integer
// add of e << 7 and the sign give every weight bit for bit, in about 8 instructions per 8 weights.
// Rows whose table would leave bf16's normal range (|s| outside [2^-100, 2^100], or not finite) go to the
// fp32 decoder instead, and rows holding a NaN code (0x7F / 0xFF) to the scalar definition (NaN outputs).
#pragma once

#include <cstdint>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels {

constexpr int64_t kFp8Chunk = 32;  // codes per step of the decoder (one 256-bit load)

// Whether fp8_gemv_rows can multiply w: E4M3 codes with round_to_bf16, scales per row or per group of a
// multiple of 32 columns, no zero terms, a CPU with AVX2 + FMA, and Highway dispatching to 8-lane vectors
// (AVX2: on AVX-512 CPUs the fp32 decoder, 16 lanes wide, keeps the work and its summation order).
bool fp8_gemv_supports(const PackedMatrix& w);

// y[i][n] = sum_k bf16(c s) x[i][k] (+ bias) for weight rows [n_begin, n_end) and m x rows, equal bit for bit
// to the fp32 decoder's (packed_gemv with GemvPath::Float) for finite codes. Needs fp8_gemv_supports(w).
void fp8_gemv_rows(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y,
                   int64_t n_begin, int64_t n_end);

}  // namespace lowbit::kernels

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
// add of the exponent and the sign give every weight bit for bit.
// Chunks of 32 codes without a zero or subnormal code (PackedMatrix::zero_exponent_chunks: nearly all of a
// real checkpoint's) take a shorter decoder: its table is indexed by the code's low four bits (exponent bit
// 0 and mantissa), which leaves one shift per chunk instead of three; shifts issue once per cycle on Zen 3.
// Rows whose table would leave bf16's normal range (|s| outside [2^-100, 2^100], or not finite) go to the
// fp32 decoder instead, and rows holding a NaN code (0x7F / 0xFF) to the scalar definition (NaN outputs).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels {

constexpr int64_t kFp8Chunk = 32;  // codes of each row per step of the decoder

// Whether fp8_gemv_rows can multiply w: E4M3 codes with round_to_bf16, scales per row or per group of a
// multiple of 32 columns, no zero terms, and a CPU with AVX2 + FMA. Its sums are those of the fp32 decoder's
// AVX2 target (8 lanes), also on AVX-512 CPUs, where the fp32 decoder itself would sum in 16 lanes (another
// order, the same accuracy): there the table decoder is 2.1x faster (FP8_DYNAMIC decode, Intel Xeon VM,
// session 21).
bool fp8_gemv_supports(const PackedMatrix& w);

// Words per row of PackedMatrix::zero_exponent_chunks for rows of `cols` codes.
inline int64_t fp8_chunk_words(int64_t cols) {
  return ((cols + kFp8Chunk - 1) / kFp8Chunk + 63) / 64;
}
// The zero_exponent_chunks bits of an E4M3 matrix, rows x fp8_chunk_words(cols) words.
std::vector<uint64_t> fp8_zero_exponent_chunks(const PackedMatrix& w);

// y[i][n] = sum_k bf16(c s) x[i][k] (+ bias) for weight rows [n_begin, n_end) and m x rows, equal bit for bit
// to the fp32 decoder's (packed_gemv with GemvPath::Float) for finite codes. Needs fp8_gemv_supports(w).
void fp8_gemv_rows(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y,
                   int64_t n_begin, int64_t n_end);

}  // namespace lowbit::kernels

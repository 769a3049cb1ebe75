// Decode-size products of int4 / 8-bit weight codes with 16-bit activation codes (kernels_packed.h
// packed_gemv), on AVX2.
//
// Why: the fp32 decoders of kernels_packed_hwy.cc spend one fused multiply-add per weight in one dependency
// chain per row and x row, so on AVX2 they decode 6-8 G int4 weights/s per core, below what DRAM delivers
// (a W4A16 model then decodes no faster than bf16). With x rounded to int16 codes, vpmaddwd multiplies 16
// code pairs per instruction into int32 sums that need no rounding; the float work drops to one conversion
// and one fused multiply-add per 64 weights.
//
// Precision: x is quantized per block of 32 columns, x ~= code * a_b with a_b = max|x_b| / 32767 and
// round-to-nearest, so each element moves by at most a_b / 2 = 2^-16 of its block's largest magnitude. A
// bf16 W4A16 runtime (torch, vLLM) rounds each element to bf16, 2^-9 of itself: unless an element is over
// 128 times smaller than its block's largest, the int16 code is the closer of the two. The sums over codes
// are exact integers; the rest is fp32 scaling per block and per group, as in the float kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels {

constexpr int64_t kInt16Block = 32;  // columns sharing one activation scale
constexpr int64_t kInt16Chunk = 64;  // columns of one step of the decoder (two blocks)

// x rows quantized for the int16 kernels. Each full chunk of 64 columns holds its codes in the order the
// decoder unpacks the weight codes (kernels_packed_int16.cc, int16_chunk_position); a partial last chunk
// holds them in column order, zero-padded.
struct Int16Activations {
  int64_t rows = 0, cols = 0, blocks = 0, chunks = 0;
  std::vector<int16_t> codes;      // [rows][chunks * kInt16Chunk]
  std::vector<float> scales;       // [rows][blocks]
  std::vector<float> lane_scales;  // [rows][chunks][8]: the scale of each int32 lane of a chunk's sums
  std::vector<float> group_sums;   // [rows][groups of w]: sum over the group of code * scale (zero terms')
};

// Whether this CPU runs the AVX2 kernels.
bool have_avx2_fma();
// Where column j (0 .. 63) of a full chunk of w's codes goes in the decoder's order.
int64_t int16_chunk_position(Codes codes, int64_t j);
// Whether int16_gemv_rows can multiply w: Int4, UInt8 or Int8 codes whose groups are whole blocks (a
// multiple of 32 columns, or one group per row).
bool int16_gemv_supports(const PackedMatrix& w);

// Quantizes m rows of x (K = w.cols columns) for w's code layout; on AVX2 CPUs with vector code that gives
// the scalar _ref's result bit for bit (vcvtps2dq rounds half to even, as the reference does).
void quantize_int16_activations(const float* x, int64_t m, const PackedMatrix& w, Int16Activations& out);
void quantize_int16_activations_ref(const float* x, int64_t m, const PackedMatrix& w, Int16Activations& out);
// The same layout from codes that are integers already, one scale per row (W8A8's int8 activation codes):
// the int16 kernels then compute int8_linear's product, with exact integer sums per chunk.
void int16_activations_from_codes(const int16_t* codes, const float* row_scales, int64_t m,
                                  const PackedMatrix& w, Int16Activations& out);
// The values the int16 kernels multiply: code * scale, [m][K] in column order.
std::vector<float> int16_activation_values(const Int16Activations& x, const PackedMatrix& w);

// y[i][n] for weight rows [n_begin, n_end) and every x row: sum_g s_g sum_b a_b sum_k c xq - sum_g zt_g
// group_sum_g (+ bias). Needs have_avx2_fma() and int16_gemv_supports(w).
void int16_gemv_rows(const Int16Activations& x, const PackedMatrix& w, const float* bias, float* y,
                     int64_t n_begin, int64_t n_end);

}  // namespace lowbit::kernels

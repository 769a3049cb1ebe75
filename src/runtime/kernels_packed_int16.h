// Decode-size products of int4 / 8-bit weight codes with integer activation codes (kernels_packed.h
// packed_gemv), on AVX2: int16 codes, or int8 codes against int4 weights.
//
// Why: the fp32 decoders of kernels_packed_hwy.cc spend one fused multiply-add per weight in one dependency
// chain per row and x row, so on AVX2 they decode 6-8 G int4 weights/s per core, below what DRAM delivers
// (a W4A16 model then decodes no faster than bf16). With x rounded to int16 codes, vpmaddwd multiplies 16
// code pairs per instruction into int32 sums that need no rounding; the float work drops to one conversion
// and one fused multiply-add per 64 weights. Int4 weights against int8 codes need half the integer work
// again: vpmaddubsw multiplies 32 unsigned nibbles by 32 signed bytes per instruction, and the nibbles need
// no widening to 16 bits (10 vector operations per 64 weights instead of 16; on Zen 3 the int4 decode
// kernel went from 12-14 to 15-19 GB/s of codes per core, docs/PERFORMANCE.md).
//
// Precision: int16 codes are per block of 32 columns, x ~= code * a_b with a_b = max|x_b| / 32767 and
// round-to-nearest, so each element moves by at most a_b / 2 = 2^-16 of its block's largest magnitude. A
// bf16 W4A16 runtime (torch, vLLM) rounds each element to bf16, 2^-9 of itself: unless an element is over
// 128 times smaller than its block's largest, the int16 code is the closer of the two. Int8 codes are per
// block of 8 columns, a_b = max|x_b| / 127: each element moves by at most 2^-8 of its block's largest, the
// same as bf16 for that largest one and coarser for the others (the Q8 activations of llama.cpp's CPU dot
// products, with smaller blocks). On the reference model that moved WikiText-2 perplexity by 0.03 % against
// the dequantized weights (int16: 0.002 %); LOWBIT_GEMV_INT16=1 keeps int16 codes for int4 weights too. The
// sums over codes are exact integers; the rest is fp32 scaling per block and per group, as in the float
// kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels {

constexpr int64_t kInt16Block = 32;     // columns sharing one int16 activation scale (half a chunk)
constexpr int64_t kInt8ScaleBlock = 8;  // columns sharing one int8 activation scale
constexpr int64_t kInt16Chunk = 64;     // columns of one step of the decoder (two blocks)

// x rows quantized for the integer kernels: int16 codes, or int8 codes against int4 weights. Each full chunk
// of 64 columns holds its codes in the order the decoder unpacks the weight codes (kernels_packed_int16.cc,
// int16_chunk_position); a partial last chunk holds them in column order, zero-padded.
struct ActivationCodes {
  int64_t rows = 0, cols = 0, blocks = 0, chunks = 0;  // blocks: scale blocks per row
  int bits = 16;                                       // 16: codes; 8 (int4 weights only): bytes
  int64_t scale_block = kInt16Block;  // columns per scale: 32 (int16 codes) or kInt8ScaleBlock (int8)
  std::vector<int16_t> codes;         // bits 16: [rows][chunks * kInt16Chunk]
  std::vector<int8_t> bytes;          // bits 8: [rows][chunks * kInt16Chunk]
  std::vector<float> scales;          // [rows][blocks]
  std::vector<float> lane_scales;     // [rows][chunks][8]: the scale of each int32 lane of a chunk's sums
  std::vector<float> group_sums;      // [rows][groups of w]: sum over the group of code * scale (zero terms')
};

// Whether this CPU runs the AVX2 kernels.
bool have_avx2_fma();
// Where column j (0 .. 63) of a full chunk of w's codes goes in the decoder's order, for activation codes
// of `bits` (8: int4 weights only).
int64_t int16_chunk_position(Codes codes, int64_t j, int bits = 16);
// Whether int16_gemv_rows can multiply w: Int4, UInt8 or Int8 codes whose groups are whole blocks (a
// multiple of 32 columns, or one group per row).
bool int16_gemv_supports(const PackedMatrix& w);

// The activation codes packed_gemv gives w: 8 bits for int4 weights while int8 activations are enabled
// (the default; LOWBIT_GEMV_INT16=1 in the environment turns them off at start), else 16.
int activation_code_bits(const PackedMatrix& w);
void set_int8_activations_enabled(bool enabled);
bool int8_activations_enabled();

// Quantizes m rows of x (K = w.cols columns) for w's code layout to codes of `bits` (0:
// activation_code_bits(w)); on AVX2 CPUs with vector code that gives the scalar _ref's result bit for bit
// (vcvtps2dq rounds half to even, as the reference does).
void quantize_activation_codes(const float* x, int64_t m, const PackedMatrix& w, ActivationCodes& out,
                               int bits = 0);
void quantize_activation_codes_ref(const float* x, int64_t m, const PackedMatrix& w, ActivationCodes& out,
                                   int bits = 0);
// The same layout from codes that are integers already, one scale per row (W8A8's int8 activation codes):
// the int16 kernels then compute int8_linear's product, with exact integer sums per chunk.
void int16_activations_from_codes(const int16_t* codes, const float* row_scales, int64_t m,
                                  const PackedMatrix& w, ActivationCodes& out);
// The values the int16 kernels multiply: code * scale, [m][K] in column order.
std::vector<float> activation_code_values(const ActivationCodes& x, const PackedMatrix& w);

// y[i][n] for weight rows [n_begin, n_end) and every x row: sum_g s_g sum_b a_b sum_k c xq - sum_g zt_g
// group_sum_g (+ bias). Needs have_avx2_fma() and int16_gemv_supports(w).
void int16_gemv_rows(const ActivationCodes& x, const PackedMatrix& w, const float* bias, float* y,
                     int64_t n_begin, int64_t n_end);

}  // namespace lowbit::kernels

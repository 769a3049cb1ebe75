// Kernels for quantized weights kept in their stored (packed) form: every product reads the int4 / int8 /
// fp8 codes and dequantizes them in registers, so a decode step streams 1/4 (int4) or 1/2 (8-bit) of the
// bytes of a bf16 matrix and no fp32 copy of a weight matrix ever exists.
//
// A PackedMatrix is the stored layout, used in place (the checkpoint's mmap):
//   Int4   pack-quantized int32 words, 8 codes per word, code k of a row at bits 4 * (k % 8) of word k / 8,
//          stored as q + 8 (quant/pack.h);
//   UInt8  pack-quantized 8-bit words: little-endian, so simply one byte q + 128 per code;
//   Int8   int-quantized int8 codes q;
//   E4M3 / E5M2  float8 codes.
// Every kernel uses the same per-element value
//   w[n][k] = c(k) * scale[n][g] - zero_term[n][g],   g = k / group_size,
// where c is the code as stored (unsigned nibble, unsigned byte, signed byte, or the fp8 value; for E4M3 the
// value / 256, see kernels_packed_hwy.cc) and the zero term folds the storage offset and the zero point:
// (8 + zp) * s for Int4, (128 + zp) * s for UInt8, zp * s for Int8. packed_linear.cc builds these from the
// checkpoint's scales (fp32, owned) at load. The sum over k then splits into sum_g s_g * sum_k c x (the
// inner loop: decode, scale, fused multiply-add) minus sum_g zero_term_g * sum_{k in g} x (per row, cheap).
//
// Products (parallel over output rows on the global pool, like kernels::linear):
//   packed_gemv        m = 1 .. few: streams the codes once per call, up to 4 x rows per weight load; for
//                      int4 / 8-bit integer codes on AVX2 CPUs with x rounded to int16 codes per 32 columns,
//                      or, against int4 codes, to int8 codes per 8 columns (kernels_packed_int16.h: exact
//                      integer products; 2^-16 or 2^-8 of the block maximum);
//   packed_tiled_sgemm prefill: dequantizes a tile of rows into a small per-thread fp32 buffer, then the
//                      tile times x with single-threaded OpenBLAS sgemm (same policy as kernels_linear.cc);
//   int8_linear        W8A8: int8 activation codes (per token or per tensor) times int8 weight codes with
//                      integer multiply-adds (AMX-INT8 tiles or AVX-512 VNNI; on AVX2 int16 pairs into int32
//                      with vpmaddwd, blocked for many x rows, kernels_packed_w8a8_avx2.h; else Highway
//                      ReorderWidenMulAccumulate), rescaled per token and output channel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "util/aligned_vector.h"

namespace lowbit::kernels {

enum class Codes { Int4, UInt8, Int8, E4M3, E5M2 };

struct PackedMatrix {
  Codes codes = Codes::Int8;
  const void* data = nullptr;  // row n starts at data + n * row_bytes
  int64_t rows = 0, cols = 0;
  int64_t row_bytes = 0;
  int64_t group_size = 0;         // columns sharing one scale (== cols: one scale per row)
  const float* scales = nullptr;  // [rows][groups()], followed by at least 16 readable floats
  // The zero term z of each cell: zero_terms[cell] ([rows][groups()]) when given, else zero_offset * s.
  // Symmetric codes stored with an offset (int4: 8, uint8: 128) use zero_offset, so the runtime neither
  // holds nor streams a second float per cell (3.1 of the 56.3 MB a W4A16 g128 + lm_head decode step read).
  const float* zero_terms = nullptr;
  float zero_offset = 0.0f;
  // Int8 / UInt8 only, optional: sum over k of each row's signed codes q (the VNNI W8A8 kernel needs it).
  const int32_t* row_code_sums = nullptr;
  // E4M3 / E5M2 only: round every weight c * s to bf16, as torch dequantizes with bf16 scales. Without it the
  // packed weights are the more precise fp32 products; with fp8 activations downstream (FP8_DYNAMIC), whose
  // coarse grid turns 2^-9 weight differences into code flips, that alone moved perplexity by 0.13 %.
  bool round_to_bf16 = false;
  // E4M3 / E5M2: some code is NaN or infinite (has_nonfinite_codes). The SIMD decoders read fp8 codes
  // without special values (E4M3's NaN as 480; E5M2's as large finite numbers where fp16 is widened in
  // software), so such a matrix takes the scalar definition, packed_linear_ref, whose non-finite weights
  // poison their rows as in torch. Set it wherever codes may hold them (PackedLinear does).
  bool nonfinite_codes = false;
  // E4M3 only, optional: one bit per 32 codes of a row (bit q % 64 of word q / 64 of the row's
  // fp8_chunk_words(cols) words), set where those codes include one with a zero exponent field (zero or
  // subnormal). The table decoder (kernels_packed_fp8.h) runs a faster decoder on the other chunks; without
  // the bits it decodes every chunk the slower way. fp8_zero_exponent_chunks() computes them.
  const uint64_t* zero_exponent_chunks = nullptr;
  int64_t groups() const { return (cols + group_size - 1) / group_size; }
  bool has_zero_terms() const { return zero_terms != nullptr || zero_offset != 0.0f; }
  float zero_term(int64_t cell) const { return zero_terms ? zero_terms[cell] : zero_offset * scales[cell]; }
};

// Whether any fp8 code of w is a NaN or an infinity (false for integer codes); for nonfinite_codes.
bool has_nonfinite_codes(const PackedMatrix& w);
// c(k) of row n as a float (the scalar definition the SIMD decoders are tested against).
float packed_code(const PackedMatrix& w, int64_t n, int64_t k);
// w[n][k] as defined above.
float packed_weight(const PackedMatrix& w, int64_t n, int64_t k);

// y[m x N] = x[m x K] * W^T (+ bias). packed_linear picks packed_gemv below packed_gemm_min_rows(), else
// packed_tiled_sgemm.
void packed_linear(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y);
// Auto: the int16-activation kernels when packed_gemv_uses_int16(w), the E4M3 table decoder when
// packed_gemv_uses_fp8_table(w), else the fp32 decoders (Float).
enum class GemvPath { Auto, Float };
void packed_gemv(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y,
                 GemvPath path = GemvPath::Auto);
// Whether packed_gemv's Auto path rounds x to integer codes for w (int16, or int8 for int4 weights:
// activation_code_bits): the CPU has AVX2 + FMA, w has integer codes in whole blocks of 32 columns, and the
// int16 kernels are enabled.
bool packed_gemv_uses_int16(const PackedMatrix& w);
// Whether packed_gemv's Auto path decodes w's E4M3 codes by table (kernels_packed_fp8.h): bf16-rounded
// weights, groups of whole 32-column chunks, AVX2 + FMA, and the switch below on. Its outputs equal the fp32
// decoder's on its AVX2 target bit for bit.
bool packed_gemv_uses_fp8_table(const PackedMatrix& w);
// Process-wide switch of the int16 kernels and the fp8 table decoder (on by default; LOWBIT_GEMV_FP32=1 in
// the environment turns them off at start): the fp32 decoders then serve every packed_gemv, for
// comparisons and tests.
void set_int16_gemv_enabled(bool enabled);
void packed_tiled_sgemm(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y);
int64_t packed_gemm_min_rows(Codes codes);

// One of several products of the same x: y = x W^T (+ bias).
struct PackedProduct {
  const PackedMatrix* w;
  const float* bias;
  float* y;
};
// The products of one x (q/k/v, gate/up). At decode sizes, when every W takes the int16 path with the same
// activation layout (equal codes, columns and group size), x is rounded to int16 once and all their rows run
// in one parallel region: one hand-off to the pool instead of one per matrix. Otherwise one packed_linear
// each. Same results as packed_linear.
void packed_linear_shared_input(const float* x, int64_t m, std::span<const PackedProduct> products);
// Scalar reference (fp32 accumulation in k order): what the tests compare the fast paths with.
void packed_linear_ref(const float* x, int64_t m, const PackedMatrix& w, const float* bias, float* y);

// out[rows x K] fp32 = rows [row_begin, row_begin + rows) of W (scalar; the prefill path uses a SIMD twin).
void dequantize_rows(const PackedMatrix& w, int64_t row_begin, int64_t rows, float* out);

// ---- W8A8 -------------------------------------------------------------------------------------------

// Activations quantized to int8 codes: x ~= codes * scale[row] (one scale per row, or the same for all rows
// with per-tensor quantization). Codes are held as int16, the operand width of the integer kernel.
struct Int8Activations {
  int64_t rows = 0, cols = 0;
  std::vector<int16_t> codes;     // [rows][cols]
  std::vector<float> scales;      // [rows]
  std::vector<int32_t> sums;      // [rows]: sum of the row's codes (for the UInt8 storage offset)
  AlignedVector<uint8_t> biased;  // [rows][cols]: codes + 128, the unsigned operand of AVX-512 VNNI and AMX
};
// Fills sums and biased from codes.
void finish_int8_activations(Int8Activations& x);
// W8A8's dynamic int8 codes of one row of K values, compressed-tensors' definition (quant/quantizer_ref.h):
// scale = max|x| / 127.5 (2^-23 when that is 0), or tensor_scale when it is > 0; code =
// round_half_even(clamp(x / scale, -128, 127)). Writes the scale, the codes and the biased bytes (code + 128)
// and returns the sum of the codes. Vectorized on AVX2 CPUs, bit for bit the scalar _ref (rows holding a NaN
// or an infinity go to the _ref).
int32_t quantize_int8_row(const float* x, int64_t K, float tensor_scale, float* scale, int16_t* codes,
                          uint8_t* biased);
int32_t quantize_int8_row_ref(const float* x, int64_t K, float tensor_scale, float* scale, int16_t* codes,
                              uint8_t* biased);

// y[i][n] = scale_x[i] * scale_w[n] * sum_k qx[i][k] * q[n][k] (+ bias). W must be Int8 or UInt8 with one
// scale per row (group_size == cols) and no zero terms besides UInt8's storage offset (symmetric).
// Decode sizes (int8_linear_uses_int16) run on the int16 kernels of packed_gemv (kernels_packed_int16.h:
// exact integer sums per 64-column chunk). Else, from 5 x rows on CPUs with AMX-INT8, on its tiles
// (kernels_packed_amx.h); on CPUs with AVX-512 VNNI, when w.row_code_sums and x.biased are present, on
// vpdpbusd (u8 x s8, 4 products per 32-bit lane and instruction: sum (qx + 128) q - 128 sum q); on AVX2 on
// the blocked vpmaddwd kernel (kernels_packed_w8a8_avx2.h); otherwise (or with allow_fast false) on the
// Highway int16 multiply-add kernel. AMX, VNNI, the blocked AVX2 kernel and Highway sum exactly in integers
// and equal int8_linear_ref bit for bit.
void int8_linear(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                 bool allow_fast = true);
// Whether int8_linear (allow_fast) gives `rows` x rows times w to the int16 gemv kernels, whose results equal
// int8_linear_ref within fp32 rounding (not bit for bit): decode sizes on AVX2 CPUs, up to 4 x rows where
// the CPU has AVX-512 VNNI.
bool int8_linear_uses_int16(int64_t rows, const PackedMatrix& w);
// Whether this CPU runs the VNNI kernel.
bool have_avx512_vnni();
void int8_linear_ref(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y);
// y[i][n + r] = dot[i][r] * scale_x[i] * scale_w[n + r] (+ bias) for x rows [i0, i0 + rows) and r < count,
// from exact dots sum_k qx q over signed codes q (dots[(i - i0) * stride + r]). Every int8_linear kernel and
// the reference rescale through this one function, compiled for the baseline so that no fused multiply-add
// contracts it differently in one of them: that is what keeps them equal bit for bit.
void int8_rescale(const Int8Activations& x, const PackedMatrix& w, const float* bias, const int32_t* dots,
                  int64_t stride, int64_t i0, int64_t rows, int64_t n, int64_t count, float* y);

}  // namespace lowbit::kernels

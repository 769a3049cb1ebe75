// Fast quantizers with the same contract and the same results, bit for bit, as the scalar references in
// quant/quantizer_ref.h (tests/quant/quantizer_test.cc checks codes, scales, zero points and dequantized
// values for every strategy, bit width and ComputeDType). They are branch-free loops that the compiler
// vectorizes (true division, round-half-even via the 1.5 * 2^23 trick on clamped values, fp8 encoding by
// integer bit manipulation) and run in parallel over rows on the global thread pool.
#pragma once

#include <cstdint>

#include "quant/quant_args.h"
#include "quant/quantizer_ref.h"

namespace lowbit {

// Min-max (RTN) quantization; see quantize_int_ref / quantize_fp8_ref.
void quantize_int(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, int8_t* codes,
                  float* scales, int8_t* zero_points, ComputeDType dt = ComputeDType::F32);
void quantize_fp8(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, uint8_t* codes,
                  float* scales, ComputeDType dt = ComputeDType::F32);

// Codes for given qparams (zero_points null means zero).
void quantize_int_with_qparams(const float* w, int64_t rows, int64_t cols, const QuantArgs& args,
                               const float* scales, const int8_t* zero_points, int8_t* codes,
                               ComputeDType dt = ComputeDType::F32);

void dequantize_int(const int8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                    const float* scales, const int8_t* zero_points, float* out,
                    ComputeDType dt = ComputeDType::F32);
void dequantize_fp8(const uint8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                    const float* scales, float* out, ComputeDType dt = ComputeDType::F32);

// out = dequantize(quantize(x)) with static qparams (any type, tensor / channel / group / token grid).
void fake_quantize(const float* x, int64_t rows, int64_t cols, const QuantArgs& args, const float* scales,
                   const int8_t* zero_points, float* out, ComputeDType dt = ComputeDType::F32);

// Dynamic activation quantize-dequantize: qparams from the data itself per token (row) or per tensor, as
// args.strategy says, then fake quantization (what a W8A8 / FP8_DYNAMIC forward pass applies to inputs).
// x and out may alias.
void fake_quantize_dynamic(const float* x, int64_t rows, int64_t cols, const QuantArgs& args, float* out,
                           ComputeDType dt = ComputeDType::F32);

// fp8 encoding of a value already clamped to the format's range (or NaN), round to nearest even: equal to
// io/dtype.h f32_to_e4m3 / f32_to_e5m2 on that domain, but written to vectorize.
uint8_t encode_e4m3_clamped(float v);
uint8_t encode_e5m2_clamped(float v);
// The value of that code, e4m3_to_f32(encode_e4m3_clamped(v)) bit for bit (NaN included), computed without
// the code: what fake quantization needs.
float round_e4m3_clamped(float v);
float round_e5m2_clamped(float v);

}  // namespace lowbit

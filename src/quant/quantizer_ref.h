// Scalar reference quantizers: the definition that every fast quantizer (CPU SIMD, CUDA) is tested against.
// They reproduce compressed-tensors 0.20 exactly (quantization/utils/helpers.py calculate_qparams,
// quantization/lifecycle/forward_helpers.py _quantize / _dequantize):
//
//   qparams  min = min(min, 0), max = max(max, 0)                  (0 must be representable)
//            symmetric:  scale = max(|min|, |max|) / ((qmax - qmin) / 2),  zero_point = 0
//                        (int8: amax / 127.5, int4: amax / 7.5, fp8 e4m3: amax / 448)
//            asymmetric: scale = (max - min) / (qmax - qmin),
//                        zero_point = round_half_even(clamp(qmin - min / scale, qmin, qmax))
//            scale == 0 becomes the machine epsilon of the scale dtype (2^-23 fp32, 2^-7 bf16)
//   quantize q = clamp(x / scale + zero_point, qmin, qmax), then round half to even (int) or
//            round-to-nearest-even conversion to e4m3fn / e5m2 (float); x / scale is a true division
//   dequant  x = (q - zero_point) * scale
//
// Arithmetic precision: torch evaluates each step in the dtype of its tensors. ComputeDType::F32 is fp32
// weights and scales; ComputeDType::BF16 reproduces a bf16 model (llm-compressor keeps scales in the weight
// dtype), where every intermediate result (x / scale, + zero_point, the scale itself, ...) is rounded to
// bf16. Inputs are rounded to bf16 first in that mode. Scales are always returned as float (holding bf16
// values in BF16 mode).
//
// Codes: int codes are int8 in [qmin, qmax]; float codes are the fp8 bit patterns (uint8).
#pragma once

#include <cstdint>

#include "quant/quant_args.h"
#include "quant/scale_grid.h"

namespace lowbit {

enum class ComputeDType { F32, BF16 };

// Rounds to the nearest bf16 value (ties to even), returned as float; NaN stays NaN.
float round_to_bf16(float v);

// Min-max observation of x (rows x cols) per scale cell of `grid`: min_vals/max_vals have grid.size()
// entries. NaN inputs propagate (as torch.amin/amax do).
void observe_minmax_ref(const float* x, const ScaleGrid& grid, float* min_vals, float* max_vals);

// compressed-tensors calculate_qparams for n cells. zero_points may be null when args.symmetric.
void calculate_qparams_ref(const float* min_vals, const float* max_vals, int64_t n, const QuantArgs& args,
                           ComputeDType dt, float* scales, int8_t* zero_points);

// ---- integer codes (args.type == Int, 2..8 bits) ----------------------------------------------------

// Round-to-nearest quantization of a rows x cols matrix: min-max qparams per cell of the grid implied by
// `args` (tensor, channel, group, token), then codes. scales (and zero_points, null allowed when
// symmetric) have make_scale_grid(args, rows, cols).size() entries; codes has rows * cols.
void quantize_int_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, int8_t* codes,
                      float* scales, int8_t* zero_points, ComputeDType dt = ComputeDType::F32);

// Codes for given qparams (static quantization, GPTQ, ...). zero_points null means all zero.
void quantize_int_with_qparams_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args,
                                   const float* scales, const int8_t* zero_points, int8_t* codes,
                                   ComputeDType dt = ComputeDType::F32);

void dequantize_int_ref(const int8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                        const float* scales, const int8_t* zero_points, float* out,
                        ComputeDType dt = ComputeDType::F32);

// ---- 8-bit float codes (args.type == Float, num_bits == 8; e4m3fn or e5m2 by args.float_format) -------

void quantize_fp8_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args, uint8_t* codes,
                      float* scales, ComputeDType dt = ComputeDType::F32);
void quantize_fp8_with_scales_ref(const float* w, int64_t rows, int64_t cols, const QuantArgs& args,
                                  const float* scales, uint8_t* codes, ComputeDType dt = ComputeDType::F32);
void dequantize_fp8_ref(const uint8_t* codes, int64_t rows, int64_t cols, const QuantArgs& args,
                        const float* scales, float* out, ComputeDType dt = ComputeDType::F32);

// ---- quantize-dequantize (what a quantized forward pass sees) ----------------------------------------

// out = dequantize(quantize(x)) with the given qparams (any type); zero_points null means zero.
void fake_quantize_ref(const float* x, int64_t rows, int64_t cols, const QuantArgs& args, const float* scales,
                       const int8_t* zero_points, float* out, ComputeDType dt = ComputeDType::F32);

}  // namespace lowbit

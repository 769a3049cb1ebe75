// Element types of stored tensors (the safetensors dtype strings) and scalar conversions to/from fp32.
// The scalar conversions are the reference that vectorized converters are tested against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, F8_E5M2, I8, U8, I16, I32, I64, BOOL, F64 };

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors name: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; returns false when unknown.
bool parse_dtype(std::string_view name, DType* out);

// Scalar reference conversions. fp8 e4m3 is the "fn" variant (no infinities, 0x7f/0xff are NaN, max 448);
// float -> e4m3 saturates to +-448 and rounds to nearest even. e5m2 follows IEEE (max 57344, has inf).
float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float v);  // round to nearest even, NaN stays NaN
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);  // round to nearest even
float e4m3_to_f32(uint8_t v);
uint8_t f32_to_e4m3(float v);  // saturating, round to nearest even
float e5m2_to_f32(uint8_t v);
uint8_t f32_to_e5m2(float v);  // saturating to +-57344, round to nearest even

// Converts `n` elements of type `src_type` at `src` to fp32 (floating and integer types).
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);

}  // namespace lowbit

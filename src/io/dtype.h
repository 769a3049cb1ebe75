// Element types of stored tensors (the safetensors dtype strings) and scalar conversions to/from fp32.
// The scalar conversions are the reference that vectorized converters are tested against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace lowbit {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, F8_E5M2, I8, U8, I16, I32, I64, BOOL, F64 };

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors name: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; returns false when unknown (other safetensors dtypes such as U16 or
// F8_E8M0 are unknown to lowbit).
bool parse_dtype(std::string_view name, DType* out);
// True for F32, F16, BF16, F8_E4M3, F8_E5M2 and F64.
bool is_floating(DType t);

// The byte size of a tensor of `shape`: false when a dimension is negative or when the element count (also
// every partial product, so that TensorView::numel() cannot overflow) or the byte size exceeds INT64_MAX.
bool tensor_nbytes(DType t, std::span<const int64_t> shape, uint64_t* nbytes);

// Scalar reference conversions, bit-exact with torch on CPU for every non-NaN input (tests/io/dtype_test.cc
// checks all codes and a large set of float32 inputs against tables made by
// tools/reference/dtype_fixtures.py). fp8 e4m3 is the "fn" variant (no infinities, 0x7f/0xff are NaN, max
// 448); float -> e4m3 saturates to +-448 (infinities included) and rounds to nearest even, which equals
// torch's x.clamp(-448, 448).to(e4m3fn). e5m2 follows IEEE when decoding (max 57344, has inf); encoding
// saturates to +-57344 like compressed-tensors. NaN in gives a quiet NaN out with its sign (fp8: 0x7f | sign,
// as torch does).
// bf16 <-> fp32 are inline: calibration without AMX rounds every activation through them, and the loops
// vectorize. Rounding to nearest even is an integer add on the bits: the carry of a rounded-up mantissa
// runs into the exponent, which gives the right bf16 for normals, subnormals, overflow to infinity and
// infinity itself (bf16 has fp32's exponent range). NaN keeps sign and top payload bits, forced quiet.
inline float bf16_to_f32(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}
inline uint16_t f32_to_bf16(float v) {  // round to nearest even, NaN stays NaN
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);  // round to nearest even, beyond 65504 (from 65520) to inf as torch does
float e4m3_to_f32(uint8_t v);
uint8_t f32_to_e4m3(float v);  // saturating, round to nearest even
float e5m2_to_f32(uint8_t v);
uint8_t f32_to_e5m2(float v);  // saturating to +-57344, round to nearest even

// Converts `n` elements of type `src_type` at `src` (any alignment) to fp32: floating types as above,
// integers rounded to nearest (as static_cast / torch do), BOOL as 0 or 1 (any non-zero byte is true).
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);

}  // namespace lowbit

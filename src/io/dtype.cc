#include "io/dtype.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace lowbit {

namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
};

// Indexed by the enum value; the order must follow the enum declaration.
constexpr std::array<DTypeInfo, 12> kDTypes = {{
    {DType::F32, "F32", 4},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},
    {DType::I16, "I16", 2},
    {DType::I32, "I32", 4},
    {DType::I64, "I64", 8},
    {DType::BOOL, "BOOL", 1},
    {DType::F64, "F64", 8},
}};

const DTypeInfo& info(DType t) {
  const auto index = static_cast<size_t>(t);
  if (index >= kDTypes.size()) fail("invalid dtype value {}", index);
  return kDTypes[index];
}

uint32_t bits_of(float f) {
  return std::bit_cast<uint32_t>(f);
}
float float_of(uint32_t bits) {
  return std::bit_cast<float>(bits);
}

constexpr uint32_t kF32Sign = 0x80000000u;
constexpr uint32_t kF32Abs = 0x7fffffffu;
constexpr uint32_t kF32Inf = 0x7f800000u;
constexpr uint32_t kF32QuietNaN = 0x7fc00000u;

// Rounds a finite, non-negative float32 (given as bits) to a binary format with `exp_bits` exponent bits,
// `man_bits` mantissa bits and bias 2^(exp_bits-1)-1, round-to-nearest-even, and returns the code without
// its sign bit. The format is assumed to have subnormals. On overflow the result is the first code past the
// largest finite one or beyond; callers saturate or map to infinity as their format requires.
uint32_t round_magnitude(uint32_t abs_bits, int exp_bits, int man_bits) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint32_t exp_field = abs_bits >> 23;
  const uint32_t mantissa = abs_bits & 0x7fffffu;
  // Unbiased exponent; float32 subnormals share the exponent of the smallest normal, without implicit one.
  const int exp = static_cast<int>(exp_field == 0 ? 1 : exp_field) - 127;
  uint32_t significand;
  int shift;  // low bits dropped by the rounding
  if (exp_field != 0 && exp >= 1 - bias) {
    // Normal in the target: keep the biased exponent above the mantissa so that a rounding carry out of the
    // mantissa increments the exponent, which is exactly the next representable value.
    significand = (static_cast<uint32_t>(exp + bias) << 23) | mantissa;
    shift = 23 - man_bits;
  } else {
    // Subnormal in the target: count units of 2^(1 - bias - man_bits).
    significand = exp_field == 0 ? mantissa : (mantissa | 0x800000u);
    shift = 23 - man_bits + (1 - bias - exp);
    if (shift > 24) return 0;  // below half of the smallest subnormal (significand < 2^24)
  }
  uint32_t kept = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (kept & 1u))) ++kept;
  return kept;
}

// Decodes a code (without sign) of a format with subnormals and `exp_bits`/`man_bits` as above.
// `ieee_specials`: the all-ones exponent means inf/NaN (f16, e5m2); otherwise only `nan_code` is NaN
// (e4m3fn, whose all-ones exponent holds ordinary values).
float decode_magnitude(uint32_t code, int exp_bits, int man_bits, bool ieee_specials, uint32_t nan_code) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint32_t exp_field = code >> man_bits;
  const uint32_t mantissa = code & ((1u << man_bits) - 1);
  const uint32_t max_exp = (1u << exp_bits) - 1;
  if (ieee_specials && exp_field == max_exp) {
    return float_of(mantissa == 0 ? kF32Inf : (kF32QuietNaN | (mantissa << (23 - man_bits))));
  }
  if (!ieee_specials && code == nan_code) return float_of(kF32QuietNaN | (mantissa << (23 - man_bits)));
  if (exp_field == 0) {
    // mantissa * 2^(1 - bias - man_bits): both factors and the product are exact in float32.
    const float unit = float_of(static_cast<uint32_t>(127 + 1 - bias - man_bits) << 23);
    return static_cast<float>(mantissa) * unit;
  }
  return float_of((static_cast<uint32_t>(static_cast<int>(exp_field) - bias + 127) << 23) |
                  (mantissa << (23 - man_bits)));
}

float with_sign(float magnitude, bool negative) {
  return negative ? float_of(bits_of(magnitude) | kF32Sign) : magnitude;
}

bool is_nan_bits(uint32_t bits) {
  return (bits & kF32Abs) > kF32Inf;
}

// 256-entry decode tables for the bulk converters.
template <float (*decode)(uint8_t)>
const std::array<float, 256>& fp8_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = decode(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the source may be unaligned (any safetensors header length is legal)
  return v;
}

template <typename T, typename F>
void convert_each(const void* src, float* dst, size_t n, F to_float) {
  const auto* p = static_cast<const std::byte*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = to_float(load<T>(p + i * sizeof(T)));
}

}  // namespace

size_t dtype_size(DType t) {
  return info(t).size;
}

std::string_view dtype_name(DType t) {
  return info(t).name;
}

bool parse_dtype(std::string_view name, DType* out) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.name == name) {
      if (out != nullptr) *out = d.type;
      return true;
    }
  }
  return false;
}

bool tensor_nbytes(DType t, std::span<const int64_t> shape, uint64_t* nbytes) {
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    const auto dim = static_cast<uint64_t>(d);
    if (dim != 0 && numel > kMax / dim) return false;
    numel *= dim;
  }
  const uint64_t size = dtype_size(t);
  if (numel > kMax / size) return false;
  *nbytes = numel * size;
  return true;
}

bool is_floating(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F8_E4M3:
    case DType::F8_E5M2:
    case DType::F64:
      return true;
    default:
      return false;
  }
}

float f16_to_f32(uint16_t v) {
  return with_sign(decode_magnitude(v & 0x7fffu, 5, 10, true, 0), (v & 0x8000u) != 0);
}

uint16_t f32_to_f16(float v) {
  const uint32_t bits = bits_of(v);
  const uint32_t sign = (bits & kF32Sign) >> 16;
  // NaN: quiet, sign and top payload bits kept (what x86 F16C, and hence torch on CPU, produces).
  if (is_nan_bits(bits)) return static_cast<uint16_t>(sign | 0x7e00u | ((bits & 0x7fffffu) >> 13));
  const uint32_t magnitude = round_magnitude(bits & kF32Abs, 5, 10);
  return static_cast<uint16_t>(sign | (magnitude >= 0x7c00u ? 0x7c00u : magnitude));  // overflow -> inf
}

float e4m3_to_f32(uint8_t v) {
  return with_sign(decode_magnitude(v & 0x7fu, 4, 3, false, 0x7f), (v & 0x80u) != 0);
}

uint8_t f32_to_e4m3(float v) {
  const uint32_t bits = bits_of(v);
  const uint32_t sign = (bits & kF32Sign) >> 24;
  if (is_nan_bits(bits)) return static_cast<uint8_t>(sign | 0x7fu);
  // Saturate (like compressed-tensors' clamp before the cast): |v| > 448, infinities included, -> 448.
  if (bits_of(std::fabs(v)) > bits_of(448.0f)) return static_cast<uint8_t>(sign | 0x7eu);
  return static_cast<uint8_t>(sign | round_magnitude(bits & kF32Abs, 4, 3));
}

float e5m2_to_f32(uint8_t v) {
  return with_sign(decode_magnitude(v & 0x7fu, 5, 2, true, 0), (v & 0x80u) != 0);
}

uint8_t f32_to_e5m2(float v) {
  const uint32_t bits = bits_of(v);
  const uint32_t sign = (bits & kF32Sign) >> 24;
  if (is_nan_bits(bits)) return static_cast<uint8_t>(sign | 0x7fu);
  if (bits_of(std::fabs(v)) > bits_of(57344.0f)) return static_cast<uint8_t>(sign | 0x7bu);  // saturate
  return static_cast<uint8_t>(sign | round_magnitude(bits & kF32Abs, 5, 2));
}

void convert_to_f32(DType src_type, const void* src, float* dst, size_t n) {
  if (n == 0) return;
  switch (src_type) {
    case DType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::F16:
      return convert_each<uint16_t>(src, dst, n, f16_to_f32);
    case DType::BF16:
      return convert_each<uint16_t>(src, dst, n, bf16_to_f32);
    case DType::F8_E4M3: {
      const auto& table = fp8_table<e4m3_to_f32>();
      return convert_each<uint8_t>(src, dst, n, [&](uint8_t v) { return table[v]; });
    }
    case DType::F8_E5M2: {
      const auto& table = fp8_table<e5m2_to_f32>();
      return convert_each<uint8_t>(src, dst, n, [&](uint8_t v) { return table[v]; });
    }
    case DType::I8:
      return convert_each<int8_t>(src, dst, n, [](int8_t v) { return static_cast<float>(v); });
    case DType::U8:
      return convert_each<uint8_t>(src, dst, n, [](uint8_t v) { return static_cast<float>(v); });
    case DType::I16:
      return convert_each<int16_t>(src, dst, n, [](int16_t v) { return static_cast<float>(v); });
    case DType::I32:
      return convert_each<int32_t>(src, dst, n, [](int32_t v) { return static_cast<float>(v); });
    case DType::I64:
      return convert_each<int64_t>(src, dst, n, [](int64_t v) { return static_cast<float>(v); });
    case DType::BOOL:
      return convert_each<uint8_t>(src, dst, n, [](uint8_t v) { return v != 0 ? 1.0f : 0.0f; });
    case DType::F64:
      return convert_each<double>(src, dst, n, [](double v) { return static_cast<float>(v); });
  }
  fail("convert_to_f32: invalid dtype value {}", static_cast<int>(src_type));
}

}  // namespace lowbit

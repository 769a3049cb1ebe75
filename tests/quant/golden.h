// Loading the JSON goldens written by tools/reference/quant_golden.py (tests only).
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/files.h"

namespace lowbit::testing {

inline nlohmann::json load_quant_golden(const std::string& name) {
  const std::filesystem::path path = std::filesystem::path(LOWBIT_FIXTURES_DIR) / "quant" / name;
  return nlohmann::json::parse(read_file(path));
}

// Decodes the hex of little-endian float32 bytes (8 hex digits per value).
inline std::vector<float> f32_from_hex(const std::string& hex) {
  std::vector<float> out(hex.size() / 8);
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) {
      const uint32_t byte = static_cast<uint32_t>(std::stoul(hex.substr(i * 8 + b * 2, 2), nullptr, 16));
      bits |= byte << (8 * b);
    }
    out[i] = std::bit_cast<float>(bits);
  }
  return out;
}

template <typename T>
std::vector<T> ints(const nlohmann::json& j) {
  std::vector<T> out;
  for (const auto& v : j) out.push_back(static_cast<T>(v.get<int64_t>()));
  return out;
}

// Bitwise float equality that treats both NaN patterns alike and +0 / -0 as different.
inline bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b) || (a != a && b != b);
}

}  // namespace lowbit::testing

// AlignedVector keeps its storage on 64-byte boundaries through growth, for every element size.
#include "util/aligned_vector.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace lowbit {
namespace {

template <class T>
bool on_cache_line(const AlignedVector<T>& v) {
  return reinterpret_cast<std::uintptr_t>(v.data()) % 64 == 0;
}

TEST(AlignedVector, StorageStartsOnACacheLineAtEverySize) {
  AlignedVector<uint8_t> bytes;
  AlignedVector<uint16_t> halves;
  AlignedVector<float> floats;
  for (size_t n : {1, 3, 17, 64, 1000, 4097, 300000, 5000000}) {
    bytes.resize(n, 7);
    halves.resize(n);
    floats.assign(n, 1.5f);
    EXPECT_TRUE(on_cache_line(bytes)) << n;
    EXPECT_TRUE(on_cache_line(halves)) << n;
    EXPECT_TRUE(on_cache_line(floats)) << n;
    EXPECT_EQ(bytes.front(), 7);
    EXPECT_EQ(floats.back(), 1.5f);
    AlignedVector<float> copy = floats;  // copies allocate their own aligned storage
    EXPECT_TRUE(on_cache_line(copy));
    EXPECT_EQ(copy, floats);
  }
}

}  // namespace
}  // namespace lowbit

#include "quant/pack.h"

#include <gtest/gtest.h>

#include <random>

#include "golden.h"
#include "util/error.h"

namespace lowbit {
namespace {

std::vector<int8_t> random_codes(int64_t n, int bits, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-(1 << (bits - 1)), (1 << (bits - 1)) - 1);
  std::vector<int8_t> q(static_cast<size_t>(n));
  for (auto& v : q) v = static_cast<int8_t>(dist(rng));
  return q;
}

TEST(Pack, WordsPerRow) {
  EXPECT_EQ(packed_words(7, 4), 1);
  EXPECT_EQ(packed_words(8, 4), 1);
  EXPECT_EQ(packed_words(9, 4), 2);
  EXPECT_EQ(packed_words(4096, 4), 512);
  EXPECT_EQ(packed_words(4096, 8), 1024);
  EXPECT_EQ(packed_words(32, 3), 3);  // dense: 32 codes of 3 bits in exactly 3 words
  EXPECT_EQ(packed_words(11, 3), 2);
  EXPECT_EQ(packed_words(0, 2), 0);
}

TEST(Pack, KnownLayoutLsbFirst) {
  // int4 codes -8..7 are offset by 8: code j sits in bits [4j, 4j+4) of the word.
  const std::vector<int8_t> q = {-8, -7, 0, 7, 1, 2, 3, -1};
  const auto packed = pack_int_rows(q.data(), 1, 8, 4);
  ASSERT_EQ(packed.size(), 1u);
  EXPECT_EQ(static_cast<uint32_t>(packed[0]), 0x7BA9F810u);
  // A partial last word has zero padding.
  const auto partial = pack_int_rows(q.data(), 1, 3, 4);
  EXPECT_EQ(static_cast<uint32_t>(partial[0]), 0x810u);
}

TEST(Pack, RoundTripRowsAndCols) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t rows : {1, 3, 17}) {
      for (int64_t cols : {1, 5, 31, 33, 67, 128}) {
        const auto q = random_codes(rows * cols, bits, static_cast<uint32_t>(bits * 1000 + rows * 10 + cols));
        const auto pr = pack_int_rows(q.data(), rows, cols, bits);
        ASSERT_EQ(static_cast<int64_t>(pr.size()), rows * packed_words(cols, bits));
        std::vector<int8_t> back(q.size());
        unpack_int_rows(pr.data(), rows, cols, bits, back.data());
        ASSERT_EQ(back, q) << bits << " bits, rows " << rows << " cols " << cols;

        const auto pc = pack_int_cols(q.data(), rows, cols, bits);
        ASSERT_EQ(static_cast<int64_t>(pc.size()), packed_words(rows, bits) * cols);
        std::fill(back.begin(), back.end(), 0);
        unpack_int_cols(pc.data(), rows, cols, bits, back.data());
        ASSERT_EQ(back, q) << bits << " bits (cols), rows " << rows << " cols " << cols;
      }
    }
  }
}

TEST(Pack, MatchesCompressedTensorsGolden) {
  const auto golden = testing::load_quant_golden("pack_golden.json");
  int checked = 0;
  for (const auto& c : golden["cases"]) {
    const int bits = c["bits"];
    const int64_t rows = c["rows"];
    const int64_t cols = c["cols"];
    const int dim = c["packed_dim"];
    const auto q = testing::ints<int8_t>(c["codes"]);
    const auto expected = testing::ints<int32_t>(c["packed"]);
    const auto packed =
        dim == 1 ? pack_int_rows(q.data(), rows, cols, bits) : pack_int_cols(q.data(), rows, cols, bits);
    const std::vector<int64_t> shape = c["packed_shape"];
    const std::vector<int64_t> our_shape = dim == 1 ? std::vector<int64_t>{rows, packed_words(cols, bits)}
                                                    : std::vector<int64_t>{packed_words(rows, bits), cols};
    EXPECT_EQ(our_shape, shape) << bits << " bits " << rows << "x" << cols << " dim " << dim;
    EXPECT_EQ(packed, expected) << bits << " bits " << rows << "x" << cols << " dim " << dim;
    std::vector<int8_t> back(q.size());
    if (dim == 1) {
      unpack_int_rows(expected.data(), rows, cols, bits, back.data());
    } else {
      unpack_int_cols(expected.data(), rows, cols, bits, back.data());
    }
    EXPECT_EQ(back, q);
    ++checked;
  }
  EXPECT_EQ(checked, 8 * 5 * 2);
}

TEST(Pack, RejectsBadInput) {
  const std::vector<int8_t> q = {8};
  EXPECT_THROW(pack_int_rows(q.data(), 1, 1, 4), Error);  // 8 does not fit in int4
  const std::vector<int8_t> r = {-9};
  EXPECT_THROW(pack_int_cols(r.data(), 1, 1, 4), Error);
  EXPECT_THROW(packed_words(4, 0), Error);
  EXPECT_THROW(packed_words(4, 9), Error);
  EXPECT_THROW(pack_int_rows(q.data(), -1, 1, 8), Error);
}

}  // namespace
}  // namespace lowbit

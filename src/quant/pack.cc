#include "quant/pack.h"

#include "util/error.h"

namespace lowbit {
namespace {

void check_bits(int bits) {
  if (bits < 1 || bits > 8) fail("packing supports 1..8 bits per code, got {}", bits);
}

void check_shape(int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) fail("cannot pack a {}x{} matrix", rows, cols);
}

// Writes the n codes q[0], q[stride], ... as one bit stream into the words out[0], out[out_stride], ...
void pack_stream(const int8_t* q, int64_t stride, int64_t n, int bits, int32_t* out, int64_t out_stride) {
  const int offset = 1 << (bits - 1);
  const uint32_t limit = 1u << bits;
  uint64_t acc = 0;  // pending bits, least significant first
  int filled = 0;
  int64_t word = 0;
  for (int64_t j = 0; j < n; ++j) {
    const int code = q[j * stride];
    const uint32_t u = static_cast<uint32_t>(code + offset);
    if (u >= limit) {
      fail("code {} at position {} does not fit in {} bits (range [{}, {}])", code, j, bits, -offset,
           offset - 1);
    }
    acc |= static_cast<uint64_t>(u) << filled;
    filled += bits;
    if (filled >= 32) {
      out[word++ * out_stride] = static_cast<int32_t>(static_cast<uint32_t>(acc));
      acc >>= 32;
      filled -= 32;
    }
  }
  if (filled > 0) out[word * out_stride] = static_cast<int32_t>(static_cast<uint32_t>(acc));
}

// Inverse of pack_stream.
void unpack_stream(const int32_t* in, int64_t in_stride, int64_t n, int bits, int8_t* q, int64_t stride) {
  const int offset = 1 << (bits - 1);
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int avail = 0;
  int64_t word = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (avail < bits) {
      acc |= static_cast<uint64_t>(static_cast<uint32_t>(in[word++ * in_stride])) << avail;
      avail += 32;
    }
    q[j * stride] = static_cast<int8_t>(static_cast<int>(acc & mask) - offset);
    acc >>= bits;
    avail -= bits;
  }
}

}  // namespace

int64_t packed_words(int64_t cols, int bits) {
  check_bits(bits);
  return (cols * bits + 31) / 32;
}

std::vector<int32_t> pack_int_rows(const int8_t* q, int64_t rows, int64_t cols, int bits) {
  check_shape(rows, cols);
  const int64_t words = packed_words(cols, bits);
  std::vector<int32_t> packed(static_cast<size_t>(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r) pack_stream(q + r * cols, 1, cols, bits, packed.data() + r * words, 1);
  return packed;
}

void unpack_int_rows(const int32_t* packed, int64_t rows, int64_t cols, int bits, int8_t* q) {
  check_shape(rows, cols);
  const int64_t words = packed_words(cols, bits);
  for (int64_t r = 0; r < rows; ++r) unpack_stream(packed + r * words, 1, cols, bits, q + r * cols, 1);
}

std::vector<int32_t> pack_int_cols(const int8_t* q, int64_t rows, int64_t cols, int bits) {
  check_shape(rows, cols);
  const int64_t words = packed_words(rows, bits);
  std::vector<int32_t> packed(static_cast<size_t>(words * cols), 0);
  for (int64_t c = 0; c < cols; ++c) pack_stream(q + c, cols, rows, bits, packed.data() + c, cols);
  return packed;
}

void unpack_int_cols(const int32_t* packed, int64_t rows, int64_t cols, int bits, int8_t* q) {
  check_shape(rows, cols);
  packed_words(rows, bits);  // validates bits
  for (int64_t c = 0; c < cols; ++c) unpack_stream(packed + c, cols, rows, bits, q + c, cols);
}

}  // namespace lowbit

// Bit packing of integer quantization codes in the compressed-tensors "pack-quantized" layout.
// A row of `cols` signed codes of `bits` bits (bits in {2, 4, 8}) is stored as ceil(cols * bits / 32)
// int32 words: the code is offset to unsigned (q + 2^(bits-1)), and code j of the row lands in word
// j / (32 / bits) at bit position bits * (j % (32 / bits)) (least significant bits first). Padding bits of a
// partial last word are zero. `weight_packed` is [N, ceil(K*bits/32)] (packed along the input dimension);
// asymmetric `weight_zero_point` is packed the same way along dimension 0 (pack_int_cols).
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

// Words needed for one row of `cols` codes.
int64_t packed_words(int64_t cols, int bits);

// q: rows x cols codes (row-major), each within [-(2^(bits-1)), 2^(bits-1) - 1]; returns rows x
// packed_words(cols) int32 words. Codes out of range are a programming error (checked, throws).
std::vector<int32_t> pack_int_rows(const int8_t* q, int64_t rows, int64_t cols, int bits);
void unpack_int_rows(const int32_t* packed, int64_t rows, int64_t cols, int bits, int8_t* q);

// Packs along dimension 0: q is rows x cols, the result is packed_words(rows) x cols int32 words (code i of a
// column goes to word i / (32 / bits), as above). Used for zero points.
std::vector<int32_t> pack_int_cols(const int8_t* q, int64_t rows, int64_t cols, int bits);
void unpack_int_cols(const int32_t* packed, int64_t rows, int64_t cols, int bits, int8_t* q);

}  // namespace lowbit

// Bit packing of integer quantization codes in the compressed-tensors "pack-quantized" layout
// (compressed_tensors 0.20 pack_to_int32 / unpack_from_int32).
//
// A row of `cols` signed codes of `bits` bits (1 <= bits <= 8) is one dense little-endian bit stream stored
// in ceil(cols * bits / 32) int32 words: code j is offset to unsigned (q + 2^(bits-1)) and occupies stream
// bits [j * bits, (j + 1) * bits), where stream bit b is bit b % 32 of word b / 32 (least significant bits
// first). For bits in {1, 2, 4, 8} no code straddles a word (word j / (32 / bits), bit bits * (j % (32 /
// bits))); for 3, 5, 6, 7 bits a code may continue in the low bits of the next word (there are no wasted
// bits). Padding bits of a partial last word are zero.
//
// In a checkpoint: `weight_packed` is int32 [N, ceil(K*bits/32)] (packed along the input dimension K,
// pack_int_rows); an asymmetric group/channel `weight_zero_point` (int8 codes [N, groups]) is packed along
// dimension 0, i.e. the output dimension, into int32 [ceil(N*bits/32), groups] (pack_int_cols).
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

// Packs along dimension 0: q is rows x cols, the result is packed_words(rows) x cols int32 words (column c
// is one bit stream of its `rows` codes, stored down column c). Used for zero points.
std::vector<int32_t> pack_int_cols(const int8_t* q, int64_t rows, int64_t cols, int bits);
void unpack_int_cols(const int32_t* packed, int64_t rows, int64_t cols, int bits, int8_t* q);

}  // namespace lowbit

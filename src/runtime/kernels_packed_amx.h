// The W8A8 product on Intel AMX-INT8 tiles (kernels_packed.h int8_linear at prefill sizes).
//
// Each step multiplies 32 x rows by 32 weight rows, 64 columns deep, with four TDPBUSD (or TDPBUUD for
// UInt8 codes): 65,536 multiply-adds, where one AVX-512 VNNI instruction does 64. The activations are the
// biased bytes qx + 128 (A operand, loaded from x.biased as they are); the weights go into the tiles'
// "VNNI" B layout (16 weight rows side by side, four consecutive codes of each per 32-bit lane), built per
// thread for 32 weight rows at a time and then used by every x row. The integer sums are exact; the storage
// offsets come off with the row code sums, and the rescale is int8_rescale's arithmetic in vectors, so the
// results equal int8_linear_ref bit for bit, as the VNNI kernel's do.
#pragma once

#include <cstdint>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels {

// Whether int8_linear may run x times w here: the CPU has AMX-TILE and AMX-INT8, Linux granted the tile
// state, the switch below is on, x carries its biased bytes, w has Int8 or UInt8 codes in rows of exactly
// cols bytes with row_code_sums, and cols is a multiple of 64 (one tile row) up to 32,768 (so that no
// 32-bit sum can overflow, even with UInt8's offsets).
bool amx_int8_supports(const Int8Activations& x, const PackedMatrix& w);
// Turns the AMX-INT8 path on or off (on only where usable; LOWBIT_NO_AMX=1 in the environment turns it off
// at start, as for the bf16 products) and returns the previous setting. For tests and benchmarks.
bool set_int8_amx_enabled(bool enable);
// y rows [n_begin, n_end) of int8_linear (all x rows); only after amx_int8_supports(x, w).
void amx_int8_rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                   int64_t n_begin, int64_t n_end);

}  // namespace lowbit::kernels

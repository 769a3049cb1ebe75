// Intel AMX-BF16 tile kernels behind gemm_bf16.h, and the AMX detection and tile configuration that the
// AMX-INT8 W8A8 kernel (kernels_packed_amx.h) shares. Only functions marked with the AMX instruction set use
// it (target attributes, not build flags); callers reach them only after amx_*_usable() said yes.
//
// Operand layouts (the tile instruction's own):
//   A: bf16, row-major, `lda` elements per row; rows padded to a multiple of 32 and K to a multiple of 32
//      with zeros by the caller (the kernel always loads full 16 x 32 tiles).
//   B: "VNNI" panels of 16 output columns: for columns n0..n0+15 and k-pairs p = 0..K/2-1, the 32 bf16
//      values (B[2p][n0], B[2p+1][n0], B[2p][n0+1], ...), i.e. each panel is K/2 rows of 64 bytes.
//      Panels follow each other; the column count is padded to a multiple of 32 with zero panels.
//   C: fp32, row-major, `ldc`; only the m x n valid part is written.
#pragma once

#include <cstdint>

namespace lowbit::kernels::amx {

// Whether the CPU has AMX-TILE and AMX-BF16 and the kernel granted this process the tile state
// (Linux arch_prctl ARCH_REQ_XCOMP_PERM). Checked once.
bool amx_bf16_usable();
// The same for AMX-INT8 (the W8A8 kernel, kernels_packed_amx.h).
bool amx_int8_usable();

// Loads this thread's tile configuration: tiles 0-7 of 16 rows x 64 bytes (what every AMX kernel here
// uses), and releases the tile state after a kernel. Only after amx_*_usable() said yes.
void configure_tiles();
void release_tiles();
// LOWBIT_NO_AMX set (to anything but "" or "0"): the user turned every AMX path off.
bool amx_disabled_by_environment();

// C[rows x cols] = A[rows x k] * B[k x cols]: `a` points at the first row of A, `b_panels` at the first
// panel, `c` at C's first element. k is the depth multiplied (a multiple of 32), panel_depth the depth the
// panels were packed with (>= k; a product may use only the first k of it). A must have readable (zero)
// rows up to the next multiple of 32 past `rows`, and B whole panel pairs past `cols`. Single-threaded.
// accumulate: C += A * B instead (rows and cols must then be multiples of 32).
void gemm_tiles(const uint16_t* a, int64_t lda, const uint16_t* b_panels, int64_t panel_depth, int64_t k,
                float* c, int64_t ldc, int64_t rows, int64_t cols, bool accumulate = false);

// Operand packing (AVX-512; bf16 rounded to nearest even):
// Operand packing (single-threaded; x has `ld` floats per row):
// A operand: rows of x [rows x cols] as bf16 rows of `depth` elements, zero padded past cols.
void pack_rows(const float* x, int64_t ld, int64_t rows, int64_t cols, int64_t depth, uint16_t* out);
// B operand from x [rows x cols] whose ROWS are the depth (k) dimension (X^T X, P V): panels
// [panel_begin, panel_end) of 16 columns, k-pairs = consecutive rows, zero padded up to `depth`.
void pack_row_pairs(const float* x, int64_t ld, int64_t rows, int64_t cols, int64_t depth,
                    int64_t panel_begin, int64_t panel_end, uint16_t* panels);
// B operand whose COLUMNS are the rows of a matrix (X W^T, Q K^T), from those rows already packed by
// pack_rows (n rows of `depth`): panels [panel_begin, panel_end), zero past n (a 32-bit transpose, so it
// also lays out AMX-INT8's B operand from rows of int8 codes at depth K / 2: kernels_packed_amx.cc).
void rows_to_panels(const uint16_t* rows, int64_t n, int64_t depth, int64_t panel_begin, int64_t panel_end,
                    uint16_t* panels);
// The A operand X^T from the B panels of X (the inverse transpose): rows [row_begin, row_end) of A.
void panels_to_rows(const uint16_t* panels, int64_t depth, int64_t row_begin, int64_t row_end, uint16_t* out);

}  // namespace lowbit::kernels::amx

// The W8A8 integer product for prefill-sized batches on AVX2 (kernels_packed_w8a8_avx2.cc), int8_linear's
// path on CPUs whose widest Highway target is AVX2 (no AVX-512, so no VNNI).
#pragma once

#include <cstdint>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels {

// Whether int8_linear takes avx2_int8_rows: AVX2 + FMA, and Highway dispatches to 8-lane vectors (on
// AVX-512 CPUs its 512-bit kernel keeps the work).
bool avx2_int8_gemm_available();
// y rows [n_begin, n_end) of int8_linear for every x row: exact integer sums, the reference's rescale.
void avx2_int8_rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                    int64_t n_begin, int64_t n_end);

// quantize_int8_row on AVX2 (needs have_avx2_fma()): the _ref's codes bit for bit, or false (and nothing
// written) when the row holds a NaN or an infinity.
bool avx2_quantize_int8_row(const float* x, int64_t K, float tensor_scale, float* scale, int16_t* codes,
                            uint8_t* biased, int32_t* sum);

}  // namespace lowbit::kernels

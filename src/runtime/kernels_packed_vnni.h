// AVX-512 VNNI rows of int8_linear (kernels_packed_vnni.cc). Call only when have_avx512_vnni().
#pragma once

#include <cstdint>

#include "runtime/kernels_packed.h"

namespace lowbit::kernels {

// y rows [n_begin, n_end) of int8_linear; needs x.biased and w.row_code_sums.
void vnni_int8_rows(const Int8Activations& x, const PackedMatrix& w, const float* bias, float* y,
                    int64_t n_begin, int64_t n_end);

}  // namespace lowbit::kernels

// Helpers shared by the scalar reference quantizers (not a public API).
#pragma once

#include <cstdint>
#include <vector>

#include "quant/quantizer_ref.h"

namespace lowbit::detail {

// The result of one torch operation in dtype `dt`: fp32 results stay, bf16 results are rounded.
inline float rnd(float v, ComputeDType dt) {
  return dt == ComputeDType::BF16 ? round_to_bf16(v) : v;
}

// torch.finfo(scale dtype).eps, the replacement for a zero scale.
float scale_eps(ComputeDType dt);

// A clamped float to its int8 code: round half to even; NaN becomes 0 (as torch's cast does).
int8_t float_to_code(float t);

// A copy of x[0..n) as the tensor torch would hold: rounded to bf16 in BF16 mode.
std::vector<float> inputs_in(const float* x, int64_t n, ComputeDType dt);

}  // namespace lowbit::detail

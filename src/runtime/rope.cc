#include "runtime/rope.h"

#include <cmath>

namespace lowbit::runtime {

void rope_angles(const std::vector<float>& inv_freq, int64_t first_position, int64_t count, RopeAngles* out) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  out->half = half;
  out->cos.resize(static_cast<size_t>(count * half));
  out->sin.resize(static_cast<size_t>(count * half));
  for (int64_t t = 0; t < count; ++t) {
    const float pos = static_cast<float>(first_position + t);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = inv_freq[static_cast<size_t>(i)] * pos;
      out->cos[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(static_cast<double>(angle)));
      out->sin[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

void apply_rope(float* x, int64_t rows, int64_t heads, int64_t row_stride, const RopeAngles& angles) {
  const int64_t half = angles.half;
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = angles.cos.data() + r * half;
    const float* s = angles.sin.data() + r * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + r * row_stride + h * 2 * half;
      // x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i];
        const float b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace lowbit::runtime

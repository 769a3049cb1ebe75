// Rotary position embeddings exactly as Hugging Face Llama applies them: on the stored (HF) weight layout,
// with the rotate_half convention (dimension i is paired with i + head_dim/2, not with i + 1), and the
// per-rope_type inverse frequencies of ModelConfig::rope_inv_freq().
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit::runtime {

// cos/sin of position * inv_freq for a run of consecutive positions: [count][half] each.
struct RopeAngles {
  int64_t half = 0;
  std::vector<float> cos;
  std::vector<float> sin;
};

// The angle is formed in float32 (inv_freq * position), as transformers does, then cos/sin taken.
void rope_angles(const std::vector<float>& inv_freq, int64_t first_position, int64_t count, RopeAngles* out);

// Rotates `rows` rows, each holding `heads` heads of 2 * angles.half values (row stride `row_stride`
// floats); row r uses angle row r of `angles`.
void apply_rope(float* x, int64_t rows, int64_t heads, int64_t row_stride, const RopeAngles& angles);

}  // namespace lowbit::runtime

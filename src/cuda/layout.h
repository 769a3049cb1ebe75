// Host-side (CPU, no CUDA headers) half of the CUDA kernel library: the offline re-layout of quantized
// weights into the form the GPU kernels read, its exact inverse, a CPU emulation of what the kernels read and
// compute, the CPU references of the activation-quantization kernels, and the choice of kernel by M.
// Everything here is unit-tested on the CPU (tests/cuda/layout_test.cc); the GPU kernels are tested against
// it.
//
// Input format: compressed-tensors `pack-quantized` (see quant/pack.h). A weight W is N x K (out x in):
//   weight_packed      int32 [N, packed_words(K, bits)]   unsigned codes u = q + 2^(bits-1), LSB first
//   weight_scale       [N, G]                             G = ceil(K / group_size), G = 1 for per-channel
//   weight_zero_point  int32 [packed_words(N, bits), G]   signed zero points packed along dim 0 (asym only)
// and the dequantized weight is w[n][k] = (q[n][k] - z[n][g]) * s[n][g] with g = k / group_size.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit::cuda {

// Element type of activations X and outputs Y (and of the weight-only scales on the GPU).
enum class ActDType : uint8_t { F16, BF16 };

const char* to_string(ActDType t);

// Codes of a weight-only layout are padded along K to a multiple of this, so every row starts 16-byte
// aligned and holds whole 64-code blocks (the MMA kernel's K tile); the padding codes are the zero code.
inline constexpr int64_t kWeightOnlyKAlign = 64;
// W8A8 int8 rows (weights and quantized activations) are padded along K to this (the int8 MMA K tile).
inline constexpr int64_t kInt8KAlign = 64;
// FP8 rows are padded along K to this: cuBLASLt wants 16-byte aligned leading dimensions for fp8.
inline constexpr int64_t kFp8KAlign = 16;

inline int64_t round_up(int64_t x, int64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}

// A W4A16 / W8A16 weight exactly as stored in a compressed-tensors checkpoint (host memory, not owned).
// Scales are given as fp32 (a loader converts the checkpoint's bf16/fp16 scales losslessly).
struct PackedQuantWeight {
  int bits = 4;                                // 4 or 8
  int64_t n = 0;                               // output features (rows)
  int64_t k = 0;                               // input features (columns)
  int64_t group_size = 0;                      // 32, 64, 128 (any multiple of 32), or 0 / -1 for per-channel
  const int32_t* weight_packed = nullptr;      // [n, packed_words(k, bits)]
  const float* weight_scale = nullptr;         // [n, num_groups]
  const int32_t* weight_zero_point = nullptr;  // [packed_words(n, bits), num_groups]; nullptr = symmetric
};

// The GPU layout of a weight-only quantized matrix (what upload_weight_only() copies to the device).
//  - qweight: [n, k_padded * bits / 32] uint32 words, codes in the compressed-tensors order (LSB first),
//    rows zero-code padded from k to k_padded = round_up(k, 64): every row is 16-byte aligned, so the
//    decode kernel streams it with 16-byte loads and the prefill kernel loads whole 64-code tiles.
//  - scales: [n, num_groups] as 16-bit floats of the activation dtype (half the bytes of fp32; the kernel
//    multiplies in fp32).
//  - zeros: [n, num_groups] signed int8 zero points, unpacked from their dim-0 packing so that a row's zero
//    points sit next to its scales; empty when symmetric.
// `group_size` is the effective group (k for per-channel); group g covers codes [g*group_size, ...). Padding
// codes k..k_padded-1 read group min(k / group_size, num_groups - 1); the kernels multiply them by zero
// activations, so they never contribute.
struct WeightOnlyLayout {
  int bits = 4;
  int64_t n = 0;
  int64_t k = 0;
  int64_t k_padded = 0;
  int64_t group_size = 0;
  int64_t num_groups = 0;
  bool symmetric = true;
  ActDType scale_dtype = ActDType::F16;
  std::vector<uint32_t> qweight;
  std::vector<uint16_t> scales;
  std::vector<int8_t> zeros;

  int64_t words_per_row() const { return k_padded * bits / 32; }
  // Bytes the kernels stream per product (codes + scales + zero points): the "weight bytes" of the bench.
  int64_t device_bytes() const;
};

// Validates `w` (bits, group size, code and zero-point ranges, padding bits) and builds the GPU layout.
// Scales are rounded to `scale_dtype` (exact for scales that came from a checkpoint in that dtype).
// Throws lowbit::Error naming `name` and the offending shape or value.
WeightOnlyLayout relayout_weight_only(const PackedQuantWeight& w, ActDType scale_dtype, const char* name);

// The exact inverse: the compressed-tensors tensors back (scales as the fp32 value of the stored 16-bit
// scale). Empty `zero_point` when symmetric.
struct PackedTensors {
  std::vector<int32_t> weight_packed;
  std::vector<float> weight_scale;
  std::vector<int32_t> weight_zero_point;
};
PackedTensors unrelayout_weight_only(const WeightOnlyLayout& layout);

// CPU emulation of the kernels' reads and arithmetic: the dequantized weight w[n][k] exactly as the GPU
// computes it in fp32 registers, ((u - 2^(bits-1)) - z) * s, for every k < k_padded (padding included).
float layout_weight_at(const WeightOnlyLayout& layout, int64_t row, int64_t col);
// All of it, [n, k] (padding excluded).
std::vector<float> dequantize_layout(const WeightOnlyLayout& layout);

// ---- W8A8 int8 ------------------------------------------------------------------------------------------
// Weights: int8 codes [n, k] (compressed-tensors int-quantized, or pack-quantized 8-bit unpacked) and one
// fp32 scale per output channel. Layout: rows zero-padded to k_padded = round_up(k, 64).
struct Int8WeightLayout {
  int64_t n = 0;
  int64_t k = 0;
  int64_t k_padded = 0;
  std::vector<int8_t> q;     // [n, k_padded]
  std::vector<float> scale;  // [n]
  int64_t device_bytes() const { return n * k_padded + n * 4; }
};
Int8WeightLayout relayout_int8(const int8_t* q, const float* scale, int64_t n, int64_t k, const char* name);

// Per-token symmetric int8 activation quantization, the CPU twin of the GPU kernel (bit-exact):
// s[m] = max|x[m]| / 127 (1 when the row is all zero), q = clamp(rint(x / s), -127, 127), rows padded with
// zeros to k_padded. `x` holds fp16 or bf16 bit patterns.
void quantize_act_int8_ref(const uint16_t* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                           int8_t* q, float* scale);

// ---- FP8 e4m3 W8A8 --------------------------------------------------------------------------------------
// Weights: e4m3 codes [n, k] with either one scale (per-tensor) or one per output channel.
struct Fp8WeightLayout {
  int64_t n = 0;
  int64_t k = 0;
  int64_t k_padded = 0;
  bool per_channel = false;
  std::vector<uint8_t> q;    // [n, k_padded] e4m3 bit patterns, padding = +0
  std::vector<float> scale;  // [n] or [1]
  int64_t device_bytes() const { return n * k_padded + static_cast<int64_t>(scale.size()) * 4; }
};
Fp8WeightLayout relayout_fp8(const uint8_t* q, const float* scale, bool per_channel, int64_t n, int64_t k,
                             const char* name);

// How activations are scaled for FP8: one dynamic scale for the whole X, or one per row (token).
enum class Fp8ActScale : uint8_t { PerTensor, PerToken };

// Dynamic fp8 activation quantization, CPU twin of the GPU kernels: s = amax / 448 over the row (PerToken)
// or the whole matrix (PerTensor; `scale` then has one entry), q = e4m3(x / s) saturating, rows padded to
// k_padded with +0.
void quantize_act_fp8_ref(const uint16_t* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                          Fp8ActScale mode, uint8_t* q, float* scale);

// ---- kernel choice --------------------------------------------------------------------------------------
enum class WeightOnlyKernel : uint8_t {
  Auto,  // choose by M (plan_weight_only)
  Gemv,  // decode: one warp per output row, weights streamed once per (up to 16) rows of X
  Mma,   // prefill: 64x64 tiles, weights dequantized into shared memory, mma.sync m16n8k16
};
const char* to_string(WeightOnlyKernel k);

// The decode kernel keeps kGemvMaxRows rows of X in registers; larger M goes to the tensor-core kernel.
inline constexpr int64_t kGemvMaxRows = 16;

struct WeightOnlyPlan {
  WeightOnlyKernel kernel = WeightOnlyKernel::Gemv;
  int gemv_rows = 0;  // rows of X per GEMV launch (a compiled tile height: 1, 4 or 16); 0 for Mma
};
// M -> kernel: M <= 16 streams the weights once with the GEMV kernel (tile height 1 for M = 1, 4 for
// M <= 4, 16 otherwise); larger M uses the MMA kernel. `forced` overrides the kernel (tests, benchmarks).
WeightOnlyPlan plan_weight_only(int64_t m, WeightOnlyKernel forced = WeightOnlyKernel::Auto);

// ---- fp16 / bf16 bit conversions used by the references (round to nearest even) -------------------------
float act_to_f32(uint16_t v, ActDType t);
uint16_t f32_to_act(float v, ActDType t);

}  // namespace lowbit::cuda

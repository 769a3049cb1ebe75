// Dynamic activation quantization for the W8A8 paths, bit-exact twins of quantize_act_int8_ref() and
// quantize_act_fp8_ref() in layout.cc: (1) row absolute maxima, (2) scales from them (per token, or one for
// the whole tensor), (3) quantize each row with its scale, zero-padding it to k_padded. Divisions are IEEE
// (no fast-math), roundings are to nearest even, so the GPU and CPU results are identical.
#include <cuda_fp8.h>

#include <string>

#include "cuda/common.cuh"

namespace lowbit::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    row_amax_kernel(const T* __restrict__ x, int k, float* __restrict__ amax) {
  const T* row = x + static_cast<size_t>(blockIdx.x) * k;
  float v = 0.0f;
  for (int c = threadIdx.x; c < k; c += kThreads) v = fmaxf(v, fabsf(Act<T>::to_f32(row[c])));
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  __shared__ float warp_max[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) r = fmaxf(r, warp_max[w]);
    amax[blockIdx.x] = r;
  }
}

// scale[i] = amax / qmax (1 for an all-zero row). Per tensor: one block reduces all rows into scale[0].
__global__ void __launch_bounds__(kThreads) scales_kernel(const float* __restrict__ amax, int m, float qmax,
                                                          bool per_tensor, float* __restrict__ scale) {
  if (!per_tensor) {
    const int i = blockIdx.x * kThreads + threadIdx.x;
    if (i < m) scale[i] = amax[i] > 0.0f ? amax[i] / qmax : 1.0f;
    return;
  }
  float v = 0.0f;
  for (int i = threadIdx.x; i < m; i += kThreads) v = fmaxf(v, amax[i]);
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  __shared__ float warp_max[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) r = fmaxf(r, warp_max[w]);
    scale[0] = r > 0.0f ? r / qmax : 1.0f;
  }
}

struct ToInt8 {
  static __device__ __forceinline__ int8_t apply(float v) {
    return static_cast<int8_t>(max(-127, min(127, __float2int_rn(v))));
  }
};
struct ToE4m3 {
  static __device__ __forceinline__ uint8_t apply(float v) {
    return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
  }
};

template <typename T, typename Q, typename Out>
__global__ void __launch_bounds__(kThreads)
    quantize_rows_kernel(const T* __restrict__ x, int k, int k_padded, const float* __restrict__ scale,
                         bool per_tensor, Out* __restrict__ q) {
  const size_t r = blockIdx.x;
  const float s = scale[per_tensor ? 0 : r];
  const T* row = x + r * k;
  Out* out = q + r * k_padded;
  for (int c = threadIdx.x; c < k_padded; c += kThreads)
    out[c] = c < k ? Q::apply(Act<T>::to_f32(row[c]) / s) : Out(0);
}

template <typename T, typename Q, typename Out>
void quantize(Context& ctx, const void* x, int64_t m, int64_t k, int64_t k_padded, float qmax,
              bool per_tensor, void* q, void* scale) {
  if (m <= 0 || k <= 0 || k_padded < k) throw_error("activation quantization: bad shape");
  cudaStream_t s = stream_of(ctx);
  // The row maxima live in the temporary scratch slot (callers may keep q / scale in the activation slot).
  auto* amax =
      static_cast<float*>(ctx.impl().scratch_bytes(kScratchTemp, static_cast<size_t>(m) * sizeof(float)));
  row_amax_kernel<T>
      <<<static_cast<unsigned>(m), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<int>(k), amax);
  LOWBIT_CUDA_CHECK_LAUNCH();
  scales_kernel<<<per_tensor ? 1u : ceil_div(m, kThreads), kThreads, 0, s>>>(
      amax, static_cast<int>(m), qmax, per_tensor, static_cast<float*>(scale));
  LOWBIT_CUDA_CHECK_LAUNCH();
  quantize_rows_kernel<T, Q, Out><<<static_cast<unsigned>(m), kThreads, 0, s>>>(
      static_cast<const T*>(x), static_cast<int>(k), static_cast<int>(k_padded),
      static_cast<const float*>(scale), per_tensor, static_cast<Out*>(q));
  LOWBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void quantize_act_int8(Context& ctx, const void* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                       void* q, void* scale) {
  if (dtype == ActDType::F16)
    quantize<__half, ToInt8, int8_t>(ctx, x, m, k, k_padded, 127.0f, false, q, scale);
  else
    quantize<__nv_bfloat16, ToInt8, int8_t>(ctx, x, m, k, k_padded, 127.0f, false, q, scale);
}

void quantize_act_fp8(Context& ctx, const void* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                      Fp8ActScale mode, void* q, void* scale) {
  const bool per_tensor = mode == Fp8ActScale::PerTensor;
  if (dtype == ActDType::F16)
    quantize<__half, ToE4m3, uint8_t>(ctx, x, m, k, k_padded, 448.0f, per_tensor, q, scale);
  else
    quantize<__nv_bfloat16, ToE4m3, uint8_t>(ctx, x, m, k, k_padded, 448.0f, per_tensor, q, scale);
}

}  // namespace lowbit::cuda

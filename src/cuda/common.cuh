// Internals shared by the .cu files: error checking, the Context's state, and fp16/bf16 helpers that let one
// kernel template serve both activation dtypes.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "cuda/cuda_gemm.h"

namespace lowbit::cuda {

// Throws lowbit::Error (defined in errors.cc, so that fmt never passes through nvcc).
[[noreturn]] void throw_cuda_error(const char* what, const char* detail, const char* file, int line);
[[noreturn]] void throw_error(const std::string& message);

#define LOWBIT_CUDA_CHECK(expr)                                                                     \
  do {                                                                                              \
    const cudaError_t lowbit_err_ = (expr);                                                         \
    if (lowbit_err_ != cudaSuccess)                                                                 \
      ::lowbit::cuda::throw_cuda_error(#expr, cudaGetErrorString(lowbit_err_), __FILE__, __LINE__); \
  } while (0)

#define LOWBIT_CUBLAS_CHECK(expr)                                                                     \
  do {                                                                                                \
    const cublasStatus_t lowbit_st_ = (expr);                                                         \
    if (lowbit_st_ != CUBLAS_STATUS_SUCCESS)                                                          \
      ::lowbit::cuda::throw_cuda_error(#expr, cublasGetStatusString(lowbit_st_), __FILE__, __LINE__); \
  } while (0)

// Checks the launch of the kernel just issued (configuration errors; execution errors surface later).
#define LOWBIT_CUDA_CHECK_LAUNCH() LOWBIT_CUDA_CHECK(cudaGetLastError())

// A cached cuBLASLt matmul (descriptors + the heuristic's algorithm) for one shape and output type.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};
// (m, n, k_padded, output cudaDataType_t).
using LtPlanKey = std::tuple<int64_t, int64_t, int64_t, int>;

struct Context::Impl {
  cudaStream_t stream = nullptr;
  int compute_capability = 0;  // 10 * major + minor
  std::map<LtPlanKey, std::unique_ptr<LtPlan>> lt_plans;
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t blas_lt = nullptr;
  // Two scratch slots so that one operation can hold both: kScratchActivations (quantized activations and
  // their scales, alive for a whole product) and kScratchTemp (row maxima, fp32 partial products).
  DeviceBuffer scratch[2];
  DeviceBuffer lt_workspace;  // cuBLASLt workspace
  // Returns at least `bytes` of scratch slot `slot` (grows it, synchronizing the stream first).
  void* scratch_bytes(int slot, size_t bytes);
};

inline constexpr int kScratchActivations = 0;
inline constexpr int kScratchTemp = 1;

inline cudaStream_t stream_of(Context& ctx) {
  return ctx.impl().stream;
}

// fp16 / bf16 conversions for kernel templates parameterized on the storage type.
template <typename T>
struct Act;
template <>
struct Act<__half> {
  static __device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_f32(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ float2 to_f32x2(__half2 v) { return __half22float2(v); }
  static __device__ __forceinline__ __half2 from_f32x2(float a, float b) { return __floats2half2_rn(a, b); }
  using T2 = __half2;
};
template <>
struct Act<__nv_bfloat16> {
  static __device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_f32(float v) { return __float2bfloat16_rn(v); }
  static __device__ __forceinline__ float2 to_f32x2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
  static __device__ __forceinline__ __nv_bfloat162 from_f32x2(float a, float b) {
    return __floats2bfloat162_rn(a, b);
  }
  using T2 = __nv_bfloat162;
};

inline unsigned ceil_div(int64_t a, int64_t b) {
  return static_cast<unsigned>((a + b - 1) / b);
}

}  // namespace lowbit::cuda

// The CUDA kernel library for packed low-bit matrix products: Y = X · Wᵀ with X: M x K fp16/bf16 activations
// (row-major), W: N x K quantized weights, Y: M x N in the activation dtype. This header needs no CUDA
// headers (device pointers are void*, the CUDA state lives behind Context's pImpl), so any C++ target can
// include it.
//
// Kernels (see docs/CUDA.md for the designs and error bounds):
//   gemm_weight_only  W4A16 / W8A16, group-wise (any multiple of 32) or per-channel, sym or asym.
//                     M <= 16: GEMV that streams the weights once (16-byte loads, dequant in registers, fp32
//                     accumulation); M > 16: mma.sync m16n8k16 with weights dequantized into shared memory.
//   gemm_int8         W8A8 int8: per-token dynamic activation quantization (one extra pass), int8 mma.sync
//                     m16n8k32 with int32 accumulation, per-token x per-channel scales in the epilogue.
//   gemm_fp8          W8A8 FP8 e4m3 through cuBLASLt (sm_89+): dynamic per-tensor or per-token activation
//                     scales; per-tensor scales go to cuBLASLt, per-token / per-channel ones to an epilogue.
//   gemm_dense        fp16/bf16 baseline through cuBLAS (the benchmark's reference).
// All functions are asynchronous on the context's stream; errors throw lowbit::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cuda/layout.h"

namespace lowbit::cuda {

// True when the CUDA runtime reports at least one device (and the driver works). Never throws.
bool cuda_available();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)" or the reason there is none.
std::string device_summary();
// Compute capability of the current device as 10 * major + minor (0 without a device).
int device_compute_capability();

// An owned device allocation (cudaMalloc'd), move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // Synchronous host <-> device copies of `bytes` (at most bytes()).
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;
  // Fills every byte with `value` (tests poison outputs with 0xff = NaN in fp16/bf16).
  void fill_bytes(uint8_t value);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Per-thread CUDA state: a stream, cuBLAS and cuBLASLt handles, and a growable scratch buffer (quantized
// activations, fp32 partial products). Not thread-safe; use one per host thread.
class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  void synchronize();
  // The cudaStream_t, as void* (so that this header needs no CUDA headers).
  void* stream() const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- device-resident weights (uploaded once, used for many products) -----------------------------------

struct DeviceWeightOnly {
  int bits = 4;
  int64_t n = 0, k = 0, k_padded = 0, group_size = 0, num_groups = 0;
  bool symmetric = true;
  ActDType scale_dtype = ActDType::F16;
  DeviceBuffer qweight, scales, zeros;
  int64_t device_bytes = 0;
};
DeviceWeightOnly upload_weight_only(const WeightOnlyLayout& layout);

struct DeviceInt8Weight {
  int64_t n = 0, k = 0, k_padded = 0;
  DeviceBuffer q, scale;
  int64_t device_bytes = 0;
};
DeviceInt8Weight upload_int8(const Int8WeightLayout& layout);

struct DeviceFp8Weight {
  int64_t n = 0, k = 0, k_padded = 0;
  bool per_channel = false;
  DeviceBuffer q, scale;
  int64_t device_bytes = 0;
};
DeviceFp8Weight upload_fp8(const Fp8WeightLayout& layout);

// ---- products. x: device [m, k] in `dtype`; y: device [m, n] in `dtype` ----------------------------------

// W4A16 / W8A16. `dtype` must equal the layout's scale dtype. `kernel` forces a path (tests, benchmarks).
void gemm_weight_only(Context& ctx, const DeviceWeightOnly& w, const void* x, int64_t m, void* y,
                      ActDType dtype, WeightOnlyKernel kernel = WeightOnlyKernel::Auto);

// W8A8 int8 (activations quantized per token on the fly into the context's scratch).
void gemm_int8(Context& ctx, const DeviceInt8Weight& w, const void* x, int64_t m, void* y, ActDType dtype);
// The activation pass alone (tests compare it bit-exactly with quantize_act_int8_ref):
// q: device [m, k_padded] int8, scale: device [m] fp32.
void quantize_act_int8(Context& ctx, const void* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                       void* q, void* scale);

// W8A8 FP8 e4m3 (needs sm_89 or newer; throws on older devices).
void gemm_fp8(Context& ctx, const DeviceFp8Weight& w, const void* x, int64_t m, void* y, ActDType dtype,
              Fp8ActScale act_scale);
// q: device [m, k_padded] e4m3, scale: device [m] (PerToken) or [1] (PerTensor) fp32.
void quantize_act_fp8(Context& ctx, const void* x, ActDType dtype, int64_t m, int64_t k, int64_t k_padded,
                      Fp8ActScale mode, void* q, void* scale);

// Dense baseline through cuBLAS: w: device [n, k] in `dtype`.
void gemm_dense(Context& ctx, const void* w, int64_t n, int64_t k, const void* x, int64_t m, void* y,
                ActDType dtype);

}  // namespace lowbit::cuda

// Device discovery, device buffers, the Context (stream + cuBLAS handles + scratch), weight uploads, and the
// cuBLAS fp16/bf16 baseline.
#include <cstdio>
#include <string>
#include <utility>

#include "cuda/common.cuh"

namespace lowbit::cuda {

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return false;
  }
  return count > 0;
}

std::string device_summary() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device: ") + cudaGetErrorString(err);
  }
  if (count == 0) return "no CUDA device: cudaGetDeviceCount returned 0";
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess)
    return "CUDA device present but its properties could not be read";
  char gib[32];
  snprintf(gib, sizeof gib, "%.1f", static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.multiProcessorCount) + " SMs, " + gib + " GiB)";
}

int device_compute_capability() {
  if (!cuda_available()) return 0;
  int dev = 0, major = 0, minor = 0;
  LOWBIT_CUDA_CHECK(cudaGetDevice(&dev));
  LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return 10 * major + minor;
}

// ---- DeviceBuffer -----------------------------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) LOWBIT_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
  if (bytes > bytes_)
    throw_error("DeviceBuffer::upload: " + std::to_string(bytes) + " bytes into a buffer of " +
                std::to_string(bytes_));
  if (bytes > 0) LOWBIT_CUDA_CHECK(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host, size_t bytes) const {
  if (bytes > bytes_)
    throw_error("DeviceBuffer::download: " + std::to_string(bytes) + " bytes from a buffer of " +
                std::to_string(bytes_));
  if (bytes > 0) LOWBIT_CUDA_CHECK(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost));
}

void DeviceBuffer::fill_bytes(uint8_t value) {
  if (bytes_ > 0) LOWBIT_CUDA_CHECK(cudaMemset(ptr_, value, bytes_));
}

// ---- Context ----------------------------------------------------------------------------------------------

namespace {
constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;  // cuBLASLt's recommendation for Hopper
}

Context::Context() : impl_(std::make_unique<Impl>()) {
  if (!cuda_available()) throw_error("lowbit::cuda::Context: " + device_summary());
  impl_->compute_capability = device_compute_capability();
  LOWBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  LOWBIT_CUBLAS_CHECK(cublasCreate(&impl_->blas));
  LOWBIT_CUBLAS_CHECK(cublasSetStream(impl_->blas, impl_->stream));
  LOWBIT_CUBLAS_CHECK(cublasLtCreate(&impl_->blas_lt));
  impl_->lt_workspace = DeviceBuffer(kLtWorkspaceBytes);
}

Context::~Context() {
  if (impl_->stream) cudaStreamSynchronize(impl_->stream);
  impl_->lt_plans.clear();
  if (impl_->blas_lt) cublasLtDestroy(impl_->blas_lt);
  if (impl_->blas) cublasDestroy(impl_->blas);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

void Context::synchronize() {
  LOWBIT_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

void* Context::stream() const {
  return impl_->stream;
}

void* Context::Impl::scratch_bytes(int slot, size_t bytes) {
  DeviceBuffer& buf = scratch[slot];
  if (buf.bytes() < bytes) {
    LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream));  // the old buffer may still be in use
    buf = DeviceBuffer(bytes + bytes / 4);
  }
  return buf.data();
}

// ---- uploads ----------------------------------------------------------------------------------------------

namespace {
template <typename V>
DeviceBuffer to_device(const V& host) {
  const size_t bytes = host.size() * sizeof(typename V::value_type);
  DeviceBuffer buf(bytes);
  buf.upload(host.data(), bytes);
  return buf;
}
}  // namespace

DeviceWeightOnly upload_weight_only(const WeightOnlyLayout& layout) {
  DeviceWeightOnly w;
  w.bits = layout.bits;
  w.n = layout.n;
  w.k = layout.k;
  w.k_padded = layout.k_padded;
  w.group_size = layout.group_size;
  w.num_groups = layout.num_groups;
  w.symmetric = layout.symmetric;
  w.scale_dtype = layout.scale_dtype;
  w.qweight = to_device(layout.qweight);
  w.scales = to_device(layout.scales);
  if (!layout.symmetric) w.zeros = to_device(layout.zeros);
  w.device_bytes = layout.device_bytes();
  return w;
}

DeviceInt8Weight upload_int8(const Int8WeightLayout& layout) {
  DeviceInt8Weight w;
  w.n = layout.n;
  w.k = layout.k;
  w.k_padded = layout.k_padded;
  w.q = to_device(layout.q);
  w.scale = to_device(layout.scale);
  w.device_bytes = layout.device_bytes();
  return w;
}

DeviceFp8Weight upload_fp8(const Fp8WeightLayout& layout) {
  DeviceFp8Weight w;
  w.n = layout.n;
  w.k = layout.k;
  w.k_padded = layout.k_padded;
  w.per_channel = layout.per_channel;
  w.q = to_device(layout.q);
  w.scale = to_device(layout.scale);
  w.device_bytes = layout.device_bytes();
  return w;
}

// ---- cuBLAS baseline --------------------------------------------------------------------------------------

// Row-major Y[m,n] = X[m,k] · W[n,k]ᵀ is column-major Yᵀ[n,m] = W · Xᵀ with W read transposed ("TN").
void gemm_dense(Context& ctx, const void* w, int64_t n, int64_t k, const void* x, int64_t m, void* y,
                ActDType dtype) {
  if (m <= 0 || n <= 0 || k <= 0) throw_error("gemm_dense: bad shape");
  const cudaDataType_t t = dtype == ActDType::F16 ? CUDA_R_16F : CUDA_R_16BF;
  const float alpha = 1.0f, beta = 0.0f;
  LOWBIT_CUBLAS_CHECK(cublasGemmEx(ctx.impl().blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                                   static_cast<int>(m), static_cast<int>(k), &alpha, w, t,
                                   static_cast<int>(k), x, t, static_cast<int>(k), &beta, y, t,
                                   static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace lowbit::cuda

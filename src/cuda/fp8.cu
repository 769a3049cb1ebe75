// W8A8 FP8 e4m3 through cuBLASLt (sm_89+). Activations are quantized dynamically (act_quant.cu).
//  - per-tensor weight scale and per-tensor activation scale: both scales go to cuBLASLt as A/B scale
//    pointers and it writes fp16/bf16 Y directly;
//  - otherwise (per-channel weight scales and/or per-token activation scales): cuBLASLt writes the unscaled
//    product in fp32 to scratch and scale_epilogue_kernel applies sx[m] · sw[n] and converts to fp16/bf16.
// Row-major Y[m,n] = Xq[m,k] · Wq[n,k]ᵀ is column-major Yᵀ[n,m] = Wqᵀ·Xq with A = Wq (K x N column-major,
// transposed) and B = Xq (K x M column-major): the "TN" form cuBLASLt requires for fp8. Leading dimensions
// are k_padded (a multiple of 16 bytes, as fp8 needs).
#include <string>

#include "cuda/common.cuh"

namespace lowbit::cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(256)
    scale_epilogue_kernel(const float* __restrict__ d, const float* __restrict__ sx, bool per_token,
                          const float* __restrict__ sw, bool per_channel, T* __restrict__ y, int m, int n) {
  const size_t i = static_cast<size_t>(blockIdx.x) * 256 + threadIdx.x;
  if (i >= static_cast<size_t>(m) * n) return;
  const int r = static_cast<int>(i / n), c = static_cast<int>(i % n);
  y[i] = Act<T>::from_f32(d[i] * sx[per_token ? r : 0] * sw[per_channel ? c : 0]);
}

#define LOWBIT_LT_SET(desc, attr, value) \
  LOWBIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &(value), sizeof(value)))

LtPlan& plan_for(Context& ctx, int64_t m, int64_t n, int64_t kp, cudaDataType_t out_type) {
  auto& plans = ctx.impl().lt_plans;
  const LtPlanKey key{m, n, kp, static_cast<int>(out_type)};
  if (auto it = plans.find(key); it != plans.end()) return *it->second;

  auto plan = std::make_unique<LtPlan>();
  LOWBIT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  LOWBIT_LT_SET(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, op_t);
  LOWBIT_LT_SET(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, op_n);
  LOWBIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_8F_E4M3, kp, n, kp));
  LOWBIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_8F_E4M3, kp, m, kp));
  LOWBIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, out_type, n, m, n));

  cublasLtMatmulPreference_t pref = nullptr;
  LOWBIT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = ctx.impl().lt_workspace.bytes();
  LOWBIT_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx.impl().blas_lt, plan->desc, plan->a, plan->b,
                                                           plan->c, plan->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    throw_error("gemm_fp8: cuBLASLt has no fp8 algorithm for M=" + std::to_string(m) + " N=" +
                std::to_string(n) + " K=" + std::to_string(kp) + " (" + cublasGetStatusString(st) + ")");
  plan->algo = result.algo;
  return *plans.emplace(key, std::move(plan)).first->second;
}

}  // namespace

void gemm_fp8(Context& ctx, const DeviceFp8Weight& w, const void* x, int64_t m, void* y, ActDType dtype,
              Fp8ActScale act_scale) {
  if (m <= 0) throw_error("gemm_fp8: M = " + std::to_string(m));
  if (ctx.impl().compute_capability < 89)
    throw_error("gemm_fp8: fp8 matmul needs sm_89 or newer, this device is sm_" +
                std::to_string(ctx.impl().compute_capability));
  const bool per_token = act_scale == Fp8ActScale::PerToken;
  const size_t q_bytes = static_cast<size_t>(round_up(m * w.k_padded, 16));
  auto* base = static_cast<char*>(ctx.impl().scratch_bytes(kScratchActivations, q_bytes + m * sizeof(float)));
  auto* xq = reinterpret_cast<uint8_t*>(base);
  auto* sx = reinterpret_cast<float*>(base + q_bytes);
  quantize_act_fp8(ctx, x, dtype, m, w.k, w.k_padded, act_scale, xq, sx);

  const cudaDataType_t act_type = dtype == ActDType::F16 ? CUDA_R_16F : CUDA_R_16BF;
  const bool fused = !per_token && !w.per_channel;
  LtPlan& plan = plan_for(ctx, m, w.n, w.k_padded, fused ? act_type : CUDA_R_32F);
  const float* sw = static_cast<const float*>(w.scale.data());
  if (fused) {
    LOWBIT_LT_SET(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, sw);
    LOWBIT_LT_SET(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, sx);
  }
  void* out = fused ? y
                    : ctx.impl().scratch_bytes(
                          kScratchTemp, static_cast<size_t>(m) * static_cast<size_t>(w.n) * sizeof(float));
  const float alpha = 1.0f, beta = 0.0f;
  cudaStream_t s = stream_of(ctx);
  LOWBIT_CUBLAS_CHECK(cublasLtMatmul(ctx.impl().blas_lt, plan.desc, &alpha, w.q.data(), plan.a, xq, plan.b,
                                     &beta, out, plan.c, out, plan.c, &plan.algo,
                                     ctx.impl().lt_workspace.data(), ctx.impl().lt_workspace.bytes(), s));
  if (!fused) {
    const size_t total = static_cast<size_t>(m) * static_cast<size_t>(w.n);
    const unsigned blocks = ceil_div(static_cast<int64_t>(total), 256);
    const auto* d = static_cast<const float*>(out);
    const int mi = static_cast<int>(m), ni = static_cast<int>(w.n);
    if (dtype == ActDType::F16)
      scale_epilogue_kernel<__half>
          <<<blocks, 256, 0, s>>>(d, sx, per_token, sw, w.per_channel, static_cast<__half*>(y), mi, ni);
    else
      scale_epilogue_kernel<__nv_bfloat16><<<blocks, 256, 0, s>>>(d, sx, per_token, sw, w.per_channel,
                                                                  static_cast<__nv_bfloat16*>(y), mi, ni);
    LOWBIT_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace lowbit::cuda

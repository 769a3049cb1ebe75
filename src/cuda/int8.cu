// W8A8 int8: Y[m][n] = (Σ_k xq[m][k] · wq[n][k]) · sx[m] · sw[n], the activations quantized per token on the
// fly (act_quant.cu). The product is int8 mma.sync m16n8k32 with exact int32 accumulation on 64 x 64 tiles (4
// warps of 32 x 32), K in steps of 64 bytes staged in shared memory; the scales are applied in the epilogue.
// Both operands are padded along K to a multiple of 64 with zeros, so the K loop needs no bounds checks.
#include <string>

#include "cuda/common.cuh"
#include "cuda/mma.cuh"

namespace lowbit::cuda {
namespace {

constexpr int kTile = 64;        // BM = BN = BK (bytes)
constexpr int kSmemStride = 80;  // 64 + 16 bytes: 20-word rows, fragment loads hit 32 distinct banks

template <typename T>
__global__ void __launch_bounds__(128)
    int8_mma_kernel(const int8_t* __restrict__ xq, const float* __restrict__ sx,
                    const int8_t* __restrict__ wq, const float* __restrict__ sw, T* __restrict__ y, int m,
                    int n, int k_padded) {
  __shared__ __align__(16) int8_t xs[kTile][kSmemStride];
  __shared__ __align__(16) int8_t ws[kTile][kSmemStride];

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int wm = warp / 2, wn = warp % 2;
  const int gid = lane / 4, tig = lane % 4;
  const int bm = blockIdx.y * kTile, bn = blockIdx.x * kTile;

  int acc[2][4][4] = {};

  for (int k0 = 0; k0 < k_padded; k0 += kTile) {
    // 64 rows x 64 bytes = 256 16-byte chunks per operand, two per thread; rows outside the matrix are zero.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int p = tid + i * 128;
      const int r = p / 4, c = (p % 4) * 16;
      const uint4 zero = make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(&xs[r][c]) =
          bm + r < m
              ? __ldg(reinterpret_cast<const uint4*>(xq + static_cast<size_t>(bm + r) * k_padded + k0 + c))
              : zero;
      *reinterpret_cast<uint4*>(&ws[r][c]) =
          bn + r < n
              ? __ldg(reinterpret_cast<const uint4*>(wq + static_cast<size_t>(bn + r) * k_padded + k0 + c))
              : zero;
    }
    __syncthreads();

#pragma unroll
    for (int kk = 0; kk < kTile; kk += 32) {
      uint32_t af[2][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const int r = wm * 32 + mt * 16 + gid;
        af[mt][0] = *reinterpret_cast<const uint32_t*>(&xs[r][kk + 4 * tig]);
        af[mt][1] = *reinterpret_cast<const uint32_t*>(&xs[r + 8][kk + 4 * tig]);
        af[mt][2] = *reinterpret_cast<const uint32_t*>(&xs[r][kk + 4 * tig + 16]);
        af[mt][3] = *reinterpret_cast<const uint32_t*>(&xs[r + 8][kk + 4 * tig + 16]);
      }
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const int c = wn * 32 + nt * 8 + gid;
        bf[nt][0] = *reinterpret_cast<const uint32_t*>(&ws[c][kk + 4 * tig]);
        bf[nt][1] = *reinterpret_cast<const uint32_t*>(&ws[c][kk + 4 * tig + 16]);
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_16832_s8(acc[mt][nt], af[mt], bf[nt]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      const int r = bm + wm * 32 + mt * 16 + gid;
      const int c = bn + wn * 32 + nt * 8 + 2 * tig;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int rr = r + 8 * h;
        if (rr >= m) continue;
        const float s = sx[rr];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          if (c + j < n)
            y[static_cast<size_t>(rr) * n + c + j] =
                Act<T>::from_f32(static_cast<float>(acc[mt][nt][2 * h + j]) * s * sw[c + j]);
        }
      }
    }
  }
}

}  // namespace

void gemm_int8(Context& ctx, const DeviceInt8Weight& w, const void* x, int64_t m, void* y, ActDType dtype) {
  if (m <= 0) throw_error("gemm_int8: M = " + std::to_string(m));
  if (w.k_padded % kTile != 0) throw_error("gemm_int8: weight rows are not padded to a multiple of 64");
  // Activation slot: [m, k_padded] int8 codes, then [m] fp32 scales at a 16-byte aligned offset.
  const size_t q_bytes = static_cast<size_t>(round_up(m * w.k_padded, 16));
  auto* base = static_cast<char*>(ctx.impl().scratch_bytes(kScratchActivations, q_bytes + m * sizeof(float)));
  auto* xq = reinterpret_cast<int8_t*>(base);
  auto* sx = reinterpret_cast<float*>(base + q_bytes);
  quantize_act_int8(ctx, x, dtype, m, w.k, w.k_padded, xq, sx);

  const dim3 grid(ceil_div(w.n, kTile), ceil_div(m, kTile));
  cudaStream_t s = stream_of(ctx);
  const auto* wq = static_cast<const int8_t*>(w.q.data());
  const auto* sw = static_cast<const float*>(w.scale.data());
  const int mi = static_cast<int>(m), ni = static_cast<int>(w.n), kp = static_cast<int>(w.k_padded);
  if (dtype == ActDType::F16)
    int8_mma_kernel<__half><<<grid, 128, 0, s>>>(xq, sx, wq, sw, static_cast<__half*>(y), mi, ni, kp);
  else
    int8_mma_kernel<__nv_bfloat16>
        <<<grid, 128, 0, s>>>(xq, sx, wq, sw, static_cast<__nv_bfloat16*>(y), mi, ni, kp);
  LOWBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace lowbit::cuda

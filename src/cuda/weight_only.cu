// W4A16 / W8A16 products Y = X · Wᵀ on the GPU layout of layout.h.
//
// Decode (M <= 16), gemv_kernel: one warp per output row, 8 rows per 256-thread block. Each lane streams
// 16-byte chunks of its row's codes (32 4-bit or 16 8-bit codes, always inside one quantization group because
// groups are multiples of 32), dequantizes them in fp32 registers exactly as layout_weight_at() does, and
// multiplies them with up to MT rows of X (read through the L1/L2 caches: X is tiny next to W). Partial sums
// are reduced across the warp with shuffles. The weights are read once for all MT rows.
//
// Prefill (M > 16), mma_kernel: 64 x 64 output tiles, 4 warps each owning 32 x 32; per 64-wide K step the
// block stages the X tile and the *dequantized* W tile (fp16/bf16) in shared memory, then each warp issues
// mma.sync m16n8k16 with fp32 accumulators. No cp.async pipelining yet: correctness first (docs/CUDA.md).
#include <algorithm>
#include <string>

#include "cuda/common.cuh"
#include "cuda/mma.cuh"

namespace lowbit::cuda {
namespace {

struct WeightOnlyArgs {
  const uint32_t* qweight;  // [n, words_per_row]
  const void* scales;       // [n, num_groups] of T
  const int8_t* zeros;      // [n, num_groups] or nullptr
  int n, k, k_padded, group_size, num_groups;
  bool x_vec;  // X rows may be read with 16-byte loads: k % 8 == 0 and X 16-byte aligned
};

// Eight activations x[kk .. kk+7] of one row as fp32; zero past k. `vec` says 16-byte loads are legal there.
template <typename T>
__device__ __forceinline__ void load_x8(const T* __restrict__ row, int kk, int k, bool vec, float (&out)[8]) {
  if (vec && kk + 8 <= k) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(row + kk));
    const auto* pairs = reinterpret_cast<const typename Act<T>::T2*>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = Act<T>::to_f32x2(pairs[j]);
      out[2 * j] = f.x;
      out[2 * j + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = kk + j < k ? Act<T>::to_f32(row[kk + j]) : 0.0f;
  }
}

// Scale and (offset + zero point) of the group holding code `kk` of row `row`, as in layout_weight_at().
template <typename T, int BITS>
__device__ __forceinline__ void group_params(const WeightOnlyArgs& a, int row, int kk, float& scale,
                                             float& offset) {
  const int g = min(kk / a.group_size, a.num_groups - 1);
  const size_t gi = static_cast<size_t>(row) * a.num_groups + g;
  scale = Act<T>::to_f32(static_cast<const T*>(a.scales)[gi]);
  offset = static_cast<float>((1 << (BITS - 1)) + (a.zeros ? a.zeros[gi] : 0));
}

// Eight dequantized weights from the codes of `word` (4-bit: one word; 8-bit: `word` and `word2`).
template <int BITS>
__device__ __forceinline__ void dequant8(uint32_t word, uint32_t word2, float scale, float offset,
                                         float (&w)[8]) {
  if constexpr (BITS == 4) {
#pragma unroll
    for (int j = 0; j < 8; ++j) w[j] = (static_cast<float>((word >> (4 * j)) & 0xfu) - offset) * scale;
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      w[j] = (static_cast<float>((word >> (8 * j)) & 0xffu) - offset) * scale;
      w[4 + j] = (static_cast<float>((word2 >> (8 * j)) & 0xffu) - offset) * scale;
    }
  }
}

constexpr int kGemvWarps = 8;

template <typename T, int BITS, int MT>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(WeightOnlyArgs a, const T* __restrict__ x, T* __restrict__ y, int m) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kGemvWarps + threadIdx.x / 32;
  if (row >= a.n) return;  // whole warps leave together; no block-level synchronization below

  constexpr int kCodesPerChunk = 128 / BITS;  // one 16-byte load
  const int words_per_row = a.k_padded * BITS / 32;
  const uint4* wrow = reinterpret_cast<const uint4*>(a.qweight + static_cast<size_t>(row) * words_per_row);
  const int chunks = (a.k + kCodesPerChunk - 1) / kCodesPerChunk;  // chunks past k are pure padding
  const bool vec = a.x_vec;

  float acc[MT];
#pragma unroll
  for (int i = 0; i < MT; ++i) acc[i] = 0.0f;

  // kBatch 16-byte loads are issued before any of them is used, so that every lane keeps several requests in
  // flight (one outstanding load per warp cannot cover HBM latency).
  constexpr int kBatch = 4;
  for (int base = lane; base < chunks; base += 32 * kBatch) {
    uint4 q[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int c = base + 32 * b;
      q[b] = c < chunks ? __ldg(wrow + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int c = base + 32 * b;
      if (c >= chunks) break;
      const uint32_t words[4] = {q[b].x, q[b].y, q[b].z, q[b].w};
      const int k0 = c * kCodesPerChunk;
      float scale, offset;
      group_params<T, BITS>(a, row, k0, scale, offset);
#pragma unroll
      for (int piece = 0; piece < kCodesPerChunk / 8; ++piece) {
        float w[8];
        if constexpr (BITS == 4) {
          dequant8<4>(words[piece], 0, scale, offset, w);
        } else {
          dequant8<8>(words[2 * piece], words[2 * piece + 1], scale, offset, w);
        }
        const int kk = k0 + piece * 8;
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          if (i < m) {
            float xv[8];
            load_x8(x + static_cast<size_t>(i) * a.k, kk, a.k, vec, xv);
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[i] = fmaf(w[j], xv[j], acc[i]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < MT; ++i) {
    float v = acc[i];
#pragma unroll
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0 && i < m) y[static_cast<size_t>(i) * a.n + row] = Act<T>::from_f32(v);
  }
}

// ---- prefill: tensor cores
// ----------------------------------------------------------------------------------

constexpr int kTile = 64;        // BM = BN = BK
constexpr int kSmemStride = 72;  // 64 + 8 halves of padding: fragment loads hit 32 distinct banks

template <typename T, int BITS>
__global__ void __launch_bounds__(128)
    mma_kernel(WeightOnlyArgs a, const T* __restrict__ x, T* __restrict__ y, int m) {
  __shared__ __align__(16) T xs[kTile][kSmemStride];
  __shared__ __align__(16) T ws[kTile][kSmemStride];

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int wm = warp / 2, wn = warp % 2;  // this warp's 32 x 32 quarter of the tile
  const int gid = lane / 4, tig = lane % 4;
  const int bm = blockIdx.y * kTile, bn = blockIdx.x * kTile;
  const bool x_vec = a.x_vec;
  const int words_per_row = a.k_padded * BITS / 32;

  float acc[2][4][4] = {};

  for (int k0 = 0; k0 < a.k_padded; k0 += kTile) {
    // X tile: 64 rows x 64 activations = 512 pieces of 8, four per thread; zeros outside X.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int p = tid + i * 128;
      const int r = p / 8, c8 = (p % 8) * 8;
      float v[8] = {};
      if (bm + r < m) load_x8(x + static_cast<size_t>(bm + r) * a.k, k0 + c8, a.k, x_vec, v);
      auto* dst = reinterpret_cast<typename Act<T>::T2*>(&xs[r][c8]);
#pragma unroll
      for (int j = 0; j < 4; ++j) dst[j] = Act<T>::from_f32x2(v[2 * j], v[2 * j + 1]);
    }
    // W tile: 64 rows x 64 codes, dequantized. One 16-byte chunk = 128 / BITS codes.
    constexpr int kCodesPerChunk = 128 / BITS;
    constexpr int kChunksPerRow = kTile / kCodesPerChunk;
#pragma unroll
    for (int i = 0; i < kChunksPerRow * kTile / 128; ++i) {
      const int p = tid + i * 128;
      const int r = p / kChunksPerRow, cc = (p % kChunksPerRow) * kCodesPerChunk;
      const int row = bn + r;
      auto* dst = reinterpret_cast<typename Act<T>::T2*>(&ws[r][cc]);
      if (row < a.n) {
        const uint4 q = __ldg(reinterpret_cast<const uint4*>(
            a.qweight + static_cast<size_t>(row) * words_per_row + (k0 + cc) * BITS / 32));
        const uint32_t words[4] = {q.x, q.y, q.z, q.w};
        float scale, offset;
        group_params<T, BITS>(a, row, k0 + cc, scale, offset);
#pragma unroll
        for (int piece = 0; piece < kCodesPerChunk / 8; ++piece) {
          float w[8];
          if constexpr (BITS == 4) {
            dequant8<4>(words[piece], 0, scale, offset, w);
          } else {
            dequant8<8>(words[2 * piece], words[2 * piece + 1], scale, offset, w);
          }
#pragma unroll
          for (int j = 0; j < 4; ++j) dst[piece * 4 + j] = Act<T>::from_f32x2(w[2 * j], w[2 * j + 1]);
        }
      } else {
#pragma unroll
        for (int j = 0; j < kCodesPerChunk / 2; ++j) dst[j] = Act<T>::from_f32x2(0.0f, 0.0f);
      }
    }
    __syncthreads();

#pragma unroll
    for (int kk = 0; kk < kTile; kk += 16) {
      uint32_t af[2][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const int r = wm * 32 + mt * 16 + gid;
        af[mt][0] = *reinterpret_cast<const uint32_t*>(&xs[r][kk + 2 * tig]);
        af[mt][1] = *reinterpret_cast<const uint32_t*>(&xs[r + 8][kk + 2 * tig]);
        af[mt][2] = *reinterpret_cast<const uint32_t*>(&xs[r][kk + 2 * tig + 8]);
        af[mt][3] = *reinterpret_cast<const uint32_t*>(&xs[r + 8][kk + 2 * tig + 8]);
      }
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const int c = wn * 32 + nt * 8 + gid;
        bf[nt][0] = *reinterpret_cast<const uint32_t*>(&ws[c][kk + 2 * tig]);
        bf[nt][1] = *reinterpret_cast<const uint32_t*>(&ws[c][kk + 2 * tig + 8]);
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_16816<T>(acc[mt][nt], af[mt], bf[nt]);
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
      for (int h = 0; h < 2; ++h) {  // h = 0: row r (c0, c1); h = 1: row r + 8 (c2, c3)
        const int rr = r + 8 * h;
        if (rr >= m) continue;
        if (c < a.n) y[static_cast<size_t>(rr) * a.n + c] = Act<T>::from_f32(acc[mt][nt][2 * h]);
        if (c + 1 < a.n) y[static_cast<size_t>(rr) * a.n + c + 1] = Act<T>::from_f32(acc[mt][nt][2 * h + 1]);
      }
    }
  }
}

template <typename T, int BITS>
void launch(Context& ctx, const WeightOnlyArgs& a, const void* xv, int64_t m, void* yv, WeightOnlyPlan plan) {
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  cudaStream_t s = stream_of(ctx);
  if (plan.kernel == WeightOnlyKernel::Mma) {
    const dim3 grid(ceil_div(a.n, kTile), ceil_div(m, kTile));
    mma_kernel<T, BITS><<<grid, 128, 0, s>>>(a, x, y, static_cast<int>(m));
    LOWBIT_CUDA_CHECK_LAUNCH();
    return;
  }
  const unsigned blocks = ceil_div(a.n, kGemvWarps);
  for (int64_t m0 = 0; m0 < m; m0 += plan.gemv_rows) {
    const int rows = static_cast<int>(std::min<int64_t>(plan.gemv_rows, m - m0));
    const T* xs = x + m0 * a.k;
    T* ys = y + m0 * a.n;
    switch (plan.gemv_rows) {
      case 1:
        gemv_kernel<T, BITS, 1><<<blocks, kGemvWarps * 32, 0, s>>>(a, xs, ys, rows);
        break;
      case 4:
        gemv_kernel<T, BITS, 4><<<blocks, kGemvWarps * 32, 0, s>>>(a, xs, ys, rows);
        break;
      default:
        gemv_kernel<T, BITS, 16><<<blocks, kGemvWarps * 32, 0, s>>>(a, xs, ys, rows);
        break;
    }
    LOWBIT_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void gemm_weight_only(Context& ctx, const DeviceWeightOnly& w, const void* x, int64_t m, void* y,
                      ActDType dtype, WeightOnlyKernel kernel) {
  if (dtype != w.scale_dtype)
    throw_error(std::string("gemm_weight_only: activations are ") + to_string(dtype) +
                " but the weight was laid out for " + to_string(w.scale_dtype));
  if (w.bits != 4 && w.bits != 8) throw_error("gemm_weight_only: unsupported bits " + std::to_string(w.bits));
  if (w.n > INT32_MAX / 2 || w.k_padded > INT32_MAX / 2 || m > INT32_MAX / 2)
    throw_error("gemm_weight_only: shape too large for 32-bit indexing");
  const WeightOnlyPlan plan = plan_weight_only(m, kernel);
  const WeightOnlyArgs a{static_cast<const uint32_t*>(w.qweight.data()),
                         w.scales.data(),
                         w.symmetric ? nullptr : static_cast<const int8_t*>(w.zeros.data()),
                         static_cast<int>(w.n),
                         static_cast<int>(w.k),
                         static_cast<int>(w.k_padded),
                         static_cast<int>(w.group_size),
                         static_cast<int>(w.num_groups),
                         w.k % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0};
  if (dtype == ActDType::F16) {
    if (w.bits == 4)
      launch<__half, 4>(ctx, a, x, m, y, plan);
    else
      launch<__half, 8>(ctx, a, x, m, y, plan);
  } else {
    if (w.bits == 4)
      launch<__nv_bfloat16, 4>(ctx, a, x, m, y, plan);
    else
      launch<__nv_bfloat16, 8>(ctx, a, x, m, y, plan);
  }
}

}  // namespace lowbit::cuda

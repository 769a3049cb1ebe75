// Warp-level tensor-core MMA wrappers (PTX mma.sync, sm_80+) and the fragment coordinates they use.
//
// Fragment ownership (PTX ISA, "Matrix fragments for mma.m16n8k16 / m16n8k32"): with gid = lane / 4 and
// tig = lane % 4,
//   16-bit m16n8k16: A reg0 = A[gid][2tig..+1], reg1 = A[gid+8][2tig..+1], reg2 = A[gid][2tig+8..+9],
//                    reg3 = A[gid+8][2tig+8..+9]; B reg0 = B[2tig..+1][gid], reg1 = B[2tig+8..+9][gid].
//   8-bit m16n8k32:  A reg0 = A[gid][4tig..+3], reg1 = A[gid+8][4tig..+3], reg2 = A[gid][4tig+16..+19],
//                    reg3 = A[gid+8][4tig+16..+19]; B reg0 = B[4tig..+3][gid], reg1 = B[4tig+16..+19][gid].
//   C/D (both):      c0, c1 = C[gid][2tig], C[gid][2tig+1]; c2, c3 = C[gid+8][2tig], C[gid+8][2tig+1].
// Lower k indices sit in the lower bits of a register, so a 32-bit load from a k-contiguous shared-memory row
// yields a register directly. Our shared tiles are stored [row][k] for both X (A, row-major) and W (B,
// "col" = n-major), which is exactly what these loads need.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace lowbit::cuda {

template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

__device__ __forceinline__ void mma_16832_s8(int (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

}  // namespace lowbit::cuda

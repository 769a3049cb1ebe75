// std::vector with cache-line-aligned storage, for buffers that kernels read in whole 64-byte rows.
//
// Why: an AMX tile load reads 16 rows of 64 bytes. malloc returns 16-byte-aligned memory, so every row of
// a tile then straddles two cache lines and the load moves twice the data: the bf16 tile kernel ran at
// half speed (kernels_bench CalibGemm, docs/PERFORMANCE.md "AMX operands on cache lines").
//
// The storage is plain malloc memory, over-allocated by kAlign bytes and offset to the boundary (the
// original pointer sits just below the aligned one). Not aligned_alloc / aligned operator new: glibc's
// memalign splits its chunks and leaves fragments that keep the heap from shrinking; AWQ, which repacks
// candidate weights thousands of times, peaked at 534 instead of 313 MiB with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace lowbit {

template <class T, std::size_t kAlign = 64>
struct AlignedAllocator {
  static_assert(kAlign >= sizeof(void*) && (kAlign & (kAlign - 1)) == 0);
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, kAlign>;
  };

  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, kAlign>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > (SIZE_MAX - kAlign) / sizeof(T)) throw std::bad_alloc();
    void* raw = std::malloc(n * sizeof(T) + kAlign);
    if (raw == nullptr) throw std::bad_alloc();
    // The original pointer goes just below the aligned address: malloc's alignment (16 bytes on x86-64,
    // at least a pointer's size anywhere) leaves that much room.
    const auto aligned = (reinterpret_cast<std::uintptr_t>(raw) + kAlign) & ~std::uintptr_t{kAlign - 1};
    reinterpret_cast<void**>(aligned)[-1] = raw;
    return reinterpret_cast<T*>(aligned);
  }
  void deallocate(T* p, std::size_t) noexcept {
    if (p != nullptr) std::free(reinterpret_cast<void**>(p)[-1]);
  }

  template <class U>
  bool operator==(const AlignedAllocator<U, kAlign>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace lowbit

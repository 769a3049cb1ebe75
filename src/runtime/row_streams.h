// The order in which the decode kernels (kernels_hwy.cc, kernels_packed_int16.cc, kernels_packed_fp8.cc)
// visit their weight rows.
//
// Why: they multiply four rows per step, and a decode step streams every row once. Four adjacent rows are
// four streams interleaved inside the same pages (a bf16 row is 1.5 KiB at K = 768, an int4 row 384 bytes),
// which the hardware prefetcher follows poorly; four rows from four quarters of the range are four
// sequential streams, which one core reads faster than one stream (docs/PERFORMANCE.md, session 10). Which
// rows share a step changes no row's summation order.
#pragma once

#include <cstdint>

namespace lowbit::kernels {

constexpr int kRowStreams = 4;  // rows per step, one from each quarter
// How far ahead of its reads each row's stream is prefetched, in bytes. A prefetch never faults, so running
// past the last row is harmless.
constexpr int64_t kRowStreamPrefetchBytes = 1024;

// Prefetches p, ahead of a row stream's reads, as non-temporal. Why: a decode step streams every weight
// once, more bytes than the caches hold, so each weight line is evicted before it is read again; with a
// temporal prefetch the lines go through L2 and, evicted from it, fill the victim L3 too, evicting what is
// reused every token (the KV cache, activations). Measured: W4A16 decode 8-21 % faster on the Zen 3 VM,
// more with a longer context (docs/PERFORMANCE.md, session 13; the mechanism is inferred, the VM has no
// performance counters). Used by the int4 / 8-bit decode kernels (kernels_packed_int16.cc); the bf16 gemv
// (kernels_hwy.cc) was slower with it and the fp8 decoder no faster, so they prefetch temporally.
inline void prefetch_row_stream(const void* p) {
  __builtin_prefetch(p, 0, 0);
}

// Calls four(n) with n[kRowStreams] = the j-th row of each quarter of [n_begin, n_end), for every j, then
// one(&row) for each row the quarters leave over.
template <typename Four, typename One>
inline void for_rows_in_four_streams(int64_t n_begin, int64_t n_end, Four&& four, One&& one) {
  const int64_t quarter = (n_end - n_begin) / kRowStreams;
  for (int64_t j = 0; j < quarter; ++j) {
    int64_t n[kRowStreams];
    for (int r = 0; r < kRowStreams; ++r) n[r] = n_begin + r * quarter + j;
    four(n);
  }
  for (int64_t row = n_begin + kRowStreams * quarter; row < n_end; ++row) one(&row);
}

}  // namespace lowbit::kernels

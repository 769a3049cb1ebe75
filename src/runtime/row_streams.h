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

// How the packed decode products (kernels_packed_int16.cc) prefetch their weight rows ahead of their reads:
// non-temporal (prefetchnta) or temporal (prefetcht0, into every cache level).
//
// Why it depends on the CPU: a decode step streams every weight once, more bytes than L2 holds. On the
// AMD Zen 3 VM a temporal prefetch sends those lines through L2 into the victim L3, evicting what is reused
// every token (the KV cache, activations), and non-temporal prefetches made W4A16 decode 8-21 % faster
// (docs/PERFORMANCE.md, session 13). On the Intel Xeon VM with AMX they made it 3.6x *slower* (215 against
// 760-800 tok/s, session 21): there a prefetchnta line skips L2 and its prefetchers, so each of the four
// streams runs only kRowStreamPrefetchBytes ahead of its reads, far too little to cover DRAM's latency.
// (Both mechanisms are inferred: neither VM exposes performance counters.) So non-temporal on AMD CPUs,
// temporal elsewhere; LOWBIT_ROW_PREFETCH=nta or =t0 in the environment overrides the choice at start.
bool row_stream_prefetch_non_temporal();
// Tests and benchmarks: every later decode product prefetches that way.
void set_row_stream_prefetch_non_temporal(bool non_temporal);

// Prefetches p, ahead of a row stream's reads, the way `non_temporal` says.
inline void prefetch_row_stream(const void* p, bool non_temporal) {
  if (non_temporal) {
    __builtin_prefetch(p, 0, 0);
  } else {
    __builtin_prefetch(p, 0, 3);
  }
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

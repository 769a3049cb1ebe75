#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

namespace lowbit {
namespace {

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  ThreadPool pool(4);
  for (size_t n : {0ul, 1ul, 7ul, 1000ul, 4097ul}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, 3, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i]++;
    });
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

// Guided scheduling: the chunks shrink, but each is a whole number of grains except the one that ends at n.
TEST(ThreadPool, ChunksAreWholeGrains) {
  ThreadPool pool(3);
  for (size_t n : {5ul, 96ul, 1000ul, 32000ul}) {
    std::mutex mutex;
    std::vector<std::pair<size_t, size_t>> ranges;
    pool.parallel_for(n, 4, [&](size_t b, size_t e) {
      std::lock_guard<std::mutex> lock(mutex);
      ranges.emplace_back(b, e);
    });
    std::sort(ranges.begin(), ranges.end());
    size_t covered = 0;
    for (const auto& [b, e] : ranges) {
      EXPECT_EQ(b, covered) << "n=" << n;
      EXPECT_GT(e, b);
      if (e != n) {
        EXPECT_EQ((e - b) % 4, 0u) << "n=" << n << " range " << b << ".." << e;
      }
      covered = e;
    }
    EXPECT_EQ(covered, n);
  }
}

// Regions issued both while the workers spin and after they have gone to sleep (the spin lasts well under
// 10 ms), and with pauses around the end of the spin: a lost wake-up would hang here.
TEST(ThreadPool, WakesSleepingAndSpinningWorkers) {
  ThreadPool pool(3);
  long expected = 0;
  std::atomic<long> sum{0};
  for (int round = 0; round < 2000; ++round) {
    if (round % 400 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (round % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(15 * (round % 11)));
    pool.run_on_all([&](int i) { sum += i + 1; });
    expected += 1 + 2 + 3;
  }
  EXPECT_EQ(sum.load(), expected);
}

TEST(ThreadPool, NestedParallelForRunsInline) {
  ThreadPool pool(3);
  std::atomic<long> sum{0};
  pool.parallel_for(10, 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      pool.parallel_for(10, 1, [&](size_t b2, size_t e2) {
        for (size_t j = b2; j < e2; ++j) sum += static_cast<long>(i * 10 + j);
      });
  });
  EXPECT_EQ(sum.load(), 99 * 100 / 2);
}

TEST(ThreadPool, ExceptionsPropagate) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(100, 1,
                                 [&](size_t b, size_t) {
                                   if (b > 50) throw std::runtime_error("boom");
                                 }),
               std::runtime_error);
  // The pool is still usable afterwards.
  std::atomic<int> count{0};
  pool.parallel_for(10, 1, [&](size_t b, size_t e) { count += static_cast<int>(e - b); });
  EXPECT_EQ(count.load(), 10);
}

}  // namespace
}  // namespace lowbit

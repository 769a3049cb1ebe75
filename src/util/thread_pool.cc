#include "util/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>

namespace lowbit {

namespace {
// Set while a thread runs a pool job: a nested parallel_for then runs inline instead of deadlocking.
thread_local bool t_inside_job = false;

// About 50-100 microseconds of polling (a `pause` takes tens of cycles) before a thread blocks.
constexpr int kSpinIterations = 2000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  size_t seen = 0;
  for (;;) {
    // Spin briefly before sleeping: a decode step issues ~60 parallel regions a few microseconds apart, and
    // a futex sleep/wake per region would cost more than the work. Idle pools still sleep after the spin.
    // The fast path takes no lock: job_ is published before generation_ is bumped.
    size_t generation = generation_.load(std::memory_order_acquire);
    for (int i = 0; generation == seen && !stop_.load(std::memory_order_relaxed); ++i) {
      if (i < kSpinIterations) {
        cpu_relax();
      } else {
        // Registered as a sleeper before the last check, under the mutex: a caller that bumps generation_
        // afterwards sees sleepers_ > 0 and notifies (both sides use sequentially consistent operations).
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        i = 0;
      }
      generation = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = generation;
    const std::function<void(int)>* job = job_;
    try {
      t_inside_job = true;
      (*job)(index);
      t_inside_job = false;
    } catch (...) {
      t_inside_job = false;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    if (pending_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      // The caller is inside done_.wait, or holds the mutex and is about to check pending_.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (workers_.empty() || t_inside_job) {
    for (int i = 0; i < size(); ++i) fn(i);
    return;
  }
  // No job is in flight here, so these plain writes race with nothing; bumping generation_ publishes them.
  job_ = &fn;
  error_ = nullptr;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);  // a registered sleeper is inside wake_.wait or still checking
    wake_.notify_all();
  }
  std::exception_ptr own_error;
  try {
    t_inside_job = true;
    fn(0);
  } catch (...) {
    own_error = std::current_exception();
  }
  t_inside_job = false;
  for (int i = 0; i < kSpinIterations && pending_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
  if (pending_.load() != 0) {
    std::unique_lock<std::mutex> lock(mutex_);
    caller_sleeping_.store(true);
    done_.wait(lock, [&] { return pending_.load() == 0; });
    caller_sleeping_.store(false);
  }
  job_ = nullptr;
  if (own_error) std::rethrow_exception(own_error);
  // A worker sets error_ before its decrement of pending_, which the load that saw 0 synchronizes with.
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t max_chunks = (n + grain - 1) / grain;
  const size_t threads = std::min<size_t>(static_cast<size_t>(size()), max_chunks);
  if (threads <= 1 || t_inside_job) {
    fn(0, n);
    return;
  }
  // Guided scheduling: each claim takes a share of what is left (a multiple of grain), so the chunks shrink
  // towards the end and the threads finish within about one grain of each other, with few claims.
  std::atomic<size_t> next{0};
  run_on_all([&](int) {
    size_t begin = next.load(std::memory_order_relaxed);
    while (begin < n) {
      const size_t left = n - begin;
      const size_t share = (left / (2 * threads) + grain - 1) / grain * grain;
      const size_t end = begin + std::min(left, std::max(grain, share));
      if (next.compare_exchange_weak(begin, end, std::memory_order_relaxed)) {
        fn(begin, end);
        begin = next.load(std::memory_order_relaxed);
      }
    }
  });
}

namespace {
int g_threads = 0;
std::unique_ptr<ThreadPool> g_pool;
std::mutex g_pool_mutex;
}  // namespace

ThreadPool& global_pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(g_threads);
  return *g_pool;
}

void set_global_threads(int threads) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool && g_pool->size() == (threads <= 0 ? g_pool->size() : threads) && threads == g_threads) return;
  g_threads = threads;
  g_pool.reset();
}

}  // namespace lowbit

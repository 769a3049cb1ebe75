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
    // Spin briefly before sleeping: a decode step issues ~100 parallel regions a few microseconds apart, and
    // a futex sleep/wake per region would cost more than the work. Idle pools still sleep after kSpin.
    for (int i = 0; i < kSpinIterations && generation_.load(std::memory_order_acquire) == seen &&
                    !stop_.load(std::memory_order_relaxed);
         ++i)
      cpu_relax();
    const std::function<void(int)>* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      job = job_;
    }
    try {
      t_inside_job = true;
      (*job)(index);
      t_inside_job = false;
    } catch (...) {
      t_inside_job = false;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the caller's wait: no lost wake-up
      done_.notify_one();
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (workers_.empty() || t_inside_job) {
    for (int i = 0; i < size(); ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  std::exception_ptr own_error;
  try {
    t_inside_job = true;
    fn(0);
  } catch (...) {
    own_error = std::current_exception();
  }
  t_inside_job = false;
  for (int i = 0; i < kSpinIterations && pending_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  job_ = nullptr;
  if (own_error) std::rethrow_exception(own_error);
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
  // Dynamic scheduling over ~4 chunks per thread balances uneven rows without much overhead.
  const size_t chunks = std::min(max_chunks, threads * 4);
  const size_t chunk = (n + chunks - 1) / chunks;
  std::atomic<size_t> next{0};
  run_on_all([&](int) {
    for (;;) {
      const size_t begin = next.fetch_add(chunk);
      if (begin >= n) return;
      fn(begin, std::min(n, begin + chunk));
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

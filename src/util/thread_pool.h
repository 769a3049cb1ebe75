// A small fixed-size thread pool with a blocking parallel_for. Kernels split work into contiguous
// ranges; the calling thread takes part, so a pool of N threads runs N-1 workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lowbit {

class ThreadPool {
 public:
  // threads <= 0 means "all hardware threads".
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n), each at least `grain` long (except the last),
  // and returns when all are done. Exceptions thrown by fn are rethrown on the calling thread.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

  // Calls fn(thread_index) once for each index in [0, size()). Called from inside a job (nesting),
  // both functions run inline on the calling thread.
  void run_on_all(const std::function<void(int)>& fn);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* job_ = nullptr;
  // Atomics so that waiting threads can poll them without the mutex; changes that a sleeper must see
  // are still made under the mutex.
  std::atomic<size_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};              // workers blocked (or about to block) on wake_
  std::atomic<bool> caller_sleeping_{false};  // the caller blocked (or about to block) on done_
  std::exception_ptr error_;
};

// The process-wide pool used by kernels; set_global_threads() before first use to choose its size.
ThreadPool& global_pool();
void set_global_threads(int threads);

}  // namespace lowbit

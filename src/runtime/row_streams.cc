// The process-wide choice of row_streams.h's prefetch hint.
#include "runtime/row_streams.h"

#include <atomic>
#include <cstdlib>
#include <string_view>

#include "util/error.h"

namespace lowbit::kernels {
namespace {

bool initial_non_temporal() {
  if (const char* value = std::getenv("LOWBIT_ROW_PREFETCH")) {
    const std::string_view v(value);
    if (v == "nta") return true;
    if (v == "t0") return false;
    fail("LOWBIT_ROW_PREFETCH={}: expected nta or t0", v);
  }
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

std::atomic<bool>& non_temporal_setting() {
  static std::atomic<bool> setting{initial_non_temporal()};
  return setting;
}

}  // namespace

bool row_stream_prefetch_non_temporal() {
  return non_temporal_setting().load(std::memory_order_relaxed);
}

void set_row_stream_prefetch_non_temporal(bool non_temporal) {
  non_temporal_setting().store(non_temporal, std::memory_order_relaxed);
}

}  // namespace lowbit::kernels

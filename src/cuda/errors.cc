// Error reporting for the .cu files, kept in a host-only translation unit so that fmt is compiled by the host
// compiler only.
#include <string>

#include "util/error.h"

namespace lowbit::cuda {

[[noreturn]] void throw_cuda_error(const char* what, const char* detail, const char* file, int line) {
  fail("CUDA error in {} ({}:{}): {}", what, file, line, detail);
}

[[noreturn]] void throw_error(const std::string& message) {
  fail("{}", message);
}

}  // namespace lowbit::cuda

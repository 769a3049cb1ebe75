// Runs the built `lowbit` binary as a user would and captures what it prints (tests/apps).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace lowbit::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout, and stderr too when merged
};

// `args` is appended to the binary's path and run through the shell.
inline CliResult run_cli(const std::string& args, bool merge_stderr = true) {
  const std::string cmd = std::string(LOWBIT_CLI) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  CliResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace lowbit::testing

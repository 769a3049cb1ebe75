// File helpers shared by every stage: whole-file reads with clear errors, and atomic output
// (write to a temporary name in the same folder, rename when complete) so that a crash or an error
// never leaves a half-written file under the final name.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace lowbit {

std::string read_file(const std::filesystem::path& path);

// Writes `contents` to `path` atomically.
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

// Calls write(tmp_path) then renames tmp_path to `path`; on exception the temporary is removed.
void write_atomic(const std::filesystem::path& path,
                  const std::function<void(const std::filesystem::path& tmp)>& write);

// An output folder built under a temporary name and renamed into place by commit(). If the object is
// destroyed without commit() (an error), the temporary folder is removed. Refuses an existing target
// unless overwrite is set; never writes into the target while it is being built.
class StagedDirectory {
 public:
  StagedDirectory(std::filesystem::path target, bool overwrite);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  const std::filesystem::path& path() const { return tmp_; }
  const std::filesystem::path& target() const { return target_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path tmp_;
  bool overwrite_;
  bool committed_ = false;
};

}  // namespace lowbit

#include "util/files.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <stdexcept>

#include "util/error.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("lowbit_files_test_" + name + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Files, WriteFileAtomicRoundTrip) {
  const fs::path dir = fresh_dir("rt");
  write_file_atomic(dir / "a.txt", "hello");
  EXPECT_EQ(read_file(dir / "a.txt"), "hello");
  // Only the final file remains: no temporaries.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(Files, FailedWriteLeavesNothing) {
  const fs::path dir = fresh_dir("fail");
  EXPECT_THROW(write_atomic(dir / "b.bin",
                            [](const fs::path& tmp) {
                              write_file_atomic(tmp, "partial");
                              throw std::runtime_error("disk full");
                            }),
               std::runtime_error);
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST(Files, ReadMissingFileNamesIt) {
  try {
    read_file("/nonexistent/lowbit/file.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/lowbit/file.txt"), std::string::npos);
  }
}

TEST(Files, StagedDirectoryRefusesExistingUnlessOverwrite) {
  const fs::path dir = fresh_dir("staged");
  const fs::path out = dir / "out";
  {
    StagedDirectory staged(out, false);
    write_file_atomic(staged.path() / "x", "1");
    EXPECT_FALSE(fs::exists(out));
    staged.commit();
  }
  EXPECT_EQ(read_file(out / "x"), "1");
  EXPECT_THROW(StagedDirectory(out, false), Error);
  {
    StagedDirectory staged(out, true);
    write_file_atomic(staged.path() / "y", "2");
    // Abandoned without commit: the old folder is untouched and the temporary is gone.
  }
  EXPECT_TRUE(fs::exists(out / "x"));
  EXPECT_FALSE(fs::exists(out / "y"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  {
    StagedDirectory staged(out, true);
    write_file_atomic(staged.path() / "y", "2");
    staged.commit();
  }
  EXPECT_FALSE(fs::exists(out / "x"));
  EXPECT_EQ(read_file(out / "y"), "2");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit

#include "util/files.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "util/error.h"

namespace fs = std::filesystem;

namespace lowbit {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}: {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("error reading {}", path.string());
  return ss.str();
}

namespace {
fs::path temp_sibling(const fs::path& path) {
  std::random_device rd;
  return path.parent_path() /
         fmt::format(".{}.tmp-{}-{:08x}", path.filename().string(), static_cast<long>(getpid()), rd());
}
}  // namespace

void write_atomic(const fs::path& path, const std::function<void(const fs::path& tmp)>& write) {
  const fs::path tmp = temp_sibling(path);
  try {
    write(tmp);
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
  write_atomic(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot create {}: {}", tmp.string(), std::strerror(errno));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) fail("error writing {}", tmp.string());
  });
}

StagedDirectory::StagedDirectory(fs::path target, bool overwrite)
    : target_(std::move(target)), overwrite_(overwrite) {
  if (target_.filename().empty()) target_ = target_.parent_path();
  if (fs::exists(target_) && !overwrite_)
    fail("output folder {} already exists (pass --overwrite to replace it)", target_.string());
  const fs::path parent = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) fail("cannot create {}: {}", parent.string(), ec.message());
  tmp_ = temp_sibling(target_);
  fs::create_directory(tmp_, ec);
  if (ec) fail("cannot create {}: {}", tmp_.string(), ec.message());
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void StagedDirectory::commit() {
  std::error_code ec;
  if (fs::exists(target_)) {
    // Move the old folder aside first so that a failure leaves either the old or the new one in place.
    const fs::path old = temp_sibling(target_);
    fs::rename(target_, old, ec);
    if (ec) fail("cannot replace {}: {}", target_.string(), ec.message());
    fs::rename(tmp_, target_, ec);
    if (ec) {
      fs::rename(old, target_);
      fail("cannot move {} to {}: {}", tmp_.string(), target_.string(), ec.message());
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, target_, ec);
    if (ec) fail("cannot move {} to {}: {}", tmp_.string(), target_.string(), ec.message());
  }
  committed_ = true;
}

}  // namespace lowbit

// SafetensorsWriter: streams tensor data into temporary files, assembles each shard when it is full, and
// renames everything into place in finish().
#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>

#include "io/safetensors.h"
#include "io/strict_json.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lowbit {

namespace {

// A file in the output folder under a temporary name, written through a descriptor and deleted when
// destroyed unless keep() was called (after it was renamed to its final name).
class TempFile {
 public:
  explicit TempFile(fs::path path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create {}: {}", path_.string(), std::strerror(errno));
  }
  ~TempFile() {
    close_fd();
    if (!kept_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const fs::path& path() const { return path_; }
  uint64_t size() const { return size_; }

  void write(const void* data, size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("error writing {}: {}", path_.string(), std::strerror(errno));
      p += w;
      n -= static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
    }
  }

  // Appends the whole content of `src`, in the kernel where the filesystem allows it.
  void append(const TempFile& src) {
    loff_t in_offset = 0;
    uint64_t left = src.size_;
    while (left > 0) {
      const ssize_t n = ::copy_file_range(src.fd_, &in_offset, fd_, nullptr, left, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // unsupported here (or a short source): copy the rest by hand
      left -= static_cast<uint64_t>(n);
      size_ += static_cast<uint64_t>(n);
    }
    std::vector<char> buffer(left > 0 ? (1 << 20) : 0);
    while (left > 0) {
      const ssize_t r = ::pread(src.fd_, buffer.data(), std::min<uint64_t>(left, buffer.size()), in_offset);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        fail("error reading {}: {}", src.path_.string(), r < 0 ? std::strerror(errno) : "short file");
      write(buffer.data(), static_cast<size_t>(r));
      in_offset += r;
      left -= static_cast<uint64_t>(r);
    }
  }

  void close() {
    if (fd_ >= 0 && ::close(fd_) != 0) {
      fd_ = -1;
      fail("error writing {}: {}", path_.string(), std::strerror(errno));
    }
    fd_ = -1;
  }

  // Renames the (closed) file; from now on it is kept.
  void rename_to(const fs::path& final_path) {
    close();
    std::error_code ec;
    fs::rename(path_, final_path, ec);
    if (ec) fail("cannot rename {} to {}: {}", path_.string(), final_path.string(), ec.message());
    path_ = final_path;
    kept_ = true;
  }

 private:
  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  fs::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool kept_ = false;
};

// Data is grouped by element size so that each tensor stays aligned to it: 8-, 4-, 2-, then 1-byte types.
constexpr size_t kGroups = 4;
size_t group_of(DType dtype) {
  switch (dtype_size(dtype)) {
    case 8:
      return 0;
    case 4:
      return 1;
    case 2:
      return 2;
    default:
      return 3;
  }
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

struct SafetensorsWriter::Impl {
  struct Pending {
    DType dtype;
    std::vector<int64_t> shape;
    size_t group;
    uint64_t offset;  // within its group
    uint64_t nbytes;
  };
  // The shard being filled: one temporary data file per group, and its tensors.
  struct OpenShard {
    std::array<std::unique_ptr<TempFile>, kGroups> data;
    std::map<std::string, Pending> tensors;
    uint64_t bytes = 0;
  };

  fs::path dir;
  std::string basename;
  uint64_t max_shard_bytes;
  std::map<std::string, std::string> metadata{{"format", "pt"}};
  std::set<std::string> names;
  uint64_t total_bytes = 0;
  std::unique_ptr<OpenShard> open;
  std::vector<std::unique_ptr<TempFile>> shards;      // closed shards, complete files under temporary names
  std::vector<std::vector<std::string>> shard_names;  // tensors of each closed shard
  bool finished = false;
  bool broken = false;  // a write failed: the temporary files no longer match the bookkeeping
  std::mt19937_64 rng{std::random_device{}()};

  fs::path temp_path(const std::string& what) {
    return dir / fmt::format(".{}.{}.tmp-{}-{:016x}", basename, what, static_cast<long>(::getpid()), rng());
  }

  std::string header_json(const OpenShard& shard) const {
    std::array<uint64_t, kGroups> group_start{};
    for (size_t g = 1; g < kGroups; ++g)
      group_start[g] = group_start[g - 1] + (shard.data[g - 1] ? shard.data[g - 1]->size() : 0);
    std::string text = "{";
    if (!metadata.empty()) text += "\"__metadata__\":" + nlohmann::json(metadata).dump();
    for (const auto& [name, t] : shard.tensors) {
      const uint64_t begin = group_start[t.group] + t.offset;
      if (text.size() > 1) text += ',';
      text += fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                          nlohmann::json(name).dump(), dtype_name(t.dtype), fmt::join(t.shape, ","), begin,
                          begin + t.nbytes);
    }
    text += '}';
    // Pad with spaces (valid JSON whitespace) so that the data starts 8-byte aligned, as the HF library does.
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
  }

  void close_shard() {
    if (!open) open = std::make_unique<OpenShard>();  // an empty file still carries the metadata
    const std::string header = header_json(*open);
    auto file = std::make_unique<TempFile>(temp_path(fmt::format("shard{}", shards.size() + 1)));
    const uint64_t header_len = header.size();
    file->write(&header_len, 8);  // little-endian on every machine lowbit runs on
    file->write(header.data(), header.size());
    for (const auto& group : open->data)
      if (group) file->append(*group);
    file->close();
    std::vector<std::string> tensor_names;
    for (const auto& [name, t] : open->tensors) tensor_names.push_back(name);
    shards.push_back(std::move(file));
    shard_names.push_back(std::move(tensor_names));
    open.reset();  // deletes the group files
  }

  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes) {
    if (finished) fail("{}: add(\"{}\") after finish()", dir.string(), name);
    if (broken) fail("{}: add(\"{}\") after an earlier write error", dir.string(), name);
    if (name.empty() || name == "__metadata__") fail("{}: invalid tensor name \"{}\"", dir.string(), name);
    if (find_invalid_utf8(name) != name.size())
      fail("{}: tensor name \"{}\" is not valid UTF-8", dir.string(), name);
    if (names.count(name) != 0) fail("{}: tensor \"{}\" added twice", dir.string(), name);
    for (int64_t d : shape)
      if (d < 0)
        fail("{}: tensor \"{}\" has a negative dimension in shape {}", dir.string(), name,
             shape_string(shape));
    uint64_t expected = 0;
    if (!tensor_nbytes(dtype, shape, &expected))
      fail("{}: tensor \"{}\" shape {} is too large", dir.string(), name, shape_string(shape));
    if (expected != nbytes)
      fail("{}: tensor \"{}\" of shape {} and dtype {} needs {} bytes but {} were given", dir.string(), name,
           shape_string(shape), dtype_name(dtype), expected, nbytes);
    if (data == nullptr && nbytes > 0) fail("{}: tensor \"{}\" has no data", dir.string(), name);

    broken = true;  // until the data is written and recorded
    if (open && max_shard_bytes > 0 && open->bytes > 0 && open->bytes + nbytes > max_shard_bytes)
      close_shard();
    if (!open) open = std::make_unique<OpenShard>();
    const size_t group = group_of(dtype);
    auto& file = open->data[group];
    if (!file) file = std::make_unique<TempFile>(temp_path(fmt::format("data{}", group)));
    const uint64_t offset = file->size();
    file->write(data, nbytes);
    broken = false;
    open->tensors.emplace(name, Pending{dtype, std::move(shape), group, offset, nbytes});
    open->bytes += nbytes;
    total_bytes += nbytes;
    names.insert(name);
  }

  std::vector<std::string> finish() {
    if (finished) fail("{}: finish() called twice", dir.string());
    if (broken) fail("{}: finish() after an earlier write error", dir.string());
    if (open || shards.empty()) close_shard();
    const size_t n = shards.size();
    std::vector<std::string> written;
    if (n == 1) {
      written.push_back(basename + ".safetensors");
      shards[0]->rename_to(dir / written[0]);
    } else {
      nlohmann::json weight_map = nlohmann::json::object();
      try {
        for (size_t i = 0; i < n; ++i) {
          const std::string file = fmt::format("{}-{:05d}-of-{:05d}.safetensors", basename, i + 1, n);
          shards[i]->rename_to(dir / file);
          written.push_back(file);
          for (const std::string& name : shard_names[i]) weight_map[name] = file;
        }
        nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
        const std::string index_name = basename + ".safetensors.index.json";
        write_file_atomic(dir / index_name, index.dump(2) + "\n");
        written.push_back(index_name);
      } catch (...) {
        // Leave nothing behind: the shards already renamed are removed too.
        std::error_code ec;
        for (const std::string& file : written) fs::remove(dir / file, ec);
        throw;
      }
    }
    finished = true;
    return written;
  }
};

SafetensorsWriter::SafetensorsWriter(fs::path dir, std::string basename, uint64_t max_shard_bytes)
    : impl_(std::make_unique<Impl>()) {
  if (basename.empty() || basename.find('/') != std::string::npos)
    fail("invalid safetensors base name \"{}\"", basename);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create {}: {}", dir.string(), ec.message());
  impl_->dir = std::move(dir);
  impl_->basename = std::move(basename);
  impl_->max_shard_bytes = max_shard_bytes;
}

SafetensorsWriter::~SafetensorsWriter() = default;  // temporaries of an unfinished writer delete themselves

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  if (!impl_->shards.empty() || impl_->finished)
    fail("{}: metadata \"{}\" set after the first shard was written", impl_->dir.string(), key);
  if (find_invalid_utf8(key) != key.size() || find_invalid_utf8(value) != value.size())
    fail("{}: metadata \"{}\" is not valid UTF-8", impl_->dir.string(), key);
  impl_->metadata[key] = value;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
  impl_->add(name, dtype, std::move(shape), data, nbytes);
}

std::vector<std::string> SafetensorsWriter::finish() {
  return impl_->finish();
}

}  // namespace lowbit

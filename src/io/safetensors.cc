// Reading: SafetensorsFile (one mmapped file) and Checkpoint (a folder of shards, mapped lazily).
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "io/strict_json.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lowbit {

namespace {

// The Python library refuses headers above 100 MB; a larger length field means a corrupt or foreign file.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- SafetensorsFile -----------------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const fs::path& path) : path_(path) {
  const std::string file = path.string();
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail("cannot open {}: {}", file, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail("cannot stat {}: {}", file, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{} is not a regular file", file);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) fail("{}: file is {} bytes, shorter than the 8-byte header length", file, size);

  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (map == MAP_FAILED) fail("cannot map {}: {}", file, std::strerror(errno));
  map_ = static_cast<const std::byte*>(map);
  map_size_ = size;
  try {
    uint64_t header_len = 0;
    std::memcpy(&header_len, map_, 8);  // little-endian, as is every machine lowbit runs on
    if (header_len > kMaxHeaderBytes)
      fail("{}: header length {} is larger than the 100 MB limit (corrupt or not a safetensors file)", file,
           header_len);
    if (header_len > size - 8)
      fail("{}: header length {} runs past the end of the file ({} bytes)", file, header_len, size);
    const std::string_view text(reinterpret_cast<const char*>(map_ + 8), header_len);
    data_ = map_ + 8 + header_len;
    header_ = parse_safetensors_header(text, size - 8 - header_len, file);
  } catch (...) {
    ::munmap(const_cast<std::byte*>(map_), map_size_);
    throw;
  }
  fd_ = fd.release();
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<std::byte*>(map_), map_size_);
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& [name, entry] : header_.tensors) out.push_back(name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return header_.tensors.count(name) != 0;
}

TensorView SafetensorsFile::get(const std::string& name) const {
  const auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) fail("{}: no tensor named \"{}\"", path_.string(), name);
  const SafetensorsHeader::Entry& e = it->second;
  return TensorView{name, e.dtype, e.shape, data_ + e.begin, static_cast<size_t>(e.end - e.begin)};
}

void SafetensorsFile::read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const {
  const TensorView view = get(name);
  if (offset > view.nbytes || nbytes > view.nbytes - offset)
    fail("{}: reading bytes [{}, {}) of tensor \"{}\", which has {}", path_.string(), offset, offset + nbytes,
         name, view.nbytes);
  auto* dst = static_cast<std::byte*>(out);
  auto position = static_cast<off_t>(static_cast<uint64_t>(view.data - map_) + offset);
  while (nbytes > 0) {
    const ssize_t got = ::pread(fd_, dst, nbytes, position);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      fail("{}: cannot read tensor \"{}\": {}", path_.string(), name,
           got < 0 ? std::strerror(errno) : "the file is shorter than when it was opened");
    dst += got;
    position += got;
    nbytes -= static_cast<size_t>(got);
  }
}

// ---- Checkpoint ----------------------------------------------------------------------------------------

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

// A shard name from an index must stay inside the checkpoint folder.
bool is_safe_relative(const std::string& name) {
  if (name.empty()) return false;
  const fs::path p(name);
  if (p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

Checkpoint::Checkpoint(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    // A path to one .safetensors file: treat its folder as the checkpoint with that single file.
    dir_ = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
    single_file_ = dir.filename().string();
  } else if (fs::is_directory(dir, ec)) {
    dir_ = dir;
  } else {
    fail("checkpoint {} does not exist", dir.string());
  }

  if (single_file_.empty()) {
    // The order transformers' from_pretrained uses: model.safetensors first, then the index.
    if (fs::exists(dir_ / "model.safetensors")) {
      single_file_ = "model.safetensors";
    } else if (fs::exists(dir_ / kIndexName)) {
      load_index(dir_ / kIndexName);
      return;
    } else {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(dir_, ec))
        if (entry.path().extension() == ".safetensors") found.push_back(entry.path().filename().string());
      if (found.empty())
        fail("{}: no {}, model.safetensors or other *.safetensors file", dir_.string(), kIndexName);
      if (found.size() > 1)
        fail("{}: several *.safetensors files ({} found) but no {} to say which tensors are where",
             dir_.string(), found.size(), kIndexName);
      single_file_ = found.front();
    }
  }
  const SafetensorsFile& file = shard(single_file_);
  for (const std::string& name : file.names()) tensor_to_file_.emplace(name, single_file_);
}

Checkpoint::~Checkpoint() = default;

void Checkpoint::load_index(const fs::path& index_path) {
  const std::string index = index_path.string();
  // {"metadata": {...}, "weight_map": {name: file}}: two levels.
  const nlohmann::json root = parse_strict_json(read_file(index_path), index, 2);
  if (!root.is_object()) fail("{}: not a JSON object", index);
  const auto map = root.find("weight_map");
  if (map == root.end() || !map->is_object()) fail("{}: missing or non-object \"weight_map\"", index);
  std::map<std::string, std::string> first_tensor_of_file;
  for (const auto& [name, file] : map->items()) {
    if (!file.is_string()) fail("{}: weight_map entry for tensor \"{}\" is not a file name", index, name);
    const auto& file_name = file.get_ref<const std::string&>();
    if (!is_safe_relative(file_name))
      fail("{}: tensor \"{}\" is mapped to \"{}\", which is not a file inside {}", index, name, file_name,
           dir_.string());
    tensor_to_file_.emplace(name, file_name);
    first_tensor_of_file.emplace(file_name, name);
  }
  // Cheap existence checks now (a stat per shard) so that a broken download fails at open, not mid-load.
  for (const auto& [file_name, tensor] : first_tensor_of_file) {
    std::error_code ec;
    if (!fs::is_regular_file(dir_ / file_name, ec))
      fail("{}: shard {} (holding tensor \"{}\") is missing", index, (dir_ / file_name).string(), tensor);
  }
  index_path_ = index_path;
}

const SafetensorsFile& Checkpoint::shard(const std::string& file) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = shards_[file];
  if (!slot) slot = std::make_unique<SafetensorsFile>(dir_ / file);
  return *slot;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensor_to_file_.size());
  for (const auto& [name, file] : tensor_to_file_) out.push_back(name);
  return out;
}

bool Checkpoint::contains(const std::string& name) const {
  return tensor_to_file_.count(name) != 0;
}

TensorView Checkpoint::get(const std::string& name) const {
  const auto it = tensor_to_file_.find(name);
  if (it == tensor_to_file_.end()) fail("{}: no tensor named \"{}\"", dir_.string(), name);
  const SafetensorsFile& file = shard(it->second);
  if (!file.contains(name))
    fail("{}: tensor \"{}\" is listed in the index but missing from shard {}", index_path_.string(), name,
         file.path().string());
  return file.get(name);
}

void Checkpoint::read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const {
  const auto it = tensor_to_file_.find(name);
  if (it == tensor_to_file_.end()) fail("{}: no tensor named \"{}\"", dir_.string(), name);
  shard(it->second).read(name, offset, nbytes, out);
}

void Checkpoint::release(const std::string& name) const {
  const auto it = tensor_to_file_.find(name);
  const std::string& file = it == tensor_to_file_.end() ? single_file_ : it->second;
  const SafetensorsFile* shard_file = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto s = shards_.find(file);
    if (s != shards_.end()) shard_file = s->second.get();
  }
  if (shard_file == nullptr || !shard_file->contains(name)) return;
  const TensorView view = shard_file->get(name);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(view.data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(view.data) + view.nbytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::map<std::string, std::string> Checkpoint::metadata() const {
  if (tensor_to_file_.empty())
    return single_file_.empty() ? std::map<std::string, std::string>{} : shard(single_file_).metadata();
  std::string first = tensor_to_file_.begin()->second;
  for (const auto& [name, file] : tensor_to_file_) first = std::min(first, file);
  return shard(first).metadata();
}

void Checkpoint::validate() const {
  for (const auto& [name, file] : tensor_to_file_) get(name);
}

std::vector<std::string> Checkpoint::files() const {
  std::set<std::string> files;
  for (const auto& [name, file] : tensor_to_file_) files.insert(file);
  if (!single_file_.empty()) files.insert(single_file_);
  return {files.begin(), files.end()};
}

}  // namespace lowbit

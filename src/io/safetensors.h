// safetensors files: zero-copy mmap reading of single files and sharded checkpoints, and an atomic,
// sharding writer. Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping tensor names
// to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the end of the header) plus an optional
// "__metadata__" string map, then the data. Every malformed input is rejected with lowbit::Error naming the
// file (and tensor) involved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace lowbit {

// A read-only view of one stored tensor. `data` points into the mapped file and stays valid as long as
// the SafetensorsFile / Checkpoint that produced it lives.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data), nbytes / sizeof(T)};
  }
};

// Header-only parse result (no file access), exposed for the fuzzer and for validation tests.
struct SafetensorsHeader {
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // relative to the data section
    uint64_t end = 0;
  };
  std::map<std::string, Entry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header's JSON text against a data section of `data_size` bytes: valid UTF-8 JSON
// object, known dtypes, non-negative shapes, byte length == numel * dtype size, offsets in range and not
// overlapping, no duplicate names. `file_name` is used in error messages.
SafetensorsHeader parse_safetensors_header(std::string_view json_text, uint64_t data_size,
                                           const std::string& file_name);

class SafetensorsFile {
 public:
  // Maps the file read-only and validates its header.
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // Throws lowbit::Error naming the file and tensor when absent.
  TensorView get(const std::string& name) const;

 private:
  std::filesystem::path path_;
  const std::byte* map_ = nullptr;
  size_t map_size_ = 0;
  const std::byte* data_ = nullptr;
  SafetensorsHeader header_;
};

// A Hugging Face checkpoint folder: either model.safetensors or model.safetensors.index.json with shards
// (a single *.safetensors file of another name is accepted too). Shards are mapped lazily on first access.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir);
  ~Checkpoint();

  const std::filesystem::path& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  TensorView get(const std::string& name) const;
  // Metadata of the first shard (compressed-tensors writes its format marker here).
  std::map<std::string, std::string> metadata() const;

 private:
  const SafetensorsFile& shard(const std::string& file) const;

  std::filesystem::path dir_;
  std::map<std::string, std::string> tensor_to_file_;
  mutable std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;
};

// Writes tensors into one or more safetensors files. Data is copied at add() time, so callers may pass
// temporaries; a shard that fills up is flushed to a temporary file at once, so memory stays bounded by
// one shard (quantizing a model larger than RAM streams through here). finish() gives the shards their
// final names (model-0000i-of-0000n.safetensors plus model.safetensors.index.json when there is more than
// one, else `<basename>.safetensors`); an exception or a writer destroyed before finish() leaves nothing.
class SafetensorsWriter {
 public:
  // max_shard_bytes == 0 means a single file.
  SafetensorsWriter(std::filesystem::path dir, std::string basename = "model", uint64_t max_shard_bytes = 0);
  ~SafetensorsWriter();

  void set_metadata(const std::string& key, const std::string& value);
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  void add(const TensorView& view) { add(view.name, view.dtype, view.shape, view.data, view.nbytes); }
  // Returns the files written (relative names).
  std::vector<std::string> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit

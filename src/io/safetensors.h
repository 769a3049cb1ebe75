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
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace lowbit {

// A read-only view of one stored tensor. `data` points into the mapped file and stays valid as long as
// the SafetensorsFile / Checkpoint that produced it lives. `data` is aligned to 8 bytes in files written by
// lowbit or the Hugging Face libraries (they pad the header); another writer may leave it unaligned, so code
// that must not assume alignment reads through memcpy or convert_to_f32.
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
// overlapping, no duplicate names (nor duplicate fields inside an entry), "__metadata__" a string map (or
// null). Unknown fields inside an entry are ignored, as in the Python library; unlike it, gaps between
// tensors and unused trailing bytes are tolerated (harmless: only validated ranges are ever read).
// `file_name` is used in error messages. Throws lowbit::Error.
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
  // Copies bytes [offset, offset + nbytes) of tensor `name` into `out` with pread, without touching the
  // mapping: the pages stay in the page cache, outside this process's resident set. (Reading a few rows of
  // a large table through the mapping maps the kernel's whole fault-around window, 64 KiB, per row.)
  void read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const;
  const SafetensorsHeader& header() const { return header_; }
  // The whole mapped file; every TensorView::data of this file lies inside it (zero-copy).
  std::span<const std::byte> mapping() const { return {map_, map_size_}; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;  // kept open for read()
  const std::byte* map_ = nullptr;
  size_t map_size_ = 0;
  const std::byte* data_ = nullptr;
  SafetensorsHeader header_;
};

// A Hugging Face checkpoint folder: model.safetensors, else model.safetensors.index.json with shards (the
// order transformers uses), else a single *.safetensors file of another name; a path to one .safetensors
// file is accepted too.
// Opening reads only the index and checks that every shard it names exists; shards are mapped lazily on
// first access (thread-safe), so listing the tensors of a large sharded checkpoint takes milliseconds.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir);
  ~Checkpoint();

  const std::filesystem::path& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  // Throws lowbit::Error naming the tensor (and index and shard) when absent.
  TensorView get(const std::string& name) const;
  // SafetensorsFile::read on the shard that holds `name`.
  void read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const;
  // Metadata of the first shard (compressed-tensors writes its format marker here).
  std::map<std::string, std::string> metadata() const;
  // Safetensors files of the checkpoint, relative to dir(), sorted.
  std::vector<std::string> files() const;
  // Maps every shard and checks that each tensor of the index is present (get() checks lazily otherwise).
  void validate() const;
  // Drops the mapped pages of a tensor from this process's resident set (madvise MADV_DONTNEED on the
  // whole pages inside it; the data stays in the page cache and is read back on the next access). Lets a
  // layer-by-layer pass over a model larger than RAM keep its RSS bounded. No-op for unmapped shards.
  void release(const std::string& name) const;

 private:
  void load_index(const std::filesystem::path& index_path);
  const SafetensorsFile& shard(const std::string& file) const;

  std::filesystem::path dir_;
  std::filesystem::path index_path_;  // empty without an index
  std::string single_file_;           // the file name when there is no index
  std::map<std::string, std::string> tensor_to_file_;
  mutable std::mutex mutex_;  // guards shards_
  mutable std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;
};

// Writes tensors into one or more safetensors files. Data is copied at add() time (into a temporary file in
// `dir`), so callers may pass temporaries and memory does not grow with the tensors written, sharded or
// not (quantizing a model larger than RAM streams through here). A shard that would exceed max_shard_bytes
// is closed before the tensor that does not fit (a tensor larger than the limit gets a shard of its own).
// finish() gives the shards their final names (`<basename>-0000i-of-0000n.safetensors` plus
// `<basename>.safetensors.index.json` with metadata.total_size and weight_map when there is more than one,
// else `<basename>.safetensors`); an exception or a writer destroyed before finish() leaves nothing behind.
// Each file's header lists tensors sorted by name, carries the metadata (which starts as {"format": "pt"}:
// transformers refuses files without it) and is padded with spaces to a multiple of 8 bytes like the
// Hugging Face library does. Data is grouped by element size (8, 4, 2, then 1 byte; add() order within a
// group), so every tensor is aligned to its element size, as in files the Python library writes.
class SafetensorsWriter {
 public:
  // max_shard_bytes == 0 means a single file.
  SafetensorsWriter(std::filesystem::path dir, std::string basename = "model", uint64_t max_shard_bytes = 0);
  ~SafetensorsWriter();

  // Metadata goes into every file; setting it after the first shard was closed is an error.
  void set_metadata(const std::string& key, const std::string& value);
  // Throws on a duplicate or reserved name, or when nbytes != numel * dtype size (naming the tensor).
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  void add(const TensorView& view) { add(view.name, view.dtype, view.shape, view.data, view.nbytes); }
  // Returns the files written (relative names): the shards, then the index when there is one.
  std::vector<std::string> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit

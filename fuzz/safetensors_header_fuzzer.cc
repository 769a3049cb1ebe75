// libFuzzer target for the safetensors reader: parse_safetensors_header on the raw input, and SafetensorsFile
// on the input as a whole file (through a memfd). Any input must either be accepted with all invariants
// holding (every tensor's bytes inside the data section, sized numel * dtype size, no overlaps) or be
// rejected with lowbit::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
// Accepted files are also copied through SafetensorsWriter and must read back identical.
//
// Build and run (clang, ASan + UBSan; the io sources are compiled with coverage instrumentation):
//   cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLOWBIT_FUZZ=ON \
//         -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_BENCH=OFF -DLOWBIT_CUDA=OFF
//         -DCMAKE_BUILD_TYPE=RelWithDebInfo
//   cmake --build build/fuzz --target safetensors_header_fuzzer -j2
//   mkdir -p build/fuzz/corpus && cp fuzz/corpus/safetensors/* build/fuzz/corpus/
//   build/fuzz/fuzz/safetensors_header_fuzzer build/fuzz/corpus -dict=fuzz/safetensors.dict \
//         -max_total_time=60 -max_len=4096
// A crash leaves crash-<sha1> in the working folder; replay it with `safetensors_header_fuzzer crash-<sha1>`.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"
#include "util/error.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

void check_header(const lowbit::SafetensorsHeader& header, uint64_t data_size) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, e] : header.tensors) {
    if (e.begin > e.end || e.end > data_size) broken("offsets outside the data section");
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d < 0) broken("negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * lowbit::dtype_size(e.dtype) != e.end - e.begin) broken("byte length != numel * dtype size");
    if (e.end > e.begin) ranges.emplace_back(e.begin, e.end);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) broken("overlapping tensors accepted");
}

void fuzz_header(std::string_view text) {
  // Let the input's length pick the data section size so that both fitting and too-short cases occur.
  const uint64_t data_size = text.size() * 2;
  try {
    check_header(lowbit::parse_safetensors_header(text, data_size, "fuzz.safetensors"), data_size);
  } catch (const lowbit::Error&) {
  }
}

// An accepted file copied through SafetensorsWriter must read back identical (names needing JSON escapes,
// odd metadata, empty and scalar tensors, every dtype).
struct RewriteDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("lowbit_fuzz_rewrite_" + std::to_string(getpid()));
  ~RewriteDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

void check_rewrite(const lowbit::SafetensorsFile& file) {
  static const RewriteDir rewrite_dir;
  const std::filesystem::path& dir = rewrite_dir.path;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  {
    lowbit::SafetensorsWriter writer(dir);
    for (const auto& [key, value] : file.metadata()) writer.set_metadata(key, value);
    for (const std::string& name : file.names()) writer.add(file.get(name));
    writer.finish();
  }
  const lowbit::SafetensorsFile copy(dir / "model.safetensors");
  if (copy.names() != file.names()) broken("rewrite changed the tensor names");
  for (const auto& [key, value] : file.metadata()) {
    const auto it = copy.metadata().find(key);
    if (it == copy.metadata().end() || it->second != value) broken("rewrite changed the metadata");
  }
  for (const std::string& name : file.names()) {
    const lowbit::TensorView a = file.get(name);
    const lowbit::TensorView b = copy.get(name);
    if (a.dtype != b.dtype || a.shape != b.shape || a.nbytes != b.nbytes ||
        (a.nbytes > 0 && std::memcmp(a.data, b.data, a.nbytes) != 0))
      broken("rewrite changed a tensor");
  }
}

void fuzz_file(const uint8_t* data, size_t size) {
  const int fd = memfd_create("safetensors_fuzz", MFD_CLOEXEC);
  if (fd < 0) return;
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd, data + written, size - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  if (written == size) {
    try {
      const lowbit::SafetensorsFile file("/proc/self/fd/" + std::to_string(fd));
      const auto map = file.mapping();
      for (const std::string& name : file.names()) {
        const lowbit::TensorView view = file.get(name);
        if (view.data < map.data() || view.data + view.nbytes > map.data() + map.size())
          broken("tensor data outside the mapping");
        // Touch every byte, and decode a few elements, so that a bad range faults here.
        unsigned sum = 0;
        for (size_t i = 0; i < view.nbytes; ++i) sum += static_cast<unsigned>(view.data[i]);
        float decoded[16];
        const size_t n = std::min<size_t>(16, static_cast<size_t>(view.numel()));
        lowbit::convert_to_f32(view.dtype, view.data, decoded, n);
        volatile unsigned sink = sum + (n > 0 ? static_cast<unsigned>(decoded[0] == decoded[0]) : 0u);
        (void)sink;
      }
      check_rewrite(file);
    } catch (const lowbit::Error&) {
    }
  }
  close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_header(std::string_view(reinterpret_cast<const char*>(data), size));
  // A valid file's header starts after the 8-byte length: parse that part directly too.
  if (size >= 8) fuzz_header(std::string_view(reinterpret_cast<const char*>(data) + 8, size - 8));
  fuzz_file(data, size);
  return 0;
}

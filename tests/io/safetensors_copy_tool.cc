// Developer tool for tools/reference/check_safetensors_roundtrip.py (not a unit test): copies every tensor of
// a checkpoint through lowbit's reader and SafetensorsWriter so that the Python `safetensors` library can
// check that lowbit's files load there bit-exactly.
//   safetensors_copy_tool IN (folder or .safetensors file) OUT_DIR [MAX_SHARD_BYTES]
#include <cstdio>
#include <exception>
#include <string>

#include "io/safetensors.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s IN OUT_DIR [MAX_SHARD_BYTES]\n", argv[0]);
    return 2;
  }
  try {
    const lowbit::Checkpoint in(argv[1]);
    lowbit::SafetensorsWriter out(argv[2], "model", argc == 4 ? std::stoull(argv[3]) : 0);
    for (const auto& [key, value] : in.metadata()) out.set_metadata(key, value);
    out.set_metadata("written_by", "lowbit");
    for (const std::string& name : in.names()) out.add(in.get(name));
    for (const std::string& file : out.finish()) std::printf("%s\n", file.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

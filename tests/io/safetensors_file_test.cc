// SafetensorsFile: file-level validation (length field, truncation) with errors naming the file, and
// zero-copy access into the mapping.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "io/safetensors.h"
#include "test_files.h"
#include "util/error.h"

namespace lowbit {
namespace {

using testing::safetensors_bytes;
using testing::ScratchDir;
using testing::write_bytes;
using testing::write_safetensors;

void expect_open_fails(const std::filesystem::path& path, std::initializer_list<std::string> fragments) {
  try {
    SafetensorsFile file(path);
    ADD_FAILURE() << "opened " << path;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    for (const std::string& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
  }
}

const std::string kHeader = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

TEST(SafetensorsFile, ReadsTensorsZeroCopy) {
  ScratchDir dir("zero_copy");
  const float values[2] = {1.5f, -2.0f};
  std::string data(8, '\0');
  std::memcpy(data.data(), values, 8);
  write_safetensors(dir / "a.safetensors", kHeader, data);
  SafetensorsFile file(dir / "a.safetensors");
  EXPECT_EQ(file.names(), std::vector<std::string>{"w"});
  EXPECT_TRUE(file.contains("w"));
  EXPECT_FALSE(file.contains("v"));
  const TensorView w = file.get("w");
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.dtype, DType::F32);
  EXPECT_EQ(w.shape, std::vector<int64_t>{2});
  EXPECT_EQ(w.numel(), 2);
  ASSERT_EQ(w.nbytes, 8u);
  // The view points into the mapping, right after the 8-byte length and the header: nothing was copied.
  const auto map = file.mapping();
  EXPECT_EQ(map.size(), 8 + kHeader.size() + 8);
  EXPECT_EQ(w.data, map.data() + 8 + kHeader.size());
  EXPECT_EQ(std::memcmp(w.data, values, 8), 0);
}

TEST(SafetensorsFile, GetOfAnUnknownTensorNamesFileAndTensor) {
  ScratchDir dir("unknown");
  write_safetensors(dir / "a.safetensors", kHeader, std::string(8, '\0'));
  SafetensorsFile file(dir / "a.safetensors");
  try {
    file.get("missing.weight");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.safetensors"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("missing.weight"), std::string::npos);
  }
}

TEST(SafetensorsFile, RejectsMissingAndNonRegularFiles) {
  ScratchDir dir("missing");
  expect_open_fails(dir / "nope.safetensors", {"cannot open"});
  expect_open_fails(dir.path(), {"not a regular file"});
}

TEST(SafetensorsFile, RejectsFileShorterThan8Bytes) {
  ScratchDir dir("short");
  for (size_t n : {0, 1, 7}) {
    write_bytes(dir / "short.safetensors", std::string(n, '\x01'));
    expect_open_fails(dir / "short.safetensors", {"shorter than"});
  }
}

TEST(SafetensorsFile, RejectsHeaderLengthBeyondTheFile) {
  ScratchDir dir("header_len");
  write_bytes(dir / "t.safetensors", safetensors_bytes(kHeader, std::string(8, '\0'), kHeader.size() + 9));
  expect_open_fails(dir / "t.safetensors", {"past the end"});
  write_bytes(dir / "t.safetensors", safetensors_bytes("", "", 0xffffffffffffffffull));
  expect_open_fails(dir / "t.safetensors", {"100 MB"});
  write_bytes(dir / "t.safetensors", safetensors_bytes("{}", "", 100'000'001));
  expect_open_fails(dir / "t.safetensors", {"100 MB"});
}

TEST(SafetensorsFile, RejectsTruncatedData) {
  ScratchDir dir("truncated");
  write_safetensors(dir / "t.safetensors", kHeader, std::string(7, '\0'));
  expect_open_fails(dir / "t.safetensors", {"\"w\"", "beyond the data section (7 bytes)"});
}

TEST(SafetensorsFile, HeaderErrorsNameTheFile) {
  ScratchDir dir("header_errors");
  write_safetensors(dir / "t.safetensors", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                    "x");
  expect_open_fails(dir / "t.safetensors", {"\"w\"", "Q4"});
  write_safetensors(dir / "t.safetensors", "not json", "");
  expect_open_fails(dir / "t.safetensors", {"not valid JSON"});
  write_safetensors(dir / "t.safetensors", "{\"\xff\":1}", "");
  expect_open_fails(dir / "t.safetensors", {"UTF-8"});
}

TEST(SafetensorsFile, AcceptsEmptyHeaderAndEmptyTensors) {
  ScratchDir dir("empty");
  write_safetensors(dir / "e.safetensors", "{}      ", "");
  SafetensorsFile empty(dir / "e.safetensors");
  EXPECT_TRUE(empty.names().empty());
  write_safetensors(dir / "z.safetensors",
                    "{\"z\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", "");
  SafetensorsFile zero(dir / "z.safetensors");
  EXPECT_EQ(zero.get("z").nbytes, 0u);
  EXPECT_EQ(zero.get("z").numel(), 0);
}

}  // namespace
}  // namespace lowbit

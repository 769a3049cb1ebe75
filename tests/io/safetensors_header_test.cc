// parse_safetensors_header: each kind of malformed header is rejected with a message naming the file and,
// where there is one, the tensor.
#include <gtest/gtest.h>

#include <string>

#include "io/safetensors.h"
#include "util/error.h"

namespace lowbit {
namespace {

const std::string kFile = "dir/some_shard.safetensors";

// Expects parse to throw lowbit::Error whose message contains the file name and every fragment given.
void expect_rejected(const std::string& header, uint64_t data_size,
                     std::initializer_list<std::string> fragments) {
  try {
    parse_safetensors_header(header, data_size, kFile);
    ADD_FAILURE() << "accepted: " << header;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(kFile), std::string::npos) << message;
    for (const std::string& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
  }
}

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

TEST(SafetensorsHeader, ParsesAValidHeader) {
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
      "\"b\":" +
      entry("BF16", "[2,3]", "[0,12]") + ",\"a\":" + entry("F32", "[]", "[12,16]") +
      ",\"empty\":" + entry("I64", "[0,4]", "[16,16]") +
      ",\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[16,17],\"extra\":1}}   ";
  const SafetensorsHeader h = parse_safetensors_header(header, 17, kFile);
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.tensors.begin()->first, "a");  // sorted by name
  const auto& b = h.tensors.at("b");
  EXPECT_EQ(b.dtype, DType::BF16);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(b.begin, 0u);
  EXPECT_EQ(b.end, 12u);
  EXPECT_TRUE(h.tensors.at("a").shape.empty());  // a scalar has one element
  EXPECT_EQ(h.tensors.at("empty").shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.metadata.at("k"), "v");
}

TEST(SafetensorsHeader, AcceptsHarmlessVariations) {
  // No tensors and null metadata (as the Python library does); a gap before a tensor and trailing bytes
  // (which the Python library rejects, but which cannot make lowbit read outside a validated range).
  EXPECT_TRUE(parse_safetensors_header("{}", 0, kFile).tensors.empty());
  EXPECT_TRUE(parse_safetensors_header("{\"__metadata__\":null}", 0, kFile).metadata.empty());
  EXPECT_EQ(parse_safetensors_header("{\"a\":" + entry("U8", "[2]", "[4,6]") + "}", 8, kFile).tensors.size(),
            1u);
}

TEST(SafetensorsHeader, RejectsNonUtf8) {
  expect_rejected("{\"a\xff\":" + entry("U8", "[1]", "[0,1]") + "}", 1, {"UTF-8"});
  expect_rejected("{\"\xc0\xaf\":1}", 1, {"UTF-8"});      // overlong encoding
  expect_rejected("{\"\xed\xa0\x80\":1}", 1, {"UTF-8"});  // a surrogate
  expect_rejected("{\"\xe2\x82\":1}", 1, {"UTF-8"});      // truncated sequence
}

TEST(SafetensorsHeader, RejectsNonJsonAndNonObjects) {
  expect_rejected("{\"a\":", 0, {"not valid JSON"});
  expect_rejected("", 0, {"not valid JSON"});
  expect_rejected("{} {}", 0, {"not valid JSON"});
  expect_rejected("[1,2]", 0, {"not a JSON object"});
  expect_rejected("\"text\"", 0, {"not a JSON object"});
  expect_rejected("{\"a\":[[[[[1]]]]]}", 0, {"nested deeper"});
}

TEST(SafetensorsHeader, RejectsEntryThatIsNotAnObject) {
  expect_rejected("{\"w\":5}", 0, {"\"w\"", "not a JSON object"});
  expect_rejected("{\"w\":[0,1]}", 0, {"\"w\"", "not a JSON object"});
}

TEST(SafetensorsHeader, RejectsUnknownOrMissingDtype) {
  expect_rejected("{\"w\":" + entry("U16", "[1]", "[0,2]") + "}", 2, {"\"w\"", "unsupported dtype \"U16\""});
  expect_rejected("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, {"\"w\"", "dtype"});
  expect_rejected("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, {"\"w\"", "dtype"});
}

TEST(SafetensorsHeader, RejectsBadShapes) {
  for (const std::string shape : {"[-1,2]", "[2.5]", "[2.0]", "[\"2\"]", "[null]", "[1e2]"})
    expect_rejected("{\"w\":" + entry("U8", shape, "[0,2]") + "}", 2, {"\"w\"", "non-negative integer"});
  expect_rejected("{\"w\":" + entry("U8", "5", "[0,5]") + "}", 5, {"\"w\"", "shape"});
  expect_rejected("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, {"\"w\"", "shape"});
  // Products that overflow 64 bits must not wrap around to a small, "valid" size.
  expect_rejected("{\"w\":" + entry("F32", "[4294967296,4294967296]", "[0,0]") + "}", 0,
                  {"\"w\"", "too large"});
  expect_rejected("{\"w\":" + entry("F32", "[4611686018427387904]", "[0,0]") + "}", 0,
                  {"\"w\"", "too large"});
  // Element counts must fit int64 (TensorView::numel) even when a later zero makes the product 0.
  expect_rejected("{\"w\":" + entry("U8", "[4611686018427387904,2,0]", "[0,0]") + "}", 0,
                  {"\"w\"", "too large"});
  expect_rejected("{\"w\":" + entry("U8", "[9223372036854775808]", "[0,0]") + "}", 0, {"\"w\"", "too large"});
}

TEST(SafetensorsHeader, RejectsBadDataOffsets) {
  for (const std::string offsets :
       {"[0]", "[0,1,2]", "{}", "5", "[-1,1]", "[0,1.0]", "[\"0\",\"1\"]", "null"})
    expect_rejected("{\"w\":" + entry("U8", "[1]", offsets) + "}", 4, {"\"w\"", "data_offsets"});
  expect_rejected("{\"w\":" + entry("U8", "[0]", "[3,2]") + "}", 4, {"\"w\"", "begin > end"});
  expect_rejected("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, {"\"w\"", "data_offsets"});
}

TEST(SafetensorsHeader, RejectsOffsetsBeyondTheDataSection) {
  expect_rejected("{\"w\":" + entry("U8", "[4]", "[2,6]") + "}", 5, {"\"w\"", "beyond the data section"});
  expect_rejected("{\"w\":" + entry("U8", "[0]", "[18446744073709551615,18446744073709551615]") + "}", 5,
                  {"\"w\"", "beyond"});
}

TEST(SafetensorsHeader, RejectsByteLengthThatDisagreesWithShape) {
  expect_rejected("{\"w\":" + entry("BF16", "[2,3]", "[0,11]") + "}", 12, {"\"w\"", "needs 12"});
  expect_rejected("{\"w\":" + entry("F32", "[]", "[0,8]") + "}", 8, {"\"w\"", "needs 4"});
}

TEST(SafetensorsHeader, RejectsOverlappingTensors) {
  expect_rejected(
      "{\"first\":" + entry("U8", "[4]", "[0,4]") + ",\"second\":" + entry("U8", "[4]", "[2,6]") + "}", 6,
      {"\"first\"", "\"second\"", "overlap"});
  // An empty tensor inside another one's range occupies nothing and is fine.
  EXPECT_EQ(
      parse_safetensors_header(
          "{\"a\":" + entry("U8", "[4]", "[0,4]") + ",\"b\":" + entry("U8", "[0]", "[2,2]") + "}", 4, kFile)
          .tensors.size(),
      2u);
}

TEST(SafetensorsHeader, RejectsDuplicateNamesAndFields) {
  expect_rejected("{\"w\":" + entry("U8", "[1]", "[0,1]") + ",\"w\":" + entry("U8", "[1]", "[1,2]") + "}", 2,
                  {"duplicate", "\"w\""});
  expect_rejected("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                  {"\"w\"", "duplicate field \"dtype\""});
  expect_rejected("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, {"__metadata__", "duplicate", "\"k\""});
}

TEST(SafetensorsHeader, RejectsMetadataThatIsNotAStringMap) {
  expect_rejected("{\"__metadata__\":\"pt\"}", 0, {"__metadata__", "not an object"});
  expect_rejected("{\"__metadata__\":[1]}", 0, {"__metadata__", "not an object"});
  expect_rejected("{\"__metadata__\":{\"format\":1}}", 0, {"__metadata__", "\"format\"", "not a string"});
  expect_rejected("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, {"__metadata__", "\"a\""});
}

}  // namespace
}  // namespace lowbit

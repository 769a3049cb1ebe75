// SafetensorsWriter: round trips of every dtype, header layout (sorted, padded, aligned), sharding with an
// index, atomicity (nothing left behind on error or without finish), and input validation.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "test_files.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

using testing::ScratchDir;

struct Tensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

Tensor random_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, std::mt19937& rng) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  Tensor t{name, dtype, std::move(shape),
           std::vector<std::byte>(static_cast<size_t>(numel) * dtype_size(dtype))};
  for (auto& b : t.bytes) b = static_cast<std::byte>(rng() & (dtype == DType::BOOL ? 1 : 0xff));
  return t;
}

std::vector<Tensor> one_of_each_dtype(std::mt19937& rng) {
  const DType all[] = {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2, DType::I8,
                       DType::U8,  DType::I16, DType::I32,  DType::I64,     DType::BOOL,    DType::F64};
  std::vector<Tensor> out;
  int i = 0;
  for (DType d : all) {
    // Odd sizes, so that without grouping by element size the next tensor would be misaligned.
    out.push_back(random_tensor(fmt::format("t{:02d}.{}", i++, dtype_name(d)), d, {3, 5}, rng));
  }
  out.push_back(random_tensor("scalar", DType::F32, {}, rng));
  out.push_back(random_tensor("empty", DType::BF16, {0, 7}, rng));
  return out;
}

void add_all(SafetensorsWriter& writer, const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) writer.add(t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size());
}

void expect_same(const Tensor& want, const TensorView& got) {
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.dtype, want.dtype) << want.name;
  EXPECT_EQ(got.shape, want.shape) << want.name;
  ASSERT_EQ(got.nbytes, want.bytes.size()) << want.name;
  if (!want.bytes.empty()) {
    EXPECT_EQ(std::memcmp(got.data, want.bytes.data(), got.nbytes), 0) << want.name;
  }
}

size_t entries(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(SafetensorsWriter, SingleFileRoundTripOfEveryDtype) {
  ScratchDir dir("writer_single");
  std::mt19937 rng(1);
  const std::vector<Tensor> tensors = one_of_each_dtype(rng);
  SafetensorsWriter writer(dir.path(), "out");
  writer.set_metadata("quantization", "none");
  add_all(writer, tensors);
  EXPECT_EQ(writer.finish(), std::vector<std::string>{"out.safetensors"});
  EXPECT_EQ(entries(dir.path()), 1u);  // no temporaries left

  SafetensorsFile file(dir / "out.safetensors");
  EXPECT_EQ(file.names().size(), tensors.size());
  for (const Tensor& t : tensors) {
    const TensorView v = file.get(t.name);
    expect_same(t, v);
    // Zero-copy and aligned to the element size.
    EXPECT_GE(v.data, file.mapping().data());
    EXPECT_LE(v.data + v.nbytes, file.mapping().data() + file.mapping().size());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype), 0u) << t.name;
  }
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("quantization"), "none");
}

TEST(SafetensorsWriter, HeaderIsSortedPaddedWithSpacesAndContiguous) {
  ScratchDir dir("writer_layout");
  SafetensorsWriter writer(dir.path());
  const uint8_t bytes[5] = {1, 2, 3, 4, 5};
  writer.add("zeta", DType::U8, {5}, bytes, 5);
  writer.add("alpha", DType::U8, {2}, bytes, 2);
  writer.add("mid", DType::I16, {1}, bytes, 2);
  writer.finish();

  const std::string raw = read_file(dir / "model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  const std::string header = raw.substr(8, header_len);
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},", 0), 0u) << header;
  const size_t close = header.rfind('}');
  EXPECT_LT(header.size() - close - 1, 8u);
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);  // padding is spaces
  EXPECT_LT(header.find("\"alpha\""), header.find("\"mid\""));
  EXPECT_LT(header.find("\"mid\""), header.find("\"zeta\""));

  // Offsets cover the data section exactly, without gaps (the Python library insists on that).
  const SafetensorsHeader parsed = parse_safetensors_header(header, raw.size() - 8 - header_len, "x");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, e] : parsed.tensors) ranges.emplace_back(e.begin, e.end);
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [begin, end] : ranges) {
    EXPECT_EQ(begin, at);
    at = end;
  }
  EXPECT_EQ(at, raw.size() - 8 - header_len);
}

TEST(SafetensorsWriter, ShardedRoundTripWithIndex) {
  ScratchDir dir("writer_sharded");
  std::mt19937 rng(2);
  std::vector<Tensor> tensors;
  for (int i = 0; i < 10; ++i)
    tensors.push_back(random_tensor(fmt::format("layer.{}.w", i), DType::BF16, {10, 10}, rng));
  tensors.push_back(random_tensor("big", DType::F32, {300}, rng));  // larger than a shard: a shard of its own
  const uint64_t max_shard = 450;
  {
    SafetensorsWriter writer(dir.path(), "model", max_shard);
    add_all(writer, tensors);
    const std::vector<std::string> files = writer.finish();
    // 200-byte tensors: two per shard -> 5 shards, then "big" alone.
    const std::vector<std::string> expected = {
        "model-00001-of-00006.safetensors", "model-00002-of-00006.safetensors",
        "model-00003-of-00006.safetensors", "model-00004-of-00006.safetensors",
        "model-00005-of-00006.safetensors", "model-00006-of-00006.safetensors",
        "model.safetensors.index.json"};
    EXPECT_EQ(files, expected);
  }
  EXPECT_EQ(entries(dir.path()), 7u);
  for (int i = 1; i <= 5; ++i) {
    SafetensorsFile shard(dir / fmt::format("model-{:05d}-of-00006.safetensors", i));
    uint64_t data = 0;
    for (const auto& name : shard.names()) data += shard.get(name).nbytes;
    EXPECT_LE(data, max_shard);
  }

  const auto index = nlohmann::json::parse(read_file(dir / "model.safetensors.index.json"));
  uint64_t total = 0;
  for (const Tensor& t : tensors) total += t.bytes.size();
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());
  EXPECT_EQ(index["weight_map"]["big"], "model-00006-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00001-of-00006.safetensors");

  Checkpoint ckpt(dir.path());
  EXPECT_EQ(ckpt.names().size(), tensors.size());
  for (const Tensor& t : tensors) expect_same(t, ckpt.get(t.name));
  EXPECT_EQ(ckpt.metadata().at("format"), "pt");
}

TEST(SafetensorsWriter, NothingIsLeftWithoutFinish) {
  ScratchDir dir("writer_abandoned");
  std::mt19937 rng(3);
  {
    SafetensorsWriter writer(dir.path(), "model", 100);
    add_all(writer, one_of_each_dtype(rng));  // several shards already closed under temporary names
    EXPECT_GT(entries(dir.path()), 0u);
  }
  EXPECT_EQ(entries(dir.path()), 0u);
}

TEST(SafetensorsWriter, RejectsBadTensorsNamingThem) {
  ScratchDir dir("writer_bad");
  SafetensorsWriter writer(dir.path());
  const float data[4] = {};
  auto expect_error = [&](const std::function<void()>& fn, const std::string& fragment) {
    try {
      fn();
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error([&] { writer.add("w", DType::F32, {3}, data, 16); },
               "\"w\" of shape [3] and dtype F32 needs 12 bytes");
  expect_error([&] { writer.add("n", DType::F32, {-1, 4}, data, 16); }, "\"n\" has a negative dimension");
  expect_error([&] { writer.add("__metadata__", DType::F32, {4}, data, 16); }, "invalid tensor name");
  expect_error([&] { writer.add("", DType::F32, {4}, data, 16); }, "invalid tensor name");
  expect_error([&] { writer.add("bad\xff", DType::F32, {4}, data, 16); }, "UTF-8");
  expect_error([&] { writer.add("null", DType::F32, {4}, nullptr, 16); }, "\"null\" has no data");
  writer.add("ok", DType::F32, {4}, data, 16);
  expect_error([&] { writer.add("ok", DType::F32, {4}, data, 16); }, "\"ok\" added twice");
  EXPECT_EQ(writer.finish(), std::vector<std::string>{"model.safetensors"});
  expect_error([&] { writer.finish(); }, "twice");
  expect_error([&] { writer.add("late", DType::F32, {4}, data, 16); }, "after finish");
  EXPECT_EQ(SafetensorsFile(dir / "model.safetensors").names(), std::vector<std::string>{"ok"});
}

TEST(SafetensorsWriter, MetadataAfterAShardWasWrittenIsAnError) {
  ScratchDir dir("writer_meta");
  SafetensorsWriter writer(dir.path(), "model", 8);
  const double v[1] = {1.0};
  writer.add("a", DType::F64, {1}, v, 8);
  writer.set_metadata("early", "fine");    // the first shard is still open
  writer.add("b", DType::F64, {1}, v, 8);  // closes the first shard
  EXPECT_THROW(writer.set_metadata("late", "x"), Error);
  writer.finish();
  Checkpoint ckpt(dir.path());
  EXPECT_EQ(ckpt.metadata().at("early"), "fine");
}

TEST(SafetensorsWriter, NamesAndMetadataNeedingJsonEscapes) {
  ScratchDir dir("writer_escapes");
  const std::string odd = "quote\" back\\slash\nnewline\ttab \x01 caf\xc3\xa9 \xe2\x82\xac";
  const uint8_t byte = 7;
  {
    SafetensorsWriter writer(dir.path());
    writer.set_metadata(odd, odd);
    writer.add(odd, DType::U8, {1}, &byte, 1);
    writer.finish();
  }
  SafetensorsFile file(dir / "model.safetensors");
  EXPECT_EQ(file.names(), std::vector<std::string>{odd});
  EXPECT_EQ(file.metadata().at(odd), odd);
  EXPECT_EQ(file.get(odd).as<uint8_t>()[0], 7);
}

TEST(SafetensorsWriter, EmptyWriterWritesAValidFile) {
  ScratchDir dir("writer_empty");
  SafetensorsWriter writer(dir / "nested" / "out");  // the folder is created
  EXPECT_EQ(writer.finish(), std::vector<std::string>{"model.safetensors"});
  SafetensorsFile file(dir / "nested" / "out" / "model.safetensors");
  EXPECT_TRUE(file.names().empty());
  EXPECT_EQ(file.metadata().at("format"), "pt");
}

TEST(SafetensorsWriter, CopiesFromAnotherFile) {
  ScratchDir dir("writer_copy");
  std::mt19937 rng(4);
  const std::vector<Tensor> tensors = one_of_each_dtype(rng);
  {
    SafetensorsWriter writer(dir / "a");
    add_all(writer, tensors);
    writer.finish();
  }
  SafetensorsFile source(dir / "a" / "model.safetensors");
  SafetensorsWriter copy(dir / "b", "model", 64);
  for (const std::string& name : source.names()) copy.add(source.get(name));
  copy.finish();
  Checkpoint ckpt(dir / "b");
  for (const Tensor& t : tensors) expect_same(t, ckpt.get(t.name));
}

}  // namespace
}  // namespace lowbit

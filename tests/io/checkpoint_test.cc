// Checkpoint: single-file and sharded folders, index errors, and the real lowbit-ref-100m checkpoint.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "io/safetensors.h"
#include "test_files.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

using testing::ScratchDir;
using testing::write_bytes;
using testing::write_safetensors;

std::string u8_tensor(const std::string& name, int n, int begin) {
  return "\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(n) + "],\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(begin + n) + "]}";
}

// {entry, entry, ...} (built with append: `"{" + std::string` trips a GCC 12 -Wrestrict false positive).
std::string object(std::initializer_list<std::string> items) {
  std::string out = "{";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ',';
    out += item;
  }
  out += '}';
  return out;
}

void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
  }
}

// Two shards: a.safetensors {x, y}, b.safetensors {z}, and an index listing them.
void write_two_shards(const ScratchDir& dir, const std::string& index) {
  write_safetensors(dir / "a.safetensors", object({u8_tensor("x", 2, 0), u8_tensor("y", 3, 2)}), "xxyyy");
  write_safetensors(dir / "b.safetensors", object({"\"__metadata__\":{\"m\":\"b\"}", u8_tensor("z", 1, 0)}),
                    "z");
  write_bytes(dir / "model.safetensors.index.json", index);
}

const std::string kIndex =
    R"({"metadata": {"total_size": 6}, "weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}})";

TEST(Checkpoint, ReadsAShardedFolderLazily) {
  ScratchDir dir("sharded");
  write_two_shards(dir, kIndex);
  Checkpoint ckpt(dir.path());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(ckpt.files(), (std::vector<std::string>{"a.safetensors", "b.safetensors"}));
  EXPECT_TRUE(ckpt.contains("z"));
  EXPECT_FALSE(ckpt.contains("w"));
  const TensorView y = ckpt.get("y");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(y.data), y.nbytes), "yyy");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ckpt.get("z").data), 1), "z");
  EXPECT_TRUE(ckpt.metadata().empty());  // the first shard (a) has none
  ckpt.validate();
  expect_error([&] { ckpt.get("w"); }, {dir.path().string(), "\"w\""});

  // Like transformers, a model.safetensors next to the index takes precedence.
  write_safetensors(dir / "model.safetensors", object({u8_tensor("m", 1, 0)}), "m");
  EXPECT_EQ(Checkpoint(dir.path()).names(), std::vector<std::string>{"m"});
}

// read() copies a byte range of a tensor from its shard with pread: the same bytes the mapping holds.
TEST(Checkpoint, ReadCopiesByteRangesOfATensor) {
  ScratchDir dir("read");
  write_safetensors(dir / "a.safetensors", object({u8_tensor("x", 2, 0), u8_tensor("y", 5, 2)}), "xxabcde");
  write_safetensors(dir / "b.safetensors", object({u8_tensor("z", 3, 0)}), "pqr");
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}})");
  Checkpoint ckpt(dir.path());
  std::string out(3, '?');
  ckpt.read("y", 1, 3, out.data());
  EXPECT_EQ(out, "bcd");
  ckpt.read("z", 0, 3, out.data());
  EXPECT_EQ(out, "pqr");
  ckpt.read("y", 5, 0, out.data());  // an empty range at the end is fine
  expect_error([&] { ckpt.read("y", 3, 3, out.data()); }, {"a.safetensors", "\"y\"", "[3, 6)", "5"});
  expect_error([&] { ckpt.read("w", 0, 1, out.data()); }, {dir.path().string(), "\"w\""});
}

TEST(Checkpoint, ConcurrentFirstAccessMapsEachShardOnce) {
  ScratchDir dir("threads");
  write_two_shards(dir, kIndex);
  Checkpoint ckpt(dir.path());
  std::vector<const std::byte*> seen(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) threads.emplace_back([&, i] { seen[i] = ckpt.get("y").data; });
  for (auto& t : threads) t.join();
  for (const std::byte* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST(Checkpoint, MissingShardNamesTheFileAndATensor) {
  ScratchDir dir("missing_shard");
  write_two_shards(dir, kIndex);
  fs::remove(dir / "b.safetensors");
  expect_error([&] { Checkpoint ckpt(dir.path()); }, {"b.safetensors", "\"z\"", "missing"});
}

TEST(Checkpoint, TensorListedInIndexButAbsentFromShard) {
  ScratchDir dir("absent");
  write_two_shards(dir, R"({"weight_map": {"x": "a.safetensors", "ghost": "b.safetensors"}})");
  Checkpoint ckpt(dir.path());  // opening only checks that the shards exist
  expect_error([&] { ckpt.get("ghost"); }, {"\"ghost\"", "b.safetensors", "model.safetensors.index.json"});
  expect_error([&] { ckpt.validate(); }, {"\"ghost\""});
}

TEST(Checkpoint, RejectsMalformedIndexes) {
  ScratchDir dir("bad_index");
  write_two_shards(dir, "{not json");
  expect_error([&] { Checkpoint ckpt(dir.path()); }, {"model.safetensors.index.json", "not valid JSON"});
  write_bytes(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  expect_error([&] { Checkpoint ckpt(dir.path()); }, {"model.safetensors.index.json", "weight_map"});
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"x": 3}})");
  expect_error([&] { Checkpoint ckpt(dir.path()); }, {"\"x\"", "not a file name"});
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "../a.safetensors"}})");
  expect_error([&] { Checkpoint ckpt(dir.path()); }, {"\"x\"", "not a file inside"});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map": {"x": "a.safetensors", "x": "b.safetensors"}})");
  expect_error([&] { Checkpoint ckpt(dir.path()); }, {"model.safetensors.index.json", "duplicate", "\"x\""});
}

TEST(Checkpoint, SingleFileFolders) {
  ScratchDir dir("single");
  write_safetensors(dir / "weights.safetensors", object({u8_tensor("x", 2, 0)}), "ab");
  {
    Checkpoint by_folder(dir.path());  // one *.safetensors of any name
    EXPECT_EQ(by_folder.names(), std::vector<std::string>{"x"});
    EXPECT_EQ(by_folder.files(), std::vector<std::string>{"weights.safetensors"});
  }
  Checkpoint by_file(dir / "weights.safetensors");
  EXPECT_EQ(by_file.get("x").nbytes, 2u);

  write_safetensors(dir / "other.safetensors", object({u8_tensor("y", 1, 0)}), "c");
  expect_error([&] { Checkpoint ckpt(dir.path()); }, {dir.path().string(), "several"});
  write_safetensors(dir / "model.safetensors", object({u8_tensor("m", 1, 0)}), "m");
  EXPECT_EQ(Checkpoint(dir.path()).names(), std::vector<std::string>{"m"});  // model.safetensors wins
}

TEST(Checkpoint, EmptyOrMissingFolder) {
  ScratchDir dir("nothing");
  expect_error([&] { Checkpoint ckpt(dir.path()); },
               {dir.path().string(), "no model.safetensors.index.json"});
  expect_error([&] { Checkpoint ckpt(dir / "absent"); }, {"absent", "does not exist"});
}

// ---- the real sharded reference checkpoint ---------------------------------------------------------------

TEST(Checkpoint, ReferenceModel) {
  const fs::path dir = fs::path(LOWBIT_SHARED_DIR) / "models" / "lowbit-ref-100m";
  if (!fs::exists(dir / "model.safetensors.index.json")) GTEST_SKIP() << dir << " not present";

  const auto start = std::chrono::steady_clock::now();
  Checkpoint ckpt(dir);
  const std::vector<std::string> names = ckpt.names();
  const double open_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ info ] opened lowbit-ref-100m (" << ckpt.files().size() << " shards) and listed "
            << names.size() << " tensors in " << open_ms << " ms\n";
  EXPECT_LT(open_ms, 500.0);  // milliseconds in practice; generous for a loaded CI machine

  // 12 layers x 9 tensors + embeddings + final norm; embeddings are tied (no lm_head).
  EXPECT_EQ(names.size(), 110u);
  EXPECT_EQ(ckpt.files().size(), 13u);
  EXPECT_FALSE(ckpt.contains("lm_head.weight"));
  const struct {
    const char* name;
    std::vector<int64_t> shape;
  } expected[] = {{"model.embed_tokens.weight", {32000, 768}},
                  {"model.layers.0.self_attn.q_proj.weight", {768, 768}},
                  {"model.layers.0.self_attn.k_proj.weight", {256, 768}},
                  {"model.layers.11.mlp.down_proj.weight", {768, 2048}},
                  {"model.norm.weight", {768}}};
  for (const auto& e : expected) {
    const TensorView t = ckpt.get(e.name);
    EXPECT_EQ(t.dtype, DType::BF16) << e.name;
    EXPECT_EQ(t.shape, e.shape) << e.name;
    EXPECT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * 2) << e.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 8, 0u) << e.name;  // HF-written files are aligned
  }
  EXPECT_EQ(ckpt.metadata().at("format"), "pt");
  // The weights decode to finite values of a plausible size.
  std::vector<float> row(768);
  convert_to_f32(DType::BF16, ckpt.get("model.embed_tokens.weight").data, row.data(), row.size());
  double sum_sq = 0;
  for (float v : row) {
    ASSERT_TRUE(std::isfinite(v));
    sum_sq += v * v;
  }
  EXPECT_GT(sum_sq, 0.0);
  EXPECT_LT(sum_sq, 1e4);

  // Mapping every shard and checking each indexed tensor is there is cheap too.
  const auto validate_start = std::chrono::steady_clock::now();
  Checkpoint fresh(dir);
  fresh.validate();
  std::cout
      << "[ info ] mapped all shards and validated in "
      << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - validate_start).count()
      << " ms\n";
}

}  // namespace
}  // namespace lowbit

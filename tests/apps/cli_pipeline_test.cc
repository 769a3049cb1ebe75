// `lowbit quantize --method gptq|awq|smoothquant+gptq` end to end through the calibration pipeline, and the
// bounded-memory claim: a 48-layer model made by repeating the reference model's 12 layers four times
// quantizes with a peak RSS within 25 % of the 12-layer run (one layer resident, mapped pages released).
#include <gtest/gtest.h>

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <regex>
#include <string>

#include "apps/cli_runner.h"
#include "io/safetensors.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace {

using lowbit::testing::CliResult;
using lowbit::testing::run_cli;

const fs::path kShared = LOWBIT_SHARED_DIR;
const fs::path kRefModel = kShared / "models" / "lowbit-ref-100m";
const fs::path kCalib = kShared / "data" / "calib" / "pile_like_calibration.txt";
const std::string kStories = std::string(LOWBIT_SOURCE_DIR) + "/models/stories260K";
const std::string kStoriesText = std::string(LOWBIT_SOURCE_DIR) + "/data/demo/tinystories_sample.txt";

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& tag)
      : path(fs::temp_directory_path() / ("lowbit_cli_pipeline_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Writes `src` with its decoder layers repeated `times` times (layer i of copy r becomes layer
// i + r * layers), as a sharded checkpoint with an index.
void write_repeated_model(const fs::path& src, const fs::path& dst, int times) {
  fs::create_directories(dst);
  nlohmann::json config = nlohmann::json::parse(lowbit::read_file(src / "config.json"));
  const int layers = config["num_hidden_layers"].get<int>();
  config["num_hidden_layers"] = layers * times;
  lowbit::write_file_atomic(dst / "config.json", config.dump(2));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    if (fs::exists(src / f)) fs::copy_file(src / f, dst / f);
  lowbit::Checkpoint in(src);
  lowbit::SafetensorsWriter out(dst, "model", 200'000'000);
  const std::regex layer_name(R"(model\.layers\.(\d+)\.(.*))");
  for (const std::string& name : in.names()) {
    const lowbit::TensorView t = in.get(name);
    std::smatch m;
    if (!std::regex_match(name, m, layer_name)) {
      out.add(t);
      continue;
    }
    for (int r = 0; r < times; ++r) {
      const std::string renamed =
          "model.layers." + std::to_string(std::stoi(m[1]) + r * layers) + "." + m[2].str();
      out.add(renamed, t.dtype, t.shape, t.data, t.nbytes);
    }
  }
  out.finish();
}

nlohmann::json quantize_json(const std::string& args) {
  const CliResult r = run_cli("quantize " + args + " --json", /*merge_stderr=*/false);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.out;
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out);
}

// `lowbit quantize --json` of stories260K by a one-modifier llm-compressor recipe (`modifier` is its
// flow-style line, e.g. "GPTQModifier: {scheme: W4A16}"), group size 4, `samples` x 64 calibration tokens.
nlohmann::json quantize_stories_recipe(const fs::path& dir, const std::string& name,
                                       const std::string& modifier, int samples) {
  const fs::path recipe = dir / (name + ".yaml");
  lowbit::write_file_atomic(recipe, "quant_stage:\n  quant_modifiers:\n    " + modifier + "\n");
  return quantize_json(kStories + " --recipe " + recipe.string() + " --group-size 4 --calib " + kStoriesText +
                       " --num-samples " + std::to_string(samples) + " --seq-len 64 -o " +
                       (dir / name).string());
}

TEST(CliPipeline, PeakRssDoesNotGrowWithDepth) {
  if (!fs::exists(kRefModel / "config.json") || !fs::exists(kCalib)) GTEST_SKIP() << "no reference model";
  ScratchDir tmp("depth");
  write_repeated_model(kRefModel, tmp.path / "deep48", 4);
  const std::string common =
      " --scheme W4A16 --method gptq --calib " + kCalib.string() + " --num-samples 4 --seq-len 128 -o ";
  const nlohmann::json shallow = quantize_json(kRefModel.string() + common + (tmp.path / "q12").string());
  const nlohmann::json deep =
      quantize_json((tmp.path / "deep48").string() + common + (tmp.path / "q48").string());
  ASSERT_FALSE(shallow.is_null());
  ASSERT_FALSE(deep.is_null());
  EXPECT_EQ(shallow["modules_quantized"], 84);
  EXPECT_EQ(deep["modules_quantized"], 336);
  const double rss12 = shallow["peak_rss_bytes"].get<double>(), rss48 = deep["peak_rss_bytes"].get<double>();
  std::printf(
      "peak RSS: 12 layers %.1f MiB, 48 layers %.1f MiB (ratio %.3f); model files %.0f MiB vs %.0f MiB\n",
      rss12 / 1048576, rss48 / 1048576, rss48 / rss12, shallow["total_bytes_before"].get<double>() / 1048576,
      deep["total_bytes_before"].get<double>() / 1048576);
  EXPECT_LE(rss48, 1.25 * rss12);
}

TEST(CliPipeline, MethodsOnBundledModel) {
  ScratchDir tmp("methods");
  // stories260K: hidden 64, intermediate 172 -> group size 4 divides both.
  for (const std::string method : {"gptq", "awq", "smoothquant+gptq"}) {
    const std::string scheme = method == "smoothquant+gptq" ? "W8A8" : "W4A16_ASYM --group-size 4";
    const fs::path out = tmp.path / ("q_" + method);
    const nlohmann::json j =
        quantize_json(kStories + " --scheme " + scheme + " --method " + method + " --calib " + kStoriesText +
                      " --num-samples 8 --seq-len 64 -o " + out.string());
    ASSERT_FALSE(j.is_null()) << method;
    EXPECT_EQ(j["method"], method);
    EXPECT_EQ(j["calibration_offsets"].size(), 8u);
    EXPECT_EQ(j["pipeline"]["layers"].size(), 5u);
    const CliResult ppl =
        run_cli("ppl " + out.string() + " --data " + kStoriesText + " --ctx 256 --json", false);
    ASSERT_EQ(ppl.exit_code, 0) << ppl.out;
    const double value = nlohmann::json::parse(ppl.out)["ppl"].get<double>();
    EXPECT_LT(value, 4.1239 * 1.5) << method;  // the float model's 4.1239; 4-bit on a 260K model costs more
  }
  // Calibration is required, and a bad method is named.
  CliResult r = run_cli("quantize " + kStories + " --scheme W4A16_ASYM --group-size 4 --method gptq -o " +
                        (tmp.path / "x").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--calib"), std::string::npos) << r.out;
  r = run_cli("quantize " + kStories + " --scheme W4A16 --method gptx --calib " + kStoriesText + " -o " +
              (tmp.path / "y").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("gptx"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp.path / "x"));
}

// AWQ's duo_scaling modes (llm-compressor's true / false / "both"): the grid each searches shows in the
// chosen ratios of the pipeline log (true: i / 18 plus the identity; false: i / 19, never duo; both: i / 9
// of either kind), and contradictory flags are refused.
TEST(CliPipeline, AwqDuoScalingModes) {
  ScratchDir tmp("duo");
  const std::regex chosen(R"(ratio ([0-9.]+)( duo)?,)");
  for (const std::string mode : {"true", "false", "both"}) {
    const nlohmann::json j = quantize_json(
        kStories + " --scheme W4A16_ASYM --group-size 4 --method awq --calib " + kStoriesText +
        " --num-samples 8 --seq-len 64 --awq-duo-scaling " + mode + " -o " + (tmp.path / mode).string());
    ASSERT_FALSE(j.is_null()) << mode;
    const int steps = mode == "true" ? 18 : mode == "false" ? 19 : 9;
    int seen = 0;
    for (const nlohmann::json& layer : j["pipeline"]["layers"]) {
      for (const nlohmann::json& line : layer["log"]) {
        std::smatch m;
        const std::string text = line.get<std::string>();
        if (!std::regex_search(text, m, chosen)) continue;
        ++seen;
        const double ratio = std::stod(m[1]);
        const bool duo = m[2].matched;
        if (mode == "false") {
          EXPECT_FALSE(duo) << text;
        }
        if (mode == "true" && !duo) {
          EXPECT_EQ(ratio, 0.0) << text;  // only the identity is not duo
        }
        const double step = ratio * steps;
        EXPECT_NEAR(step, std::round(step), 0.006 * steps) << mode << ": " << text;
      }
    }
    EXPECT_EQ(seen, 15) << mode;  // 5 layers x 3 mappings (v -> o does not apply to this GQA model)
  }
  // A recipe's `duo_scaling: both` with n_grid 10: ratios i / 4 of either kind.
  const nlohmann::json j = quantize_stories_recipe(
      tmp.path, "recipe", "AWQModifier: {scheme: W4A16_ASYM, duo_scaling: both, n_grid: 10}", 8);
  ASSERT_FALSE(j.is_null());
  for (const nlohmann::json& line : j["pipeline"]["layers"][0]["log"]) {
    std::smatch m;
    const std::string text = line.get<std::string>();
    ASSERT_TRUE(std::regex_search(text, m, chosen)) << text;
    const double step = std::stod(m[1]) * 4;
    EXPECT_NEAR(step, std::round(step), 0.03) << text;
  }
  const CliResult r =
      run_cli("quantize " + kStories + " --scheme W4A16 --method awq --calib " + kStoriesText +
              " --no-duo-scaling --awq-duo-scaling both -o " + (tmp.path / "x").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("contradicts"), std::string::npos) << r.out;
}

// --true-sequential (or a GPTQModifier's true_sequential: true) runs GPTQ in one pass per layer; the JSON
// says so and the log has every module's GPTQ loss. AWQ refuses it.
TEST(CliPipeline, TrueSequentialGptq) {
  ScratchDir tmp("true_seq");
  const std::string common = " --scheme W4A16 --group-size 4 --calib " + kStoriesText +
                             " --num-samples 4 --seq-len 64 -o " + (tmp.path / "flag").string();
  const nlohmann::json j = quantize_json(kStories + " --method gptq --true-sequential" + common);
  ASSERT_FALSE(j.is_null());
  EXPECT_TRUE(j["pipeline"]["true_sequential"].get<bool>());
  int losses = 0;
  for (const nlohmann::json& layer : j["pipeline"]["layers"]) {
    for (const nlohmann::json& line : layer["log"]) losses += line.get<std::string>().rfind("gptq ", 0) == 0;
    EXPECT_GT(layer["propagate_seconds"].get<double>(), 0.0);
  }
  EXPECT_EQ(losses, 35);  // 5 layers x 7 modules

  const nlohmann::json r =
      quantize_stories_recipe(tmp.path, "recipe", "GPTQModifier: {scheme: W4A16, true_sequential: true}", 4);
  ASSERT_FALSE(r.is_null());
  EXPECT_TRUE(r["pipeline"]["true_sequential"].get<bool>());

  const CliResult awq =
      run_cli("quantize " + kStories + " --method awq --true-sequential --scheme W4A16 --calib " +
              kStoriesText + " -o " + (tmp.path / "awq").string());
  EXPECT_NE(awq.exit_code, 0);
  EXPECT_NE(awq.out.find("--true-sequential applies to GPTQ"), std::string::npos) << awq.out;
}

}  // namespace

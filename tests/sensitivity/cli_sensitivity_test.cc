// `lowbit sensitivity` and the selection flags of `lowbit quantize` on the bundled stories260K (fp32,
// hidden 64, intermediate 172: per-channel schemes), as a user runs them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/cli_runner.h"
#include "io/safetensors.h"
#include "util/files.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;

const std::string kModel = std::string(LOWBIT_SOURCE_DIR) + "/models/stories260K";
const std::string kText = std::string(LOWBIT_SOURCE_DIR) + "/data/demo/tinystories_sample.txt";
const std::string kScheme = "--scheme W4A16 --group-size -1";

class CliSensitivityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("lowbit_cli_sensitivity_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    report_ = run_cli(fmt("sensitivity {} {} --calib {} --num-samples 3 --seq-len 64 -o {} --json", kModel,
                          kScheme, kText, (dir_ / "report").string()),
                      false);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  template <typename... A>
  static std::string fmt(const char* f, A&&... a) {
    std::string s = f;
    (replace_first(s, a), ...);
    return s;
  }
  static void replace_first(std::string& s, const std::string& v) { s.replace(s.find("{}"), 2, v); }

  static nlohmann::json report_json() {
    return nlohmann::json::parse(read_file(dir_ / "report" / "sensitivity.json"));
  }

  static inline fs::path dir_;
  static inline testing::CliResult report_;
};

TEST_F(CliSensitivityTest, WritesReportAndCharts) {
  ASSERT_EQ(report_.exit_code, 0) << report_.out;
  const nlohmann::json summary = nlohmann::json::parse(report_.out);
  EXPECT_EQ(summary["modules"], 35);  // 5 layers x 7 linears
  for (const char* f : {"sensitivity.json", "sensitivity.md", "kl_by_layer.svg", "kl_heatmap.svg",
                        "output_mse_by_layer.svg", "output_mse_heatmap.svg"})
    EXPECT_TRUE(fs::is_regular_file(dir_ / "report" / f)) << f;
  const nlohmann::json r = report_json();
  EXPECT_EQ(r["calibration"]["num_samples"], 3);
  EXPECT_EQ(r["calibration"]["seed"], 42);
  for (const auto& m : r["modules"]) {
    EXPECT_GE(m["kl_mean"].get<double>(), 0.0);
    EXPECT_GT(m["output_rel_mse"].get<double>(), 0.0);
  }
  const std::string svg = read_file(dir_ / "report" / "kl_heatmap.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("layer 4"), std::string::npos);
  EXPECT_NE(read_file(dir_ / "report" / "sensitivity.md").find("| 1 | model.layers."), std::string::npos);
}

TEST_F(CliSensitivityTest, DeterministicForFixedSeed) {
  ASSERT_EQ(report_.exit_code, 0);
  const auto again = run_cli(fmt("sensitivity {} {} --calib {} --num-samples 3 --seq-len 64 -o {} --json",
                                 kModel, kScheme, kText, (dir_ / "again").string()),
                             false);
  ASSERT_EQ(again.exit_code, 0) << again.out;
  nlohmann::json a = report_json(), b = nlohmann::json::parse(read_file(dir_ / "again" / "sensitivity.json"));
  a.erase("timing");
  b.erase("timing");
  EXPECT_EQ(a.dump(), b.dump());
}

TEST_F(CliSensitivityTest, TypeGranularityAndReplot) {
  const fs::path out = dir_ / "types";
  const auto r =
      run_cli(fmt("sensitivity {} {} --calib {} --num-samples 2 --seq-len 32 --granularity type -o {} --json",
                  kModel, kScheme, kText, out.string()),
              false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(read_file(out / "sensitivity.json"));
  ASSERT_EQ(j["groups"].size(), 7u);
  EXPECT_EQ(j["groups"][6]["name"], "down_proj");
  EXPECT_EQ(j["groups"][6]["modules"].size(), 5u);
  EXPECT_TRUE(j["modules"][0]["kl_mean"].is_null());
  EXPECT_TRUE(fs::is_regular_file(out / "kl_groups.svg"));
  // Selecting by sensitivity needs per-module KL: a clear error.
  const auto q = run_cli(fmt("quantize {} {} --sensitivity {} --keep-sensitive 2 -o {}", kModel, kScheme,
                             (out / "sensitivity.json").string(), (dir_ / "never").string()));
  EXPECT_EQ(q.exit_code, 1);
  EXPECT_NE(q.out.find("--granularity module"), std::string::npos) << q.out;
  // --replot redraws the Markdown and charts from the JSON alone.
  fs::remove(out / "kl_groups.svg");
  const auto re =
      run_cli(fmt("sensitivity --replot {} -o {}", (out / "sensitivity.json").string(), out.string()));
  ASSERT_EQ(re.exit_code, 0) << re.out;
  EXPECT_TRUE(fs::is_regular_file(out / "kl_groups.svg"));
}

TEST_F(CliSensitivityTest, KeepSensitiveWithRtnAndGptq) {
  ASSERT_EQ(report_.exit_code, 0);
  const nlohmann::json r = report_json();
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& m : r["modules"])
    ranked.emplace_back(m["kl_mean"].get<double>(), m["name"].get<std::string>());
  std::sort(ranked.rbegin(), ranked.rend());
  for (const char* method : {"rtn", "gptq"}) {
    const fs::path out = dir_ / (std::string("keep3_") + method);
    const auto q = run_cli(
        fmt("quantize {} {} --method {} --calib {} --num-samples 4 --seq-len 64 --sensitivity {} "
            "--keep-sensitive 3 -o {} --json",
            kModel, kScheme, method, kText, (dir_ / "report" / "sensitivity.json").string(), out.string()),
        false);
    ASSERT_EQ(q.exit_code, 0) << q.out;
    const nlohmann::json j = nlohmann::json::parse(q.out);
    EXPECT_EQ(j["method"], method);
    EXPECT_EQ(j["modules_quantized"], 32);
    const nlohmann::json config = nlohmann::json::parse(read_file(out / "config.json"));
    const auto ignore = config["quantization_config"]["ignore"].get<std::vector<std::string>>();
    const Checkpoint ckpt(out);
    for (int i = 0; i < 3; ++i) {
      EXPECT_NE(std::find(ignore.begin(), ignore.end(), ranked[i].second), ignore.end()) << ranked[i].second;
      EXPECT_EQ(ckpt.get(ranked[i].second + ".weight").dtype, DType::F32);
    }
    EXPECT_EQ(j["selection"]["kept"].size(), 3u);
    // The export runs (the kept modules load as plain float weights).
    const auto ppl =
        run_cli(fmt("ppl {} --data {} --ctx 64 --max-tokens 256 --json", out.string(), kText), false);
    EXPECT_EQ(ppl.exit_code, 0) << ppl.out;
  }
}

TEST_F(CliSensitivityTest, MaxSizeBudget) {
  ASSERT_EQ(report_.exit_code, 0);
  // Everything quantized first, to know the base size.
  const auto all =
      run_cli(fmt("quantize {} {} -o {} --json", kModel, kScheme, (dir_ / "all").string()), false);
  ASSERT_EQ(all.exit_code, 0) << all.out;
  const uint64_t base = nlohmann::json::parse(all.out)["total_bytes_after"].get<uint64_t>();
  const uint64_t budget = base + base / 20;
  for (const char* selector : {"sensitivity", "random", "weight-stats"}) {
    const auto q = run_cli(fmt("quantize {} {} --sensitivity {} --selector {} --max-size {} -o {} --json",
                               kModel, kScheme, (dir_ / "report" / "sensitivity.json").string(), selector,
                               std::to_string(budget), (dir_ / (std::string("budget_") + selector)).string()),
                           false);
    ASSERT_EQ(q.exit_code, 0) << q.out;
    const nlohmann::json j = nlohmann::json::parse(q.out);
    EXPECT_LE(j["total_bytes_after"].get<uint64_t>(), budget) << selector;
    EXPECT_EQ(j["total_bytes_after"], j["selection"]["size_selected"]) << selector;
    EXPECT_GT(j["selection"]["kept"].size(), 0u) << selector;
  }
  const auto small = run_cli(fmt("quantize {} {} --selector weight-stats --max-size {} -o {}", kModel,
                                 kScheme, std::to_string(base - 1), (dir_ / "small").string()));
  EXPECT_EQ(small.exit_code, 1);
  EXPECT_NE(small.out.find("below the size with every module quantized"), std::string::npos) << small.out;
  EXPECT_FALSE(fs::exists(dir_ / "small"));
}

}  // namespace
}  // namespace lowbit

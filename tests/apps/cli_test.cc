// Runs the lowbit binary on the bundled model: the paths a new user takes first, and the errors they meet.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <nlohmann/json.hpp>
#include "apps/cli_runner.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>

namespace fs = std::filesystem;

namespace {

using lowbit::testing::CliResult;
using lowbit::testing::run_cli;

const std::string kModel = std::string(LOWBIT_SOURCE_DIR) + "/models/stories260K";
const std::string kText = std::string(LOWBIT_SOURCE_DIR) + "/data/demo/tinystories_sample.txt";

TEST(Cli, HelpListsCommands) {
  const CliResult r = run_cli("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"generate", "ppl", "info", "bench", "convert"})
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
}

TEST(Cli, GenerateGreedyIsDeterministicJson) {
  const std::string args =
      "generate " + kModel + " --prompt 'Once upon a time' --max-tokens 24 --temperature 0 --json";
  const CliResult a = run_cli(args);
  const CliResult b = run_cli(args);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  const auto ja = nlohmann::json::parse(a.out);
  const auto jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["tokens"], jb["tokens"]);
  EXPECT_GT(ja["generated_tokens"].get<int>(), 0);
  EXPECT_FALSE(ja["text"].get<std::string>().empty());
}

TEST(Cli, PplJsonMatchesTransformersOnDemoText) {
  // tests/fixtures/ppl/stories260K.json: transformers gives 4.1239 on this text at ctx 256.
  const CliResult r = run_cli("ppl " + kModel + " --data " + kText + " --ctx 256 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["ppl"].get<double>(), 4.1239, 4.1239 * 1e-3);
  EXPECT_EQ(j["windows"].get<int>(), 57);
  EXPECT_EQ(j["tokens"].get<int>(), 57 * 255);
}

// Each of three rounds' values of one figure is positive, and `median` is their median.
void ExpectMedianOfThreeRounds(const nlohmann::json& rounds,
                               const std::function<double(const nlohmann::json&)>& value, double median,
                               const std::string& what) {
  ASSERT_EQ(rounds.size(), 3u);
  std::array<double, 3> v{};
  for (size_t i = 0; i < 3; ++i) v[i] = value(rounds[i]);
  std::sort(v.begin(), v.end());
  EXPECT_GT(v[0], 0.0) << what;
  EXPECT_DOUBLE_EQ(median, v[1]) << what;
}

// `lowbit bench --json` of the bundled model against itself, three rounds of tiny prompts, plus `options`.
// A failed run leaves no JSON to parse, which fails the calling test too.
nlohmann::json BenchItselfThreeRounds(const std::string& options) {
  const CliResult r = run_cli("bench " + kModel + " --compare " + kModel +
                                  " --rounds 3 --prompt-len 8 --gen-len 4 --repeat 1 --json " + options,
                              false);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return nlohmann::json::parse(r.out);
}

TEST(Cli, BenchCompareRoundsReportsEachRoundAndTheirMedian) {
  const auto j = BenchItselfThreeRounds("--batch 1,2 --no-bandwidth");
  ASSERT_EQ(j["rounds"].size(), 3u);
  EXPECT_EQ(j["ratios"], j["rounds"][0]);                            // the tables' round
  EXPECT_DOUBLE_EQ(j["ratios"]["weight_bytes"].get<double>(), 1.0);  // the same model twice
  EXPECT_GT(j["prefill_flops_per_token"].get<double>(), 0.0);
  EXPECT_EQ(j["fma_peak_flops_s"].get<double>(), 0.0);  // --no-bandwidth skips the machine probes
  EXPECT_EQ(j["prefill_fraction_of_fma_peak"].get<double>(), 0.0);
  EXPECT_FALSE(j["rounds"][0].contains("read_bandwidth_bytes_s"));  // nor a probe per round
  ASSERT_EQ(j["ratios_median"]["batches"].size(), 2u);
  for (size_t b = 0; b < 2; ++b) {
    for (const char* key : {"decode_tok_s", "prefill_tok_s", "ttft_s", "itl_mean_s", "e2e_s"}) {
      ExpectMedianOfThreeRounds(
          j["rounds"], [&](const nlohmann::json& round) { return round["batches"][b][key].get<double>(); },
          j["ratios_median"]["batches"][b][key].get<double>(), key);
    }
  }
  // Rounds are pairs: without --compare they are an error.
  const CliResult alone = run_cli("bench " + kModel + " --rounds 2");
  EXPECT_NE(alone.exit_code, 0);
  EXPECT_NE(alone.out.find("--compare"), std::string::npos) << alone.out;
}

TEST(Cli, BenchRoundsHoldEachPairAgainstProbesOfItsOwn) {
  // A small probe buffer keeps the test quick; its reading need not be DRAM's for the bookkeeping checked.
  const auto j = BenchItselfThreeRounds("--batch 1 --probe-mib 16");
  ASSERT_EQ(j["rounds"].size(), 3u);
  for (const char* key : {"read_bandwidth_bytes_s", "fma_peak_flops_s", "decode_fraction_of_floor",
                          "compare_decode_fraction_of_floor"}) {
    ExpectMedianOfThreeRounds(
        j["rounds"], [&](const nlohmann::json& round) { return round[key].get<double>(); },
        j["ratios_median"][key].get<double>(), key);
  }
  // Round 1 is the pair printed in full: each fraction is that model's decode over its floor at the round's
  // own probe (weight bytes per step / bandwidth seconds per step).
  const double probe = j["rounds"][0]["read_bandwidth_bytes_s"].get<double>();
  for (const auto& [model, key] : {std::pair{j, "decode_fraction_of_floor"},
                                   std::pair{j["compare"], "compare_decode_fraction_of_floor"}}) {
    const double expected = model["batches"][0]["decode_tok_s"]["median"].get<double>() *
                            model["decode_weight_bytes"].get<double>() / probe;
    EXPECT_NEAR(j["rounds"][0][key].get<double>(), expected, 1e-9 * expected) << key;
  }
  // The tables, which show round 1, are held against the same probes, not a later reading.
  EXPECT_EQ(j["read_bandwidth_bytes_s"].get<double>(), probe);
  EXPECT_EQ(j["fma_peak_flops_s"].get<double>(), j["rounds"][0]["fma_peak_flops_s"].get<double>());
  EXPECT_DOUBLE_EQ(j["decode_fraction_of_floor"].get<double>(),
                   j["rounds"][0]["decode_fraction_of_floor"].get<double>());
}

TEST(Cli, MissingModelFolderIsAClearError) {
  const CliResult r = run_cli("ppl /nonexistent/model --data " + kText);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("/nonexistent/model"), std::string::npos) << r.out;
}

TEST(Cli, FolderWithoutConfigNamesTheFile) {
  const fs::path dir = fs::temp_directory_path() / "lowbit_cli_test_empty_model";
  fs::create_directories(dir);
  const CliResult r = run_cli("info " + dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("config.json"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(Cli, TextShorterThanOneWindowIsAnError) {
  const fs::path file = fs::temp_directory_path() / "lowbit_cli_test_short.txt";
  FILE* f = fopen(file.c_str(), "w");
  fputs("Once upon a time.", f);
  fclose(f);
  const CliResult r = run_cli("ppl " + kModel + " --data " + file.string() + " --ctx 256");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("fewer than one window"), std::string::npos) << r.out;
  fs::remove(file);
}

TEST(Cli, ConvertRefusesExistingOutput) {
  const fs::path out = fs::temp_directory_path() / "lowbit_cli_test_convert_out";
  fs::create_directories(out);
  const std::string shared_bin = std::string(LOWBIT_SHARED_DIR) + "/models/stories260K/stories260K.bin";
  if (!fs::exists(shared_bin)) GTEST_SKIP() << "needs " << shared_bin;
  const CliResult r =
      run_cli("convert llama2c " + shared_bin + " --tokenizer " + kModel + "/tok512.bin -o " + out.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  const CliResult ok = run_cli("convert llama2c " + shared_bin + " --tokenizer " + kModel +
                               "/tok512.bin -o " + out.string() + " --overwrite");
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  fs::remove_all(out);
}

}  // namespace

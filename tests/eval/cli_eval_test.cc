// `lowbit eval` end to end on a tiny random model with a 61-token tokenizer: the comparison table and
// JSON for two models, the per-example log, GSM8K-style generation, and errors for bad data.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/cli_runner.h"
#include "eval/tiny_tokenizer.h"
#include "runtime/tiny_model.h"
#include "util/files.h"

namespace lowbit {
namespace {

using testing::CliResult;

CliResult run(const std::string& args, bool merge_stderr = true) {
  return testing::run_cli(args, merge_stderr);
}

class CliEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir("clieval");
    testing::write_tiny_model(dir() / "base", testing::TinySpec{});
    testing::write_tiny_tokenizer(dir() / "base");
    testing::TinySpec other;
    other.seed = 5;
    testing::write_tiny_model(dir() / "other", other);
    testing::write_tiny_tokenizer(dir() / "other");
    write_file_atomic(
        dir() / "mc.jsonl",
        "{\"context\": \"the cat\", \"choices\": [\"an ant\", \"the end\", \"in\"], \"label\": 1}\n"
        "{\"context\": \"an ant\", \"choices\": [\"cat\", \"tin\"], \"label\": 0}\n"
        "\n"
        "{\"context\": \"in the\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"label\": 3}\n");
    write_file_atomic(dir() / "gsm.jsonl",
                      "{\"question\": \"a cat has 3 ants\", \"answer\": \"3 ants\\n#### 3\"}\n"
                      "{\"question\": \"the ant\", \"answer\": \"#### 12\"}\n"
                      "{\"question\": \"an end\", \"answer\": \"#### -4\"}\n");
  }
  static void TearDownTestSuite() { delete tmp_; }
  static std::filesystem::path dir() { return tmp_->path(); }
  static testing::TempDir* tmp_;
};
testing::TempDir* CliEval::tmp_ = nullptr;

TEST_F(CliEval, TwoModelsJsonAndLog) {
  const auto log = dir() / "log.jsonl";
  const CliResult r =
      run(fmt::format("eval {} {} --task mc-jsonl --data {} --json --log {} -t 1", (dir() / "base").string(),
                      (dir() / "other").string(), (dir() / "mc.jsonl").string(), log.string()),
          false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["examples"], 3);
  ASSERT_EQ(j["models"].size(), 2u);
  const auto& base = j["models"][0];
  const double acc = base["metrics"]["acc"]["value"];
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  EXPECT_TRUE(base["metrics"]["acc_norm"]["stderr"].is_number());
  EXPECT_TRUE(j["models"][1]["metrics"]["acc"].contains("delta"));
  EXPECT_TRUE(j["models"][1].contains("agreement_with_base"));

  std::istringstream lines(read_file(log));
  std::string line;
  int count = 0;
  double correct = 0;
  while (std::getline(lines, line)) {
    const auto e = nlohmann::json::parse(line);
    EXPECT_EQ(e["loglikelihoods"].size(), e["choice_chars"].size());
    if (e["model"] == (dir() / "base").string()) correct += e["acc"].get<double>();
    ++count;
  }
  EXPECT_EQ(count, 6);
  EXPECT_NEAR(correct / 3.0, acc, 1e-12);  // the summary is the mean of the logged outcomes
  // The source line of each example is logged (the blank line still counts).
  EXPECT_NE(read_file(log).find("mc.jsonl:4"), std::string::npos);
}

TEST_F(CliEval, SameModelTwiceAgreesCompletely) {
  const CliResult r = run(fmt::format("eval {0} {0} --task mc-jsonl --data {1} --json",
                                      (dir() / "base").string(), (dir() / "mc.jsonl").string()),
                          false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["models"][1]["agreement_with_base"], 1.0);
  EXPECT_EQ(j["models"][1]["metrics"]["acc"]["delta"], 0.0);
  EXPECT_EQ(j["models"][1]["metrics"]["acc"]["delta_stderr"], 0.0);
}

TEST_F(CliEval, TableForHumans) {
  const CliResult r = run(fmt::format("eval {} --task mc-jsonl --data {} --limit 2",
                                      (dir() / "base").string(), (dir() / "mc.jsonl").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("mc-jsonl: 2 examples, 0-shot"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("acc_norm"), std::string::npos);
  EXPECT_NE(r.out.find("s/example"), std::string::npos);
}

TEST_F(CliEval, Gsm8kGeneratesEndToEnd) {
  const auto log = dir() / "gsm.log";
  const CliResult r =
      run(fmt::format("eval {} --task gsm8k --data {} --shots 1 --max-new-tokens 4 --json --log {}",
                      (dir() / "base").string(), (dir() / "gsm.jsonl").string(), log.string()),
          false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["examples"], 2);  // the first line is the shot
  EXPECT_EQ(j["fewshot_taken_from_data"], 1);
  EXPECT_TRUE(j["models"][0]["metrics"].contains("strict_match"));
  EXPECT_TRUE(j["models"][0]["metrics"].contains("flexible_extract"));
  const std::string logged = read_file(log);
  EXPECT_NE(logged.find("\"reference\":\"12\""), std::string::npos) << logged;
  EXPECT_NE(logged.find("\"reference\":\"-4\""), std::string::npos) << logged;
}

TEST_F(CliEval, GenJsonlWithRepeatedStopOptions) {
  const auto data = dir() / "gen.jsonl";
  write_file_atomic(
      data, "{\"prompt\": \"the cat\", \"target\": \"an ant\"}\n{\"prompt\": \"in\", \"target\": \"7\"}\n");
  // Each --stop takes one value, so the model folder after them stays a positional argument.
  const CliResult r =
      run(fmt::format("eval --stop a --stop '\\n' {} --task gen-jsonl --data {} --max-new-tokens 3 --json",
                      (dir() / "base").string(), data.string()),
          false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["examples"], 2);
  EXPECT_TRUE(j["models"][0]["metrics"].contains("exact"));
  EXPECT_TRUE(j["models"][0]["metrics"].contains("number"));
}

TEST_F(CliEval, BadDataNamesFileAndLine) {
  const auto bad = dir() / "bad.jsonl";
  write_file_atomic(
      bad, "{\"context\": \"a\", \"choices\": [\"b\"], \"label\": 0}\n{\"context\": \"a\", \"label\": 0}\n");
  CliResult r =
      run(fmt::format("eval {} --task mc-jsonl --data {}", (dir() / "base").string(), bad.string()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find(bad.string() + ":2: missing field \"choices\""), std::string::npos) << r.out;

  write_file_atomic(bad, "{\"question\": \"q\", \"answer\": \"#### 1\"}\nnot json\n");
  r = run(fmt::format("eval {} --task gsm8k --data {} --shots 0", (dir() / "base").string(), bad.string()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find(bad.string() + ":2: invalid JSON"), std::string::npos) << r.out;

  r = run(fmt::format("eval {} --task gsm8k --data {} --shots 5", (dir() / "base").string(), bad.string()));
  EXPECT_EQ(r.exit_code, 1);
}

}  // namespace
}  // namespace lowbit

// Text-level pieces of the evaluation tasks: HellaSwag preprocessing, Python string semantics, JSONL
// errors, acc/acc_norm decisions, the standard error, and GSM8K answer extraction.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>

#include "eval/tasks/answers.h"
#include "eval/tasks/datasets.h"
#include "eval/tasks/generate_until.h"
#include "eval/tasks/jsonl.h"
#include "eval/tasks/metrics.h"
#include "eval/tasks/report.h"
#include "eval/tasks/text.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit::eval {
namespace {

std::filesystem::path temp_file(const std::string& name, const std::string& contents) {
  const auto path =
      std::filesystem::temp_directory_path() / ("lowbit_task_" + std::to_string(::getpid()) + "_" + name);
  write_file_atomic(path, contents);
  return path;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TaskText, PythonCapitalizeLowersTheRest) {
  EXPECT_EQ(python_capitalize("a few women"), "A few women");
  EXPECT_EQ(python_capitalize("the NBA player"), "The nba player");
  EXPECT_EQ(python_capitalize("élan Vital"), "Élan vital");
  EXPECT_EQ(python_capitalize(""), "");
  EXPECT_EQ(python_capitalize("1st Place"), "1st place");
}

TEST(TaskText, PythonStripUsesUnicodeWhitespace) {
  EXPECT_EQ(python_strip("  \t a b \n"), "a b");
  EXPECT_EQ(python_strip("\u00a0x\u3000"), "x");
  EXPECT_EQ(python_rstrip(" a  "), " a");
  EXPECT_EQ(python_strip("   "), "");
}

TEST(TaskText, Utf8LengthCountsCharactersNotBytes) {
  EXPECT_EQ(utf8_length("héllo"), 5);
  EXPECT_EQ(utf8_length("日本"), 2);
  EXPECT_EQ(utf8_length(""), 0);
}

TEST(HellaSwag, PreprocessLikeLmEval) {
  // " [title]" becomes ". ", other bracketed text goes, then one pass of "  " -> " ".
  EXPECT_EQ(hellaswag_preprocess(" How to cook [title] Boil water. [step] Add salt. "),
            "How to cook. Boil water. Add salt.");
  EXPECT_EQ(hellaswag_preprocess("a [x] [y] b"), "a  b");  // "a   b" -> one replace pass -> "a  b"
  EXPECT_EQ(hellaswag_preprocess("keep [open\nbracket] text"), "keep [open\nbracket] text");
  EXPECT_EQ(hellaswag_preprocess("no brackets"), "no brackets");
}

TEST(HellaSwag, ExampleFromRow) {
  JsonlRecord r;
  r.source = "x.jsonl:7";
  r.value =
      nlohmann::json::parse(R"({"activity_label": "Pole vault", "ctx_a": "A man runs.", "ctx_b": "the MAN",
      "endings": ["jumps [title] high.", " falls  down", "x", "y"], "label": "1"})");
  const ChoiceExample ex = hellaswag_example(r);
  EXPECT_EQ(ex.context, "Pole vault: A man runs. The man");
  ASSERT_EQ(ex.choices.size(), 4u);
  EXPECT_EQ(ex.choices[0], "jumps. high.");
  EXPECT_EQ(ex.choices[1], "falls down");
  EXPECT_EQ(ex.label, 1);
}

TEST(Jsonl, ErrorsNameFileLineAndField) {
  const auto bad_json =
      temp_file("bad.jsonl", "{\"context\": \"a\", \"choices\": [\"b\"], \"label\": 0}\n\n{oops\n");
  EXPECT_NE(error_of([&] { read_jsonl(bad_json); }).find(bad_json.string() + ":3: invalid JSON"),
            std::string::npos);

  const auto missing = temp_file("missing.jsonl", "{\"context\": \"a\", \"label\": 0}\n");
  const std::string e = error_of([&] { load_choice_examples(TaskKind::MultipleChoiceJsonl, missing); });
  EXPECT_NE(e.find(missing.string() + ":1: missing field \"choices\""), std::string::npos) << e;

  const auto range =
      temp_file("range.jsonl", "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 2}\n");
  EXPECT_NE(error_of([&] {
              load_choice_examples(TaskKind::MultipleChoiceJsonl, range);
            }).find(":1: label 2 is out of range for 2 choices"),
            std::string::npos);

  const auto not_object = temp_file("array.jsonl", "[1, 2]\n");
  EXPECT_NE(error_of([&] { read_jsonl(not_object); }).find(":1: expected a JSON object"), std::string::npos);

  const auto wrong_type = temp_file("type.jsonl", "{\"question\": 5, \"answer\": \"#### 5\"}\n");
  EXPECT_NE(error_of([&] {
              load_gen_examples(TaskKind::Gsm8k, wrong_type);
            }).find(":1: field \"question\" must be a string"),
            std::string::npos);
  for (const auto& p : {bad_json, missing, range, not_object, wrong_type}) std::filesystem::remove(p);
}

TEST(ChoiceMetrics, AccNormDividesByCharactersHandComputed) {
  // ll / chars: -10/5 = -2.0, -12/10 = -1.2, -9/2 = -4.5 -> acc picks 2 (-9), acc_norm picks 1 (-1.2).
  const std::vector<double> lls = {-10.0, -12.0, -9.0};
  const std::vector<std::string> choices = {"abcde", "abcdefghij", "ab"};
  const ChoiceDecision d = decide(lls, choices);
  EXPECT_EQ(d.pred, 2);
  EXPECT_EQ(d.pred_norm, 1);
  // Characters, not bytes: "ééé" is 3 characters (6 bytes). -6/3 = -2.0 < -7/4 = -1.75, so acc_norm picks
  // "abcd"; dividing by bytes (-6/6 = -1.0) would pick "ééé".
  const std::vector<double> lls2 = {-6.0, -7.0};
  const std::vector<std::string> choices2 = {"ééé", "abcd"};
  EXPECT_EQ(decide(lls2, choices2).pred, 0);
  EXPECT_EQ(decide(lls2, choices2).pred_norm, 1);
  // Ties go to the first index, as numpy.argmax.
  const std::vector<double> tie = {-3.0, -3.0};
  const std::vector<std::string> tie_choices = {"abc", "xyz"};
  EXPECT_EQ(decide(tie, tie_choices).pred, 0);
  EXPECT_EQ(decide(tie, tie_choices).pred_norm, 0);
}

TEST(ChoiceMetrics, StderrIsLmEvalSampleStderr) {
  // 0/1 outcomes: sqrt(p (1 - p) / (n - 1)); p = 3/4, n = 4 -> sqrt(0.1875 / 3) = 0.25.
  const std::vector<double> v = {1, 0, 1, 1};
  const MeanStderr m = mean_stderr(v);
  EXPECT_DOUBLE_EQ(m.mean, 0.75);
  EXPECT_NEAR(m.stderr_, 0.25, 1e-15);
  // 281 of 1000 correct: sqrt(0.281 * 0.719 / 999).
  std::vector<double> many(1000, 0.0);
  for (int i = 0; i < 281; ++i) many[static_cast<size_t>(i) * 3] = 1.0;
  EXPECT_NEAR(mean_stderr(many).stderr_, std::sqrt(0.281 * 0.719 / 999.0), 1e-12);
  // General values: sample standard deviation / sqrt(n); {2, 4, 9}: mean 5, ss = 9 + 1 + 16 = 26.
  const std::vector<double> g = {2, 4, 9};
  EXPECT_NEAR(mean_stderr(g).stderr_, std::sqrt(26.0 / 2.0) / std::sqrt(3.0), 1e-12);
  const std::vector<double> one = {1};
  EXPECT_TRUE(std::isnan(mean_stderr(one).stderr_));
}

TEST(Report, PairedDeltaAndAgreement) {
  ModelRun a, b;
  a.values = {{1, 0, 1, 1, 0}};
  b.values = {{1, 1, 1, 0, 0}};
  a.predictions = {"0", "1", "2", "3", "0"};
  b.predictions = {"0", "2", "2", "1", "0"};
  // Differences {0, +1, 0, -1, 0}: mean 0, sample variance 2/4, stderr sqrt(0.5 / 5).
  const MeanStderr d = paired_delta(a, b, 0);
  EXPECT_DOUBLE_EQ(d.mean, 0.0);
  EXPECT_NEAR(d.stderr_, std::sqrt(0.5 / 5.0), 1e-12);
  EXPECT_DOUBLE_EQ(agreement(a, b), 0.6);
}

TEST(Gsm8kAnswers, StrictTakesTheFirstHashAnswer) {
  EXPECT_EQ(gsm8k_strict_answer("She sells 9 eggs.\n#### 18"), "18");
  EXPECT_EQ(gsm8k_strict_answer("#### 7.\n\nQuestion: next #### 9"), "7.");
  EXPECT_EQ(gsm8k_strict_answer("#### -3"), "-3");
  EXPECT_EQ(gsm8k_strict_answer("#### 1,234 dollars"), "1,234");
  EXPECT_EQ(gsm8k_strict_answer("The answer is 18"), kInvalidAnswer);
  EXPECT_EQ(gsm8k_strict_answer("####18"), kInvalidAnswer);  // the space is part of the pattern
}

TEST(Gsm8kAnswers, FlexibleTakesTheLastNumber) {
  EXPECT_EQ(gsm8k_flexible_answer("3 + 4 = 7"), "7");
  EXPECT_EQ(gsm8k_flexible_answer("It costs $5"), "$5");
  EXPECT_EQ(gsm8k_flexible_answer("The total is 1,234."), "1,234.");
  EXPECT_EQ(gsm8k_flexible_answer("it fell to -3 degrees overnight"), "-3");
  EXPECT_EQ(gsm8k_flexible_answer("pay 2.50 each, so"), "2.50");
  EXPECT_EQ(gsm8k_flexible_answer("5 apples and 12 pears were left"), "12");
  EXPECT_EQ(gsm8k_flexible_answer("between 10-20"), "-20");  // lm-eval's pattern reads "-20"
  EXPECT_EQ(gsm8k_flexible_answer("no numbers here"), kInvalidAnswer);
}

TEST(Gsm8kAnswers, NormalizeAndMatchLikeLmEval) {
  EXPECT_EQ(gsm8k_normalize("Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes $18.\n#### 18"), "18");
  EXPECT_EQ(gsm8k_normalize("$1,234."), "1234");
  EXPECT_TRUE(gsm8k_match("1,234.", "... #### 1234"));
  EXPECT_TRUE(gsm8k_match("$5", "#### 5"));
  EXPECT_TRUE(gsm8k_match("-3", "#### -3"));
  EXPECT_TRUE(gsm8k_match("7.", "#### 7"));
  EXPECT_TRUE(gsm8k_match("2.50", "#### 2.50"));
  EXPECT_FALSE(gsm8k_match("2.50", "#### 2.5"));  // exact string match, as lm-eval
  EXPECT_FALSE(gsm8k_match("1000000.00", "#### 1000000"));
  EXPECT_FALSE(gsm8k_match(std::string(kInvalidAnswer), "#### 5"));
}

TEST(GenerateUntil, CutsAtTheEarliestStopString) {
  std::string s = "18 eggs\n\nQuestion: more";
  EXPECT_TRUE(cut_at_stop(s, {"Question:", "\n\n"}));
  EXPECT_EQ(s, "18 eggs");
  std::string t = "no stop";
  EXPECT_FALSE(cut_at_stop(t, {"Question:"}));
  EXPECT_EQ(t, "no stop");
}

}  // namespace
}  // namespace lowbit::eval

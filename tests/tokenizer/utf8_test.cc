// UTF-8 helpers against hand-checked cases from the Unicode standard (Table 3-7 and the U+FFFD
// substitution practice of section 3.9, which Python's errors="replace" follows).
#include <gtest/gtest.h>

#include "tokenizer/utf8.h"

namespace lowbit::tokenizer_detail {
namespace {

std::string lossy(std::string_view s) {
  std::string out;
  append_utf8_lossy(out, s);
  return out;
}

TEST(Utf8, ValidPrefixAndIncompleteSuffix) {
  EXPECT_EQ(valid_utf8_prefix("abc"), 3u);
  EXPECT_EQ(valid_utf8_prefix("a\xE6\x97"), 1u);          // truncated 3-byte character
  EXPECT_EQ(valid_utf8_prefix("\xED\xA0\x80"), 0u);       // surrogate
  EXPECT_EQ(valid_utf8_prefix("\xC0\xAF"), 0u);           // overlong
  EXPECT_EQ(valid_utf8_prefix("\xF0\x9F\x98\x80!"), 5u);  // emoji
  EXPECT_EQ(incomplete_utf8_suffix("a\xE6\x97"), 2u);
  EXPECT_EQ(incomplete_utf8_suffix("a\xF0"), 1u);
  EXPECT_EQ(incomplete_utf8_suffix("a\xE6\x97\xA5"), 0u);  // complete
  EXPECT_EQ(incomplete_utf8_suffix("a\x80"), 0u);          // invalid, not incomplete
  EXPECT_EQ(incomplete_utf8_suffix("\xE0\x80"), 0u);       // can never complete
}

TEST(Utf8, LossyReplacementMatchesPython) {
  // Expected values from Python: bytes.decode("utf-8", errors="replace").
  EXPECT_EQ(lossy("a\xE6\x97"
                  "b"),
            "a\xEF\xBF\xBD"
            "b");                                            // one U+FFFD for a truncated char
  EXPECT_EQ(lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // two
  EXPECT_EQ(lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // three
  EXPECT_EQ(lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(lossy("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
}

}  // namespace
}  // namespace lowbit::tokenizer_detail

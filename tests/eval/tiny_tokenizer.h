// A 61-token SentencePiece-style BPE tokenizer (Llama-2's tokenizer.json layout: "▁" word marker,
// BOS added) written next to a tiny test model (tests/runtime/tiny_model.h has vocab 61), so the eval
// tests can run text tasks end to end. A few merges make words span tokens and merge across a
// context/continuation boundary ("the c" + "at" -> "▁the" "▁cat").
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "util/files.h"

namespace lowbit::testing {

inline void write_tiny_tokenizer(const std::filesystem::path& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (const char* t : {"<unk>", "<s>", "</s>", "\u2581"}) vocab[t] = id++;
  for (char c = 'a'; c <= 'z'; ++c) vocab[std::string(1, c)] = id++;
  for (char c = '0'; c <= '9'; ++c) vocab[std::string(1, c)] = id++;
  for (const char* t : {".", ",", ":", "?", "#", "$", "-", "\n"}) vocab[t] = id++;
  const char* merges[] = {"\u2581 t", "h e",      "\u2581t he", "\u2581 a",   "a n", "e r",  "\u2581a n",
                          "i n",      "\u2581 c", "a t",        "\u2581c at", "# #", "## ##"};
  nlohmann::json merge_list = nlohmann::json::array();
  for (const char* m : merges) {
    const std::string s = m;
    const size_t space = s.find(' ');
    vocab[s.substr(0, space) + s.substr(space + 1)] = id++;
    merge_list.push_back(s);
  }
  auto special = [](int i, const char* content) {
    return nlohmann::json{{"id", i},         {"content", content},  {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  const nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\u2581"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  const nlohmann::json config = {{"add_bos_token", true},
                                 {"add_eos_token", false},
                                 {"bos_token", "<s>"},
                                 {"eos_token", "</s>"},
                                 {"unk_token", "<unk>"}};
  write_file_atomic(dir / "tokenizer.json", tokenizer.dump(1));
  write_file_atomic(dir / "tokenizer_config.json", config.dump(1));
}

}  // namespace lowbit::testing

// tokenizer.json "model" of type BPE: vocabulary, ranked merges, byte fallback and unk handling,
// following tokenizers' BPE::merge_word / Word::merge_all so that ids match exactly.
#include <algorithm>
#include <queue>

#include <fmt/format.h>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace lowbit::tokenizer_detail {

namespace {

// tokenizer.json writes absent prefixes/suffixes as null or "".
std::string optional_string(const json& model, const char* key) {
  if (!model.contains(key) || model.at(key).is_null()) return "";
  return model.at(key).get<std::string>();
}

// A word longer than this (in bytes) is not cached: it is unlikely to repeat.
constexpr size_t kMaxCachedWordBytes = 256;

}  // namespace

std::unique_ptr<BpeModel> BpeModel::parse(const json& model, const std::string& source) {
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") fail("{}: model type '{}' is not supported (lowbit implements BPE only)", source, type);
  if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() != 0.0)
    fail("{}: BPE dropout is not supported (it makes encoding random)", source);

  auto bpe = std::make_unique<BpeModel>();
  const json& vocab = model.at("vocab");
  if (!vocab.is_object()) fail("{}: model.vocab is not an object", source);
  bpe->vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    const int64_t value = id.get<int64_t>();
    if (value < 0 || value > INT32_MAX) fail("{}: token {} has invalid id {}", source, token, value);
    bpe->vocab_.emplace(token, static_cast<int32_t>(value));
  }

  auto lookup = [&](std::string_view token, size_t line) {
    const auto it = bpe->vocab_.find(token);
    if (it == bpe->vocab_.end())
      fail("{}: merge {} uses token '{}' that is not in the vocabulary", source, line, token);
    return it->second;
  };
  const json& merges = model.at("merges");
  bpe->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {  // "a b"
      const std::string& line = m.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        fail("{}: merge {} '{}' is not two tokens separated by one space", source, rank, line);
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (m.is_array() && m.size() == 2) {  // ["a", "b"]
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      fail("{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]: {}", source, rank, m.dump());
    }
    const int32_t a = lookup(left, rank), b = lookup(right, rank);
    const int32_t merged = lookup(left + right, rank);
    // Like tokenizers, a repeated pair keeps its last rank.
    bpe->merges_.insert_or_assign(pair_key(a, b), Merge{static_cast<int32_t>(rank), merged});
  }

  const std::string unk = optional_string(model, "unk_token");
  if (!unk.empty()) {
    const auto it = bpe->vocab_.find(unk);
    if (it == bpe->vocab_.end()) fail("{}: unk_token '{}' is not in the vocabulary", source, unk);
    bpe->unk_id_ = it->second;
  }
  bpe->fuse_unk_ = model.value("fuse_unk", false);
  bpe->byte_fallback_ = model.value("byte_fallback", false);
  bpe->ignore_merges_ = model.value("ignore_merges", false);
  bpe->continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  bpe->end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
  for (int b = 0; b < 256; ++b) {
    const auto it = bpe->vocab_.find(fmt::format("<0x{:02X}>", b));
    bpe->byte_token_ids_[static_cast<size_t>(b)] = it == bpe->vocab_.end() ? -1 : it->second;
  }
  return bpe;
}

bool BpeModel::enable_marker_split(const std::string& marker) {
  // Splitting a word before a marker that follows another character is exact only when no merge
  // can ever produce a symbol across that point: no token may contain "<char><marker>" (runs of
  // markers aside), and the marker must be a token itself (so it never becomes a fused unk).
  if (marker.empty() || !vocab_.contains(marker) || !continuing_subword_prefix_.empty() ||
      !end_of_word_suffix_.empty())
    return false;
  for (const auto& entry : vocab_) {
    const std::string& token = entry.first;
    for (size_t pos = token.find(marker, 1); pos != std::string::npos; pos = token.find(marker, pos + 1)) {
      const bool after_marker =
          pos >= marker.size() && token.compare(pos - marker.size(), marker.size(), marker) == 0;
      if (!after_marker) return false;
    }
  }
  split_marker_ = marker;
  return true;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (split_marker_.empty()) {
    tokenize_word(word, out);
    return;
  }
  // Chunks start at each marker that follows a non-marker character.
  const std::string_view marker = split_marker_;
  size_t begin = 0;
  size_t pos = word.find(marker, 1);
  while (pos != std::string_view::npos) {
    const bool after_marker =
        pos >= marker.size() && word.substr(pos - marker.size(), marker.size()) == marker;
    if (!after_marker) {
      tokenize_word(word.substr(begin, pos - begin), out);
      begin = pos;
    }
    pos = word.find(marker, pos + marker.size());
  }
  tokenize_word(word.substr(begin), out);
}

void BpeModel::tokenize_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() > kMaxCachedWordBytes) {
    merge_word(word, out);
    return;
  }
  CacheShard& shard = cache_[StringHash{}(word) % kCacheShards];
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    const auto it = shard.entries.find(word);
    if (it != shard.entries.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  merge_word(word, out);
  std::lock_guard<std::mutex> lock(shard.mutex);
  // A full shard is simply emptied: cheaper than LRU bookkeeping, and text repeats its words soon.
  if (shard.entries.size() >= kCacheEntriesPerShard) shard.entries.clear();
  shard.entries.emplace(std::string(word),
                        std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(first), out.end()));
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  // Symbols form a doubly linked list over the word; a merged-away symbol gets id -1.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1});
  };

  // 1. One symbol per character (or per byte with byte fallback, or fused unknowns).
  int32_t pending_unk = -1;  // an unknown run waiting to be added (fuse_unk)
  std::string scratch;
  for (size_t i = 0; i < word.size();) {
    const size_t end = std::min(word.size(), i + utf8_sequence_length(static_cast<unsigned char>(word[i])));
    std::string_view piece = word.substr(i, end - i);
    if (!continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty()) {
      scratch.clear();
      if (i > 0) scratch += continuing_subword_prefix_;
      scratch += piece;
      if (end == word.size()) scratch += end_of_word_suffix_;
      piece = scratch;
    }
    i = end;
    const auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      if (pending_unk >= 0) {
        add(pending_unk);
        pending_unk = -1;
      }
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      const bool all_bytes = std::all_of(piece.begin(), piece.end(), [&](char c) {
        return byte_token_ids_[static_cast<unsigned char>(c)] >= 0;
      });
      if (all_bytes) {
        // tokenizers adds the bytes without first flushing a pending unknown; we do the same.
        for (const char c : piece) add(byte_token_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = unk_id_;
    }
    // Without an unk token, an unknown character is dropped, as tokenizers does.
  }
  if (pending_unk >= 0) add(pending_unk);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // 2. Apply merges lowest rank first, leftmost first among equal ranks.
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Candidate> heap_storage;
  heap_storage.reserve(symbols.size() * 2);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue(std::greater<>{},
                                                                               std::move(heap_storage));
  auto find_merge = [&](int32_t a, int32_t b) -> const Merge* {
    const auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i)
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id))
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (left.id < 0 || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    // Stale entry: one side was merged since it was queued.
    const Merge* m = find_merge(left.id, right.id);
    if (!m || m->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0)
      if (const Merge* pm = find_merge(symbols[static_cast<size_t>(left.prev)].id, left.id))
        queue.push({pm->rank, left.prev, pm->new_id});
    if (left.next >= 0)
      if (const Merge* nm = find_merge(left.id, symbols[static_cast<size_t>(left.next)].id))
        queue.push({nm->rank, top.pos, nm->new_id});
  }
  for (const Symbol& s : symbols)
    if (s.id >= 0) out.push_back(s.id);
}

}  // namespace lowbit::tokenizer_detail

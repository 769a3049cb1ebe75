// Tokenizer: loading tokenizer.json / tokenizer_config.json, the encode pipeline and decode.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lowbit {

using tokenizer_detail::json;
using tokenizer_detail::TokenizerImpl;

namespace {

json parse_json_file(const fs::path& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
}

// "bos_token": "<s>" or {"content": "<s>", ...} or null.
std::string config_token(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return "";
}

// The ids a post_processor adds around a single sequence: (before, after).
void parse_post_processor(const json& spec, const TokenizerImpl& impl, std::vector<int32_t>& before,
                          std::vector<int32_t>& after) {
  if (spec.is_null()) return;
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const json& child : spec.at("processors")) parse_post_processor(child, impl, before, after);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets; ids are unchanged.
  } else if (type == "TemplateProcessing") {
    const json& specials = spec.value("special_tokens", json::object());
    bool seen_sequence = false;
    for (const json& item : spec.at("single")) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        if (!specials.contains(name))
          fail("{}: post_processor template uses special token '{}' that it does not define", impl.source,
               name);
        for (const json& id : specials.at(name).at("ids"))
          (seen_sequence ? after : before).push_back(id.get<int32_t>());
      } else {
        fail("{}: unexpected post_processor template item {}", impl.source, item.dump());
      }
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    before.push_back(spec.at("cls").at(1).get<int32_t>());
    after.push_back(spec.at("sep").at(1).get<int32_t>());
  } else {
    fail(
        "{}: post_processor type '{}' is not supported (supported: TemplateProcessing, ByteLevel, Sequence, "
        "BertProcessing, RobertaProcessing)",
        impl.source, type);
  }
}

// The marker a SentencePiece-style tokenizer puts in front of words, if the normalizer or
// pre-tokenizer says so (see BpeModel::enable_marker_split).
std::string sentencepiece_marker(const json& tokenizer_json) {
  const json& pre = tokenizer_json.value("pre_tokenizer", json());
  if (pre.is_object() && pre.value("type", "") == "Metaspace") return pre.value("replacement", "\u2581");
  const json& norm = tokenizer_json.value("normalizer", json());
  if (pre.is_null() && norm.is_object() && norm.value("type", "") == "Sequence") {
    for (const json& n : norm.at("normalizers"))
      if (n.value("type", "") == "Replace" && n.value("content", "") == "\u2581") return "\u2581";
  }
  return "";
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}

Tokenizer Tokenizer::load(const fs::path& path) {
  fs::path json_path = path;
  if (fs::is_directory(path)) json_path = path / "tokenizer.json";
  if (!fs::exists(json_path)) fail("tokenizer: {} does not exist", json_path.string());
  const fs::path config_path = json_path.parent_path() / "tokenizer_config.json";
  json config;  // null when absent
  if (fs::exists(config_path)) config = parse_json_file(config_path);
  return from_json(parse_json_file(json_path), config, json_path.string());
}

Tokenizer Tokenizer::from_json(const json& tj, const json& config, const std::string& source) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = source;
  try {
    if (!tj.is_object() || !tj.contains("model")) fail("{}: not a tokenizer.json (no \"model\")", source);
    const json& model = tj.at("model");
    impl->model = tokenizer_detail::BpeModel::parse(model, source);
    impl->normalizer = tokenizer_detail::Normalizer::parse(tj.value("normalizer", json()), source);
    impl->pre_tokenizer = tokenizer_detail::PreTokenizer::parse(tj.value("pre_tokenizer", json()), source);
    impl->decoder = tokenizer_detail::Decoder::parse(tj.value("decoder", json()), source);
    if (const std::string marker = sentencepiece_marker(tj); !marker.empty())
      impl->model->enable_marker_split(marker);

    // Vocabulary table: model tokens, then added tokens (which may reuse or extend ids).
    int64_t size = 0;
    for (const auto& entry : impl->model->vocab()) size = std::max<int64_t>(size, entry.second + 1);
    for (const json& t : tj.value("added_tokens", json::array())) {
      tokenizer_detail::AddedToken a;
      a.content = t.at("content").get<std::string>();
      a.id = t.at("id").get<int32_t>();
      if (a.id < 0) fail("{}: added token '{}' has negative id {}", source, a.content, a.id);
      a.special = t.value("special", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.single_word = t.value("single_word", false);
      a.normalized = t.value("normalized", !a.special);
      // Like tokenizers: a normalized token is searched for in normalized text, in normalized form;
      // a token the model already has keeps the model's id.
      a.match = a.normalized && !impl->normalizer.empty() ? impl->normalizer.apply(a.content) : a.content;
      if (const auto it = impl->model->vocab().find(a.content); it != impl->model->vocab().end())
        a.id = it->second;
      size = std::max<int64_t>(size, int64_t{a.id} + 1);
      impl->added_tokens.push_back(std::move(a));
    }
    impl->id_to_token.assign(static_cast<size_t>(size), "");
    impl->special.assign(static_cast<size_t>(size), 0);
    for (const auto& [token, id] : impl->model->vocab()) impl->id_to_token[static_cast<size_t>(id)] = token;
    std::vector<const tokenizer_detail::AddedToken*> raw, normalized;
    for (const auto& a : impl->added_tokens) {
      // tokenizers reports (and decodes) a normalized added token in its normalized form.
      impl->id_to_token[static_cast<size_t>(a.id)] = a.match;
      impl->special[static_cast<size_t>(a.id)] = a.special;
      (a.normalized && !impl->normalizer.empty() ? normalized : raw).push_back(&a);
    }
    impl->raw_matcher.build(raw);
    impl->normalized_matcher.build(normalized);
    impl->token_to_id.reserve(static_cast<size_t>(size));
    for (size_t id = 0; id < impl->id_to_token.size(); ++id)
      if (!impl->id_to_token[id].empty())
        impl->token_to_id.emplace(impl->id_to_token[id], static_cast<int32_t>(id));
    for (const auto& a : impl->added_tokens) impl->token_to_id.insert_or_assign(a.content, a.id);

    auto id_of = [&](const std::string& token) -> int32_t {
      if (token.empty()) return -1;
      const auto it = impl->token_to_id.find(token);
      return it == impl->token_to_id.end() ? -1 : it->second;
    };
    impl->unk_id = impl->model->unk_id();
    impl->bos_id = id_of(config_token(config, "bos_token"));
    impl->eos_id = id_of(config_token(config, "eos_token"));
    impl->pad_id = id_of(config_token(config, "pad_token"));
    if (const int32_t unk = id_of(config_token(config, "unk_token")); unk >= 0) impl->unk_id = unk;

    // Special tokens of encode(text, true): transformers' Llama-style tokenizers rebuild the
    // template from add_bos_token / add_eos_token; otherwise the tokenizer.json post_processor.
    if (config.is_object() && (config.contains("add_bos_token") || config.contains("add_eos_token"))) {
      if (config.value("add_bos_token", false) && impl->bos_id >= 0) impl->prefix_ids.push_back(impl->bos_id);
      if (config.value("add_eos_token", false) && impl->eos_id >= 0) impl->suffix_ids.push_back(impl->eos_id);
    } else {
      parse_post_processor(tj.value("post_processor", json()), *impl, impl->prefix_ids, impl->suffix_ids);
    }
    // Without a config, BOS / EOS are what the template adds.
    if (impl->bos_id < 0 && !impl->prefix_ids.empty()) impl->bos_id = impl->prefix_ids.front();
    if (impl->eos_id < 0 && !impl->suffix_ids.empty()) impl->eos_id = impl->suffix_ids.back();
    for (const int32_t id : impl->prefix_ids)
      if (id < 0 || id >= size) fail("{}: post_processor adds id {} outside the vocabulary", source, id);
    for (const int32_t id : impl->suffix_ids)
      if (id < 0 || id >= size) fail("{}: post_processor adds id {} outside the vocabulary", source, id);
    impl->add_bos = impl->bos_id >= 0 && std::find(impl->prefix_ids.begin(), impl->prefix_ids.end(),
                                                   impl->bos_id) != impl->prefix_ids.end();
    impl->add_eos = impl->eos_id >= 0 && std::find(impl->suffix_ids.begin(), impl->suffix_ids.end(),
                                                   impl->eos_id) != impl->suffix_ids.end();
  } catch (const json::exception& e) {
    fail("{}: malformed tokenizer description: {}", source, e.what());
  }
  return Tokenizer(std::move(impl));
}

namespace tokenizer_detail {

void TokenizerImpl::encode_plain(std::string_view text, bool at_text_start, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<std::string> words;
  auto model_words = [&](std::string_view piece, bool at_start) {
    words.clear();
    pre_tokenizer.apply(piece, at_start, words);
    for (const std::string& w : words) model->tokenize(w, out);
  };
  if (normalizer.empty()) {
    model_words(text, at_text_start);
    return;
  }
  const std::string normalized = normalizer.apply(text);
  if (normalized_matcher.empty()) {
    model_words(normalized, at_text_start);
    return;
  }
  std::vector<Segment> segments;
  normalized_matcher.split(normalized, segments);
  for (const Segment& s : segments) {
    if (s.id >= 0)
      out.push_back(s.id);
    else
      model_words(s.text, at_text_start && s.offset == 0);
  }
}

}  // namespace tokenizer_detail

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const TokenizerImpl& impl = *impl_;
  if (const size_t valid = tokenizer_detail::valid_utf8_prefix(text); valid != text.size())
    fail("tokenizer {}: input text is not valid UTF-8 (at byte {} of {})", impl.source, valid, text.size());
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special_tokens) ids.insert(ids.end(), impl.prefix_ids.begin(), impl.prefix_ids.end());
  if (impl.raw_matcher.empty()) {
    impl.encode_plain(text, true, ids);
  } else {
    std::vector<tokenizer_detail::Segment> segments;
    impl.raw_matcher.split(text, segments);
    for (const auto& s : segments) {
      if (s.id >= 0)
        ids.push_back(s.id);
      else
        impl.encode_plain(s.text, s.offset == 0, ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), impl.suffix_ids.begin(), impl.suffix_ids.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const TokenizerImpl& impl = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    // Like tokenizers, ids without a token are skipped.
    if (id < 0 || static_cast<size_t>(id) >= impl.id_to_token.size() || impl.id_to_token[id].empty())
      continue;
    if (skip_special_tokens && impl.special[static_cast<size_t>(id)]) continue;
    tokens.push_back(impl.id_to_token[static_cast<size_t>(id)]);
  }
  return impl.decoder.decode(std::move(tokens));
}

int32_t Tokenizer::bos_id() const {
  return impl_->bos_id;
}
int32_t Tokenizer::eos_id() const {
  return impl_->eos_id;
}
int32_t Tokenizer::pad_id() const {
  return impl_->pad_id;
}
int32_t Tokenizer::unk_id() const {
  return impl_->unk_id;
}
bool Tokenizer::add_bos() const {
  return impl_->add_bos;
}
bool Tokenizer::add_eos() const {
  return impl_->add_eos;
}
int64_t Tokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->id_to_token.size());
}

std::string_view Tokenizer::token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size()) return {};
  return impl_->id_to_token[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const auto it = impl_->token_to_id.find(token);
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() &&
         impl_->special[static_cast<size_t>(id)];
}

// ---- StreamDecoder --------------------------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {
  reset();
}

void StreamDecoder::reset() {
  first_token_ = true;
  strip_left_ = tokenizer_.impl().decoder.strip_start();
  pending_.clear();
}

std::string StreamDecoder::emit(bool final) {
  // Hold back an incomplete character at the end unless the stream is over.
  const size_t hold = final ? 0 : tokenizer_detail::incomplete_utf8_suffix(pending_);
  std::string text;
  tokenizer_detail::append_utf8_lossy(text, std::string_view(pending_).substr(0, pending_.size() - hold));
  pending_.erase(0, pending_.size() - hold);
  // The Strip decoder removes leading spaces of the whole text: only at the start of the stream.
  size_t cut = 0;
  while (strip_left_ > 0 && cut < text.size() && text[cut] == ' ') {
    ++cut;
    --strip_left_;
  }
  if (cut < text.size()) strip_left_ = 0;
  text.erase(0, cut);
  return text;
}

std::string StreamDecoder::push(int32_t id) {
  const TokenizerImpl& impl = tokenizer_.impl();
  const std::string_view token = tokenizer_.token(id);
  if (token.empty()) return {};
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  if (impl.decoder.join_with_spaces() && !first_token_) pending_.push_back(' ');
  pending_ += impl.decoder.stream_bytes(token, first_token_);
  first_token_ = false;
  return emit(false);
}

std::string StreamDecoder::finish() {
  std::string text = emit(true);
  reset();
  return text;
}

}  // namespace lowbit

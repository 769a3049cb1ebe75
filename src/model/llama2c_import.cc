#include "model/llama2c_import.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace lowbit {

namespace {

constexpr uint64_t kHeaderBytes = 7 * sizeof(int32_t);
constexpr uint32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c export.py version 1/2

// Sizes are bounded so that every product below fits comfortably in 64 bits.
constexpr int32_t kMaxDim = 1 << 20;

// Element counts of the v0 arrays in file order.
struct Layout {
  uint64_t embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis, wcls;
};

Layout layout_of(const Llama2cHeader& h) {
  const uint64_t dim = static_cast<uint64_t>(h.dim), hidden = static_cast<uint64_t>(h.hidden_dim);
  const uint64_t layers = static_cast<uint64_t>(h.n_layers), vocab = static_cast<uint64_t>(h.vocab_size);
  const uint64_t kv_dim = static_cast<uint64_t>(h.n_kv_heads) * static_cast<uint64_t>(h.head_dim());
  Layout l{};
  l.embedding = vocab * dim;
  l.rms_att = layers * dim;
  l.wq = layers * dim * dim;
  l.wk = layers * kv_dim * dim;
  l.wv = layers * kv_dim * dim;
  l.wo = layers * dim * dim;
  l.rms_ffn = layers * dim;
  l.w1 = layers * hidden * dim;
  l.w2 = layers * dim * hidden;
  l.w3 = layers * hidden * dim;
  l.rms_final = dim;
  l.freq_cis = static_cast<uint64_t>(h.seq_len) * static_cast<uint64_t>(h.head_dim()) / 2;  // real, imag
  l.wcls = h.shared_classifier ? 0 : vocab * dim;
  return l;
}

// Sequential reader of fp32 arrays with errors that name the file and the array.
class ArrayReader {
 public:
  explicit ArrayReader(const fs::path& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) fail("cannot open llama2.c checkpoint {}: {}", path.string(), std::strerror(errno));
    in_.seekg(static_cast<std::streamoff>(kHeaderBytes));
  }

  std::vector<float> read(uint64_t count, const char* what) {
    std::vector<float> out(count);
    in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(count * sizeof(float)));
    if (!in_) fail("llama2.c checkpoint {}: truncated while reading {}", path_.string(), what);
    return out;
  }

  void skip(uint64_t count) { in_.seekg(static_cast<std::streamoff>(count * sizeof(float)), std::ios::cur); }

 private:
  fs::path path_;
  std::ifstream in_;
};

std::string layer_name(int64_t layer, const char* suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}

// Splits a [n_layers, ...] array into per-layer tensors of `shape`, optionally RoPE-permuted.
void add_per_layer(MemoryTensorStore& store, const std::vector<float>& all, int64_t n_layers,
                   const char* suffix, std::vector<int64_t> shape, int64_t rope_heads = 0) {
  int64_t per_layer = 1;
  for (int64_t d : shape) per_layer *= d;
  for (int64_t l = 0; l < n_layers; ++l) {
    const float* slice = all.data() + l * per_layer;
    const size_t nbytes = static_cast<size_t>(per_layer) * sizeof(float);
    if (rope_heads > 0) {
      const std::vector<float> permuted =
          permute_rope_rows(slice, rope_heads, shape[0] / rope_heads, shape[1]);
      store.add(layer_name(l, suffix), DType::F32, shape, permuted.data(), nbytes);
    } else {
      store.add(layer_name(l, suffix), DType::F32, shape, slice, nbytes);
    }
  }
}

std::string dump(const nlohmann::json& j) {
  return j.dump(2) + "\n";
}

}  // namespace

uint64_t Llama2cHeader::expected_file_size() const {
  const Layout l = layout_of(*this);
  const uint64_t floats = l.embedding + l.rms_att + l.wq + l.wk + l.wv + l.wo + l.rms_ffn + l.w1 + l.w2 +
                          l.w3 + l.rms_final + 2 * l.freq_cis + l.wcls;
  return kHeaderBytes + floats * sizeof(float);
}

Llama2cHeader read_llama2c_header(const fs::path& checkpoint_bin) {
  std::ifstream in(checkpoint_bin, std::ios::binary);
  if (!in) fail("cannot open llama2.c checkpoint {}: {}", checkpoint_bin.string(), std::strerror(errno));
  int32_t raw[7] = {};
  in.read(reinterpret_cast<char*>(raw), sizeof(raw));
  if (!in) fail("llama2.c checkpoint {}: file is shorter than the 28-byte header", checkpoint_bin.string());
  if (static_cast<uint32_t>(raw[0]) == kVersionedMagic)
    fail(
        "llama2.c checkpoint {}: this is a version 1/2 export (magic \"ak42\"); only the legacy version 0 "
        "format (export.py --version 0) is supported",
        checkpoint_bin.string());

  Llama2cHeader h;
  h.dim = raw[0];
  h.hidden_dim = raw[1];
  h.n_layers = raw[2];
  h.n_heads = raw[3];
  h.n_kv_heads = raw[4];
  h.shared_classifier = raw[5] > 0;
  h.vocab_size = raw[5] == std::numeric_limits<int32_t>::min() ? 0 : (raw[5] < 0 ? -raw[5] : raw[5]);
  h.seq_len = raw[6];

  const std::string header_text =
      fmt::format("dim={} hidden_dim={} n_layers={} n_heads={} n_kv_heads={} vocab_size={} seq_len={}",
                  raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6]);
  for (int32_t v : {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len}) {
    if (v <= 0 || v > kMaxDim)
      fail("llama2.c checkpoint {}: implausible header ({}); is this a llama2.c v0 .bin?",
           checkpoint_bin.string(), header_text);
  }
  if (h.dim % h.n_heads != 0 || h.head_dim() % 2 != 0)
    fail("llama2.c checkpoint {}: dim {} is not n_heads {} times an even head size ({})",
         checkpoint_bin.string(), h.dim, h.n_heads, header_text);
  if (h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0)
    fail("llama2.c checkpoint {}: n_heads {} is not a multiple of n_kv_heads {}", checkpoint_bin.string(),
         h.n_heads, h.n_kv_heads);

  std::error_code ec;
  const uint64_t actual = fs::file_size(checkpoint_bin, ec);
  if (ec) fail("cannot stat {}: {}", checkpoint_bin.string(), ec.message());
  if (actual != h.expected_file_size())
    fail("llama2.c checkpoint {}: file has {} bytes but its header ({}, {} classifier) implies {}",
         checkpoint_bin.string(), actual, header_text, h.shared_classifier ? "shared" : "separate",
         h.expected_file_size());
  return h;
}

std::vector<float> permute_rope_rows(const float* w, int64_t n_heads, int64_t head_dim, int64_t cols) {
  const int64_t half = head_dim / 2;
  std::vector<float> out(static_cast<size_t>(n_heads * head_dim * cols));
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* src = w + (h * head_dim + 2 * i + j) * cols;
        float* dst = out.data() + (h * head_dim + j * half + i) * cols;
        std::memcpy(dst, src, static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
  return out;
}

nlohmann::json llama2c_hf_config(const Llama2cHeader& h) {
  // Values are what llama2.c's run.c hard-codes (rmsnorm eps 1e-5, RoPE base 10000, SiLU gate).
  nlohmann::json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = 1;
  j["dtype"] = "float32";
  j["eos_token_id"] = 2;
  j["head_dim"] = h.head_dim();
  j["hidden_act"] = "silu";
  j["hidden_size"] = h.dim;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = h.hidden_dim;
  j["max_position_embeddings"] = h.seq_len;
  j["mlp_bias"] = false;
  j["model_type"] = "llama";
  j["num_attention_heads"] = h.n_heads;
  j["num_hidden_layers"] = h.n_layers;
  j["num_key_value_heads"] = h.n_kv_heads;
  j["pretraining_tp"] = 1;
  j["rms_norm_eps"] = 1e-5;
  j["rope_parameters"] = {{"rope_theta", 10000.0}, {"rope_type", "default"}};
  j["rope_theta"] = 10000.0;
  j["tie_word_embeddings"] = h.shared_classifier;
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
  j["vocab_size"] = h.vocab_size;
  return j;
}

std::unique_ptr<MemoryTensorStore> read_llama2c_tensors(const fs::path& checkpoint_bin,
                                                        const Llama2cHeader& h) {
  const Layout l = layout_of(h);
  const int64_t dim = h.dim, hidden = h.hidden_dim, layers = h.n_layers, vocab = h.vocab_size;
  const int64_t kv_dim = static_cast<int64_t>(h.n_kv_heads) * h.head_dim();
  auto store = std::make_unique<MemoryTensorStore>();
  ArrayReader reader(checkpoint_bin);

  const std::vector<float> embedding = reader.read(l.embedding, "token_embedding_table");
  store->add("model.embed_tokens.weight", DType::F32, {vocab, dim}, embedding.data(),
             embedding.size() * sizeof(float));
  add_per_layer(*store, reader.read(l.rms_att, "rms_att_weight"), layers, "input_layernorm.weight", {dim});
  add_per_layer(*store, reader.read(l.wq, "wq"), layers, "self_attn.q_proj.weight", {dim, dim}, h.n_heads);
  add_per_layer(*store, reader.read(l.wk, "wk"), layers, "self_attn.k_proj.weight", {kv_dim, dim},
                h.n_kv_heads);
  add_per_layer(*store, reader.read(l.wv, "wv"), layers, "self_attn.v_proj.weight", {kv_dim, dim});
  add_per_layer(*store, reader.read(l.wo, "wo"), layers, "self_attn.o_proj.weight", {dim, dim});
  add_per_layer(*store, reader.read(l.rms_ffn, "rms_ffn_weight"), layers, "post_attention_layernorm.weight",
                {dim});
  add_per_layer(*store, reader.read(l.w1, "w1"), layers, "mlp.gate_proj.weight", {hidden, dim});
  add_per_layer(*store, reader.read(l.w2, "w2"), layers, "mlp.down_proj.weight", {dim, hidden});
  add_per_layer(*store, reader.read(l.w3, "w3"), layers, "mlp.up_proj.weight", {hidden, dim});
  const std::vector<float> norm = reader.read(l.rms_final, "rms_final_weight");
  store->add("model.norm.weight", DType::F32, {dim}, norm.data(), norm.size() * sizeof(float));
  reader.skip(2 * l.freq_cis);  // freq_cis_real, freq_cis_imag: HF recomputes them from rope_theta
  if (!h.shared_classifier) {
    const std::vector<float> wcls = reader.read(l.wcls, "wcls");
    store->add("lm_head.weight", DType::F32, {vocab, dim}, wcls.data(), wcls.size() * sizeof(float));
  }
  return store;
}

std::unique_ptr<Model> load_llama2c(const fs::path& checkpoint_bin) {
  const Llama2cHeader header = read_llama2c_header(checkpoint_bin);
  ModelConfig config = ModelConfig::from_json(llama2c_hf_config(header), checkpoint_bin.string());
  return std::make_unique<Model>(std::move(config), read_llama2c_tensors(checkpoint_bin, header),
                                 checkpoint_bin.parent_path());
}

void convert_llama2c(const fs::path& checkpoint_bin, const fs::path& tokenizer_bin, const fs::path& out_dir,
                     bool overwrite) {
  const Llama2cHeader header = read_llama2c_header(checkpoint_bin);
  const std::unique_ptr<MemoryTensorStore> tensors = read_llama2c_tensors(checkpoint_bin, header);

  StagedDirectory staged(out_dir, overwrite);
  const fs::path& dir = staged.path();
  write_file_atomic(dir / "config.json", dump(llama2c_hf_config(header)));
  // run.c stops generating at BOS (every training story starts with it), so both BOS and EOS end a sample.
  const nlohmann::json generation = {{"bos_token_id", 1}, {"eos_token_id", {2, 1}}, {"do_sample", false}};
  write_file_atomic(dir / "generation_config.json", dump(generation));

  SafetensorsWriter writer(dir, "model");
  writer.set_metadata("format", "pt");
  for (const std::string& name : tensors->names()) writer.add(tensors->get(name));
  writer.finish();

  if (!tokenizer_bin.empty()) {
    write_file_atomic(dir / "tokenizer.json",
                      dump(llama2c_tokenizer_to_hf_json(tokenizer_bin, header.vocab_size)));
    write_file_atomic(dir / "tokenizer_config.json", dump(llama2c_tokenizer_config()));
  }
  staged.commit();
}

}  // namespace lowbit

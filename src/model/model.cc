#include "model/model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "util/error.h"

namespace lowbit {

namespace {

bool is_float_dtype(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16;
}

}  // namespace

void TensorStore::read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const {
  const TensorView v = get(name);
  if (offset > v.nbytes || nbytes > v.nbytes - offset)
    fail("reading bytes [{}, {}) of tensor {}, which has {}", offset, offset + nbytes, name, v.nbytes);
  if (v.data == nullptr && nbytes > 0) fail("tensor {} has no data to read", name);
  if (nbytes) std::memcpy(out, v.data + offset, nbytes);
}

void MemoryTensorStore::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (static_cast<size_t>(numel) * dtype_size(dtype) != nbytes) {
    fail("tensor {}: {} bytes do not match shape [{}] of {}", name, nbytes, fmt::join(shape, ", "),
         dtype_name(dtype));
  }
  Owned& t = tensors_[name];
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.resize(nbytes);
  if (nbytes) std::memcpy(t.bytes.data(), data, nbytes);
}

std::vector<std::string> MemoryTensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [name, t] : tensors_) out.push_back(name);
  return out;
}

TensorView MemoryTensorStore::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("tensor {} not found", name);
  TensorView v;
  v.name = name;
  v.dtype = it->second.dtype;
  v.shape = it->second.shape;
  v.data = it->second.bytes.data();
  v.nbytes = it->second.bytes.size();
  return v;
}

std::unique_ptr<Model> Model::open(const std::filesystem::path& dir) {
  ModelConfig config = ModelConfig::load(dir);
  return std::make_unique<Model>(std::move(config), std::make_unique<CheckpointStore>(dir), dir);
}

Model::Model(ModelConfig config, std::unique_ptr<TensorStore> store, std::filesystem::path dir)
    : config_(std::move(config)), store_(std::move(store)), dir_(std::move(dir)) {
  bind();
}

TensorView Model::tensor(const std::string& name) const {
  if (!store_->contains(name)) {
    fail("{}: tensor {} not found in the checkpoint", dir_.empty() ? "model" : dir_.string(), name);
  }
  return store_->get(name);
}

TensorView Model::expect(const std::string& name, std::vector<int64_t> shape) const {
  TensorView v = tensor(name);
  if (v.shape != shape) {
    fail("{}: tensor {} has shape [{}], expected [{}] from config.json", dir_.string(), name,
         fmt::join(v.shape, ", "), fmt::join(shape, ", "));
  }
  if (!is_float_dtype(v.dtype)) {
    fail("{}: tensor {} has dtype {}; only F32, BF16 and F16 weights are supported here", dir_.string(), name,
         dtype_name(v.dtype));
  }
  return v;
}

LinearModule Model::linear(const std::string& module, int64_t out, int64_t in, bool has_bias) const {
  LinearModule m;
  m.name = module;
  m.weight = expect(module + ".weight", {out, in});
  if (has_bias) m.bias = expect(module + ".bias", {out});
  return m;
}

void Model::bind() {
  const ModelConfig& c = config_;
  embed_tokens_ = expect("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  final_norm_ = expect("model.norm.weight", {c.hidden_size});
  lm_head_tied_ = c.tie_word_embeddings || !store_->contains("lm_head.weight");
  if (lm_head_tied_) {
    lm_head_.name = "lm_head";
    lm_head_.weight = embed_tokens_;
  } else {
    lm_head_ = linear("lm_head", c.vocab_size, c.hidden_size, false);
  }
  layers_.clear();
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    LayerWeights l;
    l.input_layernorm = expect(p + "input_layernorm.weight", {c.hidden_size});
    l.post_attention_layernorm = expect(p + "post_attention_layernorm.weight", {c.hidden_size});
    l.q_proj = linear(p + "self_attn.q_proj", c.q_dim(), c.hidden_size, c.qkv_bias);
    l.k_proj = linear(p + "self_attn.k_proj", c.kv_dim(), c.hidden_size, c.qkv_bias);
    l.v_proj = linear(p + "self_attn.v_proj", c.kv_dim(), c.hidden_size, c.qkv_bias);
    l.o_proj = linear(p + "self_attn.o_proj", c.hidden_size, c.q_dim(), c.o_proj_bias);
    l.gate_proj = linear(p + "mlp.gate_proj", c.intermediate_size, c.hidden_size, c.mlp_bias);
    l.up_proj = linear(p + "mlp.up_proj", c.intermediate_size, c.hidden_size, c.mlp_bias);
    l.down_proj = linear(p + "mlp.down_proj", c.hidden_size, c.intermediate_size, c.mlp_bias);
    layers_.push_back(std::move(l));
  }
}

void Model::for_each_linear(const std::function<void(const LinearModule&)>& fn,
                            bool include_tied_lm_head) const {
  for (const LayerWeights& l : layers_) {
    for (const LinearModule* m :
         {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) {
      fn(*m);
    }
  }
  if (!lm_head_tied_ || include_tied_lm_head) fn(lm_head_);
}

void Model::for_each_tensor(const std::function<void(const std::string& name, const TensorView&)>& fn) const {
  for (const std::string& name : store_->names()) fn(name, store_->get(name));
}

}  // namespace lowbit

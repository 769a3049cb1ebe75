// A loaded checkpoint: its ModelConfig plus read-only views of its tensors under their Hugging Face names
// ("model.layers.3.self_attn.q_proj.weight"). Weights stay in their stored dtype and in the mapped files;
// nothing here copies a matrix. The visitors (for_each_linear, for_each_tensor) are the one place that
// knows the module layout of a Llama-shaped model; quantization and export walk the model through them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

namespace lowbit {

// Where tensors come from: a safetensors checkpoint folder, or buffers built in memory (llama2.c import,
// tests). Views stay valid as long as the store lives.
class TensorStore {
 public:
  virtual ~TensorStore() = default;
  virtual std::vector<std::string> names() const = 0;  // sorted
  virtual bool contains(const std::string& name) const = 0;
  virtual TensorView get(const std::string& name) const = 0;  // throws lowbit::Error when absent
  // Copies bytes [offset, offset + nbytes) of the tensor's data into `out`. Mapped stores read the file
  // (pread) so that the copied pages do not join the resident set; others copy from get().
  virtual void read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const;
  // A hint that the tensor is not needed for a while: mapped stores drop its pages from the resident set.
  virtual void release(const std::string& /*name*/) const {}
};

// The tensors of a checkpoint folder (io::Checkpoint: mmap, lazily mapped shards).
class CheckpointStore final : public TensorStore {
 public:
  explicit CheckpointStore(const std::filesystem::path& dir) : checkpoint_(dir) {}
  std::vector<std::string> names() const override { return checkpoint_.names(); }
  bool contains(const std::string& name) const override { return checkpoint_.contains(name); }
  TensorView get(const std::string& name) const override { return checkpoint_.get(name); }
  void read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const override {
    checkpoint_.read(name, offset, nbytes, out);
  }
  void release(const std::string& name) const override { checkpoint_.release(name); }

 private:
  Checkpoint checkpoint_;
};

// Tensors owned in memory.
class MemoryTensorStore : public TensorStore {
 public:
  // Copies `nbytes` from `data`; shape and dtype must agree with nbytes.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override { return tensors_.count(name) != 0; }
  TensorView get(const std::string& name) const override;

 private:
  struct Owned {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::map<std::string, Owned> tensors_;
};

// One nn.Linear of the model: `name` is the module name ("model.layers.0.mlp.down_proj").
struct LinearModule {
  std::string name;
  TensorView weight;               // [out_features, in_features]
  std::optional<TensorView> bias;  // [out_features]
};

// The tensors of one decoder layer, validated against the config (shapes, dtypes, biases present).
struct LayerWeights {
  TensorView input_layernorm;           // [hidden]
  TensorView post_attention_layernorm;  // [hidden]
  LinearModule q_proj, k_proj, v_proj, o_proj;
  LinearModule gate_proj, up_proj, down_proj;
};

class Model {
 public:
  // Opens a Hugging Face model folder (config.json + safetensors) and validates every tensor the
  // architecture needs. Unknown extra tensors are ignored (rotary inv_freq buffers etc.).
  static std::unique_ptr<Model> open(const std::filesystem::path& dir);
  // A model from a config and any tensor store (validated the same way).
  Model(ModelConfig config, std::unique_ptr<TensorStore> store, std::filesystem::path dir = {});

  const ModelConfig& config() const { return config_; }
  const std::filesystem::path& dir() const { return dir_; }
  const TensorStore& store() const { return *store_; }

  // Any stored tensor by its full name (throws naming the model folder when absent).
  TensorView tensor(const std::string& name) const;
  bool has_tensor(const std::string& name) const { return store_->contains(name); }

  const TensorView& embed_tokens() const { return embed_tokens_; }  // [vocab, hidden]
  const TensorView& final_norm() const { return final_norm_; }      // [hidden]
  // lm_head.weight, or embed_tokens when the embeddings are tied (or lm_head.weight is absent).
  const LinearModule& lm_head() const { return lm_head_; }
  bool lm_head_tied() const { return lm_head_tied_; }
  const LayerWeights& layer(int64_t i) const { return layers_.at(static_cast<size_t>(i)); }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }

  // Visits every linear module in forward order (per layer: q, k, v, o, gate, up, down; then lm_head,
  // unless it is tied to the embeddings and `include_tied_lm_head` is false).
  void for_each_linear(const std::function<void(const LinearModule&)>& fn,
                       bool include_tied_lm_head = false) const;
  // Visits every tensor of the store (sorted by name), including ones the runtime does not use.
  void for_each_tensor(const std::function<void(const std::string& name, const TensorView&)>& fn) const;

 private:
  void bind();
  TensorView expect(const std::string& name, std::vector<int64_t> shape) const;
  LinearModule linear(const std::string& module, int64_t out, int64_t in, bool has_bias) const;

  ModelConfig config_;
  std::unique_ptr<TensorStore> store_;
  std::filesystem::path dir_;
  TensorView embed_tokens_;
  TensorView final_norm_;
  LinearModule lm_head_;
  bool lm_head_tied_ = false;
  std::vector<LayerWeights> layers_;
};

}  // namespace lowbit

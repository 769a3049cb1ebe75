// Import of llama2.c checkpoints (Karpathy's run.c "version 0" export: a header of 7 int32 then fp32
// arrays) into a Hugging Face LlamaForCausalLM folder, so every other lowbit stage only ever sees HF folders.
//
// The one subtle step is RoPE: llama2.c rotates interleaved pairs (x[2i], x[2i+1]) of each head, while
// HF Llama rotates halves (x[i], x[i + head_dim/2]). The two are equivalent after permuting the rows of
// wq and wk within every head (row 2i+j of a head moves to row j*head_dim/2 + i), exactly the `permute`
// of transformers' convert_llama_weights_to_hf. Attention scores are unchanged because q and k are
// permuted alike; v and wo are not touched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/model.h"

namespace lowbit {

// The 7-int32 header of a llama2.c v0 checkpoint.
struct Llama2cHeader {
  int32_t dim = 0;         // hidden size
  int32_t hidden_dim = 0;  // MLP intermediate size
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;         // always positive here; the file's sign is in shared_classifier
  bool shared_classifier = true;  // file vocab_size > 0: the classifier is the token embedding
  int32_t seq_len = 0;

  int64_t head_dim() const { return dim / n_heads; }
  // The exact file size a v0 checkpoint with this header has.
  uint64_t expected_file_size() const;
};

// Reads and validates the header (positive sizes, divisible heads, even head_dim, file size matching the
// header exactly). Throws lowbit::Error naming the file; the newer "ak42" v1/v2 exports are recognised and
// refused with a hint.
Llama2cHeader read_llama2c_header(const std::filesystem::path& checkpoint_bin);

// The config.json of the converted model (LlamaForCausalLM, fp32, rms_norm_eps 1e-5, rope_theta 1e4,
// max_position_embeddings = seq_len, tie_word_embeddings = shared_classifier).
nlohmann::json llama2c_hf_config(const Llama2cHeader& header);

// All weights of the checkpoint as fp32 tensors under their HF names, wq/wk already permuted to the
// rotate-half layout. The freq_cis tables are skipped (HF recomputes RoPE from rope_theta).
std::unique_ptr<MemoryTensorStore> read_llama2c_tensors(const std::filesystem::path& checkpoint_bin,
                                                        const Llama2cHeader& header);

// The checkpoint as a lowbit Model, without writing anything (config from llama2c_hf_config).
std::unique_ptr<Model> load_llama2c(const std::filesystem::path& checkpoint_bin);

// Writes out_dir = {config.json, generation_config.json, model.safetensors (fp32)} and, when
// `tokenizer_bin` is not empty, tokenizer.json + tokenizer_config.json converted from the llama2.c
// tokenizer.bin. The folder is built under a temporary name and renamed into place when complete; an
// existing out_dir is refused unless `overwrite`.
void convert_llama2c(const std::filesystem::path& checkpoint_bin, const std::filesystem::path& tokenizer_bin,
                     const std::filesystem::path& out_dir, bool overwrite);

// The row permutation for one projection: `rows` = n_heads * head_dim rows of `cols` floats, interleaved
// RoPE pairs -> rotate-half order within every head. Exposed for tests.
std::vector<float> permute_rope_rows(const float* w, int64_t n_heads, int64_t head_dim, int64_t cols);

}  // namespace lowbit

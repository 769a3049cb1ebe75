// lowbit info MODEL: what a checkpoint folder holds (architecture, shapes, dtypes, sizes).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <map>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "io/safetensors.h"

namespace lowbit::cli {
namespace {

struct InfoArgs {
  CommonOptions common;
  std::string model;
};

int run_info(const InfoArgs& args) {
  // Loading validates the folder (shapes against the config, quantization layout) exactly as the other
  // commands would; the sizes below describe what is stored on disk, packed tensors included.
  const LoadedModel loaded = load_model(args.model, /*quiet=*/true);
  const Model& model = *loaded.model;
  const ModelConfig& c = model.config();
  const Checkpoint stored(args.model);
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // dtype -> (elements, bytes)
  int64_t tensors = 0;
  for (const std::string& name : stored.names()) {
    const TensorView t = stored.get(name);
    auto& [elements, bytes] = by_dtype[std::string(dtype_name(t.dtype))];
    elements += t.numel();
    bytes += t.nbytes;
    ++tensors;
  }
  int64_t params = 0;
  uint64_t total_bytes = 0;
  for (const auto& [dtype, counts] : by_dtype) {
    params += counts.first;
    total_bytes += counts.second;
  }
  int64_t linears = 0;
  model.for_each_linear([&](const LinearModule&) { ++linears; });

  if (args.common.json) {
    nlohmann::json dtypes = nlohmann::json::object();
    for (const auto& [dtype, counts] : by_dtype)
      dtypes[dtype] = {{"elements", counts.first}, {"bytes", counts.second}};
    nlohmann::json out = {{"model", args.model},
                          {"architecture", c.architecture},
                          {"layers", c.num_layers},
                          {"hidden_size", c.hidden_size},
                          {"intermediate_size", c.intermediate_size},
                          {"num_heads", c.num_heads},
                          {"num_kv_heads", c.num_kv_heads},
                          {"head_dim", c.head_dim},
                          {"vocab_size", c.vocab_size},
                          {"tie_word_embeddings", c.tie_word_embeddings},
                          {"tensors", tensors},
                          {"linear_modules", linears},
                          {"stored_elements", params},
                          {"bytes", total_bytes},
                          {"dtypes", dtypes},
                          {"quantization", describe_quantization(loaded)},
                          {"warnings", c.warnings}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("{}  ({})\n", args.model, c.architecture);
  fmt::print("  layers {}  hidden {}  intermediate {}  heads {} (kv {})  head_dim {}  vocab {}\n",
             c.num_layers, c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.head_dim,
             c.vocab_size);
  fmt::print("  rope_theta {}  rms_norm_eps {}  tied embeddings {}\n", c.rope_theta, c.rms_norm_eps,
             c.tie_word_embeddings ? "yes" : "no");
  fmt::print("  {} tensors, {} linear modules, {:.2f} M stored elements, {:.2f} MB\n", tensors, linears,
             static_cast<double>(params) / 1e6, static_cast<double>(total_bytes) / 1e6);
  for (const auto& [dtype, counts] : by_dtype)
    fmt::print("    {:<8} {:>14} elements {:>12.2f} MB\n", dtype, counts.first,
               static_cast<double>(counts.second) / 1e6);
  if (loaded.quant) fmt::print("  {}\n", describe_quantization(loaded));
  for (const auto& w : c.warnings) fmt::print("  warning: {}\n", w);
  return 0;
}

}  // namespace

void register_info(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model folder: architecture, shapes, dtypes, sizes");
  cmd->add_option("model", args->model, "Model folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_flag("--json", args->common.json, "Print one JSON object");
  commands.emplace_back(cmd, [args] { return run_info(*args); });
}

}  // namespace lowbit::cli

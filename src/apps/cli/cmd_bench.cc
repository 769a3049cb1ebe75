// lowbit bench MODEL: prefill/TTFT, inter-token latency and decode throughput, next to the memory-bandwidth
// floor for decode measured in the same run.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "eval/speed.h"
#include "util/thread_pool.h"

namespace lowbit::cli {
namespace {

struct BenchArgs {
  CommonOptions common;
  std::string model;
  eval::SpeedOptions speed;
  bool skip_bandwidth = false;
};

nlohmann::json to_json(const eval::Summary& s) {
  return {{"median", s.median}, {"mean", s.mean}, {"min", s.min},
          {"max", s.max},       {"p50", s.p50},   {"p99", s.p99}};
}

int run_bench(const BenchArgs& args) {
  apply_threads(args.common);
  LoadedModel loaded = load_model(args.model, args.common.json);
  const eval::SpeedResult r = eval::measure_speed(*loaded.transformer, args.speed);
  const size_t rss = peak_rss_bytes();  // before the bandwidth test's 1 GiB buffer
  const double bandwidth = args.skip_bandwidth ? 0.0 : eval::measure_read_bandwidth();
  // Decode cannot beat reading every weight once per token: that is its floor.
  const double floor_tok_s = bandwidth > 0 ? bandwidth / static_cast<double>(r.decode_weight_bytes) : 0.0;

  if (args.common.json) {
    nlohmann::json out = {
        {"model", args.model},
        {"threads", global_pool().size()},
        {"prompt_len", r.prompt_len},
        {"gen_len", r.gen_len},
        {"repeat", r.repeat},
        {"load_seconds", loaded.load_seconds},
        {"peak_rss_bytes", rss},
        {"decode_weight_bytes", r.decode_weight_bytes},
        {"ttft_s", to_json(r.ttft_s)},
        {"prefill_tok_s", to_json(r.prefill_tok_s)},
        {"itl_s", to_json(r.itl_s)},
        {"decode_tok_s", to_json(r.decode_tok_s)},
        {"e2e_s", to_json(r.e2e_s)},
        {"read_bandwidth_bytes_s", bandwidth},
        {"decode_floor_tok_s", floor_tok_s},
        {"decode_fraction_of_floor", floor_tok_s > 0 ? r.decode_tok_s.median / floor_tok_s : 0.0}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("model {}  threads {}  prompt {}  gen {}  repeat {}\n", args.model, global_pool().size(),
             r.prompt_len, r.gen_len, r.repeat);
  fmt::print("load            {:8.3f} s       peak RSS {:.1f} MB   weights read per token {:.1f} MB\n",
             loaded.load_seconds, static_cast<double>(rss) / 1e6,
             static_cast<double>(r.decode_weight_bytes) / 1e6);
  fmt::print("prefill         {:8.1f} tok/s   (min {:.1f}, max {:.1f})\n", r.prefill_tok_s.median,
             r.prefill_tok_s.min, r.prefill_tok_s.max);
  fmt::print("TTFT            {:8.2f} ms\n", r.ttft_s.median * 1e3);
  fmt::print("ITL             {:8.2f} ms mean, p50 {:.2f}, p99 {:.2f}\n", r.itl_s.mean * 1e3,
             r.itl_s.p50 * 1e3, r.itl_s.p99 * 1e3);
  fmt::print("decode          {:8.1f} tok/s   (min {:.1f}, max {:.1f})\n", r.decode_tok_s.median,
             r.decode_tok_s.min, r.decode_tok_s.max);
  if (bandwidth > 0)
    fmt::print("bandwidth floor {:8.1f} tok/s   ({:.2f} GB/s read; decode at {:.0f} % of the floor)\n",
               floor_tok_s, bandwidth / 1e9, 100.0 * r.decode_tok_s.median / floor_tok_s);
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Measure prefill, TTFT, inter-token latency and decode throughput");
  cmd->add_option("model", args->model, "Model folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--prompt-len", args->speed.prompt_len, "Prompt tokens")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gen-len", args->speed.gen_len, "Generated tokens")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeat,-r", args->speed.repeat, "Timed runs (after one warm-up)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->speed.seed, "Seed of the random prompt")->capture_default_str();
  cmd->add_flag("--no-bandwidth", args->skip_bandwidth, "Skip measuring memory bandwidth");
  add_common_options(cmd, args->common);
  commands.emplace_back(cmd, [args] { return run_bench(*args); });
}

}  // namespace lowbit::cli

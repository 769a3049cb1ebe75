// lowbit bench MODEL: load time, weight memory, peak RSS, prefill/TTFT, inter-token latency and decode
// throughput per batch size, next to the memory-bandwidth floor for decode measured in the same run.
// `--compare OTHER` measures a second model in the same invocation and prints MODEL / OTHER ratios;
// `--rounds N` measures the two alternately N times and adds each round's ratios and their medians, which on
// a machine shared with other jobs are steadier than one pair; each round also gets its own machine probes,
// taken right after its pair, and both models' batch-1 decode as a share of the floor at that probe.
//
// Each model is measured in a child process (fork), so that its peak RSS is its own: the high-water mark
// of a process cannot be reset, and two models in one process would share one.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "apps/cli/commands.h"
#include "apps/cli/loaded_model.h"
#include "eval/speed.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::cli {
namespace {

struct BenchArgs {
  CommonOptions common;
  std::string model;
  std::string compare;  // empty: none
  eval::SpeedOptions speed;
  bool skip_bandwidth = false;
  int probe_mib = 1024;  // the read-bandwidth probe's buffer
  bool dequantize = false;
  int rounds = 1;  // pairs of MODEL and OTHER measured alternately (with --compare)
};

nlohmann::json to_json(const eval::Summary& s) {
  return {{"median", s.median}, {"mean", s.mean}, {"min", s.min},
          {"max", s.max},       {"p50", s.p50},   {"p99", s.p99}};
}

// Bytes of every weight the runtime holds: the linear layers as held (packed or not) plus the embeddings
// and norms (lm_head counted once when tied).
uint64_t held_weight_bytes(const LoadedModel& loaded, uint64_t linear_bytes) {
  const Model& m = *loaded.model;
  uint64_t bytes = linear_bytes + m.embed_tokens().nbytes + m.final_norm().nbytes;
  if (m.lm_head_tied()) bytes -= loaded.transformer->lm_head().weight_bytes();
  for (int64_t i = 0; i < m.num_layers(); ++i)
    bytes += m.layer(i).input_layernorm.nbytes + m.layer(i).post_attention_layernorm.nbytes;
  return bytes;
}

// Loads and measures one model (in the calling process).
nlohmann::json measure_model(const std::string& path, const BenchArgs& args) {
  apply_threads(args.common);
  LoadedModel loaded = load_model(path, /*quiet=*/true,
                                  args.dequantize ? QuantizedWeights::Dequantized : QuantizedWeights::Default,
                                  WithTokenizer::No);
  apply_kv_cache_dtype(loaded, args.common.kv_cache_dtype);
  const size_t rss_after_load = peak_rss_bytes();
  const eval::SpeedResult r = eval::measure_speed(*loaded.transformer, args.speed);
  const size_t rss = peak_rss_bytes();
  nlohmann::json batches = nlohmann::json::array();
  for (const eval::BatchSpeed& b : r.batches) {
    batches.push_back({{"batch", b.batch},
                       {"ttft_s", to_json(b.ttft_s)},
                       {"prefill_tok_s", to_json(b.prefill_tok_s)},
                       {"itl_s", to_json(b.itl_s)},
                       {"decode_tok_s", to_json(b.decode_tok_s)},
                       {"e2e_s", to_json(b.e2e_s)},
                       {"peak_rss_bytes", b.peak_rss_bytes}});
  }
  return {{"model", path},
          {"quantization", loaded.quant ? describe_quantization(loaded) : std::string("none")},
          {"threads", global_pool().size()},
          {"kv_cache", describe_kv_cache(loaded)},
          {"prompt_len", r.prompt_len},
          {"gen_len", r.gen_len},
          {"repeat", r.repeat},
          {"load_seconds", loaded.load_seconds},
          {"weight_bytes", held_weight_bytes(loaded, r.decode_weight_bytes)},
          {"decode_weight_bytes", r.decode_weight_bytes},
          {"decode_kv_bytes", r.decode_kv_bytes},
          {"prefill_flops_per_token", r.prefill_flops_per_token},
          {"peak_rss_after_load_bytes", rss_after_load},
          {"peak_rss_bytes", rss},
          {"batches", batches}};
}

// fn() in a child process; its JSON comes back through a pipe. Errors in the child come back as
// {"error": message} and are rethrown here. Why a child: measure_model's peak RSS must be its own, and the
// parent must not start the thread pool before it forks (a child inherits no threads, only the pool object).
nlohmann::json run_in_child(const std::string& what, const std::function<nlohmann::json()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) fail("bench: pipe failed: {}", std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) fail("bench: fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    std::string text;
    int status = 0;
    try {
      text = fn().dump();
    } catch (const std::exception& e) {
      text = nlohmann::json{{"error", e.what()}}.dump();
      status = 1;
    }
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fds[1]);
    _exit(status);
  }
  close(fds[1]);
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  nlohmann::json out;
  try {
    out = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    fail("bench: {} failed (the child process exited with status {})", what, status);
  }
  if (out.contains("error")) fail("{}", out["error"].get<std::string>());
  return out;
}

nlohmann::json measure_in_child(const std::string& path, const BenchArgs& args) {
  return run_in_child("measuring " + path, [&] { return measure_model(path, args); });
}

size_t probe_bytes(const BenchArgs& args) {
  return static_cast<size_t>(args.probe_mib) << 20;
}

// The machine probes alone (read bandwidth and FMA peak), in a child between the rounds' children (see
// run_in_child): {"read_bandwidth_bytes_s", "fma_peak_flops_s"}.
nlohmann::json probes_in_child(const BenchArgs& args) {
  return run_in_child("the machine probes", [&] {
    apply_threads(args.common);
    return nlohmann::json{{"read_bandwidth_bytes_s", eval::measure_read_bandwidth(probe_bytes(args))},
                          {"fma_peak_flops_s", eval::measure_fma_peak()}};
  });
}

// Batch-1 decode of a measured model as a fraction of its weights' floor at `bandwidth` bytes/s (0 without
// a probe).
double decode_fraction_of_floor(const nlohmann::json& m, double bandwidth) {
  const double floor = bandwidth / m["decode_weight_bytes"].get<double>();
  return floor > 0 ? m["batches"][0]["decode_tok_s"]["median"].get<double>() / floor : 0.0;
}

const nlohmann::json& batch_entry(const nlohmann::json& model, int64_t batch) {
  for (const nlohmann::json& b : model["batches"])
    if (b["batch"].get<int64_t>() == batch) return b;
  fail("bench: no result for batch {}", batch);
}

double ratio(double a, double b) {
  return b != 0.0 ? a / b : 0.0;
}

// MODEL / OTHER for every headline figure.
nlohmann::json ratios(const nlohmann::json& a, const nlohmann::json& b) {
  nlohmann::json out = {
      {"weight_bytes", ratio(a["weight_bytes"].get<double>(), b["weight_bytes"].get<double>())},
      {"peak_rss_bytes", ratio(a["peak_rss_bytes"].get<double>(), b["peak_rss_bytes"].get<double>())},
      {"load_seconds", ratio(a["load_seconds"].get<double>(), b["load_seconds"].get<double>())}};
  nlohmann::json per_batch = nlohmann::json::array();
  for (const nlohmann::json& ba : a["batches"]) {
    const nlohmann::json& bb = batch_entry(b, ba["batch"].get<int64_t>());
    auto med = [](const nlohmann::json& x, const char* key) { return x[key]["median"].get<double>(); };
    per_batch.push_back(
        {{"batch", ba["batch"]},
         {"ttft_s", ratio(med(ba, "ttft_s"), med(bb, "ttft_s"))},
         {"prefill_tok_s", ratio(med(ba, "prefill_tok_s"), med(bb, "prefill_tok_s"))},
         {"itl_mean_s", ratio(ba["itl_s"]["mean"].get<double>(), bb["itl_s"]["mean"].get<double>())},
         {"decode_tok_s", ratio(med(ba, "decode_tok_s"), med(bb, "decode_tok_s"))},
         {"e2e_s", ratio(med(ba, "e2e_s"), med(bb, "e2e_s"))}});
  }
  out["batches"] = per_batch;
  return out;
}

// The median over rounds of each per-batch ratio (ratios()' "batches"), keyed like one round's.
nlohmann::json median_ratios(const std::vector<nlohmann::json>& rounds) {
  nlohmann::json per_batch = nlohmann::json::array();
  for (size_t b = 0; b < rounds.front()["batches"].size(); ++b) {
    nlohmann::json entry = {{"batch", rounds.front()["batches"][b]["batch"]}};
    for (const char* key : {"ttft_s", "prefill_tok_s", "itl_mean_s", "decode_tok_s", "e2e_s"}) {
      std::vector<double> v;
      for (const nlohmann::json& r : rounds) v.push_back(r["batches"][b][key].get<double>());
      entry[key] = eval::summarize(std::move(v)).median;
    }
    per_batch.push_back(entry);
  }
  nlohmann::json out = {{"rounds", rounds.size()}, {"batches", per_batch}};
  for (const char* key : {"read_bandwidth_bytes_s", "fma_peak_flops_s", "decode_fraction_of_floor",
                          "compare_decode_fraction_of_floor"}) {
    if (!rounds.front().contains(key)) continue;
    std::vector<double> v;
    for (const nlohmann::json& r : rounds) v.push_back(r[key].get<double>());
    out[key] = eval::summarize(std::move(v)).median;
  }
  return out;
}

void print_model(const nlohmann::json& m, double bandwidth, double fma_peak) {
  const double weights = m["decode_weight_bytes"].get<double>();
  fmt::print("model {}  ({})\n", m["model"].get<std::string>(), m["quantization"].get<std::string>());
  fmt::print("  threads {}  prompt {}  gen {}  repeat {}\n", m["threads"].get<int>(),
             m["prompt_len"].get<int64_t>(), m["gen_len"].get<int64_t>(), m["repeat"].get<int>());
  fmt::print(
      "  load {:.3f} s   weights {:.1f} MB (read per decode step {:.1f} MB)   peak RSS {:.1f} MB "
      "(after load {:.1f} MB)\n",
      m["load_seconds"].get<double>(), m["weight_bytes"].get<double>() / 1e6, weights / 1e6,
      m["peak_rss_bytes"].get<double>() / 1e6, m["peak_rss_after_load_bytes"].get<double>() / 1e6);
  fmt::print("  {:>5} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9}\n", "batch", "prefill/s", "TTFT ms",
             "ITL ms", "ITL p50", "ITL p99", "decode t/s", "e2e s");
  for (const nlohmann::json& b : m["batches"]) {
    fmt::print(
        "  {:>5} {:>10.1f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>11.1f} {:>9.2f} {:>9.1f}   (decode min "
        "{:.1f} "
        "max {:.1f})\n",
        b["batch"].get<int64_t>(), b["prefill_tok_s"]["median"].get<double>(),
        b["ttft_s"]["median"].get<double>() * 1e3, b["itl_s"]["mean"].get<double>() * 1e3,
        b["itl_s"]["p50"].get<double>() * 1e3, b["itl_s"]["p99"].get<double>() * 1e3,
        b["decode_tok_s"]["median"].get<double>(), b["e2e_s"]["median"].get<double>(),
        b["peak_rss_bytes"].get<double>() / 1e6, b["decode_tok_s"]["min"].get<double>(),
        b["decode_tok_s"]["max"].get<double>());
  }
  if (fma_peak > 0) {
    fmt::print(
        "  fp32 FMA peak {:.1f} GFLOP/s; batch-1 prefill {:.1f} GFLOP/s ({:.1f} MFLOP per prompt token), "
        "{:.0f} % of it (W8A8's int8 products on VNNI or AMX may pass it)\n",
        fma_peak / 1e9, m["prefill_flops_s"].get<double>() / 1e9,
        m["prefill_flops_per_token"].get<double>() / 1e6,
        100.0 * m["prefill_fraction_of_fma_peak"].get<double>());
  }
  if (bandwidth > 0) {
    const double floor = bandwidth / weights;
    const double decode = m["batches"][0]["decode_tok_s"]["median"].get<double>();
    fmt::print("  bandwidth floor {:.1f} steps/s ({:.2f} GB/s read); batch-1 decode at {:.0f} % of it\n",
               floor, bandwidth / 1e9, 100.0 * decode / floor);
    fmt::print(
        "  with the KV cache's reads ({} cache, {:.1f} MB per step): floor {:.1f} steps/s, decode at {:.0f} "
        "%\n",
        m["kv_cache"].get<std::string>(), m["decode_kv_bytes"].get<double>() / 1e6,
        m["decode_floor_with_kv_tok_s"].get<double>(),
        100.0 * m["decode_fraction_of_floor_with_kv"].get<double>());
  }
}

int run_bench(const BenchArgs& args) {
  nlohmann::json first = measure_in_child(args.model, args);
  nlohmann::json other;
  std::vector<nlohmann::json> rounds;  // MODEL / OTHER ratios of each round
  // With several rounds each pair is held against probes of its own, taken right after it: a shared VM's
  // bandwidth (and clock) drifts between rounds, and so does each model's share of its floor.
  const bool probe_each_round = args.rounds > 1 && !args.skip_bandwidth;
  auto add_round = [&](const nlohmann::json& a, const nlohmann::json& b) {
    nlohmann::json round = ratios(a, b);
    if (probe_each_round) {
      const nlohmann::json probes = probes_in_child(args);
      const double bandwidth = probes["read_bandwidth_bytes_s"].get<double>();
      round["read_bandwidth_bytes_s"] = bandwidth;
      round["fma_peak_flops_s"] = probes["fma_peak_flops_s"];
      round["decode_fraction_of_floor"] = decode_fraction_of_floor(a, bandwidth);
      round["compare_decode_fraction_of_floor"] = decode_fraction_of_floor(b, bandwidth);
    }
    rounds.push_back(std::move(round));
  };
  if (!args.compare.empty()) {
    other = measure_in_child(args.compare, args);
    add_round(first, other);
    for (int r = 1; r < args.rounds; ++r) {
      if (!args.common.json) fmt::print(stderr, "bench: round {} of {}\n", r + 1, args.rounds);
      const nlohmann::json a = measure_in_child(args.model, args);
      add_round(a, measure_in_child(args.compare, args));
    }
  }
  // The tables show round 1, so with probes per round they are held against round 1's; otherwise the probes
  // run once, here.
  double bandwidth = 0.0, fma_peak = 0.0;
  if (probe_each_round) {
    bandwidth = rounds.front()["read_bandwidth_bytes_s"].get<double>();
    fma_peak = rounds.front()["fma_peak_flops_s"].get<double>();
  } else if (!args.skip_bandwidth) {
    apply_threads(args.common);
    bandwidth = eval::measure_read_bandwidth(probe_bytes(args));
    fma_peak = eval::measure_fma_peak();
  }
  // Decode cannot beat reading every weight once per step: that is its floor. Attention also reads the
  // cached keys and values of every earlier position, which at long contexts is a large share of a small
  // model's step: the second floor counts those bytes too.
  auto add_machine_limits = [&](nlohmann::json& m) {
    const double decode = m["batches"][0]["decode_tok_s"]["median"].get<double>();
    const double weights = m["decode_weight_bytes"].get<double>();
    const double floor = bandwidth > 0 ? bandwidth / weights : 0.0;
    const double floor_kv = bandwidth > 0 ? bandwidth / (weights + m["decode_kv_bytes"].get<double>()) : 0.0;
    m["decode_floor_tok_s"] = floor;
    m["decode_fraction_of_floor"] = decode_fraction_of_floor(m, bandwidth);
    m["decode_floor_with_kv_tok_s"] = floor_kv;
    m["decode_fraction_of_floor_with_kv"] = floor_kv > 0 ? decode / floor_kv : 0.0;
    // Prefill cannot beat doing its useful flops at the fp32 FMA peak: the ceiling of every fp32 product.
    // (W8A8's integer products have their own, higher on CPUs with AVX-512 VNNI or AMX-INT8.)
    const double prefill_flops =
        m["batches"][0]["prefill_tok_s"]["median"].get<double>() * m["prefill_flops_per_token"].get<double>();
    m["prefill_flops_s"] = prefill_flops;
    m["prefill_fraction_of_fma_peak"] = fma_peak > 0 ? prefill_flops / fma_peak : 0.0;
  };
  add_machine_limits(first);
  if (!other.is_null()) add_machine_limits(other);

  if (args.common.json) {
    nlohmann::json out = first;
    out["read_bandwidth_bytes_s"] = bandwidth;
    out["fma_peak_flops_s"] = fma_peak;
    if (!other.is_null()) {
      out["compare"] = other;
      out["ratios"] = rounds.front();
      if (rounds.size() > 1) {
        out["rounds"] = rounds;
        out["ratios_median"] = median_ratios(rounds);
      }
    }
    fmt::print("{}\n", out.dump());
    return 0;
  }
  print_model(first, bandwidth, fma_peak);
  if (other.is_null()) return 0;
  print_model(other, bandwidth, fma_peak);
  const nlohmann::json r = ratios(first, other);
  fmt::print("ratios {} / {}: weights {:.3f}  peak RSS {:.3f}  load {:.3f}\n", args.model, args.compare,
             r["weight_bytes"].get<double>(), r["peak_rss_bytes"].get<double>(),
             r["load_seconds"].get<double>());
  for (const nlohmann::json& b : r["batches"]) {
    fmt::print("  batch {:>3}: prefill {:.2f}x  TTFT {:.3f}  ITL {:.3f}  decode {:.2f}x  e2e {:.3f}\n",
               b["batch"].get<int64_t>(), b["prefill_tok_s"].get<double>(), b["ttft_s"].get<double>(),
               b["itl_mean_s"].get<double>(), b["decode_tok_s"].get<double>(), b["e2e_s"].get<double>());
  }
  if (rounds.size() < 2) return 0;
  const nlohmann::json med = median_ratios(rounds);
  fmt::print("ratios over {} rounds (each pair measured in turn):\n", rounds.size());
  for (size_t b = 0; b < med["batches"].size(); ++b) {
    for (const char* key : {"decode_tok_s", "prefill_tok_s"}) {
      std::string each;
      for (const nlohmann::json& round : rounds)
        each += fmt::format(" {:.2f}", round["batches"][b][key].get<double>());
      fmt::print("  batch {:>3} {:<8}{}   median {:.2f}x\n", med["batches"][b]["batch"].get<int64_t>(),
                 key == std::string("decode_tok_s") ? "decode" : "prefill", each,
                 med["batches"][b][key].get<double>());
    }
  }
  if (!probe_each_round) return 0;
  fmt::print("batch-1 decode against its weights' floor, each round with probes taken right after it:\n");
  const auto per_round = [&](const char* label, const char* key, double scale, const char* unit) {
    std::string each;
    for (const nlohmann::json& round : rounds)
      each += fmt::format(" {:.1f}", scale * round[key].get<double>());
    fmt::print("  {:<14}{}   median {:.1f}{}\n", label, each, scale * med[key].get<double>(), unit);
  };
  per_round("read GB/s", "read_bandwidth_bytes_s", 1e-9, " GB/s");
  per_round("FMA GFLOP/s", "fma_peak_flops_s", 1e-9, " GFLOP/s");
  per_round("model %", "decode_fraction_of_floor", 100.0, " %");
  per_round("compare %", "compare_decode_fraction_of_floor", 100.0, " %");
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& commands) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure load time, memory, prefill, TTFT, inter-token latency and decode throughput");
  cmd->footer(
      "Prompts are random token ids: the tokenizer is not loaded, so load time and peak RSS are the model's "
      "and "
      "the engine's alone. Each model is measured in its own child process.");
  cmd->add_option("model", args->model, "Model folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--prompt-len", args->speed.prompt_len, "Prompt tokens")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gen-len", args->speed.gen_len, "Generated tokens")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch,-b", args->speed.batches, "Decode batch sizes, comma separated (e.g. 1,4,16)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--repeat,-r", args->speed.repeat, "Timed runs (after one warm-up)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->speed.seed, "Seed of the random prompts")->capture_default_str();
  cmd->add_option("--compare", args->compare,
                  "A second model measured in the same run; prints MODEL / OTHER ratios")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--rounds", args->rounds,
                  "With --compare: measure MODEL and OTHER alternately this many times and report each "
                  "round's ratios and their median (steadier on a shared machine), each round with its own "
                  "machine probes and floor shares; the tables show round 1")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->needs("--compare");
  cmd->add_flag("--dequantize", args->dequantize,
                "Run quantized checkpoints dequantized at load (the fake-quant path) instead of packed");
  cmd->add_flag(
      "--no-bandwidth", args->skip_bandwidth,
      "Skip the machine probes: memory bandwidth (decode's floor) and FMA peak (prefill's ceiling)");
  cmd->add_option(
         "--probe-mib", args->probe_mib,
         "Buffer of the read-bandwidth probe in MiB; it must be much larger than the last-level cache")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  add_common_options(cmd, args->common);
  add_kv_cache_dtype_option(cmd, args->common, "auto");
  commands.emplace_back(cmd, [args] { return run_bench(*args); });
}

}  // namespace lowbit::cli

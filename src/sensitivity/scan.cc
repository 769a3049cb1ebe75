#include "sensitivity/scan.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "calib/decoder_layer.h"
#include "quant/model_quantizer.h"
#include "runtime/kernels.h"
#include "runtime/linear.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::sensitivity {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A targeted module: where it sits and its fake-quantized weight.
struct Target {
  int64_t layer = 0;
  LinearSlot slot = LinearSlot::Q;
  std::vector<float> fake_quant;        // dequantize(quantize(W)), rows x cols
  double err_sum = 0.0, ref_sum = 0.0;  // layer-local error accumulators
};

// One end-to-end run: the modules quantized together.
struct Run {
  std::string name;
  std::vector<size_t> targets;
  int64_t first_layer = 0;
  double kl_sum = 0.0, nll_sum = 0.0, top1 = 0.0, kl_max = 0.0;
};

// What the base model predicts at every scored position of one sample.
struct BaseDistribution {
  std::vector<float> logp, p;          // [positions x vocab]
  std::vector<double> p_logp, p_mass;  // sum p log p, sum p (per position)
  std::vector<int32_t> argmax;         // per position
};

int32_t argmax_of(const float* x, int64_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

// Log-sum-exp of one logit row, in double.
double logsumexp(const float* z, int64_t n) {
  const double m = *std::max_element(z, z + n);
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(z[i]) - m);
  return m + std::log(s);
}

// The fp32 model pieces the scan runs: decoder layers, final norm, lm_head.
class ScanModel {
 public:
  explicit ScanModel(const Model& model) : model_(model), config_(model.config()), runner_(config_) {
    for (int64_t l = 0; l < model.num_layers(); ++l) layers.push_back(load_decoder_layer(model, l));
    final_norm_ = runtime::to_f32(model.final_norm());
    const TensorView& head = model.lm_head().weight;
    lm_head_.resize(static_cast<size_t>(head.shape[0] * head.shape[1]));
    kernels::convert_rows_to_f32(runtime::dense_weight(head), 0, head.shape[0], lm_head_.data());
    if (model.lm_head().bias) lm_head_bias_ = runtime::to_f32(*model.lm_head().bias);
  }

  uint64_t bytes() const {
    uint64_t b = lm_head_.size() * sizeof(float);
    for (const DecoderLayerF32& l : layers) b += l.bytes();
    return b;
  }

  // x [tokens x hidden] -> embeddings of `ids`.
  void embed(const std::vector<int32_t>& ids, std::vector<float>& x) const {
    const int64_t hidden = config_.hidden_size;
    x.resize(ids.size() * static_cast<size_t>(hidden));
    const kernels::DenseWeight table = runtime::dense_weight(model_.embed_tokens());
    for (size_t t = 0; t < ids.size(); ++t) {
      if (ids[t] < 0 || ids[t] >= config_.vocab_size)
        fail("calibration token id {} is outside the model's vocabulary ({})", ids[t], config_.vocab_size);
      kernels::convert_rows_to_f32(table, ids[t], 1, x.data() + t * static_cast<size_t>(hidden));
    }
  }

  void layer_forward(int64_t l, float* x, int64_t tokens, const LayerObserver* observer = nullptr) {
    runner_.forward(layers[static_cast<size_t>(l)], x, tokens, x, observer);
  }

  // logits [tokens x vocab] of the final hidden states x.
  void head(const float* x, int64_t tokens, std::vector<float>& logits) {
    const int64_t hidden = config_.hidden_size, vocab = config_.vocab_size;
    normed_.resize(static_cast<size_t>(tokens * hidden));
    kernels::rmsnorm(x, final_norm_.data(), tokens, hidden, static_cast<float>(config_.rms_norm_eps),
                     normed_.data());
    logits.resize(static_cast<size_t>(tokens * vocab));
    const kernels::DenseWeight w{DType::F32, lm_head_.data(), vocab, hidden};
    kernels::linear(normed_.data(), tokens, w, lm_head_bias_.empty() ? nullptr : lm_head_bias_.data(),
                    logits.data());
  }

  std::vector<DecoderLayerF32> layers;

 private:
  const Model& model_;
  const ModelConfig& config_;
  LayerRunner runner_;
  std::vector<float> final_norm_, lm_head_, lm_head_bias_, normed_;
};

// Swaps the run's fake-quantized weights into layer `l` on construction and back on destruction.
class SwapIn {
 public:
  SwapIn(ScanModel& m, std::vector<Target>& targets, const Run& run, int64_t l) : m_(m), l_(l) {
    for (size_t t : run.targets)
      if (targets[t].layer == l) swapped_.push_back(&targets[t]);
    swap();
  }
  ~SwapIn() { swap(); }
  SwapIn(const SwapIn&) = delete;
  SwapIn& operator=(const SwapIn&) = delete;

 private:
  void swap() {
    for (Target* t : swapped_)
      std::swap(m_.layers[static_cast<size_t>(l_)].linear(t->slot).weight, t->fake_quant);
  }
  ScanModel& m_;
  int64_t l_;
  std::vector<Target*> swapped_;
};

std::vector<Run> make_runs(Granularity g, const std::vector<Target>& targets,
                           const std::vector<ModuleSensitivity>& modules) {
  std::vector<Run> runs;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < targets.size(); ++i) {
    std::string key;
    if (g == Granularity::Module) key = modules[i].name;
    if (g == Granularity::Layer) key = fmt::format("layer {}", targets[i].layer);
    if (g == Granularity::Type) key = modules[i].type;
    auto [it, inserted] = index.emplace(key, runs.size());
    if (inserted) {
      runs.push_back({});
      runs.back().name = key;
      runs.back().first_layer = targets[i].layer;
    }
    Run& r = runs[it->second];
    r.targets.push_back(i);
    r.first_layer = std::min(r.first_layer, targets[i].layer);
  }
  return runs;
}

// The base model's distributions at positions [0, positions) of one sample's logits.
void base_distribution(const std::vector<float>& logits, int64_t positions, int64_t vocab,
                       BaseDistribution& b) {
  const size_t n = static_cast<size_t>(positions * vocab);
  b.logp.resize(n);
  b.p.resize(n);
  b.p_logp.assign(static_cast<size_t>(positions), 0.0);
  b.p_mass.assign(static_cast<size_t>(positions), 0.0);
  b.argmax.assign(static_cast<size_t>(positions), 0);
  global_pool().parallel_for(static_cast<size_t>(positions), 4, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const float* z = logits.data() + t * static_cast<size_t>(vocab);
      float* logp = b.logp.data() + t * static_cast<size_t>(vocab);
      float* p = b.p.data() + t * static_cast<size_t>(vocab);
      const double lse = logsumexp(z, vocab);
      double plogp = 0.0, mass = 0.0;
      for (int64_t v = 0; v < vocab; ++v) {
        const double lp = static_cast<double>(z[v]) - lse;
        logp[v] = static_cast<float>(lp);
        p[v] = static_cast<float>(std::exp(lp));
        plogp += static_cast<double>(p[v]) * lp;
        mass += p[v];
      }
      b.p_logp[t] = plogp;
      b.p_mass[t] = mass;
      b.argmax[t] = argmax_of(z, vocab);
    }
  });
}

// Adds one sample's KL / NLL / top-1 of `logits` against the base distribution to `run`.
// KL(p || q) = sum p log p - sum p z + lse(z) sum p, with q = softmax(z); sums in double.
void score(const std::vector<float>& logits, const BaseDistribution& b, const std::vector<int32_t>& ids,
           int64_t positions, int64_t vocab, Run& run) {
  std::vector<double> kl(static_cast<size_t>(positions)), nll(static_cast<size_t>(positions));
  std::vector<uint8_t> same(static_cast<size_t>(positions));
  global_pool().parallel_for(static_cast<size_t>(positions), 4, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const float* z = logits.data() + t * static_cast<size_t>(vocab);
      const float* p = b.p.data() + t * static_cast<size_t>(vocab);
      const double lse = logsumexp(z, vocab);
      double pz = 0.0;
      for (int64_t v = 0; v < vocab; ++v) pz += static_cast<double>(p[v]) * z[v];
      kl[t] = std::max(0.0, b.p_logp[t] - pz + lse * b.p_mass[t]);
      nll[t] = lse - z[ids[t + 1]];
      same[t] = argmax_of(z, vocab) == b.argmax[t];
    }
  });
  for (int64_t t = 0; t < positions; ++t) {
    run.kl_sum += kl[static_cast<size_t>(t)];
    run.kl_max = std::max(run.kl_max, kl[static_cast<size_t>(t)]);
    run.nll_sum += nll[static_cast<size_t>(t)];
    run.top1 += same[static_cast<size_t>(t)];
  }
}

EndToEnd finish(const Run& r, int64_t positions) {
  EndToEnd e;
  const double n = static_cast<double>(std::max<int64_t>(positions, 1));
  e.kl_mean = r.kl_sum / n;
  e.kl_max = r.kl_max;
  e.nll = r.nll_sum / n;
  e.ppl = std::exp(e.nll);
  e.top1_agreement = r.top1 / n;
  return e;
}

}  // namespace

Granularity parse_granularity(const std::string& name) {
  if (name == "module") return Granularity::Module;
  if (name == "layer") return Granularity::Layer;
  if (name == "type") return Granularity::Type;
  fail("--granularity {}: expected module, layer or type", name);
}

std::string to_string(Granularity g) {
  return g == Granularity::Module ? "module" : g == Granularity::Layer ? "layer" : "type";
}

std::string module_type(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

ScanResult scan_sensitivity(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                            const ScanOptions& options,
                            const std::function<void(const ScanProgress&)>& progress) {
  const auto start = Clock::now();
  const ModelConfig& c = model.config();
  if (data.samples.empty()) fail("the sensitivity scan needs at least one calibration sample");
  for (const auto& s : data.samples)
    if (s.size() < 2) fail("calibration samples need at least 2 tokens, got {}", s.size());
  ScanResult result;
  result.granularity = options.granularity;
  result.samples = data.num_samples();
  for (const PlannedModule& pm : plan.modules)
    if (pm.decision == ModuleDecision::Quantized && pm.name.rfind("model.layers.", 0) != 0)
      result.notes.push_back(fmt::format("{} is not in a decoder layer: not scanned", pm.name));

  // 1. fp32 copies and fake-quantized weights.
  if (progress) progress({0, 0, "load"});
  ScanModel sm(model);
  std::vector<Target> targets;
  uint64_t fq_bytes = 0;
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    for (LinearSlot slot : kLinearSlots) {
      const LinearF32& w = sm.layers[static_cast<size_t>(l)].linear(slot);
      const QuantScheme* scheme = plan.scheme_for(w.name);
      if (scheme == nullptr) continue;
      if (!scheme->weights) fail("module {}: the scheme quantizes no weights", w.name);
      ModuleSensitivity m;
      m.name = w.name;
      m.type = module_type(w.name);
      m.layer = l;
      m.rows = w.rows;
      m.cols = w.cols;
      m.weight_dtype = w.stored_dtype;
      m.stats = weight_stats(w.weight.data(), w.rows, w.cols);
      Target t;
      t.layer = l;
      t.slot = slot;
      t.fake_quant =
          quantize_weight_rtn(w.name, w.weight.data(), w.rows, w.cols, w.stored_dtype, *scheme).dequantize();
      fq_bytes += t.fake_quant.size() * sizeof(float);
      result.modules.push_back(std::move(m));
      targets.push_back(std::move(t));
    }
  }
  if (targets.empty()) fail("the plan quantizes no module inside a decoder layer: nothing to scan");
  result.load_seconds = seconds_since(start);

  std::vector<Run> runs;
  if (options.end_to_end) runs = make_runs(options.granularity, targets, result.modules);
  // Progress counts one base pass and every run, per sample.
  ScanProgress p{0, static_cast<int64_t>((runs.size() + 1) * data.samples.size()), "base"};

  // Layer-local errors: observe each targeted module's inputs on the base pass.
  int64_t observed_layer = 0;
  std::vector<float> y, yq;
  LayerObserver observer;
  observer.on_input = [&](InputSite site, const float* x, int64_t rows, int64_t cols) {
    for (Target& t : targets) {
      if (t.layer != observed_layer || input_site(t.slot) != site) continue;
      const LinearF32& w = sm.layers[static_cast<size_t>(t.layer)].linear(t.slot);
      y.resize(static_cast<size_t>(rows * w.rows));
      yq.resize(y.size());
      kernels::linear(x, rows, {DType::F32, w.weight.data(), w.rows, cols}, nullptr, y.data());
      kernels::linear(x, rows, {DType::F32, t.fake_quant.data(), w.rows, cols}, nullptr, yq.data());
      for (size_t i = 0; i < y.size(); ++i) {
        const double d = static_cast<double>(y[i]) - yq[i];
        t.err_sum += d * d;
        t.ref_sum += static_cast<double>(y[i]) * y[i];
      }
    }
  };

  const int64_t vocab = c.vocab_size, n_layers = model.num_layers();
  std::vector<std::vector<float>> layer_inputs(static_cast<size_t>(n_layers));
  std::vector<float> x, logits;
  BaseDistribution base;
  Run base_run;
  for (const std::vector<int32_t>& ids : data.samples) {
    const int64_t tokens = static_cast<int64_t>(ids.size()), positions = tokens - 1;
    // 2. The base pass: cache every layer's input and the base distributions.
    auto t0 = Clock::now();
    sm.embed(ids, x);
    for (int64_t l = 0; l < n_layers; ++l) {
      layer_inputs[static_cast<size_t>(l)] = x;
      observed_layer = l;
      sm.layer_forward(l, x.data(), tokens, &observer);
    }
    sm.head(x.data(), tokens, logits);
    base_distribution(logits, positions, vocab, base);
    score(logits, base, ids, positions, vocab, base_run);
    result.positions += positions;
    result.base_seconds += seconds_since(t0);
    if (progress) progress({++p.done, p.total, "base"});

    // 3. One forward pass from the first affected layer per run.
    t0 = Clock::now();
    for (Run& run : runs) {
      x = layer_inputs[static_cast<size_t>(run.first_layer)];
      for (int64_t l = run.first_layer; l < n_layers; ++l) {
        SwapIn swap(sm, targets, run, l);
        sm.layer_forward(l, x.data(), tokens);
      }
      sm.head(x.data(), tokens, logits);
      score(logits, base, ids, positions, vocab, run);
      if (progress) progress({++p.done, p.total, "scan"});
    }
    result.scan_seconds += seconds_since(t0);
  }
  result.resident_bytes = sm.bytes() + fq_bytes +
                          static_cast<uint64_t>(n_layers) * layer_inputs[0].size() * sizeof(float) +
                          (base.logp.size() + base.p.size() + logits.size()) * sizeof(float);

  result.base = finish(base_run, result.positions);
  result.base.kl_mean = 0.0;
  result.base.kl_max = 0.0;
  for (size_t i = 0; i < targets.size(); ++i)
    result.modules[i].output_rel_mse =
        targets[i].ref_sum > 0.0 ? targets[i].err_sum / targets[i].ref_sum : 0.0;
  for (const Run& r : runs) {
    if (options.granularity == Granularity::Module) {
      result.modules[r.targets[0]].end_to_end = finish(r, result.positions);
    } else {
      GroupSensitivity g;
      g.name = r.name;
      for (size_t t : r.targets) g.modules.push_back(result.modules[t].name);
      g.end_to_end = finish(r, result.positions);
      result.groups.push_back(std::move(g));
    }
  }
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace lowbit::sensitivity

#include "calib/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "calib/decoder_layer.h"
#include "quant/awq.h"
#include "quant/observer.h"
#include "quant/smoothquant.h"
#include "runtime/kernels.h"
#include "runtime/linear.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

constexpr int64_t kHessianBatchRows = 2048;
constexpr int64_t kAwqMlpBlockRows = 512;  // rows per MLP evaluation in AWQ's grid search (smooth_input)

// What the observation pass collects at one input site of a layer.
struct SiteStats {
  int64_t cols = 0;
  std::vector<float> ch_min, ch_max;  // per channel range (SmoothQuant)
  std::vector<double> abssum;         // per channel sum |x| (AWQ's mean)
  int64_t rows = 0;
  std::unique_ptr<HessianAccumulator> hessian;
  std::vector<float> pending;  // input rows not yet added to the Hessian
  // Inputs kept for AWQ's parent-block search: whole samples (attention needs the sequence), or with
  // cache_stride > 0 every cache_stride-th row of every sample, as one block (the MLP is row-wise, so a
  // strided subset of all tokens covers the calibration set better than a few whole samples).
  std::vector<std::vector<float>> cached;
  int64_t cache_samples = 0;
  int64_t cache_stride = 0;

  void observe(const float* x, int64_t n, int64_t c) {
    if (!ch_min.empty() || !abssum.empty()) {
      for (int64_t r = 0; r < n; ++r) {
        const float* row = x + r * c;
        if (!ch_min.empty())
          for (int64_t j = 0; j < c; ++j) {
            ch_min[j] = std::min(ch_min[j], row[j]);
            ch_max[j] = std::max(ch_max[j], row[j]);
          }
        if (!abssum.empty())
          for (int64_t j = 0; j < c; ++j) abssum[j] += std::fabs(row[j]);
      }
    }
    rows += n;
    if (hessian && !hessian->prefers_batches()) {
      hessian->add(x, n);  // accumulates in fp32 tiles itself (kernels::Bf16Gram)
    } else if (hessian) {
      // Batches of samples make one larger X^T X product per flush: sgemm runs closer to peak.
      pending.insert(pending.end(), x, x + n * c);
      if (static_cast<int64_t>(pending.size()) >= kHessianBatchRows * c) flush();
    }
    if (cache_stride > 0) {
      if (cached.empty()) cached.emplace_back();
      for (int64_t r = (cache_stride - (rows - n) % cache_stride) % cache_stride; r < n; r += cache_stride)
        cached.front().insert(cached.front().end(), x + r * c, x + (r + 1) * c);
    } else if (static_cast<int64_t>(cached.size()) < cache_samples) {
      cached.emplace_back(x, x + n * c);
    }
  }
  void flush() {
    if (!hessian || pending.empty()) return;
    hessian->add(pending.data(), static_cast<int64_t>(pending.size()) / cols);
    pending.clear();
  }
  std::vector<float> mean_abs() const {
    std::vector<float> m(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) m[j] = static_cast<float>(abssum[j] / static_cast<double>(rows));
    return m;
  }
};

constexpr InputSite kSites[] = {InputSite::Attention, InputSite::O, InputSite::Mlp, InputSite::Down};
size_t site_index(InputSite s) {
  return static_cast<size_t>(s);
}

std::vector<LinearSlot> slots_at(InputSite site) {
  switch (site) {
    case InputSite::Attention:
      return {LinearSlot::Q, LinearSlot::K, LinearSlot::V};
    case InputSite::O:
      return {LinearSlot::O};
    case InputSite::Mlp:
      return {LinearSlot::Gate, LinearSlot::Up};
    case InputSite::Down:
      return {LinearSlot::Down};
  }
  return {};
}

// Rounds values to what `dtype` can hold: smoothed weights are stored back in the model's dtype (as
// llm-compressor modifies bf16 parameters in place), and quantization must see exactly the stored values.
void round_to_dtype(std::vector<float>& v, DType dtype) {
  if (dtype == DType::BF16)
    for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
  else if (dtype == DType::F16)
    for (float& x : v) x = f16_to_f32(f32_to_f16(x));
}

// Sum of squared differences in double (AWQ's grid search: millions of values per candidate). Fixed chunks
// in parallel (the result does not depend on the number of threads), eight partial sums per chunk: one
// serial chain of double adds waits on each add's latency.
double squared_error(const float* a, const float* b, size_t n) {
  constexpr size_t kChunk = size_t{1} << 16;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
  global_pool().parallel_for(chunks, 1, [&](size_t c0, size_t c1) {
    for (size_t c = c0; c < c1; ++c) {
      const size_t i1 = std::min(n, (c + 1) * kChunk);
      double acc[8] = {};
      size_t i = c * kChunk;
      for (; i + 8 <= i1; i += 8) {
        for (size_t l = 0; l < 8; ++l) {
          const double d = double(a[i + l]) - double(b[i + l]);
          acc[l] += d * d;
        }
      }
      for (; i < i1; ++i) {
        const double d = double(a[i]) - double(b[i]);
        acc[0] += d * d;
      }
      partial[c] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
  });
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

// Static input scales and KV-cache scales of one layer, observed on the inputs of its quantized modules:
// the values the exported model's activation quantizers will see.
class StaticScaleObservers {
 public:
  // Observes nothing when `cal` is null.
  StaticScaleObservers(const DecoderLayerF32& layer, const QuantPlan& plan, const ModelConfig& c,
                       Calibration* cal) {
    if (cal == nullptr) return;
    const ComputeDType dt = compute_dtype_for(layer.q.stored_dtype);
    for (LinearSlot slot : kLinearSlots) {
      const LinearF32& lin = layer.linear(slot);
      const QuantScheme* s = plan.scheme_for(lin.name);
      if (s && s->input_activations && !s->input_activations->is_dynamic())
        inputs_[input_site(slot)].push_back(
            {lin.name, s->input_activations->symmetric,
             std::make_unique<ActivationObserver>(*s->input_activations, lin.cols, dt)});
    }
    if (plan.recipe.kv_cache_scheme) {
      kv_symmetric_ = plan.recipe.kv_cache_scheme->symmetric;
      keys_ = std::make_unique<ActivationObserver>(*plan.recipe.kv_cache_scheme, c.kv_dim(), dt);
      values_ = std::make_unique<ActivationObserver>(*plan.recipe.kv_cache_scheme, c.kv_dim(), dt);
    }
    if (!inputs_.empty())
      hooks_.on_input = [this](InputSite site, const float* x, int64_t rows, int64_t) {
        auto it = inputs_.find(site);
        if (it == inputs_.end()) return;
        for (Observed& o : it->second) o.observer->observe(x, rows);
      };
    if (keys_)
      hooks_.on_kv = [this](const float* k, const float* v, int64_t rows) {
        keys_->observe(k, rows);
        values_->observe(v, rows);
      };
  }
  StaticScaleObservers(const StaticScaleObservers&) = delete;  // the hooks point at this object
  StaticScaleObservers& operator=(const StaticScaleObservers&) = delete;

  const LayerObserver& hooks() const { return hooks_; }
  // Whether the plan has static input or KV cache scales for this layer to observe.
  bool observes() const { return !inputs_.empty() || keys_ != nullptr; }

  // Writes the observed scales of layer `index` into `cal`.
  void finish(int64_t index, Calibration* cal) const {
    if (cal == nullptr) return;
    const auto qparams = [](const ActivationObserver& o, bool symmetric) {
      StaticQParams q;
      int8_t zp = 0;
      o.qparams(&q.scale, symmetric ? nullptr : &zp);
      q.zero_point = zp;
      return q;
    };
    for (const auto& [site, list] : inputs_)
      for (const Observed& o : list) cal->inputs[o.name] = qparams(*o.observer, o.symmetric);
    if (keys_) {
      const std::string attn = fmt::format("model.layers.{}.self_attn", index);
      cal->keys[attn] = qparams(*keys_, kv_symmetric_);
      cal->values[attn] = qparams(*values_, kv_symmetric_);
    }
  }

 private:
  struct Observed {
    std::string name;
    bool symmetric = true;
    std::unique_ptr<ActivationObserver> observer;
  };
  std::map<InputSite, std::vector<Observed>> inputs_;
  std::unique_ptr<ActivationObserver> keys_, values_;
  bool kv_symmetric_ = true;
  LayerObserver hooks_;
};

// Per-sample activations kept from one stage of a true-sequential layer pass to the next (attention
// outputs, SwiGLU outputs). In bf16 when the calibration products round their inputs to bf16 anyway, which
// makes it exact at half the memory; else fp32.
class StageBuffer {
 public:
  StageBuffer(size_t samples, bool bf16) : bf16_(bf16), f32_(bf16 ? 0 : samples), b16_(bf16 ? samples : 0) {}

  void put(size_t i, const float* x, size_t n) {
    if (!bf16_) {
      f32_[i].assign(x, x + n);
      return;
    }
    b16_[i].resize(n);
    kernels::to_bf16(x, b16_[i].data(), n);
  }
  // Sample i as fp32 (converted into `scratch` when stored as bf16); valid until release(i).
  const float* get(size_t i, std::vector<float>& scratch) const {
    if (!bf16_) return f32_[i].data();
    scratch.resize(b16_[i].size());
    kernels::from_bf16(b16_[i].data(), scratch.data(), b16_[i].size());
    return scratch.data();
  }
  void release(size_t i) {
    if (bf16_)
      std::vector<uint16_t>().swap(b16_[i]);
    else
      std::vector<float>().swap(f32_[i]);
  }

 private:
  bool bf16_;
  std::vector<std::vector<float>> f32_;
  std::vector<std::vector<uint16_t>> b16_;
};

class LayerPipeline {
 public:
  LayerPipeline(const Model& model, const QuantPlan& plan, const PipelineOptions& options,
                LayerRunner& runner, PipelineReport& report)
      : model_(model), plan_(plan), options_(options), runner_(runner), report_(report) {}

  // Runs one layer: observe, smooth, quantize, propagate (hidden states updated in place).
  void run(int64_t index, std::vector<std::vector<float>>& hidden, const ModelSink& sink, Calibration* cal,
           const std::function<void(const std::string&)>& stage);

 private:
  const QuantScheme* quantized_scheme(const std::string& name) const { return plan_.scheme_for(name); }
  // Sets up what each input site collects (ranges, |x| sums, Hessians, AWQ's cached inputs).
  void prepare_sites(const std::vector<std::vector<float>>& hidden);
  // Flushes a site's pending rows and takes its Hessian (when it collects one) into hessians_.
  void finish_site(InputSite site);
  void observe(std::vector<std::vector<float>>& hidden);
  void smooth_input(InputSite site, std::vector<float>& norm, const char* norm_name);
  void smooth_linear(InputSite site, LinearF32& prev, LinearF32& next);
  // After a linear's weights changed: its bf16 pack follows (BF16 precision only).
  void repack(LinearF32& l) const {
    if (options_.precision == CalibPrecision::BF16) l.pack_bf16();
  }
  std::vector<float> awq_scales_for(InputSite site, const std::vector<LinearSlot>& balance,
                                    const std::function<double(const DecoderLayerF32&)>& parent_loss,
                                    const std::string& label, bool run_candidates = true);
  void quantize(std::vector<ModuleQuantization>& out);
  void quantize_slot(LinearSlot slot, std::vector<ModuleQuantization>& out);
  void propagate(int64_t index, std::vector<std::vector<float>>& hidden, Calibration* cal);
  // One pass instead of observe + quantize + propagate (PipelineOptions::true_sequential).
  void run_true_sequential(int64_t index, std::vector<std::vector<float>>& hidden, Calibration* cal,
                           std::vector<ModuleQuantization>& out,
                           const std::function<void(const std::string&)>& stage);

  const Model& model_;
  const QuantPlan& plan_;
  const PipelineOptions& options_;
  LayerRunner& runner_;
  PipelineReport& report_;
  DecoderLayerF32 layer_;
  SiteStats sites_[4];
  std::vector<std::vector<double>> hessians_;  // per site, after smoothing transforms
  std::set<std::string> changed_;              // tensors whose values changed (smoothing)
  LayerReport log_;
};

void LayerPipeline::prepare_sites(const std::vector<std::vector<float>>& hidden) {
  const int64_t hsize = model_.config().hidden_size;
  const bool awq = options_.awq, sq = options_.smoothquant;
  for (InputSite site : kSites) {
    SiteStats& st = sites_[site_index(site)];
    st = SiteStats{};
    st.cols = site == InputSite::O      ? model_.config().q_dim()
              : site == InputSite::Down ? model_.config().intermediate_size
                                        : hsize;
    bool quantized = false;
    for (LinearSlot s : slots_at(site)) quantized |= quantized_scheme(layer_.linear(s).name) != nullptr;
    const bool input_site = site == InputSite::Attention || site == InputSite::Mlp;
    if (sq && input_site) {
      st.ch_min.assign(static_cast<size_t>(st.cols), std::numeric_limits<float>::infinity());
      st.ch_max.assign(static_cast<size_t>(st.cols), -std::numeric_limits<float>::infinity());
    }
    if (awq) st.abssum.assign(static_cast<size_t>(st.cols), 0.0);
    if (quantized && (options_.gptq || awq))
      st.hessian = std::make_unique<HessianAccumulator>(st.cols, layer_.precision == CalibPrecision::BF16);
    if (awq && input_site) {
      int64_t total = 0;
      for (const std::vector<float>& x : hidden) total += static_cast<int64_t>(x.size()) / hsize;
      const int64_t budget = options_.awq_search_tokens > 0 ? options_.awq_search_tokens : total;
      if (site == InputSite::Mlp) {
        st.cache_stride = std::max<int64_t>(1, total / budget);
      } else {
        const int64_t per_sample = std::max<int64_t>(1, total / static_cast<int64_t>(hidden.size()));
        st.cache_samples = std::max<int64_t>(1, (budget + per_sample - 1) / per_sample);
      }
    }
  }
}

void LayerPipeline::observe(std::vector<std::vector<float>>& hidden) {
  const int64_t hsize = model_.config().hidden_size;
  prepare_sites(hidden);
  LayerObserver obs;
  obs.on_input = [&](InputSite site, const float* x, int64_t rows, int64_t cols) {
    sites_[site_index(site)].observe(x, rows, cols);
  };
  for (const std::vector<float>& x : hidden)
    runner_.observe(layer_, x.data(), static_cast<int64_t>(x.size()) / hsize, obs);
  hessians_.assign(4, {});
  for (InputSite site : kSites) finish_site(site);
}

void LayerPipeline::finish_site(InputSite site) {
  SiteStats& st = sites_[site_index(site)];
  st.flush();
  if (st.hessian) hessians_[site_index(site)] = st.hessian->hessian();
}

// AWQ's grid search for one mapping: `parent_loss` evaluates a copy of the layer whose quantized balance
// layers hold the candidate weights Q(W diag(s)) diag(1/s). run_candidates: the loss runs the candidate
// layer, so its kernel weights are repacked (a loss on the fp32 weights alone needs no packing).
std::vector<float> LayerPipeline::awq_scales_for(
    InputSite site, const std::vector<LinearSlot>& balance,
    const std::function<double(const DecoderLayerF32&)>& parent_loss, const std::string& label,
    bool run_candidates) {
  const SiteStats& st = sites_[site_index(site)];
  std::vector<WeightRef> refs;
  const QuantArgs* args = nullptr;
  for (LinearSlot slot : balance) {
    const LinearF32& b = layer_.linear(slot);
    refs.push_back({b.weight.data(), b.rows, b.cols});
    if (const QuantScheme* s = quantized_scheme(b.name); s && s->weights && !args) args = &*s->weights;
  }
  const int64_t group = args && args->strategy == QuantStrategy::Group ? *args->group_size : -1;
  const std::vector<float> x_mean = st.mean_abs();
  const std::vector<float> w_mean =
      awq_weight_mean(refs, group, compute_dtype_for(layer_.linear(balance.front()).stored_dtype));
  DecoderLayerF32 candidate = layer_;
  const auto start = Clock::now();
  const AwqSearchResult r =
      awq_search(x_mean.data(), w_mean.data(), st.cols, options_.awq_grid, options_.awq_duo_scaling,
                 [&](const std::vector<float>& scales) {
                   for (LinearSlot slot : balance) {
                     const LinearF32& b = layer_.linear(slot);
                     const QuantScheme* s = quantized_scheme(b.name);
                     if (s == nullptr) continue;
                     LinearF32& target = candidate.linear(slot);
                     awq_fake_quantize_scaled(b.weight.data(), b.rows, b.cols, scales.data(), *s->weights,
                                              compute_dtype_for(b.stored_dtype), target.weight.data());
                     if (run_candidates) repack(target);
                   }
                   return parent_loss(candidate);
                 });
  log_.lines.push_back(
      fmt::format("awq {}: ratio {:.2f}{}, loss {:.4g} (identity scales: {:.4g}), {} grid points in {:.2f} s",
                  label, r.best_ratio, r.best_duo ? " duo" : "", r.best_loss, r.initial_loss, r.grid.size(),
                  seconds_since(start)));
  return r.scales;
}

// Folds input scales s into a norm and the linears reading it (norm /= s, W[:, j] *= s_j), with the
// scales chosen by SmoothQuant or AWQ.
void LayerPipeline::smooth_input(InputSite site, std::vector<float>& norm, const char* norm_name) {
  const std::vector<LinearSlot> balance = slots_at(site);
  bool any_quantized = false;
  for (LinearSlot slot : balance) any_quantized |= quantized_scheme(layer_.linear(slot).name) != nullptr;
  if (!any_quantized) return;
  const SiteStats& st = sites_[site_index(site)];
  const int64_t hsize = st.cols;
  std::vector<float> s;
  if (options_.smoothquant) {
    std::vector<WeightRef> refs;
    for (LinearSlot slot : balance) {
      const LinearF32& b = layer_.linear(slot);
      refs.push_back({b.weight.data(), b.rows, b.cols});
    }
    const std::vector<float> range = smoothquant_activation_range(st.ch_min.data(), st.ch_max.data(), hsize);
    s = smoothquant_scales(range.data(), hsize, refs, options_.smoothing_strength);
    log_.lines.push_back(fmt::format("smoothquant {}: alpha {}", norm_name, options_.smoothing_strength));
  } else {
    // The target is the parent block's output on the cached inputs with the original weights. The blocks
    // run unit by unit: each cached sample for attention (it needs the sequence), 512-row blocks for the
    // row-wise MLP (its intermediates, rows x intermediate, stay 4 MB instead of 32 MB at the defaults:
    // AWQ's peak RSS 419 -> 316 MiB, docs/PERFORMANCE.md session 18), and a candidate's error is summed
    // per unit while its output is still in cache.
    const bool attention = site == InputSite::Attention;
    const int64_t hidden = model_.config().hidden_size;
    struct Unit {
      const float* input;
      int64_t rows;
      size_t output;  // offset of its outputs in `reference`
    };
    std::vector<Unit> units;
    size_t outputs = 0;
    for (const std::vector<float>& h : st.cached) {
      const int64_t tokens = static_cast<int64_t>(h.size()) / hsize;
      const int64_t step = attention ? tokens : kAwqMlpBlockRows;
      for (int64_t r0 = 0; r0 < tokens; r0 += step) {
        units.push_back({h.data() + r0 * hsize, std::min(step, tokens - r0), outputs});
        outputs += static_cast<size_t>(units.back().rows * hidden);
      }
    }
    const auto parent = [&](const DecoderLayerF32& l, const Unit& u, float* out) {
      if (attention)
        runner_.attention_block(l, u.input, u.rows, out);
      else
        runner_.mlp_block(l, u.input, u.rows, out);
    };
    std::vector<float> reference(outputs);
    for (const Unit& u : units) parent(layer_, u, reference.data() + u.output);
    std::vector<float> out;
    s = awq_scales_for(
        site, balance,
        [&](const DecoderLayerF32& candidate) {
          double loss = 0;
          for (const Unit& u : units) {
            const size_t n = static_cast<size_t>(u.rows * hidden);
            out.resize(n);
            parent(candidate, u, out.data());
            loss += squared_error(reference.data() + u.output, out.data(), n);
          }
          return loss / static_cast<double>(std::max<size_t>(outputs, 1));
        },
        std::string(norm_name) + (attention ? " -> q,k,v" : " -> gate,up"));
  }
  divide_norm_weight(norm.data(), s.data(), hsize);
  round_to_dtype(norm, layer_.norm_dtype);
  changed_.insert(fmt::format("model.layers.{}.{}.weight", layer_.index, norm_name));
  for (LinearSlot slot : balance) {
    LinearF32& b = layer_.linear(slot);
    scale_columns(b.weight.data(), b.rows, b.cols, s.data());
    round_to_dtype(b.weight, b.stored_dtype);
    repack(b);
    changed_.insert(b.name + ".weight");
  }
  if (!hessians_[site_index(site)].empty())
    divide_hessian(hessians_[site_index(site)].data(), hsize, s.data());
}

// AWQ between two linears (v_proj -> o_proj, up_proj -> down_proj): prev's output rows /= s, next's input
// columns *= s. The parent is `next` alone, so the loss is exact from its input Hessian.
void LayerPipeline::smooth_linear(InputSite site, LinearF32& prev, LinearF32& next) {
  const QuantScheme* scheme = quantized_scheme(next.name);
  if (scheme == nullptr || prev.rows != next.cols) return;  // v -> o only without GQA
  const std::vector<double>& h = hessians_[site_index(site)];
  if (h.empty()) return;
  const LinearSlot next_slot = site == InputSite::O ? LinearSlot::O : LinearSlot::Down;
  const std::vector<float> s = awq_scales_for(
      site, {next_slot},
      [&](const DecoderLayerF32& candidate) {
        const LinearF32& c = candidate.linear(next_slot);
        return linear_output_error(next.weight.data(), c.weight.data(), next.rows, next.cols, h.data());
      },
      fmt::format("{} -> {}", prev.name.substr(prev.name.rfind('.') + 1),
                  next.name.substr(next.name.rfind('.') + 1)),
      /*run_candidates=*/false);
  divide_rows(prev.weight.data(), prev.rows, prev.cols, prev.bias.empty() ? nullptr : prev.bias.data(),
              s.data());
  round_to_dtype(prev.weight, prev.stored_dtype);
  round_to_dtype(prev.bias, prev.stored_dtype);
  scale_columns(next.weight.data(), next.rows, next.cols, s.data());
  round_to_dtype(next.weight, next.stored_dtype);
  repack(prev);
  repack(next);
  changed_.insert(prev.name + ".weight");
  if (!prev.bias.empty()) changed_.insert(prev.name + ".bias");
  changed_.insert(next.name + ".weight");
  divide_hessian(hessians_[site_index(site)].data(), next.cols, s.data());
}

void LayerPipeline::quantize(std::vector<ModuleQuantization>& out) {
  for (LinearSlot slot : kLinearSlots) quantize_slot(slot, out);
}

// Quantizes one module when the plan targets it: GPTQ with its input site's Hessian, else RTN (after AWQ's
// clipping search). Its weights are replaced by the dequantized values, which later passes run on.
void LayerPipeline::quantize_slot(LinearSlot slot, std::vector<ModuleQuantization>& out) {
  if (!options_.apply_quantization) return;
  LinearF32& lin = layer_.linear(slot);
  const QuantScheme* scheme = quantized_scheme(lin.name);
  if (scheme == nullptr) return;
  if (!scheme->weights) fail("module {}: its scheme quantizes no weights", lin.name);
  const std::vector<double>& h = hessians_[site_index(input_site(slot))];
  const bool float_weights = scheme->weights->type == QuantType::Float;
  ModuleQuantization q;
  if (options_.gptq) {
    GptqStats stats;
    GptqOptions gptq = options_.gptq_options;
    gptq.actorder = scheme->weights->actorder;  // the scheme carries it (and the exported config shows it)
    q = gptq_quantize(lin.name, lin.weight.data(), lin.rows, lin.cols, lin.stored_dtype, *scheme, h.data(),
                      gptq, &stats);
    log_.lines.push_back(fmt::format("gptq {}: loss {:.4g}{}", lin.name, stats.loss,
                                     stats.fell_back_to_rtn ? " (fell back to RTN)" : ""));
    if (!stats.warning.empty()) report_.warnings.push_back(lin.name + ": " + stats.warning);
  } else {
    // AWQ's clipping search, except for q/k whose outputs meet in the attention scores (AutoAWQ skips
    // them too: the local error misses the effect on the softmax).
    if (options_.awq && options_.awq_clip && !h.empty() && slot != LinearSlot::Q && slot != LinearSlot::K &&
        !float_weights) {
      awq_clip_search(lin.weight.data(), lin.rows, lin.cols, *scheme->weights,
                      compute_dtype_for(lin.stored_dtype), h.data(), 20, 0.5f);
    }
    q = quantize_weight_rtn(lin.name, lin.weight.data(), lin.rows, lin.cols, lin.stored_dtype, *scheme);
  }
  lin.weight = q.dequantize();  // the next layer's inputs come from the quantized layer
  repack(lin);
  changed_.erase(lin.name + ".weight");
  out.push_back(std::move(q));
}

void LayerPipeline::run(int64_t index, std::vector<std::vector<float>>& hidden, const ModelSink& sink,
                        Calibration* cal, const std::function<void(const std::string&)>& stage) {
  const auto start = Clock::now();
  log_ = LayerReport{};
  log_.layer = index;
  changed_.clear();
  layer_ = load_decoder_layer(model_, index, options_.precision);
  report_.max_layer_bytes = std::max(report_.max_layer_bytes, layer_.bytes());

  std::vector<ModuleQuantization> quantized;
  if (options_.true_sequential) {
    run_true_sequential(index, hidden, cal, quantized, stage);
  } else {
    stage("observe");
    auto t = Clock::now();
    observe(hidden);
    log_.observe_seconds = seconds_since(t);
    t = Clock::now();
    if (options_.smoothquant || options_.awq) {
      stage("smooth");
      smooth_input(InputSite::Attention, layer_.input_norm, "input_layernorm");
      if (options_.awq) smooth_linear(InputSite::O, layer_.v, layer_.o);
      smooth_input(InputSite::Mlp, layer_.post_attention_norm, "post_attention_layernorm");
      if (options_.awq) smooth_linear(InputSite::Down, layer_.up, layer_.down);
    }
    for (SiteStats& st : sites_) st = SiteStats{};  // cached inputs and accumulators are no longer needed
    log_.smooth_seconds = seconds_since(t);

    stage("quantize");
    t = Clock::now();
    quantize(quantized);
    hessians_.clear();
    log_.quantize_seconds = seconds_since(t);

    stage("propagate");
    t = Clock::now();
    propagate(index, hidden, cal);
    log_.propagate_seconds = seconds_since(t);
  }

  // Deliver: quantized modules, then tensors whose values changed (smoothed norms, unquantized weights).
  for (ModuleQuantization& q : quantized) sink.module(q);
  const std::string prefix = fmt::format("model.layers.{}.", index);
  const int64_t hsize = model_.config().hidden_size;
  for (const std::string& name : changed_) {
    if (name == prefix + "input_layernorm.weight") {
      sink.tensor(name, layer_.norm_dtype, {hsize}, layer_.input_norm.data());
    } else if (name == prefix + "post_attention_layernorm.weight") {
      sink.tensor(name, layer_.norm_dtype, {hsize}, layer_.post_attention_norm.data());
    } else {
      for (LinearSlot slot : kLinearSlots) {
        const LinearF32& lin = layer_.linear(slot);
        if (name == lin.name + ".weight")
          sink.tensor(name, lin.stored_dtype, {lin.rows, lin.cols}, lin.weight.data());
        if (name == lin.name + ".bias") sink.tensor(name, lin.stored_dtype, {lin.rows}, lin.bias.data());
      }
    }
  }
  layer_ = DecoderLayerF32{};
  log_.seconds = seconds_since(start);
  report_.layers.push_back(std::move(log_));
}

// True-sequential GPTQ (the GPTQ paper's reference code, AutoGPTQ's true_sequential): each group of
// modules is quantized before the inputs of the next group are observed, so the Hessians of o_proj, gate/up
// and down_proj see the errors of the modules before them in the layer. The layer's computation is
// causal in that order, so this takes one pass over the samples instead of two (an observation pass with
// the original weights, then the propagation pass): each stage runs the samples as far as the next group's
// input, which is kept (StageBuffer) until that group is quantized and its product can run.
//
//   1. input_norm(x)                      -> Hessian of q, k, v (SmoothQuant: ranges, fold) -> quantize q, k,
//   v
//   2. attention(q, k, v)                 -> Hessian of o_proj, keep attention outputs      -> quantize o
//   3. x += o(attn); post_norm(x)         -> Hessian of gate, up (SmoothQuant: fold)        -> quantize gate,
//   up
//   4. silu(gate) * up                    -> Hessian of down_proj, keep activations         -> quantize down
//   5. x += down(act)                        (the next layer's input)
//
// Static input and KV-cache scales are observed in stages 2 and 4, on the inputs of the quantized modules.
void LayerPipeline::run_true_sequential(int64_t index, std::vector<std::vector<float>>& hidden,
                                        Calibration* cal, std::vector<ModuleQuantization>& out,
                                        const std::function<void(const std::string&)>& stage) {
  const ModelConfig& c = model_.config();
  const int64_t hsize = c.hidden_size;
  const size_t samples = hidden.size();
  const auto tokens_of = [&](size_t i) { return static_cast<int64_t>(hidden[i].size()) / hsize; };
  int64_t max_tokens = 0;
  for (size_t i = 0; i < samples; ++i) max_tokens = std::max(max_tokens, tokens_of(i));
  std::vector<float> h(static_cast<size_t>(max_tokens * hsize));
  std::vector<float> tmp(static_cast<size_t>(max_tokens * hsize)), scratch;
  const bool bf16 = options_.precision == CalibPrecision::BF16;
  hessians_.assign(4, {});
  prepare_sites(hidden);
  const auto t0 = Clock::now();
  double observe = 0, smooth = 0, quantize = 0;
  const auto timed = [](double& acc, const auto& f) {
    const auto t = Clock::now();
    f();
    acc += seconds_since(t);
  };
  const auto observe_site = [&](InputSite site, const float* x, int64_t rows) {
    timed(observe, [&] { sites_[site_index(site)].observe(x, rows, sites_[site_index(site)].cols); });
  };
  // Takes the site's statistics, folds SmoothQuant's scales into the norm feeding it, quantizes its
  // modules.
  const auto quantize_site = [&](InputSite site, std::vector<float>* norm, const char* norm_name) {
    timed(observe, [&] { finish_site(site); });
    if (options_.smoothquant && norm != nullptr) timed(smooth, [&] { smooth_input(site, *norm, norm_name); });
    sites_[site_index(site)] = SiteStats{};
    stage("quantize");
    timed(quantize, [&] {
      for (LinearSlot slot : slots_at(site)) quantize_slot(slot, out);
    });
    hessians_[site_index(site)].clear();
  };
  // The residual add of a block: hidden[i] += lin(kept input of sample i), which is then freed.
  const auto add_product = [&](size_t i, const LinearF32& lin, StageBuffer& kept) {
    const int64_t n = tokens_of(i);
    linear_f32(lin, kept.get(i, scratch), n, tmp.data());
    kept.release(i);
    kernels::add_inplace(hidden[i].data(), tmp.data(), static_cast<size_t>(n * hsize));
  };
  StaticScaleObservers statics(layer_, plan_, c, cal);

  stage("q,k,v");
  for (size_t i = 0; i < samples; ++i) {
    runner_.input_norm(layer_, hidden[i].data(), tokens_of(i), h.data());
    observe_site(InputSite::Attention, h.data(), tokens_of(i));
  }
  quantize_site(InputSite::Attention, &layer_.input_norm, "input_layernorm");

  stage("o_proj");
  StageBuffer attn(samples, bf16);
  std::vector<float> heads(static_cast<size_t>(max_tokens * c.q_dim()));
  for (size_t i = 0; i < samples; ++i) {
    runner_.input_norm(layer_, hidden[i].data(), tokens_of(i), h.data());
    runner_.attention_heads(layer_, h.data(), tokens_of(i), heads.data(), &statics.hooks());
    observe_site(InputSite::O, heads.data(), tokens_of(i));
    attn.put(i, heads.data(), static_cast<size_t>(tokens_of(i) * c.q_dim()));
  }
  std::vector<float>().swap(heads);
  quantize_site(InputSite::O, nullptr, nullptr);

  stage("gate,up");
  for (size_t i = 0; i < samples; ++i) {
    const int64_t n = tokens_of(i);
    add_product(i, layer_.o, attn);
    runner_.post_attention_norm(layer_, hidden[i].data(), n, h.data());
    observe_site(InputSite::Mlp, h.data(), n);
  }
  quantize_site(InputSite::Mlp, &layer_.post_attention_norm, "post_attention_layernorm");

  stage("down_proj");
  StageBuffer act(samples, bf16);
  std::vector<float> a(static_cast<size_t>(max_tokens * c.intermediate_size));
  for (size_t i = 0; i < samples; ++i) {
    const int64_t n = tokens_of(i);
    runner_.post_attention_norm(layer_, hidden[i].data(), n, h.data());
    runner_.mlp_activation(layer_, h.data(), n, a.data(), &statics.hooks());
    observe_site(InputSite::Down, a.data(), n);
    act.put(i, a.data(), static_cast<size_t>(n * c.intermediate_size));
  }
  std::vector<float>().swap(a);
  quantize_site(InputSite::Down, nullptr, nullptr);

  stage("propagate");
  for (size_t i = 0; i < samples; ++i) add_product(i, layer_.down, act);
  statics.finish(index, cal);
  log_.observe_seconds = observe;
  log_.smooth_seconds = smooth;
  log_.quantize_seconds = quantize;
  log_.propagate_seconds = seconds_since(t0) - observe - smooth - quantize;
}

// Runs the samples through the quantized layer (its output replaces `hidden`), observing static input and
// KV-cache scales on the way when the plan has them.
void LayerPipeline::propagate(int64_t index, std::vector<std::vector<float>>& hidden, Calibration* cal) {
  StaticScaleObservers statics(layer_, plan_, model_.config(), cal);
  // The last layer's outputs feed nothing (modules after the decoder layers are quantized with RTN), so its
  // pass runs only when it has static scales to observe: one forward pass in 2 x layers saved.
  if (index + 1 == model_.num_layers() && !statics.observes()) {
    log_.lines.emplace_back("propagate: skipped (last layer, no static scales to observe)");
    return;
  }
  for (std::vector<float>& x : hidden)
    runner_.forward(layer_, x.data(), static_cast<int64_t>(x.size()) / model_.config().hidden_size, x.data(),
                    &statics.hooks());
  statics.finish(index, cal);
}

}  // namespace

PipelineOptions pipeline_options_for(const std::string& method) {
  PipelineOptions o;
  size_t begin = 0;
  while (begin <= method.size()) {
    size_t end = method.find('+', begin);
    if (end == std::string::npos) end = method.size();
    const std::string part = method.substr(begin, end - begin);
    if (part == "gptq")
      o.gptq = true;
    else if (part == "awq")
      o.awq = true;
    else if (part == "smoothquant")
      o.smoothquant = true;
    else if (part != "rtn")
      fail(
          "unknown quantization method '{}' in '{}'; methods: rtn, gptq, awq, smoothquant and chains such as "
          "smoothquant+gptq or awq+gptq",
          part, method);
    begin = end + 1;
  }
  if (o.awq && o.smoothquant)
    fail("method '{}': AWQ and SmoothQuant both rescale the same channels; pick one", method);
  if (o.awq && o.gptq) o.awq_clip = false;  // GPTQ chooses its own ranges
  return o;
}

bool method_needs_pipeline(const std::string& method) {
  const PipelineOptions o = pipeline_options_for(method);
  return o.gptq || o.awq || o.smoothquant;
}

PipelineReport run_sequential_pipeline(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                                       const PipelineOptions& options, const ModelSink& sink,
                                       Calibration* calibration,
                                       const std::function<void(const PipelineProgress&)>& progress) {
  const auto start = Clock::now();
  const ModelConfig& c = model.config();
  if (data.samples.empty()) fail("the calibration pipeline needs at least one sample");
  if (options.true_sequential && (!options.gptq || options.awq))
    fail("true-sequential quantization applies to GPTQ (gptq, smoothquant+gptq), not to AWQ or RTN");
  PipelineReport report;
  report.samples = data.num_samples();
  report.tokens = data.tokens();

  // Embed every sample.
  std::vector<std::vector<float>> hidden;
  const kernels::DenseWeight embed = runtime::dense_weight(model.embed_tokens());
  for (const std::vector<int32_t>& sample : data.samples) {
    std::vector<float> h(sample.size() * static_cast<size_t>(c.hidden_size));
    for (size_t t = 0; t < sample.size(); ++t) {
      if (sample[t] < 0 || sample[t] >= c.vocab_size)
        fail("calibration token id {} is outside the model's vocabulary ({})", sample[t], c.vocab_size);
      kernels::convert_rows_to_f32(embed, sample[t], 1, h.data() + t * static_cast<size_t>(c.hidden_size));
    }
    report.hidden_state_bytes += h.size() * sizeof(float);
    hidden.push_back(std::move(h));
  }
  model.store().release("model.embed_tokens.weight");

  LayerRunner runner(c);
  LayerPipeline pipeline(model, plan, options, runner, report);
  PipelineProgress p;
  p.layers = model.num_layers();
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    p.layer = l;
    pipeline.run(l, hidden, sink, calibration, [&](const std::string& stage) {
      p.stage = stage;
      if (progress) progress(p);
    });
  }
  p.layer = model.num_layers();
  p.stage = "done";
  if (progress) progress(p);

  // Modules outside the decoder layers (lm_head when targeted) are quantized with RTN. A tied lm_head is
  // quantized from the embedding matrix and untied in the export (compressed_tensors_writer.h).
  std::map<std::string, const LinearModule*> linears;
  model.for_each_linear([&](const LinearModule& m) { linears[m.name] = &m; }, /*include_tied_lm_head=*/true);
  for (const PlannedModule& pm : plan.modules) {
    if (!options.apply_quantization) break;
    if (pm.decision != ModuleDecision::Quantized || pm.name.rfind("model.layers.", 0) == 0) continue;
    auto it = linears.find(pm.name);
    if (it == linears.end())
      fail("the plan quantizes {}, which is not a Linear module of this model", pm.name);
    const QuantScheme* scheme = plan.scheme_for(pm.name);
    if (scheme->input_activations && !scheme->input_activations->is_dynamic())
      fail("{}: static input activations outside the decoder layers are not calibrated by the pipeline",
           pm.name);
    ModuleQuantization q = quantize_module_rtn(*it->second, *scheme);
    report.warnings.push_back(pm.name + ": outside the decoder layers, quantized with RTN");
    sink.module(q);
  }
  if (calibration) {
    calibration->samples = report.samples;
    calibration->tokens = report.tokens;
  }
  report.seconds = seconds_since(start);
  if (calibration) calibration->seconds = report.seconds;
  return report;
}

}  // namespace lowbit

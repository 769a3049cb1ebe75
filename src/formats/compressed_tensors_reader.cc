#include "formats/compressed_tensors_reader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "io/dtype.h"
#include "quant/pack.h"
#include "quant/plan.h"
#include "quant/quantizer.h"
#include "quant/scale_grid.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit::formats {

namespace {

// The compressed-tensors formats whose tensors lowbit reads. "dense" / "fakequant" hold float weights.
const std::set<std::string> kKnownFormats = {"pack-quantized",  "int-quantized", "float-quantized",
                                             "naive-quantized", "dense",         "fakequant"};

// Parameter suffixes a quantized module stores besides (or instead of) `weight`.
const char* const kWeightParams[] = {"weight_packed", "weight_shape", "weight_scale", "weight_zero_point",
                                     "weight_g_idx"};

std::vector<float> to_f32(const TensorView& v) {
  if (!is_floating(v.dtype))
    fail("tensor {} has dtype {}, expected a float dtype", v.name, dtype_name(v.dtype));
  std::vector<float> out(static_cast<size_t>(v.numel()));
  convert_to_f32(v.dtype, v.data, out.data(), out.size());
  return out;
}

std::vector<int64_t> to_i64(const TensorView& v) {
  std::vector<int64_t> out;
  if (v.dtype == DType::I32) {
    for (int32_t x : v.as<int32_t>()) out.push_back(x);
  } else if (v.dtype == DType::I64) {
    for (int64_t x : v.as<int64_t>()) out.push_back(x);
  } else {
    fail("tensor {} has dtype {}, expected I32 or I64", v.name, dtype_name(v.dtype));
  }
  return out;
}

// Zero points as stored: int8 codes, or a float tensor holding integers (older exports).
std::vector<int8_t> zero_points_of(const TensorView& v) {
  std::vector<int8_t> out(static_cast<size_t>(v.numel()));
  if (v.dtype == DType::I8) {
    std::copy(v.as<int8_t>().begin(), v.as<int8_t>().end(), out.begin());
  } else if (v.dtype == DType::I32) {
    auto in = v.as<int32_t>();
    for (size_t i = 0; i < out.size(); ++i) {
      if (in[i] < -128 || in[i] > 127) fail("tensor {}: zero point {} does not fit int8", v.name, in[i]);
      out[i] = static_cast<int8_t>(in[i]);
    }
  } else {
    const std::vector<float> f = to_f32(v);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int8_t>(std::nearbyint(f[i]));
  }
  return out;
}

TensorView need(const TensorStore& store, const std::string& name, const std::string& why) {
  if (!store.contains(name)) fail("tensor {} is missing ({})", name, why);
  return store.get(name);
}

void expect_shape(const TensorView& v, const std::vector<int64_t>& shape) {
  if (v.shape != shape) {
    fail("tensor {} has shape [{}], expected [{}]", v.name, fmt::join(v.shape, ", "), fmt::join(shape, ", "));
  }
}

// Scale cells expected for args on an [out, in] weight; the stored scale tensor may be (1,), () or (N, G).
int64_t expected_scale_count(const QuantArgs& args, int64_t out, int64_t in, const std::string& module) {
  return make_scale_grid(args, out, in, module).size();
}

// A TensorStore over a checkpoint in which the quantized modules' compressed tensors are replaced by their
// dequantized `<module>.weight`.
class DequantizedView final : public TensorStore {
 public:
  explicit DequantizedView(std::unique_ptr<TensorStore> base) : base_(std::move(base)) {}
  void hide(const std::string& name) { hidden_.insert(name); }
  MemoryTensorStore& overrides() { return overrides_; }
  // A float `name` of this shape that has no data: the weight of a module kept packed.
  void add_placeholder(const std::string& name, std::vector<int64_t> shape) {
    placeholders_[name] = TensorView{name, DType::BF16, std::move(shape), nullptr, 0};
  }

  std::vector<std::string> names() const override {
    std::set<std::string> all;
    for (const std::string& n : base_->names())
      if (!hidden_.count(n)) all.insert(n);
    for (const std::string& n : overrides_.names()) all.insert(n);
    for (const auto& [n, v] : placeholders_) all.insert(n);
    return {all.begin(), all.end()};
  }
  bool contains(const std::string& name) const override {
    return overrides_.contains(name) || placeholders_.count(name) ||
           (!hidden_.count(name) && base_->contains(name));
  }
  TensorView get(const std::string& name) const override {
    if (overrides_.contains(name)) return overrides_.get(name);
    if (auto it = placeholders_.find(name); it != placeholders_.end()) return it->second;
    if (hidden_.count(name))
      fail("tensor {} is a compressed tensor, replaced by its dequantized weight", name);
    return base_->get(name);
  }
  void read(const std::string& name, uint64_t offset, size_t nbytes, void* out) const override {
    if (overrides_.contains(name) || placeholders_.count(name) || hidden_.count(name))
      return TensorStore::read(name, offset, nbytes, out);
    base_->read(name, offset, nbytes, out);
  }

 private:
  std::unique_ptr<TensorStore> base_;
  MemoryTensorStore overrides_;
  std::map<std::string, TensorView> placeholders_;
  std::set<std::string> hidden_;
};

struct LinearShape {
  std::string name;
  int64_t out, in;
};

std::vector<LinearShape> linear_modules(const ModelConfig& c, const TensorStore& store) {
  std::vector<LinearShape> out;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    out.push_back({p + "self_attn.q_proj", c.q_dim(), c.hidden_size});
    out.push_back({p + "self_attn.k_proj", c.kv_dim(), c.hidden_size});
    out.push_back({p + "self_attn.v_proj", c.kv_dim(), c.hidden_size});
    out.push_back({p + "self_attn.o_proj", c.hidden_size, c.q_dim()});
    out.push_back({p + "mlp.gate_proj", c.intermediate_size, c.hidden_size});
    out.push_back({p + "mlp.up_proj", c.intermediate_size, c.hidden_size});
    out.push_back({p + "mlp.down_proj", c.hidden_size, c.intermediate_size});
  }
  // lm_head is a module of its own unless the embeddings are tied and nothing of it is stored.
  const bool stored = store.contains("lm_head.weight") || store.contains("lm_head.weight_packed") ||
                      store.contains("lm_head.weight_scale");
  if (stored || !c.tie_word_embeddings) out.push_back({"lm_head", c.vocab_size, c.hidden_size});
  return out;
}

// Dequantization with a per-column group index (GPTQ actorder): w[r][k] = (q - zp[r][g]) * s[r][g],
// g = g_idx[k], each step in the scale's precision as torch computes it.
void dequantize_with_g_idx(const int8_t* q, int64_t rows, int64_t cols, const std::vector<int64_t>& g_idx,
                           int64_t groups, const float* scales, const int8_t* zps, ComputeDType dt,
                           float* out) {
  auto r16 = [&](float v) { return dt == ComputeDType::BF16 ? round_to_bf16(v) : v; };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t cell = r * groups + g_idx[static_cast<size_t>(k)];
      const float z = zps ? static_cast<float>(zps[cell]) : 0.0f;
      out[r * cols + k] = r16(r16(static_cast<float>(q[r * cols + k]) - z) * scales[cell]);
    }
  }
}

// The zero points of an asymmetric weight (empty when symmetric): int8 codes, or packed along the output
// dimension (pack-quantized group/channel).
std::vector<int8_t> read_zero_points(const TensorStore& store, const std::string& module,
                                     const QuantArgs& weights, bool packed, int64_t out, int64_t n_scales) {
  std::vector<int8_t> zps;
  if (weights.symmetric) return zps;
  const TensorView zp_view =
      need(store, module + ".weight_zero_point", "asymmetric weights need zero points");
  const bool zp_packed =
      packed && zp_view.dtype == DType::I32 &&
      (weights.strategy == QuantStrategy::Group || weights.strategy == QuantStrategy::Channel);
  const int64_t zp_rows = weights.strategy == QuantStrategy::Tensor ? 1 : out;
  const int64_t zp_cols = n_scales / zp_rows;
  if (zp_packed) {
    expect_shape(zp_view, {packed_words(zp_rows, weights.num_bits), zp_cols});
    zps.resize(static_cast<size_t>(n_scales));
    unpack_int_cols(zp_view.as<int32_t>().data(), zp_rows, zp_cols, weights.num_bits, zps.data());
  } else {
    zps = zero_points_of(zp_view);
    if (static_cast<int64_t>(zps.size()) != n_scales) {
      fail("tensor {} has {} values, expected {}", zp_view.name, zps.size(), n_scales);
    }
  }
  return zps;
}

// The stored scales of a quantized weight, checked: a float dtype, and as many values as its args need cells.
TensorView scale_view(const TensorStore& store, const std::string& module, const QuantArgs& weights,
                      int64_t out, int64_t in) {
  const TensorView v = need(store, module + ".weight_scale", "a quantized weight needs its scale");
  if (!is_floating(v.dtype))
    fail("tensor {} has dtype {}, expected a float dtype", v.name, dtype_name(v.dtype));
  const int64_t n_scales = expected_scale_count(weights, out, in, module);
  if (v.numel() != n_scales) {
    fail("tensor {} has {} values (shape [{}]); {} weights of [{}, {}] need {}", v.name, v.numel(),
         fmt::join(v.shape, ", "), describe(weights), out, in, n_scales);
  }
  return v;
}

// The scales of a quantized weight as fp32 (scale_view's checks).
std::vector<float> read_scales(const TensorStore& store, const std::string& module, const QuantArgs& weights,
                               int64_t out, int64_t in, ComputeDType* dt) {
  const TensorView v = scale_view(store, module, weights, out, in);
  // torch computes (q - zp) * scale in the scale's dtype.
  if (dt) *dt = v.dtype == DType::BF16 ? ComputeDType::BF16 : ComputeDType::F32;
  return to_f32(v);
}

// The stored codes of a module that can_keep_packed() accepted, checked like the dequantizing path does.
StoredWeight read_stored_weight(const TensorStore& store, const std::string& module, const QuantArgs& weights,
                                int64_t out, int64_t in) {
  StoredWeight w;
  w.args = weights;
  w.out_features = out;
  w.in_features = in;
  const bool packed = store.contains(module + ".weight_packed");
  if (packed) {
    w.codes = store.get(module + ".weight_packed");
    if (w.codes.dtype != DType::I32)
      fail("tensor {} has dtype {}, expected I32", w.codes.name, dtype_name(w.codes.dtype));
    expect_shape(w.codes, {out, packed_words(in, weights.num_bits)});
    const std::vector<int64_t> shape =
        to_i64(need(store, module + ".weight_shape", "pack-quantized weights store their shape"));
    if (shape != std::vector<int64_t>{out, in})
      fail("tensor {}.weight_shape says [{}], the model config needs [{}, {}]", module,
           fmt::join(shape, ", "), out, in);
  } else {
    w.codes = need(store, module + ".weight", "neither weight_packed nor weight is stored");
    expect_shape(w.codes, {out, in});
    const DType want = weights.type == QuantType::Int              ? DType::I8
                       : weights.float_format == FloatFormat::E5M2 ? DType::F8_E5M2
                                                                   : DType::F8_E4M3;
    if (w.codes.dtype != want) {
      fail("tensor {} has dtype {}; {} weights are stored as {}", w.codes.name, dtype_name(w.codes.dtype),
           describe(weights), dtype_name(want));
    }
  }
  w.scales = scale_view(store, module, weights, out, in);
  w.zero_points = read_zero_points(store, module, weights, packed, out, w.scales.numel());
  return w;
}
}  // namespace

bool can_keep_packed(const TensorStore& store, const std::string& module, const QuantArgs& weights,
                     int64_t in_features) {
  if (store.contains(module + ".weight_g_idx")) return false;  // rare (GPTQ actorder): dequantize
  switch (weights.strategy) {
    case QuantStrategy::Tensor:
    case QuantStrategy::Channel:
      break;
    case QuantStrategy::Group:
      if (!weights.group_size || *weights.group_size % 16 != 0 || in_features % *weights.group_size != 0)
        return false;
      break;
    default:
      return false;
  }
  const bool packed = store.contains(module + ".weight_packed");
  if (weights.type == QuantType::Int) {
    if (packed) return weights.num_bits == 4 || weights.num_bits == 8;
    return weights.num_bits == 8 && store.contains(module + ".weight") &&
           store.get(module + ".weight").dtype == DType::I8;
  }
  if (packed || weights.num_bits != 8 || !store.contains(module + ".weight")) return false;
  const DType stored = store.get(module + ".weight").dtype;
  return stored == (weights.float_format == FloatFormat::E5M2 ? DType::F8_E5M2 : DType::F8_E4M3);
}

std::optional<QuantConfig> read_compressed_tensors_config(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "config.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
  if (!j.is_object() || !j.contains("quantization_config")) return std::nullopt;
  const nlohmann::json& q = j["quantization_config"];
  const std::string where = path.string() + ": quantization_config";
  if (!q.is_object()) fail("{} is not an object", where);
  const std::string method = q.value("quant_method", std::string("compressed-tensors"));
  if (method != "compressed-tensors") {
    fail("{}: quant_method '{}' is not supported (lowbit reads compressed-tensors checkpoints)", where,
         method);
  }
  return quant_config_from_json(q, where);
}

std::vector<float> dequantize_module_weight(const TensorStore& store, const std::string& module,
                                            const QuantArgs& weights, int64_t out, int64_t in,
                                            std::string* format) {
  const std::string w_name = module + ".weight";
  const bool packed = store.contains(module + ".weight_packed");
  std::vector<float> result(static_cast<size_t>(out * in));

  if (!packed && store.contains(w_name) && is_floating(store.get(w_name).dtype) &&
      store.get(w_name).dtype != DType::F8_E4M3 && store.get(w_name).dtype != DType::F8_E5M2) {
    // Stored already fake-quantized (status frozen / format dense): the float weight is the weight.
    const TensorView w = store.get(w_name);
    expect_shape(w, {out, in});
    convert_to_f32(w.dtype, w.data, result.data(), result.size());
    if (format) *format = "dense";
    return result;
  }

  ComputeDType dt = ComputeDType::F32;
  const std::vector<float> scales = read_scales(store, module, weights, out, in, &dt);
  const bool group = weights.strategy == QuantStrategy::Group;
  const int64_t groups = group ? in / *weights.group_size : 1;
  const auto n_scales = static_cast<int64_t>(scales.size());

  const TensorView* w_ptr = nullptr;
  TensorView w_view;
  if (!packed) {
    w_view = need(store, w_name, "neither weight_packed nor weight is stored");
    expect_shape(w_view, {out, in});
    w_ptr = &w_view;
  }

  // Float codes: float8_e4m3fn (compressed-tensors' float-quantized) or float8_e5m2 (lowbit's extension,
  // docs/FORMATS.md: only with "lowbit_fp8_format": "e5m2" in the weight args). The stored dtype and the
  // args must agree, so an e5m2 checkpoint is never decoded with e4m3 bit patterns or the reverse.
  if (!packed && (w_ptr->dtype == DType::F8_E4M3 || w_ptr->dtype == DType::F8_E5M2)) {
    const bool e5m2 = w_ptr->dtype == DType::F8_E5M2;
    const FloatFormat stored = e5m2 ? FloatFormat::E5M2 : FloatFormat::E4M3;
    if (weights.type != QuantType::Float || weights.num_bits != 8 || weights.float_format != stored) {
      fail("tensor {} is {} but the scheme says {}{}", w_name, e5m2 ? "float8_e5m2" : "float8_e4m3fn",
           describe(weights),
           e5m2 && weights.float_format != stored ? " (e5m2 weights need \"lowbit_fp8_format\": \"e5m2\")"
                                                  : "");
    }
    if (format) *format = "float-quantized";
    dequantize_fp8(reinterpret_cast<const uint8_t*>(w_ptr->data), out, in, weights, scales.data(),
                   result.data(), dt);
    return result;
  }
  if (weights.type != QuantType::Int)
    fail("module {}: {} weights must be stored as float8 codes", module, describe(weights));

  // Integer codes.
  std::vector<int8_t> codes(static_cast<size_t>(out * in));
  if (packed) {
    if (format) *format = "pack-quantized";
    const TensorView p = store.get(module + ".weight_packed");
    if (p.dtype != DType::I32) fail("tensor {} has dtype {}, expected I32", p.name, dtype_name(p.dtype));
    expect_shape(p, {out, packed_words(in, weights.num_bits)});
    const TensorView shape_view =
        need(store, module + ".weight_shape", "pack-quantized weights store their shape");
    const std::vector<int64_t> shape = to_i64(shape_view);
    if (shape != std::vector<int64_t>{out, in}) {
      fail("tensor {} says [{}], the model config needs [{}, {}]", shape_view.name, fmt::join(shape, ", "),
           out, in);
    }
    unpack_int_rows(p.as<int32_t>().data(), out, in, weights.num_bits, codes.data());
  } else {
    if (w_ptr->dtype != DType::I8) {
      fail("tensor {} has dtype {}; quantized int weights are stored as I8", w_name,
           dtype_name(w_ptr->dtype));
    }
    if (format) *format = "int-quantized";
    std::copy(w_ptr->as<int8_t>().begin(), w_ptr->as<int8_t>().end(), codes.begin());
  }
  const float lo = weights.q_min(), hi = weights.q_max();
  for (int8_t q : codes) {
    if (q < lo || q > hi)
      fail("module {}: code {} is outside [{}, {}] of {}", module, q, lo, hi, describe(weights));
  }

  const std::vector<int8_t> zps = read_zero_points(store, module, weights, packed, out, n_scales);
  const int8_t* zp = zps.empty() ? nullptr : zps.data();

  if (store.contains(module + ".weight_g_idx")) {
    const std::vector<int64_t> g_idx = to_i64(store.get(module + ".weight_g_idx"));
    if (static_cast<int64_t>(g_idx.size()) != in) {
      fail("tensor {}.weight_g_idx has {} entries, expected {}", module, g_idx.size(), in);
    }
    bool identity = true;
    for (int64_t k = 0; k < in; ++k) {
      const int64_t g = g_idx[static_cast<size_t>(k)];
      if (g < 0 || g >= groups)
        fail("tensor {}.weight_g_idx[{}] = {} is not a group of {}", module, k, g, groups);
      identity = identity && (!group || g == k / *weights.group_size);
    }
    if (!identity) {
      dequantize_with_g_idx(codes.data(), out, in, g_idx, groups, scales.data(), zp, dt, result.data());
      return result;
    }
  }
  dequantize_int(codes.data(), out, in, weights, scales.data(), zp, result.data(), dt);
  return result;
}

OpenedQuantizedModel open_compressed_tensors(ModelConfig config, const QuantConfig& qconfig,
                                             std::unique_ptr<TensorStore> base,
                                             const std::filesystem::path& dir, const ReadOptions& options) {
  const std::string where = dir.empty() ? std::string("model") : dir.string();
  auto quant = std::make_shared<QuantizedCheckpoint>();
  quant->config = qconfig;
  quant->kv_cache_scheme = qconfig.kv_cache_scheme;
  if (!kKnownFormats.count(qconfig.format) && qconfig.format != "mixed-precision") {
    fail(
        "{}: compressed-tensors format '{}' is not supported (lowbit reads: pack-quantized, int-quantized, "
        "float-quantized, naive-quantized, mixed-precision)",
        where, qconfig.format);
  }

  const std::vector<LinearShape> linears = linear_modules(config, *base);
  std::vector<ModuleInfo> infos;
  for (const LinearShape& l : linears) infos.push_back({l.name, {"Linear"}, {l.out, l.in}});
  QuantRecipe recipe;
  recipe.groups = qconfig.config_groups;
  recipe.ignore = qconfig.ignore;
  recipe.ignore_lm_head = false;  // the checkpoint's config is the whole truth
  const QuantPlan plan = resolve_plan(recipe, infos);

  auto view = std::make_unique<DequantizedView>(std::move(base));
  const TensorStore& raw = *view;  // before overrides, the view is the checkpoint
  for (size_t i = 0; i < plan.modules.size(); ++i) {
    const PlannedModule& pm = plan.modules[i];
    const LinearShape& shape = linears[i];
    if (pm.decision != ModuleDecision::Quantized) {
      if (pm.decision == ModuleDecision::Ignored) quant->ignored.push_back(pm.name);
      continue;
    }
    const auto& [group_name, scheme] = qconfig.config_groups[static_cast<size_t>(pm.group)];
    QuantizedModule qm;
    qm.name = pm.name;
    qm.group = group_name;
    qm.scheme = scheme;
    std::string declared = scheme.format.value_or(qconfig.format);
    if (declared == "mixed-precision") declared = infer_format(scheme);
    if (!kKnownFormats.count(declared)) {
      fail("{}: module {} (config group {}) has format '{}', which lowbit does not read", where, pm.name,
           group_name, declared);
    }
    if (scheme.weights && options.keep_packed && can_keep_packed(raw, pm.name, *scheme.weights, shape.in)) {
      try {
        qm.stored = read_stored_weight(raw, pm.name, *scheme.weights, shape.out, shape.in);
      } catch (const Error& e) {
        fail("{}: module {}: {}", where, pm.name, e.what());
      }
      qm.format = raw.contains(pm.name + ".weight_packed") ? "pack-quantized"
                  : scheme.weights->type == QuantType::Int ? "int-quantized"
                                                           : "float-quantized";
      for (const char* p : kWeightParams) view->hide(pm.name + "." + p);
      view->hide(pm.name + ".weight");
      view->add_placeholder(pm.name + ".weight", {shape.out, shape.in});
    } else if (scheme.weights) {
      std::string read_as;
      const std::string msg_prefix = fmt::format("{}: module {}", where, pm.name);
      std::vector<float> w;
      try {
        w = dequantize_module_weight(raw, pm.name, *scheme.weights, shape.out, shape.in, &read_as);
      } catch (const Error& e) {
        fail("{}: {}", msg_prefix, e.what());
      }
      qm.format = read_as;
      const bool bf16 =
          raw.contains(pm.name + ".weight_scale") && raw.get(pm.name + ".weight_scale").dtype == DType::BF16;
      if (bf16) {
        std::vector<uint16_t> h(w.size());
        for (size_t k = 0; k < w.size(); ++k) h[k] = f32_to_bf16(w[k]);
        view->overrides().add(pm.name + ".weight", DType::BF16, {shape.out, shape.in}, h.data(),
                              h.size() * 2);
      } else {
        view->overrides().add(pm.name + ".weight", DType::F32, {shape.out, shape.in}, w.data(), w.size() * 4);
      }
      for (const char* p : kWeightParams) view->hide(pm.name + "." + p);
    } else {
      qm.format = "dense";
    }
    if (scheme.input_activations && !scheme.input_activations->is_dynamic()) {
      const TensorView s = need(raw, pm.name + ".input_scale", "static input activation quantization");
      qm.input_scale = to_f32(s);
      if (qm.input_scale.size() != 1) {
        fail("{}: tensor {} has {} values; static input quantization is per tensor here", where, s.name,
             qm.input_scale.size());
      }
      if (!scheme.input_activations->symmetric) {
        qm.input_zero_point = zero_points_of(need(raw, pm.name + ".input_zero_point", "asymmetric inputs"));
      }
    }
    quant->modules.emplace(pm.name, std::move(qm));
  }

  if (qconfig.kv_cache_scheme && !qconfig.kv_cache_scheme->is_dynamic()) {
    for (int64_t l = 0; l < config.num_layers; ++l) {
      const std::string p = fmt::format("model.layers.{}.self_attn.", l);
      KVScales s;
      s.k_scale = to_f32(need(raw, p + "k_scale", "kv_cache_scheme is static"));
      s.v_scale = to_f32(need(raw, p + "v_scale", "kv_cache_scheme is static"));
      for (const auto* v : {&s.k_scale, &s.v_scale}) {
        if (v->size() != 1 && static_cast<int64_t>(v->size()) != config.num_kv_heads) {
          fail("{}: layer {} has {} KV scales; expected 1 (tensor) or {} (per KV head)", where, l, v->size(),
               config.num_kv_heads);
        }
      }
      quant->kv_scales.push_back(std::move(s));
    }
  }

  OpenedQuantizedModel opened;
  opened.model = std::make_unique<Model>(std::move(config), std::move(view), dir);
  opened.quant = std::move(quant);
  return opened;
}

OpenedQuantizedModel open_compressed_tensors(const std::filesystem::path& dir, const ReadOptions& options) {
  std::optional<QuantConfig> qconfig = read_compressed_tensors_config(dir);
  if (!qconfig) fail("{}: config.json has no quantization_config", dir.string());
  return open_compressed_tensors(ModelConfig::load(dir), *qconfig, std::make_unique<CheckpointStore>(dir),
                                 dir, options);
}

}  // namespace lowbit::formats

#include "export/compressed_tensors_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/safetensors.h"
#include "quant/model_quantizer.h"
#include "quant/pack.h"
#include "quant/scheme.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

constexpr std::pair<ExportFormat, std::string_view> kFormats[] = {
    {ExportFormat::Auto, "auto"},
    {ExportFormat::PackQuantized, "pack-quantized"},
    {ExportFormat::IntQuantized, "int-quantized"},
    {ExportFormat::FloatQuantized, "float-quantized"},
    {ExportFormat::NaiveQuantized, "naive-quantized"},
    {ExportFormat::FakeQuant, "fake-quant"},
};

// Files of a Hugging Face model folder that travel with the weights.
constexpr std::string_view kSideFiles[] = {"tokenizer.json",
                                           "tokenizer.model",
                                           "tokenizer_config.json",
                                           "special_tokens_map.json",
                                           "added_tokens.json",
                                           "vocab.json",
                                           "merges.txt",
                                           "generation_config.json",
                                           "chat_template.jinja",
                                           "chat_template.json"};

// compressed-tensors keeps qparams in the observed (weight) dtype when it is a float16/bfloat16/float32/
// float64 tensor, else float16 (lifecycle/initialize.py).
DType scale_dtype_for(DType weight) {
  return weight == DType::BF16 || weight == DType::F16 || weight == DType::F32 ? weight : DType::F16;
}

// Values in `dtype` (a float type), as raw bytes.
std::vector<std::byte> encode_floats(const float* v, size_t n, DType dtype) {
  std::vector<std::byte> out(n * dtype_size(dtype));
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DType::F32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

std::string format_name(const QuantScheme& s, ExportFormat forced) {
  if (forced == ExportFormat::Auto) return s.format ? *s.format : infer_format(s);
  return std::string(to_string(forced));
}

// Checks that a forced format can store the scheme's weights.
void check_format(const QuantScheme& s, std::string_view format, const std::string& group) {
  const QuantArgs& w = *s.weights;
  const bool is_int = w.type == QuantType::Int;
  if ((format == "pack-quantized" || format == "int-quantized") && !is_int)
    fail(
        "--format {}: config group {} has {} weights; {} stores integer codes only (use float-quantized or "
        "naive-quantized)",
        format, group, describe(w), format);
  if (format == "float-quantized" && is_int)
    fail(
        "--format float-quantized: config group {} has integer weights ({}); use pack-quantized, "
        "int-quantized or naive-quantized",
        group, describe(w));
  if (format != "pack-quantized" && format != "int-quantized" && format != "float-quantized" &&
      format != "naive-quantized")
    fail("config group {}: lowbit cannot write compression format '{}'", group, format);
}

class ModuleWriter {
 public:
  ModuleWriter(SafetensorsWriter& writer, uint64_t& bytes) : writer_(writer), bytes_(bytes) {}
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes) {
    writer_.add(name, dtype, std::move(shape), data, nbytes);
    bytes_ += nbytes;
  }

 private:
  SafetensorsWriter& writer_;
  uint64_t& bytes_;
};

void write_compressed_module(const ModuleQuantization& q, std::string_view format, const Calibration* cal,
                             ModuleWriter& out) {
  const QuantArgs& w = q.weights();
  const DType sdt = scale_dtype_for(q.weight_dtype);
  const std::string p = q.name + ".";
  // Scale shapes: (1,) for tensor, (N, 1) for channel, (N, groups) for group.
  const std::vector<int64_t> qshape = w.strategy == QuantStrategy::Tensor
                                          ? std::vector<int64_t>{1}
                                          : std::vector<int64_t>{q.scale_rows, q.scale_cols};
  const std::vector<std::byte> scales = encode_floats(q.scales.data(), q.scales.size(), sdt);
  out.add(p + "weight_scale", sdt, qshape, scales.data(), scales.size());
  if (format == "pack-quantized") {
    const std::vector<int32_t> packed = pack_int_rows(q.int_codes.data(), q.rows, q.cols, w.num_bits);
    out.add(p + "weight_packed", DType::I32, {q.rows, packed_words(q.cols, w.num_bits)}, packed.data(),
            packed.size() * 4);
    const int64_t shape[2] = {q.rows, q.cols};
    out.add(p + "weight_shape", DType::I64, {2}, shape, sizeof shape);
    if (!w.symmetric) {
      if (w.strategy == QuantStrategy::Group || w.strategy == QuantStrategy::Channel) {
        const std::vector<int32_t> zp =
            pack_int_cols(q.zero_points.data(), q.scale_rows, q.scale_cols, w.num_bits);
        out.add(p + "weight_zero_point", DType::I32, {packed_words(q.scale_rows, w.num_bits), q.scale_cols},
                zp.data(), zp.size() * 4);
      } else {
        out.add(p + "weight_zero_point", DType::I8, qshape, q.zero_points.data(), q.zero_points.size());
      }
    }
  } else if (w.type == QuantType::Int) {
    out.add(p + "weight", DType::I8, {q.rows, q.cols}, q.int_codes.data(), q.int_codes.size());
    if (!w.symmetric)
      out.add(p + "weight_zero_point", DType::I8, qshape, q.zero_points.data(), q.zero_points.size());
  } else {
    const DType fp8 = w.float_format == FloatFormat::E5M2 ? DType::F8_E5M2 : DType::F8_E4M3;
    out.add(p + "weight", fp8, {q.rows, q.cols}, q.fp8_codes.data(), q.fp8_codes.size());
  }
  if (!q.g_idx.empty()) {
    // GPTQ activation ordering by group: the group of each input column (compressed-tensors' weight_g_idx).
    if (static_cast<int64_t>(q.g_idx.size()) != q.cols)
      fail("module {}: g_idx has {} entries for {} columns", q.name, q.g_idx.size(), q.cols);
    out.add(p + "weight_g_idx", DType::I32, {q.cols}, q.g_idx.data(), q.g_idx.size() * sizeof(int32_t));
  }
  const QuantScheme& s = *q.scheme;
  if (s.input_activations && !s.input_activations->is_dynamic()) {
    if (cal == nullptr || cal->inputs.count(q.name) == 0)
      fail("module {}: static input activations need a calibration pass (--calib FILE)", q.name);
    const StaticQParams& in = cal->inputs.at(q.name);
    const std::vector<std::byte> is = encode_floats(&in.scale, 1, sdt);
    out.add(p + "input_scale", sdt, {1}, is.data(), is.size());
    if (!s.input_activations->symmetric) out.add(p + "input_zero_point", DType::I8, {1}, &in.zero_point, 1);
  }
}

void write_fake_quant_module(const ModuleQuantization& q, ModuleWriter& out) {
  const std::vector<float> w = q.dequantize();
  const std::vector<std::byte> bytes = encode_floats(w.data(), w.size(), scale_dtype_for(q.weight_dtype));
  out.add(q.name + ".weight", scale_dtype_for(q.weight_dtype), {q.rows, q.cols}, bytes.data(), bytes.size());
}

void copy_side_files(const fs::path& from, const fs::path& to) {
  for (std::string_view name : kSideFiles) {
    const fs::path src = from / name;
    if (fs::is_regular_file(src)) fs::copy_file(src, to / name);
  }
}

}  // namespace

ExportFormat parse_export_format(std::string_view name) {
  for (const auto& [f, n] : kFormats)
    if (n == name) return f;
  std::vector<std::string_view> names;
  for (const auto& [f, n] : kFormats) names.push_back(n);
  fail("unknown export format '{}'; valid formats: {}", name, fmt::join(names, ", "));
}

std::string_view to_string(ExportFormat f) {
  for (const auto& [g, n] : kFormats)
    if (g == f) return n;
  return "?";
}

nlohmann::json export_quantization_config(const Model& model, const QuantPlan& plan, ExportFormat format) {
  QuantConfig config = make_quantization_config(plan, model_modules(model), "compressed");
  if (format != ExportFormat::Auto) {
    for (auto& [name, scheme] : config.config_groups) {
      scheme.format = std::string(to_string(format));
      check_format(scheme, *scheme.format, name);
    }
    if (!config.config_groups.empty()) config.format = std::string(to_string(format));
  } else {
    for (const auto& [name, scheme] : config.config_groups) check_format(scheme, *scheme.format, name);
  }
  return to_json(config);
}

ExportSummary export_model(const Model& model, const QuantPlan& plan, const fs::path& out,
                           const ExportOptions& options,
                           const std::function<void(const ExportProgress&)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  if (model.dir().empty() || !fs::is_regular_file(model.dir() / "config.json"))
    fail("cannot export: the model has no config.json folder on disk");
  const bool fake = options.format == ExportFormat::FakeQuant;
  if (!fake && needs_calibration(plan) && options.calibration == nullptr)
    fail("this plan has static activation or KV-cache scales ({}): pass calibration text with --calib FILE",
         plan.recipe.kv_cache_scheme ? "kv_cache_scheme" : "static input_activations");
  for (const PlannedModule& m : plan.modules) {
    const QuantScheme* s = plan.scheme_for(m.name);
    if (m.decision == ModuleDecision::Quantized && (s == nullptr || !s->weights))
      fail("module {}: its scheme quantizes no weights; lowbit exports weight-quantized schemes only",
           m.name);
  }

  ExportSummary summary;
  nlohmann::json config = nlohmann::json::parse(read_file(model.dir() / "config.json"));
  if (fake) {
    config.erase("quantization_config");
    summary.format = "fake-quant";
    summary.notes.push_back(
        "fake-quant: weights are dequantized; activation and KV-cache quantization are not "
        "represented in the output");
  } else {
    config["quantization_config"] = export_quantization_config(model, plan, options.format);
    summary.format = config["quantization_config"]["format"].get<std::string>();
  }

  // A quantized lm_head of a tied model becomes a module of its own, as llm-compressor unties it: the
  // embeddings stay in full precision for the lookup, lm_head is stored quantized, and the config says so.
  const bool untie = model.lm_head_tied() &&
                     std::any_of(plan.modules.begin(), plan.modules.end(), [](const PlannedModule& m) {
                       return m.name == "lm_head" && m.decision == ModuleDecision::Quantized;
                     });
  if (untie) {
    config["tie_word_embeddings"] = false;
    summary.notes.push_back(
        "lm_head was tied to the embeddings: it is stored quantized on its own (tie_word_embeddings: "
        "false) and the embeddings stay unquantized");
  }

  StagedDirectory staged(out, options.overwrite);
  SafetensorsWriter writer(staged.path(), "model", options.max_shard_bytes);

  std::set<std::string> quantized_weights;
  for (const PlannedModule& m : plan.modules) {
    if (m.decision == ModuleDecision::Quantized) {
      quantized_weights.insert(m.name + ".weight");
      ++summary.modules_quantized;
    } else if (m.type == "Linear") {
      ++summary.modules_not_quantized;
    }
  }
  // 1. Quantized modules, one at a time, and the tensors the quantization method changed.
  ModuleWriter module_out(writer, summary.quantized_bytes_after);
  uint64_t changed_bytes = 0;
  ModuleWriter changed_out(writer, changed_bytes);
  std::set<std::string> written;
  ModelSink sink;
  sink.module = [&](ModuleQuantization& q) {
    if (!quantized_weights.count(q.name + ".weight")) fail("module {} is not quantized by the plan", q.name);
    if (!written.insert(q.name + ".weight").second) fail("module {} was quantized twice", q.name);
    if (fake) {
      write_fake_quant_module(q, module_out);
    } else {
      write_compressed_module(q, format_name(*q.scheme, options.format), options.calibration, module_out);
    }
  };
  sink.tensor = [&](const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                    const float* values) {
    if (!model.has_tensor(name)) fail("a changed tensor {} is not in the model", name);
    if (quantized_weights.count(name))
      fail("tensor {} is a quantized weight; it is written by its module", name);
    if (!written.insert(name).second) fail("tensor {} was written twice", name);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const std::vector<std::byte> bytes = encode_floats(values, static_cast<size_t>(n), dtype);
    changed_out.add(name, dtype, shape, bytes.data(), bytes.size());
  };
  if (options.source) {
    options.source(sink);
  } else {
    ExportProgress p;
    quantize_model_rtn(model, plan, sink.module, [&](const RtnProgress& r) {
      p.done = r.done;
      p.total = r.total;
      p.module = r.module;
      if (progress) progress(p);
    });
  }
  for (const std::string& name : quantized_weights)
    if (!written.count(name)) fail("the quantization method produced no result for {}", name);
  // 2. Everything else, unchanged (pages released as they are copied: the input may be larger than RAM).
  model.for_each_tensor([&](const std::string& name, const TensorView& t) {
    summary.total_bytes_before += t.nbytes;
    if (quantized_weights.count(name)) {
      summary.quantized_bytes_before += t.nbytes;
      summary.quantized_params += static_cast<uint64_t>(t.numel());
      return;
    }
    if (written.count(name)) return;
    writer.add(t);
    model.store().release(name);
    summary.total_bytes_after += t.nbytes;
  });
  summary.total_bytes_after += changed_bytes;
  // 3. KV-cache scales on the attention modules (not counted as quantized-module bytes).
  uint64_t kv_bytes = 0;
  ModuleWriter kv_out(writer, kv_bytes);
  if (!fake && plan.recipe.kv_cache_scheme) {
    const DType sdt = scale_dtype_for(model.embed_tokens().dtype);
    for (int64_t l = 0; l < model.num_layers(); ++l) {
      const std::string attn = fmt::format("model.layers.{}.self_attn", l);
      for (const auto& [suffix, table] : {std::pair{"k_scale", &options.calibration->keys},
                                          std::pair{"v_scale", &options.calibration->values}}) {
        auto it = table->find(attn);
        if (it == table->end()) fail("calibration has no {} for {}", suffix, attn);
        const std::vector<std::byte> s = encode_floats(&it->second.scale, 1, sdt);
        kv_out.add(attn + "." + suffix, sdt, {1}, s.data(), s.size());
      }
    }
  }
  summary.total_bytes_after += summary.quantized_bytes_after + kv_bytes;
  summary.files = writer.finish();
  write_file_atomic(staged.path() / "config.json", config.dump(2) + "\n");
  copy_side_files(model.dir(), staged.path());
  staged.commit();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace lowbit

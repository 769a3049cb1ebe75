// Tiny compressed-tensors checkpoints written directly by the tests: a TinyModel (tests/runtime/tiny_model.h)
// whose Linear modules (all but lm_head) are quantized with the quant library and stored in the tensor layout
// compressed-tensors writes (weight_packed / weight_shape / weight_scale / weight_zero_point for
// pack-quantized, int8 or float8 `weight` + weight_scale otherwise; input_scale and k_scale / v_scale when
// the scheme is static). The expected dequantized weight of every module is returned alongside.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/safetensors.h"
#include "quant/pack.h"
#include "quant/quantizer_ref.h"
#include "quant/scale_grid.h"
#include "quant/scheme.h"
#include "runtime/tiny_model.h"
#include "util/files.h"

namespace lowbit::testing {

struct CtSpec {
  QuantScheme scheme;              // targets ignored: every Linear but lm_head
  std::string format;              // pack-quantized | int-quantized | float-quantized | naive-quantized
  DType scale_dtype = DType::F32;  // F32 or BF16
  float input_scale = 0.05f;       // stored when input activations are static
  std::optional<QuantArgs> kv;     // kv_cache_scheme
  float k_scale = 0.02f, v_scale = 0.03f;
  bool permuted_g_idx = false;  // store a non-trivial weight_g_idx (group strategy only)
};

struct CtCheckpoint {
  std::map<std::string, std::vector<float>> dequantized;  // module -> expected weight [out * in]
  std::map<std::string, std::vector<int64_t>> g_idx;
};

inline bool is_linear_weight(const std::string& name) {
  return name.size() > 12 && name.compare(name.size() - 12, 12, "_proj.weight") == 0;
}

// Writes `tiny` re-quantized per `spec` into `dir` (config.json with quantization_config +
// model.safetensors).
inline CtCheckpoint write_ct_checkpoint(const TinyModel& tiny, const std::filesystem::path& dir,
                                        const CtSpec& spec) {
  CtCheckpoint result;
  std::filesystem::create_directories(dir);
  QuantConfig qc;
  QuantScheme scheme = spec.scheme;
  scheme.targets = {"Linear"};
  scheme.format = spec.format;
  qc.config_groups = {{"group_0", scheme}};
  qc.format = spec.format;
  qc.quantization_status = "compressed";
  qc.ignore = {"lm_head"};
  qc.kv_cache_scheme = spec.kv;
  nlohmann::json config = tiny.config;
  config["quantization_config"] = to_json(qc);
  write_file_atomic(dir / "config.json", config.dump(2));

  const ComputeDType dt = spec.scale_dtype == DType::BF16 ? ComputeDType::BF16 : ComputeDType::F32;
  auto add_float = [&](SafetensorsWriter& w, const std::string& name, std::vector<int64_t> shape,
                       const std::vector<float>& v, DType dtype) {
    if (dtype == DType::F32) {
      w.add(name, DType::F32, std::move(shape), v.data(), v.size() * 4);
    } else {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
      w.add(name, DType::BF16, std::move(shape), h.data(), h.size() * 2);
    }
  };

  SafetensorsWriter writer(dir);
  const QuantArgs& wa = *scheme.weights;
  for (const auto& [name, values] : tiny.weights) {
    const std::vector<int64_t>& shape = tiny.shapes.at(name);
    if (!is_linear_weight(name)) {
      writer.add(name, DType::F32, shape, values.data(), values.size() * 4);
      continue;
    }
    const std::string module = name.substr(0, name.size() - 7);
    const int64_t rows = shape[0], cols = shape[1];
    const ScaleGrid grid = make_scale_grid(wa, rows, cols, module);
    std::vector<float> scales(static_cast<size_t>(grid.size()));
    std::vector<int8_t> zps(scales.size());
    std::vector<float> deq(values.size());
    if (wa.type == QuantType::Float) {
      std::vector<uint8_t> codes(values.size());
      quantize_fp8_ref(values.data(), rows, cols, wa, codes.data(), scales.data(), dt);
      dequantize_fp8_ref(codes.data(), rows, cols, wa, scales.data(), deq.data(), dt);
      writer.add(name, DType::F8_E4M3, shape, codes.data(), codes.size());
    } else {
      std::vector<int8_t> codes(values.size());
      quantize_int_ref(values.data(), rows, cols, wa, codes.data(), scales.data(), zps.data(), dt);
      const int8_t* zp = wa.symmetric ? nullptr : zps.data();
      if (spec.permuted_g_idx) {
        // Column k belongs to group g_idx[k] (GPTQ actorder): reorder the codes' columns so that the stored
        // matrix mixes groups, and expect the per-column formula.
        const int64_t gs = *wa.group_size, groups = cols / gs;
        std::vector<int64_t> g_idx(static_cast<size_t>(cols));
        std::vector<int8_t> permuted(codes.size());
        for (int64_t k = 0; k < cols; ++k) {
          // Column k of the stored matrix takes column src of the quantized one.
          const int64_t src = (k % groups) * gs + k / groups;
          g_idx[static_cast<size_t>(k)] = src / gs;
          for (int64_t r = 0; r < rows; ++r) permuted[r * cols + k] = codes[r * cols + src];
        }
        codes = permuted;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t k = 0; k < cols; ++k) {
            const int64_t cell = r * groups + g_idx[static_cast<size_t>(k)];
            const float z = zp ? zp[cell] : 0.0f;
            float d = static_cast<float>(codes[r * cols + k]) - z;
            if (dt == ComputeDType::BF16) d = round_to_bf16(d);
            d *= scales[cell];
            deq[r * cols + k] = dt == ComputeDType::BF16 ? round_to_bf16(d) : d;
          }
        }
        std::vector<int32_t> gi(g_idx.begin(), g_idx.end());
        writer.add(module + ".weight_g_idx", DType::I32, {cols}, gi.data(), gi.size() * 4);
        result.g_idx[module] = g_idx;
      } else {
        dequantize_int_ref(codes.data(), rows, cols, wa, scales.data(), zp, deq.data(), dt);
      }
      if (spec.format == "pack-quantized") {
        const std::vector<int32_t> packed = pack_int_rows(codes.data(), rows, cols, wa.num_bits);
        writer.add(module + ".weight_packed", DType::I32, {rows, packed_words(cols, wa.num_bits)},
                   packed.data(), packed.size() * 4);
        const int64_t ws[2] = {rows, cols};
        writer.add(module + ".weight_shape", DType::I64, {2}, ws, sizeof(ws));
        if (zp) {
          const std::vector<int32_t> pz = pack_int_cols(zp, grid.scale_rows, grid.scale_cols, wa.num_bits);
          writer.add(module + ".weight_zero_point", DType::I32,
                     {packed_words(grid.scale_rows, wa.num_bits), grid.scale_cols}, pz.data(), pz.size() * 4);
        }
      } else {
        writer.add(name, DType::I8, shape, codes.data(), codes.size());
        if (zp)
          writer.add(module + ".weight_zero_point", DType::I8, {grid.scale_rows, grid.scale_cols}, zp,
                     zps.size());
      }
    }
    add_float(writer, module + ".weight_scale", {grid.scale_rows, grid.scale_cols}, scales, spec.scale_dtype);
    if (scheme.input_activations && !scheme.input_activations->is_dynamic()) {
      add_float(writer, module + ".input_scale", {1}, {spec.input_scale}, spec.scale_dtype);
    }
    result.dequantized[module] = deq;
  }
  if (spec.kv && !spec.kv->is_dynamic()) {
    for (int64_t l = 0; l < tiny.config.at("num_hidden_layers").get<int64_t>(); ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
      add_float(writer, p + "k_scale", {1}, {spec.k_scale}, spec.scale_dtype);
      add_float(writer, p + "v_scale", {1}, {spec.v_scale}, spec.scale_dtype);
    }
  }
  writer.finish();
  return result;
}

}  // namespace lowbit::testing

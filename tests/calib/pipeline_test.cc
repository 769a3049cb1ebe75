// The layer-sequential pipeline on tiny random models: smoothing (SmoothQuant, AWQ) folded into the model
// leaves its function unchanged; GPTQ through the pipeline beats RTN on the calibration data and its
// export loads back (g_idx included); modules the plan ignores stay untouched; true-sequential GPTQ's one
// pass computes the layer as the two-pass pipeline does, with each group's Hessian after the groups before.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include "calib/pipeline.h"
#include "calib/random_calib_data.h"
#include "export/compressed_tensors_writer.h"
#include "formats/compressed_tensors_reader.h"
#include "quant/model_quantizer.h"
#include "quant/presets.h"
#include "runtime/tiny_model.h"
#include "runtime/transformer.h"
#include "util/error.h"
#include "util/files.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

using testing::random_calib_data;

QuantPlan plan_for(const Model& model, const std::string& preset, int group,
                   std::vector<std::string> ignore = {}) {
  QuantRecipe r;
  QuantScheme s = preset_scheme(preset, {"Linear"});
  if (group != 0) override_group_size(s, group, "test");
  r.groups.emplace_back("group_0", s);
  r.ignore = std::move(ignore);
  return resolve_plan(r, model_modules(model));
}

// All logits of every sample, concatenated.
std::vector<float> logits_of(const Model& model, const CalibDataset& data) {
  runtime::Transformer tf(model);
  std::vector<float> all, l;
  for (const auto& s : data.samples) {
    runtime::Session session(tf);
    session.forward(s, runtime::Logits::All, &l);
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

// Writes `model` with the tensors in `changed` replaced (fp32 models only) to a new folder.
void write_changed_model(const Model& model, const std::map<std::string, std::vector<float>>& changed,
                         const fs::path& dir) {
  fs::create_directories(dir);
  fs::copy_file(model.dir() / "config.json", dir / "config.json");
  SafetensorsWriter w(dir);
  model.for_each_tensor([&](const std::string& name, const TensorView& t) {
    auto it = changed.find(name);
    if (it == changed.end())
      w.add(t);
    else
      w.add(name, t.dtype, t.shape, it->second.data(), it->second.size() * sizeof(float));
  });
  w.finish();
}

struct FoldCase {
  const char* name;
  const char* method;
  int64_t kv_heads;
};

class SmoothingFold : public ::testing::TestWithParam<FoldCase> {};

TEST_P(SmoothingFold, LeavesUnquantizedLogitsUnchanged) {
  const FoldCase c = GetParam();
  const testing::TempDir tmp(std::string("fold_") + c.name);
  testing::TinySpec spec;
  spec.kv_heads = c.kv_heads;  // 4 = no GQA: AWQ's v_proj -> o_proj mapping applies
  spec.attention_bias = true;  // v_proj's bias is divided with its rows
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "model", spec);
  auto model = Model::open(tiny.dir);
  const CalibDataset data = random_calib_data(spec.vocab, 4, 24, 3);
  const QuantPlan plan = plan_for(*model, "W4A16", 8);
  PipelineOptions o = pipeline_options_for(c.method);
  o.apply_quantization = false;
  std::map<std::string, std::vector<float>> changed;
  ModelSink sink;
  sink.module = [](ModuleQuantization&) { FAIL() << "nothing is quantized"; };
  sink.tensor = [&](const std::string& name, DType, const std::vector<int64_t>& shape, const float* v) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    changed[name] = std::vector<float>(v, v + n);
  };
  run_sequential_pipeline(*model, plan, data, o, sink, nullptr);
  // Both norms of every layer and the balance layers changed; the scales are not all 1.
  EXPECT_TRUE(changed.count("model.layers.1.input_layernorm.weight"));
  EXPECT_TRUE(changed.count("model.layers.1.post_attention_layernorm.weight"));
  EXPECT_TRUE(changed.count("model.layers.0.self_attn.q_proj.weight"));
  if (std::string(c.method) == "awq") {
    EXPECT_TRUE(changed.count("model.layers.0.mlp.down_proj.weight"));
    EXPECT_EQ(changed.count("model.layers.0.self_attn.o_proj.weight") == 1, c.kv_heads == spec.heads);
    EXPECT_EQ(changed.count("model.layers.0.self_attn.v_proj.bias") == 1, c.kv_heads == spec.heads);
  }
  const std::vector<float>& norm = changed.at("model.layers.0.input_layernorm.weight");
  const std::vector<float>& orig = tiny.weights.at("model.layers.0.input_layernorm.weight");
  double moved = 0;
  for (size_t i = 0; i < norm.size(); ++i) moved = std::max(moved, std::fabs(double(norm[i]) - orig[i]));
  EXPECT_GT(moved, 1e-3);

  write_changed_model(*model, changed, tmp.path() / "smoothed");
  auto smoothed = Model::open(tmp.path() / "smoothed");
  const std::vector<float> a = logits_of(*model, data), b = logits_of(*smoothed, data);
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(double(a[i]) - b[i]));
    max_abs = std::max(max_abs, std::fabs(double(a[i])));
  }
  EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_abs)) << "max |logit| " << max_abs;
}

INSTANTIATE_TEST_SUITE_P(Methods, SmoothingFold,
                         ::testing::Values(FoldCase{"smoothquant", "smoothquant", 2},
                                           FoldCase{"awq_gqa", "awq", 2}, FoldCase{"awq_mha", "awq", 4}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

double logit_mse(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return e / static_cast<double>(a.size());
}

// Quantizes through export_model (pipeline as the source) and returns the loaded model's logits.
std::vector<float> quantize_and_load(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                                     const std::string& method, const fs::path& out,
                                     CalibPrecision precision = CalibPrecision::F32) {
  ExportOptions eo;
  PipelineOptions po = pipeline_options_for(method);
  po.precision = precision;
  if (method != "rtn") {
    eo.source = [&](const ModelSink& sink) { run_sequential_pipeline(model, plan, data, po, sink, nullptr); };
  }
  export_model(model, plan, out, eo);
  const formats::OpenedQuantizedModel q = formats::open_compressed_tensors(out);
  return logits_of(*q.model, data);
}

// A 2-layer tiny model, its calibration data and unquantized logits, for end-to-end comparisons of methods.
struct EndToEndCase {
  explicit EndToEndCase(const std::string& name) : tmp(name) {
    testing::TinySpec spec;
    spec.hidden = 64;
    spec.intermediate = 96;
    spec.layers = 2;
    model = Model::open(testing::write_tiny_model(tmp.path() / "model", spec).dir);
    data = random_calib_data(spec.vocab, 8, 48, 5);
    ref = logits_of(*model, data);
  }
  testing::TempDir tmp;
  std::unique_ptr<Model> model;
  CalibDataset data;
  std::vector<float> ref;
};

TEST(Pipeline, GptqBeatsRtnEndToEndAndExportsLoad) {
  const EndToEndCase c("pipeline_gptq");
  for (const std::string actorder : {"none", "static", "group"}) {
    QuantRecipe r;
    QuantScheme s = preset_scheme("W4A16", {"Linear"});
    override_group_size(s, 16, "test");
    if (actorder == "static") s.weights->actorder = ActOrder::Weight;
    if (actorder == "group") s.weights->actorder = ActOrder::Group;
    r.groups.emplace_back("group_0", s);
    const QuantPlan plan = resolve_plan(r, model_modules(*c.model));
    const double rtn = logit_mse(
        c.ref, quantize_and_load(*c.model, plan, c.data, "rtn", c.tmp.path() / ("rtn_" + actorder)));
    const double gptq = logit_mse(
        c.ref, quantize_and_load(*c.model, plan, c.data, "gptq", c.tmp.path() / ("gptq_" + actorder)));
    EXPECT_LT(gptq, rtn) << "actorder " << actorder;
    if (actorder == "group") {
      SafetensorsFile f(c.tmp.path() / "gptq_group" / "model.safetensors");
      EXPECT_TRUE(f.contains("model.layers.0.mlp.down_proj.weight_g_idx"));
    }
  }
}

// The BF16 calibration passes (bf16 operands, fp32 sums; AMX where available) drive every method: GPTQ and
// AWQ still beat RTN, and the result stays close to the fp32 passes' (the Hessians and activations differ
// only by bf16 rounding).
TEST(Pipeline, Bf16PassesBeatRtnAndTrackFp32) {
  const EndToEndCase c("pipeline_bf16");
  const QuantPlan plan = plan_for(*c.model, "W4A16", 16);
  const double rtn = logit_mse(c.ref, quantize_and_load(*c.model, plan, c.data, "rtn", c.tmp.path() / "rtn"));
  for (const std::string method : {"gptq", "awq"}) {
    const double f32 =
        logit_mse(c.ref, quantize_and_load(*c.model, plan, c.data, method, c.tmp.path() / (method + "_f32")));
    const double bf16 =
        logit_mse(c.ref, quantize_and_load(*c.model, plan, c.data, method, c.tmp.path() / (method + "_bf16"),
                                           CalibPrecision::BF16));
    EXPECT_LT(bf16, rtn) << method;
    EXPECT_NEAR(bf16, f32, 0.25 * f32) << method;
  }
}

TEST(Pipeline, StaleBf16PackIsAnError) {
  LinearF32 lin;
  lin.name = "layer.proj";
  lin.rows = 4;
  lin.cols = 8;
  lin.weight.assign(32, 0.5f);
  lin.pack_bf16();
  std::vector<float> x(8, 1.0f), y(4);
  linear_f32(lin, x.data(), 1, y.data());
  EXPECT_FLOAT_EQ(y[0], 4.0f);
  lin.weight[0] = 2.0f;  // changed without pack_bf16()
  EXPECT_THROW(linear_f32(lin, x.data(), 1, y.data()), Error);
  lin.pack_bf16();
  linear_f32(lin, x.data(), 1, y.data());
  EXPECT_FLOAT_EQ(y[0], 5.5f);
}

TEST(Pipeline, IgnoredModulesAndStaticScales) {
  const testing::TempDir tmp("pipeline_ignore");
  testing::TinySpec spec;
  const testing::TinyModel tiny = testing::write_tiny_model(tmp.path() / "model", spec);
  auto model = Model::open(tiny.dir);
  const CalibDataset data = random_calib_data(spec.vocab, 2, 16, 9);
  QuantRecipe r;
  r.groups.emplace_back("group_0", preset_scheme("FP8", {"Linear"}));  // static per-tensor input scales
  r.ignore = {"re:.*down_proj"};
  r.kv_cache_scheme = QuantArgs{};
  r.kv_cache_scheme->type = QuantType::Float;
  const QuantPlan plan = resolve_plan(r, model_modules(*model));
  Calibration cal;
  std::vector<std::string> modules, tensors;
  ModelSink sink;
  sink.module = [&](ModuleQuantization& q) {
    modules.push_back(q.name);
    EXPECT_TRUE(cal.inputs.count(q.name)) << q.name << " delivered before its input scale";
  };
  sink.tensor = [&](const std::string& name, DType, const std::vector<int64_t>&, const float*) {
    tensors.push_back(name);
  };
  const PipelineReport report =
      run_sequential_pipeline(*model, plan, data, pipeline_options_for("smoothquant+gptq"), sink, &cal);
  EXPECT_EQ(modules.size(), 12u);  // 6 of 7 per layer, down_proj ignored
  for (const std::string& m : modules) EXPECT_EQ(m.find("down_proj"), std::string::npos);
  EXPECT_EQ(cal.keys.size(), 2u);
  EXPECT_EQ(cal.values.size(), 2u);
  // SmoothQuant changed the norms (the smoothed weights are delivered as quantized modules).
  EXPECT_EQ(tensors.size(), 4u);
  EXPECT_EQ(report.layers.size(), 2u);
  EXPECT_NE(report.layers[0].lines.front().find("smoothquant"), std::string::npos);
  EXPECT_GT(report.layers[1].propagate_seconds, 0.0);  // the last layer's static scales need its pass
}

bool propagation_skipped(const LayerReport& layer) {
  return std::find(layer.lines.begin(), layer.lines.end(),
                   "propagate: skipped (last layer, no static scales to observe)") != layer.lines.end();
}

// Without static scales to observe, the last layer's propagation pass (whose outputs nothing reads) is
// skipped; every other layer's runs, since the next layer calibrates on its outputs.
TEST(Pipeline, LastLayerIsNotPropagatedWithoutStaticScales) {
  const testing::TempDir tmp("pipeline_last_layer");
  testing::TinySpec spec;
  auto model = Model::open(testing::write_tiny_model(tmp.path() / "model", spec).dir);
  const CalibDataset data = random_calib_data(spec.vocab, 2, 16, 5);
  for (const char* method : {"gptq", "awq", "smoothquant+gptq"}) {
    const bool w8a8 = std::string(method) == "smoothquant+gptq";  // dynamic per-token activations
    const QuantPlan plan = w8a8 ? plan_for(*model, "W8A8", 0) : plan_for(*model, "W4A16", 8);
    ModelSink sink;
    sink.module = [](ModuleQuantization&) {};
    sink.tensor = [](const std::string&, DType, const std::vector<int64_t>&, const float*) {};
    const PipelineReport report =
        run_sequential_pipeline(*model, plan, data, pipeline_options_for(method), sink, nullptr);
    ASSERT_EQ(report.layers.size(), 2u) << method;
    EXPECT_FALSE(propagation_skipped(report.layers[0])) << method;
    EXPECT_GT(report.layers[0].propagate_seconds, 0.0) << method;
    EXPECT_TRUE(propagation_skipped(report.layers[1])) << method;
  }
}

// Every module the pipeline delivers, dequantized, by name; and the static scales it observed.
struct PipelineOutputs {
  std::map<std::string, std::vector<float>> weights;
  Calibration cal;
};

PipelineOutputs run_pipeline(const Model& model, const QuantPlan& plan, const CalibDataset& data,
                             PipelineOptions options) {
  PipelineOutputs out;
  ModelSink sink;
  sink.module = [&](ModuleQuantization& q) { out.weights[q.name] = q.dequantize(); };
  sink.tensor = [](const std::string&, DType, const std::vector<int64_t>&, const float*) {};
  run_sequential_pipeline(model, plan, data, options, sink, &out.cal);
  return out;
}

void expect_same_scales(const std::map<std::string, StaticQParams>& a,
                        const std::map<std::string, StaticQParams>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, q] : a) {
    ASSERT_TRUE(b.count(name)) << what << " " << name;
    EXPECT_EQ(q.scale, b.at(name).scale) << what << " " << name;
    EXPECT_EQ(q.zero_point, b.at(name).zero_point) << what << " " << name;
  }
}

// When only one kind of module is quantized, no module of a layer reads the output of a quantized module
// of the same layer, so true-sequential GPTQ must give exactly what the two-pass pipeline gives: the same
// Hessians, quantized weights, propagated hidden states (layer 1's results depend on them) and static
// scales. This checks the staged pass computes the layer exactly as LayerRunner::forward does.
TEST(Pipeline, TrueSequentialEqualsTwoPassWhenOneModuleKindIsQuantized) {
  const testing::TempDir tmp("pipeline_true_seq_eq");
  testing::TinySpec spec;
  auto model = Model::open(testing::write_tiny_model(tmp.path() / "model", spec).dir);
  const CalibDataset data = random_calib_data(spec.vocab, 4, 24, 3);
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"q,k,v", "re:.*(o_proj|gate_proj|up_proj|down_proj)"},
      {"o", "re:.*(q_proj|k_proj|v_proj|gate_proj|up_proj|down_proj)"},
      {"gate,up", "re:.*(q_proj|k_proj|v_proj|o_proj|down_proj)"},
      {"down", "re:.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj)"}};
  for (const std::string preset : {"W4A16", "FP8"}) {
    for (const auto& [kind, ignore] : kinds) {
      QuantRecipe r;
      QuantScheme s = preset_scheme(preset, {"Linear"});
      if (preset == "W4A16") override_group_size(s, 8, "test");
      r.groups.emplace_back("group_0", s);
      r.ignore = {ignore};
      if (preset == "FP8") {  // static input scales, and a KV cache scale
        r.kv_cache_scheme = QuantArgs{};
        r.kv_cache_scheme->type = QuantType::Float;
      }
      const QuantPlan plan = resolve_plan(r, model_modules(*model));
      for (const std::string method : {"gptq", "smoothquant+gptq"}) {
        for (const CalibPrecision precision : {CalibPrecision::F32, CalibPrecision::BF16}) {
          const std::string what =
              preset + " " + kind + " " + method + (precision == CalibPrecision::BF16 ? " bf16" : " fp32");
          PipelineOptions o = pipeline_options_for(method);
          o.precision = precision;
          const PipelineOutputs two = run_pipeline(*model, plan, data, o);
          o.true_sequential = true;
          const PipelineOutputs one = run_pipeline(*model, plan, data, o);
          ASSERT_EQ(two.weights.size(), kind == "q,k,v"                 ? 6u
                                        : kind == "o" || kind == "down" ? 2u
                                                                        : 4u)
              << what;
          ASSERT_EQ(one.weights.size(), two.weights.size()) << what;
          for (const auto& [name, w] : two.weights) {
            ASSERT_TRUE(one.weights.count(name)) << what << " " << name;
            EXPECT_EQ(one.weights.at(name), w) << what << " " << name;
          }
          expect_same_scales(one.cal.inputs, two.cal.inputs, what + " inputs");
          expect_same_scales(one.cal.keys, two.cal.keys, what + " keys");
          expect_same_scales(one.cal.values, two.cal.values, what + " values");
          EXPECT_EQ(one.cal.inputs.size(), preset == "FP8" ? two.weights.size() : 0u) << what;
        }
      }
    }
  }
}

// True-sequential: the Hessian of each module group comes from the layer whose earlier groups are already
// quantized. So quantizing layer 0's o_proj (then gate/up, then down_proj) with the two-pass pipeline, in a
// copy of the model whose earlier modules of layer 0 hold the true-sequential run's quantized weights,
// must reproduce that run's result exactly.
TEST(Pipeline, TrueSequentialHessiansSeeTheQuantizedModulesBefore) {
  const testing::TempDir tmp("pipeline_true_seq");
  testing::TinySpec spec;
  auto model = Model::open(testing::write_tiny_model(tmp.path() / "model", spec).dir);
  const CalibDataset data = random_calib_data(spec.vocab, 4, 24, 4);
  const QuantPlan plan = plan_for(*model, "W4A16", 8);
  PipelineOptions o = pipeline_options_for("gptq");
  o.true_sequential = true;
  const PipelineOutputs one = run_pipeline(*model, plan, data, o);
  o.true_sequential = false;
  const PipelineOutputs two = run_pipeline(*model, plan, data, o);
  const std::string l0 = "model.layers.0.";
  for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"})
    EXPECT_EQ(one.weights.at(l0 + m), two.weights.at(l0 + m)) << m << ": both see the layer's input";
  EXPECT_NE(one.weights.at(l0 + "self_attn.o_proj"), two.weights.at(l0 + "self_attn.o_proj"));

  const std::vector<std::vector<std::string>> groups = {
      {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
      {"self_attn.o_proj"},
      {"mlp.gate_proj", "mlp.up_proj"},
      {"mlp.down_proj"}};
  std::map<std::string, std::vector<float>> before;  // layer 0's modules quantized so far
  for (size_t g = 1; g < groups.size(); ++g) {
    for (const std::string& m : groups[g - 1]) before[l0 + m + ".weight"] = one.weights.at(l0 + m);
    const fs::path dir = tmp.path() / fmt::format("changed_{}", g);
    write_changed_model(*model, before, dir);
    auto changed = Model::open(dir);
    std::vector<std::string> ignore = {"re:model\\.layers\\.1\\..*"};
    for (size_t other = 0; other < groups.size(); ++other)
      if (other != g)
        for (const std::string& m : groups[other]) ignore.push_back(l0 + m);
    const QuantPlan only = plan_for(*changed, "W4A16", 8, ignore);
    const PipelineOutputs ref = run_pipeline(*changed, only, data, o);
    ASSERT_EQ(ref.weights.size(), groups[g].size());
    for (const std::string& m : groups[g]) EXPECT_EQ(ref.weights.at(l0 + m), one.weights.at(l0 + m)) << m;
  }
}

TEST(Pipeline, TrueSequentialGptqBeatsRtnAndRefusesAwq) {
  const EndToEndCase c("pipeline_true_seq_e2e");
  const QuantPlan plan = plan_for(*c.model, "W4A16", 16);
  const double rtn = logit_mse(c.ref, quantize_and_load(*c.model, plan, c.data, "rtn", c.tmp.path() / "rtn"));
  for (const CalibPrecision precision : {CalibPrecision::F32, CalibPrecision::BF16}) {
    PipelineOptions po = pipeline_options_for("gptq");
    po.precision = precision;
    po.true_sequential = true;
    ExportOptions eo;
    eo.source = [&](const ModelSink& sink) {
      run_sequential_pipeline(*c.model, plan, c.data, po, sink, nullptr);
    };
    const fs::path out = c.tmp.path() / (precision == CalibPrecision::BF16 ? "ts_bf16" : "ts_f32");
    export_model(*c.model, plan, out, eo);
    const double ts = logit_mse(c.ref, logits_of(*formats::open_compressed_tensors(out).model, c.data));
    const double gptq =
        logit_mse(c.ref, quantize_and_load(*c.model, plan, c.data, "gptq", out.string() + "_2p", precision));
    EXPECT_LT(ts, rtn);
    EXPECT_LT(ts, 1.5 * gptq);
  }
  PipelineOptions awq = pipeline_options_for("awq");
  awq.true_sequential = true;
  ModelSink sink;
  EXPECT_THROW(run_sequential_pipeline(*c.model, plan, c.data, awq, sink, nullptr), Error);
}

TEST(Pipeline, MethodNames) {
  EXPECT_TRUE(pipeline_options_for("gptq").gptq);
  const PipelineOptions sq = pipeline_options_for("smoothquant+gptq");
  EXPECT_TRUE(sq.smoothquant && sq.gptq && !sq.awq);
  const PipelineOptions awq = pipeline_options_for("awq+gptq");
  EXPECT_TRUE(awq.awq && awq.gptq && !awq.awq_clip);
  EXPECT_TRUE(pipeline_options_for("awq").awq_clip);
  EXPECT_FALSE(method_needs_pipeline("rtn"));
  EXPECT_THROW(pipeline_options_for("gptqq"), Error);
  EXPECT_THROW(pipeline_options_for("awq+smoothquant"), Error);
}

}  // namespace
}  // namespace lowbit

// The sensitivity scan on a tiny random model against brute force: a full copy of the model with only the
// module(s) of one run replaced by their fake-quantized weights, run by the runtime (runtime/transformer.h,
// a different code path from the scan's fp32 layer runner), scored with eval's kl_divergence / token_nll.
// Also: the layer-local error of a layer-0 module from scratch, and determinism of the report.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "calib/decoder_layer.h"
#include "calib/random_calib_data.h"
#include "eval/kl_divergence.h"
#include "eval/perplexity.h"
#include "quant/model_quantizer.h"
#include "quant/presets.h"
#include "runtime/kernels.h"
#include "runtime/linear.h"
#include "runtime/tiny_model.h"
#include "runtime/transformer.h"
#include "sensitivity/report.h"
#include "sensitivity/scan.h"
#include "util/error.h"

namespace lowbit::sensitivity {
namespace {

using testing::TempDir;

using testing::random_calib_data;

QuantPlan w4_plan(const Model& model) {
  QuantRecipe r;
  QuantScheme s = preset_scheme("W4A16", {"Linear"});
  override_group_size(s, -1, "test");
  r.groups.emplace_back("group_0", s);
  r.source = "W4A16 per channel";
  return resolve_plan(r, model_modules(model));
}

// The model with `modules` replaced by RTN dequantize(quantize(W)) (quantize_module_rtn on the stored view).
std::unique_ptr<Model> with_fake_quant(const Model& model, const QuantPlan& plan,
                                       const std::vector<std::string>& modules) {
  std::map<std::string, std::vector<float>> replaced;
  model.for_each_linear([&](const LinearModule& m) {
    if (std::find(modules.begin(), modules.end(), m.name) != modules.end())
      replaced[m.name + ".weight"] = quantize_module_rtn(m, *plan.scheme_for(m.name)).dequantize();
  });
  auto store = std::make_unique<MemoryTensorStore>();
  model.for_each_tensor([&](const std::string& name, const TensorView& t) {
    auto it = replaced.find(name);
    if (it == replaced.end())
      store->add(name, t.dtype, t.shape, t.data, t.nbytes);
    else
      store->add(name, DType::F32, t.shape, it->second.data(), it->second.size() * sizeof(float));
  });
  return std::make_unique<Model>(model.config(), std::move(store));
}

struct BruteForce {
  double kl_mean = 0, nll = 0;
};

BruteForce brute_force(const Model& base, const Model& quant, const CalibDataset& data) {
  runtime::Transformer tb(base), tq(quant);
  const int64_t vocab = base.config().vocab_size;
  BruteForce r;
  int64_t n = 0;
  for (const auto& s : data.samples) {
    runtime::Session sb(tb), sq(tq);
    std::vector<float> lb, lq;
    sb.forward(s, runtime::Logits::All, &lb);
    sq.forward(s, runtime::Logits::All, &lq);
    for (size_t t = 0; t + 1 < s.size(); ++t, ++n) {
      const std::span<const float> pb(lb.data() + t * vocab, static_cast<size_t>(vocab));
      const std::span<const float> pq(lq.data() + t * vocab, static_cast<size_t>(vocab));
      r.kl_mean += eval::kl_divergence(pb, pq);
      r.nll += eval::token_nll(pq, s[t + 1]);
    }
  }
  r.kl_mean /= static_cast<double>(n);
  r.nll /= static_cast<double>(n);
  return r;
}

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::TinySpec spec;
    spec.vocab = 97;
    spec.hidden = 32;
    spec.intermediate = 48;
    spec.layers = 3;
    testing::write_tiny_model(tmp_.path() / "model", spec);
    model_ = Model::open(tmp_.path() / "model");
    data_ = random_calib_data(spec.vocab, 3, 24, 7);
  }
  TempDir tmp_{"sens_scan"};
  std::unique_ptr<Model> model_;
  CalibDataset data_;
};

// Stated bound: the scan and brute force run the same arithmetic through different code paths (fp32
// layer runner vs runtime Session, different summation order), so they agree to float rounding (measured:
// relative differences below 1e-6): bound relative 1e-5 of the value plus 1e-9 nats absolute.
void expect_close(double scan, double brute, const std::string& what) {
  EXPECT_NEAR(scan, brute, 1e-5 * std::fabs(brute) + 1e-9) << what;
}

TEST_F(ScanTest, PerModuleEqualsBruteForce) {
  const QuantPlan plan = w4_plan(*model_);
  const ScanResult scan = scan_sensitivity(*model_, plan, data_, {});
  ASSERT_EQ(scan.modules.size(), 21u);  // 3 layers x 7 linears
  EXPECT_EQ(scan.positions, 3 * 23);
  const BruteForce base = brute_force(*model_, *model_, data_);
  expect_close(scan.base.nll, base.nll, "base nll");
  for (const char* name :
       {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj", "model.layers.1.mlp.gate_proj",
        "model.layers.2.mlp.down_proj", "model.layers.2.self_attn.o_proj"}) {
    const auto it =
        std::find_if(scan.modules.begin(), scan.modules.end(), [&](const auto& m) { return m.name == name; });
    ASSERT_NE(it, scan.modules.end()) << name;
    ASSERT_TRUE(it->end_to_end.has_value());
    const BruteForce bf = brute_force(*model_, *with_fake_quant(*model_, plan, {name}), data_);
    EXPECT_GT(bf.kl_mean, 1e-5) << name << ": 4-bit quantization must change the output";
    expect_close(it->end_to_end->kl_mean, bf.kl_mean, std::string(name) + " KL");
    expect_close(it->end_to_end->nll, bf.nll, std::string(name) + " NLL");
    EXPECT_GT(it->output_rel_mse, 0.0);
    EXPECT_LT(it->output_rel_mse, 0.5);
  }
}

TEST_F(ScanTest, LayerAndTypeGranularityEqualBruteForce) {
  const QuantPlan plan = w4_plan(*model_);
  ScanOptions o;
  o.granularity = Granularity::Layer;
  const ScanResult layers = scan_sensitivity(*model_, plan, data_, o);
  ASSERT_EQ(layers.groups.size(), 3u);
  EXPECT_FALSE(layers.modules[0].end_to_end.has_value());
  const GroupSensitivity& l1 = layers.groups[1];
  EXPECT_EQ(l1.name, "layer 1");
  ASSERT_EQ(l1.modules.size(), 7u);
  expect_close(l1.end_to_end.kl_mean,
               brute_force(*model_, *with_fake_quant(*model_, plan, l1.modules), data_).kl_mean, "layer 1");

  o.granularity = Granularity::Type;
  const ScanResult types = scan_sensitivity(*model_, plan, data_, o);
  ASSERT_EQ(types.groups.size(), 7u);
  const GroupSensitivity& up = types.groups[5];
  EXPECT_EQ(up.name, "up_proj");
  ASSERT_EQ(up.modules.size(), 3u);
  expect_close(up.end_to_end.kl_mean,
               brute_force(*model_, *with_fake_quant(*model_, plan, up.modules), data_).kl_mean, "up_proj");
}

TEST_F(ScanTest, LayerLocalErrorFromScratch) {
  // q_proj of layer 0 reads rmsnorm(embeddings): recompute ||W x - Q x||^2 / ||W x||^2 directly.
  const QuantPlan plan = w4_plan(*model_);
  ScanOptions o;
  o.end_to_end = false;
  const ScanResult scan = scan_sensitivity(*model_, plan, data_, o);
  const DecoderLayerF32 layer = load_decoder_layer(*model_, 0);
  const LinearModule& q = model_->layer(0).q_proj;
  const std::vector<float> fq = quantize_module_rtn(q, *plan.scheme_for(q.name)).dequantize();
  const ModelConfig& c = model_->config();
  const std::vector<float> embed = runtime::to_f32(model_->embed_tokens());
  double err = 0, ref = 0;
  for (const auto& s : data_.samples)
    for (int32_t id : s) {
      std::vector<float> x(static_cast<size_t>(c.hidden_size));
      kernels::rmsnorm_ref(embed.data() + id * c.hidden_size, layer.input_norm.data(), 1, c.hidden_size,
                           static_cast<float>(c.rms_norm_eps), x.data());
      for (int64_t r = 0; r < layer.q.rows; ++r) {
        double y = 0, yq = 0;
        for (int64_t k = 0; k < c.hidden_size; ++k) {
          y += static_cast<double>(layer.q.weight[r * c.hidden_size + k]) * x[k];
          yq += static_cast<double>(fq[r * c.hidden_size + k]) * x[k];
        }
        err += (y - yq) * (y - yq);
        ref += y * y;
      }
    }
  EXPECT_NEAR(scan.modules[0].output_rel_mse, err / ref, 1e-4 * err / ref);
  EXPECT_FALSE(scan.modules[0].end_to_end.has_value());
}

TEST_F(ScanTest, ReportIsDeterministic) {
  const QuantPlan plan = w4_plan(*model_);
  ReportContext ctx;
  ctx.model = "tiny";
  ctx.scheme = plan.recipe.source;
  ctx.plan = &plan;
  ctx.data = &data_;
  nlohmann::json a = report_json(scan_sensitivity(*model_, plan, data_, {}), ctx);
  nlohmann::json b = report_json(scan_sensitivity(*model_, plan, data_, {}), ctx);
  a.erase("timing");
  b.erase("timing");
  EXPECT_EQ(a.dump(), b.dump());
  EXPECT_EQ(a["modules"].size(), 21u);
  EXPECT_EQ(a["schema"], "lowbit.sensitivity/1");
  EXPECT_FALSE(a["modules"][0]["kl_mean"].is_null());
  EXPECT_FALSE(a["modules"][0]["quantized_bytes"].is_null());
  EXPECT_TRUE(a["spearman_vs_kl"].contains("output_rel_mse"));
  // A different calibration choice changes the numbers.
  const CalibDataset other = random_calib_data(97, 3, 24, 8);
  nlohmann::json c = report_json(scan_sensitivity(*model_, plan, other, {}), ctx);
  EXPECT_NE(c["modules"][0]["kl_mean"], a["modules"][0]["kl_mean"]);
}

TEST_F(ScanTest, RejectsBadInput) {
  const QuantPlan plan = w4_plan(*model_);
  EXPECT_THROW(scan_sensitivity(*model_, plan, CalibDataset{}, {}), Error);
  CalibDataset bad = data_;
  bad.samples[1][3] = 1000;
  EXPECT_THROW(scan_sensitivity(*model_, plan, bad, {}), Error);
  EXPECT_THROW(parse_granularity("block"), Error);
}

}  // namespace
}  // namespace lowbit::sensitivity

// GPU correctness tests (ctest label `gpu`): every kernel against the CPU scalar reference, with the same
// compressed-tensors bytes in, random data, odd shapes (K not a multiple of 256, N not of 128) and outputs
// poisoned with NaN before each run. They GTEST_SKIP when there is no CUDA device.
//
// Error bounds (‖Y − Yref‖ / ‖Yref‖, Yref in double from the reference-dequantized weights):
//   weight-only GEMV (fp32 dequant + accumulation; only the output is rounded)    fp16 1e-3, bf16 6e-3
//   weight-only MMA  (weights rounded to fp16/bf16 in shared memory, fp32 accum)  fp16 2e-3, bf16 1e-2
//   int8 W8A8 vs the reference with the same (bit-exact) quantized activations    fp16 1e-3, bf16 6e-3
//   fp8 W8A8 vs the reference with the same quantized activations                 fp16 3e-3, bf16 1e-2
//   cuBLAS baseline                                                               fp16 1e-3, bf16 6e-3
// (fp16 / bf16 round to 11 / 8 significant bits: a relative error of at most 2^-12 / 2^-9 per element.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cuda/cuda_gemm.h"
#include "cuda/gemm_cases.h"
#include "io/dtype.h"
#include "util/error.h"

namespace lowbit::cuda {
namespace {

using testing::Activations;
using testing::make_activations;
using testing::make_weight_only;
using testing::reference_product;
using testing::relative_error;
using testing::WeightOnlyCase;

#define REQUIRE_GPU() \
  if (!cuda_available()) GTEST_SKIP() << device_summary()

double bound(ActDType dt, double f16, double bf16) {
  return dt == ActDType::F16 ? f16 : bf16;
}

DeviceBuffer to_device(const std::vector<uint16_t>& v) {
  DeviceBuffer b(v.size() * 2);
  b.upload(v.data(), v.size() * 2);
  return b;
}

// Runs `op` into a NaN-poisoned [m, n] output and returns it.
template <typename Op>
std::vector<uint16_t> run_poisoned(Context& ctx, int64_t m, int64_t n, Op op) {
  DeviceBuffer y(static_cast<size_t>(m * n) * 2);
  y.fill_bytes(0xff);
  op(y.data());
  ctx.synchronize();
  std::vector<uint16_t> out(static_cast<size_t>(m * n));
  y.download(out.data(), out.size() * 2);
  return out;
}

const WeightOnlyCase kWeightOnlyCases[] = {
    {4, 200, 1408, 128, true}, {4, 200, 1408, 128, false}, {4, 131, 1120, 32, true},
    {4, 131, 1120, 32, false}, {4, 77, 960, 64, true},     {4, 77, 960, 64, false},
    {4, 150, 999, 0, true},    {4, 150, 1000, 0, false},   {8, 200, 1408, 128, true},
    {8, 131, 1120, 32, false}, {8, 150, 999, 0, false},    {8, 77, 960, 64, true},
};

TEST(CudaGemm, WeightOnlyMatchesReference) {
  REQUIRE_GPU();
  Context ctx;
  for (const auto& c : kWeightOnlyCases) {
    const auto q = make_weight_only(c, 11);
    for (ActDType dt : {ActDType::F16, ActDType::BF16}) {
      const DeviceWeightOnly w = upload_weight_only(relayout_weight_only(q.view(c), dt, "w"));
      for (int64_t m : {1, 3, 4, 7, 16, 33, 130}) {
        const Activations a = make_activations(m, c.k, dt, static_cast<uint32_t>(100 + m));
        const std::vector<double> ref = reference_product(a.values, q.dequant, m, c.n, c.k);
        const DeviceBuffer x = to_device(a.bits);
        for (WeightOnlyKernel kernel :
             {WeightOnlyKernel::Auto, WeightOnlyKernel::Gemv, WeightOnlyKernel::Mma}) {
          SCOPED_TRACE(c.name() + " " + to_string(dt) + " m=" + std::to_string(m) + " " + to_string(kernel));
          const auto y = run_poisoned(
              ctx, m, c.n, [&](void* out) { gemm_weight_only(ctx, w, x.data(), m, out, dt, kernel); });
          const bool mma = plan_weight_only(m, kernel).kernel == WeightOnlyKernel::Mma;
          const double err = relative_error(y, dt, ref);
          EXPECT_LT(err, mma ? bound(dt, 2e-3, 1e-2) : bound(dt, 1e-3, 6e-3));
        }
      }
    }
  }
}

TEST(CudaGemm, WeightOnlyRejectsMismatchedDtype) {
  REQUIRE_GPU();
  Context ctx;
  const WeightOnlyCase c{4, 8, 128, 128, true};
  const auto q = make_weight_only(c, 12);
  const DeviceWeightOnly w = upload_weight_only(relayout_weight_only(q.view(c), ActDType::F16, "w"));
  DeviceBuffer x(128 * 2), y(8 * 2);
  EXPECT_THROW(gemm_weight_only(ctx, w, x.data(), 1, y.data(), ActDType::BF16), Error);
}

TEST(CudaGemm, WeightOnlyHandlesUnalignedActivations) {
  REQUIRE_GPU();
  Context ctx;
  const WeightOnlyCase c{4, 64, 256, 128, false};
  const auto q = make_weight_only(c, 13);
  const DeviceWeightOnly w = upload_weight_only(relayout_weight_only(q.view(c), ActDType::F16, "w"));
  for (int64_t m : {1, 5, 40}) {
    const Activations a = make_activations(m, c.k, ActDType::F16, static_cast<uint32_t>(500 + m));
    std::vector<uint16_t> shifted(a.bits.size() + 1, 0);  // X starts 2 bytes into the buffer
    std::copy(a.bits.begin(), a.bits.end(), shifted.begin() + 1);
    const DeviceBuffer x = to_device(shifted);
    const void* x_unaligned = static_cast<const uint16_t*>(x.data()) + 1;
    const auto y = run_poisoned(
        ctx, m, c.n, [&](void* out) { gemm_weight_only(ctx, w, x_unaligned, m, out, ActDType::F16); });
    EXPECT_LT(relative_error(y, ActDType::F16, reference_product(a.values, q.dequant, m, c.n, c.k)), 2e-3)
        << "m=" << m;
  }
}

// W8A8 int8 weights quantized per channel with the reference quantizer.
struct Int8Case {
  int64_t n, k;
};

TEST(CudaGemm, Int8ActivationQuantizationIsBitExact) {
  REQUIRE_GPU();
  Context ctx;
  for (ActDType dt : {ActDType::F16, ActDType::BF16}) {
    const int64_t m = 37, k = 1000, kp = round_up(k, kInt8KAlign);
    const Activations a = make_activations(m, k, dt, 21);
    std::vector<int8_t> q_ref(static_cast<size_t>(m * kp)), q(q_ref.size());
    std::vector<float> s_ref(static_cast<size_t>(m)), s(s_ref.size());
    quantize_act_int8_ref(a.bits.data(), dt, m, k, kp, q_ref.data(), s_ref.data());
    const DeviceBuffer x = to_device(a.bits);
    DeviceBuffer dq(q.size()), ds(s.size() * 4);
    dq.fill_bytes(0x55);
    quantize_act_int8(ctx, x.data(), dt, m, k, kp, dq.data(), ds.data());
    ctx.synchronize();
    dq.download(q.data(), q.size());
    ds.download(s.data(), s.size() * 4);
    EXPECT_EQ(q, q_ref) << to_string(dt);
    EXPECT_EQ(s, s_ref) << to_string(dt);
  }
}

TEST(CudaGemm, Int8MatchesReference) {
  REQUIRE_GPU();
  Context ctx;
  for (const Int8Case c : {Int8Case{200, 1408}, Int8Case{131, 1000}, Int8Case{77, 960}}) {
    QuantArgs args;
    args.num_bits = 8;
    args.strategy = QuantStrategy::Channel;
    args.group_size = -1;
    validate_quant_args(args, true, "int8 weight");
    const std::vector<float> wf = testing::random_normal(static_cast<size_t>(c.n * c.k), 31, 0.05f);
    std::vector<int8_t> codes(wf.size());
    std::vector<float> scales(static_cast<size_t>(c.n)), wdeq(wf.size());
    quantize_int_ref(wf.data(), c.n, c.k, args, codes.data(), scales.data(), nullptr);
    dequantize_int_ref(codes.data(), c.n, c.k, args, scales.data(), nullptr, wdeq.data());
    const DeviceInt8Weight w = upload_int8(relayout_int8(codes.data(), scales.data(), c.n, c.k, "w"));
    for (ActDType dt : {ActDType::F16, ActDType::BF16}) {
      for (int64_t m : {1, 16, 65, 257}) {
        SCOPED_TRACE("n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " " + to_string(dt) +
                     " m=" + std::to_string(m));
        const Activations a = make_activations(m, c.k, dt, static_cast<uint32_t>(200 + m));
        // Reference: the same per-token quantization of X (bit-exact with the GPU pass), then exact sums.
        const int64_t kp = round_up(c.k, kInt8KAlign);
        std::vector<int8_t> xq(static_cast<size_t>(m * kp));
        std::vector<float> xs(static_cast<size_t>(m));
        quantize_act_int8_ref(a.bits.data(), dt, m, c.k, kp, xq.data(), xs.data());
        std::vector<float> xdeq(static_cast<size_t>(m * c.k));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t t = 0; t < c.k; ++t)
            xdeq[static_cast<size_t>(i * c.k + t)] =
                xq[static_cast<size_t>(i * kp + t)] * xs[static_cast<size_t>(i)];
        const DeviceBuffer x = to_device(a.bits);
        const auto y = run_poisoned(ctx, m, c.n, [&](void* out) { gemm_int8(ctx, w, x.data(), m, out, dt); });
        EXPECT_LT(relative_error(y, dt, reference_product(xdeq, wdeq, m, c.n, c.k)), bound(dt, 1e-3, 6e-3));
        // And the quantization as a whole stays close to the unquantized-activation product.
        EXPECT_LT(relative_error(y, dt, reference_product(a.values, wdeq, m, c.n, c.k)), 3e-2);
      }
    }
  }
}

TEST(CudaGemm, Fp8MatchesReference) {
  REQUIRE_GPU();
  if (device_compute_capability() < 89) GTEST_SKIP() << "fp8 needs sm_89+: " << device_summary();
  Context ctx;
  const int64_t n = 200, k = 1000;  // k_padded = 1008 for cuBLASLt
  for (bool per_channel : {false, true}) {
    QuantArgs args;
    args.num_bits = 8;
    args.type = QuantType::Float;
    args.strategy = per_channel ? QuantStrategy::Channel : QuantStrategy::Tensor;
    if (per_channel) args.group_size = -1;
    validate_quant_args(args, true, "fp8 weight");
    const std::vector<float> wf = testing::random_normal(static_cast<size_t>(n * k), 41, 0.05f);
    std::vector<uint8_t> codes(wf.size());
    std::vector<float> scales(per_channel ? static_cast<size_t>(n) : 1), wdeq(wf.size());
    quantize_fp8_ref(wf.data(), n, k, args, codes.data(), scales.data());
    dequantize_fp8_ref(codes.data(), n, k, args, scales.data(), wdeq.data());
    const DeviceFp8Weight w = upload_fp8(relayout_fp8(codes.data(), scales.data(), per_channel, n, k, "w"));
    for (Fp8ActScale mode : {Fp8ActScale::PerTensor, Fp8ActScale::PerToken}) {
      for (ActDType dt : {ActDType::F16, ActDType::BF16}) {
        for (int64_t m : {1, 16, 130}) {
          SCOPED_TRACE(std::string(per_channel ? "per-channel" : "per-tensor") + " weights, " +
                       (mode == Fp8ActScale::PerToken ? "per-token" : "per-tensor") + " acts, " +
                       to_string(dt) + " m=" + std::to_string(m));
          const Activations a = make_activations(m, k, dt, static_cast<uint32_t>(300 + m));
          const int64_t kp = round_up(k, kFp8KAlign);
          std::vector<uint8_t> xq(static_cast<size_t>(m * kp));
          std::vector<float> xs(static_cast<size_t>(m));
          quantize_act_fp8_ref(a.bits.data(), dt, m, k, kp, mode, xq.data(), xs.data());
          std::vector<float> xdeq(static_cast<size_t>(m * k));
          for (int64_t i = 0; i < m; ++i)
            for (int64_t t = 0; t < k; ++t)
              xdeq[static_cast<size_t>(i * k + t)] =
                  e4m3_to_f32(xq[static_cast<size_t>(i * kp + t)]) *
                  xs[mode == Fp8ActScale::PerToken ? static_cast<size_t>(i) : 0];
          const DeviceBuffer x = to_device(a.bits);
          const auto y =
              run_poisoned(ctx, m, n, [&](void* out) { gemm_fp8(ctx, w, x.data(), m, out, dt, mode); });
          EXPECT_LT(relative_error(y, dt, reference_product(xdeq, wdeq, m, n, k)), bound(dt, 3e-3, 1e-2));
          EXPECT_LT(relative_error(y, dt, reference_product(a.values, wdeq, m, n, k)), 8e-2);
        }
      }
    }
  }
}

TEST(CudaGemm, Fp8ActivationQuantizationIsBitExact) {
  REQUIRE_GPU();
  Context ctx;
  const int64_t m = 19, k = 1000, kp = round_up(k, kFp8KAlign);
  for (Fp8ActScale mode : {Fp8ActScale::PerTensor, Fp8ActScale::PerToken}) {
    const Activations a = make_activations(m, k, ActDType::BF16, 51);
    const size_t scales = mode == Fp8ActScale::PerToken ? static_cast<size_t>(m) : 1;
    std::vector<uint8_t> q_ref(static_cast<size_t>(m * kp)), q(q_ref.size());
    std::vector<float> s_ref(scales), s(scales);
    quantize_act_fp8_ref(a.bits.data(), ActDType::BF16, m, k, kp, mode, q_ref.data(), s_ref.data());
    const DeviceBuffer x = to_device(a.bits);
    DeviceBuffer dq(q.size()), ds(scales * 4);
    dq.fill_bytes(0x55);
    quantize_act_fp8(ctx, x.data(), ActDType::BF16, m, k, kp, mode, dq.data(), ds.data());
    ctx.synchronize();
    dq.download(q.data(), q.size());
    ds.download(s.data(), scales * 4);
    EXPECT_EQ(q, q_ref);
    EXPECT_EQ(s, s_ref);
  }
}

TEST(CudaGemm, DenseBaselineMatchesReference) {
  REQUIRE_GPU();
  Context ctx;
  const int64_t n = 131, k = 1000;
  for (ActDType dt : {ActDType::F16, ActDType::BF16}) {
    const Activations wa = make_activations(n, k, dt, 61);
    const DeviceBuffer w = to_device(wa.bits);
    for (int64_t m : {1, 16, 130}) {
      const Activations a = make_activations(m, k, dt, static_cast<uint32_t>(400 + m));
      const DeviceBuffer x = to_device(a.bits);
      const auto y =
          run_poisoned(ctx, m, n, [&](void* out) { gemm_dense(ctx, w.data(), n, k, x.data(), m, out, dt); });
      EXPECT_LT(relative_error(y, dt, reference_product(a.values, wa.values, m, n, k)), bound(dt, 1e-3, 6e-3))
          << to_string(dt) << " m=" << m;
    }
  }
}

TEST(CudaGemm, NoDeviceMeansCleanErrors) {
  if (cuda_available()) GTEST_SKIP() << "a device is present";
  EXPECT_FALSE(cuda_available());
  EXPECT_EQ(device_compute_capability(), 0);
  EXPECT_THROW(Context(), Error);
}

}  // namespace
}  // namespace lowbit::cuda

// gptq_quantize: column order, qparams, Hessian preparation and the blocked column loop (see quant/gptq.h).
#include "quant/gptq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "quant/observer.h"
#include "quant/quantizer_ref.h"
#include "quant/quantizer_ref_detail.h"
#include "quant/scale_grid.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {
namespace {

using detail::rnd;

std::optional<ActOrder> resolve_actorder(const std::string& name, const QuantArgs& args,
                                         const GptqOptions& options) {
  if (options.actorder && args.actorder && *options.actorder != *args.actorder) {
    fail("module {}: GPTQ actorder '{}' conflicts with the scheme's weights actorder '{}'", name,
         to_string(*options.actorder), to_string(*args.actorder));
  }
  return options.actorder ? options.actorder : args.actorder;
}

void check_request(const std::string& name, const float* w, int64_t rows, int64_t cols,
                   const QuantScheme& scheme, const double* hessian, const GptqOptions& options) {
  if (!scheme.weights) fail("module {}: its scheme quantizes no weights (GPTQ quantizes weights)", name);
  const QuantArgs& args = *scheme.weights;
  if (rows <= 0 || cols <= 0) fail("module {}: invalid weight shape [{}, {}]", name, rows, cols);
  if (w == nullptr) fail("module {}: null weight", name);
  if (hessian == nullptr) fail("module {}: null Hessian (expected {} x {})", name, cols, cols);
  if (args.is_dynamic())
    fail("module {}: dynamic weight quantization ({}) cannot use GPTQ", name, describe(args));
  if (args.type == QuantType::Float && (args.num_bits != 8 || !args.symmetric)) {
    fail("module {}: GPTQ supports float weights only as symmetric fp8, not {}", name, describe(args));
  }
  if (options.block_size <= 0)
    fail("module {}: GPTQ block size must be positive, got {}", name, options.block_size);
  if (!(options.dampening_frac >= 0) || !std::isfinite(options.dampening_frac))
    fail("module {}: GPTQ dampening_frac must be a finite value >= 0, got {}", name, options.dampening_frac);
  if (options.damping_retries < 0)
    fail("module {}: GPTQ damping_retries must be >= 0, got {}", name, options.damping_retries);
}

// Processing position -> original column: identity, or descending diag(H) (stable, ties by index).
std::vector<int64_t> column_order(const double* hessian, int64_t cols, bool by_activation) {
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (by_activation) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return hessian[a * cols + a] > hessian[b * cols + b]; });
  }
  return perm;
}

// Qparams of x (rows x cols) per cell of `grid`, with the weight observer of `args` (min-max or MSE).
void observe_qparams(const float* x, const ScaleGrid& grid, const QuantArgs& args, ComputeDType dt,
                     float* scales, int8_t* zero_points) {
  std::vector<float> lo(static_cast<size_t>(grid.size())), hi(static_cast<size_t>(grid.size()));
  if (observer_kind(args, /*for_weights=*/true) == ObserverKind::MemorylessMse) {
    observe_mse_ref(x, grid, args, mse_options(args), dt, lo.data(), hi.data());
  } else {
    observe_minmax_ref(x, grid, lo.data(), hi.data());
  }
  calculate_qparams_ref(lo.data(), hi.data(), grid.size(), args, dt, scales, zero_points);
}

// Rounds one fp32 working weight with its cell's qparams the way compressed-tensors' fake_quantize does
// inside llm-compressor's GPTQ: w / s (+ zp) in fp32, clamp, round; the dequantized value in the scale's
// dtype. Stores the code and returns the dequantized value.
struct ColumnRounder {
  const QuantArgs& args;
  ComputeDType dt;
  float qmin, qmax;

  float round_int(float w, float s, const int8_t* zp, int8_t* code) const {
    float t = w / s;
    if (zp != nullptr) t += static_cast<float>(*zp);
    *code = detail::float_to_code(std::clamp(t, qmin, qmax));
    float q = static_cast<float>(*code);
    if (zp != nullptr) q = rnd(q - static_cast<float>(*zp), dt);
    return rnd(q * s, dt);
  }

  float round_fp8(float w, float s, uint8_t* code) const {
    const float t = std::clamp(w / s, qmin, qmax);
    if (args.float_format == FloatFormat::E4M3) {
      *code = f32_to_e4m3(t);
      return rnd(e4m3_to_f32(*code) * s, dt);
    }
    *code = f32_to_e5m2(t);
    return rnd(e5m2_to_f32(*code) * s, dt);
  }
};

// Everything the column loop of one row panel reads; rows are independent given Hinv and the qparams.
struct LoopInputs {
  int64_t cols, block;
  const float* hinv;                     // cols x cols upper factor, fp32, processing order
  const std::vector<int64_t>* perm;      // processing position -> original column
  const std::vector<int64_t>* cell_col;  // processing position -> scale column
  const ScaleGrid* grid;
  const float* scales;
  const int8_t* zero_points;  // null when symmetric
  ColumnRounder rounder;
};

// Runs GPTQ on rows [r0, r1) of the working weights w (processing order), writing codes in the original
// column order; returns the panel's loss.
double gptq_panel(const LoopInputs& in, float* w, int8_t* int_codes, uint8_t* fp8_codes, int64_t r0,
                  int64_t r1) {
  const int64_t n = in.cols, pr = r1 - r0;
  std::vector<float> err(static_cast<size_t>(pr * in.block));
  double loss = 0;
  for (int64_t i1 = 0; i1 < n; i1 += in.block) {
    const int64_t i2 = std::min(i1 + in.block, n);
    for (int64_t r = r0; r < r1; ++r) {
      float* wr = w + r * n;
      float* er = err.data() + (r - r0) * in.block;
      const int64_t cell_row = (in.grid->scale_rows == 1 ? 0 : r) * in.grid->scale_cols;
      for (int64_t i = i1; i < i2; ++i) {
        const int64_t cell = cell_row + (*in.cell_col)[static_cast<size_t>(i)];
        const int64_t out = r * n + (*in.perm)[static_cast<size_t>(i)];
        const float wv = wr[i];
        const float qv =
            int_codes != nullptr
                ? in.rounder.round_int(wv, in.scales[cell],
                                       in.zero_points != nullptr ? in.zero_points + cell : nullptr,
                                       int_codes + out)
                : in.rounder.round_fp8(wv, in.scales[cell], fp8_codes + out);
        const float* hrow = in.hinv + i * n;
        const float e = (wv - qv) / hrow[i];
        loss += 0.5 * static_cast<double>(e) * static_cast<double>(e);
        er[i - i1] = e;
        wr[i] = qv;
        // Two roundings per element, as torch's `W1[:, i:] -= err * Hinv1[i, i:]` (no FMA: this file is
        // compiled with -ffp-contract=off).
        for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * hrow[j];
      }
    }
    // Lazy batch update of the columns after the block: W[:, i2:] -= Err @ Hinv[i1:i2, i2:].
    if (i2 < n) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(pr),
                  static_cast<blasint>(n - i2), static_cast<blasint>(i2 - i1), -1.0f, err.data(),
                  static_cast<blasint>(in.block), in.hinv + i1 * n + i2, static_cast<blasint>(n), 1.0f,
                  w + r0 * n + i2, static_cast<blasint>(n));
    }
  }
  return loss;
}

// The Hessian in processing order, checked for finite values.
std::vector<double> permuted_hessian(const std::string& name, const double* hessian, int64_t n,
                                     const std::vector<int64_t>& perm) {
  std::vector<double> h(static_cast<size_t>(n * n));
  for (int64_t p = 0; p < n; ++p) {
    const double* src = hessian + perm[static_cast<size_t>(p)] * n;
    double* dst = h.data() + p * n;
    for (int64_t q = 0; q < n; ++q) {
      const double v = src[perm[static_cast<size_t>(q)]];
      if (!std::isfinite(v)) {
        fail("module {}: Hessian entry [{}, {}] is {} (cols {})", name, perm[static_cast<size_t>(p)],
             perm[static_cast<size_t>(q)], v, n);
      }
      dst[q] = v;
    }
  }
  return h;
}

// Dead columns, damping with retries, factorization; falls back to the identity (RTN). Returns Hinv (fp32).
std::vector<float> inverse_factor(const std::string& name, std::vector<double> h, int64_t n, float* w,
                                  int64_t rows, const GptqOptions& options, GptqStats& stats) {
  double diag_sum = 0;
  for (int64_t c = 0; c < n; ++c) {
    double& d = h[static_cast<size_t>(c * n + c)];
    if (d == 0) {
      d = 1;
      ++stats.dead_columns;
      for (int64_t r = 0; r < rows; ++r) w[r * n + c] = 0;
    }
    diag_sum += d;
  }
  double lambda = options.dampening_frac * diag_sum / static_cast<double>(n);
  const double first_lambda = lambda;
  std::vector<double> factor;
  bool ok = false;
  for (int attempt = 0; attempt <= options.damping_retries && !ok; ++attempt) {
    if (attempt > 0)
      lambda = lambda > 0 ? lambda * 10 : 1e-6 * std::max(diag_sum / static_cast<double>(n), 1e-30);
    factor = h;
    ok = gptq_inverse_factor(factor, n, lambda);
    stats.damping_tries = attempt + 1;
  }
  std::vector<float> hinv(static_cast<size_t>(n * n), 0.0f);
  if (ok) {
    stats.damping = lambda;
    for (size_t i = 0; i < hinv.size(); ++i) hinv[i] = static_cast<float>(factor[i]);
    if (stats.damping_tries > 1) {
      stats.warning = fmt::format(
          "module {}: the damped Hessian was not positive definite with damping {:.3g}; GPTQ used {:.3g} "
          "({} tries)",
          name, first_lambda, lambda, stats.damping_tries);
    }
  } else {
    stats.damping = lambda;
    stats.fell_back_to_rtn = true;
    for (int64_t i = 0; i < n; ++i) hinv[static_cast<size_t>(i * n + i)] = 1.0f;
    stats.warning = fmt::format(
        "module {}: the Hessian could not be inverted (not positive definite with damping {:.3g} .. {:.3g}, "
        "{} "
        "tries); quantized with round-to-nearest instead of GPTQ. More or more varied calibration samples, "
        "or "
        "a larger dampening_frac, usually help",
        name, first_lambda, lambda, stats.damping_tries);
  }
  return hinv;
}

}  // namespace

ModuleQuantization gptq_quantize(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                 DType weight_dtype, const QuantScheme& scheme, const double* hessian,
                                 const GptqOptions& options, GptqStats* stats_out) {
  check_request(name, w, rows, cols, scheme, hessian, options);
  const QuantArgs& args = *scheme.weights;
  const ScaleGrid grid = make_scale_grid(args, rows, cols, name);
  const std::optional<ActOrder> actorder = resolve_actorder(name, args, options);
  const bool permuted_groups = actorder == ActOrder::Group && args.strategy == QuantStrategy::Group;

  ModuleQuantization q;
  q.name = name;
  q.scheme = &scheme;
  q.rows = rows;
  q.cols = cols;
  q.weight_dtype = weight_dtype;
  q.compute = compute_dtype_for(weight_dtype);
  q.scale_rows = grid.scale_rows;
  q.scale_cols = grid.scale_cols;
  q.scales.resize(static_cast<size_t>(grid.size()));
  if (!args.symmetric) q.zero_points.resize(q.scales.size());
  const ComputeDType dt = q.compute;

  // Working weights in processing order (bf16 weights are bf16 values, upcast exactly).
  const std::vector<int64_t> perm = column_order(hessian, cols, actorder.has_value());
  std::vector<float> work(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = 0; p < cols; ++p) {
      const float v = w[r * cols + perm[static_cast<size_t>(p)]];
      if (!std::isfinite(v))
        fail("module {}: weight [{}, {}] is {} (shape [{}, {}])", name, r, perm[static_cast<size_t>(p)], v,
             rows, cols);
      work[static_cast<size_t>(r * cols + p)] = rnd(v, dt);
    }
  }

  // Qparams up front: on the permuted weights for actorder group, else on the original column order.
  int8_t* zps = args.symmetric ? nullptr : q.zero_points.data();
  if (permuted_groups) {
    observe_qparams(work.data(), grid, args, dt, q.scales.data(), zps);
  } else {
    const std::vector<float> original = detail::inputs_in(w, rows * cols, dt);
    observe_qparams(original.data(), grid, args, dt, q.scales.data(), zps);
  }
  std::vector<int64_t> cell_col(static_cast<size_t>(cols), 0);
  if (args.strategy == QuantStrategy::Group) {
    for (int64_t p = 0; p < cols; ++p)
      cell_col[static_cast<size_t>(p)] = (permuted_groups ? p : perm[static_cast<size_t>(p)]) / grid.group;
  }
  if (permuted_groups) {
    q.g_idx.resize(static_cast<size_t>(cols));
    for (int64_t p = 0; p < cols; ++p)
      q.g_idx[static_cast<size_t>(perm[static_cast<size_t>(p)])] = static_cast<int32_t>(p / grid.group);
  }

  GptqStats stats;
  const std::vector<float> hinv = inverse_factor(name, permuted_hessian(name, hessian, cols, perm), cols,
                                                 work.data(), rows, options, stats);

  if (args.type == QuantType::Int) {
    q.int_codes.resize(work.size());
  } else {
    q.fp8_codes.resize(work.size());
  }
  const LoopInputs in{cols,
                      std::min(options.block_size, cols),
                      hinv.data(),
                      &perm,
                      &cell_col,
                      &grid,
                      q.scales.data(),
                      zps,
                      ColumnRounder{args, dt, args.q_min(), args.q_max()}};
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  std::mutex loss_mutex;
  global_pool().parallel_for(static_cast<size_t>(rows), 16, [&](size_t r0, size_t r1) {
    const double loss = gptq_panel(in, work.data(), q.int_codes.empty() ? nullptr : q.int_codes.data(),
                                   q.fp8_codes.empty() ? nullptr : q.fp8_codes.data(),
                                   static_cast<int64_t>(r0), static_cast<int64_t>(r1));
    std::lock_guard<std::mutex> lock(loss_mutex);
    stats.loss += loss;
  });
  if (stats_out != nullptr) *stats_out = stats;
  return q;
}

ModuleQuantization gptq_quantize(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                 DType weight_dtype, const QuantScheme& scheme,
                                 const std::vector<double>& hessian, const GptqOptions& options,
                                 GptqStats* stats) {
  if (cols < 0 || hessian.size() != static_cast<size_t>(cols) * static_cast<size_t>(cols)) {
    fail("module {}: the Hessian has {} entries, expected {} x {} for weight [{}, {}]", name, hessian.size(),
         cols, cols, rows, cols);
  }
  return gptq_quantize(name, w, rows, cols, weight_dtype, scheme, hessian.data(), options, stats);
}

}  // namespace lowbit

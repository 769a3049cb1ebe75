// AWQ scales, grid search, scaled fake quantization, Hessian output error and clipping; see awq.h for the
// semantics followed and where they come from.
#include "quant/awq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "quant/quantizer.h"
#include "runtime/kernels_hwy.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit {
namespace {

// A double result stored in the compute dtype as torch stores it: through float (torch converts fp64 to
// bf16 via fp32, so a value just off a bf16 tie is rounded twice; reproduced on purpose).
float to_dtype(double v, ComputeDType dt) {
  const float f = static_cast<float>(v);
  return dt == ComputeDType::BF16 ? round_to_bf16(f) : f;
}

// Runs fn(first_chunk, last_chunk) over fixed chunks of `chunk` rows on the global pool. The chunks do not
// depend on the pool size, so per-chunk results (and sums over them in chunk order) are deterministic.
void for_row_chunks(int64_t rows, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n = (rows + chunk - 1) / chunk;
  if (n <= 1) {
    if (n == 1) fn(0, rows);
    return;
  }
  global_pool().parallel_for(static_cast<size_t>(n), 1, [&](size_t b, size_t e) {
    for (size_t c = b; c < e; ++c) {
      const int64_t r0 = static_cast<int64_t>(c) * chunk;
      fn(r0, std::min(rows, r0 + chunk));
    }
  });
}

// OpenBLAS runs single-threaded inside our pool's jobs (as the runtime kernels do).
void pin_openblas() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

// P = D * H for a row-major m x n block D and a symmetric n x n H, in fp32; returns the m row sums of
// D .* P in double.
void quadratic_forms(const float* d, int64_t m, int64_t n, const float* h, std::vector<float>& p,
                     double* out) {
  p.resize(static_cast<size_t>(m * n));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(n), 1.0f, d, static_cast<blasint>(n), h, static_cast<blasint>(n), 0.0f,
              p.data(), static_cast<blasint>(n));
  for (int64_t i = 0; i < m; ++i) {
    double acc = 0;
    for (int64_t j = 0; j < n; ++j) acc += double(d[i * n + j]) * double(p[static_cast<size_t>(i * n + j)]);
    out[i] = acc;
  }
}

void check_scales(const float* s, int64_t n, const char* where) {
  for (int64_t j = 0; j < n; ++j) {
    if (!(s[j] > 0.0f) || !std::isfinite(s[j]))
      fail("{}: scale {} of channel {} is not positive and finite", where, s[j], j);
  }
}

}  // namespace

std::vector<AwqGridPoint> awq_grid(int n_grid, AwqDuoScaling duo) {
  std::vector<AwqGridPoint> grid;
  switch (duo) {
    case AwqDuoScaling::Off:
      if (n_grid < 2) fail("AWQ: n_grid {} is too small (at least 2 without duo scaling)", n_grid);
      for (int i = 0; i < n_grid; ++i) grid.push_back({static_cast<double>(i) / (n_grid - 1), false});
      break;
    case AwqDuoScaling::On:
      if (n_grid < 3) fail("AWQ: n_grid {} is too small (at least 3 with duo scaling)", n_grid);
      grid.push_back({0.0, false});  // the identity scales, as llm-compressor includes them
      for (int i = 0; i < n_grid - 1; ++i) grid.push_back({static_cast<double>(i) / (n_grid - 2), true});
      break;
    case AwqDuoScaling::Both: {
      const int m = n_grid / 2;
      if (m < 2) fail("AWQ: n_grid {} is too small (at least 4 with duo scaling \"both\")", n_grid);
      for (int i = 0; i < m; ++i) {
        grid.push_back({static_cast<double>(i) / (m - 1), false});
        grid.push_back({static_cast<double>(i) / (m - 1), true});
      }
      break;
    }
  }
  return grid;
}

std::vector<float> awq_weight_mean(std::span<const WeightRef> balance, int64_t group_size, ComputeDType dt) {
  if (balance.empty()) fail("awq_weight_mean: no balance layers");
  const int64_t cols = balance[0].cols;
  if (cols <= 0) fail("awq_weight_mean: balance layer 0 has {} columns", cols);
  const int64_t chunk = group_size > 0 && group_size < cols ? group_size : cols;
  if (cols % chunk != 0) {
    fail("awq_weight_mean: group size {} does not divide the {} input columns", group_size, cols);
  }
  std::vector<double> sum(static_cast<size_t>(cols), 0.0);
  int64_t total_rows = 0;
  for (size_t b = 0; b < balance.size(); ++b) {
    const WeightRef& w = balance[b];
    if (w.cols != cols) {
      fail("awq_weight_mean: balance layer {} is {}x{}, expected {} input columns", b, w.rows, w.cols, cols);
    }
    for (int64_t i = 0; i < w.rows; ++i) {
      for (int64_t c0 = 0; c0 < cols; c0 += chunk) {
        const float* v = w.data + i * cols + c0;
        float amax = 0.0f;
        for (int64_t j = 0; j < chunk; ++j) amax = std::max(amax, to_dtype(std::fabs(v[j]), dt));
        // torch: weight.div_(weight.amax(...) + 1e-6), each op in the weight's dtype.
        const float denom = to_dtype(static_cast<double>(amax) + static_cast<double>(1e-6f), dt);
        for (int64_t j = 0; j < chunk; ++j) {
          const double a = to_dtype(std::fabs(v[j]), dt);
          sum[static_cast<size_t>(c0 + j)] += to_dtype(a / denom, dt);
        }
      }
    }
    total_rows += w.rows;
  }
  if (total_rows == 0) fail("awq_weight_mean: the balance layers have no rows");
  std::vector<float> mean(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    mean[static_cast<size_t>(j)] =
        static_cast<float>(sum[static_cast<size_t>(j)] / static_cast<double>(total_rows));
  }
  return mean;
}

std::vector<float> awq_scales(const float* x_mean, const float* w_mean, int64_t cols, double ratio,
                              bool duo_scaling) {
  if (cols <= 0) fail("awq_scales: {} channels", cols);
  if (duo_scaling && w_mean == nullptr) fail("awq_scales: duo scaling needs the weight means");
  if (!(ratio >= 0.0 && ratio <= 1.0)) fail("awq_scales: ratio {} is not in [0, 1]", ratio);
  std::vector<double> s(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    double v = std::pow(static_cast<double>(x_mean[j]), ratio);
    if (duo_scaling) v = v / (std::pow(static_cast<double>(w_mean[j]), 1.0 - ratio) + 1e-4);
    // torch.clamp(min=1e-4) keeps NaN.
    s[static_cast<size_t>(j)] = std::isnan(v) ? v : std::max(v, 1e-4);
  }
  // torch max() / min() propagate NaN: one NaN makes the normalizer NaN and every scale then becomes 1.
  double mx = -INFINITY, mn = INFINITY;
  bool nan = false;
  for (double v : s) {
    nan |= std::isnan(v);
    mx = std::max(mx, v);
    mn = std::min(mn, v);
  }
  const double norm = nan ? NAN : std::sqrt(mx * mn);
  std::vector<float> out(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const double v = s[static_cast<size_t>(j)] / norm;
    out[static_cast<size_t>(j)] = std::isfinite(v) ? static_cast<float>(v) : 1.0f;
  }
  return out;
}

AwqSearchResult awq_search(const float* x_mean, const float* w_mean, int64_t cols, int n_grid,
                           AwqDuoScaling duo,
                           const std::function<double(const std::vector<float>& scales)>& loss) {
  AwqSearchResult result;
  result.grid = awq_grid(n_grid, duo);
  double best = INFINITY;  // llm-compressor: best_error = inf, `loss < best_error` (NaN never wins)
  int best_index = -1;
  for (size_t i = 0; i < result.grid.size(); ++i) {
    const AwqGridPoint& p = result.grid[i];
    std::vector<float> scales = awq_scales(x_mean, w_mean, cols, p.ratio, p.duo);
    const double l = loss(scales);
    result.losses.push_back(l);
    if (i == 0) result.initial_loss = l;
    if (l < best) {
      best = l;
      best_index = static_cast<int>(i);
      result.scales = std::move(scales);
    }
  }
  if (best_index < 0) {
    fail("AWQ grid search: no finite loss among {} grid points (NaN or inf in the parent's outputs)",
         result.grid.size());
  }
  result.best_ratio = static_cast<float>(result.grid[static_cast<size_t>(best_index)].ratio);
  result.best_duo = result.grid[static_cast<size_t>(best_index)].duo;
  result.best_loss = best;
  return result;
}

AwqSearchResult awq_search(const float* x_mean, const float* w_mean, int64_t cols, int n_grid,
                           bool duo_scaling,
                           const std::function<double(const std::vector<float>& scales)>& loss) {
  return awq_search(x_mean, w_mean, cols, n_grid, duo_scaling ? AwqDuoScaling::On : AwqDuoScaling::Off, loss);
}

void awq_fake_quantize_scaled(const float* w, int64_t rows, int64_t cols, const float* s,
                              const QuantArgs& args, ComputeDType dt, float* out) {
  check_scales(s, cols, "awq_fake_quantize_scaled");
  // The products and quotients of two floats rounded once to float are exactly what double arithmetic
  // rounded to float gives (53 >= 2 * 24 + 2 bits: double rounding is innocuous for * and /), so float
  // arithmetic reproduces torch's fp64 W * s stored as float / bf16, with vectorized bf16 rounding.
  const bool bf16 = dt == ComputeDType::BF16;
  const auto scale_rows = [&](int64_t r0, int64_t r1, float* scaled) {
    for (int64_t r = r0; r < r1; ++r) {
      float* dst = scaled + (r - r0) * cols;
      const float* src = w + r * cols;
      for (int64_t j = 0; j < cols; ++j) dst[j] = src[j] * s[j];
      if (bf16) kernels::simd::round_bf16(dst, dst, static_cast<size_t>(cols));
    }
  };
  const auto unscale_rows = [&](int64_t r0, int64_t r1, const float* scaled) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = scaled + (r - r0) * cols;
      float* dst = out + r * cols;
      for (int64_t j = 0; j < cols; ++j) dst[j] = src[j] / s[j];
      if (bf16) kernels::simd::round_bf16(dst, dst, static_cast<size_t>(cols));
    }
  };
  if (args.strategy == QuantStrategy::Channel || args.strategy == QuantStrategy::Group) {
    // Row-local quantization parameters: each chunk of rows is scaled, quantized and unscaled while it is
    // in cache (the three passes over a whole 6 MB weight went to memory each time); the nested
    // quantization runs inline in the chunk's thread.
    const int64_t chunk = std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1));
    for_row_chunks(rows, chunk, [&](int64_t r0, int64_t r1) {
      std::vector<float> scaled(static_cast<size_t>((r1 - r0) * cols));
      scale_rows(r0, r1, scaled.data());
      fake_quantize_dynamic(scaled.data(), r1 - r0, cols, args, scaled.data(), dt);
      unscale_rows(r0, r1, scaled.data());
    });
    return;
  }
  std::vector<float> scaled(static_cast<size_t>(rows * cols));
  const int64_t chunk = std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
  for_row_chunks(rows, chunk, [&](int64_t r0, int64_t r1) { scale_rows(r0, r1, scaled.data() + r0 * cols); });
  fake_quantize_dynamic(scaled.data(), rows, cols, args, scaled.data(), dt);
  for_row_chunks(rows, chunk,
                 [&](int64_t r0, int64_t r1) { unscale_rows(r0, r1, scaled.data() + r0 * cols); });
}

double linear_output_error(const float* w_ref, const float* w_new, int64_t rows, int64_t cols,
                           const double* hessian) {
  if (rows <= 0 || cols <= 0) return 0.0;
  pin_openblas();
  // sum_r D_r H D_r^T = sum_ij H_ij G_ij with G = D^T D symmetric: only G's lower tiles are formed (half
  // the flops of D H), each by one fp32 GEMM, in parallel; per-tile sums are added in tile order. D is exact
  // in fp32 for bf16 weights (one rounding for fp32 ones), G's entries carry fp32 rounding over `rows` terms
  // (tests/quant/awq_test.cc bounds the total at 1e-6): twice the speed of fp64 GEMMs, with losses still far
  // more precise than the bf16 block outputs llm-compressor compares.
  std::vector<float> d(static_cast<size_t>(rows * cols));
  for_row_chunks(rows, std::max<int64_t>(1, 16384 / cols), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * cols; i < r1 * cols; ++i) d[static_cast<size_t>(i)] = w_new[i] - w_ref[i];
  });
  constexpr int64_t kTile = 256;
  const int64_t n = (cols + kTile - 1) / kTile;
  std::vector<std::pair<int64_t, int64_t>> tiles;  // (a, b), b <= a
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t b = 0; b <= a; ++b) tiles.emplace_back(a, b);
  }
  std::vector<double> per_tile(tiles.size(), 0.0);
  const auto run_tiles = [&](size_t first, size_t last) {
    std::vector<float> g(static_cast<size_t>(kTile * kTile));
    for (size_t k = first; k < last; ++k) {
      const auto [a, b] = tiles[k];
      const int64_t i0 = a * kTile, mi = std::min(kTile, cols - i0);
      const int64_t j0 = b * kTile, mj = std::min(kTile, cols - j0);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(mi), static_cast<blasint>(mj),
                  static_cast<blasint>(rows), 1.0f, d.data() + i0, static_cast<blasint>(cols), d.data() + j0,
                  static_cast<blasint>(cols), 0.0f, g.data(), static_cast<blasint>(mj));
      double lanes[8] = {};  // independent partial sums: one serial chain of double adds is latency bound
      for (int64_t i = 0; i < mi; ++i) {
        const double* h = hessian + (i0 + i) * cols + j0;
        const float* gi = g.data() + i * mj;
        int64_t j = 0;
        for (; j + 8 <= mj; j += 8)
          for (int64_t l = 0; l < 8; ++l) lanes[l] += h[j + l] * static_cast<double>(gi[j + l]);
        for (; j < mj; ++j) lanes[0] += h[j] * static_cast<double>(gi[j]);
      }
      const double acc =
          ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
      per_tile[k] = a == b ? acc : 2.0 * acc;  // an off-diagonal tile stands for its mirror image too
    }
  };
  if (tiles.size() == 1) {
    run_tiles(0, 1);
  } else {
    global_pool().parallel_for(tiles.size(), 1, run_tiles);
  }
  double total = 0;
  for (double v : per_tile) total += v;
  return total;
}

void divide_hessian(double* hessian, int64_t cols, const float* s) {
  check_scales(s, cols, "divide_hessian");
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      hessian[i * cols + j] /= static_cast<double>(s[i]) * static_cast<double>(s[j]);
    }
  }
}

double awq_clip_search(float* w, int64_t rows, int64_t cols, const QuantArgs& args, ComputeDType dt,
                       const double* hessian, int n_grid, float max_shrink, std::vector<float>* thresholds) {
  if (rows <= 0 || cols <= 0) fail("awq_clip_search: invalid weight shape [{}, {}]", rows, cols);
  int64_t group = cols;
  if (args.strategy == QuantStrategy::Group) {
    group = args.group_size.value_or(0);
    if (group <= 0 || cols % group != 0) {
      fail("awq_clip_search: group size {} does not divide the {} input columns", group, cols);
    }
  } else if (args.strategy != QuantStrategy::Channel) {
    fail("awq_clip_search: needs channel or group quantization, not {}", describe(args));
  }
  const int n_cand =
      static_cast<int>(max_shrink * static_cast<float>(n_grid));  // AutoAWQ: int(max_shrink * n_grid)
  if (n_grid <= 0 || n_cand < 1 || n_cand > n_grid) {
    fail("awq_clip_search: n_grid {} with max_shrink {} gives no candidate thresholds", n_grid, max_shrink);
  }
  const int64_t groups = cols / group;

  // Each candidate row of a group is quantized on its own: channel strategy over (rows x candidates, group).
  QuantArgs cand_args = args;
  cand_args.strategy = QuantStrategy::Channel;
  cand_args.group_size = -1;

  // The diagonal blocks H_gg, contiguous, in fp32: the candidates' errors are only ranked against each
  // other, and fp32 products halve the time of this search over every weight of the layer.
  std::vector<float> blocks(static_cast<size_t>(groups * group * group));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t a = 0; a < group; ++a) {
      const double* src = hessian + (g * group + a) * cols + g * group;
      std::copy(src, src + group, blocks.begin() + (g * group + a) * group);
    }
  }

  pin_openblas();
  std::vector<float> chosen(static_cast<size_t>(rows * groups));
  std::vector<double> reduction(static_cast<size_t>(rows * groups), 0.0);
  std::vector<char> counted(static_cast<size_t>(rows * groups), 0);
  constexpr int64_t kChunk = 16;
  for_row_chunks(rows, kChunk, [&](int64_t r0, int64_t r1) {
    const int64_t m = (r1 - r0) * n_cand;
    std::vector<float> cand(static_cast<size_t>(m * group)), thr(static_cast<size_t>(m));
    std::vector<float> d(static_cast<size_t>(m * group)), p;
    std::vector<double> err(static_cast<size_t>(m));
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* src = w + r * cols + g * group;
        float amax = 0.0f;
        for (int64_t j = 0; j < group; ++j) amax = std::max(amax, std::fabs(src[j]));
        for (int i = 0; i < n_cand; ++i) {
          const int64_t k = (r - r0) * n_cand + i;
          const float t = to_dtype(static_cast<double>(amax) * (1.0 - static_cast<double>(i) / n_grid), dt);
          thr[static_cast<size_t>(k)] = t;
          float* c = cand.data() + k * group;
          for (int64_t j = 0; j < group; ++j) c[j] = std::clamp(src[j], -t, t);
        }
      }
      fake_quantize_dynamic(cand.data(), m, group, cand_args, cand.data(), dt);
      for (int64_t k = 0; k < m; ++k) {
        const float* src = w + (r0 + k / n_cand) * cols + g * group;
        for (int64_t j = 0; j < group; ++j) {
          d[static_cast<size_t>(k * group + j)] = cand[static_cast<size_t>(k * group + j)] - src[j];
        }
      }
      quadratic_forms(d.data(), m, group, blocks.data() + g * group * group, p, err.data());
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t k0 = (r - r0) * n_cand;
        int64_t best = k0;  // i = 0: the group's own max, no clipping
        for (int64_t k = k0 + 1; k < k0 + n_cand; ++k) {
          if (err[static_cast<size_t>(k)] < err[static_cast<size_t>(best)]) best = k;
        }
        const size_t cell = static_cast<size_t>(r * groups + g);
        chosen[cell] = thr[static_cast<size_t>(best)];
        const double e0 = err[static_cast<size_t>(k0)];
        if (e0 > 0.0) {
          reduction[cell] = 1.0 - err[static_cast<size_t>(best)] / e0;
          counted[cell] = 1;
        }
      }
    }
  });

  // Clamp in place to the chosen thresholds.
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float t = chosen[static_cast<size_t>(r * groups + g)];
      float* v = w + r * cols + g * group;
      for (int64_t j = 0; j < group; ++j) v[j] = std::clamp(v[j], -t, t);
    }
  }
  if (thresholds != nullptr) *thresholds = chosen;
  double sum = 0;
  int64_t n = 0;
  for (size_t c = 0; c < reduction.size(); ++c) {
    if (counted[c]) sum += reduction[c], ++n;
  }
  return n > 0 ? sum / static_cast<double>(n) : 0.0;
}

}  // namespace lowbit

#include "eval/kl_divergence.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::eval {

namespace {

// log-softmax normaliser: max + log(sum exp(x - max)).
double log_sum_exp(std::span<const float> x) {
  const float mx = *std::max_element(x.begin(), x.end());
  double sum = 0.0;
  for (float v : x) sum += std::exp(static_cast<double>(v - mx));
  return static_cast<double>(mx) + std::log(sum);
}

size_t argmax(std::span<const float> x) {
  return static_cast<size_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

}  // namespace

double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits) {
  if (p_logits.size() != q_logits.size() || p_logits.empty()) {
    fail("kl_divergence: logit rows of {} and {} entries", p_logits.size(), q_logits.size());
  }
  const double lp = log_sum_exp(p_logits), lq = log_sum_exp(q_logits);
  double kl = 0.0;
  for (size_t i = 0; i < p_logits.size(); ++i) {
    const double log_p = static_cast<double>(p_logits[i]) - lp;
    const double log_q = static_cast<double>(q_logits[i]) - lq;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
}

KLDivergenceResult compare_models(const runtime::Transformer& base, const runtime::Transformer& quant,
                                  std::span<const int32_t> tokens, const PerplexityOptions& options,
                                  const PerplexityCallback& progress) {
  if (options.ctx < 2) fail("compare: ctx must be at least 2, got {}", options.ctx);
  if (options.stride != 0) fail("compare: only non-overlapping windows are supported (stride 0)");
  const int64_t vocab = base.config().vocab_size;
  if (quant.config().vocab_size != vocab) {
    fail("compare: the models have different vocabularies ({} and {} tokens)", vocab,
         quant.config().vocab_size);
  }
  if (options.max_tokens > 0 && static_cast<int64_t>(tokens.size()) > options.max_tokens) {
    tokens = tokens.first(static_cast<size_t>(options.max_tokens));
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t windows = n / options.ctx;
  if (windows == 0)
    fail("compare: the text has {} tokens, fewer than one window of ctx = {}", n, options.ctx);

  const auto start = std::chrono::steady_clock::now();
  runtime::Session base_session(base, options.ctx), quant_session(quant, options.ctx);
  std::vector<float> base_logits, quant_logits;
  std::vector<double> kls;
  double base_nll = 0.0, quant_nll = 0.0;
  int64_t agree = 0;
  const int64_t rows = options.ctx - 1;
  for (int64_t w = 0; w < windows; ++w) {
    const auto window =
        tokens.subspan(static_cast<size_t>(w * options.ctx), static_cast<size_t>(options.ctx));
    base_session.reset();
    quant_session.reset();
    base_session.forward(window, runtime::Logits::All, &base_logits);
    quant_session.forward(window, runtime::Logits::All, &quant_logits);
    std::vector<double> kl(static_cast<size_t>(rows)), nb(kl.size()), nq(kl.size());
    std::vector<char> same(kl.size());
    global_pool().parallel_for(static_cast<size_t>(rows), 16, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        const std::span<const float> p(base_logits.data() + i * static_cast<size_t>(vocab),
                                       static_cast<size_t>(vocab));
        const std::span<const float> q(quant_logits.data() + i * static_cast<size_t>(vocab),
                                       static_cast<size_t>(vocab));
        const int32_t target = window[i + 1];
        kl[i] = kl_divergence(p, q);
        nb[i] = token_nll(p, target);
        nq[i] = token_nll(q, target);
        same[i] = argmax(p) == argmax(q);
      }
    });
    for (size_t i = 0; i < kl.size(); ++i) {  // fixed order: independent of the thread count
      base_nll += nb[i];
      quant_nll += nq[i];
      agree += same[i];
      kls.push_back(kl[i]);
    }
    if (progress) {
      const int64_t scored = (w + 1) * rows;
      progress({w + 1, windows, scored, std::exp(quant_nll / static_cast<double>(scored))});
    }
  }

  KLDivergenceResult r;
  r.tokens = static_cast<int64_t>(kls.size());
  const double count = static_cast<double>(r.tokens);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (PerplexityResult* p : {&r.base, &r.quant}) {
    p->tokens = r.tokens;
    p->windows = windows;
    p->text_tokens = n;
    p->seconds = r.seconds;
  }
  r.base.nll = base_nll / count;
  r.quant.nll = quant_nll / count;
  r.base.ppl = std::exp(r.base.nll);
  r.quant.ppl = std::exp(r.quant.nll);
  double sum = 0.0;
  for (double v : kls) sum += v;
  r.kl_mean = sum / count;
  r.top1_agreement = static_cast<double>(agree) / count;
  std::sort(kls.begin(), kls.end());
  // Nearest-rank percentiles.
  auto rank = [&](double q) {
    const auto k = static_cast<size_t>(std::ceil(q * count));
    return kls[std::min(kls.size() - 1, k == 0 ? 0 : k - 1)];
  };
  r.kl_median = rank(0.5);
  r.kl_p99 = rank(0.99);
  r.kl_max = kls.back();
  return r;
}

}  // namespace lowbit::eval

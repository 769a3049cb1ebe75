#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "util/error.h"
#include "util/thread_pool.h"

namespace lowbit::eval {

namespace {

// A window of the token stream and the positions in it whose next-token prediction is scored.
struct Window {
  int64_t begin = 0;         // first token
  int64_t length = 0;        // tokens run
  int64_t first_scored = 0;  // first scored target, as an index into the window (>= 1)
};

std::vector<Window> plan_windows(int64_t n, const PerplexityOptions& o) {
  std::vector<Window> windows;
  if (o.stride == 0) {
    for (int64_t begin = 0; begin + o.ctx <= n; begin += o.ctx) windows.push_back({begin, o.ctx, 1});
    return windows;
  }
  int64_t scored_until = 0;  // targets below this index were scored already
  for (int64_t begin = 0; begin < n; begin += o.stride) {
    const int64_t end = std::min(begin + o.ctx, n);
    if (end - begin < 2) break;
    const int64_t first = std::max(scored_until, begin + 1);
    windows.push_back({begin, end - begin, first - begin});
    scored_until = end;
    if (end == n) break;
  }
  return windows;
}

}  // namespace

double token_nll(std::span<const float> logits, int32_t target) {
  float max_logit = logits[0];
  for (float v : logits) max_logit = std::max(max_logit, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v - max_logit));
  return std::log(sum) + static_cast<double>(max_logit) -
         static_cast<double>(logits[static_cast<size_t>(target)]);
}

PerplexityResult perplexity(const runtime::Transformer& model, std::span<const int32_t> tokens,
                            const PerplexityOptions& options, const PerplexityCallback& progress) {
  if (options.ctx < 2) fail("perplexity: ctx must be at least 2, got {}", options.ctx);
  if (options.stride < 0 || options.stride > options.ctx) {
    fail("perplexity: stride must be in [0, ctx = {}], got {}", options.ctx, options.stride);
  }
  if (options.max_tokens > 0 && static_cast<int64_t>(tokens.size()) > options.max_tokens) {
    tokens = tokens.first(static_cast<size_t>(options.max_tokens));
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  const std::vector<Window> windows = plan_windows(n, options);
  if (windows.empty()) {
    fail("perplexity: the text has {} tokens, fewer than one window of ctx = {}", n, options.ctx);
  }

  const auto start = std::chrono::steady_clock::now();
  const int64_t vocab = model.config().vocab_size;
  runtime::Session session(model, options.ctx);
  std::vector<float> logits;
  double total_nll = 0.0;
  int64_t scored = 0;
  for (size_t w = 0; w < windows.size(); ++w) {
    const Window& win = windows[w];
    session.reset();
    const std::span<const int32_t> window =
        tokens.subspan(static_cast<size_t>(win.begin), static_cast<size_t>(win.length));
    if (options.decode) {
      logits.resize(static_cast<size_t>(win.length * vocab));
      std::vector<float> step;
      for (int64_t t = 0; t + 1 < win.length; ++t) {  // the last token predicts nothing that is scored
        session.forward(window.subspan(static_cast<size_t>(t), 1), runtime::Logits::Last, &step);
        std::copy(step.begin(), step.end(), logits.begin() + t * vocab);
      }
    } else {
      session.forward(window, runtime::Logits::All, &logits);
    }
    // Row t of the logits predicts token t + 1 of the window.
    const int64_t rows = win.length - win.first_scored;
    std::vector<double> nll(static_cast<size_t>(rows));
    global_pool().parallel_for(static_cast<size_t>(rows), 16, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        const int64_t target = win.first_scored + static_cast<int64_t>(i);
        const float* row = logits.data() + (target - 1) * vocab;
        nll[i] =
            token_nll({row, static_cast<size_t>(vocab)}, tokens[static_cast<size_t>(win.begin + target)]);
      }
    });
    for (double v : nll) total_nll += v;  // fixed order: the result does not depend on the thread count
    scored += rows;
    if (progress) {
      progress({static_cast<int64_t>(w) + 1, static_cast<int64_t>(windows.size()), scored,
                std::exp(total_nll / static_cast<double>(scored))});
    }
  }

  PerplexityResult r;
  r.tokens = scored;
  r.windows = static_cast<int64_t>(windows.size());
  r.nll = total_nll / static_cast<double>(scored);
  r.ppl = std::exp(r.nll);
  r.text_tokens = n;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

PerplexityResult perplexity(const runtime::Transformer& model, const Tokenizer& tokenizer,
                            std::string_view text, const PerplexityOptions& options,
                            const PerplexityCallback& progress) {
  const std::vector<int32_t> tokens = tokenizer.encode(text, /*add_special_tokens=*/true);
  return perplexity(model, tokens, options, progress);
}

}  // namespace lowbit::eval

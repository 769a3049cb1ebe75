// The GPTQ inverse factor: upper Cholesky factor of (H + lambda I)^-1, in fp64 (see quant/gptq.h).
//
// llm-compressor computes it as cholesky(cholesky_inverse(cholesky(H)), upper=True): three O(n^3 / 3)
// factorizations. The same factor comes from one Cholesky factorization and one triangular inverse, half
// the work: with J the reversal permutation and J H J = M M^T (M lower),
//   H^-1 = J M^-T M^-1 J = (J M^-1 J)^T (J M^-1 J),
// and J M^-1 J is upper triangular with a positive diagonal, so it is THE upper Cholesky factor of H^-1
// (unique). Only rounding differs; tests/quant/gptq_test.cc checks U^T U (H + lambda I) = I and the codes
// against the numpy reference, which inverts explicitly.
#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "quant/gptq.h"

namespace lowbit {

bool gptq_inverse_factor(std::vector<double>& h, int64_t n, double lambda) {
  if (n <= 0 || static_cast<int64_t>(h.size()) != n * n) return false;
  for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i * n + i)] += lambda;
  // J H J: element (i, j) moves to (n-1-i, n-1-j), i.e. the flat row-major array reversed.
  std::reverse(h.begin(), h.end());
  // The matrix is symmetric, so LAPACK's column-major view of the buffer is the same matrix. After dpotrf
  // and dtrtri the column-major lower triangle holds M^-1: element (a, b), a >= b, at h[a + b * n].
  const auto ln = static_cast<lapack_int>(n);
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ln, h.data(), ln) != 0) return false;
  if (LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'L', 'N', ln, h.data(), ln) != 0) return false;
  // U[i][j] = M^-1(n-1-i, n-1-j) = h[(n-1-i) + (n-1-j) * n] for i <= j. That source index is the row-major
  // index of (n-1-j, n-1-i), and the map is an involution, so the remap is a set of swaps.
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) {
      const size_t dst = static_cast<size_t>(i * n + j);
      const size_t src = static_cast<size_t>((n - 1 - j) * n + (n - 1 - i));
      if (src > dst) std::swap(h[dst], h[src]);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < i; ++j) h[static_cast<size_t>(i * n + j)] = 0.0;
    if (!(h[static_cast<size_t>(i * n + i)] > 0.0)) return false;
    for (int64_t j = i; j < n; ++j) {
      if (!std::isfinite(h[static_cast<size_t>(i * n + j)])) return false;
    }
  }
  return true;
}

}  // namespace lowbit

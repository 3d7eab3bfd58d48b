#include "tests/util_linalg.h"

#include <algorithm>
#include <cmath>

namespace mu::test {

// Eigenvalues of a symmetric n x n matrix (row-major, double) by cyclic Jacobi rotations.
std::vector<double> sym_eigenvalues(std::vector<double> a, int n) {
  auto at = [&](int i, int j) -> double& { return a[static_cast<size_t>(i) * n + j]; };
  for (int sweep = 0; sweep < 100; sweep++) {
    double off = 0, diag = 0;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) (i == j ? diag : off) += at(i, j) * at(i, j);
    if (off <= 1e-26 * (diag + off)) break;
    for (int p = 0; p < n; p++)
      for (int q = p + 1; q < n; q++) {
        if (at(p, q) == 0.0) continue;
        // Choose the rotation that zeroes a_pq: tan(phi) = t solves t^2 + 2 theta t - 1 = 0.
        const double theta = (at(q, q) - at(p, p)) / (2.0 * at(p, q));
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; k++) {  // A J
          const double kp = at(k, p), kq = at(k, q);
          at(k, p) = c * kp - s * kq;
          at(k, q) = s * kp + c * kq;
        }
        for (int k = 0; k < n; k++) {  // J^T (A J)
          const double pk = at(p, k), qk = at(q, k);
          at(p, k) = c * pk - s * qk;
          at(q, k) = s * pk + c * qk;
        }
      }
  }
  std::vector<double> ev(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) ev[static_cast<size_t>(i)] = at(i, i);
  std::sort(ev.begin(), ev.end());
  return ev;
}

// Singular values of an (m, n) row-major fp32 matrix, m <= n: sqrt(eig(X X^T)) in double.
std::vector<double> singular_values(const float* x, int64_t m, int64_t n) {
  std::vector<double> g(static_cast<size_t>(m * m));
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) {
      double s = 0;
      for (int64_t k = 0; k < n; k++) s += static_cast<double>(x[i * n + k]) * x[j * n + k];
      g[static_cast<size_t>(i * m + j)] = s;
    }
  std::vector<double> ev = sym_eigenvalues(g, static_cast<int>(m));
  for (double& e : ev) e = std::sqrt(std::max(e, 0.0));
  return ev;
}

}  // namespace mu::test

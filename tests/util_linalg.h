// Small dense linear algebra in double for the tests (the spectrum of orthogonalizer outputs),
// written here so no test depends on the code it checks.
#pragma once
#include <cstdint>
#include <vector>

namespace mu::test {

// Eigenvalues of a symmetric n x n matrix (row-major, double) by cyclic Jacobi rotations, ascending.
std::vector<double> sym_eigenvalues(std::vector<double> a, int n);
// Singular values of an (m, n) row-major fp32 matrix, m <= n: sqrt(eig(X X^T)) in double, ascending.
std::vector<double> singular_values(const float* x, int64_t m, int64_t n);

}  // namespace mu::test

// Row-major GEMM, optionally strided-batched: out = alpha * op(a) @ op(b) + beta * out.
// The linear layer y = x @ W^T is {out=y, a=x, b=W, trans_b=true}; its backward is
// dx = dy @ W: {out=dx, a=dy, b=W} and dW += dy^T @ x: {out=dW, a=dy, b=x, trans_a=true, beta=1}.
#pragma once
#include <cstdint>

#include "core/arena.h"
#include "core/tensor.h"

namespace mu {

struct MatmulParams {
  Tensor out;  // (M, N) or (batch, M, N)
  Tensor a;    // op(a) is (M, K): a is (M, K), or (K, M) when trans_a
  Tensor b;    // op(b) is (K, N): b is (K, N), or (N, K) when trans_b
  bool trans_a = false, trans_b = false;
  float alpha = 1.0f, beta = 0.0f;  // beta 0: out is not read (it may hold NaN)
  // Batched when > 1: each tensor is then (batch, rows, cols). Its batch items sit
  // rows*cols elements apart unless a stride is given: a nonzero stride is the distance in
  // elements between batch items (the shape stays the logical (batch, rows, cols); the
  // memory the caller provides spans (batch-1)*stride + rows*cols elements).
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_out = 0;
  // Row pitch of out (and c) in elements; 0 means N (rows packed). A larger pitch makes out a
  // block of a wider matrix (the symmetric products of optim/orthogonalize.cpp write blocks).
  // Then a nonzero stride_out must be at least (M-1)*ld_out + N; the default is M*ld_out.
  int64_t ld_out = 0;
  // Optional: the beta term reads c instead of out, out = alpha * op(a) @ op(b) + beta * c.
  // c has out's shape, dtype, row pitch and batch stride; it is out itself or lies apart from
  // it, and it may overlap a or b (it is only read). It saves a copy when out must start as
  // another tensor (X = a X + B' X writes the next iterate from the current one).
  Tensor c;
};

// out must not overlap a or b.
void matmul(const MatmulParams& p);

// The matmul workspace as part of a memory plan: on cuda "matmul.workspace", cuBLASLt's 32 MiB,
// in Region::Workspace (so the plan printed at start counts it); nothing on the cpu. While a
// MatmulWorkspaceLoan lives, cuda matmuls use that arena buffer instead of allocating their
// own; declare the loan after the arena so it ends first.
void plan_matmul_workspace(ArenaPlan& plan, Device dev);
class MatmulWorkspaceLoan {
 public:
  explicit MatmulWorkspaceLoan(const Arena& arena);
  ~MatmulWorkspaceLoan();
  MatmulWorkspaceLoan(const MatmulWorkspaceLoan&) = delete;
  MatmulWorkspaceLoan& operator=(const MatmulWorkspaceLoan&) = delete;

 private:
  bool lent_ = false;
};

}  // namespace mu

// matmul entry: validates the operands, then dispatches on the device.
#include "kernels/matmul.h"

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/runtime.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

// Rows and columns of one operand (its last two dims); checks its rank against the batch.
void operand_dims(const char* what, const Tensor& t, int64_t batch, int64_t* rows, int64_t* cols) {
  if (batch == 1) {
    MU_CHECK(t.ndim() == 2 || (t.ndim() == 3 && t.size(0) == 1),
             "matmul: %s has shape %s, expected a matrix (rows, cols)", what, t.shape.str().c_str());
  } else {
    MU_CHECK(t.ndim() == 3 && t.size(0) == batch, "matmul: %s has shape %s, expected (batch=%lld, rows, cols)",
             what, t.shape.str().c_str(), static_cast<long long>(batch));
  }
  *rows = t.size(t.ndim() - 2);
  *cols = t.size(t.ndim() - 1);
}

// Memory [first, last) one operand spans.
struct Span {
  const char* lo;
  const char* hi;
};
// `item` is one matrix's footprint, `packed` its default batch stride.
Span span_of(const Tensor& t, int64_t batch, int64_t stride, int64_t item, int64_t packed) {
  const int64_t n = batch > 1 ? (batch - 1) * (stride ? stride : packed) + item : item;
  const char* lo = static_cast<const char*>(t.data);
  return {lo, lo + n * static_cast<int64_t>(dtype_size(t.dtype))};
}
bool overlap(Span x, Span y) { return x.lo < y.hi && y.lo < x.hi; }

}  // namespace

void matmul(const MatmulParams& p) {
  const char* op = "matmul";
  MU_CHECK(p.batch >= 1, "matmul: batch is %lld, must be >= 1", static_cast<long long>(p.batch));
  check_present(op, {{"out", p.out}, {"a", p.a}, {"b", p.b}});
  check_same_device(op, {p.out, p.a, p.b});
  int64_t ar, ac, br, bc, M, N;
  operand_dims("a", p.a, p.batch, &ar, &ac);
  operand_dims("b", p.b, p.batch, &br, &bc);
  operand_dims("out", p.out, p.batch, &M, &N);
  const int64_t am = p.trans_a ? ac : ar, ak = p.trans_a ? ar : ac;  // op(a) is (am, ak)
  const int64_t bk = p.trans_b ? bc : br, bn = p.trans_b ? br : bc;  // op(b) is (bk, bn)
  MU_CHECK(am == M && bn == N && ak == bk,
           "matmul: shapes do not chain: out %s = op(a) %s%s @ op(b) %s%s (op(a) is (%lld, %lld), op(b) is (%lld, %lld))",
           p.out.shape.str().c_str(), p.a.shape.str().c_str(), p.trans_a ? "^T" : "", p.b.shape.str().c_str(),
           p.trans_b ? "^T" : "", static_cast<long long>(am), static_cast<long long>(ak),
           static_cast<long long>(bk), static_cast<long long>(bn));
  MU_CHECK(p.stride_a >= 0 && p.stride_b >= 0 && p.stride_out >= 0, "matmul: negative batch stride");
  MU_CHECK(p.ld_out == 0 || p.ld_out >= N, "matmul: ld_out %lld is below out's %lld columns",
           static_cast<long long>(p.ld_out), static_cast<long long>(N));
  const int64_t ld = p.ld_out ? p.ld_out : N;
  const int64_t out_item = M > 0 ? (M - 1) * ld + N : 0;  // one out matrix's footprint
  MU_CHECK(p.stride_out == 0 || p.stride_out >= out_item,
           "matmul: stride_out %lld is smaller than one out matrix (%lld elements): batch items would overlap",
           static_cast<long long>(p.stride_out), static_cast<long long>(out_item));
  const Span so = span_of(p.out, p.batch, p.stride_out, out_item, M * ld);
  MU_CHECK(!overlap(so, span_of(p.a, p.batch, p.stride_a, ar * ac, ar * ac)) &&
               !overlap(so, span_of(p.b, p.batch, p.stride_b, br * bc, br * bc)),
           "matmul: out overlaps an input (a or b); the product needs a separate output buffer");
  if (!p.c.empty()) {
    check_same_device(op, {p.out, p.c});
    MU_CHECK(p.c.dtype == p.out.dtype && p.c.shape == p.out.shape, "matmul: c is %s, expected out's %s",
             p.c.str().c_str(), p.out.str().c_str());
    MU_CHECK(p.c.data == p.out.data || !overlap(so, span_of(p.c, p.batch, p.stride_out, out_item, M * ld)),
             "matmul: c partly overlaps out; it must be out itself or lie apart from it");
  }

  if (p.out.device == Device::CUDA) return cuda::matmul(p);
  check_cpu_f32(op, {{"out", p.out}, {"a", p.a}, {"b", p.b}});
  if (!p.c.empty()) check_cpu_f32(op, {{"c", p.c}});
  cpu::matmul(p);
}

constexpr const char* kMatmulWorkspace = "matmul.workspace";

void plan_matmul_workspace(ArenaPlan& plan, Device dev) {
  if (dev != Device::CUDA) return;
  plan.add(kMatmulWorkspace, Region::Workspace, DType::BF16,
           Shape{static_cast<int64_t>(cuda::kMatmulWorkspaceBytes / dtype_size(DType::BF16))});
}

MatmulWorkspaceLoan::MatmulWorkspaceLoan(const Arena& arena) {
  if (arena.device() != Device::CUDA || !arena.has(kMatmulWorkspace)) return;
  const Tensor ws = arena.get(kMatmulWorkspace);
  MU_CHECK(ws.nbytes() >= cuda::kMatmulWorkspaceBytes, "matmul workspace: %s is smaller than %zu bytes",
           ws.str().c_str(), cuda::kMatmulWorkspaceBytes);
  cuda::lend_matmul_workspace(ws.data);
  lent_ = true;
}

MatmulWorkspaceLoan::~MatmulWorkspaceLoan() {
  if (!lent_) return;
  try {
    cuda::lend_matmul_workspace(nullptr);
  } catch (...) {  // a destructor must not throw; the process is ending with a CUDA error anyway
  }
}

}  // namespace mu

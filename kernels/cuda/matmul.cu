// Row-major GEMM through cuBLASLt: out = alpha * op(a) @ op(b) + beta * c (c is out unless
// given; out may be a block of a wider matrix, its rows ld_out apart), optionally
// strided-batched (kernels/matmul.h).
//
// cuBLASLt is column-major. A row-major (R, C) matrix is the column-major (C, R) matrix with
// the same memory, so we ask for the transposed product, out^T = op(b)^T @ op(a)^T:
//   cuBLAS A = our b   (m = N), cuBLAS B = our a   (n = M), k = K, cuBLAS C/D = out (N x M, ld N)
//   b is (K, N) row-major = (N x K) col-major, ld N: op N   | trans_b: (N, K) = (K x N) col-major, ld K: op T
//   a is (M, K) row-major = (K x M) col-major, ld K: op N   | trans_a: (K, M) = (M x K) col-major, ld M: op T
// Operands are BF16 (fp32 accumulation, CUBLAS_COMPUTE_32F) or F32; out is the operands' dtype
// or F32 (bf16 operands accumulating into an fp32 buffer).
//
// Plans (matmul descriptor, layouts, the heuristic's algorithm) are cached per device by
// everything that shapes them: sizes, trans flags, batch and strides, dtypes, beta != 0 and
// the pointers' alignment. One cuBLASLt handle per device; the 32 MiB workspace is the one an
// arena lends (lend_matmul_workspace: the training path plans "cuda.matmul_workspace" in its
// Workspace region), else allocated here on first use (tests, tools).
#include <array>
#include <map>
#include <mutex>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

constexpr size_t kWorkspaceBytes = kMatmulWorkspaceBytes;

struct DeviceState {
  cublasLtHandle_t handle = nullptr;
  void* own = nullptr;   // allocated here when nothing is lent
  void* lent = nullptr;  // an arena's buffer
  void* workspace() {
    if (lent) return lent;
    if (!own) {
      cudaError_t e = cudaMalloc(&own, kWorkspaceBytes);
      MU_CHECK(e == cudaSuccess, "matmul: cudaMalloc of the %zu MiB cuBLASLt workspace failed: %s",
               kWorkspaceBytes >> 20, cudaGetErrorString(e));
    }
    return own;
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo;
};

// (device, M, N, K, trans_a, trans_b, batch, stride a/b/out, dtype ab, dtype out, beta != 0,
//  alignment a/b/out/c, ld_out)
using PlanKey = std::array<int64_t, 18>;

std::mutex g_mutex;
std::map<int, DeviceState> g_devices;
std::map<PlanKey, Plan> g_plans;

DeviceState& device_state(int dev) {
  DeviceState& s = g_devices[dev];
  if (!s.handle) MU_CUBLAS_CHECK(cublasLtCreate(&s.handle));
  return s;
}

cudaDataType_t cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// The largest power of two (<= 256) dividing the address of every batch item.
int64_t alignment(const void* p, int64_t stride_bytes, int64_t batch) {
  uint64_t a = reinterpret_cast<uintptr_t>(p) | 256u;
  if (batch > 1) a |= static_cast<uint64_t>(stride_bytes) | 256u;
  return static_cast<int64_t>(a & (~a + 1));
}

cublasLtMatrixLayout_t make_layout(DType t, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  MU_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, cuda_type(t), rows, cols, ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    MU_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    MU_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}

struct Dims {
  int64_t M, N, K, sa, sb, so, ld;  // ld: out's (and c's) row pitch
};

Plan make_plan(cublasLtHandle_t handle, const MatmulParams& p, const Dims& d, const PlanKey& key) {
  Plan plan;
  MU_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS A is our b
  const cublasOperation_t op_b = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS B is our a
  MU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  MU_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  // Stored (column-major) shapes of cuBLAS A = b, B = a, C = out.
  if (p.trans_b)
    plan.la = make_layout(p.b.dtype, d.K, d.N, d.K, p.batch, d.sb);
  else
    plan.la = make_layout(p.b.dtype, d.N, d.K, d.N, p.batch, d.sb);
  if (p.trans_a)
    plan.lb = make_layout(p.a.dtype, d.M, d.K, d.M, p.batch, d.sa);
  else
    plan.lb = make_layout(p.a.dtype, d.K, d.M, d.K, p.batch, d.sa);
  plan.lc = make_layout(p.out.dtype, d.N, d.M, d.ld, p.batch, d.so);  // C and D share it

  cublasLtMatmulPreference_t pref = nullptr;
  MU_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspaceBytes;
  MU_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  const uint32_t al_a = static_cast<uint32_t>(key[13]), al_b = static_cast<uint32_t>(key[14]),
                 al_d = static_cast<uint32_t>(key[15]), al_c = static_cast<uint32_t>(key[16]);
  // cuBLAS A is our b (key[14]), cuBLAS B is our a (key[13]).
  MU_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_b, sizeof(al_b)));
  MU_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_a, sizeof(al_a)));
  MU_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
  MU_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));
  cublasLtMatmulHeuristicResult_t result = {};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.la, plan.lb, plan.lc, plan.lc, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  MU_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0,
           "matmul: cuBLASLt has no algorithm for out (%lld, %lld, ld %lld) = op(a)%s @ op(b)%s with K = %lld, "
           "batch %lld, a %s, b %s, out %s, alignment a/b/out/c %lld/%lld/%lld/%lld bytes (status %d)",
           static_cast<long long>(d.M), static_cast<long long>(d.N), static_cast<long long>(d.ld),
           p.trans_a ? "^T" : "", p.trans_b ? "^T" : "", static_cast<long long>(d.K), static_cast<long long>(p.batch),
           dtype_name(p.a.dtype), dtype_name(p.b.dtype), dtype_name(p.out.dtype), static_cast<long long>(key[13]),
           static_cast<long long>(key[14]), static_cast<long long>(key[15]), static_cast<long long>(key[16]),
           static_cast<int>(st));
  plan.algo = result.algo;
  return plan;
}

// K == 0: the product is empty, out = beta * c (c: out unless given), row by row when rows
// are not packed (each batch item; they may sit apart). Rare: nothing here is fast.
void scale_only(const MatmulParams& p, const Dims& d) {
  const int64_t es = static_cast<int64_t>(dtype_size(p.out.dtype));
  const bool packed = d.ld == d.N;
  for (int64_t i = 0; i < p.batch; i++)
    for (int64_t r = 0; r < (packed ? 1 : d.M); r++) {
      const int64_t off = (i * d.so + r * d.ld) * es;
      const Shape s = packed ? Shape{d.M, d.N} : Shape{1, d.N};
      Tensor item(static_cast<char*>(p.out.data) + off, p.out.dtype, Device::CUDA, s);
      if (p.beta == 0.0f) {
        fill(item, 0.0f);
        continue;
      }
      if (!p.c.empty() && p.c.data != p.out.data)
        copy(item, Tensor(static_cast<char*>(p.c.data) + off, p.out.dtype, Device::CUDA, s));
      scale(item, p.beta);
    }
}

}  // namespace

void matmul(const MatmulParams& p) {
  require_device("matmul");
  const char* op = "matmul";
  MU_CHECK((p.a.dtype == DType::BF16 || p.a.dtype == DType::F32) && p.b.dtype == p.a.dtype,
           "%s: a (%s) and b (%s) must both be BF16 or both F32 on cuda", op, dtype_name(p.a.dtype),
           dtype_name(p.b.dtype));
  MU_CHECK(p.out.dtype == p.a.dtype || p.out.dtype == DType::F32,
           "%s: out has dtype %s; on cuda it must be the operands' dtype (%s) or F32", op, dtype_name(p.out.dtype),
           dtype_name(p.a.dtype));
  const int nd = p.out.ndim();
  Dims d;
  d.M = p.out.size(nd - 2);
  d.N = p.out.size(nd - 1);
  d.K = p.trans_a ? p.a.size(p.a.ndim() - 2) : p.a.size(p.a.ndim() - 1);
  d.sa = p.stride_a ? p.stride_a : p.a.size(p.a.ndim() - 2) * p.a.size(p.a.ndim() - 1);
  d.sb = p.stride_b ? p.stride_b : p.b.size(p.b.ndim() - 2) * p.b.size(p.b.ndim() - 1);
  d.ld = p.ld_out ? p.ld_out : d.N;
  d.so = p.stride_out ? p.stride_out : d.M * d.ld;
  if (d.M == 0 || d.N == 0 || p.batch == 0) return;
  if (d.K == 0) return scale_only(p, d);
  MU_CHECK(p.batch <= INT32_MAX, "%s: batch %lld exceeds cuBLASLt's int32 batch count", op,
           static_cast<long long>(p.batch));

  const void* c_data = p.c.empty() || p.beta == 0.0f ? p.out.data : p.c.data;  // beta 0: C is not read
  int dev = 0;
  MU_CUDA_CHECK(cudaGetDevice(&dev));
  const int64_t es_ab = static_cast<int64_t>(dtype_size(p.a.dtype)),
                es_o = static_cast<int64_t>(dtype_size(p.out.dtype));
  const PlanKey key = {dev,
                       d.M,
                       d.N,
                       d.K,
                       p.trans_a,
                       p.trans_b,
                       p.batch,
                       d.sa,
                       d.sb,
                       d.so,
                       static_cast<int64_t>(p.a.dtype),
                       static_cast<int64_t>(p.out.dtype),
                       p.beta != 0.0f,
                       alignment(p.a.data, d.sa * es_ab, p.batch),
                       alignment(p.b.data, d.sb * es_ab, p.batch),
                       alignment(p.out.data, d.so * es_o, p.batch),
                       alignment(c_data, d.so * es_o, p.batch),
                       d.ld};
  cublasLtHandle_t handle;
  void* workspace;
  const Plan* plan;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    DeviceState& s = device_state(dev);
    handle = s.handle;
    workspace = s.workspace();
    auto it = g_plans.find(key);
    if (it == g_plans.end()) it = g_plans.emplace(key, make_plan(handle, p, d, key)).first;
    plan = &it->second;  // std::map nodes are stable
  }
  const float alpha = p.alpha, beta = p.beta;
  MU_CUBLAS_CHECK(cublasLtMatmul(handle, plan->desc, &alpha, p.b.data, plan->la, p.a.data, plan->lb, &beta, c_data,
                                 plan->lc, p.out.data, plan->lc, &plan->algo, workspace, kWorkspaceBytes, 0));
}

void lend_matmul_workspace(void* p) {
  int dev = -1;
  MU_CUDA_CHECK(cudaGetDevice(&dev));
  void* to_free = nullptr;
  {
    // Switch first, so that even if the synchronisation below fails (a sticky CUDA error) no
    // later matmul uses memory its lender is about to free.
    std::lock_guard<std::mutex> lock(g_mutex);
    DeviceState& s = g_devices[dev];
    s.lent = p;
    if (p) std::swap(to_free, s.own);  // the arena's buffer replaces ours
  }
  // Queued matmuls may still use the previous workspace; the lender's memory must not be
  // reused (or freed) under them either.
  MU_CUDA_CHECK(cudaDeviceSynchronize());
  if (to_free) MU_CUDA_CHECK(cudaFree(to_free));
}

}  // namespace cuda
}  // namespace mu

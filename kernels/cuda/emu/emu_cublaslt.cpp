// llm.mu's CUDA emulator, cuBLASLt: the descriptors keep their attributes, and cublasLtMatmul
// computes column-major D = alpha op(A) op(B) + beta C for each batch item with an fp32
// dot product per element (C is not read when beta == 0, as in cuBLAS). Shapes that do not
// fit together are refused with CUBLAS_STATUS_INVALID_VALUE and a message, where the library
// would refuse them too.
#include <cstdio>
#include <cstring>
#include <vector>

#include "emu_internal.h"
#include "include/cublasLt.h"
#include "include/cuda_bf16.h"

struct cublasLtContext {
  int unused;
};
struct cublasLtMatmulDescOpaque_t {
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
};
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t stride = 0;
};
struct cublasLtMatmulPreferenceOpaque_t {
  uint64_t workspace = 0;
  uint32_t align[4] = {0, 0, 0, 0};  // minimum alignments of A, B, C, D in bytes
};
// The algorithm the heuristic returned remembers the alignments it was chosen for.
static_assert(sizeof(cublasLtMatmulAlgo_t) >= 4 * sizeof(uint32_t), "room for the alignments");

namespace {

template <class T>
cublasStatus_t set(T& dst, const void* v, size_t bytes) {
  if (bytes != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&dst, v, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

size_t elem_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

float load(const void* base, cudaDataType_t t, int64_t i) {
  if (t == CUDA_R_32F) return static_cast<const float*>(base)[i];
  return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
}
void store(void* base, cudaDataType_t t, int64_t i, float v) {
  if (t == CUDA_R_32F)
    static_cast<float*>(base)[i] = v;
  else
    static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
}

cublasStatus_t refuse(const char* why) {
  std::fprintf(stderr, "mu-emu: cublasLtMatmul: %s\n", why);
  return CUBLAS_STATUS_INVALID_VALUE;
}

// op(X)'s (row, col) element as a float buffer, row-major: rows x cols.
void gather(std::vector<float>& out, const void* base, const cublasLtMatrixLayoutOpaque_t& l, bool trans,
            int64_t rows, int64_t cols) {
  out.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++)
      out[static_cast<size_t>(r * cols + c)] = trans ? load(base, l.type, c + r * l.ld) : load(base, l.type, r + c * l.ld);
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  *h = new cublasLtContext{0};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *d = new cublasLtMatmulDescOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void* v,
                                              size_t bytes) {
  if (a == CUBLASLT_MATMUL_DESC_TRANSA) return set(d->ta, v, bytes);
  if (a == CUBLASLT_MATMUL_DESC_TRANSB) return set(d->tb, v, bytes);
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t t, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (t != CUDA_R_32F && t != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (ld < static_cast<int64_t>(rows)) return refuse("a layout's leading dimension is below its rows");
  *l = new cublasLtMatrixLayoutOpaque_t{t, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a,
                                                const void* v, size_t bytes) {
  if (a == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) return set(l->batch, v, bytes);
  if (a == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET) return set(l->stride, v, bytes);
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = new cublasLtMatmulPreferenceOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void* v,
                                                    size_t bytes) {
  if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) return set(p->workspace, v, bytes);
  const int i = a - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
  if (i < 0 || i > 3) return CUBLAS_STATUS_NOT_SUPPORTED;
  return set(p->align[i], v, bytes);
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t* results, int* found) {
  if (requested < 1 || !pref) return CUBLAS_STATUS_INVALID_VALUE;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  std::memcpy(results[0].algo.data, pref->align, sizeof(pref->align));
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha_p, const void* A,
                              cublasLtMatrixLayout_t la, const void* B, cublasLtMatrixLayout_t lb, const void* beta_p,
                              const void* C, cublasLtMatrixLayout_t lc, void* D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                              cudaStream_t) {
  if (!h || !d || !la || !lb || !lc || !ld || !algo) return refuse("a null handle, descriptor or algorithm");
  if (!workspace && workspace_bytes > 0) return refuse("a null workspace of nonzero size");
  // An algorithm chosen for operands aligned to N bytes may use N-byte accesses: every batch
  // item's address must have the alignment the plan declared (matmul.cu computes it).
  uint32_t align[4];
  std::memcpy(align, algo->data, sizeof(align));
  const struct {
    const void* p;
    const cublasLtMatrixLayoutOpaque_t* l;
    uint32_t min;
    const char* name;
  } ops[] = {{A, la, align[0], "A"}, {B, lb, align[1], "B"}, {C, lc, align[2], "C"}, {D, ld, align[3], "D"}};
  for (const auto& o : ops) {
    const int64_t es = static_cast<int64_t>(elem_size(o.l->type));
    for (int32_t i = 0; i < o.l->batch; i++) {
      const uintptr_t at = reinterpret_cast<uintptr_t>(o.p) + static_cast<uintptr_t>(i * o.l->stride * es);
      if (o.min > 1 && at % o.min != 0) {
        std::fprintf(stderr, "mu-emu: cublasLtMatmul: %s batch item %d at %p is not aligned to the %u bytes its plan declared\n",
                     o.name, i, reinterpret_cast<void*>(at), o.min);
        return CUBLAS_STATUS_INVALID_VALUE;
      }
    }
    // the footprint: (batch-1)*stride + (cols-1)*ld + rows elements
    const int64_t n = (o.l->batch - 1) * o.l->stride + (static_cast<int64_t>(o.l->cols) - 1) * o.l->ld +
                      static_cast<int64_t>(o.l->rows);
    if (o.l->rows > 0 && o.l->cols > 0 && !mu_emu::is_device(o.p, static_cast<size_t>(n * es))) {
      std::fprintf(stderr, "mu-emu: cublasLtMatmul: %s (%llu x %llu, ld %lld, batch %d, stride %lld) reaches outside device memory\n",
                   o.name, static_cast<unsigned long long>(o.l->rows), static_cast<unsigned long long>(o.l->cols),
                   static_cast<long long>(o.l->ld), o.l->batch, static_cast<long long>(o.l->stride));
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  const bool ta = d->ta == CUBLAS_OP_T, tb = d->tb == CUBLAS_OP_T;
  const int64_t m = static_cast<int64_t>(ld->rows), n = static_cast<int64_t>(ld->cols);
  const int64_t k = static_cast<int64_t>(ta ? la->rows : la->cols);
  if (static_cast<int64_t>(ta ? la->cols : la->rows) != m) return refuse("op(A)'s rows differ from D's");
  if (static_cast<int64_t>(tb ? lb->rows : lb->cols) != n) return refuse("op(B)'s columns differ from D's");
  if (static_cast<int64_t>(tb ? lb->cols : lb->rows) != k) return refuse("op(A)'s columns differ from op(B)'s rows");
  if (lc->rows != ld->rows || lc->cols != ld->cols || lc->type != ld->type) return refuse("C and D differ in shape or type");
  if (la->type != lb->type) return refuse("A and B differ in type");
  const int32_t batch = ld->batch;
  if (la->batch != batch || lb->batch != batch || lc->batch != batch) return refuse("the batch counts differ");
  const float alpha = *static_cast<const float*>(alpha_p), beta = *static_cast<const float*>(beta_p);
  mu_emu::DeviceAccess open;
  std::vector<float> a, b;  // op(A) as m x k, op(B)^T as n x k, both row-major
  for (int32_t i = 0; i < batch; i++) {
    const char* Ai = static_cast<const char*>(A) + i * la->stride * static_cast<int64_t>(elem_size(la->type));
    const char* Bi = static_cast<const char*>(B) + i * lb->stride * static_cast<int64_t>(elem_size(lb->type));
    const char* Ci = static_cast<const char*>(C) + i * lc->stride * static_cast<int64_t>(elem_size(lc->type));
    char* Di = static_cast<char*>(D) + i * ld->stride * static_cast<int64_t>(elem_size(ld->type));
    gather(a, Ai, *la, ta, m, k);
    gather(b, Bi, *lb, !tb, n, k);
    for (int64_t c = 0; c < n; c++)
      for (int64_t r = 0; r < m; r++) {
        float acc = 0.0f;
        const float* ar = a.data() + r * k;
        const float* bc = b.data() + c * k;
        for (int64_t j = 0; j < k; j++) acc += ar[j] * bc[j];
        float v = alpha * acc;
        if (beta != 0.0f) v += beta * load(Ci, lc->type, r + c * lc->ld);
        store(Di, ld->type, r + c * ld->ld, v);
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

// fp32 cpu GEMM: a cache-blocked, packed GEMM in the style of BLIS/GotoBLAS.
//
//   for jc over N in NC columns            (B panel, KC x NC, shared by all threads)
//     for pc over K in KC                  (one rank-KC update of C)
//       pack B[pc:pc+KC, jc:jc+NC] into NR-wide slivers           (parallel over slivers)
//       for ic over M in MC rows           (parallel: one thread per A block)
//         pack A[ic:ic+MC, pc:pc+KC] into MR-tall slivers          (thread-private, stays in L2)
//         for each NR sliver of B, for each MR sliver of A: the MR x NR micro-kernel
//
// Packing reads op(a) and op(b) through (row, column) strides, so one micro-kernel serves all
// four trans combinations. The micro-kernel keeps an MR x NR tile of C in vector registers
// (GCC/Clang vector extensions: the compiler emits AVX-512, AVX2/FMA or SSE/NEON from the same
// code under -march=native, with FMA contraction) and streams the packed slivers.
// Every C element is summed in the same order whatever the thread count, so results are
// bitwise independent of OMP_NUM_THREADS.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/cpu_ops.h"

namespace mu {
namespace cpu {
namespace {

// Vector width follows the target ISA; the tile keeps MR x (kNV vectors) accumulators in
// registers: AVX-512 has 32 registers (12 x 2 = 24 accumulators), AVX2/SSE/NEON 16 or more
// (6 x 2 = 12 accumulators), leaving room for the B vectors and the A broadcast.
#if defined(__AVX512F__)
#define MU_GEMM_VEC_BYTES 64
constexpr int kMR = 12;
#elif defined(__AVX__)
#define MU_GEMM_VEC_BYTES 32
constexpr int kMR = 6;
#else
#define MU_GEMM_VEC_BYTES 16
constexpr int kMR = 6;
#endif
typedef float vfloat __attribute__((vector_size(MU_GEMM_VEC_BYTES)));
constexpr int kVec = MU_GEMM_VEC_BYTES / 4;  // floats per vector
constexpr int kNV = 2;                       // vectors per tile row
constexpr int kNR = kNV * kVec;              // tile columns

// Block sizes: a KC x NR B sliver (24 KiB at KC=192) stays in L1 while A slivers stream from
// the MC x KC block in L2; the KC x NC B panel (3 MiB) lives in L3. Measured on the 2-core
// AMD EPYC (AVX-512, 48 KiB L1d, 1 MiB L2) dev machine: KC 128..384 and MR 8..14 all land
// within noise of each other, ~175-195 GFLOP/s per core (the AVX2 build: ~105).
constexpr int64_t kKC = 192;
constexpr int64_t kMCMax = 16 * kMR;
constexpr int64_t kNC = 4096;

inline vfloat load(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, vfloat v) { std::memcpy(p, &v, sizeof(v)); }

// One GEMM on strided views: op(a)(i, k) = a[i*rs_a + k*cs_a], op(b)(k, j) = b[k*rs_b + j*cs_b],
// c(i, j) = c[i*ldc + j].
struct Gemm {
  int64_t M, N, K;
  const float* a;
  int64_t rs_a, cs_a;
  const float* b;
  int64_t rs_b, cs_b;
  float* c;
  int64_t ldc;
  float alpha, beta;
};

// Packs rows [i0, i0+m) x columns [k0, k0+kc) of op(a) into MR-tall slivers: sliver s holds,
// for each k, the MR values op(a)(i0 + s*MR + r, k0 + k) (zero past row m).
void pack_a(float* dst, const Gemm& g, int64_t i0, int64_t m, int64_t k0, int64_t kc) {
  for (int64_t s = 0; s < m; s += kMR) {
    const int64_t mr = std::min<int64_t>(kMR, m - s);
    float* d = dst + s * kc;
    const float* src = g.a + (i0 + s) * g.rs_a + k0 * g.cs_a;
    if (g.cs_a == 1) {  // a (M, K): each row is contiguous along k
      for (int64_t r = 0; r < mr; r++) {
        const float* row = src + r * g.rs_a;
        for (int64_t k = 0; k < kc; k++) d[k * kMR + r] = row[k];
      }
    } else {  // a (K, M) (trans_a): the MR values of one k are contiguous
      for (int64_t k = 0; k < kc; k++)
        for (int64_t r = 0; r < mr; r++) d[k * kMR + r] = src[k * g.cs_a + r * g.rs_a];
    }
    if (mr < kMR)
      for (int64_t k = 0; k < kc; k++)
        for (int64_t r = mr; r < kMR; r++) d[k * kMR + r] = 0.0f;
  }
}

// Packs the NR-wide sliver of op(b) starting at column j (relative to j0) of the panel
// rows [k0, k0+kc) x columns [j0, j0+n): for each k, NR values (zero past column n).
void pack_b_sliver(float* dst, const Gemm& g, int64_t k0, int64_t kc, int64_t j0, int64_t n, int64_t j) {
  const int64_t nr = std::min<int64_t>(kNR, n - j);
  float* d = dst + j * kc;
  const float* src = g.b + k0 * g.rs_b + (j0 + j) * g.cs_b;
  if (g.cs_b == 1) {  // b (K, N): each k row is contiguous along j
    for (int64_t k = 0; k < kc; k++) {
      const float* row = src + k * g.rs_b;
      for (int64_t c = 0; c < nr; c++) d[k * kNR + c] = row[c];
      for (int64_t c = nr; c < kNR; c++) d[k * kNR + c] = 0.0f;
    }
  } else {  // b (N, K) (trans_b): each column of op(b) is contiguous along k
    for (int64_t c = 0; c < nr; c++) {
      const float* col = src + c * g.cs_b;
      for (int64_t k = 0; k < kc; k++) d[k * kNR + c] = col[k * g.rs_b];
    }
    for (int64_t k = 0; k < kc; k++)
      for (int64_t c = nr; c < kNR; c++) d[k * kNR + c] = 0.0f;
  }
}

// C tile (mr x nr at c) = alpha * (packed A sliver @ packed B sliver) + beta * C tile.
// beta == 0 never reads C.
void micro_kernel(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc,
                  int64_t mr, int64_t nr, float alpha, float beta) {
  vfloat acc[kMR][kNV];
#pragma GCC unroll 16
  for (int r = 0; r < kMR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) acc[r][v] = vfloat{};
  for (int64_t k = 0; k < kc; k++) {
    vfloat b[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) b[v] = load(bp + v * kVec);
#pragma GCC unroll 16
    for (int r = 0; r < kMR; r++) {
      const float a = ap[r];
#pragma GCC unroll 4
      for (int v = 0; v < kNV; v++) acc[r][v] += a * b[v];
    }
    ap += kMR;
    bp += kNR;
  }
  if (mr == kMR && nr == kNR) {
    for (int r = 0; r < kMR; r++) {
      float* crow = c + r * ldc;
      for (int v = 0; v < kNV; v++) {
        vfloat x = alpha * acc[r][v];
        if (beta != 0.0f) x += beta * load(crow + v * kVec);
        store(crow + v * kVec, x);
      }
    }
    return;
  }
  alignas(64) float tile[kMR][kNR];
  for (int r = 0; r < kMR; r++)
    for (int v = 0; v < kNV; v++) store(&tile[r][v * kVec], acc[r][v]);
  for (int64_t r = 0; r < mr; r++) {
    float* crow = c + r * ldc;
    for (int64_t j = 0; j < nr; j++)
      crow[j] = beta != 0.0f ? alpha * tile[r][j] + beta * crow[j] : alpha * tile[r][j];
  }
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Rows per A block: at most kMCMax, and (when threaded) a multiple of nthreads blocks so the
// threads finish together.
int64_t choose_mc(int64_t M, int nthreads) {
  int64_t nblocks = ceil_div(M, kMCMax);
  if (nthreads > 1) nblocks = round_up(nblocks, nthreads);
  return std::min(kMCMax, round_up(ceil_div(M, nblocks), kMR));
}

int64_t panel_floats(int64_t N) { return kKC * std::min(round_up(N, kNR), kNC); }

// Workspace floats for one gemm run by `nthreads` threads: the shared B panel plus one A
// block per thread.
int64_t gemm_workspace_floats(int64_t N, int nthreads) { return panel_floats(N) + nthreads * kMCMax * kKC; }

// Grow-only, 64-byte aligned scratch of the calling thread: allocated before any parallel
// region (an allocation failure must not throw inside one), reused across calls so the
// training loop does not allocate.
float* workspace(int64_t floats) {
  struct Buffer {
    float* p = nullptr;
    int64_t n = 0;
    ~Buffer() { std::free(p); }
  };
  static thread_local Buffer buf;
  if (buf.n < floats) {
    std::free(buf.p);
    buf.p = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(round_up(floats * 4, 64))));
    buf.n = buf.p ? floats : 0;
    MU_CHECK(buf.p != nullptr, "matmul: out of host memory for a %lld-float workspace", static_cast<long long>(floats));
  }
  return buf.p;
}

// K == 0: the product is empty, out = beta * out.
void scale_only(const Gemm& g) {
  for (int64_t i = 0; i < g.M; i++)
    for (int64_t j = 0; j < g.N; j++) {
      float* p = g.c + i * g.ldc + j;
      *p = g.beta != 0.0f ? g.beta * *p : 0.0f;
    }
}

void gemm(const Gemm& g, int nthreads, float* work) {
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0) return scale_only(g);
  const int64_t mc_size = choose_mc(g.M, nthreads);
  const int64_t n_mblocks = ceil_div(g.M, mc_size);
  float* bpanel = work;
  float* ablocks = work + panel_floats(g.N);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
  {
    float* apack = ablocks + omp_get_thread_num() * kMCMax * kKC;
    for (int64_t jc = 0; jc < g.N; jc += kNC) {
      const int64_t nc = std::min(kNC, g.N - jc);
      for (int64_t pc = 0; pc < g.K; pc += kKC) {
        const int64_t kc = std::min(kKC, g.K - pc);
        const float beta = pc == 0 ? g.beta : 1.0f;  // later K blocks add onto the first
#pragma omp for schedule(static)
        for (int64_t j = 0; j < nc; j += kNR) pack_b_sliver(bpanel, g, pc, kc, jc, nc, j);
        // (implicit barrier: the panel is complete before anyone reads it)
#pragma omp for schedule(static)
        for (int64_t ib = 0; ib < n_mblocks; ib++) {
          const int64_t ic = ib * mc_size;
          const int64_t mc = std::min(mc_size, g.M - ic);
          pack_a(apack, g, ic, mc, pc, kc);
          for (int64_t j = 0; j < nc; j += kNR) {
            for (int64_t i = 0; i < mc; i += kMR) {
              micro_kernel(kc, apack + i * kc, bpanel + j * kc, g.c + (ic + i) * g.ldc + jc + j, g.ldc,
                           std::min<int64_t>(kMR, mc - i), std::min<int64_t>(kNR, nc - j), g.alpha, beta);
            }
          }
        }
        // (implicit barrier: nobody still reads the panel when the next one is packed)
      }
    }
  }
}

}  // namespace

void matmul(const MatmulParams& p) {
  // Logical sizes: op(a) is (M, K), op(b) is (K, N), out is (M, N).
  const int nd = p.out.ndim();
  const int64_t M = p.out.size(nd - 2), N = p.out.size(nd - 1);
  const int64_t K = p.trans_a ? p.a.size(p.a.ndim() - 2) : p.a.size(p.a.ndim() - 1);
  const int64_t a_rows = p.a.size(p.a.ndim() - 2), a_cols = p.a.size(p.a.ndim() - 1);
  const int64_t b_rows = p.b.size(p.b.ndim() - 2), b_cols = p.b.size(p.b.ndim() - 1);
  const int64_t sa = p.stride_a ? p.stride_a : a_rows * a_cols;
  const int64_t sb = p.stride_b ? p.stride_b : b_rows * b_cols;
  const int64_t ld = p.ld_out ? p.ld_out : N;
  const int64_t so = p.stride_out ? p.stride_out : M * ld;

  Gemm g{};
  g.M = M;
  g.N = N;
  g.K = K;
  // a is (M, K) row-major, or (K, M) when trans_a; likewise b.
  g.rs_a = p.trans_a ? 1 : K;
  g.cs_a = p.trans_a ? M : 1;
  g.rs_b = p.trans_b ? 1 : N;
  g.cs_b = p.trans_b ? K : 1;
  g.ldc = ld;
  g.alpha = p.alpha;
  g.beta = p.beta;
  const float* a = p.a.f32();
  const float* b = p.b.f32();
  float* out = p.out.f32();
  // A separate c: out starts as c, then the product accumulates onto it with beta.
  const float* c = !p.c.empty() && p.c.data != p.out.data && p.beta != 0.0f ? p.c.f32() : nullptr;
  auto start_from_c = [&](int64_t i) {
    if (!c) return;
    for (int64_t r = 0; r < M; r++) std::memcpy(out + i * so + r * ld, c + i * so + r * ld, sizeof(float) * N);
  };

  const int nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Many batch items: one thread per item (no per-item fork/join); few: thread each GEMM.
  const bool per_item_threads =
      p.batch > 1 && nthreads > 1 && (p.batch % nthreads == 0 || p.batch >= 4 * nthreads);
  if (per_item_threads) {
    const int64_t per_thread = gemm_workspace_floats(N, 1);
    float* work = workspace(per_thread * nthreads);
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < p.batch; i++) {
      Gemm gi = g;
      gi.a = a + i * sa;
      gi.b = b + i * sb;
      gi.c = out + i * so;
      start_from_c(i);
      gemm(gi, 1, work + omp_get_thread_num() * per_thread);
    }
    return;
  }
  float* work = workspace(gemm_workspace_floats(N, nthreads));
  for (int64_t i = 0; i < p.batch; i++) {
    Gemm gi = g;
    gi.a = a + i * sa;
    gi.b = b + i * sb;
    gi.c = out + i * so;
    start_from_c(i);
    gemm(gi, nthreads, work);
  }
}

}  // namespace cpu
}  // namespace mu

// Causal grouped-query flash attention, backward, deterministic (no atomics).
//
// With S = scale * Q K^T, P = softmax(S) recomputed from the saved lse, delta_i = dO_i . O_i:
//   dP = dO V^T,  dS = P * (dP - delta),  dV = P^T dO,  dK = scale * dS^T Q,  dQ = scale * dS K.
// FlashAttention-2 accumulates dQ with float atomics across key tiles; that makes the sums'
// order (and the result) vary run to run. Here three kernels instead:
//   1. delta: one warp per (b, t, h) row, into scratch (B, H, T).
//   2. dkdv:  one CTA per (64-key tile, kv head, batch). It walks every query head of its GQA
//             group and every query tile at or after the diagonal, recomputing S^T and dP^T,
//             and keeps dK and dV for its 64 keys in registers: the group sum happens inside
//             the CTA in a fixed order, and K/V are never copied per query head.
//   3. dq:    one CTA per (query tile, query head, batch), walking key tiles up to the
//             diagonal (recomputes S and dP once more: 7 matmuls instead of FA2's 5, the price
//             of determinism without atomics). 64-query tiles (16 rows per warp), or at head
//             dims up to 64 also 128 (32 rows per warp: each K and V fragment read from shared
//             memory feeds two row tiles); mu-bench times both.
// Each output row is written by exactly one CTA, so the result is the same bits every run.
// Kernels 2 and 3 write disjoint parts of dqkv, so 3 runs beside 2 on the side stream.
#include "kernels/cuda/attention.cuh"
#include "kernels/scratch.h"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace attn {
namespace {

constexpr int kBk = 16 * kWarps;  // keys per dkdv CTA (16 per warp)
constexpr int kBcDq = 64;         // keys per tile in dq
// queries per dq CTA: kMT row tiles of 16 per warp
template <int kMT>
constexpr int dq_rows() {
  return 16 * kWarps * kMT;
}

// Query rows per tile in dkdv: 32 at kD = 128 keeps dK, dV (64 + 64 floats), S^T and dP^T
// within the register file without spills.
template <int kD>
constexpr int dkdv_query_tile() {
  return kD >= 128 ? 32 : 64;
}

template <int kD>
constexpr size_t dkdv_smem_bytes() {
  constexpr int q = dkdv_query_tile<kD>();
  // K, V; 2 x Q, 2 x dO; 2 x (lse, delta)
  return static_cast<size_t>(2 * kBk + 4 * q) * smem_stride<kD>() * sizeof(bf16_t) + 4 * q * sizeof(float);
}

template <int kD, int kMT>
constexpr size_t dq_smem_bytes() {
  return static_cast<size_t>(2 * dq_rows<kMT>() + 4 * kBcDq) * smem_stride<kD>() * sizeof(bf16_t);  // Q, dO, 2K, 2V
}

// ---- 1. delta = rowsum(dO * O) -------------------------------------------------------------

__global__ void attention_delta_kernel(float* delta, const bf16_t* out, const bf16_t* dout, int64_t rows, int T, int H,
                                       int D) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = (int64_t{gridDim.x} * blockDim.x) >> 5;
  for (int64_t r = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) >> 5; r < rows; r += nwarps) {
    float s = 0.0f;
    for (int c = lane * 8; c < D; c += 256) {
      float o[8], g[8];
      load_vec<8>(out + r * D + c, o);
      load_vec<8>(dout + r * D + c, g);
#pragma unroll
      for (int j = 0; j < 8; j++) s += o[j] * g[j];
    }
    s = warp_sum(s);
    if (lane == 0) {  // r = (b*T + t)*H + h  ->  delta[(b*H + h)*T + t]
      const int64_t h = r % H, bt = r / H, t = bt % T, b = bt / T;
      delta[(b * H + h) * T + t] = s;
    }
  }
}

// ---- 2. dK, dV ---------------------------------------------------------------------------------

template <int kD>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(const Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  constexpr int kS = smem_stride<kD>();
  constexpr int kQ = dkdv_query_tile<kD>();
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* sK = reinterpret_cast<bf16_t*>(smem);             // [kBk][kS]
  bf16_t* sV = sK + kBk * kS;                               // [kBk][kS]
  bf16_t* sQ = sV + kBk * kS;                               // [2][kQ][kS]
  bf16_t* sdO = sQ + 2 * kQ * kS;                           // [2][kQ][kS]
  float* sL = reinterpret_cast<float*>(sdO + 2 * kQ * kS);  // [2][kQ] lse * log2(e)
  float* sDl = sL + 2 * kQ;                                 // [2][kQ] delta

  const int kvh = blockIdx.y, b = blockIdx.z;
  const int k0 = blockIdx.x * kBk;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const bf16_t* base = p.qkv + static_cast<int64_t>(b) * p.T * p.qkv_row;
  const bf16_t* dobase = p.dout + static_cast<int64_t>(b) * p.T * p.out_row;

  const int qt_first = k0 / kQ;  // queries before it cannot see any of these keys
  const int nq = (p.T + kQ - 1) / kQ - qt_first;
  const int iters = p.group * nq;  // (query head of the group, query tile) pairs

  // Stage iteration `it` into buffer `buf`: Q and dO tiles (cp.async), lse and delta (plain loads).
  auto stage = [&](int it, int buf) {
    const int h = kvh * p.group + it / nq;
    const int q0 = (qt_first + it % nq) * kQ;
    load_tile<kD, kQ>(sQ + buf * kQ * kS, base + static_cast<int64_t>(q0) * p.qkv_row + static_cast<int64_t>(h) * p.D,
                      p.qkv_row, p.T - q0, p.D);
    load_tile<kD, kQ>(sdO + buf * kQ * kS,
                      dobase + static_cast<int64_t>(q0) * p.out_row + static_cast<int64_t>(h) * p.D, p.out_row,
                      p.T - q0, p.D);
    for (int i = threadIdx.x; i < kQ; i += kThreads) {
      const int q = q0 + i;
      const int64_t at = (static_cast<int64_t>(b) * p.H + h) * p.T + q;
      sL[buf * kQ + i] = q < p.T ? p.lse[at] * kLog2e : 0.0f;
      sDl[buf * kQ + i] = q < p.T ? p.delta[at] : 0.0f;
    }
  };

  load_tile<kD, kBk>(sK, base + static_cast<int64_t>(k0) * p.qkv_row + static_cast<int64_t>(p.H + kvh) * p.D, p.qkv_row,
                     p.T - k0, p.D);
  load_tile<kD, kBk>(sV, base + static_cast<int64_t>(k0) * p.qkv_row + static_cast<int64_t>(p.H + p.Hkv + kvh) * p.D,
                     p.qkv_row, p.T - k0, p.D);
  stage(0, 0);
  cp_async_commit();

  const int wkey = k0 + warp * 16;       // the warp's first key
  const int key_a = wkey + (lane >> 2);  // this thread's keys: key_a, key_a + 8
  float dk[kD / 8][4], dv[kD / 8][4];
#pragma unroll
  for (int i = 0; i < kD / 8; i++) {
    dk[i][0] = dk[i][1] = dk[i][2] = dk[i][3] = 0.0f;
    dv[i][0] = dv[i][1] = dv[i][2] = dv[i][3] = 0.0f;
  }

  for (int it = 0; it < iters; it++) {
    cp_async_wait_all();
    __syncthreads();  // buffer it&1 is complete and visible; the other buffer is free
    const int buf = it & 1;
    if (it + 1 < iters) {
      stage(it + 1, buf ^ 1);
      cp_async_commit();
    }
    const int q0 = (qt_first + it % nq) * kQ;
    const bf16_t* qs = sQ + buf * kQ * kS;
    const bf16_t* dos = sdO + buf * kQ * kS;
    const float* ls = sL + buf * kQ;
    const float* dls = sDl + buf * kQ;

    // S^T = K Q^T (rows: the warp's 16 keys, columns: kQ queries) and dP^T = V dO^T.
    float st[kQ / 8][4], dpt[kQ / 8][4];
#pragma unroll
    for (int i = 0; i < kQ / 8; i++) {
      st[i][0] = st[i][1] = st[i][2] = st[i][3] = 0.0f;
      dpt[i][0] = dpt[i][1] = dpt[i][2] = dpt[i][3] = 0.0f;
    }
#pragma unroll
    for (int kk = 0; kk < kD / 16; kk++) {
      uint32_t ak[4];
      ldsm_a(ak, sK, kS, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < kQ / 16; np++) {
        uint32_t bq[4];
        ldsm_b_nk(bq, qs, kS, np * 16, kk * 16, lane);
        mma(st[2 * np], ak, bq[0], bq[1]);
        mma(st[2 * np + 1], ak, bq[2], bq[3]);
      }
    }
#pragma unroll
    for (int kk = 0; kk < kD / 16; kk++) {
      uint32_t av[4];
      ldsm_a(av, sV, kS, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < kQ / 16; np++) {
        uint32_t bo[4];
        ldsm_b_nk(bo, dos, kS, np * 16, kk * 16, lane);
        mma(dpt[2 * np], av, bo[0], bo[1]);
        mma(dpt[2 * np + 1], av, bo[2], bo[3]);
      }
    }

    // P^T = exp2(S^T * scale_log2 - lse_q * log2(e)), zero where query < key or query >= T;
    // dS^T = P^T * (dP^T - delta_q).
    const bool need_mask = q0 < wkey + 15 || q0 + kQ > p.T;
#pragma unroll
    for (int nt = 0; nt < kQ / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int ql = nt * 8 + (lane & 3) * 2 + (e & 1);
        float pr = exp2f(st[nt][e] * p.scale_log2 - ls[ql]);
        if (need_mask) {
          const int q = q0 + ql, key = key_a + (e >> 1) * 8;
          if (q < key || q >= p.T) pr = 0.0f;
        }
        st[nt][e] = pr;
        dpt[nt][e] = pr * (dpt[nt][e] - dls[ql]);
      }
    }

    // dV += P^T dO and dK += dS^T Q (k = the kQ queries; B tiles stored [query][d]).
#pragma unroll
    for (int kq = 0; kq < kQ / 16; kq++) {
      uint32_t ap[4];
      c_to_a(ap, st[2 * kq], st[2 * kq + 1]);
#pragma unroll
      for (int dp = 0; dp < kD / 16; dp++) {
        uint32_t bo[4];
        ldsm_b_kn(bo, dos, kS, kq * 16, dp * 16, lane);
        mma(dv[2 * dp], ap, bo[0], bo[1]);
        mma(dv[2 * dp + 1], ap, bo[2], bo[3]);
      }
    }
#pragma unroll
    for (int kq = 0; kq < kQ / 16; kq++) {
      uint32_t ads[4];
      c_to_a(ads, dpt[2 * kq], dpt[2 * kq + 1]);
#pragma unroll
      for (int dp = 0; dp < kD / 16; dp++) {
        uint32_t bq[4];
        ldsm_b_kn(bq, qs, kS, kq * 16, dp * 16, lane);
        mma(dk[2 * dp], ads, bq[0], bq[1]);
        mma(dk[2 * dp + 1], ads, bq[2], bq[3]);
      }
    }
  }

  // Write dK (times the softmax scale) and dV for keys < T into the k and v slots of dqkv.
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int key = key_a + i * 8;
    if (key >= p.T) continue;
    bf16_t* row = p.dqkv + (static_cast<int64_t>(b) * p.T + key) * p.qkv_row;
    bf16_t* dkr = row + static_cast<int64_t>(p.H + kvh) * p.D;
    bf16_t* dvr = row + static_cast<int64_t>(p.H + p.Hkv + kvh) * p.D;
#pragma unroll
    for (int dt = 0; dt < kD / 8; dt++) {
      const int d = dt * 8 + (lane & 3) * 2;
      if (d < p.D) {
        *reinterpret_cast<uint32_t*>(dkr + d) = pack_bf16(dk[dt][2 * i] * p.scale, dk[dt][2 * i + 1] * p.scale);
        *reinterpret_cast<uint32_t*>(dvr + d) = pack_bf16(dv[dt][2 * i], dv[dt][2 * i + 1]);
      }
    }
  }
#endif
}

// ---- 3. dQ -------------------------------------------------------------------------------------

template <int kD, int kMT>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(const Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  constexpr int kBq = dq_rows<kMT>();
  constexpr int kS = smem_stride<kD>();
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem);  // [kBq][kS]
  bf16_t* sdO = sQ + kBq * kS;                   // [kBq][kS]
  bf16_t* sK = sdO + kBq * kS;                   // [2][kBcDq][kS]
  bf16_t* sV = sK + 2 * kBcDq * kS;              // [2][kBcDq][kS]

  const int n_qt = (p.T + kBq - 1) / kBq;
  const int qt = n_qt - 1 - static_cast<int>(blockIdx.x);  // longest tiles first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / p.group;
  const int q0 = qt * kBq;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const bf16_t* base = p.qkv + static_cast<int64_t>(b) * p.T * p.qkv_row;
  const bf16_t* gk = base + static_cast<int64_t>(p.H + kvh) * p.D;
  const bf16_t* gv = base + static_cast<int64_t>(p.H + p.Hkv + kvh) * p.D;

  load_tile<kD, kBq>(sQ, base + static_cast<int64_t>(q0) * p.qkv_row + static_cast<int64_t>(h) * p.D, p.qkv_row,
                     p.T - q0, p.D);
  load_tile<kD, kBq>(sdO, p.dout + (static_cast<int64_t>(b) * p.T + q0) * p.out_row + static_cast<int64_t>(h) * p.D,
                     p.out_row, p.T - q0, p.D);
  load_tile<kD, kBcDq>(sK, gk, p.qkv_row, p.T, p.D);
  load_tile<kD, kBcDq>(sV, gv, p.qkv_row, p.T, p.D);
  cp_async_commit();

  const int last_kt = min(q0 + kBq - 1, p.T - 1) / kBcDq;
  const int wrow0 = warp * 16 * kMT;  // the warp's first row within the tile
  const int wrow = q0 + wrow0;
  const int wrow_last = wrow + 16 * kMT - 1;
  auto row_a = [&](int mt) { return wrow + mt * 16 + (lane >> 2); };  // rows row_a(mt) + 8 * i
  float lse2[kMT][2], dl[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; mt++)
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int row = row_a(mt) + i * 8;
      const int64_t at = (static_cast<int64_t>(b) * p.H + h) * p.T + row;
      lse2[mt][i] = row < p.T ? p.lse[at] * kLog2e : 0.0f;
      dl[mt][i] = row < p.T ? p.delta[at] : 0.0f;
    }
  float dq[kMT][kD / 8][4];
#pragma unroll
  for (int mt = 0; mt < kMT; mt++)
#pragma unroll
    for (int i = 0; i < kD / 8; i++) dq[mt][i][0] = dq[mt][i][1] = dq[mt][i][2] = dq[mt][i][3] = 0.0f;

  for (int kt = 0; kt <= last_kt; kt++) {
    cp_async_wait_all();
    __syncthreads();
    if (kt < last_kt) {
      const int nb = (kt + 1) & 1, k1 = (kt + 1) * kBcDq;
      load_tile<kD, kBcDq>(sK + nb * kBcDq * kS, gk + static_cast<int64_t>(k1) * p.qkv_row, p.qkv_row, p.T - k1, p.D);
      load_tile<kD, kBcDq>(sV + nb * kBcDq * kS, gv + static_cast<int64_t>(k1) * p.qkv_row, p.qkv_row, p.T - k1, p.D);
      cp_async_commit();
    }
    const bf16_t* ks = sK + (kt & 1) * kBcDq * kS;
    const bf16_t* vs = sV + (kt & 1) * kBcDq * kS;
    const int k0 = kt * kBcDq;
    if (k0 > wrow_last) continue;  // every key of the tile is after all of the warp's rows (P = 0)

    // S = Q K^T and dP = dO V^T for the warp's 16 * kMT rows.
    float s[kMT][kBcDq / 8][4], dp[kMT][kBcDq / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMT; mt++)
#pragma unroll
      for (int i = 0; i < kBcDq / 8; i++) {
        s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
        dp[mt][i][0] = dp[mt][i][1] = dp[mt][i][2] = dp[mt][i][3] = 0.0f;
      }
#pragma unroll(kMT == 1 ? kD / 16 : 1)  // kMT 2: rolled, so fragments are not all hoisted (spills)
    for (int kk = 0; kk < kD / 16; kk++) {
      uint32_t aq[kMT][4], ado[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; mt++) {
        ldsm_a(aq[mt], sQ, kS, wrow0 + mt * 16, kk * 16, lane);
        ldsm_a(ado[mt], sdO, kS, wrow0 + mt * 16, kk * 16, lane);
      }
#pragma unroll
      for (int np = 0; np < kBcDq / 16; np++) {
        uint32_t bk[4], bv[4];
        ldsm_b_nk(bk, ks, kS, np * 16, kk * 16, lane);
        ldsm_b_nk(bv, vs, kS, np * 16, kk * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; mt++) {
          mma(s[mt][2 * np], aq[mt], bk[0], bk[1]);
          mma(s[mt][2 * np + 1], aq[mt], bk[2], bk[3]);
          mma(dp[mt][2 * np], ado[mt], bv[0], bv[1]);
          mma(dp[mt][2 * np + 1], ado[mt], bv[2], bv[3]);
        }
      }
    }

    // P from the saved lse; dS = P * (dP - delta) (kept in dp).
    const bool need_mask = k0 + kBcDq - 1 > wrow || k0 + kBcDq > p.T;
#pragma unroll
    for (int mt = 0; mt < kMT; mt++)
#pragma unroll
      for (int nt = 0; nt < kBcDq / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float pr = exp2f(s[mt][nt][e] * p.scale_log2 - lse2[mt][e >> 1]);
          if (need_mask) {
            const int col = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
            const int row = row_a(mt) + (e >> 1) * 8;
            if (col > row || col >= p.T) pr = 0.0f;
          }
          dp[mt][nt][e] = pr * (dp[mt][nt][e] - dl[mt][e >> 1]);
        }
      }

    // dQ += dS K (K stored [key][d] is B with k = key).
#pragma unroll
    for (int kk = 0; kk < kBcDq / 16; kk++) {
      uint32_t a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; mt++) c_to_a(a[mt], dp[mt][2 * kk], dp[mt][2 * kk + 1]);
#pragma unroll
      for (int dt = 0; dt < kD / 16; dt++) {
        uint32_t bk[4];
        ldsm_b_kn(bk, ks, kS, kk * 16, dt * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; mt++) {
          mma(dq[mt][2 * dt], a[mt], bk[0], bk[1]);
          mma(dq[mt][2 * dt + 1], a[mt], bk[2], bk[3]);
        }
      }
    }
  }

#pragma unroll
  for (int mt = 0; mt < kMT; mt++)
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int row = row_a(mt) + i * 8;
      if (row >= p.T) continue;
      bf16_t* dqr = p.dqkv + (static_cast<int64_t>(b) * p.T + row) * p.qkv_row + static_cast<int64_t>(h) * p.D;
#pragma unroll
      for (int dt = 0; dt < kD / 8; dt++) {
        const int d = dt * 8 + (lane & 3) * 2;
        if (d < p.D)
          *reinterpret_cast<uint32_t*>(dqr + d) =
              pack_bf16(dq[mt][dt][2 * i] * p.scale, dq[mt][dt][2 * i + 1] * p.scale);
      }
    }
#endif
}

// ---- launcher ----------------------------------------------------------------------------------

template <int kD, int kMT>
void launch_dq(const Params& p, cudaStream_t stream) {
  constexpr int kBq = dq_rows<kMT>();
  launch(attention_dq_kernel<kD, kMT>, dim3(static_cast<unsigned>((p.T + kBq - 1) / kBq), p.H, p.B),
         dq_smem_bytes<kD, kMT>(), p, "attention_backward (dq)", stream);
}

// Joins the side stream back into stream 0 when it goes out of scope, on every path out
// (a launch that throws included): later work on stream 0 must not overtake the side's.
struct SideJoin {
  bool active;
  ~SideJoin() {
    if (!active) return;
    try {
      join_side();
    } catch (...) {  // a destructor must not throw; the CUDA error surfaces at the next check
    }
  }
};

// dK/dV and dQ write disjoint parts of dqkv and only read the rest, so with `overlap` the dQ
// kernel runs on the side stream beside dK/dV: causal dK/dV blocks differ up to T/64-fold in
// work, and the dQ blocks fill the SMs their tail leaves idle. Joined before returning.
template <int kD>
void launch_backward(const Params& p, int dq_rows_per_cta, bool overlap) {
  cudaStream_t dq_stream = overlap ? fork_side() : 0;  // forked after the delta kernel
  const SideJoin join{overlap};
  launch(attention_dkdv_kernel<kD>, dim3(static_cast<unsigned>((p.T + kBk - 1) / kBk), p.Hkv, p.B),
         dkdv_smem_bytes<kD>(), p, "attention_backward (dk, dv)");
  if constexpr (kD <= 64) {
    if (dq_rows_per_cta == 128) return launch_dq<kD, 2>(p, dq_stream);
  }
  launch_dq<kD, 1>(p, dq_stream);
}

}  // namespace
}  // namespace attn

void attention_backward(Tensor dqkv, Tensor dout, Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s,
                        int dq_rows_per_cta, bool overlap) {
  require_device("attention_backward");
  attn::check_attention_support("attention_backward", s, {&dqkv, &dout, &out, &qkv});
  attn::Params p = attn::make_params(s);
  p.qkv = dptr<const bf16_t>(qkv);
  p.out = dptr<bf16_t>(out);
  p.lse = dptr<float>(lse);
  p.dout = dptr<const bf16_t>(dout);
  p.dqkv = dptr<bf16_t>(dqkv);
  p.delta = static_cast<float*>(scratch(scratch_bytes_attention_backward(s), "attention_backward"));
  if (dq_rows_per_cta == 0) dq_rows_per_cta = kAttentionDqRows;
  MU_CHECK(dq_rows_per_cta == 64 || (dq_rows_per_cta == 128 && s.head_dim <= 64),
           "attention_backward: %d query rows per dq block; the kernels have 64, and 128 at head dims up to 64",
           dq_rows_per_cta);

  const int64_t rows = static_cast<int64_t>(s.B) * s.T * s.n_head;
  attn::attention_delta_kernel<<<grid_for(rows * 32, 256), 256>>>(p.delta, p.out, p.dout, rows, s.T, s.n_head,
                                                                  s.head_dim);
  MU_CUDA_CHECK_LAUNCH();
  if (s.head_dim <= 32)
    attn::launch_backward<32>(p, dq_rows_per_cta, overlap);
  else if (s.head_dim <= 64)
    attn::launch_backward<64>(p, dq_rows_per_cta, overlap);
  else
    attn::launch_backward<128>(p, dq_rows_per_cta, overlap);
}

}  // namespace cuda

size_t scratch_bytes_attention_backward(const AttentionShape& s) {
  return static_cast<size_t>(s.B) * s.n_head * s.T * sizeof(float);  // delta: (B, H, T)
}
}  // namespace mu

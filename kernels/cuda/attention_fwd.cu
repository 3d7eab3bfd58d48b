// Causal grouped-query flash attention, forward (FlashAttention-2's algorithm: Dao 2023,
// "FlashAttention-2", Algorithm 1), bf16 tensor cores, fp32 softmax state.
//
// One CTA of 4 warps per (query tile, query head, batch): 64-query tiles with 16 rows per warp,
// or 128-query tiles with 32 rows per warp (rows_per_cta; see kMT below). A warp skips the key
// tiles that lie wholly after its own rows.
// Key/value tiles of 64 stream through double-buffered shared memory (cp.async); S = Q K^T
// and O += P V run on mma.sync; the online softmax keeps a running max and sum per row, and
// the log-sum-exp is saved for the backward. No T x T matrix exists anywhere. K and V are read
// in place from the fused qkv buffer: query head h reads kv head h / group (no copies).
//
// Head dims: compiled for kD = 32, 64, 128; any D <= 128 with D % 8 == 0 runs on the next kD
// with zero padding (exact: the padded columns add 0 to every dot product and are not stored).
// T need not be a multiple of the tile: rows past T are zero-filled, masked and not stored.
#include <cmath>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace attn {
namespace {

// kMT row tiles of 16 per warp: kMT = 1 is 64 query rows per CTA, the warp's Q fragments held
// in registers; kMT = 2 is 128 rows (FlashAttention-2's tile at head dim 128), Q fragments
// reloaded from shared memory per use, and every K and V fragment feeds two row tiles: half the
// shared-memory reads per FLOP, at the cost of more registers. mu-bench times both.
template <int kMT>
constexpr int rows_per_cta() {
  return 16 * kWarps * kMT;
}
constexpr int kBc = 64;  // keys per tile

template <int kD, int kMT>
constexpr size_t fwd_smem_bytes() {
  return static_cast<size_t>(rows_per_cta<kMT>() + 4 * kBc) * smem_stride<kD>() * sizeof(bf16_t);  // Q, 2 K, 2 V
}

template <int kD, int kMT>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(const Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // mma.sync bf16 and cp.async need sm_80; the launcher refuses older devices
#else
  constexpr int kBr = rows_per_cta<kMT>();
  constexpr int kS = smem_stride<kD>();
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem);  // [kBr][kS]
  bf16_t* sK = sQ + kBr * kS;                    // [2][kBc][kS]
  bf16_t* sV = sK + 2 * kBc * kS;                // [2][kBc][kS]

  const int n_qt = (p.T + kBr - 1) / kBr;
  const int qt = n_qt - 1 - static_cast<int>(blockIdx.x);  // the longest (last) tiles start first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / p.group;
  const int q0 = qt * kBr;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const bf16_t* base = p.qkv + static_cast<int64_t>(b) * p.T * p.qkv_row;
  const bf16_t* gk = base + static_cast<int64_t>(p.H + kvh) * p.D;
  const bf16_t* gv = base + static_cast<int64_t>(p.H + p.Hkv + kvh) * p.D;

  load_tile<kD, kBr>(sQ, base + static_cast<int64_t>(q0) * p.qkv_row + static_cast<int64_t>(h) * p.D, p.qkv_row,
                     p.T - q0, p.D);
  load_tile<kD, kBc>(sK, gk, p.qkv_row, p.T, p.D);
  load_tile<kD, kBc>(sV, gv, p.qkv_row, p.T, p.D);
  cp_async_commit();

  const int last_kt = min(q0 + kBr - 1, p.T - 1) / kBc;  // causal: keys up to the tile's last row
  const int wrow0 = warp * 16 * kMT;                     // the warp's first row within the tile
  const int wrow = q0 + wrow0;                           // ... and in the sequence
  const int wrow_last = wrow + 16 * kMT - 1;
  // This thread's rows: row_a(mt) + 8 * i for row tile mt, i = 0, 1.
  auto row_a = [&](int mt) { return wrow + mt * 16 + (lane >> 2); };

  float o[kMT][kD / 8][4];
#pragma unroll
  for (int mt = 0; mt < kMT; mt++)
#pragma unroll
    for (int i = 0; i < kD / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
  float m_run[kMT][2], l_run[kMT][2];  // running max of the scaled (base-2) scores; running sum of
#pragma unroll                         // exp2(s - m) over this thread's columns only
  for (int mt = 0; mt < kMT; mt++) m_run[mt][0] = m_run[mt][1] = -INFINITY, l_run[mt][0] = l_run[mt][1] = 0.0f;
  uint32_t qf[kMT == 1 ? kD / 16 : 1][4];  // kMT = 1: the warp's Q rows as A fragments, loaded once

  for (int kt = 0; kt <= last_kt; kt++) {
    cp_async_wait_all();
    __syncthreads();  // tile kt is visible to all; everyone is done with tile kt-1's buffer
    if constexpr (kMT == 1) {
      if (kt == 0) {
#pragma unroll
        for (int kk = 0; kk < kD / 16; kk++) ldsm_a(qf[kk], sQ, kS, wrow0, kk * 16, lane);
      }
    }
    if (kt < last_kt) {  // prefetch tile kt+1 into the other buffer while this one computes
      const int nb = (kt + 1) & 1, k1 = (kt + 1) * kBc;
      load_tile<kD, kBc>(sK + nb * kBc * kS, gk + static_cast<int64_t>(k1) * p.qkv_row, p.qkv_row, p.T - k1, p.D);
      load_tile<kD, kBc>(sV + nb * kBc * kS, gv + static_cast<int64_t>(k1) * p.qkv_row, p.qkv_row, p.T - k1, p.D);
      cp_async_commit();
    }
    const bf16_t* ks = sK + (kt & 1) * kBc * kS;
    const bf16_t* vs = sV + (kt & 1) * kBc * kS;
    const int k0 = kt * kBc;
    if (k0 > wrow_last) continue;  // every key of the tile is after all of the warp's rows

    // S = Q K^T: 16 * kMT rows x kBc keys per warp.
    float s[kMT][kBc / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMT; mt++)
#pragma unroll
      for (int i = 0; i < kBc / 8; i++) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
#pragma unroll(kMT == 1 ? kD / 16 : 1)
    for (int kk = 0; kk < kD / 16; kk++) {
      uint32_t qa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; mt++) {
        if constexpr (kMT == 1) {
#pragma unroll
          for (int r = 0; r < 4; r++) qa[mt][r] = qf[kk][r];
        } else {
          ldsm_a(qa[mt], sQ, kS, wrow0 + mt * 16, kk * 16, lane);
        }
      }
#pragma unroll
      for (int np = 0; np < kBc / 16; np++) {
        uint32_t bk[4];
        ldsm_b_nk(bk, ks, kS, np * 16, kk * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; mt++) {
          mma(s[mt][2 * np], qa[mt], bk[0], bk[1]);
          mma(s[mt][2 * np + 1], qa[mt], bk[2], bk[3]);
        }
      }
    }

    // Scale to base 2; mask keys after the query (causal) and past the sequence end.
    const bool need_mask = k0 + kBc - 1 > wrow || k0 + kBc > p.T;
#pragma unroll
    for (int mt = 0; mt < kMT; mt++)
#pragma unroll
      for (int nt = 0; nt < kBc / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          float x = s[mt][nt][e] * p.scale_log2;
          if (need_mask) {
            const int col = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
            const int row = row_a(mt) + (e >> 1) * 8;
            if (col > row || col >= p.T) x = -INFINITY;
          }
          s[mt][nt][e] = x;
        }
      }

    // Online softmax: the quad (4 lanes) holding a row agrees on its max.
#pragma unroll
    for (int mt = 0; mt < kMT; mt++)
#pragma unroll
      for (int i = 0; i < 2; i++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kBc / 8; nt++) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * i], s[mt][nt][2 * i + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run[mt][i], mx);
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet
        const float alpha = exp2f(m_run[mt][i] - m_use);
        m_run[mt][i] = m_new;
        float rs = 0.0f;
#pragma unroll
        for (int nt = 0; nt < kBc / 8; nt++) {
          s[mt][nt][2 * i] = exp2f(s[mt][nt][2 * i] - m_use);
          s[mt][nt][2 * i + 1] = exp2f(s[mt][nt][2 * i + 1] - m_use);
          rs += s[mt][nt][2 * i] + s[mt][nt][2 * i + 1];
        }
        l_run[mt][i] = l_run[mt][i] * alpha + rs;
#pragma unroll
        for (int dt = 0; dt < kD / 8; dt++) {
          o[mt][dt][2 * i] *= alpha;
          o[mt][dt][2 * i + 1] *= alpha;
        }
      }

    // O += P V (P rounded to bf16 as the A operand; the sum l keeps the fp32 values).
#pragma unroll
    for (int kk = 0; kk < kBc / 16; kk++) {
      uint32_t a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; mt++) c_to_a(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < kD / 16; dp++) {
        uint32_t bv[4];
        ldsm_b_kn(bv, vs, kS, kk * 16, dp * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; mt++) {
          mma(o[mt][2 * dp], a[mt], bv[0], bv[1]);
          mma(o[mt][2 * dp + 1], a[mt], bv[2], bv[3]);
        }
      }
    }
  }

  // out = O / l; lse = ln(sum exp(scale * q.k)) = ln2 * (m + log2(l)).
#pragma unroll
  for (int mt = 0; mt < kMT; mt++)
#pragma unroll
    for (int i = 0; i < 2; i++) {
      float l = l_run[mt][i];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int row = row_a(mt) + i * 8;
      if (row >= p.T) continue;
      const float inv = 1.0f / l;
      bf16_t* orow = p.out + (static_cast<int64_t>(b) * p.T + row) * p.out_row + static_cast<int64_t>(h) * p.D;
#pragma unroll
      for (int dt = 0; dt < kD / 8; dt++) {
        const int d = dt * 8 + (lane & 3) * 2;
        if (d < p.D)
          *reinterpret_cast<uint32_t*>(orow + d) = pack_bf16(o[mt][dt][2 * i] * inv, o[mt][dt][2 * i + 1] * inv);
      }
      if ((lane & 3) == 0) p.lse[(static_cast<int64_t>(b) * p.H + h) * p.T + row] = (m_run[mt][i] + log2f(l)) * kLn2;
    }
#endif
}

template <int kD, int kMT>
void launch_forward(const Params& p) {
  constexpr int kBr = rows_per_cta<kMT>();
  const dim3 grid(static_cast<unsigned>((p.T + kBr - 1) / kBr), p.H, p.B);
  launch(attention_forward_kernel<kD, kMT>, grid, fwd_smem_bytes<kD, kMT>(), p, "attention_forward");
}

template <int kMT>
void launch_forward_rows(const Params& p) {
  if (p.D <= 32)
    launch_forward<32, kMT>(p);
  else if (p.D <= 64)
    launch_forward<64, kMT>(p);
  else
    launch_forward<128, kMT>(p);
}

}  // namespace

// Checks shared by the forward and backward entries (attention_bwd.cu).
void check_attention_support(const char* op, const AttentionShape& s, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    MU_CHECK(t->dtype == DType::BF16, "%s: %s is %s; the cuda attention kernels take BF16 q/k/v/out", op,
             t->str().c_str(), dtype_name(t->dtype));
    MU_CHECK(aligned_to(t->data, 16), "%s: %s is not 16-byte aligned (the kernels load 16-byte vectors)", op,
             t->str().c_str());
  }
  MU_CHECK(s.head_dim % 8 == 0 && s.head_dim <= 128,
           "%s: head_dim %d is not supported by the cuda kernels (need a multiple of 8, at most 128)", op, s.head_dim);
  MU_CHECK(s.n_head <= 65535 && s.B <= 65535, "%s: n_head %d or B %d exceeds the grid limit 65535", op, s.n_head, s.B);
  const DeviceInfo& dev = device_info();
  MU_CHECK(dev.cc_major >= 8, "%s: device %s is sm_%d%d; the attention kernels need sm_80 or newer", op,
           dev.name.c_str(), dev.cc_major, dev.cc_minor);
}

Params make_params(const AttentionShape& s) {
  Params p{};
  p.B = s.B;
  p.T = s.T;
  p.H = s.n_head;
  p.Hkv = s.n_kv_head;
  p.D = s.head_dim;
  p.group = s.n_head / s.n_kv_head;
  p.qkv_row = static_cast<int64_t>(s.n_head + 2 * s.n_kv_head) * s.head_dim;
  p.out_row = static_cast<int64_t>(s.n_head) * s.head_dim;
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  p.scale_log2 = p.scale * kLog2e;
  return p;
}

}  // namespace attn

void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s, int rows_per_cta) {
  require_device("attention_forward");
  attn::check_attention_support("attention_forward", s, {&qkv, &out});
  attn::Params p = attn::make_params(s);
  p.qkv = dptr<const bf16_t>(qkv);
  p.out = dptr<bf16_t>(out);
  p.lse = dptr<float>(lse);
  if (rows_per_cta == 0) rows_per_cta = kAttentionForwardRows;
  MU_CHECK(rows_per_cta == 64 || rows_per_cta == 128,
           "attention_forward: %d query rows per block; the kernels have 64 and 128", rows_per_cta);
  if (rows_per_cta == 64)
    attn::launch_forward_rows<1>(p);
  else
    attn::launch_forward_rows<2>(p);
}

}  // namespace cuda
}  // namespace mu

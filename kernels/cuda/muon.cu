// The Muon per-matrix ops on the GPU (kernels/muon.h): momentum into the orthogonalization
// workspace, per-item Frobenius normalisation, NorMuon's per-neuron rescale, and the update.
//
// Same formulas and operation order as the cpu reference (kernels/cpu/muon.cpp); explicit
// __f*_rn / __d*_rn intrinsics keep nvcc from contracting a multiply and an add into an FMA,
// so each operation rounds once as written there. (The host compiler may contract the cpu
// reference under -march=native, so the backends agree to a few ulps, not bitwise.)
//
// State (momentum, NorMuon S, the workspace X) is fp32; the gradient may be BF16 or F32; the
// parameter BF16 or F32 (the optimizer applies the update to an fp32 master and writes the
// bf16 param from it, see optim/muon.cpp). Reductions are in double, in an order fixed by the
// shapes alone (no float atomics): results repeat bitwise run to run. No op syncs the host.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/scratch.h"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

// Element-wise ops walk 32 x 32 tiles with 32 x 8 threads (4 rows each), so a transposed read
// or write goes through shared memory and stays coalesced.
constexpr int kTile = 32, kTileRows = 8;
constexpr int kThreads = 256;
constexpr int64_t kNormChunk = 16384;  // Frobenius pass 1: elements per block (a fixed partition)
static_assert(kTile % kTileRows == 0, "a tile's rows must split evenly over the block's rows");

int64_t rows_of(const Tensor& t) { return t.size(t.ndim() - 2); }
int64_t cols_of(const Tensor& t) { return t.size(t.ndim() - 1); }

struct MomentumScalars {
  float mu, one_minus_mu, gs;
  bool sgd, nesterov;
};

// buf (A, B) updated in place; out = U, (A, B) or (B, A) when TRANSPOSE.
template <class TG, bool TRANSPOSE>
__global__ void momentum_kernel(float* buf, const TG* grad, float* out, int64_t A, int64_t B, MomentumScalars k) {
  __shared__ float tile[kTile][kTile + 1];  // +1: no bank conflicts on the transposed read
  const int64_t i0 = int64_t{blockIdx.y} * kTile, j0 = int64_t{blockIdx.x} * kTile;
  const int tx = threadIdx.x, ty = threadIdx.y;
#pragma unroll
  for (int r = ty; r < kTile; r += kTileRows) {
    const int64_t i = i0 + r, j = j0 + tx;
    if (i >= A || j >= B) continue;
    const int64_t e = i * B + j;
    const float g = __fmul_rn(to_f32(grad[e]), k.gs);  // G = grad * grad_scale
    const float b0 = buf[e];
    float b, u;
    if (k.sgd) {
      b = __fadd_rn(__fmul_rn(k.mu, b0), g);                    // buf = mu*buf + G
      u = k.nesterov ? __fadd_rn(g, __fmul_rn(k.mu, b)) : b;   // U = G + mu*buf | buf
    } else {
      b = __fadd_rn(b0, __fmul_rn(k.one_minus_mu, __fsub_rn(g, b0)));       // buf = buf + (1-mu)*(G - buf)
      u = k.nesterov ? __fadd_rn(g, __fmul_rn(k.mu, __fsub_rn(b, g))) : b;  // U = G + mu*(buf - G) | buf
    }
    buf[e] = b;
    if constexpr (TRANSPOSE)
      tile[r][tx] = u;
    else
      out[e] = u;
  }
  if constexpr (TRANSPOSE) {
    __syncthreads();
    // out is (B, A): its row j0 + r, column i0 + tx holds U[i0 + tx][j0 + r]
#pragma unroll
    for (int r = ty; r < kTile; r += kTileRows) {
      const int64_t j = j0 + r, i = i0 + tx;
      if (i < A && j < B) out[j * A + i] = tile[tx][r];
    }
  }
}

struct ApplyScalars {
  float step, decay, keep;  // lr*scale, lr*wd, 1 - lr*wd
  int kind;                 // WeightDecayKind
};

// param (A, B) updated in place from o, (A, B) or (B, A) when TRANSPOSE.
template <class TP, bool TRANSPOSE>
__global__ void apply_kernel(TP* param, const float* o, int64_t A, int64_t B, ApplyScalars k) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t i0 = int64_t{blockIdx.y} * kTile, j0 = int64_t{blockIdx.x} * kTile;
  const int tx = threadIdx.x, ty = threadIdx.y;
  if constexpr (TRANSPOSE) {
    // o's row j0 + r, column i0 + tx is O[i0 + tx][j0 + r]
#pragma unroll
    for (int r = ty; r < kTile; r += kTileRows) {
      const int64_t j = j0 + r, i = i0 + tx;
      if (i < A && j < B) tile[r][tx] = o[j * A + i];
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = ty; r < kTile; r += kTileRows) {
    const int64_t i = i0 + r, j = j0 + tx;
    if (i >= A || j >= B) continue;
    const int64_t e = i * B + j;
    float ok;
    if constexpr (TRANSPOSE)
      ok = tile[tx][r];
    else
      ok = o[e];
    float w = to_f32(param[e]);
    if (k.kind == static_cast<int>(WeightDecayKind::Decoupled)) {
      w = __fmul_rn(w, k.keep);                 // W = W*(1 - lr*wd)
      w = __fsub_rn(w, __fmul_rn(k.step, ok));  // W = W - lr*scale*O
    } else if (k.kind == static_cast<int>(WeightDecayKind::Cautious)) {
      const float mask = __fmul_rn(ok, w) >= 0.0f ? 1.0f : 0.0f;  // [O*W >= 0], W before the step
      w = __fsub_rn(__fsub_rn(w, __fmul_rn(__fmul_rn(k.decay, mask), w)), __fmul_rn(k.step, ok));
    } else {
      w = __fsub_rn(w, __fmul_rn(k.step, ok));
    }
    param[e] = from_f32<TP>(w);
  }
}

// Frobenius pass 1: block (c, b) sums the squares of chunk c of item b in double.
__global__ void frob_partial_kernel(double* partial, const float* x, int64_t per_item, int64_t nchunks) {
  __shared__ double red[32];
  const float* item = x + int64_t{blockIdx.y} * per_item;
  const int64_t lo = int64_t{blockIdx.x} * kNormChunk;
  const int64_t hi = lo + kNormChunk < per_item ? lo + kNormChunk : per_item;
  double s = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += static_cast<double>(item[i]) * item[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) partial[int64_t{blockIdx.y} * nchunks + blockIdx.x] = s;
}

// pass 2: block b sums item b's partials in a fixed order and forms 1 / (||X_b|| * s + eps),
// in double as the cpu does, rounded to float once.
__global__ void frob_factor_kernel(float* factor, const double* partial, int64_t nchunks, double norm_scale,
                                   double eps) {
  __shared__ double red[32];
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < nchunks; c += blockDim.x) s += partial[int64_t{blockIdx.x} * nchunks + c];
  s = block_sum(s, red);
  if (threadIdx.x == 0) factor[blockIdx.x] = static_cast<float>(1.0 / __dadd_rn(__dmul_rn(sqrt(s), norm_scale), eps));
}

// pass 3: X_b *= factor[b]; blockIdx.y is the item.
__global__ void frob_scale_kernel(float* x, const float* factor, int64_t per_item) {
  float* item = x + int64_t{blockIdx.y} * per_item;
  const float f = factor[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < per_item; i += int64_t{gridDim.x} * blockDim.x)
    item[i] = __fmul_rn(item[i], f);
}

// NorMuon sums of O^2 per row: one block per row.
__global__ void row_sumsq_kernel(double* sums, const float* o, int64_t n) {
  __shared__ double red[32];
  const float* row = o + int64_t{blockIdx.x} * n;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += static_cast<double>(row[j]) * row[j];
  s = block_sum(s, red);
  if (threadIdx.x == 0) sums[blockIdx.x] = s;
}

// ... per column: one thread per column walks the rows in order (neighbouring threads read
// neighbouring columns, so every row read is coalesced).
__global__ void col_sumsq_kernel(double* sums, const float* o, int64_t m, int64_t n) {
  const int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (j >= n) return;
  double s = 0.0;
  for (int64_t i = 0; i < m; i++) s += static_cast<double>(o[i * n + j]) * o[i * n + j];
  sums[j] = s;
}

// One block: S = S + (1-beta2)*(v - S) per neuron, the norms before and after dividing by
// sqrt(max(S, 1e-10)), and the per-neuron factor inv * keep_norm written over sums.
__global__ void normuon_stats_kernel(double* sums, float* S, int64_t len, int64_t count, float one_minus_b2) {
  __shared__ double red[32];
  double old_sq = 0.0, new_sq = 0.0;
  for (int64_t k = threadIdx.x; k < len; k += blockDim.x) {
    const double sk = sums[k];
    const float v = static_cast<float>(sk / static_cast<double>(count));
    const float s = __fadd_rn(S[k], __fmul_rn(one_minus_b2, __fsub_rn(v, S[k])));
    S[k] = s;
    const double inv = 1.0 / sqrt(fmax(static_cast<double>(s), 1e-10));
    old_sq += sk;
    new_sq += __dmul_rn(__dmul_rn(sk, inv), inv);
    sums[k] = inv;
  }
  old_sq = block_sum(old_sq, red);
  new_sq = block_sum(new_sq, red);
  // ||O'||_F = ||O||_F; a zero O stays exactly zero (no 0/0)
  const double keep_norm = new_sq > 0.0 ? sqrt(old_sq / new_sq) : 0.0;
  for (int64_t k = threadIdx.x; k < len; k += blockDim.x) sums[k] = __dmul_rn(sums[k], keep_norm);  // own k only
}

__global__ void normuon_scale_kernel(float* o, const double* factor, int64_t m, int64_t n, bool per_row) {
  const int64_t total = m * n;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t k = per_row ? e / n : e % n;
    o[e] = static_cast<float>(__dmul_rn(static_cast<double>(o[e]), factor[k]));
  }
}

// x[i][j] = x[j][i] below the diagonal blocks (i / block > j / block), for the 32 x 32 tile at
// rows i0.., columns j0.. of item blockIdx.z: read the mirror tile (rows j0.., columns i0..)
// coalesced, write through shared memory. Tiles with nothing below the diagonal blocks return.
// A tile straddling a block edge also reads mirror elements that another block may be writing
// (they lie below the diagonal blocks too); those values are never stored, so no race matters.
template <class T>
__global__ void mirror_lower_kernel(T* x, int64_t m, int64_t block) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t i0 = int64_t{blockIdx.y} * kTile, j0 = int64_t{blockIdx.x} * kTile;
  const int64_t i_last = min(i0 + kTile, m) - 1;
  if (i_last / block <= j0 / block) return;  // every (i, j) of the tile has i / block <= j / block
  T* a = x + int64_t{blockIdx.z} * m * m;
  const int tx = threadIdx.x, ty = threadIdx.y;
#pragma unroll
  for (int r = ty; r < kTile; r += kTileRows) {
    const int64_t j = j0 + r, i = i0 + tx;  // the mirror element a[j][i]
    if (i < m && j < m) tile[r][tx] = a[j * m + i];
  }
  __syncthreads();
#pragma unroll
  for (int r = ty; r < kTile; r += kTileRows) {
    const int64_t i = i0 + r, j = j0 + tx;
    if (i < m && j < m && i / block > j / block) a[i * m + j] = tile[tx][r];
  }
}

// ---- launch helpers --------------------------------------------------------------------------

dim3 tile_grid(const char* op, int64_t A, int64_t B) {
  const int64_t gx = ceil_div(B, kTile), gy = ceil_div(A, kTile);
  MU_CHECK(gy <= 65535 && gx <= 0x7fffffff, "%s: a (%lld, %lld) matrix has more than %d rows, the cuda limit", op,
           static_cast<long long>(A), static_cast<long long>(B), 65535 * kTile);
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
}

void check_f32(const char* op, const char* what, const Tensor& t) {
  MU_CHECK(t.dtype == DType::F32, "%s: %s has dtype %s; it is fp32 state on cuda (F32)", op, what,
           dtype_name(t.dtype));
}

}  // namespace

void muon_momentum(const MuonMomentumParams& p) {
  const char* op = "muon_momentum";
  require_device(op);
  check_f32(op, "buf", p.buf);
  check_f32(op, "out", p.out);
  check_float_dtype(op, "grad", p.grad);
  const int64_t A = rows_of(p.buf), B = cols_of(p.buf);
  if (A * B == 0) return;
  MomentumScalars k;
  k.mu = p.mu;
  k.one_minus_mu = 1.0f - p.mu;  // the cpu's float expression
  k.gs = p.grad_scale;
  k.sgd = p.kind == MomentumKind::Sgd;
  k.nesterov = p.nesterov;
  const dim3 grid = tile_grid(op, A, B), block(kTile, kTileRows);
  dispatch_float(p.grad.dtype, [&](auto gtag) {
    using TG = decltype(gtag);
    if (p.transpose_out)
      momentum_kernel<TG, true><<<grid, block>>>(dptr<float>(p.buf), dptr<const TG>(p.grad), dptr<float>(p.out), A, B, k);
    else
      momentum_kernel<TG, false><<<grid, block>>>(dptr<float>(p.buf), dptr<const TG>(p.grad), dptr<float>(p.out), A, B, k);
    MU_CUDA_CHECK_LAUNCH();
  });
}

void frobenius_normalize(Tensor x, double norm_scale, double eps) {
  const char* op = "frobenius_normalize";
  require_device(op);
  check_f32(op, "x", x);
  const int64_t batch = x.size(0), per_item = x.size(1) * x.size(2);
  if (batch == 0 || per_item == 0) return;
  MU_CHECK(batch <= 65535, "%s: %lld batch items, the cuda limit is 65535", op, static_cast<long long>(batch));
  const int64_t nchunks = ceil_div(per_item, kNormChunk);
  MU_CHECK(nchunks <= 0x7fffffff, "%s: an item of %lld elements is too large", op, static_cast<long long>(per_item));
  const size_t partial_bytes = scratch_align(static_cast<size_t>(batch * nchunks) * sizeof(double));
  char* s = static_cast<char*>(scratch(scratch_bytes_frobenius_normalize(batch, per_item), op));
  double* partial = reinterpret_cast<double*>(s);
  float* factor = reinterpret_cast<float*>(s + partial_bytes);
  frob_partial_kernel<<<dim3(static_cast<unsigned>(nchunks), static_cast<unsigned>(batch)), kThreads>>>(
      partial, dptr<float>(x), per_item, nchunks);
  MU_CUDA_CHECK_LAUNCH();
  frob_factor_kernel<<<static_cast<unsigned>(batch), kThreads>>>(factor, partial, nchunks, norm_scale, eps);
  MU_CUDA_CHECK_LAUNCH();
  // blocks per item: enough to fill the device across the batch, never more than the item needs
  const int64_t per_item_blocks = std::max<int64_t>(1, std::min<int64_t>(ceil_div(per_item, kThreads),
                                                                         grid_for(per_item * batch, kThreads) / batch));
  frob_scale_kernel<<<dim3(static_cast<unsigned>(per_item_blocks), static_cast<unsigned>(batch)), kThreads>>>(
      dptr<float>(x), factor, per_item);
  MU_CUDA_CHECK_LAUNCH();
}

void normuon_normalize(const NorMuonParams& p) {
  const char* op = "normuon_normalize";
  require_device(op);
  check_f32(op, "o", p.o);
  check_f32(op, "v", p.v);
  const int64_t m = rows_of(p.o), n = cols_of(p.o);
  if (m * n == 0) return;
  const int64_t len = p.per_row ? m : n, count = p.per_row ? n : m;  // neurons, entries per neuron
  MU_CHECK(len <= 0x7fffffff, "%s: %lld neurons is beyond the cuda grid", op, static_cast<long long>(len));
  double* sums = static_cast<double*>(scratch(scratch_bytes_normuon(len), op));
  if (p.per_row)
    row_sumsq_kernel<<<static_cast<unsigned>(m), kThreads>>>(sums, dptr<float>(p.o), n);
  else
    col_sumsq_kernel<<<static_cast<unsigned>(ceil_div(n, kThreads)), kThreads>>>(sums, dptr<float>(p.o), m, n);
  MU_CUDA_CHECK_LAUNCH();
  normuon_stats_kernel<<<1, 1024>>>(sums, dptr<float>(p.v), len, count, 1.0f - p.beta2);
  MU_CUDA_CHECK_LAUNCH();
  normuon_scale_kernel<<<grid_for(m * n, kThreads), kThreads>>>(dptr<float>(p.o), sums, m, n, p.per_row);
  MU_CUDA_CHECK_LAUNCH();
}

void muon_apply(const MuonApplyParams& p) {
  const char* op = "muon_apply";
  require_device(op);
  check_float_dtype(op, "param", p.param);
  check_f32(op, "o", p.o);
  const int64_t A = rows_of(p.param), B = cols_of(p.param);
  if (A * B == 0) return;
  ApplyScalars k;  // the cpu's expressions: double products rounded to float once
  k.step = static_cast<float>(p.lr * p.scale);
  k.decay = static_cast<float>(p.lr * p.weight_decay);
  k.keep = static_cast<float>(1.0 - p.lr * p.weight_decay);
  k.kind = static_cast<int>(p.wd_kind);
  const dim3 grid = tile_grid(op, A, B), block(kTile, kTileRows);
  dispatch_float(p.param.dtype, [&](auto ptag) {
    using TP = decltype(ptag);
    if (p.o_transposed)
      apply_kernel<TP, true><<<grid, block>>>(dptr<TP>(p.param), dptr<const float>(p.o), A, B, k);
    else
      apply_kernel<TP, false><<<grid, block>>>(dptr<TP>(p.param), dptr<const float>(p.o), A, B, k);
    MU_CUDA_CHECK_LAUNCH();
  });
}

void mirror_lower_blocks(Tensor x, int64_t block) {
  const char* op = "mirror_lower_blocks";
  require_device(op);
  check_float_dtype(op, "x", x);
  const int64_t batch = x.size(0), m = x.size(1);
  if (batch == 0 || m <= block) return;  // one block: nothing lies below the diagonal blocks
  MU_CHECK(batch <= 65535, "%s: %lld batch items, the cuda limit is 65535", op, static_cast<long long>(batch));
  dim3 grid = tile_grid(op, m, m);
  grid.z = static_cast<unsigned>(batch);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    mirror_lower_kernel<T><<<grid, dim3(kTile, kTileRows)>>>(dptr<T>(x), m, block);
    MU_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace cuda

size_t scratch_bytes_frobenius_normalize(int64_t batch, int64_t per_item) {
  // per-chunk partial sums (doubles), then one scale factor per item
  const int64_t nchunks = cuda::ceil_div(per_item, cuda::kNormChunk);
  return cuda::scratch_align(static_cast<size_t>(batch * nchunks) * sizeof(double)) +
         static_cast<size_t>(batch) * sizeof(float);
}

size_t scratch_bytes_normuon(int64_t neurons) { return static_cast<size_t>(neurons) * sizeof(double); }
}  // namespace mu

// Element-wise ops on whole tensors (add, accumulate, scale, fill, fill_uniform, copy with
// F32 <-> BF16 conversion, sum of squares), F32 or BF16, fp32 arithmetic. Memory-bound: 8
// elements per thread per step when every pointer is 16-byte aligned and the count divides,
// else 1.
#include <cstring>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/scratch.h"
#include "kernels/uniform_hash.h"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// ---- kernels -------------------------------------------------------------------------------

// Grid-stride over n/VEC vectors.
#define MU_GRID_STRIDE(i, nvec) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (nvec); i += int64_t{gridDim.x} * blockDim.x)

template <class T, int VEC>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t nvec) {
  MU_GRID_STRIDE(i, nvec) {
    float x[VEC], y[VEC];
    load_vec<VEC>(a + i * VEC, x);
    load_vec<VEC>(b + i * VEC, y);
#pragma unroll
    for (int k = 0; k < VEC; k++) x[k] += y[k];
    store_vec<VEC>(out + i * VEC, x);
  }
}

template <class TD, class TS, int VEC>
__global__ void accumulate_kernel(TD* dst, const TS* src, int64_t nvec) {
  MU_GRID_STRIDE(i, nvec) {
    float x[VEC], y[VEC];
    load_vec<VEC>(dst + i * VEC, x);
    load_vec<VEC>(src + i * VEC, y);
#pragma unroll
    for (int k = 0; k < VEC; k++) x[k] += y[k];
    store_vec<VEC>(dst + i * VEC, x);
  }
}

template <class T, int VEC>
__global__ void scale_kernel(T* t, float s, int64_t nvec) {
  MU_GRID_STRIDE(i, nvec) {
    float x[VEC];
    load_vec<VEC>(t + i * VEC, x);
#pragma unroll
    for (int k = 0; k < VEC; k++) x[k] *= s;
    store_vec<VEC>(t + i * VEC, x);
  }
}

template <class T, int VEC>
__global__ void fill_kernel(T* t, float v, int64_t nvec) {
  MU_GRID_STRIDE(i, nvec) {
    float x[VEC];
#pragma unroll
    for (int k = 0; k < VEC; k++) x[k] = v;
    store_vec<VEC>(t + i * VEC, x);
  }
}

template <class TD, class TS, int VEC>
__global__ void convert_kernel(TD* dst, const TS* src, int64_t nvec) {
  MU_GRID_STRIDE(i, nvec) {
    float x[VEC];
    load_vec<VEC>(src + i * VEC, x);
    store_vec<VEC>(dst + i * VEC, x);
  }
}

template <class T>
__global__ void fill_uniform_kernel(T* t, uint64_t seed, float lo, float hi, int64_t n) {
  MU_GRID_STRIDE(i, n) {
    const float v[1] = {uniform_at(seed, i, lo, hi)};
    store_vec<1>(t + i, v);
  }
}

__global__ void copy16_kernel(uint4* dst, const uint4* src, int64_t n16) {
  MU_GRID_STRIDE(i, n16) { dst[i] = src[i]; }
}

// sum_squares, pass 1: block b sums the squares of elements [b*kChunk, (b+1)*kChunk) in
// double. The chunking depends only on n, so the result is the same on every run.
constexpr int64_t kSsqChunk = 16384;

// One chunk [lo, hi) of x: each thread sums its elements in order, in double. A full chunk
// has a fixed trip count and is written loads first, so the compiler may keep several in
// flight (ptxas at sm_90a schedules them in a few groups, 32-38 registers); the order of the
// sum is the same either way.
template <class T, int VEC>
__device__ double sum_squares_chunk(const T* x, int64_t lo, int64_t hi) {
  double s = 0.0;
  if (hi - lo == kSsqChunk && blockDim.x == kThreads) {
    constexpr int kIters = static_cast<int>(kSsqChunk / (kThreads * VEC));
    float v[kIters][VEC];
#pragma unroll
    for (int it = 0; it < kIters; it++) load_vec<VEC>(x + lo + (int64_t{it} * kThreads + threadIdx.x) * VEC, v[it]);
#pragma unroll
    for (int it = 0; it < kIters; it++)
#pragma unroll
      for (int k = 0; k < VEC; k++) s += static_cast<double>(v[it][k]) * v[it][k];
    return s;
  }
  for (int64_t i = lo + int64_t{threadIdx.x} * VEC; i < hi; i += int64_t{blockDim.x} * VEC) {
    float v[VEC];
    load_vec<VEC>(x + i, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) s += static_cast<double>(v[k]) * v[k];
  }
  return s;
}

// Several tensors of one dtype in one launch (a training step sums ~100-300 gradients): the
// table travels by value as the kernel's parameter, well under the 4 KB limit.
constexpr int kSsqTable = 64;
struct SsqTable {
  const void* ptr[kSsqTable];
  int64_t n[kSsqTable];
  int64_t first[kSsqTable + 1];  // tensor i's chunks are blocks [first[i], first[i+1])
  uint64_t vec8;                 // bit i: tensor i takes 8-wide loads
  int count;
};

// Block b sums chunk b of the launch into partial[b]; the chunking depends only on the sizes,
// so the result is the same on every run.
template <class T>
__global__ void sum_squares_partial_kernel(double* partial, const SsqTable tab) {
  __shared__ double red[32];
  const int64_t b = blockIdx.x;
  int lo_t = 0, hi_t = tab.count - 1;  // the tensor holding chunk b: first[t] <= b < first[t+1]
  while (lo_t < hi_t) {
    const int mid = (lo_t + hi_t + 1) / 2;
    if (tab.first[mid] <= b) lo_t = mid;
    else hi_t = mid - 1;
  }
  const int t = lo_t;
  const T* x = static_cast<const T*>(tab.ptr[t]);
  const int64_t lo = (b - tab.first[t]) * kSsqChunk, hi = lo + kSsqChunk < tab.n[t] ? lo + kSsqChunk : tab.n[t];
  double s = (tab.vec8 >> t) & 1 ? sum_squares_chunk<T, 8>(x, lo, hi) : sum_squares_chunk<T, 1>(x, lo, hi);
  s = block_sum(s, red);
  if (threadIdx.x == 0) partial[b] = s;
}

// pass 2: one block sums the partials (thread i takes i, i + blockDim, ... in order).
__global__ void sum_squares_final_kernel(double* out, const double* partial, int64_t nparts) {
  __shared__ double red[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < nparts; i += blockDim.x) s += partial[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) *out = s;
}

#undef MU_GRID_STRIDE

// ---- launchers -----------------------------------------------------------------------------

// 8-wide vectors when n divides and every pointer is 16-byte aligned.
bool use_vec8(int64_t n, std::initializer_list<const void*> ptrs) {
  if (n % 8 != 0) return false;
  for (const void* p : ptrs)
    if (!aligned_to(p, 16)) return false;
  return true;
}

template <class T>
void launch_add(T* out, const T* a, const T* b, int64_t n) {
  if (use_vec8(n, {out, a, b}))
    add_kernel<T, 8><<<grid_for(n / 8, kThreads), kThreads>>>(out, a, b, n / 8);
  else
    add_kernel<T, 1><<<grid_for(n, kThreads), kThreads>>>(out, a, b, n);
  MU_CUDA_CHECK_LAUNCH();
}

template <class TD, class TS>
void launch_accumulate(TD* dst, const TS* src, int64_t n) {
  if (use_vec8(n, {dst, src}))
    accumulate_kernel<TD, TS, 8><<<grid_for(n / 8, kThreads), kThreads>>>(dst, src, n / 8);
  else
    accumulate_kernel<TD, TS, 1><<<grid_for(n, kThreads), kThreads>>>(dst, src, n);
  MU_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_scale(T* t, float s, int64_t n) {
  if (use_vec8(n, {t}))
    scale_kernel<T, 8><<<grid_for(n / 8, kThreads), kThreads>>>(t, s, n / 8);
  else
    scale_kernel<T, 1><<<grid_for(n, kThreads), kThreads>>>(t, s, n);
  MU_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_fill(T* t, float v, int64_t n) {
  if (use_vec8(n, {t}))
    fill_kernel<T, 8><<<grid_for(n / 8, kThreads), kThreads>>>(t, v, n / 8);
  else
    fill_kernel<T, 1><<<grid_for(n, kThreads), kThreads>>>(t, v, n);
  MU_CUDA_CHECK_LAUNCH();
}

template <class TD, class TS>
void launch_convert(TD* dst, const TS* src, int64_t n) {
  if (use_vec8(n, {dst, src}))
    convert_kernel<TD, TS, 8><<<grid_for(n / 8, kThreads), kThreads>>>(dst, src, n / 8);
  else
    convert_kernel<TD, TS, 1><<<grid_for(n, kThreads), kThreads>>>(dst, src, n);
  MU_CUDA_CHECK_LAUNCH();
}

// Pass 1 for tensors [begin, end) of one dtype, at most kSsqTable: their partials go to
// partial[0, total chunks), tensor by tensor.
template <class T>
int64_t launch_sum_squares_partial(double* partial, const std::vector<Tensor>& ts, size_t begin, size_t end) {
  SsqTable tab{};
  int64_t chunks = 0;
  for (size_t i = begin; i < end; i++) {
    const int k = tab.count++;
    tab.ptr[k] = ts[i].data;
    tab.n[k] = ts[i].numel();
    tab.first[k] = chunks;
    if (use_vec8(tab.n[k], {ts[i].data})) tab.vec8 |= uint64_t{1} << k;
    chunks += ceil_div(tab.n[k], kSsqChunk);
  }
  tab.first[tab.count] = chunks;
  if (chunks == 0) return 0;
  sum_squares_partial_kernel<T><<<static_cast<unsigned>(chunks), kThreads>>>(partial, tab);
  MU_CUDA_CHECK_LAUNCH();
  return chunks;
}

// Pass 2 over partial[0, nparts) into partial[nparts], then the one readback (a host wait).
double finish_sum_squares(double* partial, int64_t nparts) {
  sum_squares_final_kernel<<<1, 1024>>>(partial + nparts, partial, nparts);
  MU_CUDA_CHECK_LAUNCH();
  double out = 0.0;
  MU_CUDA_CHECK(cudaMemcpy(&out, partial + nparts, sizeof(double), cudaMemcpyDeviceToHost));
  return out;
}

// F32 <-> BF16 across host and device: convert on the host, one cudaMemcpy.
void copy_convert_staged(Tensor dst, Tensor src) {
  const size_t n = static_cast<size_t>(src.numel());
  if (src.device == Device::CPU) {  // host src -> device dst (converted on the host)
    std::vector<char> staged(dst.nbytes());
    if (dst.dtype == DType::F32)
      convert_to_f32(reinterpret_cast<float*>(staged.data()), src.data, src.dtype, n);
    else
      convert_from_f32(staged.data(), dst.dtype, static_cast<const float*>(src.data), n);
    MU_CUDA_CHECK(cudaMemcpy(dst.data, staged.data(), dst.nbytes(), cudaMemcpyHostToDevice));
  } else {  // device src -> host dst
    std::vector<char> staged(src.nbytes());
    MU_CUDA_CHECK(cudaMemcpy(staged.data(), src.data, src.nbytes(), cudaMemcpyDeviceToHost));
    if (dst.dtype == DType::F32)
      convert_to_f32(static_cast<float*>(dst.data), staged.data(), src.dtype, n);
    else
      convert_from_f32(dst.data, dst.dtype, reinterpret_cast<const float*>(staged.data()), n);
  }
}

}  // namespace

// ---- entries ---------------------------------------------------------------------------------

void add(Tensor out, Tensor a, Tensor b) {
  require_device("add");
  const char* op = "add";
  check_float_dtype(op, "out", out);
  MU_CHECK(a.dtype == out.dtype && b.dtype == out.dtype, "%s: out, a, b must share a dtype on cuda (got %s, %s, %s)",
           op, dtype_name(out.dtype), dtype_name(a.dtype), dtype_name(b.dtype));
  dispatch_float(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_add<T>(dptr<T>(out), dptr<const T>(a), dptr<const T>(b), out.numel());
  });
}

void accumulate(Tensor dst, Tensor src) {
  require_device("accumulate");
  const char* op = "accumulate";
  check_float_dtype(op, "dst", dst);
  check_float_dtype(op, "src", src);
  dispatch_float(dst.dtype, [&](auto dtag) {
    dispatch_float(src.dtype, [&](auto stag) {
      using TD = decltype(dtag);
      using TS = decltype(stag);
      launch_accumulate<TD, TS>(dptr<TD>(dst), dptr<const TS>(src), dst.numel());
    });
  });
}

void scale(Tensor t, float s) {
  require_device("scale");
  check_float_dtype("scale", "t", t);
  dispatch_float(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_scale<T>(dptr<T>(t), s, t.numel());
  });
}

void fill(Tensor t, float v) {
  require_device("fill");
  check_float_dtype("fill", "t", t);
  dispatch_float(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_fill<T>(dptr<T>(t), v, t.numel());
  });
}

void fill_uniform(Tensor t, uint64_t seed, float lo, float hi) {
  require_device("fill_uniform");
  check_float_dtype("fill_uniform", "t", t);
  if (t.numel() == 0) return;
  dispatch_float(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    fill_uniform_kernel<T><<<grid_for(t.numel(), kThreads), kThreads>>>(dptr<T>(t), seed, lo, hi, t.numel());
    MU_CUDA_CHECK_LAUNCH();
  });
}

void copy(Tensor dst, Tensor src) {
  require_device("copy");
  const char* op = "copy";
  if (dst.numel() == 0) return;
  if (dst.dtype == src.dtype) {
    if (dst.data == src.data) return;
    const char* d = static_cast<const char*>(dst.data);
    const char* s = static_cast<const char*>(src.data);
    MU_CHECK(dst.device != src.device || d + dst.nbytes() <= s || s + src.nbytes() <= d,
             "%s: dst %s and src %s overlap (partially); copy needs disjoint buffers on cuda", op, dst.str().c_str(),
             src.str().c_str());
    MU_CUDA_CHECK(cudaMemcpy(dst.data, src.data, dst.nbytes(), cudaMemcpyDefault));
    return;
  }
  check_float_dtype(op, "dst", dst);
  check_float_dtype(op, "src", src);
  if (dst.device != src.device) return copy_convert_staged(dst, src);
  if (dst.dtype == DType::BF16)
    launch_convert<bf16_t, float>(dptr<bf16_t>(dst), dptr<const float>(src), dst.numel());
  else
    launch_convert<float, bf16_t>(dptr<float>(dst), dptr<const bf16_t>(src), dst.numel());
}

double sum_squares(Tensor t) { return sum_squares(std::vector<Tensor>{t}); }

double sum_squares(const std::vector<Tensor>& ts) {
  require_device("sum_squares");
  std::vector<int64_t> sizes;
  for (const Tensor& t : ts) {
    check_float_dtype("sum_squares", "t", t);
    MU_CHECK(t.device == Device::CUDA, "sum_squares: %s is not on the GPU (the tensors of one sum share a device)",
             t.str().c_str());
    sizes.push_back(t.numel());
  }
  double* partial = static_cast<double*>(scratch(scratch_bytes_sum_squares(sizes), "sum_squares"));
  // Every tensor's partials back to back, in the order given: one launch per run of up to
  // kSsqTable non-empty tensors of one dtype, one final pass, one readback.
  std::vector<Tensor> live;
  for (const Tensor& t : ts)
    if (t.numel() > 0) live.push_back(t);
  int64_t at = 0;
  for (size_t begin = 0; begin < live.size();) {
    size_t end = begin + 1;
    while (end < live.size() && end - begin < kSsqTable && live[end].dtype == live[begin].dtype) end++;
    dispatch_float(live[begin].dtype, [&](auto tag) {
      using T = decltype(tag);
      at += launch_sum_squares_partial<T>(partial + at, live, begin, end);
    });
    begin = end;
  }
  return at == 0 ? 0.0 : finish_sum_squares(partial, at);
}

void bench_copy_kernel(void* dst, const void* src, size_t bytes) {
  MU_CHECK(aligned_to(dst, 16) && aligned_to(src, 16) && bytes % 16 == 0,
           "bench_copy_kernel: pointers must be 16-byte aligned and bytes a multiple of 16");
  const int64_t n16 = static_cast<int64_t>(bytes / 16);
  copy16_kernel<<<grid_for(n16, kThreads), kThreads>>>(static_cast<uint4*>(dst), static_cast<const uint4*>(src), n16);
  MU_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda

size_t scratch_bytes_sum_squares(int64_t n) { return scratch_bytes_sum_squares(std::vector<int64_t>{n}); }

size_t scratch_bytes_sum_squares(const std::vector<int64_t>& sizes) {
  int64_t parts = 0;
  for (int64_t n : sizes) parts += cuda::ceil_div(n, cuda::kSsqChunk);
  return static_cast<size_t>(parts + 1) * sizeof(double);  // the partials and the total
}
}  // namespace mu

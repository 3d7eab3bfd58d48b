// Token embedding on the GPU: the forward gathers rows; the backward scatters rows of dout
// into dtable deterministically, with no float atomics.
//
// Backward plan: the token ids, from the caller's host copy when it has one (the model keeps
// its batch; no host wait) or else copied back from the device (B*T ints), are validated on
// the host and counting-sorted into buckets (one per distinct token, positions in increasing
// order). The plan goes up with an asynchronous copy from page-locked memory. Each
// bucket is cut into segments of at most kSegment positions. A warp sums one segment over
// 32*VEC channels in position order; a bucket of one segment adds its sum straight into its
// dtable row, a longer bucket writes per-segment partials that a second kernel sums in
// segment order. Every dtable row is written by one warp per channel chunk, every sum has a
// fixed order, and a frequent token is spread over many warps instead of one long chain.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/scratch.h"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kSegment = 32;   // positions one warp sums before handing a partial on

// ---- kernels -------------------------------------------------------------------------------

// out[n] = table[tokens[n]], one warp per row, copied in units U (16, 4 or 2 bytes). A bad
// id leaves its row unwritten and records its position (the entry then throws).
// Each lane loads up to kUnroll units before its first store: a 4 KiB row (C = 2048 bf16) is
// one round trip, not eight.
constexpr int kUnroll = 8;

template <class U>
__global__ void embedding_forward_kernel(U* __restrict__ out, const int32_t* __restrict__ tokens,
                                         const U* __restrict__ table, int64_t N, int64_t row_units, int64_t V,
                                         int* bad) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = (int64_t{gridDim.x} * blockDim.x) >> 5;
  for (int64_t n = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) >> 5; n < N; n += nwarps) {
    const int32_t id = tokens[n];
    if (id < 0 || id >= V) {
      if (lane == 0) atomicMin(bad, static_cast<int>(n));
      continue;
    }
    const U* src = table + id * row_units;
    U* dst = out + n * row_units;
    for (int64_t base = lane; base < row_units; base += 32 * kUnroll) {
      U v[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; k++)
        if (base + 32 * k < row_units) v[k] = src[base + 32 * k];
#pragma unroll
      for (int k = 0; k < kUnroll; k++)
        if (base + 32 * k < row_units) dst[base + 32 * k] = v[k];
    }
  }
}

// One warp per (segment, channel chunk). seg = {first index into order, count, token, partial
// slot or -1}.
template <class TD, class TG, int VEC>
__global__ void embedding_backward_segments_kernel(TD* dtable, float* partials, const TG* dout, const int32_t* order,
                                                   const int4* segs, int64_t n_segs, int64_t C, int chunks) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = (int64_t{gridDim.x} * blockDim.x) >> 5;
  for (int64_t w = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) >> 5; w < n_segs * chunks; w += nwarps) {
    const int4 s = segs[w / chunks];
    const int64_t c = (w % chunks) * 32 * VEC + lane * VEC;
    if (c >= C) continue;  // (no warp-collective operations below)
    float acc[VEC];
#pragma unroll
    for (int j = 0; j < VEC; j++) acc[j] = 0.0f;
#pragma unroll 4
    for (int k = 0; k < s.y; k++) {
      const int64_t pos = order[s.x + k];
      float g[VEC];
      load_vec<VEC>(dout + pos * C + c, g);
#pragma unroll
      for (int j = 0; j < VEC; j++) acc[j] += g[j];
    }
    if (s.w < 0) {
      TD* row = dtable + int64_t{s.z} * C + c;
      float d[VEC];
      load_vec<VEC>(row, d);
#pragma unroll
      for (int j = 0; j < VEC; j++) d[j] += acc[j];
      store_vec<VEC>(row, d);
    } else {
      store_vec<VEC>(partials + int64_t{s.w} * C + c, acc);
    }
  }
}

// One warp per (long bucket, channel chunk): bucket = {token, first slot, slot count, -}.
template <class TD, int VEC>
__global__ void embedding_backward_buckets_kernel(TD* dtable, const float* partials, const int4* buckets,
                                                  int64_t n_buckets, int64_t C, int chunks) {
  const int lane = threadIdx.x & 31;
  const int64_t nwarps = (int64_t{gridDim.x} * blockDim.x) >> 5;
  for (int64_t w = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) >> 5; w < n_buckets * chunks; w += nwarps) {
    const int4 bk = buckets[w / chunks];
    const int64_t c = (w % chunks) * 32 * VEC + lane * VEC;
    if (c >= C) continue;
    float acc[VEC];
#pragma unroll
    for (int j = 0; j < VEC; j++) acc[j] = 0.0f;
    for (int k = 0; k < bk.z; k++) {
      float p[VEC];
      load_vec<VEC>(partials + int64_t{bk.y + k} * C + c, p);
#pragma unroll
      for (int j = 0; j < VEC; j++) acc[j] += p[j];
    }
    TD* row = dtable + int64_t{bk.x} * C + c;
    float d[VEC];
    load_vec<VEC>(row, d);
#pragma unroll
    for (int j = 0; j < VEC; j++) d[j] += acc[j];
    store_vec<VEC>(row, d);
  }
}

// ---- launchers -----------------------------------------------------------------------------

template <class U>
void launch_forward(Tensor out, Tensor tokens, Tensor table, int64_t row_bytes) {
  const int64_t N = tokens.numel();
  const int64_t units = row_bytes / static_cast<int64_t>(sizeof(U));
  embedding_forward_kernel<U><<<grid_for(N * 32, kThreads), kThreads>>>(
      dptr<U>(out), dptr<const int32_t>(tokens), dptr<const U>(table), N, units, table.size(0), error_record());
  MU_CUDA_CHECK_LAUNCH();
}

// Host-side bucketing (see the file comment); the buffers are reused from call to call.
struct Plan {
  std::vector<int32_t> tokens, start;
  std::vector<int32_t> upload;  // order (N, padded to a multiple of 4) | segments (4 each) | long buckets (4 each)
  int64_t N = -1, V = -1, n_segs = 0, n_buckets = 0, n_slots = 0;  // N, V: what it was built for
  // The upload's page-locked staging copy; `uploaded` marks when the device has read it.
  int32_t* pinned = nullptr;
  size_t pinned_ints = 0;
  bool no_pinned = false;  // cudaMallocHost failed once: blocking copies from pageable memory
  cudaEvent_t uploaded = nullptr;
  Plan() = default;
  Plan(const Plan&) = delete;  // owns the staging buffer and the event
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // at thread exit; errors are ignored (the context may already be gone)
    if (uploaded) cudaEventDestroy(uploaded);
    if (pinned) cudaFreeHost(pinned);
  }
};

// Ints in the largest upload for N positions (the bound scratch_bytes_embedding_backward
// explains): order, one segment per position, one long bucket per kSegment positions.
int64_t max_upload_ints(int64_t N) { return round_up(N, 4) + 4 * N + 4 * ceil_div(N, kSegment); }

Plan& thread_plan() {
  static thread_local Plan plan;
  return plan;
}

void build_plan(Plan& p, const char* op, int64_t N, int64_t V) {
  p.N = p.V = -1;  // no plan until this one is complete (a bad id throws below)
  for (int64_t n = 0; n < N; n++)
    MU_CHECK(p.tokens[n] >= 0 && p.tokens[n] < V,
             "%s: token id %d at position %lld is outside the vocabulary [0, %lld)", op, p.tokens[n],
             static_cast<long long>(n), static_cast<long long>(V));
  p.start.assign(static_cast<size_t>(V) + 1, 0);
  for (int64_t n = 0; n < N; n++) p.start[p.tokens[n] + 1]++;
  for (int64_t v = 0; v < V; v++) p.start[v + 1] += p.start[v];
  // order: positions grouped by token, increasing within a group (counting sort is stable).
  p.upload.assign(static_cast<size_t>(N), 0);
  {
    std::vector<int32_t> cursor(p.start.begin(), p.start.end() - 1);
    for (int64_t n = 0; n < N; n++) p.upload[cursor[p.tokens[n]]++] = static_cast<int32_t>(n);
  }
  p.upload.resize(static_cast<size_t>(round_up(N, 4)), 0);  // the int4 records after it stay 16-byte aligned
  std::vector<int32_t> buckets;
  p.n_segs = p.n_buckets = p.n_slots = 0;
  // Walk the groups in order[]: consecutive entries with the same token.
  for (int64_t i = 0; i < N;) {
    const int32_t tok = p.tokens[p.upload[i]];
    const int64_t count = p.start[tok + 1] - p.start[tok];
    const bool long_bucket = count > kSegment;
    if (long_bucket) {
      buckets.insert(buckets.end(),
                     {tok, static_cast<int32_t>(p.n_slots), static_cast<int32_t>(ceil_div(count, kSegment)), 0});
      p.n_buckets++;
    }
    for (int64_t s = 0; s < count; s += kSegment) {
      const int32_t len = static_cast<int32_t>(count - s < kSegment ? count - s : kSegment);
      p.upload.insert(p.upload.end(),
                      {static_cast<int32_t>(i + s), len, tok, long_bucket ? static_cast<int32_t>(p.n_slots++) : -1});
      p.n_segs++;
    }
    i += count;
  }
  p.upload.insert(p.upload.end(), buckets.begin(), buckets.end());
  p.N = N;
  p.V = V;
}

template <class TD, class TG, int VEC>
void launch_backward(Tensor dtable, Tensor dout, const int32_t* order, const int4* segs, const int4* buckets,
                     float* partials, const Plan& p) {
  const int64_t C = dtable.size(1);
  const int chunks = static_cast<int>(ceil_div(C, 32 * VEC));
  embedding_backward_segments_kernel<TD, TG, VEC><<<grid_for(p.n_segs * chunks * 32, kThreads), kThreads>>>(
      dptr<TD>(dtable), partials, dptr<const TG>(dout), order, segs, p.n_segs, C, chunks);
  MU_CUDA_CHECK_LAUNCH();
  if (p.n_buckets == 0) return;
  embedding_backward_buckets_kernel<TD, VEC><<<grid_for(p.n_buckets * chunks * 32, kThreads), kThreads>>>(
      dptr<TD>(dtable), partials, buckets, p.n_buckets, C, chunks);
  MU_CUDA_CHECK_LAUNCH();
}

// The host half for the ids in plan.tokens: bucket them, then copy the upload into the
// page-locked staging buffer, once the device has read the previous plan from it (long done
// by the next step: the event is checked, not waited on, in the usual case).
void prepare_plan(Plan& plan, const char* op, int64_t N, int64_t V) {
  MU_CHECK(N <= INT_MAX / 2, "%s: %lld tokens; the cuda kernels index positions with int", op,
           static_cast<long long>(N));
  build_plan(plan, op, N, V);
  if (plan.no_pinned) return;
  if (plan.uploaded) {
    const cudaError_t q = cudaEventQuery(plan.uploaded);
    if (q == cudaErrorNotReady) {
      (void)cudaGetLastError();  // "not ready" is no failure: keep it from the next launch check
      MU_CUDA_CHECK(cudaEventSynchronize(plan.uploaded));
    } else {
      MU_CUDA_CHECK(q);
    }
  }
  const size_t ints = plan.upload.size();
  if (plan.pinned_ints < ints) {
    // Sized for any plan of N positions, so batches of one shape never reallocate (freeing
    // page-locked memory waits for the device).
    const size_t want = static_cast<size_t>(std::max<int64_t>(max_upload_ints(N), static_cast<int64_t>(ints)));
    if (plan.pinned) MU_CUDA_CHECK(cudaFreeHost(plan.pinned));
    plan.pinned = nullptr;
    plan.pinned_ints = 0;
    void* p = nullptr;
    const cudaError_t e = cudaMallocHost(&p, want * sizeof(int32_t));
    if (e == cudaErrorMemoryAllocation) {  // (a locked-memory limit, say): correct, only slower
      (void)cudaGetLastError();
      plan.no_pinned = true;
      std::fprintf(stderr, "embedding_backward: no page-locked staging memory; the plan's upload waits\n");
      return;
    }
    MU_CUDA_CHECK(e);  // anything else is a real failure
    plan.pinned = static_cast<int32_t*>(p);
    plan.pinned_ints = want;
  }
  std::memcpy(plan.pinned, plan.upload.data(), ints * sizeof(int32_t));
}

}  // namespace

// ---- entries ---------------------------------------------------------------------------------

void embedding_forward(Tensor out, Tensor tokens, Tensor table) {
  require_device("embedding_forward");
  const char* op = "embedding_forward";
  check_float_dtype(op, "table", table);
  MU_CHECK(out.dtype == table.dtype, "%s: out (%s) and table (%s) must share a dtype on cuda", op,
           dtype_name(out.dtype), dtype_name(table.dtype));
  const int64_t N = tokens.numel();
  MU_CHECK(N <= INT_MAX, "%s: %lld tokens; the cuda kernels index positions with int", op, static_cast<long long>(N));
  if (N == 0) return;
  const int64_t row_bytes = table.size(1) * static_cast<int64_t>(dtype_size(table.dtype));
  reset_error_record();
  if (row_bytes % 16 == 0 && aligned_to(out.data, 16) && aligned_to(table.data, 16))
    launch_forward<uint4>(out, tokens, table, row_bytes);
  else if (row_bytes % 4 == 0 && aligned_to(out.data, 4) && aligned_to(table.data, 4))
    launch_forward<uint32_t>(out, tokens, table, row_bytes);
  else
    launch_forward<uint16_t>(out, tokens, table, row_bytes);
  const int bad = read_error_record();
  if (bad != kNoError) {
    int32_t id = 0;
    MU_CUDA_CHECK(cudaMemcpy(&id, dptr<const int32_t>(tokens) + bad, sizeof(id), cudaMemcpyDeviceToHost));
    MU_FAIL("%s: token id %d at position %d is outside the vocabulary [0, %lld)", op, id, bad,
            static_cast<long long>(table.size(0)));
  }
}

void embedding_backward_prepare(const int32_t* host_tokens, int64_t N, int64_t V) {
  Plan& plan = thread_plan();
  plan.tokens.assign(host_tokens, host_tokens + N);
  prepare_plan(plan, "embedding_backward", N, V);
}

void embedding_backward_prepared(Tensor dtable, Tensor dout) {
  const char* op = "embedding_backward";
  require_device(op);
  check_float_dtype(op, "dtable", dtable);
  check_float_dtype(op, "dout", dout);
  MU_CHECK(dtable.ndim() == 2 && dout.ndim() == 2 && dout.size(1) == dtable.size(1),
           "%s: dtable %s and dout %s must be (V, C) and (N, C)", op, dtable.str().c_str(), dout.str().c_str());
  Plan& plan = thread_plan();
  const int64_t N = dout.size(0), C = dtable.size(1);
  MU_CHECK(plan.N == N && plan.V == dtable.size(0),
           "%s: the prepared plan is for %lld tokens and %lld ids, not dout's %lld and dtable's %lld", op,
           static_cast<long long>(plan.N), static_cast<long long>(plan.V), static_cast<long long>(N),
           static_cast<long long>(dtable.size(0)));
  if (N == 0) return;
  if (!plan.uploaded) MU_CUDA_CHECK(cudaEventCreateWithFlags(&plan.uploaded, cudaEventDisableTiming));
  const size_t ints = plan.upload.size();
  const size_t upload_bytes = scratch_align(ints * sizeof(int32_t));
  const size_t partial_bytes = static_cast<size_t>(plan.n_slots) * C * sizeof(float);
  char* base = static_cast<char*>(scratch(upload_bytes + partial_bytes, op));
  if (plan.no_pinned)
    MU_CUDA_CHECK(cudaMemcpy(base, plan.upload.data(), ints * sizeof(int32_t), cudaMemcpyHostToDevice));
  else
    MU_CUDA_CHECK(cudaMemcpyAsync(base, plan.pinned, ints * sizeof(int32_t), cudaMemcpyHostToDevice, 0));
  MU_CUDA_CHECK(cudaEventRecord(plan.uploaded, 0));
  const int32_t* order = reinterpret_cast<const int32_t*>(base);
  const int4* segs = reinterpret_cast<const int4*>(order + round_up(N, 4));  // 16-byte aligned
  const int4* buckets = segs + plan.n_segs;
  float* partials = reinterpret_cast<float*>(base + upload_bytes);
  const bool vec = C % 8 == 0 && aligned_to(dtable.data, 16) && aligned_to(dout.data, 16);
  dispatch_float(dtable.dtype, [&](auto dtag) {
    dispatch_float(dout.dtype, [&](auto gtag) {
      using TD = decltype(dtag);
      using TG = decltype(gtag);
      if (vec)
        launch_backward<TD, TG, 8>(dtable, dout, order, segs, buckets, partials, plan);
      else
        launch_backward<TD, TG, 1>(dtable, dout, order, segs, buckets, partials, plan);
    });
  });
}

void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout, const int32_t* host_tokens) {
  require_device("embedding_backward");
  const int64_t N = tokens.numel();
  if (N == 0) return;
  if (host_tokens) {
    embedding_backward_prepare(host_tokens, N, dtable.size(0));
  } else {  // read the ids back: the host waits here for everything queued before
    Plan& plan = thread_plan();
    plan.tokens.resize(static_cast<size_t>(N));
    MU_CUDA_CHECK(cudaMemcpy(plan.tokens.data(), tokens.data, N * sizeof(int32_t), cudaMemcpyDeviceToHost));
    prepare_plan(plan, "embedding_backward", N, dtable.size(0));
  }
  embedding_backward_prepared(dtable, dout);
}

}  // namespace cuda

// The plan's upload holds order (N rounded up to 4), 4 ints per segment and per long bucket;
// the partials one row of C per slot. Every segment holds a position of its own (<= N of
// them); long buckets are tokens seen more than kSegment times (< N / kSegment); each has
// ceil(count / kSegment) <= count / kSegment + 1 slots, so slots <= 2 N / kSegment.
size_t scratch_bytes_embedding_backward(int64_t N, int64_t C) {
  const int64_t long_max = cuda::ceil_div(N, cuda::kSegment);
  const size_t upload = cuda::scratch_align(static_cast<size_t>(cuda::max_upload_ints(N)) * sizeof(int32_t));
  return upload + static_cast<size_t>(2 * long_max * C) * sizeof(float);
}
}  // namespace mu

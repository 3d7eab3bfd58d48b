// Device properties, the shared scratch buffer and the error record (see runtime.h).
#include <map>
#include <mutex>

#include "core/cuda_check.h"
#include "kernels/cuda/runtime.h"

namespace mu {
namespace cuda {
namespace {

struct PerDevice {
  bool have_info = false;
  DeviceInfo info;
  void* scratch = nullptr;  // the runtime's own, grown as needed
  size_t scratch_bytes = 0;
  void* lent = nullptr;  // an arena's, while lent
  size_t lent_bytes = 0;
  int* error = nullptr;
  cudaStream_t side = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;  // reused: a wait binds to the latest record
};

std::mutex g_mutex;
std::map<int, PerDevice> g_devices;  // map nodes never move: references handed out stay valid

PerDevice& current() {
  int dev = -1;
  MU_CUDA_CHECK(cudaGetDevice(&dev));
  return g_devices[dev];
}

}  // namespace

void require_device(const char* op) {
  static const int count = cuda_device_count();  // the process's devices do not change
  MU_CHECK(count > 0,
           "%s: got a cuda tensor but no CUDA device is usable here (no GPU or no driver); run with --device cpu", op);
}

const DeviceInfo& device_info() {
  std::lock_guard<std::mutex> lock(g_mutex);
  PerDevice& d = current();
  if (!d.have_info) {
    int dev = -1;
    MU_CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp p;
    MU_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    d.info.id = dev;
    d.info.name = p.name;
    d.info.cc_major = p.major;
    d.info.cc_minor = p.minor;
    d.info.sm_count = p.multiProcessorCount;
    d.info.l2_bytes = static_cast<size_t>(p.l2CacheSize);
    d.info.smem_optin_bytes = p.sharedMemPerBlockOptin;
    d.info.global_bytes = p.totalGlobalMem;
    d.have_info = true;
  }
  return d.info;
}

void* scratch(size_t bytes, const char* op) {
  std::lock_guard<std::mutex> lock(g_mutex);
  PerDevice& d = current();
  if (d.lent) {
    MU_CHECK(bytes <= d.lent_bytes,
             "%s: needs %zu bytes of device scratch, the memory plan has %zu (\"cuda.scratch\"); the "
             "planning of this shape missed it (kernels/scratch.h)",
             op, bytes, d.lent_bytes);
    return d.lent;
  }
  if (bytes <= d.scratch_bytes) return d.scratch;
  if (d.scratch) {
    MU_CUDA_CHECK(cudaDeviceSynchronize());  // queued kernels may still use the old buffer
    MU_CUDA_CHECK(cudaFree(d.scratch));
    d.scratch = nullptr;
    d.scratch_bytes = 0;
  }
  // Grow geometrically so a slowly growing sequence of requests reallocates rarely.
  const size_t want = scratch_align(bytes + bytes / 4);
  cudaError_t e = cudaMalloc(&d.scratch, want);
  MU_CHECK(e == cudaSuccess, "cuda scratch: cudaMalloc of %.1f MiB failed: %s", want / 1048576.0,
           cudaGetErrorString(e));
  d.scratch_bytes = want;
  return d.scratch;
}

void lend_scratch(void* p, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    PerDevice& d = current();
    d.lent = p;
    d.lent_bytes = p ? bytes : 0;
  }
  // Queued kernels may still use the previous buffer; the lender must not free it under them.
  MU_CUDA_CHECK(cudaDeviceSynchronize());
}

CUstream_st* fork_side() {
  std::lock_guard<std::mutex> lock(g_mutex);
  PerDevice& d = current();
  if (!d.side) {
    MU_CUDA_CHECK(cudaStreamCreateWithFlags(&d.side, cudaStreamNonBlocking));
    MU_CUDA_CHECK(cudaEventCreateWithFlags(&d.fork, cudaEventDisableTiming));
    MU_CUDA_CHECK(cudaEventCreateWithFlags(&d.join, cudaEventDisableTiming));
  }
  MU_CUDA_CHECK(cudaEventRecord(d.fork, 0));
  MU_CUDA_CHECK(cudaStreamWaitEvent(d.side, d.fork, 0));
  return d.side;
}

void join_side() {
  std::lock_guard<std::mutex> lock(g_mutex);
  PerDevice& d = current();
  MU_CHECK(d.side, "join_side: no side stream was forked on this device");
  MU_CUDA_CHECK(cudaEventRecord(d.join, d.side));
  MU_CUDA_CHECK(cudaStreamWaitEvent(0, d.join, 0));
}

int* error_record() {
  std::lock_guard<std::mutex> lock(g_mutex);
  PerDevice& d = current();
  if (!d.error) {
    MU_CUDA_CHECK(cudaMalloc(&d.error, sizeof(int)));
    MU_CUDA_CHECK(cudaMemset(d.error, 0x7f, sizeof(int)));
  }
  return d.error;
}

void reset_error_record() { MU_CUDA_CHECK(cudaMemsetAsync(error_record(), 0x7f, sizeof(int), 0)); }

int read_error_record() {
  int v = 0;
  MU_CUDA_CHECK(cudaMemcpy(&v, error_record(), sizeof(int), cudaMemcpyDeviceToHost));
  return v;
}

}  // namespace cuda
}  // namespace mu

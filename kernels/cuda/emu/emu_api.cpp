// llm.mu's CUDA emulator, the runtime API: device memory is host memory closed to the host's
// code between calls (emu_memory.cpp), kernels run when launched, streams and
// events order nothing because everything is already in order, and the device reports an
// H100-like shape (sm_90, 227 KiB opt-in shared memory) with few SMs, so grid-stride loops
// take several turns. MU_EMU_MEMORY_GIB sets the memory size (default 8).
#include <chrono>
#include <cstdio>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "emu_internal.h"
#include "include/cublasLt.h"
#include "include/nccl.h"

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};

namespace mu_emu {
namespace {

constexpr int kSmCount = 4;
constexpr size_t kSmemDefault = 48 << 10;
constexpr size_t kSmemOptin = 227 << 10;

std::mutex g_mutex;
cudaError_t g_last = cudaSuccess, g_sticky = cudaSuccess;
std::string g_launch_text;
std::map<const void*, int> g_max_dynamic_smem;
Counters g_counters;
std::atomic<bool> g_host_alloc_fails{false};

size_t capacity() {
  static const size_t cap = [] {
    const char* e = std::getenv("MU_EMU_MEMORY_GIB");
    const double gib = e ? std::atof(e) : 8.0;
    return static_cast<size_t>((gib > 0 ? gib : 8.0) * (1u << 30));
  }();
  return cap;
}

cudaError_t ret(cudaError_t e) {
  if (e != cudaSuccess) g_last = e;
  return e;
}

cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind > cudaMemcpyDefault) return cudaErrorInvalidMemcpyDirection;
  if ((dst_dev && !is_device(dst, bytes)) || (src_dev && !is_device(src, bytes))) {
    std::fprintf(stderr, "mu-emu: cudaMemcpy of %zu bytes (kind %d) touches memory outside any device allocation\n",
                 bytes, static_cast<int>(kind));
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

}  // namespace

bool device_faulted() { return g_sticky != cudaSuccess; }
void set_host_alloc_fails(bool fail) { g_host_alloc_fails = fail; }

Counters counters() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_counters;
}
void count_launch() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_counters.launches++;
}
static void count_sync() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_counters.host_syncs++;
}

cudaError_t check_launch(const void* fn, const Config& c) {
  const uint64_t threads = static_cast<uint64_t>(c.block.x) * c.block.y * c.block.z;
  if (threads == 0 || threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64) {
    g_launch_text = "block (" + std::to_string(c.block.x) + "," + std::to_string(c.block.y) + "," +
                    std::to_string(c.block.z) + ") is not 1..1024 threads";
    return cudaErrorInvalidConfiguration;
  }
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 2147483647u || c.grid.y > 65535 ||
      c.grid.z > 65535) {
    g_launch_text = "grid (" + std::to_string(c.grid.x) + "," + std::to_string(c.grid.y) + "," +
                    std::to_string(c.grid.z) + ") is empty or past the limits (2^31-1, 65535, 65535)";
    return cudaErrorInvalidConfiguration;
  }
  size_t allowed = kSmemDefault;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_max_dynamic_smem.find(fn);
    if (it != g_max_dynamic_smem.end()) allowed = static_cast<size_t>(it->second);
  }
  if (c.smem > allowed) {
    g_launch_text = std::to_string(c.smem) + " bytes of dynamic shared memory, the kernel allows " +
                    std::to_string(allowed) + " (cudaFuncSetAttribute raises it)";
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

const std::string& launch_error_text() { return g_launch_text; }

void set_error(cudaError_t e, const std::string& text, bool sticky) {
  std::fprintf(stderr, "mu-emu: %s\n", text.c_str());
  g_last = e;
  if (sticky) g_sticky = e;
}

}  // namespace mu_emu

using namespace mu_emu;

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return ret(d == 0 ? cudaSuccess : cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return ret(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof(p->name), "llm.mu CUDA emulator (cpu)");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = kSmCount;
  p->l2CacheSize = 4 << 20;
  p->sharedMemPerBlock = kSmemDefault;
  p->sharedMemPerBlockOptin = kSmemOptin;
  p->totalGlobalMem = capacity();
  p->maxThreadsPerBlock = 1024;
  p->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  count_sync();
  return g_sticky;
}
cudaError_t cudaDeviceReset() {
  g_sticky = g_last = cudaSuccess;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last;
  g_last = g_sticky;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure (the emulator printed why)";
  }
  return "unknown error";
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_counters.mallocs++;
  }
  return ret(device_alloc(p, bytes, capacity()));
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  count_sync();  // cudaFree waits for the device
  return device_free(p) ? cudaSuccess : ret(cudaErrorInvalidDevicePointer);
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *total_bytes = capacity();
  *free_bytes = capacity() - device_used();
  return cudaSuccess;
}
static cudaError_t copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (g_sticky != cudaSuccess) return g_sticky;
  const cudaError_t e = check_copy(dst, src, bytes, kind);
  if (e != cudaSuccess) return ret(e);
  if (bytes) {
    DeviceAccess open;
    std::memmove(dst, src, bytes);
  }
  return cudaSuccess;
}
// The runtime's "API synchronization behavior": a synchronous copy makes the host wait unless
// both sides are device memory; an async one to (pageable) host memory waits too.
static bool involves_host(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (kind == cudaMemcpyDeviceToDevice) return false;
  if (kind == cudaMemcpyDefault) return !(is_device(dst, bytes) && is_device(src, bytes));
  return true;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes && involves_host(dst, src, bytes, kind)) count_sync();
  return copy(dst, src, bytes, kind);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  const bool to_host = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost ||
                       (kind == cudaMemcpyDefault && !is_device(dst, bytes));
  if (bytes && to_host) count_sync();
  return copy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (g_sticky != cudaSuccess) return g_sticky;
  if (bytes && !is_device(p, bytes)) return ret(cudaErrorInvalidValue);
  if (bytes) {
    DeviceAccess open;
    std::memset(p, value, bytes);
  }
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) { return cudaMemset(p, value, bytes); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  count_sync();
  return g_sticky;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->t = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  count_sync();
  return g_sticky;
}
// Work runs when it is issued here, so every recorded event is complete (and in CUDA an event
// never recorded counts as complete too).
cudaError_t cudaEventQuery(cudaEvent_t) { return g_sticky; }
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_counters.mallocs++;  // slow on a GPU too: a warm step must not allocate
  }
  *p = nullptr;
  if (mu_emu::g_host_alloc_fails) return ret(cudaErrorMemoryAllocation);  // (the emulator's test switch)
  *p = std::malloc(bytes ? bytes : 1);
  return *p ? cudaSuccess : ret(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
  count_sync();  // as on a GPU: freeing page-locked memory waits for the device
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return ret(cudaErrorInvalidValue);
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}
cudaError_t mu_emu_func_set_attribute(const void* f, cudaFuncAttribute a, int value) {
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || static_cast<size_t>(value) > kSmemOptin)
    return ret(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_max_dynamic_smem[f] = value;
  return cudaSuccess;
}

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidUsage: return "invalid usage (the emulator printed why)";
    case ncclSystemError: return "system error (an MPI call failed)";
    default: return "emulated NCCL error";
  }
}

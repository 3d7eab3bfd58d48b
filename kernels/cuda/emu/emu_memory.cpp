// llm.mu's CUDA emulator, device memory. Each cudaMalloc is a mapping of its own, filled with
// 0xff (unwritten floats read as NaN), placed so that it ends at most 255 bytes before a
// guard page. Outside the emulator's own calls (a launch, a copy, a memset, a cuBLASLt or
// NCCL call) every allocation is inaccessible, as device memory is to the host on a GPU:
// host code that dereferences a CUDA pointer faults at once, and the fault handler says so.
// A kernel running past the end of an allocation hits the guard page, and the handler names
// the kernel's launch line. Under AddressSanitizer allocations come from the heap instead,
// unprotected, so that ASan's own checks see them.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define MU_EMU_HEAP_MEMORY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MU_EMU_HEAP_MEMORY 1
#endif
#endif

namespace mu_emu {
namespace {

struct Alloc {
  size_t bytes;     // as asked
  char* map;        // the mapping (nullptr: heap)
  size_t map_bytes; // the mapping without its guard page
};

std::recursive_mutex g_mutex;
std::map<uintptr_t, Alloc> g_allocs;  // base -> allocation
size_t g_used = 0;
int g_open = 0;  // nesting depth of DeviceAccess
struct sigaction g_previous;

size_t page() {
  static const size_t p = static_cast<size_t>(getpagesize());
  return p;
}
size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }

void protect_all(int prot) {
  for (auto& [base, a] : g_allocs)
    if (a.map) mprotect(a.map, a.map_bytes, prot);
}

// The allocation whose mapping (guard page included) holds address p, if any.
const std::pair<const uintptr_t, Alloc>* find_mapping(uintptr_t p) {
  for (const auto& e : g_allocs) {
    const uintptr_t m = reinterpret_cast<uintptr_t>(e.second.map);
    if (e.second.map && p >= m && p < m + e.second.map_bytes + page()) return &e;
  }
  return nullptr;
}

void say(const char* s) {
  const ssize_t n = write(2, s, std::strlen(s));
  (void)n;
}

void on_fault(int sig, siginfo_t* info, void* ctx) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(info->si_addr);
  const auto* e = find_mapping(p);  // no lock: the faulting thread may hold it
  if (e) {
    char buf[512];
    const uintptr_t base = e->first;
    if (g_open == 0) {
      std::snprintf(buf, sizeof(buf),
                    "mu-emu: the host touched device memory at %p (allocation %p of %zu bytes) outside a kernel, "
                    "copy or library call: host code dereferencing a CUDA pointer (it would fault on a GPU too)\n",
                    info->si_addr, reinterpret_cast<void*>(base), e->second.bytes);
    } else {
      std::snprintf(buf, sizeof(buf),
                    "mu-emu: %s: access at %p, %lld bytes past the end of the allocation %p of %zu bytes\n",
                    current_launch().c_str(), info->si_addr,
                    static_cast<long long>(p - (base + e->second.bytes)), reinterpret_cast<void*>(base),
                    e->second.bytes);
    }
    say(buf);
    std::abort();
  }
  // Not ours: whatever handled it before (by default, the crash).
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, ctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
    return g_previous.sa_handler(sig);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_handler() {
  static bool done = false;
  if (done) return;
  done = true;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous);
}

}  // namespace

DeviceAccess::DeviceAccess() {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (g_open++ == 0) protect_all(PROT_READ | PROT_WRITE);
}
DeviceAccess::~DeviceAccess() {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (--g_open == 0) protect_all(PROT_NONE);
}

cudaError_t device_alloc(void** out, size_t bytes, size_t capacity) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  const size_t n = bytes ? bytes : 1;
  if (g_used + n > capacity) return cudaErrorMemoryAllocation;
  Alloc a{n, nullptr, 0};
  char* base = nullptr;
#ifdef MU_EMU_HEAP_MEMORY
  void* q = nullptr;
  if (posix_memalign(&q, 256, n) != 0) return cudaErrorMemoryAllocation;
  base = static_cast<char*>(q);
#else
  install_handler();
  a.map_bytes = round_up(n, page());
  void* m = mmap(nullptr, a.map_bytes + page(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return cudaErrorMemoryAllocation;
  a.map = static_cast<char*>(m);
  base = a.map + a.map_bytes - round_up(n, 256);  // 256-aligned, ending right before the guard page
  if (g_open > 0) mprotect(a.map, a.map_bytes, PROT_READ | PROT_WRITE);
#endif
  g_allocs[reinterpret_cast<uintptr_t>(base)] = a;
  g_used += n;
  {
    DeviceAccess open;
    std::memset(base, 0xff, n);
  }
  *out = base;
  return cudaSuccess;
}

bool device_free(void* p) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end()) return false;
  g_used -= it->second.bytes;
  if (it->second.map)
    munmap(it->second.map, it->second.map_bytes + page());
  else
    std::free(p);
  g_allocs.erase(it);
  return true;
}

size_t device_used() {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  return g_used;
}

bool is_device(const void* p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second.bytes;
}

}  // namespace mu_emu

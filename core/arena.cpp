#include "core/arena.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace mu {

const char* region_name(Region r) {
  static const char* names[] = {"weights", "master", "grads", "optim", "activations", "workspace"};
  return names[static_cast<int>(r)];
}

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

void ArenaPlan::add(const std::string& name, Region region, DType dtype, Shape shape) {
  MU_CHECK(!has(name), "arena plan: tensor '%s' added twice", name.c_str());
  for (int i = 0; i < shape.ndim; i++)
    MU_CHECK(shape.d[i] >= 0, "arena plan: tensor '%s' has negative shape %s", name.c_str(), shape.str().c_str());
  size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  size_t& used = region_bytes_[static_cast<int>(region)];
  Entry e{name, region, dtype, shape, used, bytes};
  used = align_up(used + bytes, kArenaAlign);
  index_[name] = entries_.size();
  entries_.push_back(e);
}

const ArenaPlan::Entry& ArenaPlan::entry(const std::string& name) const {
  auto it = index_.find(name);
  MU_CHECK(it != index_.end(), "arena: no tensor named '%s' in the plan", name.c_str());
  return entries_[it->second];
}

size_t ArenaPlan::total_bytes() const {
  size_t t = 0;
  for (size_t b : region_bytes_) t += b;
  return t;
}

std::string ArenaPlan::describe(size_t free_bytes) const {
  const double mib = 1024.0 * 1024.0;
  std::string s = "memory plan:\n";
  for (int r = 0; r < static_cast<int>(Region::kCount); r++) {
    if (!region_bytes_[r]) continue;
    int n = 0;
    for (const auto& e : entries_) n += static_cast<int>(e.region) == r;
    s += strformat("  %-12s %10.1f MiB  (%d tensors)\n", region_name(static_cast<Region>(r)),
                   region_bytes_[r] / mib, n);
  }
  s += strformat("  %-12s %10.1f MiB", "total", total_bytes() / mib);
  if (free_bytes) s += strformat("  (%.1f MiB available)", free_bytes / mib);
  return s;
}

Arena::Arena(const ArenaPlan& plan, Device device, size_t budget_bytes, const std::string& hint)
    : plan_(plan), device_(device) {
  size_t need = plan_.total_bytes();
  if (budget_bytes && need > budget_bytes) {
    MU_FAIL("the run needs %.1f MiB but only %.1f MiB are available on %s.\n%s\n%s", need / 1048576.0,
            budget_bytes / 1048576.0, device_name(device), plan_.describe(budget_bytes).c_str(),
            hint.empty() ? "" : hint.c_str());
  }
  for (int r = 0; r < static_cast<int>(Region::kCount); r++) {
    size_t bytes = plan_.region_bytes(static_cast<Region>(r));
    if (!bytes) continue;
    if (device == Device::CPU) {
      base_[r] = std::aligned_alloc(kArenaAlign, bytes);
      if (!base_[r]) {
        release();  // a throwing constructor runs no destructor: free the regions allocated so far
        MU_FAIL("out of host memory: region %s needs %.1f MiB", region_name(static_cast<Region>(r)),
                bytes / 1048576.0);
      }
      std::memset(base_[r], 0, bytes);
    } else {
      cudaError_t err = cudaMalloc(&base_[r], bytes);
      if (err != cudaSuccess) {
        base_[r] = nullptr;
        release();
        MU_FAIL("cudaMalloc of %.1f MiB for region %s failed: %s\n%s\n%s", bytes / 1048576.0,
                region_name(static_cast<Region>(r)), cudaGetErrorString(err), plan_.describe().c_str(), hint.c_str());
      }
      cudaMemset(base_[r], 0, bytes);
    }
  }
}

Arena::~Arena() { release(); }

void Arena::release() noexcept {
  for (void*& p : base_) {
    if (!p) continue;
    if (device_ == Device::CPU)
      std::free(p);
    else
      cudaFree(p);
    p = nullptr;
  }
}

Tensor Arena::get(const std::string& name) const {
  const auto& e = plan_.entry(name);
  char* base = static_cast<char*>(base_[static_cast<int>(e.region)]);
  return Tensor(base + e.offset, e.dtype, device_, e.shape);
}

Tensor Arena::region(Region r, DType dtype) const {
  size_t bytes = plan_.region_bytes(r);
  return Tensor(base_[static_cast<int>(r)], dtype, device_, Shape{static_cast<int64_t>(bytes / dtype_size(dtype))});
}

void cuda_mem_info(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = 0;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    return;
  }
  if (cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess) {
    cudaGetLastError();
    *free_bytes = *total_bytes = 0;
  }
}

size_t host_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  size_t kb;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

}  // namespace mu

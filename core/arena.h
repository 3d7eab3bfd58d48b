// The arena allocator (DESIGN.md §4). A run's tensors are planned first — each a named entry
// in a region (weights, master weights, gradients, optimizer state, activations, workspace) —
// then the plan is printed, checked against a memory budget, and allocated as one aligned block
// per region. Nothing is allocated inside the training loop.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mu {

enum class Region : uint8_t { Weights, Master, Grads, OptState, Activations, Workspace, kCount };
const char* region_name(Region r);

constexpr size_t kArenaAlign = 256;  // cuBLASLt and vector loads want >= 16; 256 keeps rows of entries apart

class ArenaPlan {
 public:
  struct Entry {
    std::string name;
    Region region;
    DType dtype;
    Shape shape;
    size_t offset;  // bytes from the start of its region
    size_t bytes;
  };
  // Adds a tensor; names are unique across the plan.
  void add(const std::string& name, Region region, DType dtype, Shape shape);
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const Entry& entry(const std::string& name) const;
  const std::vector<Entry>& entries() const { return entries_; }
  size_t region_bytes(Region r) const { return region_bytes_[static_cast<int>(r)]; }
  size_t total_bytes() const;
  // Human table: one line per region (MiB), the total, and `free_bytes` if non-zero.
  std::string describe(size_t free_bytes = 0) const;
  // The device scratch the planned run's ops will ask for (kernels/scratch.h): the largest
  // single request, gathered while planning; plan_scratch then adds it as one entry.
  void need_scratch(size_t bytes) { scratch_bytes_ = bytes > scratch_bytes_ ? bytes : scratch_bytes_; }
  size_t scratch_bytes() const { return scratch_bytes_; }

 private:
  size_t scratch_bytes_ = 0;
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
  size_t region_bytes_[static_cast<int>(Region::kCount)] = {};
};

class Arena {
 public:
  // Allocates the plan on `device`. If budget_bytes > 0 and the plan needs more, throws a
  // mu::Error with the plan, what is available, and `hint` (which flag lowers it).
  Arena(const ArenaPlan& plan, Device device, size_t budget_bytes = 0, const std::string& hint = "");
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  Tensor get(const std::string& name) const;
  bool has(const std::string& name) const { return plan_.has(name); }
  // The whole region as one flat tensor of `dtype` (entries' padding included; padding is zeroed).
  Tensor region(Region r, DType dtype) const;
  const ArenaPlan& plan() const { return plan_; }
  Device device() const { return device_; }

 private:
  void release() noexcept;  // frees every region (the destructor, and a constructor that fails)
  ArenaPlan plan_;
  Device device_;
  void* base_[static_cast<int>(Region::kCount)] = {};
};

// Free and total bytes of the current CUDA device (0, 0 when there is none).
void cuda_mem_info(size_t* free_bytes, size_t* total_bytes);
// Available host memory (MemAvailable from /proc/meminfo; 0 when unknown).
size_t host_available_bytes();

}  // namespace mu

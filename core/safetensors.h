// safetensors reader (memory-mapped, validated) and writer (atomic) — the one format for
// checkpoints, training state, test fixtures and HF interop.
//
// Layout (https://huggingface.co/docs/safetensors): 8-byte little-endian u64 N, then N bytes
// of UTF-8 JSON {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]}, ...}, then the byte buffer the offsets are relative to.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace mu {

// The reference implementation refuses headers above 100 MB; so do we (a corrupt length
// field must not make us parse gigabytes).
constexpr uint64_t kSafetensorsMaxHeader = 100000000;

struct StTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;  // into the mapping; valid while the SafetensorsFile lives
  size_t nbytes = 0;
  size_t offset = 0;  // begin of data_offsets, relative to the data buffer
};

// A read-only, memory-mapped safetensors file. The constructor validates the whole header
// (see safetensors.cpp for the list), so every later accessor can trust it. Files with gaps
// between tensors or trailing bytes are accepted; overlapping tensors are not.
// Movable (views and StTensorInfo::data stay valid: the mapping does not move), not copyable.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const;
  const StTensorInfo& get(const std::string& name) const;  // error naming file and tensor if absent
  const std::vector<StTensorInfo>& tensors() const { return tensors_; }  // in offset order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU Tensor viewing the mapped bytes. The mapping is PROT_READ: writing through the
  // view crashes. Fails when the bytes are not aligned to the element size (possible in
  // files whose writer mixed dtypes, e.g. an odd-length BF16 tensor before an F32 one);
  // read_f32 works for those.
  Tensor tensor(const std::string& name) const;

  // Tensor `name` converted to float32 into dst (CPU, F32, same numel; the shape may differ,
  // e.g. a flat buffer). Any float or integer dtype; unaligned data is handled.
  void read_f32(const std::string& name, Tensor dst) const;

 private:
  void release() noexcept;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<StTensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// Collects tensors and metadata, then writes one safetensors file atomically (AtomicFile).
// Tensors are laid out in add() order with no padding between them (as the reference
// implementation requires: contiguous offsets); the header is padded with spaces so the
// data buffer starts at a multiple of 8 bytes.
// add() and add_f32_as() keep the tensor BY POINTER, not a copy: the caller keeps its memory
// alive and unchanged until write() returns. This is what lets a multi-GB checkpoint be
// streamed to disk without a second copy in memory.
class SafetensorsWriter {
 public:
  void add(const std::string& name, const Tensor& t);  // CPU tensor, stored in its own dtype
  // f32_src (CPU, F32) is converted to `stored` (F32, BF16, F16 or F64) while writing.
  void add_f32_as(const std::string& name, const Tensor& f32_src, DType stored);
  void set_metadata(const std::string& key, const std::string& value);
  void write(const std::string& path) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    Tensor src;    // what the caller handed us
    DType stored;  // dtype on disk (== src.dtype unless converted from F32)
  };
  void check_new_name(const std::string& name) const;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace mu

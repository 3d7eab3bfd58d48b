// Tensor: a non-owning, contiguous, row-major view (data, dtype, device, shape). Memory is
// owned by the arena (core/arena.h) or, for tools and tests, by a HostTensor. Ops take
// Tensors and dispatch on .device, so model and optimizer code never branch on the backend.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace mu {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device d);

constexpr int kMaxDims = 6;

struct Shape {
  int ndim = 0;
  int64_t d[kMaxDims] = {};

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);
  int64_t numel() const;
  int64_t operator[](int i) const { return d[i < 0 ? ndim + i : i]; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(d, d + ndim); }
  std::string str() const;  // "(2, 3, 4)"
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  Shape shape;

  Tensor() = default;
  Tensor(void* p, DType t, Device dev, Shape s) : data(p), dtype(t), device(dev), shape(s) {}

  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t size(int i) const { return shape[i]; }
  int ndim() const { return shape.ndim; }
  bool empty() const { return data == nullptr; }

  // Typed pointer; fails loudly on a dtype mismatch.
  float* f32() const { return typed<float>(DType::F32); }
  bf16* bf() const { return typed<bf16>(DType::BF16); }
  int32_t* i32() const { return typed<int32_t>(DType::I32); }

  // Same memory, new shape (numel must match).
  Tensor view(Shape s) const;
  // Element i along dim 0 (drops that dim).
  Tensor operator[](int64_t i) const;
  // Rows [start, start+count) along dim 0.
  Tensor rows(int64_t start, int64_t count) const;
  std::string str() const;  // "F32(2, 3) cpu"

 private:
  template <class T>
  T* typed(DType want) const {
    MU_CHECK(dtype == want, "tensor %s: expected dtype %s", str().c_str(), dtype_name(want));
    return static_cast<T*>(data);
  }
};

// Owning host (CPU) tensor with 64-byte aligned storage, zero-initialised.
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType t, Shape s);
  static HostTensor f32(Shape s) { return HostTensor(DType::F32, s); }
  const Tensor& t() const { return view_; }
  operator Tensor() const { return view_; }  // NOLINT: views are the currency
  float* f32() const { return view_.f32(); }
  int64_t numel() const { return view_.numel(); }
  const Shape& shape() const { return view_.shape; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> mem_;
  Tensor view_;
};

// Checks used by op entry points; messages name the op and the tensors.
// Whether a and b share a byte (empty tensors share none).
bool overlaps(const Tensor& a, const Tensor& b);

void check_same_device(const char* op, std::initializer_list<Tensor> ts);
void check_shape(const char* op, const char* what, const Tensor& t, Shape want);
void check_dtype(const char* op, const char* what, const Tensor& t, DType want);

}  // namespace mu

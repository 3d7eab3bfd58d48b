#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

namespace mu {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

Shape::Shape(std::initializer_list<int64_t> dims) {
  MU_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), "shape with %zu dims (max %d)", dims.size(), kMaxDims);
  for (int64_t v : dims) d[ndim++] = v;
}

Shape::Shape(const std::vector<int64_t>& dims) {
  MU_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), "shape with %zu dims (max %d)", dims.size(), kMaxDims);
  for (int64_t v : dims) d[ndim++] = v;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= d[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; i++)
    if (d[i] != o.d[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < ndim; i++) {
    if (i) s += ", ";
    s += std::to_string(d[i]);
  }
  return s + ")";
}

Tensor Tensor::view(Shape s) const {
  MU_CHECK(s.numel() == numel(), "view: cannot view %s as %s", str().c_str(), s.str().c_str());
  return Tensor(data, dtype, device, s);
}

Tensor Tensor::operator[](int64_t i) const {
  MU_CHECK(shape.ndim >= 1 && i >= 0 && i < shape[0], "index %lld out of range for %s",
           static_cast<long long>(i), str().c_str());
  Shape s;
  for (int k = 1; k < shape.ndim; k++) s.d[s.ndim++] = shape.d[k];
  size_t stride = static_cast<size_t>(s.numel()) * dtype_size(dtype);
  return Tensor(static_cast<char*>(data) + stride * i, dtype, device, s);
}

Tensor Tensor::rows(int64_t start, int64_t count) const {
  MU_CHECK(shape.ndim >= 1 && start >= 0 && count >= 0 && start + count <= shape[0],
           "rows [%lld, %lld) out of range for %s", static_cast<long long>(start),
           static_cast<long long>(start + count), str().c_str());
  Shape s = shape;
  s.d[0] = count;
  size_t stride = static_cast<size_t>(shape.numel() / (shape[0] ? shape[0] : 1)) * dtype_size(dtype);
  return Tensor(static_cast<char*>(data) + stride * start, dtype, device, s);
}

std::string Tensor::str() const {
  return std::string(dtype_name(dtype)) + shape.str() + " " + device_name(device);
}

void HostTensor::Free::operator()(void* p) const { std::free(p); }

HostTensor::HostTensor(DType t, Shape s) {
  size_t bytes = static_cast<size_t>(s.numel()) * dtype_size(t);
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  MU_CHECK(p != nullptr, "out of host memory allocating %zu bytes for %s", bytes, s.str().c_str());
  std::memset(p, 0, rounded);
  mem_.reset(p);
  view_ = Tensor(p, t, Device::CPU, s);
}

void check_same_device(const char* op, std::initializer_list<Tensor> ts) {
  const Tensor* first = nullptr;
  for (const Tensor& t : ts) {
    if (t.empty()) continue;
    if (!first) first = &t;
    MU_CHECK(t.device == first->device, "%s: tensors on different devices (%s vs %s)", op,
             device_name(first->device), device_name(t.device));
  }
}

void check_shape(const char* op, const char* what, const Tensor& t, Shape want) {
  MU_CHECK(t.shape == want, "%s: %s has shape %s, expected %s", op, what, t.shape.str().c_str(),
           want.str().c_str());
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a.data), b0 = reinterpret_cast<uintptr_t>(b.data);
  return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

void check_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  MU_CHECK(t.dtype == want, "%s: %s has dtype %s, expected %s", op, what, dtype_name(t.dtype),
           dtype_name(want));
}

}  // namespace mu

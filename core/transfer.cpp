#include "core/transfer.h"

#include <cuda_runtime.h>

#include <cstring>

namespace mu {

void copy_from_host(Tensor dst, const void* src) {
  if (dst.device == Device::CPU) {
    std::memcpy(dst.data, src, dst.nbytes());
    return;
  }
  cudaError_t e = cudaMemcpy(dst.data, src, dst.nbytes(), cudaMemcpyHostToDevice);
  MU_CHECK(e == cudaSuccess, "copy to device (%s): %s", dst.str().c_str(), cudaGetErrorString(e));
}

void copy_to_host(void* dst, const Tensor& src) {
  if (src.device == Device::CPU) {
    std::memcpy(dst, src.data, src.nbytes());
    return;
  }
  cudaError_t e = cudaMemcpy(dst, src.data, src.nbytes(), cudaMemcpyDeviceToHost);
  MU_CHECK(e == cudaSuccess, "copy to host (%s): %s", src.str().c_str(), cudaGetErrorString(e));
}

std::vector<float> to_host_f32(const Tensor& t) {
  std::vector<char> raw(t.nbytes());
  copy_to_host(raw.data(), t);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(out.data(), raw.data(), t.dtype, out.size());
  return out;
}

}  // namespace mu

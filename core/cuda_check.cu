// Compiled by nvcc so every build exercises the CUDA toolchain, GPU or not.
#include "core/cuda_check.h"

namespace mu {

static int current_device() {
  int d = -1;
  if (cudaGetDevice(&d) != cudaSuccess) d = -1;
  return d;
}

void cuda_fail(const char* stmt, cudaError_t e, const char* file, int line) {
  fail_at(file, line, strformat("CUDA error on device %d: %s (%s) in %s", current_device(), cudaGetErrorString(e),
                                cudaGetErrorName(e), stmt));
}

void cublas_fail(const char* stmt, cublasStatus_t s, const char* file, int line) {
  fail_at(file, line, strformat("cuBLASLt error on device %d: status %d in %s", current_device(), static_cast<int>(s),
                                stmt));
}

#ifdef MU_HAVE_NCCL
void nccl_fail(const char* stmt, ncclResult_t r, const char* file, int line) {
  fail_at(file, line, strformat("NCCL error on device %d: %s in %s", current_device(), ncclGetErrorString(r), stmt));
}
#endif

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace mu

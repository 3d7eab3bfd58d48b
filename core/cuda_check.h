// The error-check family for the CUDA runtime, cuBLASLt and NCCL: every failing call becomes
// a mu::Error naming the statement, the library's error text and the device, like MU_CHECK.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>
#ifdef MU_HAVE_NCCL
#include <nccl.h>
#endif

#include "core/error.h"

namespace mu {
[[noreturn]] void cuda_fail(const char* stmt, cudaError_t e, const char* file, int line);
[[noreturn]] void cublas_fail(const char* stmt, cublasStatus_t s, const char* file, int line);
#ifdef MU_HAVE_NCCL
[[noreturn]] void nccl_fail(const char* stmt, ncclResult_t r, const char* file, int line);
#endif
// Number of usable CUDA devices (0 when there is no driver or no GPU; never throws).
int cuda_device_count();
}  // namespace mu

#define MU_CUDA_CHECK(stmt)                                                  \
  do {                                                                       \
    cudaError_t mu_e_ = (stmt);                                              \
    if (mu_e_ != cudaSuccess) ::mu::cuda_fail(#stmt, mu_e_, __FILE__, __LINE__); \
  } while (0)

#define MU_CUBLAS_CHECK(stmt)                                                          \
  do {                                                                                 \
    cublasStatus_t mu_s_ = (stmt);                                                     \
    if (mu_s_ != CUBLAS_STATUS_SUCCESS) ::mu::cublas_fail(#stmt, mu_s_, __FILE__, __LINE__); \
  } while (0)

#ifdef MU_HAVE_NCCL
#define MU_NCCL_CHECK(stmt)                                                     \
  do {                                                                          \
    ncclResult_t mu_r_ = (stmt);                                                \
    if (mu_r_ != ncclSuccess) ::mu::nccl_fail(#stmt, mu_r_, __FILE__, __LINE__); \
  } while (0)
#endif

// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define MU_CUDA_CHECK_LAUNCH() MU_CUDA_CHECK(cudaGetLastError())

// llm.mu's CUDA emulator: NCCL's result type for core/cuda_check.h. The emulator has no
// NCCL; its build leaves core/comm_nccl.cpp out (--comm nccl says so).
#pragma once
enum ncclResult_t { ncclSuccess = 0, ncclUnhandledCudaError = 1, ncclSystemError = 2, ncclInternalError = 3 };
const char* ncclGetErrorString(ncclResult_t r);

// Shared between the emulator's execution model (emu_runtime.cpp) and its runtime API
// (emu_api.cpp).
#pragma once
#include <string>

#include "include/cuda_runtime.h"

namespace mu_emu {

// cudaSuccess, or why the hardware would refuse this launch (launch_error_text says more).
cudaError_t check_launch(const void* fn, const Config& c);
const std::string& launch_error_text();
// Records an error for cudaGetLastError; a sticky one (a failed kernel) is also returned by
// every synchronising call after it, as a device fault is.
void set_error(cudaError_t e, const std::string& text, bool sticky = false);
void count_launch();
// Whether a kernel has failed (the sticky error): later launches then do nothing.
bool device_faulted();
// The running launch, for messages ("kernel launched at file:line, block ..., thread ...").
std::string current_launch();

// Device memory (emu_memory.cpp).
cudaError_t device_alloc(void** out, size_t bytes, size_t capacity);
bool device_free(void* p);
size_t device_used();
// Whether [p, p + bytes) lies inside one allocation.
bool is_device(const void* p, size_t bytes);
// While one lives (on any thread), device memory is accessible; the emulator opens it for
// launches, copies, memsets and library calls.
struct DeviceAccess {
  DeviceAccess();
  ~DeviceAccess();
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;
};

}  // namespace mu_emu

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

}  // namespace mu_emu

// Host <-> tensor copies that work for either device (cudaMemcpy for CUDA tensors).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace mu {

void copy_from_host(Tensor dst, const void* src);  // dst.nbytes() bytes
void copy_to_host(void* dst, const Tensor& src);   // src.nbytes() bytes
// Tensor contents as float32 on the host (converting from bf16 etc.).
std::vector<float> to_host_f32(const Tensor& t);

}  // namespace mu

// Shared validation helpers for the op entry points (kernels/<op>.cpp). Not part of the
// public op API: every message names the op and the tensor, so a caller can tell which
// argument was wrong without reading our code.
#pragma once
#include <initializer_list>

#include "core/tensor.h"

namespace mu {

struct NamedTensor {
  const char* name;
  const Tensor& t;
};

// Every tensor present (non-null), on one device.
inline void check_present(const char* op, std::initializer_list<NamedTensor> ts) {
  for (const NamedTensor& n : ts)
    MU_CHECK(!n.t.empty() || n.t.numel() == 0, "%s: %s has no data (null pointer)", op, n.name);
}

// The cpu backend computes in fp32: every floating tensor must be F32.
inline void check_cpu_f32(const char* op, std::initializer_list<NamedTensor> ts) {
  for (const NamedTensor& n : ts) check_dtype(op, n.name, n.t, DType::F32);
}

// `out` shares no byte with any of `ins` (an op that writes while it reads, or whose kernels
// assume no aliasing).
inline void check_apart(const char* op, NamedTensor out, std::initializer_list<NamedTensor> ins) {
  for (const NamedTensor& n : ins)
    MU_CHECK(!overlaps(out.t, n.t), "%s: %s %s overlaps %s %s; the output needs a buffer of its own", op, out.name,
             out.t.str().c_str(), n.name, n.t.str().c_str());
}

[[noreturn]] inline void fail_cuda_not_built(const char* op) {
  MU_FAIL("%s: the cuda backend is not built yet (run with --device cpu)", op);
}

}  // namespace mu

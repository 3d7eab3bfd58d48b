// element-wise entries: validate, then dispatch on the device.
#include "kernels/elementwise.h"

#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {

void add(Tensor out, Tensor a, Tensor b) {
  const char* op = "add";
  check_present(op, {{"out", out}, {"a", a}, {"b", b}});
  check_same_device(op, {out, a, b});
  check_shape(op, "a", a, out.shape);
  check_shape(op, "b", b, out.shape);
  if (out.device == Device::CUDA) return cuda::add(out, a, b);
  check_cpu_f32(op, {{"out", out}, {"a", a}, {"b", b}});
  cpu::add(out, a, b);
}

void accumulate(Tensor dst, Tensor src) {
  const char* op = "accumulate";
  check_present(op, {{"dst", dst}, {"src", src}});
  check_same_device(op, {dst, src});
  check_shape(op, "src", src, dst.shape);
  if (dst.device == Device::CUDA) return cuda::accumulate(dst, src);
  check_cpu_f32(op, {{"dst", dst}, {"src", src}});
  cpu::accumulate(dst, src);
}

void scale(Tensor t, float s) {
  const char* op = "scale";
  check_present(op, {{"t", t}});
  if (t.device == Device::CUDA) return cuda::scale(t, s);
  check_cpu_f32(op, {{"t", t}});
  cpu::scale(t, s);
}

void fill(Tensor t, float v) {
  const char* op = "fill";
  check_present(op, {{"t", t}});
  if (t.device == Device::CUDA) return cuda::fill(t, v);
  check_cpu_f32(op, {{"t", t}});
  cpu::fill(t, v);
}

void fill_uniform(Tensor t, uint64_t seed, float lo, float hi) {
  const char* op = "fill_uniform";
  check_present(op, {{"t", t}});
  MU_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi, "%s: needs finite lo < hi, got lo %g, hi %g", op, lo,
           hi);
  if (t.device == Device::CUDA) return cuda::fill_uniform(t, seed, lo, hi);
  check_cpu_f32(op, {{"t", t}});
  cpu::fill_uniform(t, seed, lo, hi);
}

void copy(Tensor dst, Tensor src) {
  const char* op = "copy";
  check_present(op, {{"dst", dst}, {"src", src}});
  MU_CHECK(dst.numel() == src.numel(), "%s: dst %s and src %s have different element counts", op,
           dst.str().c_str(), src.str().c_str());
  if (dst.device == Device::CUDA || src.device == Device::CUDA) return cuda::copy(dst, src);
  check_dtype(op, "src", src, dst.dtype);
  cpu::copy(dst, src);
}

double sum_squares(Tensor t) {
  const char* op = "sum_squares";
  check_present(op, {{"t", t}});
  if (t.device == Device::CUDA) return cuda::sum_squares(t);
  check_cpu_f32(op, {{"t", t}});
  return cpu::sum_squares(t);
}

double sum_squares(const std::vector<Tensor>& ts) {
  const char* op = "sum_squares";
  for (const Tensor& t : ts) check_present(op, {{"t", t}});
  if (!ts.empty() && ts[0].device == Device::CUDA) return cuda::sum_squares(ts);
  for (const Tensor& t : ts) {  // every tensor checked before any is read
    MU_CHECK(t.device == Device::CPU, "%s: %s is on the GPU but %s is not (the tensors of one sum share a device)",
             op, t.str().c_str(), ts[0].str().c_str());
    check_cpu_f32(op, {{"t", t}});
  }
  double sum = 0.0;
  for (const Tensor& t : ts) sum += cpu::sum_squares(t);
  return sum;
}

}  // namespace mu

// swiglu entries: validate, then dispatch on the device.
#include "kernels/swiglu.h"

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

// gate_up (N, 2F) determines N and F.
void check_gate_up(const char* op, const Tensor& gate_up) {
  MU_CHECK(gate_up.ndim() == 2 && gate_up.size(1) % 2 == 0,
           "%s: gate_up has shape %s, expected (N, 2F) with [gate | up] halves", op, gate_up.shape.str().c_str());
}

}  // namespace

void swiglu_forward(Tensor out, Tensor gate_up) {
  const char* op = "swiglu_forward";
  check_present(op, {{"out", out}, {"gate_up", gate_up}});
  check_same_device(op, {out, gate_up});
  check_gate_up(op, gate_up);
  check_shape(op, "out", out, Shape{gate_up.size(0), gate_up.size(1) / 2});
  if (out.device == Device::CUDA) return cuda::swiglu_forward(out, gate_up);
  check_cpu_f32(op, {{"out", out}, {"gate_up", gate_up}});
  cpu::swiglu_forward(out, gate_up);
}

void swiglu_backward(Tensor dgate_up, Tensor dout, Tensor gate_up) {
  const char* op = "swiglu_backward";
  check_present(op, {{"dgate_up", dgate_up}, {"dout", dout}, {"gate_up", gate_up}});
  check_same_device(op, {dgate_up, dout, gate_up});
  check_gate_up(op, gate_up);
  check_shape(op, "dgate_up", dgate_up, gate_up.shape);
  check_shape(op, "dout", dout, Shape{gate_up.size(0), gate_up.size(1) / 2});
  if (dout.device == Device::CUDA) return cuda::swiglu_backward(dgate_up, dout, gate_up);
  check_cpu_f32(op, {{"dgate_up", dgate_up}, {"dout", dout}, {"gate_up", gate_up}});
  cpu::swiglu_backward(dgate_up, dout, gate_up);
}

}  // namespace mu

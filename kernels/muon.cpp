// Muon per-matrix op entries: validate, then dispatch on the device.
#include "kernels/muon.h"

#include <cmath>

#include "kernels/cpu/muon_cpu.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

// A matrix operand: 2-D, or 3-D with a leading 1 (a batch item view).
void matrix_dims(const char* op, const char* what, const Tensor& t, int64_t* rows, int64_t* cols) {
  MU_CHECK(t.ndim() == 2 || (t.ndim() == 3 && t.size(0) == 1), "%s: %s is %s, expected a matrix (rows, cols)", op,
           what, t.str().c_str());
  *rows = t.size(t.ndim() - 2);
  *cols = t.size(t.ndim() - 1);
}

}  // namespace

void muon_momentum(const MuonMomentumParams& p) {
  const char* op = "muon_momentum";
  check_present(op, {{"buf", p.buf}, {"grad", p.grad}, {"out", p.out}});
  check_same_device(op, {p.buf, p.grad, p.out});
  int64_t A, B, orows, ocols;
  matrix_dims(op, "buf", p.buf, &A, &B);
  check_shape(op, "grad", p.grad, p.buf.shape);
  matrix_dims(op, "out", p.out, &orows, &ocols);
  const int64_t want_r = p.transpose_out ? B : A, want_c = p.transpose_out ? A : B;
  MU_CHECK(orows == want_r && ocols == want_c, "%s: out is %s, expected (%lld, %lld) for buf %s%s", op,
           p.out.str().c_str(), static_cast<long long>(want_r), static_cast<long long>(want_c), p.buf.str().c_str(),
           p.transpose_out ? " transposed" : "");
  MU_CHECK(p.mu >= 0.0f && p.mu < 1.0f, "%s: momentum mu is %g, must be in [0, 1)", op, p.mu);
  MU_CHECK(std::isfinite(p.grad_scale), "%s: grad_scale is %g, must be finite", op, p.grad_scale);
  if (p.buf.device == Device::CUDA) return cuda::muon_momentum(p);
  check_cpu_f32(op, {{"buf", p.buf}, {"grad", p.grad}, {"out", p.out}});
  cpu::muon_momentum(p);
}

void frobenius_normalize(Tensor x, double norm_scale, double eps) {
  const char* op = "frobenius_normalize";
  check_present(op, {{"x", x}});
  MU_CHECK(x.ndim() == 3, "%s: x is %s, expected (batch, rows, cols)", op, x.str().c_str());
  MU_CHECK(std::isfinite(norm_scale) && norm_scale > 0.0, "%s: norm_scale is %g, must be > 0", op, norm_scale);
  MU_CHECK(std::isfinite(eps) && eps > 0.0, "%s: eps is %g, must be > 0 (it keeps a zero matrix at zero)", op, eps);
  if (x.device == Device::CUDA) return cuda::frobenius_normalize(x, norm_scale, eps);
  check_cpu_f32(op, {{"x", x}});
  cpu::frobenius_normalize(x, norm_scale, eps);
}

void normuon_normalize(const NorMuonParams& p) {
  const char* op = "normuon_normalize";
  check_present(op, {{"o", p.o}, {"v", p.v}});
  check_same_device(op, {p.o, p.v});
  int64_t m, n;
  matrix_dims(op, "o", p.o, &m, &n);
  const int64_t want = p.per_row ? m : n;
  MU_CHECK(p.v.numel() == want, "%s: v is %s, expected %lld entries (one per %s of o %s)", op, p.v.str().c_str(),
           static_cast<long long>(want), p.per_row ? "row" : "column", p.o.str().c_str());
  MU_CHECK(p.beta2 >= 0.0f && p.beta2 < 1.0f, "%s: beta2 is %g, must be in [0, 1)", op, p.beta2);
  if (p.o.device == Device::CUDA) return cuda::normuon_normalize(p);
  check_cpu_f32(op, {{"o", p.o}, {"v", p.v}});
  cpu::normuon_normalize(p);
}

void muon_apply(const MuonApplyParams& p) {
  const char* op = "muon_apply";
  check_present(op, {{"param", p.param}, {"o", p.o}});
  check_same_device(op, {p.param, p.o});
  int64_t A, B, orows, ocols;
  matrix_dims(op, "param", p.param, &A, &B);
  matrix_dims(op, "o", p.o, &orows, &ocols);
  const int64_t want_r = p.o_transposed ? B : A, want_c = p.o_transposed ? A : B;
  MU_CHECK(orows == want_r && ocols == want_c, "%s: o is %s, expected (%lld, %lld) for param %s%s", op,
           p.o.str().c_str(), static_cast<long long>(want_r), static_cast<long long>(want_c),
           p.param.str().c_str(), p.o_transposed ? " transposed" : "");
  MU_CHECK(std::isfinite(p.lr) && p.lr >= 0.0, "%s: lr is %g, must be finite and >= 0", op, p.lr);
  MU_CHECK(std::isfinite(p.scale) && p.scale >= 0.0, "%s: scale is %g, must be finite and >= 0", op, p.scale);
  MU_CHECK(std::isfinite(p.weight_decay) && p.weight_decay >= 0.0, "%s: weight_decay is %g, must be finite and >= 0",
           op, p.weight_decay);
  if (p.param.device == Device::CUDA) return cuda::muon_apply(p);
  check_cpu_f32(op, {{"param", p.param}, {"o", p.o}});
  cpu::muon_apply(p);
}

void mirror_lower_blocks(Tensor x, int64_t block) {
  const char* op = "mirror_lower_blocks";
  check_present(op, {{"x", x}});
  MU_CHECK(x.ndim() == 3 && x.size(1) == x.size(2), "%s: x is %s, expected square matrices (batch, m, m)", op,
           x.str().c_str());
  MU_CHECK(block >= 1, "%s: block is %lld, must be >= 1", op, static_cast<long long>(block));
  if (x.device == Device::CUDA) return cuda::mirror_lower_blocks(x, block);
  check_cpu_f32(op, {{"x", x}});
  cpu::mirror_lower_blocks(x, block);
}

}  // namespace mu
